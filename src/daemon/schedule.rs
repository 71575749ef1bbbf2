//! When the daemon's loop does what: the one place its timing is decided.
//!
//! The loop never retries on its own and never spins. It sleeps until the
//! earliest deadline ([`Schedule::next_deadline`]) or until an event wakes
//! it, and then asks [`Schedule::due`] what to do:
//!
//! - a **step** (process new commits, drive rollouts, reconcile, push
//!   evidence) when something asked for one (the repository changed, a
//!   webhook said the branch moved), a rollout's own wake-up time came, or
//!   the poll came — but never twice within [`MIN_STEP_GAP`]: a burst of
//!   events is one step;
//! - a **poll** (fetch, the open pull requests) every poll interval, ±10%
//!   jitter so many daemons do not fetch in step;
//! - **processing** new commits only when its backoff allows: after a
//!   failure (GitHub down, Git unreachable, evidence unwritable) the next
//!   attempt comes from [`crate::orchestrator::next_attempt`] — the one
//!   place a retry delay is decided — and never before the failing
//!   dependency's circuit breaker lets a probe through. Rollouts keep being
//!   driven meanwhile: an outage of GitHub does not stop a canary's gate.
//!
//! Pure: time comes in as values, jitter as a fraction drawn by the caller.

use crate::orchestrator::{BackoffPolicy, next_attempt};
use chrono::{DateTime, Duration, Utc};

/// No two steps closer than this: events that arrive in a burst (a watcher
/// reporting every file git touched, a webhook storm) make one step.
pub const MIN_STEP_GAP: Duration = Duration::seconds(1);

/// How processing backs off after failures: 2 s, 4 s, … up to 5 minutes,
/// +25% jitter, never giving up (the commit stays pending; nothing is lost).
pub fn processing_backoff() -> BackoffPolicy {
    BackoffPolicy {
        base_delay_seconds: 2,
        max_delay_seconds: 300,
        max_attempts: u32::MAX,
        jitter_ratio: 0.25,
        reply_timeout_seconds: 0,
    }
}

/// What the loop should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Due {
    pub step: bool,
    /// Process new commits in this step (false while backing off).
    pub process: bool,
    pub poll: bool,
}

/// The loop's clock-driven state.
#[derive(Debug, Clone)]
pub struct Schedule {
    poll_interval: Duration,
    next_poll: DateTime<Utc>,
    /// A step was asked for by an event.
    step_wanted: bool,
    /// When the rollouts (or reconciliation) want their next step.
    next_wake: Option<DateTime<Utc>>,
    last_step: Option<DateTime<Utc>>,
    /// Processing failures in a row, and when it may be tried again.
    processing_failures: u32,
    processing_retry_at: Option<DateTime<Utc>>,
}

impl Schedule {
    /// A schedule whose first step and poll are due at `now` (catch up on start).
    pub fn new(poll_interval: std::time::Duration, now: DateTime<Utc>) -> Schedule {
        Schedule {
            poll_interval: Duration::from_std(poll_interval).unwrap_or(Duration::seconds(30)),
            next_poll: now,
            step_wanted: true,
            next_wake: None,
            last_step: None,
            processing_failures: 0,
            processing_retry_at: None,
        }
    }

    /// Something changed (repository, webhook): a step is wanted.
    pub fn want_step(&mut self) {
        self.step_wanted = true;
    }

    /// What is due at `now`.
    pub fn due(&self, now: DateTime<Utc>) -> Due {
        let poll = now >= self.next_poll;
        let processing_due = self.processing_retry_at.is_some_and(|at| now >= at);
        let asked = self.step_wanted
            || poll
            || processing_due
            || self.next_wake.is_some_and(|at| now >= at);
        let gap_over = self.last_step.is_none_or(|last| now >= last + MIN_STEP_GAP);
        let step = asked && gap_over;
        Due {
            step,
            process: step && self.processing_retry_at.is_none_or(|at| now >= at),
            poll,
        }
    }

    /// A step ran at `now`; the rollouts want the next one at `next_wake`.
    pub fn stepped(&mut self, now: DateTime<Utc>, next_wake: Option<DateTime<Utc>>) {
        self.step_wanted = false;
        self.last_step = Some(now);
        self.next_wake = next_wake;
    }

    /// The poll ran at `now`; `jitter` in 0..1 spreads the next one ±10%.
    pub fn polled(&mut self, now: DateTime<Utc>, jitter: f64) {
        let spread = 0.9 + 0.2 * jitter.clamp(0.0, 1.0);
        let milliseconds = (self.poll_interval.num_milliseconds() as f64 * spread).round() as i64;
        self.next_poll = now + Duration::milliseconds(milliseconds.max(1));
    }

    /// Processing succeeded: no backoff.
    pub fn processing_succeeded(&mut self) {
        self.processing_failures = 0;
        self.processing_retry_at = None;
    }

    /// Processing failed at `now`. `dependency_back_at` is when the failing
    /// dependency's breaker (or rate limit) lets the next call through, if
    /// known; the retry never comes before it. Returns the retry time.
    pub fn processing_failed(
        &mut self,
        now: DateTime<Utc>,
        dependency_back_at: Option<DateTime<Utc>>,
        jitter: f64,
    ) -> DateTime<Utc> {
        self.processing_failures = self.processing_failures.saturating_add(1);
        let wait = dependency_back_at.filter(|at| *at > now).map(|at| at - now);
        let at = next_attempt(
            now,
            self.processing_failures,
            wait,
            jitter,
            &processing_backoff(),
        )
        .unwrap_or(now + Duration::seconds(300));
        self.processing_retry_at = Some(at);
        at
    }

    /// Processing failures in a row.
    pub fn processing_failures(&self) -> u32 {
        self.processing_failures
    }

    /// When the loop must wake up at the latest (if no event comes first),
    /// given `extra` deadlines of its dependencies (an open breaker's next
    /// probe). Never inside the gap after a step: an early wake-up there
    /// could do nothing, and waking to do nothing in a loop is spinning. An
    /// `extra` deadline already reached is not one: a breaker whose open
    /// time is over stays open until a call probes it, and nothing here
    /// makes that call, so waking for it would be waking for nothing, at
    /// once, forever.
    pub fn next_deadline(
        &self,
        now: DateTime<Utc>,
        extra: impl IntoIterator<Item = DateTime<Utc>>,
    ) -> DateTime<Utc> {
        let wanted = self.step_wanted.then_some(now);
        let deadline = [
            Some(self.next_poll),
            self.next_wake,
            self.processing_retry_at,
            wanted,
        ]
        .into_iter()
        .flatten()
        .chain(extra.into_iter().filter(|at| *at > now))
        .min()
        .unwrap_or(self.next_poll);
        match self.last_step {
            Some(last) => deadline.max(last + MIN_STEP_GAP),
            None => deadline,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + seconds, 0).unwrap()
    }

    fn schedule() -> Schedule {
        Schedule::new(std::time::Duration::from_secs(30), at(0))
    }

    #[test]
    fn the_first_step_and_poll_are_due_at_once() {
        let schedule = schedule();
        assert_eq!(
            schedule.due(at(0)),
            Due {
                step: true,
                process: true,
                poll: true
            }
        );
    }

    #[test]
    fn a_burst_of_events_is_one_step_per_gap() {
        let mut schedule = schedule();
        schedule.stepped(at(0), None);
        schedule.polled(at(0), 0.5);
        for _ in 0..100 {
            schedule.want_step();
            assert!(!schedule.due(at(0)).step);
        }
        assert_eq!(schedule.next_deadline(at(0), []), at(1));
        assert!(schedule.due(at(1)).step);
    }

    #[test]
    fn a_dependency_deadline_already_reached_does_not_wake_the_loop_again() {
        let mut schedule = schedule();
        schedule.stepped(at(0), None);
        schedule.polled(at(0), 0.0);
        // A breaker open until 10 s: the loop wakes then.
        assert_eq!(schedule.next_deadline(at(0), [at(10)]), at(10));
        // At 10 s nothing is due, the breaker is still open (nothing probed
        // it): the next deadline is the poll, not "now" again.
        assert!(!schedule.due(at(10)).step);
        assert_eq!(schedule.next_deadline(at(10), [at(10)]), at(27));
        assert_eq!(schedule.next_deadline(at(20), [at(10)]), at(27));
    }

    #[test]
    fn the_poll_comes_every_interval_with_jitter() {
        let mut schedule = schedule();
        schedule.stepped(at(0), None);
        schedule.polled(at(0), 0.0);
        assert_eq!(schedule.next_deadline(at(0), []), at(27));
        schedule.polled(at(0), 1.0);
        assert_eq!(schedule.next_deadline(at(0), []), at(33));
        assert!(!schedule.due(at(32)).step);
        assert_eq!(
            schedule.due(at(33)),
            Due {
                step: true,
                process: true,
                poll: true
            }
        );
    }

    #[test]
    fn a_rollout_wake_up_is_a_deadline() {
        let mut schedule = schedule();
        schedule.polled(at(0), 0.5);
        schedule.stepped(at(0), Some(at(12)));
        assert_eq!(schedule.next_deadline(at(0), []), at(12));
        assert!(!schedule.due(at(11)).step);
        assert!(schedule.due(at(12)).step);
    }

    #[test]
    fn processing_backs_off_but_rollouts_are_still_driven() {
        let mut schedule = schedule();
        schedule.polled(at(0), 0.5);
        schedule.stepped(at(0), Some(at(1)));
        assert_eq!(schedule.processing_failed(at(0), None, 0.0), at(2));
        let due = schedule.due(at(1));
        assert!(due.step && !due.process, "{due:?}");
        schedule.stepped(at(1), None);
        assert_eq!(schedule.next_deadline(at(0), []), at(2));
        assert!(schedule.due(at(2)).process);
        assert_eq!(schedule.processing_failed(at(2), None, 0.0), at(6));
        assert_eq!(schedule.processing_failed(at(6), None, 0.0), at(14));
        schedule.processing_succeeded();
        schedule.stepped(at(14), None);
        schedule.want_step();
        assert!(schedule.due(at(15)).process);
    }

    #[test]
    fn processing_waits_for_the_failing_dependency() {
        let mut schedule = schedule();
        assert_eq!(schedule.processing_failed(at(0), Some(at(90)), 0.0), at(90));
        schedule.stepped(at(0), None);
        schedule.want_step();
        assert!(!schedule.due(at(50)).process);
    }

    #[test]
    fn the_deadline_includes_open_breakers() {
        let mut schedule = schedule();
        schedule.polled(at(0), 0.5);
        schedule.stepped(at(0), None);
        assert_eq!(schedule.next_deadline(at(0), [at(7)]), at(7));
    }

    #[test]
    fn processing_backoff_is_capped_at_five_minutes() {
        let mut schedule = schedule();
        let mut now = at(0);
        for _ in 0..30 {
            now = schedule.processing_failed(now, None, 0.0);
        }
        let next = schedule.processing_failed(now, None, 0.0);
        assert_eq!(next - now, Duration::seconds(300));
    }
}
