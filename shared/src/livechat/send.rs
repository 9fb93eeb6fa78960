//! Sending from the CRM: a text to a chat, once per client id (a double
//! click or a retry sends once), recorded before it is sent, refused while
//! the 24-hour window is closed (instead of letting Meta fail it), and only
//! by whoever may send from the business number: its owner, the chat's
//! responsible user, owners and admins. What is sent becomes a message of
//! the chat like any other, so it lands in the day note, with who sent it.

use serde::{Deserialize, Serialize};

use super::LiveSession;
use super::view::WINDOW_SECS;
use crate::business_numbers::{SendError, TemplateSend, explain_send_error};
use crate::deps::Deps;
use crate::error::StoreError;
use crate::model::{Chat, Delivery, MessageState, StoredMessage, User, WhatsAppNumber};
use crate::queue::{MessageRef, QueueName};
use crate::store::SendClaim;
use crate::whatsapp::Direction;

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
    /// …or an approved template, at any time.
    #[serde(default)]
    pub template: Option<TemplateSend>,
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
    #[error("there is no such chat")]
    NoSuchChat,
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
    let keys = deps
        .secrets
        .keys()
        .await
        .map_err(|e| SendRefusal::Store(StoreError::Request(e.to_string())))?;
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
    let may_send = user.role.manages_workspace()
        || number.owner_user_id == user.id
        || chat.and_then(|c| c.responsible_user_id.as_deref()) == Some(user.id.as_str());
    if may_send {
        Ok(user)
    } else {
        Err(SendRefusal::ReadOnly)
    }
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

/// Sends `asked` to the chat `chat_key` as the session's user.
pub async fn send(
    deps: &Deps,
    session: &LiveSession,
    chat_key: &str,
    asked: &SendRequest,
) -> Result<Sent, SendRefusal> {
    let client_id = asked.client_id.trim();
    if client_id.is_empty() || client_id.len() > CLIENT_ID_MAX {
        return Err(SendRefusal::Invalid(format!(
            "client_id must be 1 to {CLIENT_ID_MAX} characters"
        )));
    }
    let text = asked.text.as_deref().map(str::trim);
    match (&text, &asked.template) {
        (Some(text), None) if !text.is_empty() && text.chars().count() <= TEXT_MAX_CHARS => {}
        (Some(_), None) => {
            return Err(SendRefusal::Invalid(format!(
                "text must be 1 to {TEXT_MAX_CHARS} characters"
            )));
        }
        (None, Some(template)) if !template.name.trim().is_empty() => {}
        _ => {
            return Err(SendRefusal::Invalid(
                "send either `text` or a `template` ({name, language, parameters})".into(),
            ));
        }
    }
    let workspace_id = session.workspace_id.as_str();
    let (chat, number) = chat_and_number(deps, workspace_id, chat_key).await?;
    let user = sender(deps, session, &number, Some(&chat)).await?;
    let now = deps.clock.now();
    let last_inbound = deps
        .store
        .chat_messages(workspace_id, chat_key)
        .await?
        .iter()
        .filter(|m| m.direction == Direction::Inbound)
        .map(|m| m.timestamp)
        .max();
    // Templates may open a conversation; free text only while it is open.
    if text.is_some() && last_inbound.is_none_or(|at| at + WINDOW_SECS <= now) {
        return Err(SendRefusal::WindowClosed);
    }
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
    let token = match number_token(deps, &number).await {
        Ok(token) => token,
        Err(e) => return released(e).await,
    };
    let to = chat.contact.as_str();
    let (sent, kind, shown) = match (text, &asked.template) {
        (Some(text), _) => (
            deps.business_numbers
                .send_text(
                    &token,
                    &number.phone_number_id,
                    to,
                    text,
                    asked.reply_to.as_deref(),
                )
                .await,
            "text",
            text.to_owned(),
        ),
        (None, Some(template)) => (
            deps.business_numbers
                .send_template(&token, &number.phone_number_id, to, template)
                .await,
            "template",
            template_line(template),
        ),
        (None, None) => return released(SendRefusal::Invalid("nothing to send".into())).await,
    };
    let message_id = match sent {
        Ok(id) => id,
        // Refused outright: nothing reached the customer.
        Err(e) if !e.transient => return released(SendRefusal::WhatsApp(e)).await,
        // Maybe sent: the claim stays, so a retry cannot send it twice.
        Err(e) => return Err(SendRefusal::WhatsApp(e)),
    };
    deps.store
        .finish_send(workspace_id, &send_key, &message_id)
        .await?;
    let message = StoredMessage {
        workspace_id: workspace_id.to_owned(),
        message_id: message_id.clone(),
        chat_key: chat_key.to_owned(),
        direction: Direction::Outbound,
        timestamp: now,
        kind: kind.to_owned(),
        text: shown,
        media: None,
        contact_name: None,
        state: MessageState::Received,
        received_at: now,
        attachment: None,
        attachment_started_at: None,
        sent_by: Some(user.email.clone()),
        delivery: Some(Delivery::Accepted),
        reply_to: asked.reply_to.clone(),
        reaction_to: None,
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
    tracing::info!(workspace_id, user_id = %user.id, chat = %chat.log_id(), message_id, "live-chat message sent");
    Ok(Sent {
        message_id,
        duplicate: false,
    })
}
