//! The workspace's retention: set through the API within its bounds, and
//! written as the expiry of everything that holds message content —
//! finished messages, day notes, sync-log entries —, applied to what is
//! stored too, while a message not finished never expires.

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

/// Fails unless the workspace has one day note, of the (UTC) day of
/// `sent_at`, and it expires `days` after that day is over.
async fn assert_day_note_kept(
    system: &TestSystem,
    workspace: &TestWorkspace,
    sent_at: i64,
    days: i64,
) {
    let notes = items(system, workspace, "NOTE#").await;
    assert_eq!(notes.len(), 1, "one day note");
    assert_eq!(
        expiry(&notes[0]),
        Some(utc_day_end(sent_at) + days * DAY),
        "the day note: when its day is over, plus {days} days"
    );
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
    assert_day_note_kept(&system, &workspace, sent_at, 3).await;
    for entry in log_items(&system, &workspace, "wamid.KEEP1").await {
        assert_about(expiry(&entry), now() + 3 * DAY, "a sync-log entry");
    }

    // A longer retention: what is written from now on keeps it.
    let (status, body) = set_retention(&system, token, json!(10)).await;
    assert_eq!(status, 200, "{body}");
    let second = ("wamid.KEEP2", sent_at + 1, "Can someone come on Friday?");
    let later = alice_writes(&system, &workspace, second, "appended").await;
    assert_about(expiry(&later), now() + 10 * DAY, "the later message");
    // The day note, written again, keeps the new retention.
    assert_day_note_kept(&system, &workspace, sent_at, 10).await;
    // And a job gives it to what was stored before, counted from when each
    // item's retention began.
    let finished_at = expiry(&finished).expect("expires") - 3 * DAY;
    system
        .eventually("the stored message to get the new retention", || async {
            let earlier = message_item(&system, &workspace, "wamid.KEEP1").await;
            match expiry(&earlier) {
                Some(at) if at == finished_at + 10 * DAY => Ok(()),
                other => Err(format!("it expires at {other:?}")),
            }
        })
        .await;
    for entry in log_items(&system, &workspace, "wamid.KEEP1").await {
        let at: i64 = entry["at"].as_n().expect("at").parse().expect("number");
        assert_eq!(expiry(&entry), Some(at + 10 * DAY), "a sync-log entry");
    }
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

/// Writes an item of the workspace straight to the table, as an earlier
/// version stored it.
async fn put_raw(
    system: &TestSystem,
    workspace: &TestWorkspace,
    attributes: Vec<(&str, AttributeValue)>,
) {
    let mut put = aws_sdk_dynamodb::Client::new(&system.local.aws)
        .put_item()
        .table_name(&system.local.stack.table_name)
        .item("pk", AttributeValue::S(format!("WS#{}", workspace.id)))
        .item("workspace_id", AttributeValue::S(workspace.id.clone()));
    for (name, value) in attributes {
        put = put.item(name, value);
    }
    put.send().await.expect("the item is written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_stored_before_the_setting_are_given_the_retention_when_it_is_set() {
    let system = TestSystem::start().await;
    let workspace = system.workspace("bruno@acme.example", "UTC").await;
    // What an earlier version stored: a message finished on May 20 with the
    // fixed 30 days, a day note that never expired, a sync-log entry, and a
    // message still waiting.
    let may_20_0915: i64 = 1_779_268_500;
    let may_21: i64 = 1_779_321_600;
    let text = |v: &str| AttributeValue::S(v.to_owned());
    let number = |v: i64| AttributeValue::N(v.to_string());
    let stored_before = [
        vec![
            ("sk", text("MSG#wamid.LEGACY")),
            ("state", text("appended")),
            ("ttl", number(may_20_0915 + 30 * DAY)),
        ],
        vec![
            (
                "sk",
                text("NOTE#170000000000001#447700900123#2026-05-20#5725767000000400001#1"),
            ),
            ("day", text("2026-05-20")),
            ("lines", AttributeValue::L(Vec::new())),
        ],
        vec![
            ("sk", text("LOG#001779268500000000-legacy")),
            ("at", number(may_20_0915)),
            ("ttl", number(may_20_0915 + 30 * DAY)),
        ],
        vec![
            ("sk", text("MSG#wamid.STILLWAITING")),
            ("state", text("waiting")),
        ],
    ];
    for attributes in stored_before {
        put_raw(&system, &workspace, attributes).await;
    }

    let (status, body) = set_retention(&system, &workspace.owner_token, json!(7)).await;
    assert_eq!(status, 200, "{body}");

    let expected = [
        ("MSG#wamid.LEGACY", Some(may_20_0915 + 7 * DAY)),
        ("NOTE#", Some(may_21 + 7 * DAY)),
        ("LOG#001779268500000000-legacy", Some(may_20_0915 + 7 * DAY)),
        ("MSG#wamid.STILLWAITING", None),
    ];
    system
        .eventually("the stored items to get the retention", || async {
            let mut wrong = Vec::new();
            for (prefix, wanted) in expected {
                let found = items(&system, &workspace, prefix)
                    .await
                    .pop()
                    .expect(prefix);
                if expiry(&found) != wanted {
                    wrong.push(format!("{prefix} expires at {:?}", expiry(&found)));
                }
            }
            if wrong.is_empty() {
                Ok(())
            } else {
                Err(wrong.join("; "))
            }
        })
        .await;
}
