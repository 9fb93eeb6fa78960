//! The DynamoDB adapter against DynamoDB Local: message states under the
//! concurrent writers the product has (the webhook marking a message
//! `queued` while a worker already moves it on).

use std::sync::Arc;

use e2e::TestSystem;
use shared::model::{MessageState, StoredMessage};
use shared::store::Store;
use shared::whatsapp::Direction;

const WORKSPACE: &str = "store-test-workspace";

fn message(id: &str) -> StoredMessage {
    StoredMessage {
        workspace_id: WORKSPACE.into(),
        message_id: id.into(),
        chat_key: "170000000000001#447700900123".into(),
        direction: Direction::Inbound,
        timestamp: 1_779_268_500,
        kind: "text".into(),
        text: "hello".into(),
        media: None,
        contact_name: None,
        state: MessageState::Received,
        received_at: 1_779_268_500,
        attachment: None,
    }
}

async fn state_of(store: &dyn Store, id: &str) -> MessageState {
    store
        .message(WORKSPACE, id)
        .await
        .expect("read")
        .expect("stored")
        .state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_workers_state_is_never_lost_to_the_webhook_marking_the_message_queued() {
    let system = TestSystem::start().await;
    let store: Arc<dyn Store> = system.local.deps.store.clone();
    let skipped = MessageState::Skipped {
        reason: "sync stopped".into(),
    };
    // Each round races the webhook's "queued, if still received" against a
    // worker's unconditional "skipped", as when a fast worker picks the
    // message up before the webhook has marked it. Whatever the order, the
    // worker's state must be what stays.
    let rounds = 40;
    let mut races = Vec::new();
    for round in 0..rounds {
        let id = format!("wamid.RACE{round}");
        store
            .insert_message(&message(&id), i64::MAX / 2)
            .await
            .expect("inserted");
        let (webhook, worker) = (store.clone(), store.clone());
        let (queued_id, skipped_id, skipped) = (id.clone(), id.clone(), skipped.clone());
        races.push(tokio::spawn(async move {
            webhook
                .set_message_state(
                    WORKSPACE,
                    &queued_id,
                    &MessageState::Queued,
                    Some(&["received"]),
                )
                .await
                .expect("queued write")
        }));
        races.push(tokio::spawn(async move {
            worker
                .set_message_state(WORKSPACE, &skipped_id, &skipped, None)
                .await
                .expect("skipped write")
        }));
    }
    let mut unconditional_writes = 0;
    for (i, race) in races.into_iter().enumerate() {
        let written = race.await.expect("joined");
        if i % 2 == 1 {
            assert!(written, "an unconditional write always happens");
            unconditional_writes += 1;
        }
    }
    assert_eq!(unconditional_writes, rounds);
    for round in 0..rounds {
        assert_eq!(
            state_of(store.as_ref(), &format!("wamid.RACE{round}")).await,
            skipped,
            "round {round}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_change_drops_the_old_states_fields_and_keeps_the_rest_of_the_message() {
    let system = TestSystem::start().await;
    let store = system.local.deps.store.as_ref();
    store
        .insert_message(&message("wamid.F1"), i64::MAX / 2)
        .await
        .expect("inserted");
    let retrying = MessageState::Retrying {
        reason: "HTTP 503".into(),
        attempt: 2,
        next_attempt_at: 1_779_268_600,
    };
    assert!(
        store
            .set_message_state(WORKSPACE, "wamid.F1", &retrying, None)
            .await
            .expect("written")
    );
    assert_eq!(state_of(store, "wamid.F1").await, retrying);
    let appended = MessageState::Appended {
        note_id: "5725767000000400200".into(),
    };
    assert!(
        store
            .set_message_state(WORKSPACE, "wamid.F1", &appended, None)
            .await
            .expect("written")
    );
    let stored = store
        .message(WORKSPACE, "wamid.F1")
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(stored.state, appended);
    assert_eq!(stored.text, "hello", "the message itself is untouched");
    let raw = system.table_items().await;
    let item = raw
        .iter()
        .find(|i| {
            i.get("sk").and_then(|v| v.as_s().ok()).map(String::as_str) == Some("MSG#wamid.F1")
        })
        .expect("the message item");
    for gone in ["reason", "attempt", "next_attempt_at"] {
        assert!(
            !item.contains_key(gone),
            "`{gone}` of `retrying` is dropped"
        );
    }

    // A conditional change from a state it is not in is refused and changes nothing.
    assert!(
        !store
            .set_message_state(
                WORKSPACE,
                "wamid.F1",
                &MessageState::Queued,
                Some(&["received", "waiting"]),
            )
            .await
            .expect("answered")
    );
    assert_eq!(state_of(store, "wamid.F1").await, appended);

    // A message that was never stored is an error, not a silent no-op.
    assert!(
        store
            .set_message_state(WORKSPACE, "wamid.NEVER", &MessageState::Queued, None)
            .await
            .is_err()
    );
}
