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
const ALICE: &str = "+447700900123";

/// What the CRM was asked while a delivery went through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Calls {
    /// Every API call (OAuth excluded).
    api: usize,
    /// Note creates and updates.
    note_writes: usize,
    /// Pipedrive's tokens (Zoho's are not counted: 0).
    tokens: u64,
}

impl Calls {
    fn since(self, before: Calls) -> Calls {
        Calls {
            api: self.api - before.api,
            note_writes: self.note_writes - before.note_writes,
            tokens: self.tokens - before.tokens,
        }
    }
}

/// One note write for ten messages: what a known chat's burst costs.
const ONE_NOTE_UPDATE: Calls = Calls {
    api: 1,
    note_writes: 1,
    tokens: 0,
};

#[derive(Debug, Clone, Copy)]
enum Crm {
    Zoho,
    Pipedrive,
}

impl Crm {
    /// Every API call so far: method, path and tokens.
    fn requests(self, system: &TestSystem) -> Vec<(String, String, u64)> {
        match self {
            Self::Zoho => system
                .sandbox
                .requests()
                .into_iter()
                .filter(|r| r.path.starts_with("/crm/"))
                .map(|r| (r.method, r.path, 0))
                .collect(),
            Self::Pipedrive => system
                .pipedrive
                .requests()
                .into_iter()
                .filter(|r| r.path.starts_with("/api/") || r.path.starts_with("/v1/"))
                .map(|r| (r.method, r.path, r.token_cost))
                .collect(),
        }
    }

    fn calls(self, system: &TestSystem) -> Calls {
        let requests = self.requests(system);
        let is_note_write = |method: &str, path: &str| match self {
            Self::Zoho => {
                (method == "POST" && path.ends_with("/Notes"))
                    || (method == "PUT" && path.contains("/Notes/"))
            }
            Self::Pipedrive => {
                (method == "POST" && path == "/v1/notes")
                    || (method == "PUT" && path.starts_with("/v1/notes/"))
            }
        };
        Calls {
            api: requests.len(),
            note_writes: requests
                .iter()
                .filter(|(method, path, _)| is_note_write(method, path))
                .count(),
            tokens: requests.iter().map(|(_, _, tokens)| tokens).sum(),
        }
    }

    /// The calls made after the first `skip`, as `METHOD /path`, to print.
    fn call_names(self, system: &TestSystem, skip: usize) -> String {
        self.requests(system)
            .into_iter()
            .skip(skip)
            .map(|(method, path, tokens)| match self {
                Self::Zoho => format!("{method} {path}"),
                Self::Pipedrive => format!("{method} {path} ({tokens} tokens)"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Alice's note text once it holds `text` (Pipedrive's HTML lines as lines).
    async fn note_with(self, system: &TestSystem, text: &str) -> String {
        match self {
            Self::Zoho => {
                let (_, notes) = system.wait_for_note_line(ALICE, text).await;
                assert_eq!(notes.len(), 1, "one note for the day");
                notes[0]["Note_Content"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            }
            Self::Pipedrive => {
                let (_, note) = system.wait_for_pipedrive_note(ALICE, text).await;
                note["content"]
                    .as_str()
                    .unwrap_or_default()
                    .replace("<br>", "\n")
            }
        }
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

/// What ten messages in one delivery cost.
struct Figures {
    new_chat: Calls,
    known_chat: Calls,
    redelivered: Calls,
}

/// Ten messages of a new chat in one delivery, then ten more in another
/// (the chat known, its day note there), then that delivery again; each
/// counted once everything it set off has finished. Checks every line is
/// in the note once, in order.
async fn ten_in_one_delivery(system: &TestSystem, crm: Crm) -> Figures {
    let mut figures = Vec::new();
    let new_chat_from = crm.calls(system).api;
    for (prefix, start) in [("new", MAY_20_0915), ("known", MAY_20_0915 + 3_600)] {
        let (delivery, last) = burst(prefix, start);
        let before = crm.calls(system);
        deliver(system, &delivery, 10, 0).await;
        crm.note_with(system, &last).await;
        settle(system).await;
        figures.push(crm.calls(system).since(before));
    }
    let calls_made = crm.call_names(system, new_chat_from);

    // Meta delivers the same body again: nothing is queued, nothing written.
    let (again, _) = burst("known", MAY_20_0915 + 3_600);
    let before = crm.calls(system);
    deliver(system, &again, 0, 10).await;
    settle(system).await;
    let redelivered = crm.calls(system).since(before);

    let content = crm.note_with(system, "known message 09").await;
    assert_each_line_once(&content, "new");
    assert_each_line_once(&content, "known");
    let (new_chat, known_chat) = (figures[0], figures[1]);
    println!(
        "{crm:?}, 10 messages in one delivery: new chat {new_chat:?}, known chat {known_chat:?}, redelivery {redelivered:?}; calls: {calls_made}"
    );
    Figures {
        new_chat,
        known_chat,
        redelivered,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zoho_ten_messages_in_one_delivery_cost_one_note_write_and_a_redelivery_nothing() {
    let (system, _) = TestSystem::with_connected_workspace().await;
    let figures = ten_in_one_delivery(&system, Crm::Zoho).await;
    // Search the destination and the converted destination, the user list
    // (owner by e-mail), the create, the note: as its first message alone.
    assert_eq!(
        figures.new_chat,
        Calls {
            api: 5,
            note_writes: 1,
            tokens: 0
        }
    );
    assert_eq!(figures.known_chat, ONE_NOTE_UPDATE);
    assert_eq!(figures.redelivered, Calls::default());
    system.assert_contract_kept();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipedrive_ten_messages_in_one_delivery_cost_one_note_write_and_a_redelivery_nothing() {
    let system = TestSystem::start().await;
    system.pipedrive_workspace_of_ana().await;
    let figures = ten_in_one_delivery(&system, Crm::Pipedrive).await;
    // The search by the number (20 tokens), the user list (20), the person
    // (5), the note (10).
    assert_eq!(
        figures.new_chat,
        Calls {
            api: 4,
            note_writes: 1,
            tokens: 55
        }
    );
    assert_eq!(
        figures.known_chat,
        Calls {
            tokens: 10,
            ..ONE_NOTE_UPDATE
        }
    );
    assert_eq!(figures.redelivered, Calls::default());
    system.assert_pipedrive_contract_kept();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_message_body_queued_before_a_deploy_still_goes_through() {
    let (system, workspace) = TestSystem::with_connected_workspace().await;
    let (first, last) = burst("new", MAY_20_0915);
    deliver(&system, &first, 10, 0).await;
    system.wait_for_note_line(ALICE, &last).await;
    settle(&system).await;

    // A message stored and queued by the webhook before this release, in
    // the body it wrote then: one `message_id`. (Made from one of the
    // chat's stored messages.)
    let store = &system.local.deps.store;
    let known = store
        .message(&workspace.id, "wamid.new09")
        .await
        .expect("readable")
        .expect("stored");
    let chat_key = known.chat_key.clone();
    let in_flight = shared::model::StoredMessage {
        message_id: "wamid.INFLIGHT".into(),
        timestamp: MAY_20_0915 + 3_600,
        received_at: MAY_20_0915 + 3_600,
        text: "queued before the deploy".into(),
        state: shared::model::MessageState::Queued,
        ..known
    };
    store.insert_message(&in_flight).await.expect("stored");
    let old_body = serde_json::json!({
        "workspace_id": workspace.id,
        "message_id": "wamid.INFLIGHT",
        "chat_key": chat_key,
        "resend": 0,
    });
    let url = system.local.stack.queue_url("SyncQueue").expect("queue");
    let before = Crm::Zoho.calls(&system);
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
    let content = Crm::Zoho
        .note_with(&system, "queued before the deploy")
        .await;
    system
        .wait_for_message_state("wamid.INFLIGHT", "appended")
        .await;
    settle(&system).await;
    assert_eq!(Crm::Zoho.calls(&system).since(before), ONE_NOTE_UPDATE);
    assert_eq!(content.matches("queued before the deploy").count(), 1);
    assert_each_line_once(&content, "new");
}
