//! Cron schedules (`schedule = "0 */6 * * *"`) for cronjobs and scheduled backups: parsing
//! with a message that says what to fix, and the pure "when is the next run" decision.
//!
//! Times are unix seconds in UTC: a server's schedule must not move with the host's time zone
//! or its daylight-saving changes.

use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use std::fmt;

/// A parsed five-field cron expression (or `@hourly`, `@daily`, `@weekly`, `@monthly`,
/// `@yearly`), evaluated in UTC.
#[derive(Clone)]
pub struct Schedule {
    text: String,
    cron: Cron,
}

/// Why a schedule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid schedule {text:?}: {reason}; expected five fields \"minute hour day-of-month month day-of-week\" in UTC, e.g. \"0 */6 * * *\", or @hourly/@daily/@weekly/@monthly")]
pub struct ScheduleError {
    /// The schedule as written.
    pub text: String,
    /// What the parser objected to.
    pub reason: String,
}

impl Schedule {
    /// Parses `text`; seconds fields are refused, since runs are planned per minute.
    pub fn parse(text: &str) -> Result<Schedule, ScheduleError> {
        let trimmed = text.trim();
        let error = |reason: String| ScheduleError {
            text: text.to_string(),
            reason,
        };
        if trimmed.is_empty() {
            return Err(error("it is empty".into()));
        }
        if !trimmed.starts_with('@') && trimmed.split_whitespace().count() != 5 {
            return Err(error(format!(
                "it has {} fields, not 5",
                trimmed.split_whitespace().count()
            )));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(trimmed)
            .map_err(|e| error(e.to_string()))?;
        Ok(Schedule {
            text: trimmed.to_string(),
            cron,
        })
    }

    /// The schedule as written (trimmed).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first run strictly after `after` (unix seconds), or `None` if the expression never
    /// fires again (e.g. "0 0 30 2 *").
    pub fn next_after(&self, after: i64) -> Option<i64> {
        let from: DateTime<Utc> = DateTime::from_timestamp(after, 0)?;
        self.cron
            .find_next_occurrence(&from, false)
            .ok()
            .map(|t| t.timestamp())
    }

    /// The last run at or before `at` (unix seconds), or `None` if there is none.
    pub fn last_at_or_before(&self, at: i64) -> Option<i64> {
        let from: DateTime<Utc> = DateTime::from_timestamp(at, 0)?;
        self.cron
            .find_previous_occurrence(&from, true)
            .ok()
            .map(|t| t.timestamp())
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({:?})", self.text)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

/// What a scheduler should do now, given the last run it planned for and the clock: run once
/// for a missed slot (never a burst for every slot missed while the server was down), or wait
/// until the next slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Run now; the slot (unix seconds) being run.
    Now(i64),
    /// Nothing due before this time (unix seconds).
    At(i64),
    /// The schedule never fires again.
    Never,
}

/// Decides whether a run is due at `now`, given the slot the previous run was for (`last`,
/// `None` if it never ran: then the first slot after `created` counts).
pub fn due(schedule: &Schedule, last: Option<i64>, created: i64, now: i64) -> Due {
    let from = last.unwrap_or(created);
    let Some(next) = schedule.next_after(from) else {
        return Due::Never;
    };
    if next > now {
        return Due::At(next);
    }
    // Several slots may have passed (server down); run once, for the latest one. Found by a
    // search back from `now`, not by stepping over every missed slot: a clock that jumped
    // years ahead would otherwise mean millions of steps.
    let latest = schedule
        .last_at_or_before(now)
        .filter(|l| *l >= next)
        .unwrap_or(next);
    Due::Now(latest)
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-21T00:00:00Z
    const MIDNIGHT: i64 = 1_795_219_200;

    #[test]
    fn a_clock_far_ahead_runs_once_for_the_latest_slot() {
        // Every minute, last run in 1970, the clock in the year 3000 (a wrong clock corrected,
        // or a root restored from long ago): one run, for the last minute before now.
        let s = Schedule::parse("* * * * *").unwrap();
        let now = 32_503_680_000 + 30; // 3000-01-01T00:00:30Z
        assert_eq!(due(&s, Some(0), 0, now), Due::Now(32_503_680_000));
        // A slot exactly at now counts.
        assert_eq!(due(&s, Some(0), 0, now - 30), Due::Now(now - 30));
    }

    #[test]
    fn every_six_hours() {
        let s = Schedule::parse("0 */6 * * *").unwrap();
        assert_eq!(s.next_after(MIDNIGHT), Some(MIDNIGHT + 6 * 3600));
        assert_eq!(s.next_after(MIDNIGHT - 1), Some(MIDNIGHT));
        assert_eq!(
            s.next_after(MIDNIGHT + 5 * 3600 + 59),
            Some(MIDNIGHT + 6 * 3600)
        );
    }

    #[test]
    fn every_minute_and_nicknames() {
        let s = Schedule::parse("* * * * *").unwrap();
        assert_eq!(s.next_after(MIDNIGHT + 1), Some(MIDNIGHT + 60));
        let d = Schedule::parse("@daily").unwrap();
        assert_eq!(d.next_after(MIDNIGHT), Some(MIDNIGHT + 86_400));
    }

    #[test]
    fn refuses_with_a_reason() {
        for bad in [
            "",
            "   ",
            "* * * *",
            "0 0 * * * *",
            "61 * * * *",
            "a b c d e",
            "@often",
        ] {
            let e = Schedule::parse(bad).unwrap_err();
            assert!(e.to_string().contains("five fields"), "{bad}: {e}");
        }
    }

    #[test]
    fn due_runs_once_for_missed_slots() {
        let s = Schedule::parse("0 * * * *").unwrap();
        // Created at midnight, never ran, now 03:30: one run, for the 03:00 slot.
        assert_eq!(
            due(&s, None, MIDNIGHT, MIDNIGHT + 3 * 3600 + 1800),
            Due::Now(MIDNIGHT + 3 * 3600)
        );
        // Ran for 03:00; at 03:30 the next is 04:00.
        assert_eq!(
            due(
                &s,
                Some(MIDNIGHT + 3 * 3600),
                MIDNIGHT,
                MIDNIGHT + 3 * 3600 + 1800
            ),
            Due::At(MIDNIGHT + 4 * 3600)
        );
        // Created at 00:10: nothing before 01:00.
        assert_eq!(
            due(&s, None, MIDNIGHT + 600, MIDNIGHT + 700),
            Due::At(MIDNIGHT + 3600)
        );
    }

    #[test]
    fn never_fires_again() {
        let s = Schedule::parse("0 0 30 2 *");
        // croner may refuse an impossible date outright; either answer is fine, no panic.
        if let Ok(s) = s {
            assert_eq!(due(&s, None, MIDNIGHT, MIDNIGHT), Due::Never);
        }
    }
}
