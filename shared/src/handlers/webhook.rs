//! The `webhook` function: WhatsApp Cloud API deliveries.
//!
//! The signature is checked over the raw body before anything is parsed or
//! stored; the secret is chosen by the URL (this endpoint is the platform's
//! own Meta app), never by the unverified body. Each message is stored and
//! queued once however often Meta delivers it.

use lambda_http::Request;
use serde_json::json;

use super::http::{ApiError, HttpResponse, json_response, query_params, text_response};
use crate::crypto::{secrets_equal, verify_meta_signature};
use crate::deps::Deps;
use crate::model::{Delivery, MessageState, NO_NUMBER_YET, StoredMessage, chat_key, held_chat_key};
use crate::queue::{MessageRef, QueueName};
use crate::store::Insert;
use crate::synclog::{self, LogEntryDraft, SyncEvent};
use crate::whatsapp::{ChatMessage, Counterpart, WebhookItem, parse_delivery};

/// Meta's largest delivery is 3 MB.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

pub async fn handle(deps: &Deps, req: Request) -> Result<HttpResponse, lambda_http::Error> {
    let result = match req.method().as_str() {
        "GET" => verify_subscription(deps, &req).await,
        "POST" => receive(deps, &req).await,
        _ => Err(ApiError::MethodNotAllowed("GET, POST")),
    };
    Ok(result.unwrap_or_else(ApiError::into_response))
}

/// The handshake Meta sends when the callback URL is saved.
async fn verify_subscription(deps: &Deps, req: &Request) -> Result<HttpResponse, ApiError> {
    let params = query_params(req);
    let meta = deps.secrets.meta().await?;
    let mode_ok = params.get("hub.mode").map(String::as_str) == Some("subscribe");
    let token_ok = params
        .get("hub.verify_token")
        .is_some_and(|t| secrets_equal(t, &meta.verify_token));
    match (mode_ok && token_ok, params.get("hub.challenge")) {
        (true, Some(challenge)) => Ok(text_response(200, "text/plain", challenge.clone())),
        _ => Err(ApiError::Forbidden("verification refused".into())),
    }
}

#[derive(Default)]
struct Tally {
    duplicates: usize,
    skipped: usize,
}

async fn receive(deps: &Deps, req: &Request) -> Result<HttpResponse, ApiError> {
    let body = req.body().as_ref();
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::TooLarge(MAX_BODY_BYTES));
    }
    let meta = deps.secrets.meta().await?;
    let signature = req
        .headers()
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    verify_meta_signature(meta.app_secret.as_bytes(), body, signature)
        .map_err(|e| ApiError::Unauthorized(format!("webhook refused: {e}")))?;
    // Everything is parsed before anything is stored: a delivery we cannot
    // read is refused whole, and Meta keeps retrying it until we can.
    let items =
        parse_delivery(body).map_err(|e| ApiError::BadRequest(format!("webhook refused: {e}")))?;

    let mut tally = Tally::default();
    apply_statuses(deps, body).await?;
    let mut to_queue = Vec::new();
    for item in items {
        match item {
            WebhookItem::Message(message) => {
                for reference in store(deps, *message, &mut tally).await? {
                    // A message twice in one delivery is still "received"
                    // when its second copy is stored: queue it once.
                    if to_queue.contains(&reference) {
                        tally.duplicates += 1;
                    } else {
                        to_queue.push(reference);
                    }
                }
            }
            WebhookItem::Skipped {
                reason,
                message_id,
                phone_number_id,
            } => {
                tally.skipped += 1;
                tracing::info!(
                    reason = reason.as_str(),
                    message_id,
                    "webhook item not synced"
                );
                // Messages a workspace would look for (a group chat, a user
                // without a phone number) are explained in its sync log.
                if let (Some(message_id), Some(phone_number_id)) = (&message_id, &phone_number_id)
                    && let Some(number) = deps.store.whatsapp_number(phone_number_id).await?
                {
                    synclog::record(
                        deps,
                        LogEntryDraft {
                            workspace_id: &number.workspace_id,
                            event: SyncEvent::Skipped,
                            chat_key: None,
                            message_id: Some(message_id),
                            detail: json!({ "reason": reason.as_str() }),
                        },
                    )
                    .await;
                }
            }
        }
    }
    // One queue message per chat (`Queue::send_all`): a burst reaches
    // record-sync, and then note-append, together, however the queues split
    // their batches, so it costs one note write.
    deps.queue
        .send_all(QueueName::Sync, &to_queue)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    for reference in &to_queue {
        deps.store
            .set_message_state(
                &reference.workspace_id,
                &reference.message_id,
                &MessageState::Queued,
                // A fast worker may already have moved it on: keep its state.
                Some(&["received"]),
            )
            .await?;
        tracing::info!(
            workspace_id = %reference.workspace_id,
            message_id = %reference.message_id,
            "message queued"
        );
    }
    Ok(json_response(
        200,
        &json!({ "queued": to_queue.len(), "duplicates": tally.duplicates, "skipped": tally.skipped }),
    ))
}

/// Stores the message (and its chat) once; returns what to queue: the
/// message if it still needs queueing, after the messages its sender sent
/// while only a username was known, now that the number is.
async fn store(
    deps: &Deps,
    message: ChatMessage,
    tally: &mut Tally,
) -> Result<Vec<MessageRef>, ApiError> {
    let Some(number) = deps.store.whatsapp_number(&message.phone_number_id).await? else {
        tally.skipped += 1;
        tracing::warn!(
            phone_number_id = %message.phone_number_id,
            message_id = %message.message_id,
            "message for a WhatsApp number no workspace registered"
        );
        return Ok(Vec::new());
    };
    let workspace_id = number.workspace_id;
    let (contact, user_id) = match &message.counterpart {
        Counterpart::Number { contact, user_id } => (contact.clone(), user_id.clone()),
        Counterpart::UserOnly { user_id } => {
            let user_id = user_id.clone();
            hold_until_number_known(deps, &workspace_id, message, &user_id, tally).await?;
            return Ok(Vec::new());
        }
    };
    let chat = chat_key(&message.phone_number_id, &contact);
    deps.store
        .upsert_chat_contact(
            &workspace_id,
            &chat,
            &message.phone_number_id,
            &contact,
            message.contact_name.as_deref(),
        )
        .await?;
    let mut to_queue = match &user_id {
        Some(user_id) => {
            release_held(
                deps,
                &workspace_id,
                &message.phone_number_id,
                user_id,
                &chat,
            )
            .await?
        }
        None => Vec::new(),
    };
    let stored = to_store(
        message,
        &workspace_id,
        chat.clone(),
        MessageState::Received,
        deps.clock.now(),
    );
    let needs_queueing = match deps.store.insert_message(&stored).await? {
        Insert::Inserted => true,
        // Stored by an earlier delivery that failed before queueing it.
        Insert::Exists(existing) => existing.state == MessageState::Received,
    };
    if needs_queueing {
        to_queue.push(MessageRef {
            workspace_id,
            message_id: stored.message_id,
            chat_key: chat,
            resend: 0,
        });
    } else {
        tally.duplicates += 1;
        tracing::info!(workspace_id = %workspace_id, message_id = %stored.message_id, "duplicate delivery");
    }
    Ok(to_queue)
}

/// Moves the delivery state of messages we sent on, as status webhooks
/// report it (out of order, and again: a state never moves back).
async fn apply_statuses(deps: &Deps, body: &[u8]) -> Result<(), ApiError> {
    let updates = crate::whatsapp::status_updates(body)
        .map_err(|e| ApiError::BadRequest(format!("webhook refused: {e}")))?;
    for update in updates {
        let Some(delivery) = Delivery::from_status(
            &update.status,
            update.error_code,
            update.error_reason.as_deref(),
        ) else {
            continue;
        };
        let Some(number) = deps.store.whatsapp_number(&update.phone_number_id).await? else {
            continue;
        };
        let moved = deps
            .store
            .advance_delivery(&number.workspace_id, &update.message_id, &delivery)
            .await?;
        tracing::info!(workspace_id = %number.workspace_id, message_id = %update.message_id, status = %update.status, moved, "message status");
    }
    Ok(())
}

/// The item a delivered message is stored as, in `chat` and `state`.
pub fn to_store(
    message: ChatMessage,
    workspace_id: &str,
    chat: String,
    state: MessageState,
    received_at: i64,
) -> StoredMessage {
    StoredMessage {
        workspace_id: workspace_id.to_owned(),
        message_id: message.message_id,
        chat_key: chat,
        direction: message.direction,
        timestamp: message.timestamp,
        kind: message.kind,
        text: message.text,
        media: message.media,
        attachment: None,
        attachment_started_at: None,
        sent_by: None,
        delivery: None,
        reply_to: message.reply_to,
        reaction_to: message.reaction_to,
        contact_name: message.contact_name,
        state,
        received_at,
    }
}

/// A message from a username that shares no number is kept, waiting, under
/// its user id: it cannot be matched to a record by phone yet.
async fn hold_until_number_known(
    deps: &Deps,
    workspace_id: &str,
    message: ChatMessage,
    user_id: &str,
    tally: &mut Tally,
) -> Result<(), ApiError> {
    let chat = held_chat_key(&message.phone_number_id, user_id);
    let waiting = MessageState::Waiting {
        reason: NO_NUMBER_YET.into(),
    };
    let held = to_store(message, workspace_id, chat, waiting, deps.clock.now());
    match deps.store.insert_message(&held).await? {
        Insert::Inserted => {
            synclog::record(
                deps,
                LogEntryDraft {
                    workspace_id,
                    event: SyncEvent::Parked,
                    chat_key: None,
                    message_id: Some(&held.message_id),
                    detail: json!({ "reason": NO_NUMBER_YET }),
                },
            )
            .await;
            tracing::info!(workspace_id, message_id = %held.message_id, "message kept until its sender's number is known");
        }
        Insert::Exists(_) => tally.duplicates += 1,
    }
    Ok(())
}

/// The number of a user who wrote with a username only is known now: the
/// messages kept under the user id join the chat of that number, oldest
/// first, ahead of the message that told the number.
async fn release_held(
    deps: &Deps,
    workspace_id: &str,
    phone_number_id: &str,
    user_id: &str,
    chat: &str,
) -> Result<Vec<MessageRef>, ApiError> {
    let held_key = held_chat_key(phone_number_id, user_id);
    let mut released = Vec::new();
    for held in deps.store.chat_messages(workspace_id, &held_key).await? {
        if held.state.name() != "waiting" {
            continue;
        }
        if !deps
            .store
            .move_message_to_chat(workspace_id, &held, &held_key, chat)
            .await?
        {
            continue; // another delivery released it first
        }
        deps.store
            .set_message_state(
                workspace_id,
                &held.message_id,
                &MessageState::Received,
                Some(&["waiting"]),
            )
            .await?;
        released.push(MessageRef {
            workspace_id: workspace_id.to_owned(),
            message_id: held.message_id,
            chat_key: chat.to_owned(),
            resend: 0,
        });
    }
    if !released.is_empty() {
        tracing::info!(
            workspace_id,
            count = released.len(),
            "messages kept for a username join the chat of its number"
        );
    }
    Ok(released)
}
