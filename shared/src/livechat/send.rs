//! Sending from the CRM: a text, a reaction, a photo or document, or an
//! approved template to a chat, once per client id (a double click or a
//! retry sends once), recorded before it is sent, refused while the 24-hour
//! window is closed for anything but a template (instead of letting Meta
//! fail it), and only by whoever may send from the business number: its
//! owner, the chat's responsible user, owners and admins. What is sent
//! becomes a message of the chat like any other, so it lands in the day
//! note, with who sent it (and a file on the record).

use serde::{Deserialize, Serialize};

use super::LiveSession;
use super::media_send::{self, CheckedMedia, MediaRefusal, MediaRequest};
use super::reaction::{self, ReactionRequest};
use super::view::WINDOW_SECS;
use crate::business_numbers::{MediaMessage, SendError, TemplateSend, explain_send_error};
use crate::deps::Deps;
use crate::error::StoreError;
use crate::model::{Chat, Delivery, MessageState, StoredMessage, User, WhatsAppNumber};
use crate::phone::E164;
use crate::queue::{MessageRef, QueueName};
use crate::store::SendClaim;
use crate::whatsapp::{Direction, Media};

/// WhatsApp's longest text body.
const TEXT_MAX_CHARS: usize = 4096;
/// The longest client id taken.
const CLIENT_ID_MAX: usize = 100;

#[derive(Debug, Deserialize)]
pub struct SendRequest {
    /// The page's own id for this send: the same id sends once.
    pub client_id: String,
    /// Free text (only while the 24-hour window is open)…
    #[serde(default)]
    pub text: Option<String>,
    /// …quoting a message of the chat…
    #[serde(default)]
    pub reply_to: Option<String>,
    /// …or an approved template, at any time…
    #[serde(default)]
    pub template: Option<TemplateSend>,
    /// …or a reaction to a message the contact sent (window open)…
    #[serde(default)]
    pub reaction: Option<ReactionRequest>,
    /// …or a photo or a document (window open).
    #[serde(default)]
    pub media: Option<MediaRequest>,
}

#[derive(Debug, Serialize)]
pub struct Sent {
    pub message_id: String,
    /// The same client id had sent it already.
    pub duplicate: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SendRefusal {
    #[error("{0}")]
    Invalid(String),
    /// Over a size limit; says which.
    #[error("{0}")]
    TooLarge(String),
    #[error("there is no such chat")]
    NoSuchChat,
    /// A reaction's target is no message of the chat.
    #[error("there is no message with this id in the chat")]
    UnknownTarget,
    #[error(
        "you may read this chat but not send from its business number: its owner, the chat's responsible user, owners and admins may"
    )]
    ReadOnly,
    #[error("{}", explain_send_error(Some(131047), ""))]
    WindowClosed,
    #[error(
        "this message is being sent already (or its outcome is unknown): check the chat before sending it again"
    )]
    InProgress,
    #[error("the business number has no WhatsApp access token: register one to send")]
    NoToken,
    #[error(transparent)]
    WhatsApp(SendError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<crate::error::QueueError> for SendRefusal {
    fn from(e: crate::error::QueueError) -> Self {
        Self::Store(StoreError::Request(e.to_string()))
    }
}

impl From<crate::error::SecretsError> for SendRefusal {
    fn from(e: crate::error::SecretsError) -> Self {
        Self::Store(StoreError::Request(e.to_string()))
    }
}

impl From<MediaRefusal> for SendRefusal {
    fn from(e: MediaRefusal) -> Self {
        match e {
            MediaRefusal::TooLarge(m) => Self::TooLarge(m),
            MediaRefusal::Invalid(m) => Self::Invalid(m),
        }
    }
}

/// The workspace's chat `chat_key` and its business number.
pub(super) async fn chat_and_number(
    deps: &Deps,
    workspace_id: &str,
    chat_key: &str,
) -> Result<(Chat, WhatsAppNumber), SendRefusal> {
    let chat = deps
        .store
        .chat(workspace_id, chat_key)
        .await?
        .ok_or(SendRefusal::NoSuchChat)?;
    let number = deps
        .store
        .whatsapp_number(&chat.phone_number_id)
        .await?
        .filter(|n| n.workspace_id == workspace_id)
        .ok_or(SendRefusal::NoSuchChat)?;
    Ok((chat, number))
}

/// The business number's Cloud API token, decrypted.
pub(super) async fn number_token(
    deps: &Deps,
    number: &WhatsAppNumber,
) -> Result<String, SendRefusal> {
    let keys = deps.secrets.keys().await?;
    number
        .access_token_enc
        .as_deref()
        .and_then(|sealed| {
            keys.token_cipher()
                .decrypt(sealed, &number.token_binding())
                .ok()
        })
        .ok_or(SendRefusal::NoToken)
}

/// The session's user, if they may send from `number` to `chat` (a new
/// chat has no responsible user yet).
pub(super) async fn sender(
    deps: &Deps,
    session: &LiveSession,
    number: &WhatsAppNumber,
    chat: Option<&Chat>,
) -> Result<User, SendRefusal> {
    let user = deps
        .store
        .user(&session.workspace_id, &session.user_id)
        .await?
        .ok_or(SendRefusal::ReadOnly)?;
    if may_send(&user, number, chat) {
        Ok(user)
    } else {
        Err(SendRefusal::ReadOnly)
    }
}

/// Who may send from a business number: its owner, the chat's responsible
/// user, owners and admins.
pub(super) fn may_send(user: &User, number: &WhatsAppNumber, chat: Option<&Chat>) -> bool {
    user.role.manages_workspace()
        || number.owner_user_id == user.id
        || chat.and_then(|c| c.responsible_user_id.as_deref()) == Some(user.id.as_str())
}

/// The client id, trimmed, if it is one.
pub(super) fn client_id(asked: &str) -> Result<&str, SendRefusal> {
    let client_id = asked.trim();
    if client_id.is_empty() || client_id.len() > CLIENT_ID_MAX {
        return Err(SendRefusal::Invalid(format!(
            "client_id must be 1 to {CLIENT_ID_MAX} characters"
        )));
    }
    Ok(client_id)
}

/// A template to send, if it names one.
pub(super) fn checked_template(template: &TemplateSend) -> Result<&TemplateSend, SendRefusal> {
    if template.name.trim().is_empty() {
        return Err(SendRefusal::Invalid(
            "a template needs its name (and language and parameters)".into(),
        ));
    }
    Ok(template)
}

/// How a sent template reads in the chat and the day note.
fn template_line(template: &TemplateSend) -> String {
    if template.parameters.is_empty() {
        format!("[Template {}]", template.name)
    } else {
        format!(
            "[Template {}: {}]",
            template.name,
            template.parameters.join(", ")
        )
    }
}

/// What goes out, once checked.
pub(super) enum Outgoing<'a> {
    Text {
        body: &'a str,
        reply_to: Option<&'a str>,
    },
    Template(&'a TemplateSend),
    Reaction {
        target: &'a str,
        emoji: &'a str,
        /// The chat's and the note's line.
        line: String,
    },
    Media(CheckedMedia),
}

impl Outgoing<'_> {
    /// The message type, as stored and shown.
    fn kind(&self) -> &'static str {
        match self {
            Self::Text { .. } => "text",
            Self::Template(_) => "template",
            Self::Reaction { .. } => "reaction",
            Self::Media(media) => media.kind.as_str(),
        }
    }
}

/// One of the request's contents, checked as far as it can be without the
/// chat (a reaction's target is checked against it later).
enum Asked<'a> {
    Text {
        body: &'a str,
        reply_to: Option<&'a str>,
    },
    Template(&'a TemplateSend),
    Reaction(&'a ReactionRequest),
    Media(CheckedMedia),
}

fn asked(request: &SendRequest) -> Result<Asked<'_>, SendRefusal> {
    let contents = [
        request.text.is_some(),
        request.template.is_some(),
        request.reaction.is_some(),
        request.media.is_some(),
    ];
    if contents.iter().filter(|given| **given).count() != 1 {
        return Err(SendRefusal::Invalid(
            "send one of `text`, `template` ({name, language, parameters}), `reaction` ({message_id, emoji}) or `media` ({kind, file_name, mime_type, data_base64, caption})".into(),
        ));
    }
    if request.reply_to.is_some() && request.text.is_none() {
        return Err(SendRefusal::Invalid(
            "reply_to quotes a message in a text: send it with `text`".into(),
        ));
    }
    if let Some(text) = request.text.as_deref().map(str::trim) {
        if text.is_empty() || text.chars().count() > TEXT_MAX_CHARS {
            return Err(SendRefusal::Invalid(format!(
                "text must be 1 to {TEXT_MAX_CHARS} characters"
            )));
        }
        return Ok(Asked::Text {
            body: text,
            reply_to: request.reply_to.as_deref(),
        });
    }
    if let Some(template) = &request.template {
        return checked_template(template).map(Asked::Template);
    }
    if let Some(reaction) = &request.reaction {
        reaction::check_emoji(&reaction.emoji)?;
        return Ok(Asked::Reaction(reaction));
    }
    match &request.media {
        Some(media) => Ok(Asked::Media(media_send::check(media)?)),
        None => Err(SendRefusal::Invalid("nothing to send".into())),
    }
}

/// Sends `request` to the chat `chat_key` as the session's user.
pub async fn send(
    deps: &Deps,
    session: &LiveSession,
    chat_key: &str,
    request: &SendRequest,
) -> Result<Sent, SendRefusal> {
    let client_id = client_id(&request.client_id)?;
    let asked = asked(request)?;
    let workspace_id = session.workspace_id.as_str();
    let (chat, number) = chat_and_number(deps, workspace_id, chat_key).await?;
    let user = sender(deps, session, &number, Some(&chat)).await?;
    let now = deps.clock.now();
    // Templates may open a conversation; anything else only while it is
    // open.
    if !matches!(asked, Asked::Template(_)) {
        let last_inbound = deps
            .store
            .chat_messages(workspace_id, chat_key)
            .await?
            .iter()
            .filter(|m| m.direction == Direction::Inbound)
            .map(|m| m.timestamp)
            .max();
        if last_inbound.is_none_or(|at| at + WINDOW_SECS <= now) {
            return Err(SendRefusal::WindowClosed);
        }
    }
    let outgoing = match asked {
        Asked::Text { body, reply_to } => Outgoing::Text { body, reply_to },
        Asked::Template(template) => Outgoing::Template(template),
        Asked::Reaction(asked) => Outgoing::Reaction {
            line: reaction::target_line(deps, workspace_id, chat_key, asked, now).await?,
            target: asked.message_id.trim(),
            emoji: &asked.emoji,
        },
        Asked::Media(media) => Outgoing::Media(media),
    };
    let to = Destination {
        number: &number,
        chat_key,
        contact: &chat.contact,
        create_chat: false,
    };
    deliver(deps, &user, &to, client_id, outgoing).await
}

/// Where a send goes.
pub(super) struct Destination<'a> {
    pub number: &'a WhatsAppNumber,
    pub chat_key: &'a str,
    pub contact: &'a E164,
    /// The chat does not exist yet: it is made once WhatsApp takes the
    /// message, as a webhook would make it, so record-sync links it to its
    /// record the usual way.
    pub create_chat: bool,
}

/// What became of the call to WhatsApp.
enum Failed {
    /// Nothing reached the customer: the same client id may try again.
    NotSent(SendError),
    /// The send may have gone out.
    MaybeSent(SendError),
}

impl Failed {
    fn of_send(e: SendError) -> Self {
        if e.transient {
            Self::MaybeSent(e)
        } else {
            Self::NotSent(e)
        }
    }
}

/// Sends `outgoing` once per `client_id` and keeps it as a message of the
/// chat, queued for the day note.
pub(super) async fn deliver(
    deps: &Deps,
    user: &User,
    to: &Destination<'_>,
    client_id: &str,
    outgoing: Outgoing<'_>,
) -> Result<Sent, SendRefusal> {
    let workspace_id = user.workspace_id.as_str();
    let chat_key = to.chat_key;
    let now = deps.clock.now();
    let send_key = crate::crypto::sha256_hex(&format!("{chat_key}\n{client_id}"));
    match deps.store.claim_send(workspace_id, &send_key, now).await? {
        SendClaim::Claimed => {}
        SendClaim::Sent { message_id } => {
            return Ok(Sent {
                message_id,
                duplicate: true,
            });
        }
        SendClaim::InProgress { .. } => return Err(SendRefusal::InProgress),
    }
    let released = |e: SendRefusal| async {
        // Nothing was sent: the same client id may try again.
        deps.store.release_send(workspace_id, &send_key).await?;
        Err::<Sent, _>(e)
    };
    let token = match number_token(deps, to.number).await {
        Ok(token) => token,
        Err(e) => return released(e).await,
    };
    let kind = outgoing.kind();
    let (message_id, shown, media) = match call_whatsapp(deps, &token, to, outgoing).await {
        Ok(sent) => sent,
        Err(Failed::NotSent(e)) => return released(SendRefusal::WhatsApp(e)).await,
        // The claim stays, so a retry cannot send it twice.
        Err(Failed::MaybeSent(e)) => return Err(SendRefusal::WhatsApp(e)),
    };
    deps.store
        .finish_send(workspace_id, &send_key, &message_id)
        .await?;
    if to.create_chat {
        deps.store
            .upsert_chat_contact(
                workspace_id,
                chat_key,
                &to.number.phone_number_id,
                to.contact,
                None,
            )
            .await?;
    }
    let message = StoredMessage {
        workspace_id: workspace_id.to_owned(),
        message_id: message_id.clone(),
        chat_key: chat_key.to_owned(),
        direction: Direction::Outbound,
        timestamp: now,
        kind: kind.to_owned(),
        text: shown.text,
        media,
        contact_name: None,
        state: MessageState::Received,
        received_at: now,
        attachment: None,
        attachment_started_at: None,
        sent_by: Some(user.email.clone()),
        delivery: Some(Delivery::Accepted),
        reply_to: shown.reply_to,
        reaction_to: shown.reaction_to,
    };
    deps.store.insert_message(&message).await?;
    // Sends through the API come back as no echo: the product writes the
    // note line itself, through the usual path.
    deps.queue
        .send_all(
            QueueName::Sync,
            &[MessageRef {
                workspace_id: workspace_id.to_owned(),
                message_id: message_id.clone(),
                chat_key: chat_key.to_owned(),
                resend: 0,
            }],
        )
        .await?;
    deps.store
        .set_message_state(
            workspace_id,
            &message_id,
            &MessageState::Queued,
            Some(&["received"]),
        )
        .await?;
    tracing::info!(workspace_id, user_id = %user.id, chat = %crate::model::chat_key_for_logs(chat_key), message_id, kind, new_chat = to.create_chat, "live-chat message sent");
    Ok(Sent {
        message_id,
        duplicate: false,
    })
}

/// How a sent message is kept: its line, and what it quotes or reacts to.
struct Shown {
    text: String,
    reply_to: Option<String>,
    reaction_to: Option<String>,
}

/// Sends `outgoing` (a file is uploaded first); its message id, how it is
/// shown, and its media.
async fn call_whatsapp(
    deps: &Deps,
    token: &str,
    to: &Destination<'_>,
    outgoing: Outgoing<'_>,
) -> Result<(String, Shown, Option<Media>), Failed> {
    let numbers = deps.business_numbers.as_ref();
    let from = to.number.phone_number_id.as_str();
    let contact = to.contact.as_str();
    let shown = |text: String| Shown {
        text,
        reply_to: None,
        reaction_to: None,
    };
    match outgoing {
        Outgoing::Text { body, reply_to } => {
            let id = numbers
                .send_text(token, from, contact, body, reply_to)
                .await
                .map_err(Failed::of_send)?;
            let shown = Shown {
                reply_to: reply_to.map(str::to_owned),
                ..shown(body.to_owned())
            };
            Ok((id, shown, None))
        }
        Outgoing::Template(template) => {
            let id = numbers
                .send_template(token, from, contact, template)
                .await
                .map_err(Failed::of_send)?;
            Ok((id, shown(template_line(template)), None))
        }
        Outgoing::Reaction {
            target,
            emoji,
            line,
        } => {
            let id = numbers
                .send_reaction(token, from, contact, target, emoji)
                .await
                .map_err(Failed::of_send)?;
            let shown = Shown {
                reaction_to: Some(target.to_owned()),
                ..shown(line)
            };
            Ok((id, shown, None))
        }
        Outgoing::Media(mut media) => {
            // An upload reaches nobody: whatever became of it, nothing was
            // sent (an upload left unused expires at WhatsApp).
            let media_id = numbers
                .upload_media(token, from, media.upload())
                .await
                .map_err(Failed::NotSent)?;
            let message = MediaMessage {
                kind: media.kind,
                media_id: &media_id,
                caption: media.caption.as_deref(),
                file_name: (media.kind == crate::business_numbers::OutboundMediaKind::Document)
                    .then_some(media.file_name.as_str()),
            };
            let id = numbers
                .send_media(token, from, contact, &message)
                .await
                .map_err(Failed::of_send)?;
            let stored = media.stored(&media_id);
            Ok((id, shown(media.line()), Some(stored)))
        }
    }
}
