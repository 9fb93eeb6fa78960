//! What the live-chat page does while its user reads a chat: it marks the
//! customer's messages read (their ticks turn blue in WhatsApp, and the
//! chat's unread count drops), shows a media message's file, and asks every
//! 1.5 seconds whether anything changed.
//!
//! Why a poll with an `ETag`, not a websocket: the API is an API Gateway
//! HTTP API in front of a Lambda function, which answers one request and
//! keeps no connection open. Pushing would take API Gateway's WebSocket API,
//! a table of open connections and a fan-out from every writer (the
//! webhook, both workers, status updates). The page instead asks every 1.5 s
//! while it is visible, sending the `ETag` of the answer it has; an answer
//! that did not change is a `304` without a body, so an idle chat costs the
//! page no redraw and the network next to nothing. (The function still
//! reads the chat to know: what changed can be any message's state or
//! ticks, not only a new message.)

use serde::Serialize;

use super::LiveSession;
use super::send::{SendRefusal, chat_and_number, number_token};
use crate::business_numbers::SendError;
use crate::deps::Deps;
use crate::error::StoreError;
use crate::media::{MediaError, media_file_name};
use crate::model::{StoredMessage, WhatsAppNumber, chat_key_for_logs};
use crate::store::ReadMark;
use crate::whatsapp::Direction;

/// The largest file a preview carries. A Lambda function's answer is at
/// most 6 MB (6,291,456 bytes) and API Gateway takes binary answers base64
/// encoded, a third larger: 4.5 MB of file is 6,000,000 characters, which
/// leaves room for the headers and the answer's envelope.
pub const PREVIEW_MAX_BYTES: u64 = 4_500_000;

/// WhatsApp takes a mark-as-read within 30 days of a message's receipt (the
/// live-chat reference §3.4); an older message is only marked read here.
pub const MARK_READ_MAX_AGE_SECS: i64 = 30 * 24 * 3600;

#[derive(Debug, thiserror::Error)]
pub enum ReadRefusal {
    /// No such chat, or no such message in it (another chat's, another
    /// workspace's): not found either way.
    #[error("there is no such message in this chat")]
    NotFound,
    #[error("this message has no file")]
    NoFile,
    #[error("only a message the customer sent can be marked read")]
    NotInbound,
    #[error("you are no longer a user of this workspace")]
    NotAUser,
    #[error("the business number has no WhatsApp access token: register the number with one")]
    NoToken,
    #[error(
        "WhatsApp refused the business number's access token: register the number again with a new one"
    )]
    TokenRefused,
    #[error(
        "this file is {} MB; a preview shows files up to {} MB: open it in WhatsApp, or in the CRM record if it was attached there",
        megabytes(.size),
        megabytes(.max)
    )]
    TooLarge { size: u64, max: u64 },
    #[error("WhatsApp no longer has this file (it keeps received media for 7 days)")]
    Gone,
    /// WhatsApp refused the mark-as-read, or could not take it.
    #[error(transparent)]
    WhatsApp(SendError),
    /// WhatsApp could not give the file (down, rate-limiting, unreadable).
    #[error("WhatsApp could not give the file: {0}")]
    Media(MediaError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A size as people read it: `12.3`.
fn megabytes(bytes: &u64) -> String {
    format!("{:.1}", *bytes as f64 / 1_000_000.0)
}

impl From<SendRefusal> for ReadRefusal {
    /// The chat and token lookups shared with sending refuse only so.
    fn from(e: SendRefusal) -> Self {
        match e {
            SendRefusal::NoSuchChat => Self::NotFound,
            SendRefusal::NoToken => Self::NoToken,
            SendRefusal::WhatsApp(e) => Self::WhatsApp(e),
            SendRefusal::Store(e) => Self::Store(e),
            other => Self::Store(StoreError::Corrupt(format!("unexpected refusal: {other}"))),
        }
    }
}

/// The message `message_id` of the workspace's chat `chat_key`, with the
/// chat's business number: a message of another chat, or of another
/// workspace, is not found.
async fn message_of_chat(
    deps: &Deps,
    workspace_id: &str,
    chat_key: &str,
    message_id: &str,
) -> Result<(WhatsAppNumber, StoredMessage), ReadRefusal> {
    let (_, number) = chat_and_number(deps, workspace_id, chat_key).await?;
    let message = deps
        .store
        .message(workspace_id, message_id)
        .await?
        .filter(|m| m.chat_key == chat_key)
        .ok_or(ReadRefusal::NotFound)?;
    Ok((number, message))
}

/// A mark-as-read done (or found done).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MarkedRead {
    pub chat_key: String,
    /// The message the chat is now read up to.
    pub message_id: String,
    /// When that message was sent: the chat's later inbound messages are
    /// unread.
    pub read_up_to: i64,
    /// False when the chat was read this far already: nothing was done.
    pub changed: bool,
    /// Whether WhatsApp was told (not for a message over 30 days old).
    pub marked_on_whatsapp: bool,
}

/// Marks the customer's message `message_id` of the chat read, as any user
/// who can see the chat may: WhatsApp is told (once: a message read
/// already, or one before it, changes nothing), and the chat remembers how
/// far it is read, never moving back.
pub async fn mark_read(
    deps: &Deps,
    session: &LiveSession,
    chat_key: &str,
    message_id: &str,
) -> Result<MarkedRead, ReadRefusal> {
    let workspace_id = session.workspace_id.as_str();
    let (number, message) = message_of_chat(deps, workspace_id, chat_key, message_id).await?;
    if message.direction != Direction::Inbound {
        return Err(ReadRefusal::NotInbound);
    }
    if deps
        .store
        .user(workspace_id, &session.user_id)
        .await?
        .is_none()
    {
        return Err(ReadRefusal::NotAUser);
    }
    let current = deps
        .store
        .chat_and_read_mark(workspace_id, chat_key)
        .await?
        .ok_or(ReadRefusal::NotFound)?
        .1;
    if let Some(mark) = current.filter(|mark| mark.up_to >= message.timestamp) {
        return Ok(MarkedRead {
            chat_key: chat_key.to_owned(),
            message_id: mark.message_id,
            read_up_to: mark.up_to,
            changed: false,
            marked_on_whatsapp: false,
        });
    }
    // WhatsApp first: a mark remembered before WhatsApp took it would make
    // a retry after its failure a no-op, and the ticks would stay grey.
    let on_whatsapp = deps.clock.now() - message.timestamp <= MARK_READ_MAX_AGE_SECS;
    if on_whatsapp {
        let token = number_token(deps, &number).await?;
        deps.business_numbers
            .mark_read(&token, &number.phone_number_id, message_id)
            .await
            .map_err(ReadRefusal::WhatsApp)?;
    }
    let mark = ReadMark {
        up_to: message.timestamp,
        message_id: message_id.to_owned(),
    };
    let changed = deps
        .store
        .advance_read_mark(workspace_id, chat_key, &mark)
        .await?;
    tracing::info!(
        workspace_id,
        user_id = %session.user_id,
        chat = %chat_key_for_logs(chat_key),
        message_id,
        changed,
        on_whatsapp,
        "live chat marked read"
    );
    Ok(MarkedRead {
        chat_key: chat_key.to_owned(),
        message_id: mark.message_id,
        read_up_to: mark.up_to,
        changed,
        marked_on_whatsapp: on_whatsapp,
    })
}

/// A media message's file, for the page to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaPreview {
    pub bytes: Vec<u8>,
    /// As WhatsApp declares it (`image/jpeg`, `audio/ogg; codecs=opus`).
    pub mime_type: String,
    pub file_name: String,
}

/// The file of the media message `message_id` of the chat, fetched from
/// WhatsApp with the business number's token (nothing of it is stored),
/// if it fits in an answer ([`PREVIEW_MAX_BYTES`]).
pub async fn media_preview(
    deps: &Deps,
    session: &LiveSession,
    chat_key: &str,
    message_id: &str,
) -> Result<MediaPreview, ReadRefusal> {
    let workspace_id = session.workspace_id.as_str();
    let (number, message) = message_of_chat(deps, workspace_id, chat_key, message_id).await?;
    let media = message.media.as_ref().ok_or(ReadRefusal::NoFile)?;
    let token = number_token(deps, &number).await?;
    let file = deps
        .media
        .fetch(&token, &media.id, PREVIEW_MAX_BYTES)
        .await
        .map_err(|e| match e {
            MediaError::TooLarge { size, max } => ReadRefusal::TooLarge { size, max },
            MediaError::NotFound => ReadRefusal::Gone,
            MediaError::Unauthorized => ReadRefusal::TokenRefused,
            other => ReadRefusal::Media(other),
        })?;
    tracing::info!(
        workspace_id,
        chat = %chat_key_for_logs(chat_key),
        message_id,
        bytes = file.file_size,
        "live chat media shown"
    );
    Ok(MediaPreview {
        file_name: media_file_name(
            &message.kind,
            &media.id,
            &file.mime_type,
            media.filename.as_deref(),
        ),
        mime_type: file.mime_type,
        bytes: file.bytes,
    })
}

/// A strong `ETag` for an answer's body: the same body, the same tag.
pub fn etag(body: &str) -> String {
    format!("\"{}\"", &crate::crypto::sha256_hex(body)[..32])
}

/// Whether `If-None-Match` names `etag` (or `*`): the client has this
/// answer already. Weak tags (`W/"…"`) compare on their value, as RFC 9110
/// has `If-None-Match` do.
pub fn unchanged(if_none_match: Option<&str>, etag: &str) -> bool {
    if_none_match.is_some_and(|header| {
        header.split(',').map(str::trim).any(|tag| {
            tag == "*" || tag == etag || tag.strip_prefix("W/").is_some_and(|weak| weak == etag)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_unchanged_only_for_its_own_tag() {
        let tag = etag(r#"{"chats":[]}"#);
        assert_eq!(tag, etag(r#"{"chats":[]}"#));
        assert_ne!(tag, etag(r#"{"chats":[1]}"#));
        assert!(tag.starts_with('"') && tag.ends_with('"') && tag.len() == 34);
        assert!(unchanged(Some(&tag), &tag));
        assert!(unchanged(Some(&format!("\"x\", W/{tag}")), &tag));
        assert!(unchanged(Some("*"), &tag));
        assert!(!unchanged(Some("\"x\""), &tag));
        assert!(!unchanged(Some(""), &tag));
        assert!(!unchanged(None, &tag));
    }

    #[test]
    fn a_preview_fits_in_a_lambda_answer_once_base64_encoded() {
        let encoded = PREVIEW_MAX_BYTES.div_ceil(3) * 4;
        assert!(encoded < 6_291_456 - 100_000, "{encoded}");
    }
}
