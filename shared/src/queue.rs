//! The queue port: the two FIFO queues between the functions.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::deletion::DeletionJob;
use crate::error::QueueError;
use crate::requeue::RequeueJob;
use crate::retention::RetentionJob;

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

/// A page of a workspace's background job, on the sync queue beside the
/// chats' messages; record-sync runs it, and its last act queues the next
/// page.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Job {
    /// Delete the workspace. (The most demanding first: only its body has
    /// all the fields it needs, whatever the `job` tag says.)
    DeleteWorkspace(DeletionJob),
    /// Apply a new retention to the items stored.
    ApplyRetention(RetentionJob),
    /// Queue the messages that waited again.
    Requeue(RequeueJob),
}

impl Job {
    /// A job message's body, if this is one (chat messages are not).
    pub fn from_body(body: &str) -> Option<Self> {
        serde_json::from_str(body).ok()
    }

    pub fn workspace_id(&self) -> &str {
        match self {
            Self::Requeue(job) => &job.workspace_id,
            Self::DeleteWorkspace(job) => &job.workspace_id,
            Self::ApplyRetention(job) => &job.workspace_id,
        }
    }

    /// A workspace's jobs of one kind run one at a time, apart from its
    /// chats and its other jobs.
    pub fn group_id(&self) -> String {
        crate::crypto::sha256_hex(&format!("{}#{}", self.kind(), self.workspace_id()))
    }

    /// Distinct for every page of every job, so none is taken for another's
    /// duplicate.
    pub fn dedup_id(&self) -> String {
        let (job_id, page) = match self {
            Self::Requeue(job) => (&job.job_id, job.after.clone().unwrap_or_default()),
            Self::DeleteWorkspace(job) => (&job.job_id, job.pages.to_string()),
            Self::ApplyRetention(job) => (&job.job_id, job.pages.to_string()),
        };
        crate::crypto::sha256_hex(&format!(
            "{}#{}#{job_id}#{page}",
            self.kind(),
            self.workspace_id()
        ))
    }

    /// The kind, as its message body and logs name it.
    pub fn kind(&self) -> &'static str {
        match self {
            // Apart from the others: it waits (hours) before its first page,
            // and must hold up no re-queue asked for meanwhile.
            Self::Requeue(job) if job.not_before.is_some() => "requeue_later",
            Self::Requeue(_) => "requeue",
            Self::DeleteWorkspace(_) => "delete_workspace",
            Self::ApplyRetention(_) => "apply_retention",
        }
    }
}

#[async_trait]
pub trait Queue: Send + Sync {
    async fn send(&self, queue: QueueName, message: &MessageRef) -> Result<(), QueueError>;
    /// Sends several messages, in order, in as few requests as the queue allows.
    async fn send_all(&self, queue: QueueName, messages: &[MessageRef]) -> Result<(), QueueError>;
    /// Sends a page of a workspace's job.
    async fn send_job(&self, queue: QueueName, job: &Job) -> Result<(), QueueError>;
    /// Makes a received message visible again only after `seconds`: how a
    /// worker backs off without sleeping.
    async fn retry_after(
        &self,
        queue: QueueName,
        receipt_handle: &str,
        seconds: i32,
    ) -> Result<(), QueueError>;
}
