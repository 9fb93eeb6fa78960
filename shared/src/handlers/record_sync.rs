//! The `record-sync` worker: runs the workspace jobs that travel on the
//! sync queue (re-queue, retention, deletion pages), and for each chat
//! message has [`crate::linking`] make sure its chat is linked to a CRM
//! record, then passes the chat's messages on to note-append together. A
//! spent budget or a broken connection parks the message here, to be
//! queued again later.

use std::time::SystemTime;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};

use super::batch::{GroupOutcome, Received, RetryPolicy, record_failures, run_fifo_batch};
use crate::crm::CrmError;
use crate::deletion::{self, PageOutcome};
use crate::deps::Deps;
use crate::error::WorkError;
use crate::linking;
use crate::model::{MessageState, Workspace};
use crate::queue::{Job, QueueName};
use crate::requeue;
use crate::retention;
use crate::sync::{park, parking_reason, sync_crm, wait_for_budget};

/// SQS keeps a message invisible for at most 12 hours.
const MAX_VISIBILITY_SECS: i64 = 43_200;

/// `deadline`: when the invocation times out (Lambda's context), if known.
pub async fn handle(
    deps: &Deps,
    event: SqsEvent,
    deadline: Option<SystemTime>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    // Workspace jobs (re-queue, retention, deletion) travel in groups of
    // their own; the chats' messages go through the FIFO batch.
    let (jobs, messages): (Vec<_>, Vec<_>) = event
        .records
        .into_iter()
        .partition(|record| record.body.as_deref().and_then(Job::from_body).is_some());
    let mut job_failures = Vec::new();
    for record in jobs {
        let Some(job) = record.body.as_deref().and_then(Job::from_body) else {
            continue;
        };
        if !run_job(deps, &job, record.receipt_handle.as_deref(), deadline).await {
            job_failures.push(record.message_id.unwrap_or_default());
        }
    }
    let mut batch = SqsEvent::default();
    batch.records = messages;
    let outcome = run_fifo_batch(
        deps.queue.as_ref(),
        QueueName::Sync,
        RetryPolicy::from_config(&deps.config),
        deadline,
        batch,
        |group| sync_group(deps, group),
    )
    .await;
    record_failures(deps, &outcome.failures).await;
    let mut response = outcome.response;
    response
        .batch_item_failures
        .extend(job_failures.into_iter().map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        }));
    Ok(response)
}

/// Runs one page of a workspace's job; false when the page is to run
/// again: it failed, or it is too early for it.
async fn run_job(
    deps: &Deps,
    job: &Job,
    receipt_handle: Option<&str>,
    deadline: Option<SystemTime>,
) -> bool {
    let outcome = crate::budget::within(deadline, async {
        match job {
            Job::Requeue(job) if job.not_before.is_some_and(|at| at > deps.clock.now()) => {
                let wait = job.not_before.unwrap_or_default() - deps.clock.now();
                Ok(PageOutcome::NotYet {
                    in_secs: wait.clamp(1, MAX_VISIBILITY_SECS) as i32,
                })
            }
            Job::Requeue(job) => requeue::run_page(deps, job).await.map(|_| PageOutcome::Ran),
            Job::DeleteWorkspace(job) => deletion::run_page(deps, job).await,
            Job::ApplyRetention(job) => retention::run_page(deps, job)
                .await
                .map(|_| PageOutcome::Ran),
        }
    })
    .await;
    match outcome {
        Ok(PageOutcome::Ran) => true,
        Ok(PageOutcome::NotYet { in_secs }) => {
            // A FIFO queue has no per-message delay: the page comes back
            // when it is time, by its visibility.
            if let Some(handle) = receipt_handle
                && let Err(error) = deps
                    .queue
                    .retry_after(QueueName::Sync, handle, in_secs)
                    .await
            {
                tracing::warn!(workspace_id = %job.workspace_id(), job = job.kind(), %error, "could not delay a job page; it comes back after the visibility time-out");
            }
            false
        }
        Err(error) => {
            tracing::warn!(workspace_id = %job.workspace_id(), job = job.kind(), %error, "job page failed; it runs again");
            false
        }
    }
}

/// Links each message's chat, then passes the group's messages on together
/// (one notes-queue message for the chat's messages of this batch), so that
/// note-append sees a burst at once (one note write).
async fn sync_group(deps: &Deps, group: Vec<Received>) -> GroupOutcome {
    let workspace = match super::batch::live_workspace(deps, &group).await {
        Ok(workspace) => workspace,
        Err(dropped_or_failed) => return dropped_or_failed,
    };
    let mut forward = Vec::new();
    let mut failure = None;
    for (done, message) in group.iter().enumerate() {
        match sync_message(deps, &workspace, message).await {
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

/// Whether the message goes on to note-append (false: done, skipped or
/// parked).
async fn sync_message(
    deps: &Deps,
    workspace: &Workspace,
    message: &Received,
) -> Result<bool, WorkError> {
    let r = &message.reference;
    let stored = deps
        .store
        .message(&r.workspace_id, &r.message_id)
        .await?
        .ok_or_else(|| {
            WorkError::Inconsistent(format!("message {} is not stored", r.message_id))
        })?;
    if matches!(
        stored.state,
        MessageState::Appended { .. } | MessageState::Skipped { .. }
    ) {
        return Ok(false);
    }
    let chat = deps
        .store
        .chat(&r.workspace_id, &r.chat_key)
        .await?
        .ok_or_else(|| {
            WorkError::Inconsistent(format!("chat of {} is not stored", r.message_id))
        })?;
    if let Some(reason) = &chat.sync_stopped {
        linking::skip(deps, workspace.retention, &chat, &r.message_id, reason).await?;
        return Ok(false);
    }
    match linking::link(deps, workspace.retention, &chat, &stored).await {
        Ok(proceed) => Ok(proceed),
        Err(WorkError::Crm(CrmError::BudgetSpent { resets_at })) => {
            let crm = sync_crm(deps, &r.workspace_id).await?;
            wait_for_budget(deps, &r.workspace_id, crm, resets_at, &[&r.message_id])
                .await
                .map(|()| false)
        }
        // Kept, not failed: activating or connecting (again) queues it anew.
        Err(error) => match parking_reason(&error) {
            Some(reason) => park(deps, &r.workspace_id, &r.message_id, reason)
                .await
                .map(|()| false),
            None => Err(error),
        },
    }
}
