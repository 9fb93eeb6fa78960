//! Random faults over `/__sandbox/faults`: what the CRM API answers while
//! they are on, in Zoho's documented shapes, and what is counted.

use reqwest::StatusCode;
use serde_json::{Value, json};
use zoho_sandbox::{SandboxConfig, ZohoSandbox};

#[tokio::test]
async fn injected_faults_answer_in_zohos_shapes_and_are_counted() {
    let sb = ZohoSandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox starts");
    let http = reqwest::Client::new();
    let token = sb
        .issue_tokens("ana@acme.example")
        .expect("tokens")
        .access_token;
    let faults = format!("{}/__sandbox/faults", sb.base_url());
    let org = || {
        http.get(format!("{}/crm/v8/org", sb.base_url()))
            .header("Authorization", format!("Zoho-oauthtoken {token}"))
            .send()
    };
    let set = |plan: Value| http.post(&faults).json(&plan).send();

    let refused = set(json!({"rate": 2.0})).await.expect("answers");
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);

    let on = set(json!({"rate": 1.0, "kinds": ["429"], "retry_after_secs": 2}))
        .await
        .expect("answers");
    assert_eq!(on.status(), StatusCode::NO_CONTENT);
    let answer = org().await.expect("answers");
    assert_eq!(answer.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(answer.headers()["retry-after"], "2");
    let body: Value = answer.json().await.expect("json");
    assert_eq!(
        (&body["code"], &body["status"]),
        (&json!("TOO_MANY_REQUESTS"), &json!("error"))
    );

    set(json!({"rate": 1.0, "kinds": ["expired-token"]}))
        .await
        .expect("answers");
    let answer = org().await.expect("answers");
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    let body: Value = answer.json().await.expect("json");
    assert_eq!(body["code"], "INVALID_TOKEN");
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

    // Off again: the token stays expired, as a real expiry would.
    http.delete(&faults).send().await.expect("answers");
    assert_eq!(
        org().await.expect("answers").status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(sb.contract_violations(), Vec::<String>::new());
}
