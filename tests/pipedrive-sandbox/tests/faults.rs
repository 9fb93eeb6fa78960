//! Random faults over `/__sandbox/faults`: what the API answers while they
//! are on, in Pipedrive's documented shapes, and what is counted.

use pipedrive_sandbox::{PipedriveSandbox, PipedriveSandboxConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn injected_faults_answer_in_pipedrives_shapes_and_are_counted() {
    let sb = PipedriveSandbox::start(PipedriveSandboxConfig::default())
        .await
        .expect("sandbox starts");
    let http = reqwest::Client::new();
    let token = sb
        .issue_tokens("ana@acme.example")
        .expect("tokens")
        .access_token;
    let faults = format!("{}/__sandbox/faults", sb.base_url());
    let me = || {
        http.get(format!("{}/v1/users/me", sb.base_url()))
            .bearer_auth(&token)
            .send()
    };
    let set = |plan: Value| http.post(&faults).json(&plan).send();

    // A burst refusal: the window full, resetting soon; no Retry-After.
    set(json!({"rate": 1.0, "kinds": ["429-no-retry-after"]}))
        .await
        .expect("answers");
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

    set(json!({"rate": 1.0, "kinds": {"503": 1}}))
        .await
        .expect("answers");
    assert_eq!(
        me().await.expect("answers").status(),
        StatusCode::SERVICE_UNAVAILABLE
    );

    set(json!({"rate": 1.0, "kinds": ["expired-token"]}))
        .await
        .expect("answers");
    let answer = me().await.expect("answers");
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    let body: Value = answer.json().await.expect("json");
    assert_eq!(
        body,
        json!({"success": false, "error": "unauthorized access", "errorCode": 401})
    );
    let report: Value = http
        .get(&faults)
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    assert_eq!(
        report,
        json!({"calls": 1, "injected": {"expired-token": 1}})
    );

    http.delete(&faults).send().await.expect("answers");
    assert_eq!(
        me().await.expect("answers").status(),
        StatusCode::UNAUTHORIZED,
        "expired for real"
    );
    let requests = sb.requests();
    assert!(
        requests.iter().all(|r| r.token_cost == 0),
        "refusals cost nothing"
    );
    assert_eq!(sb.contract_violations(), Vec::<String>::new());
}
