//! The `record-sync` worker: makes sure a chat is linked to a CRM record —
//! the remembered one, else one found by the contact's number, else a new
//! one with the right owner — then passes the message on to note-append.

use std::time::SystemTime;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};

use super::batch::{GroupOutcome, Received, run_fifo_batch};
use crate::crm::{Crm, CrmError, NewRecord};
use crate::deps::Deps;
use crate::error::WorkError;
use crate::model::{Chat, Connection, CrmKind, MessageState, RecordRef, StoredMessage};
use crate::queue::QueueName;
use crate::sync::{
    chat_link, choose_owner, confirmed_matches, crm_users, organization_crm, park, parking_reason,
    record_name, record_of, searchable_forms,
};
use crate::synclog;
use crate::whatsapp::Direction;
use serde_json::json;

/// The module new chats land in (configurable settings come with the
/// settings API).
const DESTINATION_MODULE: &str = "Leads";
const LEAD_SOURCE: &str = "WhatsApp";
/// How long a worker may take to create a record before another may try.
const CREATION_CLAIM_SECS: i64 = 120;

/// `deadline`: when the invocation times out (Lambda's context), if known.
pub async fn handle(
    deps: &Deps,
    event: SqsEvent,
    deadline: Option<SystemTime>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    Ok(run_fifo_batch(
        deps.queue.as_ref(),
        QueueName::Sync,
        deps.config.retry_backoff_base_secs,
        deadline,
        event,
        |group| sync_group(deps, group),
    )
    .await)
}

/// Links each message's chat, then passes the group's messages on together,
/// so that note-append sees a burst as one batch (one note write).
async fn sync_group(deps: &Deps, group: Vec<Received>) -> GroupOutcome {
    let mut forward = Vec::new();
    let mut failure = None;
    for (done, message) in group.iter().enumerate() {
        match sync_message(deps, message).await {
            Ok(true) => forward.push(message.reference.clone()),
            Ok(false) => {}
            Err(error) => {
                failure = Some((done, error));
                break;
            }
        }
    }
    if let Err(error) = deps.queue.send_all(QueueName::Notes, &forward).await {
        // Nothing after the last successful send is known to be passed on:
        // the whole group is retried (linking is idempotent).
        return GroupOutcome {
            done: 0,
            error: Some(error.into()),
        };
    }
    match failure {
        Some((done, error)) => GroupOutcome {
            done,
            error: Some(error),
        },
        None => GroupOutcome::all(group.len()),
    }
}

/// Whether the message goes on to note-append (false: done, or parked).
async fn sync_message(deps: &Deps, message: &Received) -> Result<bool, WorkError> {
    let r = &message.reference;
    let stored = deps
        .store
        .message(&r.workspace_id, &r.message_id)
        .await?
        .ok_or_else(|| {
            WorkError::Inconsistent(format!("message {} is not stored", r.message_id))
        })?;
    if matches!(stored.state, MessageState::Appended { .. }) {
        return Ok(false);
    }
    let chat = deps
        .store
        .chat(&r.workspace_id, &r.chat_key)
        .await?
        .ok_or_else(|| {
            WorkError::Inconsistent(format!("chat of {} is not stored", r.message_id))
        })?;
    if let (Some(record), Some(new_name)) = (&chat.record, renamed_to(&chat, &stored)) {
        rename(deps, &chat, record, &new_name, &r.message_id).await?;
    }
    if chat.record.is_none() {
        // A new record is named as the contact was called in this message,
        // not by whatever name a later delivery has already stored.
        let mut chat = chat.clone();
        if let Some(name) = &stored.contact_name {
            chat.contact_name = Some(name.clone());
        }
        let linked = match organization_crm(deps, &r.workspace_id, CrmKind::Zoho).await {
            Ok(Some((connection, crm))) => {
                link_record(deps, &chat, &connection, crm.as_ref(), &r.message_id)
                    .await
                    .map(|_| ())
            }
            Ok(None) => Err(WorkError::NotConnected),
            Err(e) => Err(e),
        };
        if let Err(error) = linked {
            // Kept, not failed: connecting (again) queues it anew.
            return match parking_reason(&error) {
                Some(reason) => park(deps, &r.workspace_id, &r.message_id, CrmKind::Zoho, reason)
                    .await
                    .map(|()| false),
                None => Err(error),
            };
        }
    }
    Ok(true)
}

/// The contact's new WhatsApp name, if they renamed themselves and the chat's
/// record is one this product created (records people made are theirs).
fn renamed_to(chat: &Chat, message: &StoredMessage) -> Option<String> {
    let name = message.contact_name.as_deref()?.trim();
    (chat.record_created_by_us
        && message.direction == Direction::Inbound
        && !name.is_empty()
        && chat.record_name.as_deref() != Some(name))
    .then(|| name.to_owned())
}

async fn rename(
    deps: &Deps,
    chat: &Chat,
    record: &RecordRef,
    name: &str,
    message_id: &str,
) -> Result<(), WorkError> {
    // Best effort: a rename never holds up the messages. Without a working
    // connection the note stage parks the message, and a later one renames.
    let crm = match organization_crm(deps, &chat.workspace_id, CrmKind::Zoho).await {
        Ok(Some((_, crm))) => crm,
        Ok(None) | Err(WorkError::Crm(CrmError::ConnectionBroken(_))) => return Ok(()),
        Err(e) => return Err(e),
    };
    match crm.rename_record(record, name).await {
        Ok(()) => {}
        Err(CrmError::ConnectionBroken(_)) => return Ok(()),
        Err(e) if e.is_transient() => return Err(e.into()),
        Err(e) => {
            tracing::warn!(workspace_id = %chat.workspace_id, chat = %chat.log_id(), error = %e, "rename refused by the CRM");
            synclog::record(
                deps.store.as_ref(),
                deps.clock.now(),
                &chat.workspace_id,
                "rename_failed",
                Some(&chat.key),
                Some(message_id),
                json!({ "record": record, "error": e.to_string() }),
            )
            .await;
            return Ok(());
        }
    }
    deps.store
        .set_record_name(&chat.workspace_id, &chat.key, name)
        .await?;
    synclog::record(
        deps.store.as_ref(),
        deps.clock.now(),
        &chat.workspace_id,
        "renamed",
        Some(&chat.key),
        Some(message_id),
        json!({ "record": record, "from": chat.record_name, "to": name }),
    )
    .await;
    Ok(())
}

/// Finds the chat's record by number or creates it, and remembers it.
async fn link_record(
    deps: &Deps,
    chat: &Chat,
    connection: &Connection,
    crm: &dyn Crm,
    message_id: &str,
) -> Result<RecordRef, WorkError> {
    let mut matches = Vec::new();
    // The forms a CRM may hold the number in, most likely first.
    for form in searchable_forms(&chat.contact) {
        let found = crm.search_by_phone(DESTINATION_MODULE, &form).await?;
        matches = confirmed_matches(found, &chat.contact);
        if !matches.is_empty() {
            break;
        }
    }
    if let Some(best) = matches.first() {
        if matches.len() > 1 {
            let candidates: Vec<String> = matches.iter().map(|m| record_of(&m.record)).collect();
            tracing::warn!(
                workspace_id = %chat.workspace_id,
                chat = %chat.log_id(),
                ?candidates,
                chosen = %record_of(&best.record),
                "several records hold this number; chose the most recently modified"
            );
        }
        deps.store
            .link_chat_record(&chat.workspace_id, &chat.key, &best.record, None)
            .await?;
        tracing::info!(
            workspace_id = %chat.workspace_id,
            chat = %chat.log_id(),
            record = %record_of(&best.record),
            "matched existing record by phone"
        );
        let candidates: Vec<String> = matches.iter().map(|m| record_of(&m.record)).collect();
        synclog::record(
            deps.store.as_ref(),
            deps.clock.now(),
            &chat.workspace_id,
            "matched",
            Some(&chat.key),
            Some(message_id),
            json!({ "record": best.record, "by": "phone", "candidates": candidates }),
        )
        .await;
        return Ok(best.record.clone());
    }

    let now = deps.clock.now();
    if !deps
        .store
        .claim_record_creation(
            &chat.workspace_id,
            &chat.key,
            message_id,
            now,
            now + CREATION_CLAIM_SECS,
        )
        .await?
    {
        // Another worker is creating it right now (or just did): try again
        // shortly and find it linked.
        return Err(WorkError::Contended(
            "the chat's record is being created by another worker".into(),
        ));
    }
    let owner_email = match deps.store.whatsapp_number(&chat.phone_number_id).await? {
        Some(number) => deps
            .store
            .user(&chat.workspace_id, &number.owner_user_id)
            .await?
            .map(|u| u.email),
        None => None,
    };
    let users = crm_users(deps, crm, &chat.workspace_id, connection.crm).await?;
    let (owner_id, owner_reason) = choose_owner(&users, owner_email.as_deref(), connection);
    let name = record_name(chat.contact_name.as_deref(), &chat.contact);
    let created = crm
        .create_record(&NewRecord {
            module: DESTINATION_MODULE.to_owned(),
            name: name.clone(),
            phone: chat.contact.clone(),
            lead_source: LEAD_SOURCE.to_owned(),
            chat_link: chat_link(&chat.contact),
            owner_id: Some(owner_id.clone()),
        })
        .await;
    let record = match created {
        Ok(record) => record,
        // Refused outright: nothing was created, so the claim can go.
        Err(e @ CrmError::Rejected { .. }) => {
            deps.store
                .release_record_claim(&chat.workspace_id, &chat.key, message_id)
                .await?;
            return Err(e.into());
        }
        // Anything else may or may not have created the record: the claim
        // stays with this message until it expires.
        Err(e) => return Err(e.into()),
    };
    deps.store
        .link_chat_record(&chat.workspace_id, &chat.key, &record, Some(&name))
        .await?;
    tracing::info!(
        workspace_id = %chat.workspace_id,
        chat = %chat.log_id(),
        record = %record_of(&record),
        owner_id,
        owner_reason,
        "created record"
    );
    synclog::record(
        deps.store.as_ref(),
        deps.clock.now(),
        &chat.workspace_id,
        "created",
        Some(&chat.key),
        Some(message_id),
        json!({ "record": record, "owner_id": owner_id, "owner_reason": owner_reason }),
    )
    .await;
    Ok(record)
}
