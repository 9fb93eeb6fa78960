//! The queues and Secrets Manager.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{QueueError, SecretsError};
use crate::queue::{Job, MessageRef, Queue, QueueName};
use crate::secrets::SecretSource;
use async_trait::async_trait;

/// Counts what was sent on either queue.
#[derive(Default)]
pub struct MemoryQueue {
    sent: Mutex<Vec<MessageRef>>,
    jobs: AtomicUsize,
}

impl MemoryQueue {
    pub fn sent(&self) -> Vec<MessageRef> {
        self.sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Messages and jobs sent.
    pub fn sends(&self) -> usize {
        self.sent().len() + self.jobs.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl Queue for MemoryQueue {
    async fn send(&self, _queue: QueueName, message: &MessageRef) -> Result<(), QueueError> {
        self.sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(message.clone());
        Ok(())
    }

    async fn send_all(&self, _queue: QueueName, messages: &[MessageRef]) -> Result<(), QueueError> {
        self.sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(messages);
        Ok(())
    }

    async fn send_job(&self, _queue: QueueName, _job: &Job) -> Result<(), QueueError> {
        self.jobs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn retry_after(
        &self,
        _queue: QueueName,
        _receipt_handle: &str,
        _seconds: i32,
    ) -> Result<(), QueueError> {
        Ok(())
    }
}

/// Secrets by id, as Secrets Manager would hold them.
pub struct MemorySecrets(pub BTreeMap<String, String>);

#[async_trait]
impl SecretSource for MemorySecrets {
    async fn secret_string(&self, id: &str) -> Result<String, SecretsError> {
        self.0
            .get(id)
            .cloned()
            .ok_or_else(|| SecretsError::Unavailable {
                id: id.to_owned(),
                reason: "no such secret".into(),
            })
    }
}
