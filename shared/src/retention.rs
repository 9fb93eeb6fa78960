//! How long a workspace keeps what holds message content: finished messages
//! in the ledger (their text, media and attachment markers), the day-note
//! items that hold each line's text, and the sync log (contact names, file
//! names). One setting per workspace, in whole days; the owner or an admin
//! sets it (`PUT /api/workspace/retention`).
//!
//! Every such item gets an [`Expiry`] counted from its *anchor*, when
//! nothing more is to happen to it: a message's is when it finished (one
//! not finished has none and never expires), a day note's the end of its
//! day (or its last write, if a late message came after that), a sync-log
//! entry's when it was written. The anchor is stored with the item, so a
//! new retention can be applied to what is stored: [`request`] queues a job
//! that record-sync runs a page at a time.

use serde::{Deserialize, Serialize};

use crate::deps::Deps;
use crate::error::{QueueError, WorkError};
use crate::queue::{Job, QueueName};
use crate::time_zone::{TimeZone, day_end};

/// The retention of a workspace that never chose one (what every item had
/// before the setting existed).
pub const DEFAULT_DAYS: u16 = 30;
/// A day: anything shorter would lose a day's note while the day is on.
pub const MIN_DAYS: u16 = 1;
/// A year.
pub const MAX_DAYS: u16 = 365;

const DAY_SECS: i64 = 24 * 3600;

/// What every finished message and sync-log entry kept before the setting
/// existed: an item stored then, without its anchor, began its retention
/// this long before its expiry.
pub const LEGACY_RETENTION_SECS: i64 = 30 * DAY_SECS;

/// Items a page of the job that applies a new retention goes through.
pub const PAGE_SIZE: usize = 100;

/// When an item's retention began, and so when it expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    pub retained_from: i64,
    pub expires_at: i64,
}

/// A workspace's retention, always within [`MIN_DAYS`]..=[`MAX_DAYS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u16")]
pub struct Retention {
    days: u16,
}

/// A retention outside the bounds (or not a whole number of days).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("days must be a whole number of days from {MIN_DAYS} to {MAX_DAYS}; got {given}")]
pub struct OutOfBounds {
    pub given: String,
}

impl Default for Retention {
    fn default() -> Self {
        Self { days: DEFAULT_DAYS }
    }
}

impl TryFrom<i64> for Retention {
    type Error = OutOfBounds;

    fn try_from(days: i64) -> Result<Self, Self::Error> {
        match u16::try_from(days) {
            Ok(days) if (MIN_DAYS..=MAX_DAYS).contains(&days) => Ok(Self { days }),
            _ => Err(OutOfBounds {
                given: days.to_string(),
            }),
        }
    }
}

impl From<Retention> for u16 {
    fn from(retention: Retention) -> Self {
        retention.days
    }
}

impl Retention {
    /// The retention a request asks for: a JSON whole number within bounds
    /// (`30.0` is one too, as JSON Schema's `integer` says).
    pub fn from_json(days: &serde_json::Value) -> Result<Self, OutOfBounds> {
        let whole = days.as_i64().or_else(|| {
            days.as_f64()
                .filter(|d| d.fract() == 0.0 && d.abs() <= f64::from(u16::MAX))
                .map(|d| d as i64)
        });
        whole.map_or_else(
            || {
                Err(OutOfBounds {
                    given: days.to_string(),
                })
            },
            Self::try_from,
        )
    }

    pub fn days(self) -> u16 {
        self.days
    }

    pub fn secs(self) -> i64 {
        i64::from(self.days) * DAY_SECS
    }

    /// The expiry of an item whose retention begins at `anchor`.
    pub fn counted_from(self, anchor: i64) -> Expiry {
        Expiry {
            retained_from: anchor,
            expires_at: anchor + self.secs(),
        }
    }
}

/// When a day note's retention begins: once its day (`YYYY-MM-DD` in `tz`)
/// is over, or at its last write (`written_at`) if a late message of that
/// day came after. A day key that does not parse is taken as over at once
/// (the note's retention then begins at its write).
pub fn day_note_anchor(day: &str, tz: &TimeZone, written_at: i64) -> i64 {
    day_end(day, tz).map_or(written_at, |end| end.max(written_at))
}

/// What travels on the sync queue to apply a workspace's retention to the
/// items it has stored: which retention, and where this page starts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "job", rename = "apply_retention")]
pub struct RetentionJob {
    pub workspace_id: String,
    /// One id per change, so that its pages are distinct messages.
    pub job_id: String,
    /// The retention it applies: once the workspace has another, this job
    /// stops (the other change has its own).
    pub days: u16,
    /// The cursor of the page to run (none: from the first item).
    #[serde(default)]
    pub after: Option<String>,
    /// Pages run so far.
    pub pages: u32,
}

/// Asks for the workspace's retention to be applied to its stored items:
/// one send.
pub async fn request(
    deps: &Deps,
    workspace_id: &str,
    retention: Retention,
) -> Result<(), QueueError> {
    let job = RetentionJob {
        workspace_id: workspace_id.to_owned(),
        job_id: uuid::Uuid::new_v4().to_string(),
        days: retention.days(),
        after: None,
        pages: 0,
    };
    let job_id = job.job_id.clone();
    deps.queue
        .send_job(QueueName::Sync, &Job::ApplyRetention(job))
        .await?;
    tracing::info!(workspace_id, %job_id, days = retention.days(), "retention to apply to stored items");
    Ok(())
}

/// Applies the retention to a page of the workspace's stored items, then
/// queues the next page if there is more; how many items it changed.
pub async fn run_page(deps: &Deps, job: &RetentionJob) -> Result<usize, WorkError> {
    let workspace_id = job.workspace_id.as_str();
    let Some(workspace) = deps
        .store
        .workspace(workspace_id)
        .await?
        .filter(|w| w.accepts_work())
    else {
        return Ok(0);
    };
    if workspace.retention.days() != job.days {
        tracing::info!(workspace_id, job_id = %job.job_id, "the retention changed again: its own job applies it");
        return Ok(0);
    }
    let swept = deps
        .store
        .reapply_retention_page(
            workspace_id,
            job.after.as_deref(),
            PAGE_SIZE,
            workspace.retention,
            &crate::time_zone::zone(&workspace.time_zone),
        )
        .await?;
    match swept.next {
        Some(after) => {
            let next_page = RetentionJob {
                after: Some(after),
                pages: job.pages + 1,
                ..job.clone()
            };
            deps.queue
                .send_job(QueueName::Sync, &Job::ApplyRetention(next_page))
                .await?;
        }
        None => {
            tracing::info!(workspace_id, job_id = %job.job_id, days = job.days, pages = job.pages + 1, "retention applied to the stored items");
        }
    }
    Ok(swept.count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time_zone::zone;

    /// 2026-05-20 00:00:00 UTC.
    const MAY_20: i64 = 1_779_235_200;

    #[test]
    fn the_default_is_the_thirty_days_every_item_had() {
        assert_eq!(Retention::default().days(), 30);
        assert_eq!(Retention::default().secs(), 30 * 24 * 3600);
    }

    #[test]
    fn retention_is_a_whole_number_of_days_from_one_to_a_year() {
        for days in [1, 7, 30, 365] {
            assert_eq!(
                Retention::from_json(&serde_json::json!(days)).map(Retention::days),
                Ok(days)
            );
        }
        assert_eq!(
            Retention::from_json(&serde_json::json!(252.0)).map(Retention::days),
            Ok(252),
            "a whole number written with a fraction"
        );
        for refused in [
            serde_json::json!(0),
            serde_json::json!(-3),
            serde_json::json!(366),
            serde_json::json!(70_000),
            serde_json::json!(1.5),
            serde_json::json!(366.0),
            serde_json::json!(1e300),
            serde_json::json!("30"),
            serde_json::json!(null),
        ] {
            let error = Retention::from_json(&refused).expect_err("refused");
            assert!(
                error.to_string().contains("from 1 to 365"),
                "{refused}: {error}"
            );
        }
    }

    #[test]
    fn a_stored_retention_reads_back_and_a_bad_one_is_refused() {
        let retention: Retention = serde_json::from_str("7").expect("7 days");
        assert_eq!(retention.days(), 7);
        assert_eq!(serde_json::to_string(&retention).expect("json"), "7");
        assert!(serde_json::from_str::<Retention>("0").is_err());
    }

    #[test]
    fn an_item_expires_the_retention_after_its_anchor() {
        let week = Retention::try_from(7).expect("valid");
        assert_eq!(
            week.counted_from(MAY_20),
            Expiry {
                retained_from: MAY_20,
                expires_at: MAY_20 + 7 * DAY_SECS
            }
        );
    }

    /// When a day note written at `written_at` expires.
    fn day_note_expiry(retention: Retention, day: &str, tz: &TimeZone, written_at: i64) -> i64 {
        retention
            .counted_from(day_note_anchor(day, tz, written_at))
            .expires_at
    }

    #[test]
    fn a_day_note_expires_only_once_its_day_is_over_plus_the_retention() {
        let one_day = Retention::try_from(1).expect("valid");
        // Written at 09:15 on its day, UTC: kept until the end of the next day.
        let at_0915 = MAY_20 + 9 * 3600 + 15 * 60;
        assert_eq!(
            day_note_expiry(one_day, "2026-05-20", &TimeZone::UTC, at_0915),
            MAY_20 + 2 * DAY_SECS
        );
        // In Berlin (UTC+2 in May) the day ends two hours earlier in UTC.
        assert_eq!(
            day_note_expiry(one_day, "2026-05-20", &zone("Europe/Berlin"), at_0915),
            MAY_20 + 2 * DAY_SECS - 2 * 3600
        );
        // In Honolulu (UTC-10) ten hours later.
        assert_eq!(
            day_note_expiry(one_day, "2026-05-20", &zone("Pacific/Honolulu"), at_0915),
            MAY_20 + 2 * DAY_SECS + 10 * 3600
        );
    }

    #[test]
    fn a_day_note_written_after_its_day_is_kept_the_retention_after_that_write() {
        let one_day = Retention::try_from(1).expect("valid");
        // A message of May 20 synced on May 25 (it waited for a connection).
        let may_25 = MAY_20 + 5 * DAY_SECS;
        assert_eq!(
            day_note_expiry(one_day, "2026-05-20", &TimeZone::UTC, may_25),
            may_25 + DAY_SECS
        );
    }

    #[test]
    fn an_unreadable_day_counts_from_the_write() {
        let one_day = Retention::try_from(1).expect("valid");
        assert_eq!(
            day_note_expiry(one_day, "not-a-day", &TimeZone::UTC, MAY_20),
            MAY_20 + DAY_SECS
        );
    }
}
