//! Re-queueing the messages that waited (for a connection, active settings
//! or a WhatsApp token): a job on the sync queue, never a loop inside an
//! HTTP request. The request path sends one job message; record-sync runs
//! it a page at a time, each page ending by queueing the next, so a
//! workspace with thousands of waiting messages is re-queued in full
//! however long it takes, and a page cut off by a time-out is simply run
//! again (marking is conditional, so nothing is sent twice).

use serde::{Deserialize, Serialize};

use crate::deps::Deps;
use crate::error::{QueueError, WorkError};
use crate::model::{MessageState, is_held_chat_key};
use crate::queue::{Job, MessageRef, QueueName};
use crate::sync::resend_marker;

/// Waiting messages re-queued per job message: one UpdateItem each and one
/// queue message per chat (a SendMessageBatch per ten chats), well inside a
/// worker's 30 s.
pub const PAGE_SIZE: usize = 100;

/// What travels on the sync queue for a re-queue: which workspace, and where
/// in its waiting messages this page starts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "job", rename = "requeue_waiting")]
pub struct RequeueJob {
    pub workspace_id: String,
    /// The cursor of the page to run (none: from the oldest).
    #[serde(default)]
    pub after: Option<String>,
    /// One id per request, so two requests are two jobs to FIFO
    /// deduplication, and a job's pages are distinct messages.
    pub job_id: String,
    /// Not run before this (unix seconds): a re-queue for when a CRM's
    /// API budget is back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<i64>,
}

/// Asks for the workspace's waiting messages to be queued again: one send.
pub async fn request(deps: &Deps, workspace_id: &str) -> Result<(), QueueError> {
    request_at(deps, workspace_id, None).await
}

/// Asks for the waiting messages to be queued again once it is
/// `not_before` (now, if `None`).
pub async fn request_at(
    deps: &Deps,
    workspace_id: &str,
    not_before: Option<i64>,
) -> Result<(), QueueError> {
    let job = RequeueJob {
        workspace_id: workspace_id.to_owned(),
        after: None,
        job_id: uuid::Uuid::new_v4().to_string(),
        not_before,
    };
    let job_id = job.job_id.clone();
    deps.queue
        .send_job(QueueName::Sync, &Job::Requeue(job))
        .await?;
    tracing::info!(workspace_id, %job_id, "re-queue of waiting messages requested");
    Ok(())
}

/// Runs one page of a job, then queues the next page if there is more.
/// The count of messages queued again.
pub async fn run_page(deps: &Deps, job: &RequeueJob) -> Result<usize, WorkError> {
    let workspace_id = job.workspace_id.as_str();
    // A workspace being deleted gets no more work: the job ends here.
    if !crate::deletion::accepts_work(deps, workspace_id).await? {
        return Ok(0);
    }
    let page = deps
        .store
        .waiting_messages(workspace_id, job.after.as_deref(), PAGE_SIZE)
        .await?;
    let mut marked = Vec::new();
    // Messages of a username without a number wait for a delivery that
    // tells it, not for a re-queue: there is no chat to sync them to.
    for message in page.items.iter().filter(|m| !is_held_chat_key(&m.chat_key)) {
        // Marked before it is sent: a worker may take the copy at once and
        // park it again, and that new `waiting` must not be overwritten by a
        // late `queued` (the message would then be on no queue, unseen by
        // the next re-queue). Another re-queue that got there first wins.
        if deps
            .store
            .set_message_state(
                workspace_id,
                &message.message_id,
                &MessageState::Queued,
                Some(&["waiting"]),
            )
            .await?
        {
            marked.push(message);
        }
    }
    let references: Vec<MessageRef> = marked
        .iter()
        .map(|message| MessageRef {
            workspace_id: workspace_id.to_owned(),
            message_id: message.message_id.clone(),
            chat_key: message.chat_key.clone(),
            resend: resend_marker(),
        })
        .collect();
    if let Err(error) = deps.queue.send_all(QueueName::Sync, &references).await {
        // Back to waiting, so this page's next run finds them again.
        for message in &marked {
            deps.store
                .set_message_state(
                    workspace_id,
                    &message.message_id,
                    &message.state,
                    Some(&["queued"]),
                )
                .await?;
        }
        return Err(error.into());
    }
    if let Some(next) = page.next {
        let next_page = RequeueJob {
            after: Some(next),
            not_before: None,
            ..job.clone()
        };
        deps.queue
            .send_job(QueueName::Sync, &Job::Requeue(next_page))
            .await?;
    }
    if !references.is_empty() {
        tracing::info!(
            workspace_id,
            job_id = %job.job_id,
            count = references.len(),
            "waiting messages queued again"
        );
    }
    Ok(references.len())
}
