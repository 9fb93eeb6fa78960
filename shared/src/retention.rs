//! How long a workspace keeps what holds message content: finished messages
//! in the ledger (their text, media and attachment markers), the day-note
//! items that hold each line's text, and the sync log (contact names, file
//! names). One setting per workspace, in whole days; the owner or an admin
//! sets it (`PUT /api/workspace/retention`).
//!
//! Every such item gets a `ttl` (epoch seconds) counted from its *anchor*:
//! when nothing more can happen to it. A message that is not finished has no
//! anchor and never expires; a day note's anchor is the end of its day (or
//! its last write, if a late message came after that).

use chrono::{Duration, NaiveDate, TimeZone};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// The retention of a workspace that never chose one (what every item had
/// before the setting existed).
pub const DEFAULT_DAYS: u16 = 30;
/// A day: anything shorter would lose a day's note while the day is on.
pub const MIN_DAYS: u16 = 1;
/// A year.
pub const MAX_DAYS: u16 = 365;

const DAY_SECS: i64 = 24 * 3600;

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
    /// The retention a request asks for: a JSON whole number within bounds.
    pub fn from_json(days: &serde_json::Value) -> Result<Self, OutOfBounds> {
        days.as_i64().map_or_else(
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

    /// When an item whose retention starts at `anchor` expires.
    pub fn expiry(self, anchor: i64) -> i64 {
        anchor + self.secs()
    }

    /// When a day note expires: never before its day (`YYYY-MM-DD` in `tz`)
    /// is over plus the retention, nor before the retention after its last
    /// write (`written_at`: a message of that day that came late).
    pub fn day_note_expiry(self, day: &str, tz: Tz, written_at: i64) -> i64 {
        self.expiry(day_end(day, tz).max(written_at))
    }
}

/// When `day` (`YYYY-MM-DD`) is over in `tz`, as epoch seconds: the next
/// day's first instant there. A day key that does not parse is taken as
/// over at once (the note then expires the retention after its write).
fn day_end(day: &str, tz: Tz) -> i64 {
    let Ok(date) = NaiveDate::parse_from_str(day, "%Y-%m-%d") else {
        return i64::MIN;
    };
    let next = date + Duration::days(1);
    let midnight = next.and_hms_opt(0, 0, 0).unwrap_or_default();
    // A zone that skips midnight for daylight saving starts the day at the
    // first instant that exists; a repeated midnight counts from its first.
    (0..=3)
        .find_map(|hour| {
            tz.from_local_datetime(&(midnight + Duration::hours(hour)))
                .earliest()
        })
        .map_or_else(|| midnight.and_utc().timestamp(), |at| at.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        for refused in [
            serde_json::json!(0),
            serde_json::json!(-3),
            serde_json::json!(366),
            serde_json::json!(70_000),
            serde_json::json!(1.5),
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
        assert_eq!(week.expiry(MAY_20), MAY_20 + 7 * DAY_SECS);
    }

    #[test]
    fn a_day_note_expires_only_once_its_day_is_over_plus_the_retention() {
        let one_day = Retention::try_from(1).expect("valid");
        // Written at 09:15 on its day, UTC: kept until the end of the next day.
        let at_0915 = MAY_20 + 9 * 3600 + 15 * 60;
        assert_eq!(
            one_day.day_note_expiry("2026-05-20", Tz::UTC, at_0915),
            MAY_20 + 2 * DAY_SECS
        );
        // In Berlin (UTC+2 in May) the day ends two hours earlier in UTC.
        assert_eq!(
            one_day.day_note_expiry("2026-05-20", Tz::Europe__Berlin, at_0915),
            MAY_20 + 2 * DAY_SECS - 2 * 3600
        );
        // In Honolulu (UTC-10) ten hours later.
        assert_eq!(
            one_day.day_note_expiry("2026-05-20", Tz::Pacific__Honolulu, at_0915),
            MAY_20 + 2 * DAY_SECS + 10 * 3600
        );
    }

    #[test]
    fn a_day_note_written_after_its_day_is_kept_the_retention_after_that_write() {
        let one_day = Retention::try_from(1).expect("valid");
        // A message of May 20 synced on May 25 (it waited for a connection).
        let may_25 = MAY_20 + 5 * DAY_SECS;
        assert_eq!(
            one_day.day_note_expiry("2026-05-20", Tz::UTC, may_25),
            may_25 + DAY_SECS
        );
    }

    #[test]
    fn a_day_that_starts_after_a_skipped_midnight_ends_when_the_next_begins() {
        // Santiago moved its clocks from 00:00 to 01:00 on 2024-09-08: that
        // day began at 01:00 local (04:00 UTC), so 2024-09-07 ended then.
        let end = day_end("2024-09-07", Tz::America__Santiago);
        assert_eq!(end, 1_725_768_000, "2024-09-08T04:00:00Z");
    }

    #[test]
    fn an_unreadable_day_counts_from_the_write() {
        let one_day = Retention::try_from(1).expect("valid");
        assert_eq!(
            one_day.day_note_expiry("not-a-day", Tz::UTC, MAY_20),
            MAY_20 + DAY_SECS
        );
    }
}
