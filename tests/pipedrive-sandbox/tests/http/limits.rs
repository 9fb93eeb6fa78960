//! Daily budget, burst limits, injected faults and contract checking.

use std::time::Duration;

use pipedrive_sandbox::{PipedriveSandboxConfig, Plan};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::Pd;

#[tokio::test]
async fn daily_budget_runs_out_with_429_until_the_day_resets() {
    let pd = Pd::new().await;
    assert_eq!(pd.sb.tokens_used(), 0);
    pd.sb.set_daily_budget(25);
    let me = pd.get("/v1/users/me").await; // x-token-cost 2
    assert_eq!(me.status, StatusCode::OK);
    for h in [
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
    ] {
        assert!(me.headers.contains_key(h), "{h}");
    }
    assert!(!me.headers.contains_key("retry-after"));
    assert_eq!(pd.get("/v1/users").await.status, StatusCode::OK); // 20
    assert_eq!(pd.sb.tokens_used(), 22);
    let refused = pd.get("/api/v2/persons").await; // 10 more would exceed 25
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.body["success"], false);
    assert_ne!(
        refused.headers["x-ratelimit-remaining"], "0",
        "budget, not burst"
    );
    assert_eq!(
        pd.get("/v1/users/me").await.status,
        StatusCode::OK,
        "2 more still fit"
    );
    assert_eq!(
        pd.get("/v1/users/me").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(pd.sb.tokens_used(), 24);
    let costs: Vec<u64> = pd.sb.requests().iter().map(|r| r.token_cost).collect();
    assert_eq!(costs, vec![2, 20, 0, 2, 0]);
    pd.sb.reset_day();
    assert_eq!(pd.get("/api/v2/persons").await.status, StatusCode::OK);
    assert_eq!(pd.sb.tokens_used(), 10);
    pd.assert_clean();
}

#[tokio::test]
async fn budget_follows_plan_and_seats_and_retry_after_is_optional() {
    let mut cfg = PipedriveSandboxConfig {
        retry_after_header: true,
        burst_limit: Some(3),
        ..Default::default()
    };
    cfg.company.plan = Plan::Growth;
    cfg.company.seats = 2;
    let pd = Pd::with(cfg).await;
    let usage = pd
        .http
        .get(pd.url("/__sandbox/usage"))
        .send()
        .await
        .expect("usage");
    let usage: Value = usage.json().await.expect("json");
    assert_eq!(usage["daily_budget"], 120_000);
    for _ in 0..3 {
        assert_eq!(pd.get("/v1/users/me").await.status, StatusCode::OK);
    }
    let burst = pd.get("/v1/users/me").await;
    assert_eq!(burst.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(burst.headers["x-ratelimit-limit"], "3");
    assert_eq!(burst.headers["x-ratelimit-remaining"], "0");
    assert!(burst.headers.contains_key("retry-after"));
    pd.sb.set_bursts_enabled(false);
    assert_eq!(pd.get("/v1/users/me").await.status, StatusCode::OK);
    pd.sb.set_bursts_enabled(true);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        pd.get("/v1/users/me").await.status,
        StatusCode::OK,
        "the window rolled on"
    );
    pd.assert_clean();
}

#[tokio::test]
async fn search_has_its_own_burst_limit() {
    let pd = Pd::new().await;
    let mut statuses = Vec::new();
    for _ in 0..11 {
        let a = pd.get("/api/v2/persons/search?term=ana").await;
        statuses.push(a.status.as_u16());
        if a.status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(a.headers["x-ratelimit-limit"], "10");
        }
    }
    assert_eq!(statuses[..10], [200; 10]);
    assert_eq!(statuses[10], 429);
    assert_eq!(
        pd.get("/api/v2/persons").await.status,
        StatusCode::OK,
        "other calls are not throttled"
    );
    pd.assert_clean();
}

#[tokio::test]
async fn injected_faults() {
    let pd = Pd::new().await;
    pd.sb.fail_next(2, 503);
    assert_eq!(
        pd.get("/v1/users/me").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        pd.get("/v1/users/me").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(pd.get("/v1/users/me").await.status, StatusCode::OK);
    let person = pd
        .post("/api/v2/persons", json!({"name": "Lost Answer"}))
        .await;
    let pid = person.body["data"]["id"].as_u64().expect("id");
    pd.sb.lose_next_response("POST", "/v1/notes", 504);
    let note = pd
        .post(
            "/api/v1/notes",
            json!({"content": "<p>hi</p>", "person_id": pid}),
        )
        .await;
    assert_eq!(note.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        pd.sb.notes_of("person", &pid.to_string()).len(),
        1,
        "the note was created anyway"
    );
    pd.sb
        .lose_next_response("PATCH", "/api/v2/persons/{id}", 502);
    let patched = pd
        .call(
            Method::PATCH,
            &format!("/api/v2/persons/{pid}"),
            Some(json!({"name": "Found"})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::BAD_GATEWAY);
    assert_eq!(pd.sb.person(pid).expect("person")["name"], "Found");
    pd.sb.slow_next(1, Duration::from_millis(300));
    let started = std::time::Instant::now();
    assert_eq!(pd.get("/v1/users/me").await.status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));
    let recorded = pd.sb.requests();
    assert_eq!(recorded[0].status, 503);
    assert_eq!(recorded[0].token_cost, 0);
    pd.sb.clear_requests();
    assert!(pd.sb.requests().is_empty());
    pd.assert_clean();
}

#[tokio::test]
async fn contract_violations_are_recorded_for_malformed_requests() {
    let pd = Pd::new().await;
    let person = pd.post("/api/v2/persons", json!({"name": "Ana Silva", "phones": [{"value": "+351912345678", "primary": true, "label": "mobile"}]})).await;
    assert_eq!(person.status, StatusCode::OK);
    pd.assert_clean();
    // A lead without its title and with a string person_id.
    let bad = pd.post("/v1/leads", json!({"person_id": "42"})).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let v = pd.sb.contract_violation_details();
    assert!(!v.is_empty());
    assert!(
        v.iter()
            .all(|x| x.direction == "request" && x.path == "/v1/leads"),
        "{v:#?}"
    );
    // A boolean query parameter sent as 1.
    pd.get("/api/v2/persons/search?term=Ana&exact_match=1")
        .await;
    assert!(
        pd.sb
            .contract_violations()
            .iter()
            .any(|x| x.contains("exact_match"))
    );
    // Unknown paths and unimplemented operations.
    assert_eq!(
        pd.get("/api/v2/nothing").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        pd.get("/api/v2/activities").await.status,
        StatusCode::NOT_IMPLEMENTED
    );
}
