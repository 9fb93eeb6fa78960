//! The queue port: the two FIFO queues between the functions.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::QueueError;
use crate::requeue::RequeueJob;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueName {
    /// webhook → record-sync
    Sync,
    /// record-sync → note-append
    Notes,
}

/// What travels on both queues: a pointer to the stored message. The message
/// itself stays in the table, so the queue never carries message text.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MessageRef {
    pub workspace_id: String,
    pub message_id: String,
    pub chat_key: String,
    /// Non-zero when a message is deliberately sent again (e.g. after waiting
    /// for a connection), so that FIFO deduplication does not drop it.
    #[serde(default)]
    pub resend: i64,
}

impl MessageRef {
    /// FIFO group: one chat's messages stay in order and are never processed
    /// concurrently; different chats run in parallel.
    pub fn group_id(&self) -> String {
        crate::crypto::sha256_hex(&format!("{}#{}", self.workspace_id, self.chat_key))
    }

    /// FIFO deduplication id (≤ 128 chars): the WhatsApp message id, hashed.
    pub fn dedup_id(&self) -> String {
        crate::crypto::sha256_hex(&format!(
            "{}#{}#{}",
            self.workspace_id, self.message_id, self.resend
        ))
    }
}

#[async_trait]
pub trait Queue: Send + Sync {
    async fn send(&self, queue: QueueName, message: &MessageRef) -> Result<(), QueueError>;
    /// Sends several messages, in order, in as few requests as the queue allows.
    async fn send_all(&self, queue: QueueName, messages: &[MessageRef]) -> Result<(), QueueError>;
    /// Sends a page of a re-queue job.
    async fn send_job(&self, queue: QueueName, job: &RequeueJob) -> Result<(), QueueError>;
    /// Makes a received message visible again only after `seconds`: how a
    /// worker backs off without sleeping.
    async fn retry_after(
        &self,
        queue: QueueName,
        receipt_handle: &str,
        seconds: i32,
    ) -> Result<(), QueueError>;
}
