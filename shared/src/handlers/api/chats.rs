//! Chats: listing them, their messages, who is responsible, which record,
//! and replaying a message.

use lambda_http::Request;
use serde::Deserialize;
use serde_json::json;

use crate::deps::Deps;
use crate::handlers::http::{
    ApiError, HttpResponse, caller, json_body, json_response, query_params,
};
use crate::model::{Chat, ChatPatch, MessageState, RecordRef, User, chat_key_for_logs};
use crate::queue::{MessageRef, QueueName};
use crate::sync::resend_marker;
use crate::synclog::{self, LogEntryDraft, SyncEvent};

/// The message ledger of one chat: every message with its state
/// (`received`, `queued`, `waiting` and why, `appended` to which note), so a
/// late message is never mistaken for a lost one. No message text.
pub(super) async fn chat_messages(
    deps: &Deps,
    req: &Request,
    chat_key: &str,
) -> Result<HttpResponse, ApiError> {
    let me = caller(deps, req).await?;
    let chat = own_chat(deps, &me, chat_key).await?;
    let messages = deps.store.chat_messages(&me.workspace_id, chat_key).await?;
    let ledger: Vec<serde_json::Value> = messages
        .iter()
        .map(|m| {
            let mut entry = json!({
                "message_id": m.message_id,
                "timestamp": m.timestamp,
                "direction": m.direction,
                "kind": m.kind,
            });
            if let (Ok(state), Some(object)) =
                (serde_json::to_value(&m.state), entry.as_object_mut())
            {
                object.extend(state.as_object().cloned().unwrap_or_default());
            }
            entry
        })
        .collect();
    Ok(json_response(
        200,
        &json!({ "chat": chat_key, "record": chat.record, "messages": ledger }),
    ))
}

/// The caller's chat, or 404 (a chat of another workspace is not found).
async fn own_chat(deps: &Deps, me: &User, chat_key: &str) -> Result<Chat, ApiError> {
    deps.store
        .chat(&me.workspace_id, chat_key)
        .await?
        .ok_or_else(|| unknown_chat(chat_key))
}

/// The refusal names the chat without the contact's number in clear: it is
/// logged too.
fn unknown_chat(chat_key: &str) -> ApiError {
    ApiError::NotFound(format!(
        "no chat {} in this workspace",
        chat_key_for_logs(chat_key)
    ))
}

fn chat_summary(chat: &Chat) -> serde_json::Value {
    json!({
        "chat": chat.key,
        "phone_number_id": chat.phone_number_id,
        "contact": chat.contact.as_str(),
        "contact_name": chat.contact_name,
        "record": chat.record,
        "record_chosen_by": chat.record_chosen_by,
        "ambiguous_candidates": chat.ambiguous_candidates,
        "responsible_user_id": chat.responsible_user_id,
        "sync_stopped": chat.sync_stopped,
    })
}

/// The workspace's chats; `?ambiguous=true`: only those whose number
/// matched several records and that no person has settled yet.
pub(super) async fn list_chats(deps: &Deps, req: &Request) -> Result<HttpResponse, ApiError> {
    let me = caller(deps, req).await?;
    let only_ambiguous = query_params(req).get("ambiguous").map(String::as_str) == Some("true");
    let chats: Vec<serde_json::Value> = deps
        .store
        .chats(&me.workspace_id)
        .await?
        .iter()
        .filter(|c| !only_ambiguous || !c.ambiguous_candidates.is_empty())
        .map(chat_summary)
        .collect();
    Ok(json_response(200, &json!({ "chats": chats })))
}

#[derive(Deserialize)]
struct Responsible {
    user_id: Option<String>,
}

/// Managers assign anyone; a member may take a chat on or hand it back.
pub(super) async fn set_responsible(
    deps: &Deps,
    req: &Request,
    chat_key: &str,
) -> Result<HttpResponse, ApiError> {
    let me = caller(deps, req).await?;
    let chat = own_chat(deps, &me, chat_key).await?;
    let input: Responsible = json_body(req)?;
    let own_change = input.user_id.as_deref().is_none_or(|u| u == me.id)
        && chat
            .responsible_user_id
            .as_deref()
            .is_none_or(|u| u == me.id);
    if !me.role.manages_workspace() && !own_change {
        return Err(ApiError::Forbidden(
            "a member can only make themselves responsible for a chat, or stop being so".into(),
        ));
    }
    if let Some(user_id) = &input.user_id
        && deps.store.user(&me.workspace_id, user_id).await?.is_none()
    {
        return Err(ApiError::BadRequest(format!(
            "user_id {user_id} is not a user of this workspace"
        )));
    }
    let patch = ChatPatch {
        responsible_user_id: Some(input.user_id.clone()),
        ..ChatPatch::default()
    };
    let detail = json!({ "user_id": input.user_id, "by_user": me.id });
    change_chat(
        deps,
        &me,
        chat_key,
        &patch,
        SyncEvent::ResponsibleSet,
        detail,
    )
    .await
}

/// Applies a person's change to a chat, logs it, and answers the chat.
async fn change_chat(
    deps: &Deps,
    me: &User,
    chat_key: &str,
    patch: &ChatPatch,
    event: SyncEvent,
    detail: serde_json::Value,
) -> Result<HttpResponse, ApiError> {
    deps.store
        .patch_chat(&me.workspace_id, chat_key, patch)
        .await?;
    synclog::record(
        deps,
        LogEntryDraft {
            workspace_id: &me.workspace_id,
            event,
            chat_key: Some(chat_key),
            message_id: None,
            detail,
        },
    )
    .await;
    let chat = own_chat(deps, me, chat_key).await?;
    Ok(json_response(200, &chat_summary(&chat)))
}

/// A person settles an ambiguous match: the chosen record is remembered
/// and the chat syncs to it from now on.
pub(super) async fn choose_record(
    deps: &Deps,
    req: &Request,
    chat_key: &str,
) -> Result<HttpResponse, ApiError> {
    let me = caller(deps, req).await?;
    let chat = own_chat(deps, &me, chat_key).await?;
    let chosen: RecordRef = json_body(req)?;
    if !chat.ambiguous_candidates.contains(&chosen) {
        return Err(ApiError::BadRequest(format!(
            "{}/{} is not one of the records that matched this chat's number",
            chosen.module, chosen.id
        )));
    }
    let patch = ChatPatch {
        record: Some(chosen.clone()),
        record_created_by_us: Some(false),
        record_name: Some(None),
        ambiguous_candidates: Some(Vec::new()),
        record_chosen_by: Some(Some(me.id.clone())),
        ..ChatPatch::default()
    };
    let detail = json!({ "record": chosen, "previous": chat.record, "by_user": me.id });
    change_chat(deps, &me, chat_key, &patch, SyncEvent::RecordChosen, detail).await
}

/// How long past its announced next attempt a retrying message (or past
/// its arrival a queued one) may be replayed.
const REPLAY_OVERDUE_SECS: i64 = 15 * 60;

/// Sends a dead-lettered message through the sync again, once its cause is
/// fixed. Day notes hold message ids, so a replay never adds a line twice.
pub(super) async fn replay(
    deps: &Deps,
    req: &Request,
    chat_key: &str,
    message_id: &str,
) -> Result<HttpResponse, ApiError> {
    let me = caller(deps, req).await?;
    own_chat(deps, &me, chat_key).await?;
    let message = deps
        .store
        .message(&me.workspace_id, message_id)
        .await?
        .filter(|m| m.chat_key == chat_key)
        .ok_or_else(|| ApiError::NotFound(format!("no message {message_id} in this chat")))?;
    // A retry long overdue means the queue lost track of the message (the
    // invocation died before it could record the last failure): it is as
    // good as dead-lettered. So is a message still `queued` long after it
    // arrived (a function died between marking it queued and sending it).
    // Replaying one still in flight is harmless anyway: notes hold message
    // ids and a chat creates one record.
    let overdue = |at: i64| at + REPLAY_OVERDUE_SECS < deps.clock.now();
    let replayable = match &message.state {
        MessageState::DeadLettered { .. } => true,
        MessageState::Retrying {
            next_attempt_at, ..
        } => overdue(*next_attempt_at),
        MessageState::Queued => overdue(message.received_at),
        _ => false,
    };
    if !replayable {
        return Err(ApiError::Conflict(format!(
            "message is {}; only a dead-lettered message (or one retrying or queued for over {} min) can be replayed",
            message.state.name(),
            REPLAY_OVERDUE_SECS / 60
        )));
    }
    let reference = MessageRef {
        workspace_id: me.workspace_id.clone(),
        message_id: message_id.to_owned(),
        chat_key: chat_key.to_owned(),
        resend: resend_marker(),
    };
    if !deps
        .store
        .set_message_state(
            &me.workspace_id,
            message_id,
            &MessageState::Queued,
            Some(&["dead_lettered", "retrying", "queued"]),
        )
        .await?
    {
        return Err(ApiError::Conflict("the message changed meanwhile".into()));
    }
    if let Err(e) = deps.queue.send(QueueName::Sync, &reference).await {
        // Back to where it was, so it can be replayed again.
        deps.store
            .set_message_state(&me.workspace_id, message_id, &message.state, None)
            .await?;
        return Err(ApiError::Internal(e.to_string()));
    }
    synclog::record(
        deps,
        LogEntryDraft {
            workspace_id: &me.workspace_id,
            event: SyncEvent::Replayed,
            chat_key: Some(chat_key),
            message_id: Some(message_id),
            detail: json!({ "by_user": me.id }),
        },
    )
    .await;
    Ok(json_response(
        202,
        &json!({ "message_id": message_id, "state": "queued" }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_chat_is_named_without_the_contacts_number() {
        let refusal = unknown_chat("170000000000001#447700900123");
        assert_eq!(
            refusal.to_string(),
            "no chat 170000000000001#+44********23 in this workspace"
        );
    }
}
