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

/// One message of a chat, as the functions pass it on: a pointer to the
/// stored message. The message itself stays in the table, so the queue
/// never carries message text. On the queues, a chat's messages sent
/// together travel as one [`ChatMessages`] body.
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

/// FIFO group: one chat's messages stay in order and are never processed
/// concurrently; different chats run in parallel.
fn group_id(workspace_id: &str, chat_key: &str) -> String {
    crate::crypto::sha256_hex(&format!("{workspace_id}#{chat_key}"))
}

/// Most message ids in one queue message. More than a delivery holds for
/// one chat in practice, and small enough that a worker's batch (ten queue
/// messages, maybe all one chat's: 500 messages) fits in one invocation:
/// a worker finishes a queue message or hands it back whole, so a body too
/// big to finish would come back until it is dead-lettered.
pub const MAX_IDS_PER_MESSAGE: usize = 50;

/// Largest body we write: a quarter of SQS's 256 KiB, so any four fit the
/// 256 KiB a whole `SendMessageBatch` may carry.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What SQS takes in one `SendMessageBatch`: ten entries, 256 KiB of bodies.
const MAX_BATCH_ENTRIES: usize = 10;
const MAX_BATCH_BYTES: usize = 256 * 1024;

/// The body of a queue message: messages of one chat, in order, sent
/// together (one webhook delivery's, one record-sync batch's, one re-queue
/// page's), so that the queue cannot split them across worker batches and
/// note-append writes them in one note update.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChatMessages {
    pub workspace_id: String,
    pub chat_key: String,
    pub message_ids: Vec<String>,
    /// The highest of its messages' markers (see [`MessageRef::resend`]).
    #[serde(default)]
    pub resend: i64,
}

impl ChatMessages {
    pub fn group_id(&self) -> String {
        group_id(&self.workspace_id, &self.chat_key)
    }

    /// FIFO deduplication id (≤ 128 chars): the message ids, hashed. The
    /// same messages sent again within SQS's five minutes (a webhook
    /// delivered twice before it was marked queued) are dropped by the
    /// queue; one message's id is what a single-message body had, so a copy
    /// sent across a deploy is still recognised.
    pub fn dedup_id(&self) -> String {
        crate::crypto::sha256_hex(&format!(
            "{}#{}#{}",
            self.workspace_id,
            self.message_ids.join(","),
            self.resend
        ))
    }

    /// Its messages, one by one, in order.
    pub fn references(&self) -> Vec<MessageRef> {
        self.message_ids
            .iter()
            .map(|message_id| MessageRef {
                workspace_id: self.workspace_id.clone(),
                message_id: message_id.clone(),
                chat_key: self.chat_key.clone(),
                resend: self.resend,
            })
            .collect()
    }
}

/// Why a queue message's body cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("not a chat's messages: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("names no message (neither `message_ids` nor `message_id`)")]
    NoMessages,
}

/// Both forms a body has had: `message_ids` (now), or the single
/// `message_id` written before messages were sent together (still read:
/// messages on the queues across a deploy must go through).
#[derive(Deserialize)]
struct AnyBody {
    workspace_id: String,
    chat_key: String,
    #[serde(default)]
    message_ids: Vec<String>,
    #[serde(default)]
    message_id: Option<String>,
    #[serde(default)]
    resend: i64,
}

/// The messages a queue message carries, in order.
pub fn read_body(body: &str) -> Result<Vec<MessageRef>, BodyError> {
    let any: AnyBody = serde_json::from_str(body)?;
    let mut ids = any.message_ids;
    ids.extend(any.message_id);
    if ids.is_empty() {
        return Err(BodyError::NoMessages);
    }
    Ok(ChatMessages {
        workspace_id: any.workspace_id,
        chat_key: any.chat_key,
        message_ids: ids,
        resend: any.resend,
    }
    .references())
}

/// The queue messages for `messages`: one per chat (in order of each
/// chat's first message; FIFO keeps order only within a chat anyway), its
/// messages in the order given, an id given twice once; cut only when a
/// chat has more than [`MAX_IDS_PER_MESSAGE`] or [`MAX_BODY_BYTES`].
pub fn coalesce(messages: &[MessageRef]) -> Vec<ChatMessages> {
    let mut chats: Vec<ChatMessages> = Vec::new();
    for message in messages {
        let index = match chats
            .iter()
            .position(|c| c.workspace_id == message.workspace_id && c.chat_key == message.chat_key)
        {
            Some(index) => index,
            None => {
                chats.push(ChatMessages {
                    workspace_id: message.workspace_id.clone(),
                    chat_key: message.chat_key.clone(),
                    message_ids: Vec::new(),
                    resend: 0,
                });
                chats.len() - 1
            }
        };
        let chat = &mut chats[index];
        if !chat.message_ids.contains(&message.message_id) {
            chat.message_ids.push(message.message_id.clone());
        }
        chat.resend = chat.resend.max(message.resend);
    }
    chats.into_iter().flat_map(cut).collect()
}

/// A chat's messages cut into bodies within the limits (each keeps at
/// least one id, whatever its length).
fn cut(chat: ChatMessages) -> Vec<ChatMessages> {
    let empty = ChatMessages {
        message_ids: Vec::new(),
        ..chat.clone()
    };
    let overhead = serde_json::to_string(&empty).map_or(0, |s| s.len());
    let mut bodies = Vec::new();
    let mut current = empty.clone();
    let mut size = overhead;
    for id in chat.message_ids {
        // Quoted and escaped as JSON, and a comma.
        let id_size = serde_json::to_string(&id).map_or(id.len(), |s| s.len()) + 1;
        if !current.message_ids.is_empty()
            && (current.message_ids.len() == MAX_IDS_PER_MESSAGE || size + id_size > MAX_BODY_BYTES)
        {
            bodies.push(std::mem::replace(&mut current, empty.clone()));
            size = overhead;
        }
        current.message_ids.push(id);
        size += id_size;
    }
    if !current.message_ids.is_empty() {
        bodies.push(current);
    }
    bodies
}

/// One queue message ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub group_id: String,
    pub dedup_id: String,
    pub body: String,
}

impl Outgoing {
    pub fn of(chat: &ChatMessages) -> Result<Self, serde_json::Error> {
        Ok(Self {
            group_id: chat.group_id(),
            dedup_id: chat.dedup_id(),
            body: serde_json::to_string(chat)?,
        })
    }
}

/// `messages` cut into `SendMessageBatch` requests, in order: at most ten
/// entries and 256 KiB of bodies each.
pub fn send_batches(messages: &[Outgoing]) -> Vec<&[Outgoing]> {
    let mut batches = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, message) in messages.iter().enumerate() {
        if i > start
            && (i - start == MAX_BATCH_ENTRIES || bytes + message.body.len() > MAX_BATCH_BYTES)
        {
            batches.push(&messages[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += message.body.len();
    }
    if start < messages.len() {
        batches.push(&messages[start..]);
    }
    batches
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
    /// Sends several messages, each chat's in order, as one queue message
    /// per chat ([`coalesce`]): what is sent together reaches the worker
    /// together, however the queue splits its batches. As few requests as
    /// the queue allows.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn message(chat: &str, id: &str, resend: i64) -> MessageRef {
        MessageRef {
            workspace_id: "ws".into(),
            message_id: id.into(),
            chat_key: chat.into(),
            resend,
        }
    }

    fn ids(body: &ChatMessages) -> Vec<&str> {
        body.message_ids.iter().map(String::as_str).collect()
    }

    #[test]
    fn a_chats_messages_travel_as_one_body_in_order_whatever_comes_between() {
        let sent = [
            message("chat-a", "a1", 0),
            message("chat-b", "b1", 0),
            message("chat-a", "a2", 0),
            message("chat-a", "a1", 0),
            message("chat-b", "b2", 7),
            message("chat-a", "a3", 0),
        ];
        let bodies = coalesce(&sent);
        assert_eq!(bodies.len(), 2, "{bodies:?}");
        assert_eq!(
            (bodies[0].chat_key.as_str(), ids(&bodies[0])),
            ("chat-a", vec!["a1", "a2", "a3"])
        );
        assert_eq!(
            (bodies[1].chat_key.as_str(), ids(&bodies[1])),
            ("chat-b", vec!["b1", "b2"])
        );
        assert_eq!(bodies[0].resend, 0);
        assert_eq!(
            bodies[1].resend, 7,
            "the highest marker: not taken for an earlier copy of the same messages"
        );
        // The FIFO group is the chat's, as it was for single messages.
        assert_eq!(bodies[0].group_id(), crate::crypto::sha256_hex("ws#chat-a"));
        assert!(coalesce(&[]).is_empty());
    }

    #[test]
    fn a_chat_with_more_than_a_body_holds_is_cut_in_order() {
        let many: Vec<MessageRef> = (0..120)
            .map(|i| message("chat-a", &format!("wamid.{i:03}"), 0))
            .collect();
        let bodies = coalesce(&many);
        let sizes: Vec<usize> = bodies.iter().map(|b| b.message_ids.len()).collect();
        assert_eq!(sizes, [50, 50, 20]);
        let again: Vec<String> = bodies.iter().flat_map(|b| b.message_ids.clone()).collect();
        let expected: Vec<String> = many.iter().map(|m| m.message_id.clone()).collect();
        assert_eq!(again, expected);

        // Long ids are cut by bytes before the count; each body fits.
        let long: Vec<MessageRef> = (0..40)
            .map(|i| message("chat-a", &format!("{i:02}{}", "x".repeat(4_000)), 0))
            .collect();
        let bodies = coalesce(&long);
        assert!(bodies.len() > 1);
        for body in &bodies {
            let size = serde_json::to_string(body).expect("serialisable").len();
            assert!(size <= MAX_BODY_BYTES, "{size}");
        }
        assert_eq!(
            bodies.iter().map(|b| b.message_ids.len()).sum::<usize>(),
            40
        );
    }

    #[test]
    fn the_body_names_the_chat_and_its_ids_and_reads_back() {
        let body = ChatMessages {
            workspace_id: "ws".into(),
            chat_key: "170000000000001#447700900123".into(),
            message_ids: vec!["wamid.1".into(), "wamid.2".into()],
            resend: 3,
        };
        let json = serde_json::to_value(&body).expect("serialisable");
        assert_eq!(
            json,
            serde_json::json!({
                "workspace_id": "ws",
                "chat_key": "170000000000001#447700900123",
                "message_ids": ["wamid.1", "wamid.2"],
                "resend": 3
            })
        );
        let read = read_body(&json.to_string()).expect("readable");
        assert_eq!(
            read,
            [
                MessageRef {
                    workspace_id: "ws".into(),
                    message_id: "wamid.1".into(),
                    chat_key: "170000000000001#447700900123".into(),
                    resend: 3
                },
                MessageRef {
                    workspace_id: "ws".into(),
                    message_id: "wamid.2".into(),
                    chat_key: "170000000000001#447700900123".into(),
                    resend: 3
                }
            ]
        );
    }

    #[test]
    fn a_single_message_body_written_before_still_reads() {
        let old = r#"{"workspace_id":"ws","message_id":"wamid.OLD","chat_key":"c","resend":0}"#;
        assert_eq!(
            read_body(old).expect("readable"),
            [message("c", "wamid.OLD", 0)]
        );
        let without_resend = r#"{"workspace_id":"ws","message_id":"wamid.OLD","chat_key":"c"}"#;
        assert_eq!(
            read_body(without_resend).expect("readable"),
            [message("c", "wamid.OLD", 0)]
        );
    }

    #[test]
    fn a_body_without_messages_is_refused() {
        for body in [
            r#"{"workspace_id":"ws","chat_key":"c","message_ids":[]}"#,
            r#"{"workspace_id":"ws","chat_key":"c"}"#,
            r#"{"workspace_id":"ws","message_ids":["m"]}"#,
            "not json",
        ] {
            assert!(read_body(body).is_err(), "{body}");
        }
    }

    #[test]
    fn one_messages_dedup_id_is_what_its_single_message_body_had() {
        // As `MessageRef::dedup_id` made it before bodies carried several.
        let before = crate::crypto::sha256_hex("ws#wamid.1#0");
        let one = coalesce(&[message("c", "wamid.1", 0)]);
        assert_eq!(one[0].dedup_id(), before);
        let two = coalesce(&[message("c", "wamid.1", 0), message("c", "wamid.2", 0)]);
        assert_ne!(two[0].dedup_id(), before);
        // The same delivery queued again is the same queue message to SQS.
        let again = coalesce(&[message("c", "wamid.1", 0), message("c", "wamid.2", 0)]);
        assert_eq!(two[0].dedup_id(), again[0].dedup_id());
        let resent = coalesce(&[message("c", "wamid.1", 9), message("c", "wamid.2", 0)]);
        assert_ne!(two[0].dedup_id(), resent[0].dedup_id());
        assert!(two[0].dedup_id().len() <= 128);
    }

    #[test]
    fn batches_hold_ten_entries_and_256_kib_at_most() {
        let outgoing = |body_len: usize| Outgoing {
            group_id: "g".into(),
            dedup_id: "d".into(),
            body: "x".repeat(body_len),
        };
        let small: Vec<Outgoing> = (0..23).map(|_| outgoing(100)).collect();
        let sizes: Vec<usize> = send_batches(&small).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [10, 10, 3]);
        let large: Vec<Outgoing> = (0..9).map(|_| outgoing(MAX_BODY_BYTES)).collect();
        let sizes: Vec<usize> = send_batches(&large).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [4, 4, 1]);
        assert!(send_batches(&[]).is_empty());
    }
}
