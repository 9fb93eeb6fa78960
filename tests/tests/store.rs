//! Message states against DynamoDB Local under the concurrent writers the
//! product has: the webhook marking a message `queued` while a worker
//! already moves it on, and a re-queue racing the worker that parks the
//! message again; a token refresh racing a reconnect; a deleted record
//! forgotten while a person links the chat to another; and two rotations
//! of one user's API token at once. And the paged jobs: re-queueing 5,000
//! waiting messages, deleting a workspace larger than a page.

use std::sync::Arc;

use async_trait::async_trait;
use e2e::TestSystem;
use shared::deletion::{DeletionJob, DeletionStep, PageOutcome};
use shared::deps::Deps;
use shared::error::QueueError;
use shared::model::{
    ChatPatch, Connection, ConnectionKind, ConnectionStatus, CrmKind, MessageState, RecordRef,
    Role, StoredMessage, User, Workspace,
};
use shared::phone::E164;
use shared::queue::{Job, MessageRef, Queue, QueueName};
use shared::requeue::RequeueJob;
use shared::retention::Expiry;
use shared::store::{MessageStore, Store, SyncLogStore};
use shared::whatsapp::Direction;

const WORKSPACE: &str = "store-test-workspace";
/// When the finished messages of these tests expire (30 days after May 20).
const EXPIRY: Expiry = Expiry {
    retained_from: 1_779_268_500,
    expires_at: 1_781_860_500,
};

/// The workspace item the tests' messages belong to (jobs run only for a
/// workspace that exists and is not being deleted).
async fn create_workspace(store: &dyn Store) {
    let workspace = Workspace {
        id: WORKSPACE.into(),
        name: "Store test".into(),
        time_zone: "UTC".into(),
        created_at: 1_779_000_000,
        retention: Default::default(),
        deleting_since: None,
    };
    let owner = User {
        workspace_id: WORKSPACE.into(),
        id: "owner".into(),
        email: "bruno@acme.example".into(),
        role: Role::Owner,
        created_at: 1_779_000_000,
    };
    store
        .create_workspace(&workspace, &owner, "owner-token-hash")
        .await
        .expect("workspace created");
}

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
        attachment_started_at: None,
        sent_by: None,
        delivery: None,
        reply_to: None,
        reaction_to: None,
    }
}

/// The system's dependencies (administrator's view) with another queue.
fn deps_with_queue(system: &TestSystem, queue: Arc<dyn Queue>) -> Deps {
    let base = &system.local.deps;
    Deps {
        config: base.config.clone(),
        store: base.store.clone(),
        queue,
        secrets: base.secrets.clone(),
        http: base.http.clone(),
        clock: base.clock.clone(),
        media: base.media.clone(),
        business_numbers: base.business_numbers.clone(),
        crms: base.crms.clone(),
    }
}

fn requeue_job(after: Option<String>) -> RequeueJob {
    RequeueJob {
        workspace_id: WORKSPACE.into(),
        after,
        job_id: "job-1".into(),
        not_before: None,
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
        store.insert_message(&message(&id)).await.expect("inserted");
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
                .finish_message(WORKSPACE, &skipped_id, &skipped, EXPIRY)
                .await
                .expect("skipped write");
            true
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
        .insert_message(&message("wamid.F1"))
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
    store
        .finish_message(WORKSPACE, "wamid.F1", &appended, EXPIRY)
        .await
        .expect("written");
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

/// A queue with the fastest worker there can be: the moment a message is
/// sent, the worker has taken it and parked it again (its cause is back).
struct ReparkingQueue {
    store: Arc<dyn Store>,
}

const REPARKED: &str = "sync settings are not active; activate them";

#[async_trait]
impl Queue for ReparkingQueue {
    async fn send(&self, _queue: QueueName, message: &MessageRef) -> Result<(), QueueError> {
        let waiting = MessageState::Waiting {
            reason: REPARKED.into(),
        };
        self.store
            .set_message_state(&message.workspace_id, &message.message_id, &waiting, None)
            .await
            .map(|_| ())
            .map_err(|e| QueueError(e.to_string()))
    }

    async fn send_all(&self, queue: QueueName, messages: &[MessageRef]) -> Result<(), QueueError> {
        for message in messages {
            self.send(queue, message).await?;
        }
        Ok(())
    }

    async fn send_job(&self, _: QueueName, _: &Job) -> Result<(), QueueError> {
        Ok(())
    }

    async fn retry_after(&self, _: QueueName, _: &str, _: i32) -> Result<(), QueueError> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_parked_again_while_being_requeued_stays_waiting_for_the_next_requeue() {
    let system = TestSystem::start().await;
    let base = &system.local.deps;
    let deps = deps_with_queue(
        &system,
        Arc::new(ReparkingQueue {
            store: base.store.clone(),
        }),
    );
    create_workspace(deps.store.as_ref()).await;
    let mut waiting = message("wamid.W1");
    waiting.state = MessageState::Waiting {
        reason: "no CRM connection".into(),
    };
    deps.store.insert_message(&waiting).await.expect("inserted");

    let requeued = shared::requeue::run_page(&deps, &requeue_job(None))
        .await
        .expect("requeued");

    assert_eq!(requeued, 1);
    // Parked again by the worker, so the next activation finds it; not
    // `queued` while on no queue at all.
    assert_eq!(
        state_of(deps.store.as_ref(), "wamid.W1").await,
        MessageState::Waiting {
            reason: REPARKED.into()
        }
    );
}

fn organization_connection(connected_at: i64, access_token_enc: &str) -> Connection {
    Connection {
        workspace_id: WORKSPACE.into(),
        crm: CrmKind::Zoho,
        kind: ConnectionKind::Organization,
        user_id: "owner".into(),
        location: "us".into(),
        accounts_server: "https://accounts.zoho.com".into(),
        api_domain: "https://www.zohoapis.com".into(),
        crm_user_id: "5725767000000411001".into(),
        crm_user_email: "bruno@acme.example".into(),
        crm_org_id: "org".into(),
        access_token_enc: access_token_enc.into(),
        refresh_token_enc: "refresh".into(),
        access_expires_at: connected_at + 3600,
        access_issued_at: connected_at,
        status: ConnectionStatus::Active,
        connected_at,
        version: 1,
        refresh_lease_until: 0,
        shares_organization_grant: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_begun_before_a_reconnect_does_not_overwrite_the_new_connection() {
    let system = TestSystem::start().await;
    let store = system.local.deps.store.as_ref();
    let old = organization_connection(1_779_000_000, "old access");
    store.insert_connection(&old).await.expect("connected");
    // A worker starts refreshing the old connection's token (version 1)…
    let mut refreshed = old.clone();
    refreshed.version = 2;
    refreshed.access_token_enc = "refreshed old access".into();
    // …while the owner disconnects and connects again (version 1 again).
    store.delete_connection(&old).await.expect("disconnected");
    let new = organization_connection(1_779_000_600, "new access");
    store.insert_connection(&new).await.expect("reconnected");

    let leased = store
        .take_refresh_lease(&old, 1_779_000_700, 1_779_000_730)
        .await
        .expect("answered");
    let written = store
        .replace_connection(&refreshed, old.version)
        .await
        .expect("answered");

    assert!(!leased, "the old connection's lease is not the new one's");
    assert!(!written, "the old refresh lost");
    let stored = store
        .connection(WORKSPACE, CrmKind::Zoho, ConnectionKind::Organization, None)
        .await
        .expect("read")
        .expect("connected");
    assert_eq!(stored.access_token_enc, "new access");
    assert_eq!(stored.connected_at, new.connected_at);

    // The refresh of the connection as it is now still goes through.
    assert!(
        store
            .take_refresh_lease(&stored, 1_779_000_700, 1_779_000_730)
            .await
            .expect("answered")
    );
    let mut next = stored.clone();
    next.version += 1;
    assert!(
        store
            .replace_connection(&next, stored.version)
            .await
            .expect("answered")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_record_is_forgotten_only_while_it_is_still_the_chats_record() {
    let system = TestSystem::start().await;
    let store = system.local.deps.store.as_ref();
    let chat = "170000000000001#447700900123";
    let contact = E164::from_wa_id("447700900123").expect("E.164");
    store
        .upsert_chat_contact(WORKSPACE, chat, "170000000000001", &contact, Some("Alice"))
        .await
        .expect("chat stored");
    let record = |id: &str| RecordRef {
        crm: CrmKind::Zoho,
        module: "Leads".into(),
        id: id.into(),
    };
    let link = |to: RecordRef| ChatPatch {
        record: Some(to),
        record_created_by_us: Some(true),
        ..ChatPatch::default()
    };
    let forget = |gone: RecordRef| ChatPatch {
        forget_record: Some(gone),
        ..ChatPatch::default()
    };
    assert!(
        store
            .patch_chat(WORKSPACE, chat, &link(record("1")))
            .await
            .expect("linked")
    );
    // Note-append found Leads/1 deleted; meanwhile a person chose Leads/2.
    assert!(
        store
            .patch_chat(WORKSPACE, chat, &link(record("2")))
            .await
            .expect("chosen")
    );

    let forgot_stale = store
        .patch_chat(WORKSPACE, chat, &forget(record("1")))
        .await
        .expect("answered");

    assert!(!forgot_stale, "the person's choice stays");
    let stored = store
        .chat(WORKSPACE, chat)
        .await
        .expect("read")
        .expect("chat");
    assert_eq!(stored.record, Some(record("2")));
    assert!(stored.record_created_by_us);

    assert!(
        store
            .patch_chat(WORKSPACE, chat, &forget(record("2")))
            .await
            .expect("answered")
    );
    let stored = store
        .chat(WORKSPACE, chat)
        .await
        .expect("read")
        .expect("chat");
    assert_eq!(stored.record, None);
    assert!(!stored.record_created_by_us);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_two_token_rotations_at_once_only_the_last_token_authenticates() {
    let system = TestSystem::start().await;
    let store = system.local.deps.store.clone();
    create_workspace(store.as_ref()).await;
    let user = User {
        workspace_id: WORKSPACE.into(),
        id: "rotating-user".into(),
        email: "erin@acme.example".into(),
        role: Role::Member,
        created_at: 1_779_000_000,
    };
    store.add_user(&user, "hash-0").await.expect("added");
    for round in 1..=10 {
        let (a, b) = (format!("hash-{round}a"), format!("hash-{round}b"));
        let (first, second) = (store.clone(), store.clone());
        let (user_a, user_b) = (user.clone(), user.clone());
        let (hash_a, hash_b) = (a.clone(), b.clone());
        let rotations = tokio::join!(
            tokio::spawn(async move { first.replace_token(&user_a, &hash_a).await }),
            tokio::spawn(async move { second.replace_token(&user_b, &hash_b).await }),
        );
        rotations.0.expect("joined").expect("rotated");
        rotations.1.expect("joined").expect("rotated");
        let mut valid = Vec::new();
        for hash in [&a, &b] {
            if store
                .user_for_token(hash)
                .await
                .expect("looked up")
                .is_some()
            {
                valid.push(hash.clone());
            }
        }
        assert_eq!(
            valid.len(),
            1,
            "round {round}: exactly one new token works: {valid:?}"
        );
        let earlier = if round == 1 {
            vec!["hash-0".to_owned()]
        } else {
            vec![
                format!("hash-{}a", round - 1),
                format!("hash-{}b", round - 1),
            ]
        };
        for hash in earlier {
            assert!(
                store
                    .user_for_token(&hash)
                    .await
                    .expect("looked up")
                    .is_none(),
                "round {round}: {hash} no longer works"
            );
        }
    }
}

/// A queue that keeps what it is given: messages sent, and the next page of
/// a re-queue job.
#[derive(Default)]
struct KeepingQueue {
    sent: std::sync::Mutex<Vec<MessageRef>>,
    jobs: std::sync::Mutex<Vec<Job>>,
}

#[async_trait]
impl Queue for KeepingQueue {
    async fn send(&self, _: QueueName, message: &MessageRef) -> Result<(), QueueError> {
        self.sent.lock().expect("lock").push(message.clone());
        Ok(())
    }

    async fn send_all(&self, _: QueueName, messages: &[MessageRef]) -> Result<(), QueueError> {
        self.sent.lock().expect("lock").extend_from_slice(messages);
        Ok(())
    }

    async fn send_job(&self, _: QueueName, job: &Job) -> Result<(), QueueError> {
        self.jobs.lock().expect("lock").push(job.clone());
        Ok(())
    }

    async fn retry_after(&self, _: QueueName, _: &str, _: i32) -> Result<(), QueueError> {
        Ok(())
    }
}

/// Stores `count` messages of `chats` chats (in `state`), many writes at once.
async fn store_messages(
    store: &Arc<dyn Store>,
    workspace: &str,
    prefix: &str,
    count: usize,
    chats: usize,
    state: MessageState,
) {
    let mut writers = tokio::task::JoinSet::new();
    let limit = Arc::new(tokio::sync::Semaphore::new(32));
    for i in 0..count {
        let store = store.clone();
        let limit = limit.clone();
        let mut stored = message(&format!("{prefix}{i:05}"));
        stored.workspace_id = workspace.into();
        // Other contacts than the one `message` writes as.
        stored.chat_key = format!("170000000000001#4477008{:05}", i % chats);
        stored.timestamp = 1_779_268_500 + i as i64;
        stored.state = state.clone();
        writers.spawn(async move {
            let _permit = limit.acquire().await.expect("semaphore");
            store.insert_message(&stored).await.expect("inserted");
        });
    }
    while let Some(done) = writers.join_next().await {
        done.expect("writer");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_waiting_messages_are_requeued_in_bounded_pages() {
    let system = TestSystem::start().await;
    let queue = Arc::new(KeepingQueue::default());
    let deps = deps_with_queue(&system, queue.clone());
    create_workspace(deps.store.as_ref()).await;
    let waiting = MessageState::Waiting {
        reason: "no CRM connection".into(),
    };
    store_messages(&deps.store, WORKSPACE, "wamid.W", 5_000, 50, waiting).await;
    // Messages of other states are not touched.
    store_messages(
        &deps.store,
        WORKSPACE,
        "wamid.A",
        20,
        5,
        MessageState::Queued,
    )
    .await;

    // Each page is what one job message does in record-sync; its last act
    // is to queue the next page, which the worker then runs.
    let started = std::time::Instant::now();
    let mut job = Some(requeue_job(None));
    let mut pages = 0;
    while let Some(page) = job.take() {
        let requeued = shared::requeue::run_page(&deps, &page)
            .await
            .expect("a page runs");
        assert!(requeued <= shared::requeue::PAGE_SIZE, "a page is bounded");
        pages += 1;
        job = match queue.jobs.lock().expect("lock").pop() {
            Some(Job::Requeue(next)) => Some(next),
            _ => None,
        };
    }
    let elapsed = started.elapsed();
    let sent = queue.sent.lock().expect("lock").clone();
    let mut ids: Vec<&str> = sent.iter().map(|m| m.message_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 5_000, "every waiting message, once");
    assert_eq!(sent.len(), 5_000);
    assert!(ids.iter().all(|id| id.starts_with("wamid.W")));
    // DynamoDB names a next page whenever a page is full, so a last full
    // page is followed by an empty one.
    assert!(
        (50..=51).contains(&pages),
        "5,000 in pages of {}: {pages}",
        shared::requeue::PAGE_SIZE
    );
    // Oldest first.
    assert_eq!(
        sent.first().map(|m| m.message_id.as_str()),
        Some("wamid.W00000")
    );
    assert_eq!(
        sent.last().map(|m| m.message_id.as_str()),
        Some("wamid.W04999")
    );
    assert_eq!(
        state_of(deps.store.as_ref(), "wamid.W04999").await,
        MessageState::Queued
    );
    // A figure for the record, not a pass mark.
    println!(
        "re-queue of 5,000 waiting messages: {pages} pages in {:.1} s against DynamoDB Local",
        elapsed.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_read_costs_the_same_with_ten_thousand_messages_in_other_chats() {
    let system = TestSystem::start().await;
    let store = system.local.deps.store.clone();
    let dynamo = shared::adapters::dynamo::DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&system.local.aws),
        system.local.stack.table_name.clone(),
        system.local.deps.secrets.clone(),
    );
    let chat = "170000000000001#447700900123";
    for i in 0..3 {
        let mut stored = message(&format!("wamid.MINE{i}"));
        stored.timestamp += i;
        store.insert_message(&stored).await.expect("inserted");
    }
    store
        .set_message_state(
            WORKSPACE,
            "wamid.MINE2",
            &MessageState::Waiting {
                reason: "no CRM connection".into(),
            },
            None,
        )
        .await
        .expect("parked");
    let cost = || async {
        let before = dynamo.ledger_read_units();
        let messages = dynamo.chat_messages(WORKSPACE, chat).await.expect("chat");
        let waiting = dynamo
            .waiting_messages(WORKSPACE, None, 100)
            .await
            .expect("waiting");
        let log = dynamo
            .log_entries(WORKSPACE, Some(chat), None, 50, 0)
            .await
            .expect("log");
        (
            dynamo.ledger_read_units() - before,
            messages.len(),
            waiting.items.len(),
            log.len(),
        )
    };
    let small = cost().await;
    assert_eq!((small.1, small.2), (3, 1));

    store_messages(
        &store,
        WORKSPACE,
        "wamid.OTHER",
        10_000,
        200,
        MessageState::Appended {
            note_id: "n".into(),
        },
    )
    .await;
    let large = cost().await;
    assert_eq!((large.1, large.2, large.3), (small.1, small.2, small.3));
    assert_eq!(
        large.0, small.0,
        "read capacity of one chat's ledger, its waiting messages and its log does not grow with the workspace"
    );
    println!(
        "ledger read (chat messages + waiting + chat log): {} RCU with 3 messages, {} RCU with 10,000 more in other chats",
        small.0, large.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_finished_messages_expire() {
    let system = TestSystem::start().await;
    let store = system.local.deps.store.clone();
    let dynamo = aws_sdk_dynamodb::Client::new(&system.local.aws);
    let ttl_of = |id: &'static str| {
        let dynamo = dynamo.clone();
        let table = system.local.stack.table_name.clone();
        async move {
            dynamo
                .get_item()
                .table_name(table)
                .key(
                    "pk",
                    aws_sdk_dynamodb::types::AttributeValue::S(format!("WS#{WORKSPACE}")),
                )
                .key(
                    "sk",
                    aws_sdk_dynamodb::types::AttributeValue::S(format!("MSG#{id}")),
                )
                .send()
                .await
                .expect("get")
                .item
                .expect("stored")
                .get("ttl")
                .cloned()
        }
    };
    store
        .insert_message(&message("wamid.T1"))
        .await
        .expect("inserted");
    assert_eq!(ttl_of("wamid.T1").await, None, "received: never expires");
    for state in [
        MessageState::Waiting {
            reason: "no CRM connection".into(),
        },
        MessageState::Queued,
        MessageState::Retrying {
            reason: "429".into(),
            attempt: 1,
            next_attempt_at: 0,
        },
        MessageState::DeadLettered {
            reason: "500".into(),
        },
    ] {
        store
            .set_message_state(WORKSPACE, "wamid.T1", &state, None)
            .await
            .expect("state");
        assert_eq!(
            ttl_of("wamid.T1").await,
            None,
            "{} never expires",
            state.name()
        );
    }
    let appended = MessageState::Appended {
        note_id: "n".into(),
    };
    // A finished state is written only with its expiry.
    assert!(
        store
            .set_message_state(WORKSPACE, "wamid.T1", &appended, None)
            .await
            .is_err()
    );
    assert_eq!(ttl_of("wamid.T1").await, None);
    store
        .finish_message(WORKSPACE, "wamid.T1", &appended, EXPIRY)
        .await
        .expect("appended");
    assert_eq!(
        ttl_of("wamid.T1").await,
        Some(aws_sdk_dynamodb::types::AttributeValue::N(
            EXPIRY.expires_at.to_string()
        )),
        "appended: expires when it was told to"
    );
    store
        .set_message_state(
            WORKSPACE,
            "wamid.T1",
            &MessageState::Waiting {
                reason: "record deleted".into(),
            },
            None,
        )
        .await
        .expect("waiting again");
    assert_eq!(
        ttl_of("wamid.T1").await,
        None,
        "waiting again: its expiry goes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_upload_start_is_remembered() {
    let system = TestSystem::start().await;
    let store = system.local.deps.store.clone();
    store
        .insert_message(&message("wamid.U1"))
        .await
        .expect("inserted");
    store
        .mark_attachment_started(WORKSPACE, "wamid.U1", 100)
        .await
        .expect("marked");
    store
        .mark_attachment_started(WORKSPACE, "wamid.U1", 200)
        .await
        .expect("marked again");
    let stored = store
        .message(WORKSPACE, "wamid.U1")
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(
        stored.attachment_started_at,
        Some(100),
        "the first start stays"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_larger_than_a_page_is_deleted_in_several_pages() {
    let system = TestSystem::start().await;
    let queue = Arc::new(KeepingQueue::default());
    let mut deps = deps_with_queue(&system, queue.clone());
    // Nothing else runs here: no need to wait for work begun before.
    deps.config.workspace_deletion_settle_secs = 0;
    create_workspace(deps.store.as_ref()).await;
    let finished = MessageState::Appended {
        note_id: "n".into(),
    };
    store_messages(&deps.store, WORKSPACE, "wamid.D", 350, 20, finished.clone()).await;
    store_messages(&deps.store, "another-workspace", "wamid.K", 30, 3, finished).await;

    // Each page is what one job message does in record-sync; its last act
    // is to queue the next page, which the worker then runs.
    let mut job = Some(DeletionJob {
        workspace_id: WORKSPACE.into(),
        job_id: "deletion-1".into(),
        step: DeletionStep::Revoke,
        round: 1,
        pages: 0,
        not_before: 0,
    });
    let mut steps = Vec::new();
    while let Some(page) = job.take() {
        let outcome = shared::deletion::run_page(&deps, &page)
            .await
            .expect("a page runs");
        assert_eq!(outcome, PageOutcome::Ran);
        steps.push(page.step);
        job = match queue.jobs.lock().expect("lock").pop() {
            Some(Job::DeleteWorkspace(next)) => Some(next),
            _ => None,
        };
    }
    let sweeps = steps
        .iter()
        .filter(|step| matches!(step, DeletionStep::Sweep { .. }))
        .count();
    // 350 messages, the owner and the workspace item: 352 items, in pages
    // of a hundred.
    assert_eq!(shared::deletion::PAGE_SIZE, 100);
    assert_eq!(sweeps, 4, "{steps:?}");
    assert_eq!(steps.first(), Some(&DeletionStep::Revoke));
    assert_eq!(steps.last(), Some(&DeletionStep::Verify));
    assert!(system.items_of_workspace(WORKSPACE).await.is_empty());
    assert_eq!(
        system.items_of_workspace("another-workspace").await.len(),
        30,
        "another workspace keeps its items"
    );
    println!(
        "deletion of a workspace of 352 items: {} job pages ({sweeps} of them removing items)",
        steps.len()
    );
}
