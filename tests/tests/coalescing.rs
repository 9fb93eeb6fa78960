//! Calls per message must not depend on how the queues happen to split
//! batches: one delivery's messages of one chat reach note-append together,
//! so ten messages of a known chat in one delivery cost one note update, a
//! new chat's ten cost what its first message costs, and a delivery Meta
//! sends again adds nothing. Counted from the CRM sandboxes' own request
//! logs, for Zoho and for Pipedrive.

use std::time::Duration;

use e2e::{ALICE_WA_ID, TestSystem, messages_delivery};

/// 2026-05-20 09:15 UTC.
const MAY_20_0915: i64 = 1_779_268_500;

/// The calls made since the `skip` first, as `METHOD /path`, to print.
fn call_names(paths: impl Iterator<Item = (String, String)>, skip: usize) -> String {
    paths
        .skip(skip)
        .map(|(method, path)| format!("{method} {path}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the CRM was asked while a delivery went through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Calls {
    /// Every API call (OAuth excluded).
    api: usize,
    /// Note creates and updates.
    note_writes: usize,
}

fn zoho_calls(system: &TestSystem) -> Calls {
    let requests = system.sandbox.requests();
    let api: Vec<_> = requests
        .iter()
        .filter(|r| r.path.starts_with("/crm/"))
        .collect();
    Calls {
        api: api.len(),
        note_writes: api
            .iter()
            .filter(|r| {
                (r.method == "POST" && r.path.ends_with("/Notes"))
                    || (r.method == "PUT" && r.path.contains("/Notes/"))
            })
            .count(),
    }
}

fn pipedrive_calls(system: &TestSystem) -> (Calls, u64) {
    let requests = system.pipedrive.requests();
    let api: Vec<_> = requests
        .iter()
        .filter(|r| r.path.starts_with("/api/") || r.path.starts_with("/v1/"))
        .collect();
    let calls = Calls {
        api: api.len(),
        note_writes: api
            .iter()
            .filter(|r| {
                (r.method == "POST" && r.path == "/v1/notes")
                    || (r.method == "PUT" && r.path.starts_with("/v1/notes/"))
            })
            .count(),
    };
    (calls, api.iter().map(|r| r.token_cost).sum())
}

fn since(now: Calls, before: Calls) -> Calls {
    Calls {
        api: now.api - before.api,
        note_writes: now.note_writes - before.note_writes,
    }
}

/// Ten text messages of Alice, a minute apart from `start`, in one delivery;
/// with the text of the last.
fn burst(prefix: &str, start: i64) -> (Vec<u8>, String) {
    let messages: Vec<(String, i64, String)> = (0..10)
        .map(|i| {
            (
                format!("wamid.{prefix}{i:02}"),
                start + 60 * i,
                format!("{prefix} message {i:02}"),
            )
        })
        .collect();
    let refs: Vec<(&str, i64, &str)> = messages
        .iter()
        .map(|(id, ts, text)| (id.as_str(), *ts, text.as_str()))
        .collect();
    (
        messages_delivery(ALICE_WA_ID, "Alice", &refs),
        format!("{prefix} message 09"),
    )
}

/// Posts a delivery and checks how the webhook took it.
async fn deliver(system: &TestSystem, body: &[u8], queued: u64, duplicates: u64) {
    let response = system.post_webhook(body).await;
    assert_eq!(response.status().as_u16(), 200);
    let answer: serde_json::Value = response.json().await.expect("JSON answer");
    assert_eq!(answer["queued"], queued, "{answer}");
    assert_eq!(answer["duplicates"], duplicates, "{answer}");
}

/// Both queues empty (nothing visible, nothing in flight), twice a second
/// apart: whatever a delivery set off has finished.
async fn settle(system: &TestSystem) {
    system
        .eventually("both queues drained", || async {
            let mut depths = Vec::new();
            for _ in 0..2 {
                depths.push(system.queue_depth("SyncQueue").await);
                depths.push(system.queue_depth("NotesQueue").await);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            if depths.iter().all(|d| *d == 0) {
                Ok(())
            } else {
                Err(format!("depths {depths:?}"))
            }
        })
        .await;
}

/// Each of the ten messages of `prefix` is in `content` exactly once, in order.
fn assert_each_line_once(content: &str, prefix: &str) {
    let lines: Vec<&str> = content
        .lines()
        .filter(|l| l.contains(&format!("{prefix} message ")))
        .collect();
    let expected: Vec<String> = (0..10)
        .map(|i| format!("{prefix} message {i:02}"))
        .collect();
    assert_eq!(lines.len(), 10, "{content}");
    for (line, text) in lines.iter().zip(&expected) {
        assert!(line.ends_with(text.as_str()), "{line} is not {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zoho_ten_messages_in_one_delivery_cost_one_note_write_and_a_redelivery_nothing() {
    let (system, _) = TestSystem::with_connected_workspace().await;

    // A new chat: the record is found or made once, then one note holds all ten.
    let (first, last) = burst("new", MAY_20_0915);
    let before = zoho_calls(&system);
    let new_chat_from = before.api;
    deliver(&system, &first, 10, 0).await;
    system.wait_for_note_line("+447700900123", &last).await;
    settle(&system).await;
    let new_chat = since(zoho_calls(&system), before);

    // The chat is known and its day note exists: one update for all ten.
    let (second, last) = burst("known", MAY_20_0915 + 3_600);
    let before = zoho_calls(&system);
    deliver(&system, &second, 10, 0).await;
    system.wait_for_note_line("+447700900123", &last).await;
    settle(&system).await;
    let known_chat = since(zoho_calls(&system), before);

    // Meta delivers the same body again: nothing is queued, nothing written.
    let before = zoho_calls(&system);
    deliver(&system, &second, 0, 10).await;
    settle(&system).await;
    let redelivered = since(zoho_calls(&system), before);

    println!(
        "Zoho, 10 messages in one delivery: new chat {} calls ({} note write), known chat {} calls ({} note write), redelivery {} calls",
        new_chat.api, new_chat.note_writes, known_chat.api, known_chat.note_writes, redelivered.api
    );
    let zoho_api = system
        .sandbox
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/crm/"))
        .map(|r| (r.method, r.path));
    println!(
        "Zoho calls, from the new chat on: {}",
        call_names(zoho_api, new_chat_from)
    );
    assert_eq!(
        new_chat.note_writes, 1,
        "a new chat's ten messages: one note"
    );
    // Search the destination and the converted destination, the user list
    // (owner by e-mail), the create, the note: as its first message alone.
    assert_eq!(new_chat.api, 5, "{new_chat:?}");
    assert_eq!(
        known_chat,
        Calls {
            api: 1,
            note_writes: 1
        },
        "a known chat's ten messages: one note update"
    );
    assert_eq!(redelivered.api, 0);

    let (_, notes) = system
        .wait_for_note_line("+447700900123", "known message 09")
        .await;
    assert_eq!(notes.len(), 1, "one note for the day");
    let content = notes[0]["Note_Content"].as_str().unwrap_or_default();
    assert_each_line_once(content, "new");
    assert_each_line_once(content, "known");
    system.assert_contract_kept();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipedrive_ten_messages_in_one_delivery_cost_one_note_write_and_a_redelivery_nothing() {
    let system = TestSystem::start().await;
    system.pipedrive_workspace_of_ana().await;

    let (first, last) = burst("new", MAY_20_0915);
    let (before, tokens_before) = pipedrive_calls(&system);
    let new_chat_from = before.api;
    deliver(&system, &first, 10, 0).await;
    system.wait_for_pipedrive_note("+447700900123", &last).await;
    settle(&system).await;
    let (now, tokens_now) = pipedrive_calls(&system);
    let new_chat = since(now, before);
    let new_chat_tokens = tokens_now - tokens_before;

    let (second, last) = burst("known", MAY_20_0915 + 3_600);
    let (before, tokens_before) = pipedrive_calls(&system);
    deliver(&system, &second, 10, 0).await;
    system.wait_for_pipedrive_note("+447700900123", &last).await;
    settle(&system).await;
    let (now, tokens_now) = pipedrive_calls(&system);
    let known_chat = since(now, before);
    let known_chat_tokens = tokens_now - tokens_before;

    let (before, _) = pipedrive_calls(&system);
    deliver(&system, &second, 0, 10).await;
    settle(&system).await;
    let redelivered = since(pipedrive_calls(&system).0, before);

    println!(
        "Pipedrive, 10 messages in one delivery: new chat {} calls, {new_chat_tokens} tokens ({} note write), known chat {} calls, {known_chat_tokens} tokens ({} note write), redelivery {} calls",
        new_chat.api, new_chat.note_writes, known_chat.api, known_chat.note_writes, redelivered.api
    );
    let pipedrive_api = system
        .pipedrive
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/api/") || r.path.starts_with("/v1/"))
        .map(|r| (format!("{} ({} tokens)", r.method, r.token_cost), r.path));
    println!(
        "Pipedrive calls, from the new chat on: {}",
        call_names(pipedrive_api, new_chat_from)
    );
    assert_eq!(
        new_chat.note_writes, 1,
        "a new chat's ten messages: one note"
    );
    // Search by the number, the user list (owner by e-mail), the person, the note.
    assert_eq!(new_chat.api, 4, "{new_chat:?}");
    assert_eq!(
        known_chat,
        Calls {
            api: 1,
            note_writes: 1
        },
        "a known chat's ten messages: one note update"
    );
    assert_eq!(redelivered.api, 0);

    let (_, note) = system
        .wait_for_pipedrive_note("+447700900123", "known message 09")
        .await;
    let content = note["content"].as_str().unwrap_or_default();
    // Pipedrive's note is HTML: one line per `<br>`.
    let text = content.replace("<br>", "\n").replace("<br/>", "\n");
    assert_each_line_once(&text, "new");
    assert_each_line_once(&text, "known");
    system.assert_pipedrive_contract_kept();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_message_body_queued_before_a_deploy_still_goes_through() {
    let (system, workspace) = TestSystem::with_connected_workspace().await;
    let (first, last) = burst("new", MAY_20_0915);
    deliver(&system, &first, 10, 0).await;
    system.wait_for_note_line("+447700900123", &last).await;
    settle(&system).await;

    // A message stored and queued by the webhook before this release, in
    // the body it wrote then: one `message_id`.
    let chat_key = format!("{}#{ALICE_WA_ID}", e2e::PHONE_NUMBER_ID);
    let message = shared::model::StoredMessage {
        workspace_id: workspace.id.clone(),
        message_id: "wamid.INFLIGHT".into(),
        chat_key: chat_key.clone(),
        direction: shared::whatsapp::Direction::Inbound,
        timestamp: MAY_20_0915 + 3_600,
        kind: "text".into(),
        text: "queued before the deploy".into(),
        media: None,
        contact_name: Some("Alice".into()),
        state: shared::model::MessageState::Queued,
        received_at: MAY_20_0915 + 3_600,
        attachment: None,
        attachment_started_at: None,
        sent_by: None,
        delivery: None,
        reply_to: None,
        reaction_to: None,
    };
    system
        .local
        .deps
        .store
        .insert_message(&message)
        .await
        .expect("stored");
    let old_body = serde_json::json!({
        "workspace_id": workspace.id,
        "message_id": "wamid.INFLIGHT",
        "chat_key": chat_key,
        "resend": 0,
    });
    let url = system.local.stack.queue_url("SyncQueue").expect("queue");
    let before = zoho_calls(&system);
    aws_sdk_sqs::Client::new(&system.local.aws)
        .send_message()
        .queue_url(url)
        .message_group_id(shared::crypto::sha256_hex(&format!(
            "{}#{chat_key}",
            workspace.id
        )))
        .message_deduplication_id(shared::crypto::sha256_hex(&format!(
            "{}#wamid.INFLIGHT#0",
            workspace.id
        )))
        .message_body(old_body.to_string())
        .send()
        .await
        .expect("sent as the old webhook sent it");
    let (_, notes) = system
        .wait_for_note_line("+447700900123", "queued before the deploy")
        .await;
    system
        .wait_for_message_state("wamid.INFLIGHT", "appended")
        .await;
    settle(&system).await;
    assert_eq!(
        since(zoho_calls(&system), before),
        Calls {
            api: 1,
            note_writes: 1
        }
    );
    let content = notes[0]["Note_Content"].as_str().unwrap_or_default();
    assert_eq!(content.matches("queued before the deploy").count(), 1);
    assert_each_line_once(content, "new");
}
