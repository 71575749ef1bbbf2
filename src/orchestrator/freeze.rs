//! Change-freeze windows: is `now` inside one, and when does it end?
//!
//! A [`ChangeFreeze`] is a cron expression (six fields with seconds, or seven
//! with the year, as the `cron` crate reads them) evaluated in an IANA time
//! zone, and a duration. Each occurrence of the expression opens a window that
//! lasts `duration_hours` (real hours, so a window across a daylight-saving
//! change is still that long). A ring must not *start* inside a window.
//!
//! To know whether `now` is inside a window we need the most recent occurrence
//! at or before `now`: every window has the same length, so the latest start
//! also has the latest end. The `cron` crate iterates backwards as well as
//! forwards; the tests cross-check that against a forward search from
//! `now − duration`.
//!
//! A freeze that does not parse or names an unknown zone is reported by
//! [`validate_freezes`] (validation of `ringmaster.yaml`) and refused by
//! [`RolloutPlan::resolve`](super::RolloutPlan::resolve), so a run never
//! carries one; [`active_freeze`] skips such an entry rather than guess.

use super::gates::duration_from_hours;
use crate::model::ChangeFreeze;
use chrono::{DateTime, Duration, DurationRound, Utc};
use chrono_tz::Tz;
use cron::Schedule;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// Why a change freeze cannot be used. Messages name the freeze and the fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FreezeError {
    /// The cron expression does not parse.
    #[error(
        "change freeze {name:?}: cron expression {expression:?} is invalid ({message}); \
         use six fields (sec min hour day month weekday) or seven (… year)"
    )]
    InvalidCron {
        name: String,
        expression: String,
        message: String,
    },
    /// The time zone is not an IANA zone name.
    #[error(
        "change freeze {name:?}: unknown time zone {timezone:?}; use an IANA name such as \
         \"UTC\" or \"Europe/London\""
    )]
    UnknownTimezone { name: String, timezone: String },
    /// The duration is zero, negative or not a number.
    #[error("change freeze {name:?}: duration_hours must be more than 0, not {hours}")]
    InvalidDuration { name: String, hours: f64 },
}

/// A freeze window that contains `now`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveFreeze {
    pub name: String,
    pub started_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

/// A change freeze with its expression parsed and its zone resolved.
struct ParsedFreeze {
    schedule: Schedule,
    timezone: Tz,
    duration: Duration,
}

fn parse(freeze: &ChangeFreeze) -> Result<ParsedFreeze, Vec<FreezeError>> {
    let mut errors = Vec::new();
    let schedule = Schedule::from_str(freeze.cron.trim())
        .map_err(|error| FreezeError::InvalidCron {
            name: freeze.name.clone(),
            expression: freeze.cron.clone(),
            message: error.to_string(),
        })
        .map_err(|error| errors.push(error))
        .ok();
    let timezone = Tz::from_str(freeze.timezone.trim())
        .map_err(|_| FreezeError::UnknownTimezone {
            name: freeze.name.clone(),
            timezone: freeze.timezone.clone(),
        })
        .map_err(|error| errors.push(error))
        .ok();
    if !(freeze.duration_hours.is_finite() && freeze.duration_hours > 0.0) {
        errors.push(FreezeError::InvalidDuration {
            name: freeze.name.clone(),
            hours: freeze.duration_hours,
        });
    }
    match (schedule, timezone) {
        (Some(schedule), Some(timezone)) if errors.is_empty() => Ok(ParsedFreeze {
            schedule,
            timezone,
            duration: duration_from_hours(freeze.duration_hours),
        }),
        _ => Err(errors),
    }
}

/// Every problem of every freeze, as `(index in the list, message)`, in order.
pub fn validate_freezes(freezes: &[ChangeFreeze]) -> Vec<(usize, String)> {
    freezes
        .iter()
        .enumerate()
        .flat_map(|(index, freeze)| {
            parse(freeze)
                .err()
                .unwrap_or_default()
                .into_iter()
                .map(move |error| (index, error.to_string()))
        })
        .collect()
}

/// The first problem of each invalid freeze, as errors (for plan resolution).
pub(crate) fn freeze_errors(freezes: &[ChangeFreeze]) -> Vec<FreezeError> {
    freezes
        .iter()
        .filter_map(|freeze| parse(freeze).err())
        .flatten()
        .collect()
}

/// The most recent occurrence of the schedule at or before `now`.
fn most_recent_start(parsed: &ParsedFreeze, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let whole_second = now
        .duration_trunc(Duration::seconds(1))
        .unwrap_or(now)
        .with_timezone(&parsed.timezone);
    let probe = whole_second + Duration::seconds(1);
    parsed
        .schedule
        .after(&probe)
        .rev()
        .map(|start| start.with_timezone(&Utc))
        .find(|start| *start <= now)
}

/// The window of one freeze that contains `now`, if any.
pub fn freeze_window_at(
    freeze: &ChangeFreeze,
    now: DateTime<Utc>,
) -> Result<Option<ActiveFreeze>, FreezeError> {
    let parsed = parse(freeze).map_err(|mut errors| errors.remove(0))?;
    Ok(most_recent_start(&parsed, now).and_then(|started_at| {
        let ends_at = started_at + parsed.duration;
        (now < ends_at).then(|| ActiveFreeze {
            name: freeze.name.clone(),
            started_at,
            ends_at,
        })
    }))
}

/// The active freeze that ends last, if `now` is inside any window.
///
/// Overlapping or back-to-back windows: the caller waits until `ends_at` and
/// asks again, so a chain of windows is honoured one after the other.
pub fn active_freeze(freezes: &[ChangeFreeze], now: DateTime<Utc>) -> Option<ActiveFreeze> {
    freezes
        .iter()
        .filter_map(|freeze| freeze_window_at(freeze, now).ok().flatten())
        .max_by_key(|window| window.ends_at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn freeze(cron: &str, hours: f64, timezone: &str) -> ChangeFreeze {
        ChangeFreeze {
            name: "freeze".into(),
            cron: cron.into(),
            duration_hours: hours,
            timezone: timezone.into(),
        }
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    /// Forward search from `now − duration`, the obvious reference.
    fn forward_reference(parsed: &ParsedFreeze, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let from = (now - parsed.duration - Duration::seconds(1)).with_timezone(&parsed.timezone);
        parsed
            .schedule
            .after(&from)
            .map(|start| start.with_timezone(&Utc))
            .take_while(|start| *start <= now)
            .last()
    }

    #[test]
    fn backward_search_agrees_with_forward_search() {
        let cases = [
            ("0 0 22 * * *", 10.0, "Europe/London"),
            ("0 30 1 * * Sun", 30.0, "America/New_York"),
            ("0 0 0 20 12 *", 336.0, "UTC"),
            ("0 0 9 * * Mon-Fri", 8.0, "Asia/Kolkata"),
            ("0 15 * * * *", 0.5, "Australia/Sydney"),
        ];
        let start = Utc.with_ymd_and_hms(2025, 3, 1, 0, 0, 0).unwrap();
        for (cron, hours, zone) in cases {
            let parsed = parse(&freeze(cron, hours, zone)).unwrap();
            for step in 0..400 {
                let now = start + Duration::minutes(step * 1_597);
                let reference = forward_reference(&parsed, now)
                    .filter(|started| now < *started + parsed.duration);
                let backward = most_recent_start(&parsed, now)
                    .filter(|started| now < *started + parsed.duration);
                assert_eq!(backward, reference, "{cron} {zone} at {now}");
            }
        }
    }

    #[test]
    fn occurrence_exactly_now_counts() {
        let window = freeze_window_at(
            &freeze("0 0 0 20 12 *", 336.0, "UTC"),
            utc("2025-12-20T00:00:00Z"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(window.ends_at, utc("2026-01-03T00:00:00Z"));
    }

    #[test]
    fn validation_reports_every_problem_with_its_index() {
        let freezes = [
            freeze("0 0 0 20 12 *", 336.0, "UTC"),
            freeze("not a cron", 0.0, "Mars/Olympus"),
            freeze("0 0 * * *", 1.0, "UTC"),
        ];
        let problems = validate_freezes(&freezes);
        let indexes: Vec<usize> = problems.iter().map(|(index, _)| *index).collect();
        assert_eq!(indexes, vec![1, 1, 1, 2]);
        assert!(problems[1].1.contains("unknown time zone \"Mars/Olympus\""));
        assert!(problems[2].1.contains("duration_hours must be more than 0"));
        assert!(active_freeze(&freezes[1..], utc("2025-12-21T00:00:00Z")).is_none());
    }
}
