//! Errors shared by handlers: what went wrong, and whether trying again later
//! can help.

use crate::crm::CrmError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("DynamoDB request failed: {0}")]
    Request(String),
    #[error("stored item is not readable: {0}")]
    Corrupt(String),
    /// A write the store does not make as asked (a caller's mistake).
    #[error("the store refused the write: {0}")]
    Refused(&'static str),
}

#[derive(Debug, thiserror::Error)]
#[error("SQS request failed: {0}")]
pub struct QueueError(pub String);

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("secret {id} could not be read: {reason}")]
    Unavailable { id: String, reason: String },
    #[error("secret {id} does not hold the expected JSON: {reason}")]
    Malformed { id: String, reason: String },
    /// The function was not given this secret (its template environment).
    #[error("this function has no such secret: {0}")]
    NotConfigured(crate::config::MissingVar),
}

/// The failure of one unit of work of a worker.
#[derive(Debug, thiserror::Error)]
pub enum WorkError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Crm(#[from] CrmError),
    #[error("WhatsApp media: {0}")]
    Media(#[from] crate::media::MediaError),
    /// An app secret (keys, a CRM's OAuth client) could not be had.
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    /// Another worker holds what this one needs; trying again soon works.
    #[error("busy elsewhere: {0}")]
    Contended(String),
    /// The workspace has no organization connection (any more).
    #[error("the workspace has no CRM connection")]
    NotConnected,
    /// The workspace's sync settings are not activated (yet, or any more).
    #[error("sync settings are not active")]
    NotActive,
    /// WhatsApp media cannot be fetched: the number has no access token, or
    /// WhatsApp refuses it. A person must register one.
    #[error("no usable WhatsApp access token: {0}")]
    NoMediaAccess(String),
    /// The chat has no record (any more): record-sync must link it first.
    #[error("the chat has no CRM record yet")]
    Unlinked,
    #[error("queue message is not readable: {0}")]
    BadQueueMessage(String),
    #[error("stored state is inconsistent: {0}")]
    Inconsistent(String),
}

impl WorkError {
    /// Whether a later attempt may succeed without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Store(_) | Self::Queue(_) | Self::Contended(_) | Self::Unlinked => true,
            // Secrets Manager failing to answer passes; a missing or malformed
            // secret is put right by an operator without the work changing,
            // so the work waits for that too rather than being dropped.
            Self::Secrets(_) => true,
            Self::Crm(e) => e.is_transient(),
            Self::Media(e) => e.is_transient(),
            Self::NotConnected
            | Self::NotActive
            | Self::NoMediaAccess(_)
            | Self::BadQueueMessage(_)
            | Self::Inconsistent(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_that_cannot_be_had_leaves_the_work_to_retry() {
        let unavailable = SecretsError::Unavailable {
            id: "app-key".into(),
            reason: "timed out".into(),
        };
        let malformed = SecretsError::Malformed {
            id: "zoho-client".into(),
            reason: "missing field `client_id`".into(),
        };
        for failure in [unavailable, malformed] {
            let work: WorkError = failure.into();
            assert!(matches!(work, WorkError::Secrets(_)));
            assert!(work.is_transient(), "{work}");
        }
    }
}
