//! The workspace's retention: set through the API within its bounds, and
//! written as the expiry of everything that holds message content —
//! finished messages, day notes, sync-log entries — while a message not
//! finished never expires.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use e2e::{ALICE_WA_ID, TestSystem, TestWorkspace, text_delivery};
use reqwest::Method;
use serde_json::{Value, json};

const DAY: i64 = 24 * 3600;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// When the UTC day of `at` is over.
fn utc_day_end(at: i64) -> i64 {
    (at.div_euclid(DAY) + 1) * DAY
}

async fn set_retention(system: &TestSystem, token: &str, days: Value) -> (u16, Value) {
    system
        .call(
            Method::PUT,
            "/api/workspace/retention",
            token,
            Some(json!({ "days": days })),
        )
        .await
}

type Item = HashMap<String, AttributeValue>;

fn sort_key(item: &Item) -> &str {
    item.get("sk")
        .and_then(|v| v.as_s().ok())
        .map_or("", String::as_str)
}

fn expiry(item: &Item) -> Option<i64> {
    item.get("ttl")
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

/// The workspace's items whose sort key starts with `prefix`.
async fn items(system: &TestSystem, workspace: &TestWorkspace, prefix: &str) -> Vec<Item> {
    system
        .items_of_workspace(&workspace.id)
        .await
        .into_iter()
        .filter(|item| sort_key(item).starts_with(prefix))
        .collect()
}

async fn message_item(system: &TestSystem, workspace: &TestWorkspace, id: &str) -> Item {
    items(system, workspace, &format!("MSG#{id}"))
        .await
        .pop()
        .expect("the message is stored")
}

/// Alice writes `text` (message `id`, sent at `at`); once the message has
/// reached `state`, its item.
async fn alice_writes(
    system: &TestSystem,
    workspace: &TestWorkspace,
    (id, at, text): (&str, i64, &str),
    state: &str,
) -> Item {
    system
        .post_webhook(&text_delivery(ALICE_WA_ID, "Alice", id, at, text))
        .await;
    system.wait_for_message_state(id, state).await;
    message_item(system, workspace, id).await
}

/// The sync-log entries about one message.
async fn log_items(system: &TestSystem, workspace: &TestWorkspace, message_id: &str) -> Vec<Item> {
    let entries = items(system, workspace, "LOG#").await;
    let about = |item: &Item| {
        item.get("message_id")
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
            == Some(message_id)
    };
    let entries: Vec<Item> = entries.into_iter().filter(about).collect();
    assert!(
        !entries.is_empty(),
        "the log has entries about {message_id}"
    );
    entries
}

/// Fails unless `actual` is `expected` give or take the seconds a test takes.
fn assert_about(actual: Option<i64>, expected: i64, what: &str) {
    let actual = actual.unwrap_or_else(|| panic!("{what} has no expiry"));
    assert!(
        (actual - expected).abs() <= 120,
        "{what} expires at {actual}, {}s from the expected {expected}",
        actual - expected
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_and_admins_set_the_retention_within_its_bounds_and_everyone_sees_it() {
    let system = TestSystem::start().await;
    let workspace = system.workspace("bruno@acme.example", "UTC").await;
    let (_, admin) = system
        .add_user(&workspace, "dora@acme.example", "admin")
        .await;
    let (_, member) = system
        .add_user(&workspace, "carla@acme.example", "member")
        .await;

    let (status, shown) = system
        .call(Method::GET, "/api/workspace/retention", &member, None)
        .await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(
        shown,
        json!({ "days": 30, "default_days": 30, "min_days": 1, "max_days": 365 })
    );

    let (status, refused) = set_retention(&system, &member, json!(7)).await;
    assert_eq!(status, 403, "{refused}");

    for bad in [
        json!(0),
        json!(366),
        json!(-1),
        json!(2.5),
        json!("7"),
        Value::Null,
    ] {
        let (status, refused) = set_retention(&system, &admin, bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {refused}");
        assert_eq!(refused["error"]["code"], "bad_request");
        assert!(
            refused["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("from 1 to 365")),
            "{bad}: {refused}"
        );
    }

    let (status, set) = set_retention(&system, &admin, json!(7)).await;
    assert_eq!(status, 200, "{set}");
    assert_eq!(set["days"], 7);
    let (_, shown) = system
        .call(
            Method::GET,
            "/api/workspace/retention",
            &workspace.owner_token,
            None,
        )
        .await;
    assert_eq!(shown["days"], 7);
    let (status, set) = set_retention(&system, &workspace.owner_token, json!(365)).await;
    assert_eq!(status, 200, "{set}");
    let (_, me) = system
        .call(Method::GET, "/api/me", &workspace.owner_token, None)
        .await;
    assert_eq!(me["workspace"]["retention_days"], 365);
    let entry = system
        .log_entry(&workspace.owner_token, "", "retention_set")
        .await;
    assert_eq!(entry["detail"]["days"], 365);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retention_sets_the_expiry_of_finished_messages_day_notes_and_the_log() {
    let (system, workspace) = TestSystem::with_connected_workspace().await;
    let token = &workspace.owner_token;
    let (status, body) = set_retention(&system, token, json!(3)).await;
    assert_eq!(status, 200, "{body}");

    // Today, so that the day is not over yet when its note is written.
    let sent_at = now();
    let first = ("wamid.KEEP1", sent_at, "The boiler is leaking again");
    let finished = alice_writes(&system, &workspace, first, "appended").await;
    assert_about(expiry(&finished), now() + 3 * DAY, "the appended message");
    let notes = items(&system, &workspace, "NOTE#").await;
    assert_eq!(notes.len(), 1, "one day note");
    assert_eq!(
        expiry(&notes[0]),
        Some(utc_day_end(sent_at) + 3 * DAY),
        "the day note: when its day is over, plus three days"
    );
    for entry in log_items(&system, &workspace, "wamid.KEEP1").await {
        assert_about(expiry(&entry), now() + 3 * DAY, "a sync-log entry");
    }

    // A longer retention: what is written from now on keeps it.
    let (status, body) = set_retention(&system, token, json!(10)).await;
    assert_eq!(status, 200, "{body}");
    let second = ("wamid.KEEP2", sent_at + 1, "Can someone come on Friday?");
    let later = alice_writes(&system, &workspace, second, "appended").await;
    assert_about(expiry(&later), now() + 10 * DAY, "the later message");
    let notes = items(&system, &workspace, "NOTE#").await;
    assert_eq!(notes.len(), 1, "the same day note");
    assert_eq!(
        expiry(&notes[0]),
        Some(utc_day_end(sent_at) + 10 * DAY),
        "the day note, written again, keeps the new retention"
    );
    let earlier = message_item(&system, &workspace, "wamid.KEEP1").await;
    assert_eq!(
        expiry(&earlier),
        expiry(&finished),
        "a message not written again keeps its expiry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_waiting_for_the_crm_never_expires_however_short_the_retention() {
    let system = TestSystem::start().await;
    let workspace = system.workspace("bruno@acme.example", "UTC").await;
    let (status, body) = set_retention(&system, &workspace.owner_token, json!(1)).await;
    assert_eq!(status, 200, "{body}");
    let message = ("wamid.WAIT1", now(), "Anyone there?");
    let waiting = alice_writes(&system, &workspace, message, "waiting").await;

    assert_eq!(expiry(&waiting), None, "waiting: no expiry");
    // The log that says why expires all the same.
    for entry in log_items(&system, &workspace, "wamid.WAIT1").await {
        assert_about(expiry(&entry), now() + DAY, "a sync-log entry");
    }
}
