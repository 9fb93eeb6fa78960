//! The `note-append` worker: hands each chat's messages of a batch to
//! [`crate::day_notes`] together, so a burst costs one note write
//! (record-sync passes a chat's messages on in one queue message, so the
//! queue cannot split them). When a write fails it decides what becomes of
//! the rest: back to record-sync if the record is gone, waiting for a spent
//! budget, or parked until the CRM is connected again.

use std::time::SystemTime;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};

use super::batch::{
    GroupOutcome, Received, RetryPolicy, live_workspace, record_failures, run_fifo_batch,
};
use crate::crm::CrmError;
use crate::day_notes;
use crate::deps::Deps;
use crate::error::WorkError;
use crate::model::ChatPatch;
use crate::queue::{MessageRef, QueueName};
use crate::sync::{
    park, parking_reason, record_of, resend_marker, sync_crm, sync_target, wait_for_budget,
};
use crate::synclog::{self, LogEntryDraft, SyncEvent};
use serde_json::json;

/// `deadline`: when the invocation times out (Lambda's context), if known.
pub async fn handle(
    deps: &Deps,
    event: SqsEvent,
    deadline: Option<SystemTime>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    let outcome = run_fifo_batch(
        deps.queue.as_ref(),
        QueueName::Notes,
        RetryPolicy::from_config(&deps.config),
        deadline,
        event,
        |group| append_group(deps, group),
    )
    .await;
    record_failures(deps, &outcome.failures).await;
    Ok(outcome.response)
}

async fn append_group(deps: &Deps, group: Vec<Received>) -> GroupOutcome {
    let workspace = match live_workspace(deps, &group).await {
        Ok(workspace) => workspace,
        Err(dropped_or_failed) => return dropped_or_failed,
    };
    let messages: Vec<MessageRef> = group.iter().map(|m| m.reference.clone()).collect();
    let (done, error) = match day_notes::append(deps, &workspace, &messages).await {
        Ok(()) => return GroupOutcome::all(group.len()),
        Err(failure) => failure,
    };
    // A chat without a record (forgotten after a deletion, while these
    // messages were on their way) is linked by record-sync first.
    if matches!(error, WorkError::Unlinked) {
        return match send_back_to_sync(deps, &group[done..]).await {
            Ok(()) => GroupOutcome::all(group.len()),
            Err(e) => GroupOutcome {
                done,
                error: Some(e),
            },
        };
    }
    // A refused note write may mean a person deleted the record: then the
    // rest of the group goes back to record-sync to find or make another.
    let mut error = error;
    if matches!(error, WorkError::Crm(CrmError::Rejected { .. })) {
        match relink_if_record_gone(deps, &group[done..]).await {
            Ok(true) => return GroupOutcome::all(group.len()),
            Ok(false) => {}
            // A broken connection, found while checking, parks below.
            Err(check_failed) => error = check_failed,
        }
    }
    // A spent API budget: the rest of the group waits for it to come back.
    if let WorkError::Crm(CrmError::BudgetSpent { resets_at }) = error {
        let rest: Vec<&str> = group[done..]
            .iter()
            .map(|m| m.reference.message_id.as_str())
            .collect();
        let workspace_id = &group[0].reference.workspace_id;
        let waited = match sync_crm(deps, workspace_id).await {
            Ok(crm) => wait_for_budget(deps, workspace_id, crm, resets_at, &rest).await,
            Err(e) => Err(e),
        };
        return match waited {
            Ok(()) => GroupOutcome::all(group.len()),
            Err(e) => GroupOutcome {
                done,
                error: Some(e),
            },
        };
    }
    // Without a working connection the rest of the group waits (parked) for
    // the organization to connect again, instead of failing into the DLQ.
    let Some(reason) = parking_reason(&error) else {
        return GroupOutcome {
            done,
            error: Some(error),
        };
    };
    for (index, received) in group.iter().enumerate().skip(done) {
        let r = &received.reference;
        if let Err(error) = park(deps, &r.workspace_id, &r.message_id, reason).await {
            return GroupOutcome {
                done: index,
                error: Some(error),
            };
        }
    }
    GroupOutcome::all(group.len())
}

/// If the chat's record no longer exists in the CRM, forgets it and sends
/// `rest` back through record-sync (which links the chat afresh); true if
/// it did.
async fn relink_if_record_gone(deps: &Deps, rest: &[Received]) -> Result<bool, WorkError> {
    let Some(first) = rest.first() else {
        return Ok(false);
    };
    let r = &first.reference;
    let Some(chat) = deps.store.chat(&r.workspace_id, &r.chat_key).await? else {
        return Ok(false);
    };
    let Some(record) = &chat.record else {
        return Ok(false);
    };
    let crm = match sync_target(deps, &r.workspace_id).await {
        Ok((_, crm, _)) => crm,
        // Nothing to relink through: the message parks where it is.
        Err(WorkError::NotConnected | WorkError::NotActive) => return Ok(false),
        Err(other) => return Err(other),
    };
    if crm.record_exists(record).await? {
        return Ok(false);
    }
    let forgotten = deps
        .store
        .patch_chat(
            &r.workspace_id,
            &r.chat_key,
            &ChatPatch {
                forget_record: Some(record.clone()),
                ..ChatPatch::default()
            },
        )
        .await?;
    if !forgotten {
        // Linked to another record meanwhile: the group is retried on it.
        return Err(WorkError::Contended(
            "the chat was linked to another record meanwhile".into(),
        ));
    }
    // The contact's other chats must not be linked to it either.
    deps.store
        .forget_contact_record(&r.workspace_id, &chat.contact, record)
        .await?;
    tracing::warn!(workspace_id = %r.workspace_id, chat = %chat.log_id(), record = %record_of(record), "the chat's record was deleted in the CRM; linking afresh");
    synclog::record(
        deps,
        LogEntryDraft {
            workspace_id: &r.workspace_id,
            event: SyncEvent::RecordGone,
            chat_key: Some(&r.chat_key),
            message_id: Some(&r.message_id),
            detail: json!({ "record": record }),
        },
    )
    .await;
    send_back_to_sync(deps, rest).await?;
    Ok(true)
}

/// Queues messages for record-sync again (marked as deliberate re-sends).
async fn send_back_to_sync(deps: &Deps, messages: &[Received]) -> Result<(), WorkError> {
    let again: Vec<MessageRef> = messages
        .iter()
        .map(|m| MessageRef {
            resend: resend_marker(),
            ..m.reference.clone()
        })
        .collect();
    deps.queue.send_all(QueueName::Sync, &again).await?;
    Ok(())
}
