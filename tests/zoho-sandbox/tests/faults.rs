//! Random faults over `/__sandbox/faults`: what the CRM API answers while
//! they are on, in Zoho's documented shapes. (Setting, counting and
//! stopping them is `sandbox_kit`'s, tested there.)

use reqwest::StatusCode;
use sandbox_kit::testing::FaultsEndpoint;
use serde_json::{Value, json};
use zoho_sandbox::{SandboxConfig, ZohoSandbox};

#[tokio::test]
async fn injected_faults_answer_in_zohos_shapes() {
    let sb = ZohoSandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox starts");
    let http = reqwest::Client::new();
    let token = sb
        .issue_tokens("ana@acme.example")
        .expect("tokens")
        .access_token;
    let faults = FaultsEndpoint::of(&sb.base_url());
    let org = || {
        http.get(format!("{}/crm/v8/org", sb.base_url()))
            .header("Authorization", format!("Zoho-oauthtoken {token}"))
            .send()
    };

    let on = faults
        .set(json!({"rate": 1.0, "kinds": ["429"], "retry_after_secs": 2}))
        .await;
    assert_eq!(on, StatusCode::NO_CONTENT);
    let answer = org().await.expect("answers");
    assert_eq!(answer.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(answer.headers()["retry-after"], "2");
    let body: Value = answer.json().await.expect("json");
    assert_eq!(
        (&body["code"], &body["status"]),
        (&json!("TOO_MANY_REQUESTS"), &json!("error"))
    );

    let body = faults.expire_the_token_of(org).await;
    assert_eq!(
        (&body["code"], &body["status"]),
        (&json!("INVALID_TOKEN"), &json!("error"))
    );
    assert_eq!(sb.contract_violations(), Vec::<String>::new());
}
