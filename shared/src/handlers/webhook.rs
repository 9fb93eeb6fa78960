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
use crate::model::{MessageState, StoredMessage, chat_key};
use crate::queue::{MessageRef, QueueName};
use crate::store::Insert;
use crate::synclog;
use crate::whatsapp::{ChatMessage, WebhookItem, parse_delivery};

/// Meta's largest delivery is 3 MB.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

pub async fn handle(deps: &Deps, req: Request) -> Result<HttpResponse, lambda_http::Error> {
    let result = match req.method().as_str() {
        "GET" => verify_subscription(deps, &req).await,
        "POST" => receive(deps, &req).await,
        _ => Err(ApiError::MethodNotAllowed),
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
    let mut to_queue = Vec::new();
    for item in items {
        match item {
            WebhookItem::Message(message) => {
                if let Some(reference) = store(deps, *message, &mut tally).await? {
                    to_queue.push(reference);
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
                        deps.store.as_ref(),
                        deps.clock.now(),
                        &number.workspace_id,
                        "skipped",
                        None,
                        Some(message_id),
                        json!({ "reason": reason.as_str() }),
                    )
                    .await;
                }
            }
        }
    }
    // Queued together, so a burst reaches the workers as one batch.
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

/// Stores the message (and its chat) once; returns what to queue, if it
/// still needs queueing.
async fn store(
    deps: &Deps,
    message: ChatMessage,
    tally: &mut Tally,
) -> Result<Option<MessageRef>, ApiError> {
    let Some(number) = deps.store.whatsapp_number(&message.phone_number_id).await? else {
        tally.skipped += 1;
        tracing::warn!(
            phone_number_id = %message.phone_number_id,
            message_id = %message.message_id,
            "message for a WhatsApp number no workspace registered"
        );
        return Ok(None);
    };
    let workspace_id = number.workspace_id;
    let chat = chat_key(&message.phone_number_id, &message.contact);
    deps.store
        .upsert_chat_contact(
            &workspace_id,
            &chat,
            &message.phone_number_id,
            &message.contact,
            message.contact_name.as_deref(),
        )
        .await?;
    let stored = StoredMessage {
        workspace_id: workspace_id.clone(),
        message_id: message.message_id.clone(),
        chat_key: chat.clone(),
        direction: message.direction,
        timestamp: message.timestamp,
        kind: message.kind,
        text: message.text,
        media: message.media,
        attachment: None,
        attachment_started_at: None,
        contact_name: message.contact_name,
        state: MessageState::Received,
        received_at: deps.clock.now(),
    };
    let needs_queueing = match deps.store.insert_message(&stored).await? {
        Insert::Inserted => true,
        // Stored by an earlier delivery that failed before queueing it.
        Insert::Exists(existing) => existing.state == MessageState::Received,
    };
    if !needs_queueing {
        tally.duplicates += 1;
        tracing::info!(workspace_id = %workspace_id, message_id = %stored.message_id, "duplicate delivery");
        return Ok(None);
    }
    Ok(Some(MessageRef {
        workspace_id,
        message_id: stored.message_id,
        chat_key: chat,
        resend: 0,
    }))
}
