//! The Graph business-number adapter against the Graph sandbox.

use graph_sandbox::{
    DEFAULT_ACCESS_TOKEN, DEFAULT_API_VERSION, DEFAULT_DISPLAY_PHONE_NUMBER,
    DEFAULT_PHONE_NUMBER_ID, DEFAULT_VERIFIED_NAME, Endpoint, GraphSandbox, GraphSandboxConfig,
    SeedPhoneNumber,
};
use shared::adapters::graph::GraphBusinessNumbers;
use shared::business_numbers::{BusinessNumberError, BusinessNumbers};

#[tokio::test]
async fn reads_a_number_with_a_token_of_its_business_and_says_why_not_otherwise() {
    let sb = GraphSandbox::start(GraphSandboxConfig::default())
        .await
        .expect("sandbox starts");
    let numbers =
        GraphBusinessNumbers::new(reqwest::Client::new(), &sb.base_url(), DEFAULT_API_VERSION);

    let read = numbers
        .read(DEFAULT_ACCESS_TOKEN, DEFAULT_PHONE_NUMBER_ID)
        .await
        .expect("readable");
    assert_eq!(read.display_phone_number, DEFAULT_DISPLAY_PHONE_NUMBER);
    assert_eq!(read.verified_name.as_deref(), Some(DEFAULT_VERIFIED_NAME));
    let asked = &sb.requests()[0];
    assert_eq!(asked.endpoint, Endpoint::PhoneNumber);
    assert_eq!(asked.query, "fields=display_phone_number%2Cverified_name");
    assert!(asked.bearer_present, "the token went as a bearer header");

    assert_eq!(
        numbers.read("forged", DEFAULT_PHONE_NUMBER_ID).await,
        Err(BusinessNumberError::TokenRefused)
    );
    sb.seed_phone_number(
        SeedPhoneNumber::new("170000000000009", "+44 7700 900999", "Other Ltd")
            .readable_only_with(["other-business-token"]),
    );
    assert_eq!(
        numbers.read(DEFAULT_ACCESS_TOKEN, "170000000000009").await,
        Err(BusinessNumberError::NotReadable),
        "another business's number"
    );
    sb.fail_next_at(Endpoint::PhoneNumber, 1, 503);
    assert!(matches!(
        numbers
            .read(DEFAULT_ACCESS_TOKEN, DEFAULT_PHONE_NUMBER_ID)
            .await,
        Err(BusinessNumberError::Unavailable(_))
    ));
}
