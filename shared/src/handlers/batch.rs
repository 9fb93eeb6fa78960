//! The SQS FIFO batch loop shared by the two workers.
//!
//! A batch may mix chats (message groups). Each group is handed to the worker
//! in order; when a message fails, it and every later message of its group in
//! the batch are reported failed (`batchItemFailures`), so the group's order
//! holds on redelivery, while other groups carry on. Transient failures are
//! retried with back-off by changing the failed messages' visibility instead
//! of sleeping in the function.

use std::future::Future;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};

use crate::deps::Deps;
use crate::error::WorkError;
use crate::queue::{MessageRef, QueueName};

/// One received queue message, read.
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

/// Back-off for a message received `receive_count` times: 10 s, 20 s, 40 s …
/// capped at 15 minutes.
pub fn backoff_secs(receive_count: u32) -> i32 {
    let exponent = receive_count.saturating_sub(1).min(10);
    (10_i32 << exponent).min(900)
}

pub async fn run_fifo_batch<F, Fut>(
    deps: &Deps,
    queue: QueueName,
    event: SqsEvent,
    mut work: F,
) -> SqsBatchResponse
where
    F: FnMut(Vec<Received>) -> Fut,
    Fut: Future<Output = GroupOutcome>,
{
    let mut failures: Vec<String> = Vec::new();
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
        let mut readable = Vec::new();
        let mut rest = records.into_iter();
        // A message we cannot read fails, and so does the rest of its group.
        for record in rest.by_ref() {
            match read(&record) {
                Ok(received) => readable.push(received),
                Err(e) => {
                    tracing::error!(group, error = %e, "queue message is not readable");
                    failures.push(record.message_id.unwrap_or_default());
                    break;
                }
            }
        }
        failures.extend(rest.map(|r| r.message_id.unwrap_or_default()));
        if readable.is_empty() {
            continue;
        }
        let outcome = work(readable.clone()).await;
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
            if transient {
                for message in failed {
                    let Some(handle) = &message.receipt_handle else {
                        continue;
                    };
                    let delay = backoff_secs(message.receive_count);
                    if let Err(e) = deps.queue.retry_after(queue, handle, delay).await {
                        tracing::warn!(error = %e, "could not set the retry delay");
                    }
                }
            }
        }
        failures.extend(failed.iter().map(|m| m.sqs_message_id.clone()));
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
    response
}

fn read(record: &SqsMessage) -> Result<Received, WorkError> {
    let body = record
        .body
        .as_deref()
        .ok_or_else(|| WorkError::BadQueueMessage("no body".into()))?;
    let reference: MessageRef =
        serde_json::from_str(body).map_err(|e| WorkError::BadQueueMessage(e.to_string()))?;
    Ok(Received {
        sqs_message_id: record.message_id.clone().unwrap_or_default(),
        receipt_handle: record.receipt_handle.clone(),
        receive_count: record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|c| c.parse().ok())
            .unwrap_or(1),
        reference,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff_secs(1), 10);
        assert_eq!(backoff_secs(2), 20);
        assert_eq!(backoff_secs(4), 80);
        assert_eq!(backoff_secs(50), 900);
    }
}
