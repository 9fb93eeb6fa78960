//! The queue port on SQS FIFO queues.

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

use crate::error::QueueError;
use crate::queue::{Job, MessageRef, Outgoing, Queue, QueueName, coalesce, send_batches};

#[derive(Clone)]
pub struct SqsQueue {
    client: Client,
    sync_url: Option<String>,
    notes_url: Option<String>,
}

impl SqsQueue {
    /// A queue the function was not given (its template environment) is
    /// refused where it is used.
    pub fn new(client: Client, sync_url: Option<String>, notes_url: Option<String>) -> Self {
        Self {
            client,
            sync_url,
            notes_url,
        }
    }

    fn url(&self, queue: QueueName) -> Result<&str, QueueError> {
        let (url, variable) = match queue {
            QueueName::Sync => (&self.sync_url, "SYNC_QUEUE_URL"),
            QueueName::Notes => (&self.notes_url, "NOTES_QUEUE_URL"),
        };
        url.as_deref()
            .ok_or_else(|| QueueError(format!("{variable} is not set for this function")))
    }
}

impl SqsQueue {
    async fn send_one(
        &self,
        queue: QueueName,
        group_id: String,
        dedup_id: String,
        body: String,
    ) -> Result<(), QueueError> {
        self.client
            .send_message()
            .queue_url(self.url(queue)?)
            .message_group_id(group_id)
            .message_deduplication_id(dedup_id)
            .message_body(body)
            .send()
            .await
            .map_err(|e| QueueError(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))?;
        Ok(())
    }
}

fn queue_error(e: impl std::error::Error) -> QueueError {
    QueueError(e.to_string())
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send(&self, queue: QueueName, message: &MessageRef) -> Result<(), QueueError> {
        self.send_all(queue, std::slice::from_ref(message)).await
    }

    async fn send_job(&self, queue: QueueName, job: &Job) -> Result<(), QueueError> {
        let body = serde_json::to_string(job).map_err(queue_error)?;
        self.send_one(queue, job.group_id(), job.dedup_id(), body)
            .await
    }

    async fn send_all(&self, queue: QueueName, messages: &[MessageRef]) -> Result<(), QueueError> {
        let outgoing = coalesce(messages)
            .iter()
            .map(Outgoing::of)
            .collect::<Result<Vec<_>, _>>()
            .map_err(queue_error)?;
        if let [one] = outgoing.as_slice() {
            return self
                .send_one(
                    queue,
                    one.group_id.clone(),
                    one.dedup_id.clone(),
                    one.body.clone(),
                )
                .await;
        }
        // FIFO keeps the entries' order within a group, request after request.
        for batch in send_batches(&outgoing) {
            let mut entries = Vec::with_capacity(batch.len());
            for (i, message) in batch.iter().enumerate() {
                entries.push(
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_group_id(&message.group_id)
                        .message_deduplication_id(&message.dedup_id)
                        .message_body(&message.body)
                        .build()
                        .map_err(queue_error)?,
                );
            }
            let out = self
                .client
                .send_message_batch()
                .queue_url(self.url(queue)?)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| QueueError(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))?;
            if let Some(failed) = out.failed.first() {
                return Err(QueueError(format!(
                    "batch entry {} was refused: {}",
                    failed.id,
                    failed.message.as_deref().unwrap_or(&failed.code)
                )));
            }
        }
        Ok(())
    }

    async fn retry_after(
        &self,
        queue: QueueName,
        receipt_handle: &str,
        seconds: i32,
    ) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(self.url(queue)?)
            .receipt_handle(receipt_handle)
            .visibility_timeout(seconds)
            .send()
            .await
            .map_err(|e| QueueError(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))?;
        Ok(())
    }
}
