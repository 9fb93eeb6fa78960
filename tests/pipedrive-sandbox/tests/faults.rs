//! Random faults over `/__sandbox/faults`: what the API answers while they
//! are on, in Pipedrive's documented shapes. (Setting, counting and
//! stopping them is `sandbox_kit`'s, tested there.)

use pipedrive_sandbox::{PipedriveSandbox, PipedriveSandboxConfig};
use reqwest::StatusCode;
use sandbox_kit::testing::FaultsEndpoint;
use serde_json::{Value, json};

#[tokio::test]
async fn injected_faults_answer_in_pipedrives_shapes() {
    let sb = PipedriveSandbox::start(PipedriveSandboxConfig::default())
        .await
        .expect("sandbox starts");
    let http = reqwest::Client::new();
    let token = sb
        .issue_tokens("ana@acme.example")
        .expect("tokens")
        .access_token;
    let faults = FaultsEndpoint::of(&sb.base_url());
    let me = || {
        http.get(format!("{}/v1/users/me", sb.base_url()))
            .bearer_auth(&token)
            .send()
    };

    // A burst refusal: the window full, resetting soon; no Retry-After.
    faults.every_call(json!(["429-no-retry-after"])).await;
    let answer = me().await.expect("answers");
    assert_eq!(answer.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(answer.headers()["x-ratelimit-remaining"], "0");
    assert_eq!(answer.headers()["x-ratelimit-reset"], "1");
    assert!(answer.headers().get("retry-after").is_none());
    let body: Value = answer.json().await.expect("json");
    assert_eq!(
        (&body["success"], &body["errorCode"]),
        (&json!(false), &json!(429))
    );

    faults.every_call(json!({"503": 1})).await;
    assert_eq!(
        me().await.expect("answers").status(),
        StatusCode::SERVICE_UNAVAILABLE
    );

    let body = faults.expire_the_token_of(me).await;
    assert_eq!(
        body,
        json!({"success": false, "error": "unauthorized access", "errorCode": 401})
    );
    let requests = sb.requests();
    assert!(
        requests.iter().all(|r| r.token_cost == 0),
        "refusals cost nothing"
    );
    assert_eq!(sb.contract_violations(), Vec::<String>::new());
}
