//! Deleting a workspace: a job on the sync queue, never work inside an HTTP
//! request. The request marks the workspace as being deleted — from then on
//! it accepts no work: its API tokens authenticate no one, deliveries for its
//! WhatsApp numbers are acknowledged and dropped, the workers drop its
//! messages and write nothing for it — and queues the job, which
//! record-sync runs a page at a time, each page ending by queueing the next:
//!
//! 1. **Revoke**: every CRM grant the workspace holds (the organization's,
//!    every personal one) is revoked at the CRM and its connection removed.
//!    A grant the CRM could not revoke now (down, rate-limiting) keeps its
//!    connection, which holds the token to revoke it with, for the next
//!    round: it is retried, never forgotten.
//! 2. **Sweep**: every other item of the workspace, [`PAGE_SIZE`] a page,
//!    with the global lookups they lead to (tokens, numbers, OAuth states).
//! 3. **Verify**: once nothing that began before the deletion can still be
//!    writing for it (the settle time, longer than any function runs), if
//!    anything is left — a grant not revoked yet, an item a late writer
//!    made — another round follows after a back-off; else the workspace
//!    item goes, the last of it.
//!
//! Any page can run again (a page cut off by a time-out is redelivered):
//! revoking or removing what is gone already changes nothing.

use serde::{Deserialize, Serialize};

use crate::budget;
use crate::crm::CrmError;
use crate::deps::{Deps, HTTP_CALL_TIMEOUT};
use crate::error::{QueueError, StoreError, WorkError};
use crate::grants::{self, RevokeError};
use crate::model::{Connection, ConnectionKind, CrmKind};
use crate::queue::{Job, QueueName};

/// Items removed per job page: a query and four batch writes, well inside
/// a worker's 30 s.
pub const PAGE_SIZE: usize = 100;

/// The CRMs whose grants a workspace may hold.
const CRMS: [CrmKind; CrmKind::ALL.len()] = CrmKind::ALL;

/// The longest pause between two rounds (a CRM down for long is asked
/// again every quarter of an hour).
const MAX_ROUND_BACKOFF_SECS: i64 = 900;

/// What travels on the sync queue for a deletion: which workspace, and the
/// step this page runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "job", rename = "delete_workspace")]
pub struct DeletionJob {
    pub workspace_id: String,
    /// One id per request, so that its pages are distinct messages.
    pub job_id: String,
    pub step: DeletionStep,
    /// Rounds so far (revoke, sweep, verify); the first is 1.
    pub round: u32,
    /// Pages run so far: each page's message is distinct by it.
    pub pages: u32,
    /// Not run before this time (unix seconds): a round that backs off.
    #[serde(default)]
    pub not_before: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DeletionStep {
    /// Revoke the workspace's CRM grants and remove their connections.
    Revoke,
    /// Remove its other items, a page at a time, after this sort key.
    Sweep { after: Option<String> },
    /// Once it has settled, remove the workspace item if nothing else is
    /// left, or start another round.
    Verify,
}

/// What running a page came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageOutcome {
    /// Done; the next page (if any) is queued.
    Ran,
    /// Too early: run this page again in so many seconds.
    NotYet { in_secs: i32 },
}

/// Asks for the workspace to be deleted: one send. The job's id.
pub async fn request(deps: &Deps, workspace_id: &str) -> Result<String, QueueError> {
    let job = DeletionJob {
        workspace_id: workspace_id.to_owned(),
        job_id: uuid::Uuid::new_v4().to_string(),
        step: DeletionStep::Revoke,
        round: 1,
        pages: 0,
        not_before: 0,
    };
    let job_id = job.job_id.clone();
    deps.queue
        .send_job(QueueName::Sync, &Job::DeleteWorkspace(job))
        .await?;
    tracing::info!(workspace_id, %job_id, "workspace deletion requested");
    Ok(job_id)
}

/// Whether work may still be done for the workspace: not once it is being
/// deleted, nor once it is gone.
pub async fn accepts_work(deps: &Deps, workspace_id: &str) -> Result<bool, StoreError> {
    Ok(deps
        .store
        .workspace(workspace_id)
        .await?
        .is_some_and(|w| w.accepts_work()))
}

/// Runs one page of the job, then queues the next if there is one.
pub async fn run_page(deps: &Deps, job: &DeletionJob) -> Result<PageOutcome, WorkError> {
    let now = deps.clock.now();
    if job.not_before > now {
        return Ok(not_yet(job.not_before - now));
    }
    let workspace_id = job.workspace_id.as_str();
    let next = match &job.step {
        DeletionStep::Revoke => {
            let tally = revoke_grants(deps, workspace_id).await?;
            tracing::info!(
                workspace_id,
                job_id = %job.job_id,
                round = job.round,
                revoked = tally.revoked,
                pending = tally.pending,
                "workspace deletion: grants revoked"
            );
            Some(DeletionStep::Sweep { after: None })
        }
        DeletionStep::Sweep { after } => {
            let purged = deps
                .store
                .purge_workspace_page(workspace_id, after.as_deref(), PAGE_SIZE)
                .await?;
            tracing::info!(
                workspace_id,
                job_id = %job.job_id,
                page = job.pages + 1,
                removed = purged.count,
                "workspace deletion: items removed"
            );
            Some(match purged.next {
                Some(after) => DeletionStep::Sweep { after: Some(after) },
                None => DeletionStep::Verify,
            })
        }
        DeletionStep::Verify => {
            let settled_at = deps
                .store
                .workspace(workspace_id)
                .await?
                .and_then(|w| w.deleting_since)
                .map_or(now, |since| {
                    since + deps.config.workspace_deletion_settle_secs
                });
            if settled_at > now {
                return Ok(not_yet(settled_at - now));
            }
            let left = deps.store.workspace_leftovers(workspace_id).await?;
            if left.is_empty() {
                deps.store.remove_workspace_item(workspace_id).await?;
                tracing::info!(
                    workspace_id,
                    job_id = %job.job_id,
                    rounds = job.round,
                    pages = job.pages + 1,
                    "workspace deleted"
                );
                None
            } else {
                tracing::warn!(
                    workspace_id,
                    job_id = %job.job_id,
                    round = job.round,
                    left = ?left,
                    "workspace deletion: items left (grants not revoked yet, or written late); another round follows"
                );
                Some(DeletionStep::Revoke)
            }
        }
    };
    if let Some(step) = next {
        let another_round = step == DeletionStep::Revoke;
        let round = job.round + u32::from(another_round);
        let next_page = DeletionJob {
            step,
            round,
            pages: job.pages + 1,
            not_before: if another_round {
                now + round_backoff_secs(deps.config.retry_backoff_base_secs, job.round)
            } else {
                0
            },
            ..job.clone()
        };
        deps.queue
            .send_job(QueueName::Sync, &Job::DeleteWorkspace(next_page))
            .await?;
    }
    Ok(PageOutcome::Ran)
}

fn not_yet(secs: i64) -> PageOutcome {
    PageOutcome::NotYet {
        in_secs: i32::try_from(secs.clamp(1, MAX_ROUND_BACKOFF_SECS)).unwrap_or(1),
    }
}

/// The pause before round `finished + 1`: the base, doubling, at most a
/// quarter of an hour.
fn round_backoff_secs(base_secs: i32, finished: u32) -> i64 {
    let doublings = finished.saturating_sub(1).min(10);
    (i64::from(base_secs.max(1)) << doublings).min(MAX_ROUND_BACKOFF_SECS)
}

#[derive(Debug, Default)]
struct RevokeTally {
    revoked: usize,
    /// Grants the CRM could not revoke now; their connections stay.
    pending: usize,
}

/// Revokes every grant of the workspace and removes its connections, but
/// keeps the connection of a grant the CRM could not revoke now.
async fn revoke_grants(deps: &Deps, workspace_id: &str) -> Result<RevokeTally, WorkError> {
    // Again here, in case the request's own writes failed after it queued
    // the job: the workspace accepts no work, its numbers route nowhere.
    deps.store
        .mark_workspace_deleting(workspace_id, deps.clock.now())
        .await?;
    deps.store.remove_number_lookups(workspace_id).await?;
    let mut tally = RevokeTally::default();
    for crm in CRMS {
        let mut connections = deps.store.connections(workspace_id, crm).await?;
        // Personal ones first, so none outlives the organization's.
        connections.sort_by_key(|c| c.kind == ConnectionKind::Organization);
        for connection in &connections {
            // A personal connection made with the organization's holds its
            // grant, which goes with the organization's.
            if connection.shares_organization_grant {
                deps.store.delete_connection(connection).await?;
                continue;
            }
            match revoke_in_time(deps, connection).await {
                Ok(()) => tally.revoked += 1,
                Err(e) if e.is_transient() => {
                    tracing::warn!(workspace_id, user_id = %connection.user_id, kind = ?connection.kind, error = %e, "workspace deletion: the CRM could not revoke a grant now; it is retried");
                    tally.pending += 1;
                    continue;
                }
                Err(e) => {
                    tracing::error!(workspace_id, user_id = %connection.user_id, kind = ?connection.kind, error = %e, "workspace deletion: a grant cannot be revoked from here; its connection is removed all the same");
                }
            }
            deps.store.delete_connection(connection).await?;
        }
    }
    Ok(tally)
}

/// Revokes a grant within the invocation's time: a revocation there is no
/// time left for fails as transient (retried next round).
async fn revoke_in_time(deps: &Deps, connection: &Connection) -> Result<(), RevokeError> {
    let late = |why: String| RevokeError::Crm(CrmError::Transport(why));
    let timeout = budget::call_timeout(HTTP_CALL_TIMEOUT).map_err(|e| late(e.to_string()))?;
    tokio::time::timeout(timeout, grants::revoke(deps, connection))
        .await
        .unwrap_or_else(|_| Err(late("the revocation timed out".into())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::Job;
    use crate::requeue::RequeueJob;
    use crate::retention::RetentionJob;

    #[test]
    fn rounds_back_off_from_the_base_to_a_quarter_of_an_hour() {
        assert_eq!(round_backoff_secs(10, 1), 10);
        assert_eq!(round_backoff_secs(10, 2), 20);
        assert_eq!(round_backoff_secs(10, 4), 80);
        assert_eq!(round_backoff_secs(10, 30), 900);
        assert_eq!(round_backoff_secs(0, 1), 1, "never without a pause");
    }

    #[test]
    fn a_wait_is_at_least_a_second_and_at_most_the_longest_pause() {
        assert_eq!(not_yet(0), PageOutcome::NotYet { in_secs: 1 });
        assert_eq!(not_yet(42), PageOutcome::NotYet { in_secs: 42 });
        assert_eq!(not_yet(86_400), PageOutcome::NotYet { in_secs: 900 });
    }

    #[test]
    fn job_messages_read_back_as_the_job_they_are_and_chat_messages_as_none() {
        let deletion = Job::DeleteWorkspace(DeletionJob {
            workspace_id: "ws".into(),
            job_id: "j".into(),
            step: DeletionStep::Sweep {
                after: Some("MSG#wamid.1".into()),
            },
            round: 1,
            pages: 3,
            not_before: 0,
        });
        let requeue = Job::Requeue(RequeueJob {
            not_before: None,
            workspace_id: "ws".into(),
            after: None,
            job_id: "j".into(),
        });
        let retention = Job::ApplyRetention(RetentionJob {
            workspace_id: "ws".into(),
            job_id: "j".into(),
            days: 7,
            after: Some("LOG#1".into()),
            pages: 3,
        });
        for job in [&deletion, &requeue, &retention] {
            let body = serde_json::to_string(job).expect("json");
            assert_eq!(Job::from_body(&body).as_ref(), Some(job), "{body}");
        }
        assert!(
            serde_json::to_string(&deletion)
                .expect("json")
                .contains(r#""job":"delete_workspace""#)
        );
        // What the re-queue job's messages looked like before deletion jobs.
        let earlier = r#"{"job":"requeue_waiting","workspace_id":"ws","after":null,"job_id":"j"}"#;
        assert_eq!(Job::from_body(earlier), Some(requeue.clone()));
        let chat_message =
            r#"{"workspace_id":"ws","message_id":"wamid.1","chat_key":"1#44","resend":0}"#;
        assert_eq!(Job::from_body(chat_message), None);
        assert_ne!(deletion.group_id(), requeue.group_id());
        assert_ne!(deletion.group_id(), retention.group_id());
        assert_ne!(deletion.dedup_id(), retention.dedup_id());
        assert_ne!(deletion.dedup_id(), requeue.dedup_id());
    }

    #[test]
    fn every_page_of_a_deletion_is_a_distinct_message() {
        let page = |pages| {
            Job::DeleteWorkspace(DeletionJob {
                workspace_id: "ws".into(),
                job_id: "j".into(),
                step: DeletionStep::Verify,
                round: 1,
                pages,
                not_before: 0,
            })
        };
        assert_ne!(page(1).dedup_id(), page(2).dedup_id());
        assert_eq!(page(1).group_id(), page(2).group_id());
    }
}
