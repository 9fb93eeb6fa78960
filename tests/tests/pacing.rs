//! Pacing a CRM's daily API budget: every Zoho call counted in credits as
//! the sandbox sees it, the workspace's plan setting the budget, and a
//! budget forecast to run out deferring renames — never messages — with
//! one line in the sync log a day.

use e2e::live::unix_now;
use e2e::{TestSystem, text_delivery};
use reqwest::Method;
use serde_json::{Value, json};

const ALICE_WA_ID: &str = "447700900123";

/// `PUT /api/usage` with `plan`.
async fn set_plan(system: &TestSystem, token: &str, plan: Value) -> (u16, Value) {
    system
        .call(Method::PUT, "/api/usage", token, Some(plan))
        .await
}

/// The workspace's Zoho entry of `GET /api/usage`.
async fn zoho_usage(system: &TestSystem, token: &str) -> Value {
    let (status, body) = system.call(Method::GET, "/api/usage", token, None).await;
    assert_eq!(status, 200, "{body}");
    let usage = body["usage"].as_array().cloned().unwrap_or_default();
    assert_eq!(usage.len(), 1, "only the connected CRM: {body}");
    usage[0].clone()
}

/// Alice writes `text` as `wamid`, under the WhatsApp name `name`; waits
/// until it is in her day note.
async fn alice_writes(system: &TestSystem, name: &str, wamid: &str, text: &str) {
    system
        .post_webhook(&text_delivery(ALICE_WA_ID, name, wamid, unix_now(), text))
        .await;
    system.wait_for_note_line("+447700900123", text).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_budget_defers_renames_never_messages_and_the_use_is_readable() {
    let (system, workspace) = TestSystem::with_connected_workspace().await;
    let token = workspace.owner_token.as_str();

    // Nobody set a plan: the smallest paid Zoho edition is assumed.
    let usage = zoho_usage(&system, token).await;
    assert_eq!(usage["unit"], "credits");
    assert_eq!(usage["window"], "rolling_24h");
    assert_eq!(usage["plan"]["source"], "default");
    assert_eq!(usage["budget_per_day"], 50_250);
    assert_eq!(usage["pace"], "normal");
    assert_eq!(usage["days"].as_array().map(Vec::len), Some(7));
    let spent_before = usage["days"][0]["spent"].as_u64().unwrap_or_default();

    // Every call the sync makes for a new chat is counted, one credit each.
    let calls_before = system.zoho_api_calls();
    alice_writes(&system, "Alice Example", "wamid.PACE1", "first").await;
    let made = system.zoho_api_calls() - calls_before;
    let usage = zoho_usage(&system, token).await;
    assert!(made >= 3, "search, create, note: {made}");
    assert_eq!(
        usage["days"][0]["spent"].as_u64().unwrap_or_default() - spent_before,
        made as u64,
        "{usage}"
    );

    // Plans are the owner's to set, by the CRM's own edition names.
    let (status, body) = set_plan(
        &system,
        token,
        json!({ "crm": "zoho", "edition": "growth", "seats": 2 }),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.to_string()
            .contains("`growth` is not a Zoho CRM edition"),
        "{body}"
    );
    let (status, body) = set_plan(
        &system,
        token,
        json!({ "crm": "zoho", "edition": "enterprise", "seats": 10 }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["budget_per_day"], 60_000);

    // A budget the CRM shows as nearly spent: the forecast says "conserve".
    let (status, body) = set_plan(
        &system,
        token,
        json!({ "crm": "zoho", "edition": "free", "seats": 1, "per_day": 10 }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["pace"], "conserve", "{body}");

    // Alice renames herself twice: her messages land, her lead keeps its
    // name, and the sync log says why once.
    alice_writes(&system, "Alice Smith", "wamid.PACE2", "renamed").await;
    alice_writes(&system, "Alice Smith", "wamid.PACE3", "renamed again").await;
    let lead = &system.leads_with_mobile("+447700900123")[0];
    assert_eq!(lead["Last_Name"], "Alice Example", "the rename waits");
    let notices: Vec<Value> = system
        .sync_log(token, "")
        .await
        .into_iter()
        .filter(|e| e["event"] == "budget_conserving")
        .collect();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(notices[0]["detail"]["crm"], "zoho");
    assert_eq!(notices[0]["detail"]["budget"], 10);

    // With the real plan back, the next message renames her lead.
    let (status, _) = set_plan(
        &system,
        token,
        json!({ "crm": "zoho", "edition": "enterprise", "seats": 10 }),
    )
    .await;
    assert_eq!(status, 200);
    alice_writes(&system, "Alice Smith", "wamid.PACE4", "now renamed").await;
    system
        .wait_for("the lead renamed", || {
            system
                .leads_with_mobile("+447700900123")
                .first()
                .filter(|lead| lead["Last_Name"] == "Alice Smith")
                .cloned()
        })
        .await;
}
