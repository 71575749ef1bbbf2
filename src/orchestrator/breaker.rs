//! Circuit breakers: a dependency that keeps failing is left alone for a
//! while, then probed, instead of being called again on every event.
//!
//! One small type, [`CircuitBreaker`], for every external dependency the
//! daemon calls (the GitHub API, the Git remote, each execution plane). It
//! decides nothing about timing itself: when it opens, the delay comes from
//! [`super::backoff::next_attempt`] — the one place a retry delay is decided
//! — with the breaker's own policy (no attempt budget: a dependency is
//! probed for as long as it stays down, ever more rarely up to the cap).
//!
//! ```text
//!  Closed ──(failure_threshold failures in a row)──► Open { until }
//!    ▲                                                  │ now ≥ until
//!    └────────────(a call succeeds)──── HalfOpen ◄──────┘
//!                                          │ a call fails
//!                                          └──► Open { until: longer }
//! ```
//!
//! Pure: time comes in as `now`, jitter as a fraction in 0..1 drawn by the
//! caller, so a test drives it with a table and no clock. A refused call
//! costs nothing (no request is sent), and [`CircuitBreaker::retry_at`] tells
//! the event loop when to wake up next instead of polling.

use super::backoff::{BackoffPolicy, next_attempt};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use std::fmt;

/// When a breaker opens and how long it stays open.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerPolicy {
    /// Failures in a row that open the breaker (a single blip does not).
    pub failure_threshold: u32,
    /// How long it stays open after the n-th opening in a row (its
    /// `max_attempts` is ignored: a breaker never gives up).
    pub open_for: BackoffPolicy,
}

impl Default for BreakerPolicy {
    /// Opens after 3 failures in a row; stays open 2 s, 4 s, 8 s, … up to
    /// 5 minutes, each up to 25% longer: a dependency down for a minute
    /// costs about ten calls, one down for a day about three hundred.
    fn default() -> Self {
        BreakerPolicy {
            failure_threshold: 3,
            open_for: BackoffPolicy {
                base_delay_seconds: 2,
                max_delay_seconds: 300,
                max_attempts: u32::MAX,
                jitter_ratio: 0.25,
                reply_timeout_seconds: 0,
            },
        }
    }
}

/// Where a breaker stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls go through; `failures` in a row so far.
    Closed { failures: u32 },
    /// No call before `until`; opened `openings` times in a row.
    Open { until: DateTime<Utc>, openings: u32 },
    /// The open time is over: calls go through as probes; the first success
    /// closes the breaker, the first failure opens it again for longer.
    HalfOpen { openings: u32 },
}

/// A call the breaker refused: the dependency is considered down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub dependency: String,
    /// When the next probe may go out.
    pub until: DateTime<Utc>,
    /// The failure that opened the breaker (never holds a secret: callers
    /// record their own redacted messages).
    pub last_error: String,
}

impl fmt::Display for Refused {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{} is unavailable (circuit open until {}; last error: {})",
            self.dependency,
            self.until
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            self.last_error
        )
    }
}

impl std::error::Error for Refused {}

/// One dependency's breaker.
#[derive(Debug, Clone, PartialEq)]
pub struct CircuitBreaker {
    dependency: String,
    policy: BreakerPolicy,
    state: BreakerState,
    last_error: Option<String>,
}

impl CircuitBreaker {
    /// A closed breaker for `dependency` (a name for messages: `GitHub API`,
    /// `git remote origin`, `plane intune`).
    pub fn new(dependency: impl Into<String>, policy: BreakerPolicy) -> CircuitBreaker {
        CircuitBreaker {
            dependency: dependency.into(),
            policy,
            state: BreakerState::Closed { failures: 0 },
            last_error: None,
        }
    }

    pub fn dependency(&self) -> &str {
        &self.dependency
    }

    pub fn state(&self) -> &BreakerState {
        &self.state
    }

    /// Whether a call may go out at `now`. An open breaker whose time is
    /// over becomes half-open and lets calls through as probes.
    pub fn admit(&mut self, now: DateTime<Utc>) -> Result<(), Refused> {
        if let BreakerState::Open { until, openings } = self.state {
            if now < until {
                return Err(Refused {
                    dependency: self.dependency.clone(),
                    until,
                    last_error: self.last_error.clone().unwrap_or_default(),
                });
            }
            self.state = BreakerState::HalfOpen { openings };
        }
        Ok(())
    }

    /// A call went through and the dependency answered (even with an error
    /// of the caller's making, such as a 404): it is up.
    pub fn record_success(&mut self) {
        self.state = BreakerState::Closed { failures: 0 };
        self.last_error = None;
    }

    /// A call failed because of the dependency (no answer, 5xx, timeout).
    /// `retry_after` is what the dependency asked for, if anything; the
    /// breaker then stays open at least that long. `jitter` is a fraction in
    /// 0..1 drawn by the caller. Returns the instant the breaker is open
    /// until, when this failure opened it.
    pub fn record_failure(
        &mut self,
        now: DateTime<Utc>,
        error: impl Into<String>,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> Option<DateTime<Utc>> {
        self.last_error = Some(error.into());
        let openings = match self.state {
            BreakerState::Closed { failures } => {
                let failures = failures.saturating_add(1);
                if failures < self.policy.failure_threshold.max(1) && retry_after.is_none() {
                    self.state = BreakerState::Closed { failures };
                    return None;
                }
                1
            }
            BreakerState::HalfOpen { openings } => openings.saturating_add(1),
            // A call admitted before the breaker opened failed late: keep
            // the time already decided.
            BreakerState::Open { until, .. } => return Some(until),
        };
        let mut policy = self.policy.open_for.clone();
        policy.max_attempts = u32::MAX;
        let until = next_attempt(now, openings, retry_after, jitter, &policy)
            .unwrap_or(now + Duration::seconds(policy.max_delay_seconds as i64));
        self.state = BreakerState::Open { until, openings };
        Some(until)
    }

    /// When an open breaker lets the next probe through; `None` when calls
    /// go through now. What the event loop sleeps until.
    pub fn retry_at(&self) -> Option<DateTime<Utc>> {
        match self.state {
            BreakerState::Open { until, .. } => Some(until),
            _ => None,
        }
    }

    /// The failure that opened (or is opening) the breaker, if any.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + seconds, 0).unwrap()
    }

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new("GitHub API", BreakerPolicy::default())
    }

    #[test]
    fn opens_after_the_threshold_then_probes_ever_more_rarely() {
        let mut breaker = breaker();
        for second in 0..2 {
            breaker.admit(at(second)).unwrap();
            assert_eq!(
                breaker.record_failure(at(second), "refused", None, 0.0),
                None
            );
        }
        breaker.admit(at(2)).unwrap();
        assert_eq!(
            breaker.record_failure(at(2), "refused", None, 0.0),
            Some(at(4))
        );
        let refused = breaker.admit(at(3)).unwrap_err();
        assert_eq!(refused.until, at(4));
        assert!(refused.to_string().contains("GitHub API is unavailable"));
        assert!(refused.to_string().contains("refused"));
        // The probe at 4 s fails: open for 4 s, then 8 s, then 16 s.
        breaker.admit(at(4)).unwrap();
        assert_eq!(breaker.state(), &BreakerState::HalfOpen { openings: 1 });
        assert_eq!(
            breaker.record_failure(at(4), "refused", None, 0.0),
            Some(at(8))
        );
        breaker.admit(at(8)).unwrap();
        assert_eq!(
            breaker.record_failure(at(8), "refused", None, 0.0),
            Some(at(16))
        );
        breaker.admit(at(16)).unwrap();
        assert_eq!(
            breaker.record_failure(at(16), "refused", None, 0.0),
            Some(at(32))
        );
        assert_eq!(breaker.retry_at(), Some(at(32)));
    }

    #[test]
    fn a_success_closes_and_forgets() {
        let mut breaker = breaker();
        for second in 0..3 {
            breaker.record_failure(at(second), "down", None, 0.0);
        }
        assert!(breaker.admit(at(3)).is_err());
        breaker.admit(at(4)).unwrap();
        breaker.record_success();
        assert_eq!(breaker.state(), &BreakerState::Closed { failures: 0 });
        assert_eq!(breaker.retry_at(), None);
        assert_eq!(breaker.last_error(), None);
        // Failures in a row start from zero again.
        assert_eq!(breaker.record_failure(at(5), "down", None, 0.0), None);
    }

    #[test]
    fn a_success_between_failures_resets_the_count() {
        let mut breaker = breaker();
        for second in 0..10 {
            breaker.admit(at(second)).unwrap();
            if second % 2 == 0 {
                breaker.record_failure(at(second), "blip", None, 0.0);
            } else {
                breaker.record_success();
            }
        }
        assert_eq!(breaker.retry_at(), None);
    }

    #[test]
    fn the_open_time_is_capped_and_jittered() {
        let mut breaker = breaker();
        let mut now = at(0);
        for _ in 0..40 {
            breaker.admit(now).unwrap();
            if let Some(until) = breaker.record_failure(now, "down", None, 0.0) {
                now = until;
            }
        }
        let mut plain = breaker.clone();
        plain.admit(now).unwrap();
        let until = plain.record_failure(now, "down", None, 0.0).unwrap();
        assert_eq!(until - now, Duration::seconds(300));
        let mut jittered = breaker.clone();
        jittered.admit(now).unwrap();
        let until = jittered.record_failure(now, "down", None, 1.0).unwrap();
        assert_eq!(until - now, Duration::seconds(375));
    }

    #[test]
    fn retry_after_opens_at_once_and_is_obeyed() {
        let mut breaker = breaker();
        let until = breaker.record_failure(at(0), "503", Some(Duration::seconds(90)), 0.0);
        assert_eq!(until, Some(at(90)));
        assert!(breaker.admit(at(89)).is_err());
        breaker.admit(at(90)).unwrap();
    }

    #[test]
    fn a_late_failure_of_a_call_admitted_before_opening_keeps_the_time() {
        let mut breaker = breaker();
        for second in 0..3 {
            breaker.record_failure(at(second), "down", None, 0.0);
        }
        assert_eq!(
            breaker.record_failure(at(3), "down", None, 0.0),
            Some(at(4))
        );
    }
}
