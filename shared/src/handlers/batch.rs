//! The SQS FIFO batch loop shared by the two workers.
//!
//! A batch may mix chats (message groups). A queue message carries one or
//! more of a chat's messages (`queue::read_body`); each group's messages are
//! handed to the worker together, in order. When a message fails, it and
//! every later message of its group in the batch fail, and so every queue
//! message holding one of them is reported failed (`batchItemFailures`),
//! whole: the messages before the failure in it come back with it, and are
//! found done the second time (a note holds the ids it has, a chat links
//! once). So the group's order holds on redelivery, while other groups
//! carry on. Transient failures are
//! retried with back-off by changing the failed messages' visibility instead
//! of sleeping in the function; the failures are handed back so the worker
//! can show them in the message ledger.

use std::future::Future;
use std::time::{Duration, SystemTime};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};

use crate::deps::Deps;
use crate::error::WorkError;
use crate::model::{MessageState, Workspace};
use crate::queue::{MessageRef, Queue, QueueName, read_body};
use crate::synclog::{LogEntryDraft, SyncEvent};

/// One message of a received queue message, read (a queue message may carry
/// several: they share its id, receipt handle and receive count).
#[derive(Debug, Clone)]
pub struct Received {
    pub sqs_message_id: String,
    pub receipt_handle: Option<String>,
    pub receive_count: u32,
    pub reference: MessageRef,
}

/// How far a worker got through a group.
#[derive(Debug)]
pub struct GroupOutcome {
    /// The first `done` messages succeeded.
    pub done: usize,
    /// Why the next one failed, if one did.
    pub error: Option<WorkError>,
}

impl GroupOutcome {
    pub fn all(done: usize) -> Self {
        Self { done, error: None }
    }
}

/// A message that failed and goes back on the queue.
#[derive(Debug, Clone)]
pub struct Failure {
    pub reference: MessageRef,
    pub receive_count: u32,
    pub reason: String,
    /// When the queue delivers it again.
    pub retry_in_secs: i32,
}

/// What a batch came to: the answer for the event source, and the failures.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    pub response: SqsBatchResponse,
    pub failures: Vec<Failure>,
}

/// How failed messages come back.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// First back-off; each further receive doubles it.
    pub backoff_base_secs: i32,
    /// The queue's `maxReceiveCount`: after that many receives a failure is
    /// the last one, and the queue moves the message to its DLQ.
    pub max_receive_count: u32,
}

impl RetryPolicy {
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            backoff_base_secs: config.retry_backoff_base_secs,
            max_receive_count: config.max_receive_count,
        }
    }

    /// Whether a failure at this receive is the message's last.
    pub fn is_last_attempt(&self, receive_count: u32) -> bool {
        receive_count >= self.max_receive_count
    }

    /// When to try again: back-off for a message received `receive_count`
    /// times (base, 2×, 4× … capped at 15 minutes), or at once after its last
    /// attempt, so the queue dead-letters it on the next receive instead of
    /// holding its chat's FIFO group (and any replay) behind it.
    pub fn retry_in_secs(&self, receive_count: u32) -> i32 {
        if self.is_last_attempt(receive_count) {
            return 0;
        }
        let exponent = receive_count.saturating_sub(1).min(10);
        (self.backoff_base_secs.max(1) << exponent).min(900)
    }
}

/// Groups are not started closer than this to the invocation's deadline.
/// A group started runs in the invocation's time budget (`budget`): each of
/// its calls gets only the time left, so it ends, failed or not, before the
/// deadline and the batch response is always sent.
const GROUP_TIME_BUDGET: Duration = Duration::from_secs(10);

pub async fn run_fifo_batch<F, Fut>(
    queue_port: &dyn Queue,
    queue: QueueName,
    retry: RetryPolicy,
    deadline: Option<SystemTime>,
    event: SqsEvent,
    mut work: F,
) -> BatchOutcome
where
    F: FnMut(Vec<Received>) -> Fut,
    Fut: Future<Output = GroupOutcome>,
{
    let mut failures: Vec<String> = Vec::new();
    let mut failed_messages: Vec<Failure> = Vec::new();
    // Groups in order of first appearance, each in batch order.
    let mut groups: Vec<(String, Vec<SqsMessage>)> = Vec::new();
    for record in event.records {
        let group = record
            .attributes
            .get("MessageGroupId")
            .cloned()
            .unwrap_or_default();
        match groups.iter_mut().find(|(g, _)| *g == group) {
            Some((_, members)) => members.push(record),
            None => groups.push((group, vec![record])),
        }
    }
    for (group, records) in groups {
        let out_of_time = deadline.is_some_and(|d| SystemTime::now() + GROUP_TIME_BUDGET > d);
        if out_of_time {
            // Not started: handed back for redelivery as they are.
            tracing::warn!(
                group,
                "invocation ends soon; leaving the group for redelivery"
            );
            failed_messages.extend(handed_back_for_the_last_time(
                &records,
                retry,
                "not started: the invocation ended first",
            ));
            failures.extend(
                records
                    .into_iter()
                    .map(|r| r.message_id.unwrap_or_default()),
            );
            continue;
        }
        let mut readable = Vec::new();
        let mut rest = records.into_iter();
        // A message we cannot read fails, and so does the rest of its group.
        for record in rest.by_ref() {
            match read(&record) {
                Ok(received) => readable.extend(received),
                Err(e) => {
                    tracing::error!(group, error = %e, "queue message is not readable");
                    failures.push(record.message_id.unwrap_or_default());
                    break;
                }
            }
        }
        let rest: Vec<SqsMessage> = rest.collect();
        failed_messages.extend(handed_back_for_the_last_time(
            &rest,
            retry,
            "not started: an earlier message of its chat is not readable",
        ));
        failures.extend(rest.into_iter().map(|r| r.message_id.unwrap_or_default()));
        if readable.is_empty() {
            continue;
        }
        // Every call the group makes stops in time for the response.
        let outcome = crate::budget::within(deadline, work(readable.clone())).await;
        let failed = &readable[outcome.done.min(readable.len())..];
        if let Some(error) = &outcome.error {
            let transient = error.is_transient();
            tracing::warn!(
                workspace_id = %readable[0].reference.workspace_id,
                failed = failed.len(),
                transient,
                error = %error,
                "messages will be retried"
            );
            // Every failure backs off, so the ledger can say when the next
            // attempt is; permanent ones reach the DLQ after maxReceiveCount.
            let mut delayed: Vec<&str> = Vec::new();
            for message in failed {
                let delay = retry.retry_in_secs(message.receive_count);
                // Once per queue message, however many of its messages failed.
                if let Some(handle) = &message.receipt_handle
                    && !delayed.contains(&handle.as_str())
                {
                    delayed.push(handle);
                    if let Err(e) = queue_port.retry_after(queue, handle, delay).await {
                        tracing::warn!(error = %e, "could not set the retry delay");
                    }
                }
                failed_messages.push(Failure {
                    reference: message.reference.clone(),
                    receive_count: message.receive_count,
                    reason: error.to_string(),
                    retry_in_secs: delay,
                });
            }
        }
        for message in failed {
            if !failures.contains(&message.sqs_message_id) {
                failures.push(message.sqs_message_id.clone());
            }
        }
    }
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures
        .into_iter()
        .map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        })
        .collect();
    BatchOutcome {
        response,
        failures: failed_messages,
    }
}

/// The workspace of a group's messages (one chat's: one workspace), to
/// work for; or, instead, the group's outcome: all done (dropped, logged)
/// when the workspace is being deleted or gone — it gets no more work and
/// nothing written —, or failed when it could not be read.
pub async fn live_workspace(deps: &Deps, group: &[Received]) -> Result<Workspace, GroupOutcome> {
    let Some(first) = group.first() else {
        return Err(GroupOutcome::all(0));
    };
    let workspace_id = &first.reference.workspace_id;
    match deps.store.workspace(workspace_id).await {
        Ok(Some(workspace)) if workspace.accepts_work() => Ok(workspace),
        Ok(_) => {
            tracing::info!(
                %workspace_id,
                dropped = group.len(),
                "the workspace is deleted or being deleted: its messages are dropped"
            );
            Err(GroupOutcome::all(group.len()))
        }
        Err(error) => Err(GroupOutcome {
            done: 0,
            error: Some(error.into()),
        }),
    }
}

/// Shows failures in the message ledger and the sync log: `retrying` with
/// the next attempt, or `dead_lettered` on the last attempt the queue allows.
pub async fn record_failures(deps: &Deps, failures: &[Failure]) {
    let now = deps.clock.now();
    for failure in failures {
        let r = &failure.reference;
        let last_attempt =
            RetryPolicy::from_config(&deps.config).is_last_attempt(failure.receive_count);
        let (state, event) = if last_attempt {
            (
                MessageState::DeadLettered {
                    reason: failure.reason.clone(),
                },
                SyncEvent::DeadLettered,
            )
        } else {
            (
                MessageState::Retrying {
                    reason: failure.reason.clone(),
                    attempt: failure.receive_count,
                    next_attempt_at: now + i64::from(failure.retry_in_secs),
                },
                SyncEvent::Retrying,
            )
        };
        // Only a message still in flight: a parked or appended one is not
        // failing, whatever a later message of its group did.
        let changed = deps
            .store
            .set_message_state(
                &r.workspace_id,
                &r.message_id,
                &state,
                Some(&["received", "queued", "retrying"]),
            )
            .await;
        match changed {
            Ok(true) => {
                crate::synclog::write(
                    deps.store.as_ref(),
                    now,
                    LogEntryDraft {
                        workspace_id: &r.workspace_id,
                        event,
                        chat_key: Some(&r.chat_key),
                        message_id: Some(&r.message_id),
                        detail: serde_json::to_value(&state).unwrap_or_default(),
                    },
                )
                .await;
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(workspace_id = %r.workspace_id, message_id = %r.message_id, error = %e, "could not record a failure in the ledger");
            }
        }
    }
}

/// The messages of queue messages handed back unstarted that the queue will
/// dead-letter rather than deliver again (their last receive): failures, so
/// the ledger says so. The others come back as they are, with no entry.
fn handed_back_for_the_last_time(
    records: &[SqsMessage],
    retry: RetryPolicy,
    reason: &str,
) -> Vec<Failure> {
    records
        .iter()
        .filter_map(|record| read(record).ok())
        .flatten()
        .filter(|message| retry.is_last_attempt(message.receive_count))
        .map(|message| Failure {
            reference: message.reference,
            receive_count: message.receive_count,
            reason: reason.to_owned(),
            retry_in_secs: 0,
        })
        .collect()
}

/// The messages a queue message carries, in order.
fn read(record: &SqsMessage) -> Result<Vec<Received>, WorkError> {
    let body = record
        .body
        .as_deref()
        .ok_or_else(|| WorkError::BadQueueMessage("no body".into()))?;
    let references = read_body(body).map_err(|e| WorkError::BadQueueMessage(e.to_string()))?;
    let receive_count = record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|c| c.parse().ok())
        .unwrap_or(1);
    Ok(references
        .into_iter()
        .map(|reference| Received {
            sqs_message_id: record.message_id.clone().unwrap_or_default(),
            receipt_handle: record.receipt_handle.clone(),
            receive_count,
            reference,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::error::QueueError;

    #[derive(Default)]
    struct RecordingQueue {
        delays: Mutex<Vec<(String, i32)>>,
    }

    #[async_trait]
    impl Queue for RecordingQueue {
        async fn send(&self, _: QueueName, _: &MessageRef) -> Result<(), QueueError> {
            Ok(())
        }
        async fn send_all(&self, _: QueueName, _: &[MessageRef]) -> Result<(), QueueError> {
            Ok(())
        }
        async fn send_job(&self, _: QueueName, _: &crate::queue::Job) -> Result<(), QueueError> {
            Ok(())
        }
        async fn retry_after(
            &self,
            _: QueueName,
            handle: &str,
            seconds: i32,
        ) -> Result<(), QueueError> {
            self.delays
                .lock()
                .expect("not poisoned")
                .push((handle.to_owned(), seconds));
            Ok(())
        }
    }

    fn record(id: &str, group: &str, message_id: &str, receives: u32) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.to_owned());
        m.receipt_handle = Some(format!("rh-{id}"));
        m.body = Some(
            serde_json::json!({ "workspace_id": "ws", "message_id": message_id, "chat_key": group })
                .to_string(),
        );
        m.attributes.insert("MessageGroupId".into(), group.into());
        m.attributes
            .insert("ApproximateReceiveCount".into(), receives.to_string());
        m
    }

    const POLICY: RetryPolicy = RetryPolicy {
        backoff_base_secs: 10,
        max_receive_count: 5,
    };

    fn failed_ids(response: &SqsBatchResponse) -> Vec<String> {
        response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect()
    }

    #[tokio::test]
    async fn a_failure_fails_the_rest_of_its_group_only_and_backs_off() {
        let mut event = SqsEvent::default();
        event.records = vec![
            record("1", "chat-a", "a1", 1),
            record("2", "chat-b", "b1", 1),
            record("3", "chat-a", "a2", 3),
            record("4", "chat-a", "a3", 1),
            record("5", "chat-b", "b2", 1),
        ];
        let queue = RecordingQueue::default();
        let mut seen_groups = Vec::new();
        let response = run_fifo_batch(&queue, QueueName::Sync, POLICY, None, event, |group| {
            let ids: Vec<String> = group
                .iter()
                .map(|m| m.reference.message_id.clone())
                .collect();
            seen_groups.push(ids.clone());
            async move {
                if ids[0] == "a1" {
                    // a1 done, a2 fails transiently: a2 and a3 must be retried.
                    GroupOutcome {
                        done: 1,
                        error: Some(WorkError::Contended("busy".into())),
                    }
                } else {
                    GroupOutcome::all(ids.len())
                }
            }
        })
        .await;
        assert_eq!(seen_groups, [vec!["a1", "a2", "a3"], vec!["b1", "b2"]]);
        assert_eq!(failed_ids(&response.response), ["3", "4"]);
        let failed: Vec<(&str, u32, i32)> = response
            .failures
            .iter()
            .map(|f| {
                (
                    f.reference.message_id.as_str(),
                    f.receive_count,
                    f.retry_in_secs,
                )
            })
            .collect();
        assert_eq!(failed, [("a2", 3, 40), ("a3", 1, 10)]);
        // Received three times → 10 s × 2² = 40 s; once → 10 s.
        assert_eq!(
            *queue.delays.lock().expect("not poisoned"),
            [("rh-3".to_owned(), 40), ("rh-4".to_owned(), 10)]
        );
    }

    #[tokio::test]
    async fn an_unreadable_message_fails_with_the_rest_of_its_group_without_back_off() {
        let mut event = SqsEvent::default();
        let mut broken = record("1", "chat-a", "a1", 1);
        broken.body = Some("not json".into());
        event.records = vec![
            broken,
            record("2", "chat-a", "a2", 1),
            record("3", "chat-b", "b1", 1),
        ];
        let queue = RecordingQueue::default();
        let response = run_fifo_batch(
            &queue,
            QueueName::Notes,
            POLICY,
            None,
            event,
            |group| async move { GroupOutcome::all(group.len()) },
        )
        .await;
        assert_eq!(failed_ids(&response.response), ["1", "2"]);
        assert!(queue.delays.lock().expect("not poisoned").is_empty());
        assert!(
            response.failures.is_empty(),
            "unreadable messages have no ledger entry"
        );
    }

    #[tokio::test]
    async fn groups_are_not_started_when_the_invocation_is_about_to_end() {
        let mut event = SqsEvent::default();
        event.records = vec![
            record("1", "chat-a", "a1", 1),
            record("2", "chat-b", "b1", 1),
        ];
        let queue = RecordingQueue::default();
        let soon = SystemTime::now() + Duration::from_secs(2);
        let mut calls = 0;
        let response = run_fifo_batch(
            &queue,
            QueueName::Sync,
            POLICY,
            Some(soon),
            event,
            |group| {
                calls += 1;
                async move { GroupOutcome::all(group.len()) }
            },
        )
        .await;
        assert_eq!(calls, 0);
        assert_eq!(failed_ids(&response.response), ["1", "2"]);
        assert!(response.failures.is_empty(), "both come back: no entry");
    }

    #[tokio::test]
    async fn a_message_handed_back_unstarted_on_its_last_receive_is_in_the_ledger() {
        let mut event = SqsEvent::default();
        let mut broken = record("1", "chat-a", "a1", 1);
        broken.body = Some("not json".into());
        event.records = vec![
            broken,
            record("2", "chat-a", "a2", 5),
            record("3", "chat-b", "b1", 5),
            record("4", "chat-b", "b2", 4),
        ];
        let queue = RecordingQueue::default();
        let event_of = |records: &[SqsMessage]| {
            let mut event = SqsEvent::default();
            event.records = records.to_vec();
            event
        };
        let ledger = |outcome: &BatchOutcome| -> Vec<(String, u32)> {
            outcome
                .failures
                .iter()
                .map(|f| (f.reference.message_id.clone(), f.receive_count))
                .collect()
        };
        // After an unreadable message of its chat: a2, fifth of five.
        let outcome = run_fifo_batch(
            &queue,
            QueueName::Sync,
            POLICY,
            None,
            event_of(&event.records[..2]),
            |group| async move { GroupOutcome::all(group.len()) },
        )
        .await;
        assert_eq!(failed_ids(&outcome.response), ["1", "2"]);
        assert_eq!(ledger(&outcome), [("a2".to_owned(), 5)]);
        // The invocation ends before chat b starts: b1 (fifth of five) is
        // dead-lettered next, b2 (fourth) comes back.
        let soon = SystemTime::now() + Duration::from_secs(2);
        let outcome = run_fifo_batch(
            &queue,
            QueueName::Sync,
            POLICY,
            Some(soon),
            event_of(&event.records[2..]),
            |group| async move { GroupOutcome::all(group.len()) },
        )
        .await;
        assert_eq!(failed_ids(&outcome.response), ["3", "4"]);
        assert_eq!(ledger(&outcome), [("b1".to_owned(), 5)]);
        assert!(
            queue.delays.lock().expect("not poisoned").is_empty(),
            "handed back as they are"
        );
    }

    /// A queue message carrying several of a chat's messages.
    fn chat_record(id: &str, group: &str, message_ids: &[&str], receives: u32) -> SqsMessage {
        let mut m = record(id, group, "", receives);
        m.body = Some(
            serde_json::json!({ "workspace_id": "ws", "chat_key": group, "message_ids": message_ids })
                .to_string(),
        );
        m
    }

    #[tokio::test]
    async fn a_chats_messages_reach_the_worker_together_whether_sent_together_or_one_by_one() {
        let mut event = SqsEvent::default();
        event.records = vec![
            // Written before messages were sent together: still read.
            record("1", "chat-a", "a1", 1),
            chat_record("2", "chat-a", &["a2", "a3", "a4"], 1),
            chat_record("3", "chat-b", &["b1", "b2"], 1),
        ];
        let queue = RecordingQueue::default();
        let mut seen = Vec::new();
        let response = run_fifo_batch(&queue, QueueName::Notes, POLICY, None, event, |group| {
            seen.push(
                group
                    .iter()
                    .map(|m| (m.sqs_message_id.clone(), m.reference.message_id.clone()))
                    .collect::<Vec<_>>(),
            );
            async move { GroupOutcome::all(group.len()) }
        })
        .await;
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect()
        };
        assert_eq!(
            seen,
            [
                pairs(&[("1", "a1"), ("2", "a2"), ("2", "a3"), ("2", "a4")]),
                pairs(&[("3", "b1"), ("3", "b2")])
            ]
        );
        assert!(failed_ids(&response.response).is_empty());
    }

    #[tokio::test]
    async fn a_failure_inside_a_queue_message_hands_it_back_whole_and_once() {
        let mut event = SqsEvent::default();
        event.records = vec![
            chat_record("1", "chat-a", &["a1", "a2", "a3"], 2),
            chat_record("2", "chat-a", &["a4"], 1),
            chat_record("3", "chat-b", &["b1", "b2"], 1),
        ];
        let queue = RecordingQueue::default();
        let response = run_fifo_batch(&queue, QueueName::Sync, POLICY, None, event, |group| {
            let chat_a = group[0].reference.chat_key == "chat-a";
            async move {
                if chat_a {
                    // a1 done, a2 fails: a2, a3 and a4 are retried.
                    GroupOutcome {
                        done: 1,
                        error: Some(WorkError::Contended("busy".into())),
                    }
                } else {
                    GroupOutcome::all(group.len())
                }
            }
        })
        .await;
        // The queue message of a1..a3 comes back whole (a1 is found done
        // then), and the one after it in the chat; chat b's does not.
        assert_eq!(failed_ids(&response.response), ["1", "2"]);
        let ledger: Vec<&str> = response
            .failures
            .iter()
            .map(|f| f.reference.message_id.as_str())
            .collect();
        assert_eq!(ledger, ["a2", "a3", "a4"], "a1 is done, not retrying");
        // One back-off per queue message: received twice → 20 s, once → 10 s.
        assert_eq!(
            *queue.delays.lock().expect("not poisoned"),
            [("rh-1".to_owned(), 20), ("rh-2".to_owned(), 10)]
        );
    }

    #[test]
    fn backoff_doubles_and_is_capped_and_the_last_attempt_comes_back_at_once() {
        let retry = |base, max| RetryPolicy {
            backoff_base_secs: base,
            max_receive_count: max,
        };
        assert_eq!(retry(10, 100).retry_in_secs(1), 10);
        assert_eq!(retry(10, 100).retry_in_secs(2), 20);
        assert_eq!(retry(10, 100).retry_in_secs(4), 80);
        assert_eq!(retry(10, 100).retry_in_secs(50), 900);
        assert_eq!(retry(1, 5).retry_in_secs(3), 4);
        assert_eq!(retry(1, 5).retry_in_secs(4), 8);
        assert_eq!(retry(1, 5).retry_in_secs(5), 0, "the fifth of five");
        assert!(retry(1, 5).is_last_attempt(5));
        assert!(!retry(1, 5).is_last_attempt(4));
    }
}
