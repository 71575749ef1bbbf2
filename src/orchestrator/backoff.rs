//! Every retry decision of the orchestrator: when to try again, and when to stop.
//!
//! There is exactly one function that decides, [`next_attempt`]. The state
//! machine calls it for publish retries, evidence retries and busy rings; the
//! daemon calls it for anything it retries on its own (its evidence outbox).
//! Nothing else computes a delay.
//!
//! The delay after the n-th failed attempt is `base_delay × 2^(n−1)`, capped at
//! `max_delay`, then stretched by up to `jitter_ratio` (a jitter fraction in
//! 0..1 is passed in, never drawn here), and finally raised to the plane's
//! `retry_after` when that is longer: a plane that asks us to wait is obeyed,
//! even beyond `max_delay`. After `max_attempts` failed attempts the answer is
//! `None`: give up, so a broken plane ends in a decision, not an endless loop.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

use super::plan::Shared;

/// How retries are spaced and how many there are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackoffPolicy {
    /// Delay after the first failure, before jitter.
    pub base_delay_seconds: u64,
    /// Ceiling of the exponential part (a plane's `retry_after` may exceed it).
    pub max_delay_seconds: u64,
    /// Attempts in total, the first one included; the last failure gives up.
    pub max_attempts: u32,
    /// Jitter stretches a delay by up to this fraction of itself (0.25 = +25%),
    /// so thousands of intents failing together do not retry together.
    pub jitter_ratio: f64,
    /// An attempt with no reply after this long counts as a failed attempt
    /// (the reply was lost, say in a restart); every attempt is idempotent.
    pub reply_timeout_seconds: u64,
}

impl Default for BackoffPolicy {
    /// 30 s, 60 s, 120 s, 240 s, 480 s, then give up: six attempts over about
    /// a quarter of an hour, each up to 25% later.
    fn default() -> Self {
        BackoffPolicy {
            base_delay_seconds: 30,
            max_delay_seconds: 3_600,
            max_attempts: 6,
            jitter_ratio: 0.25,
            reply_timeout_seconds: 900,
        }
    }
}

impl BackoffPolicy {
    /// The default policy, one allocation shared by every run that has it
    /// (every run stored one of its own, issue 17).
    pub fn shared_default() -> Shared<BackoffPolicy> {
        static DEFAULT: LazyLock<Shared<BackoffPolicy>> =
            LazyLock::new(|| Shared::new(BackoffPolicy::default()));
        DEFAULT.clone()
    }

    /// The same bit for bit (a float compared by its bits), so the same
    /// when serialized.
    fn same(&self, other: &BackoffPolicy) -> bool {
        let BackoffPolicy {
            base_delay_seconds,
            max_delay_seconds,
            max_attempts,
            jitter_ratio,
            reply_timeout_seconds,
        } = self;
        *base_delay_seconds == other.base_delay_seconds
            && *max_delay_seconds == other.max_delay_seconds
            && *max_attempts == other.max_attempts
            && jitter_ratio.to_bits() == other.jitter_ratio.to_bits()
            && *reply_timeout_seconds == other.reply_timeout_seconds
    }
}

/// A stored policy, shared when it is the default
/// ([`BackoffPolicy::shared_default`]).
pub fn deserialize_shared<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Shared<BackoffPolicy>, D::Error> {
    let policy = BackoffPolicy::deserialize(deserializer)?;
    let default = BackoffPolicy::shared_default();
    Ok(if policy.same(&default) {
        default
    } else {
        Shared::new(policy)
    })
}

/// When to make the next attempt after `failed_attempts` attempts have failed
/// (1 after the first failure), or `None` when the budget is spent.
///
/// `retry_after` is what the plane asked for (HTTP `Retry-After`); the larger of
/// it and the backoff wins. `jitter_fraction` is clamped into 0..=1 (NaN counts
/// as 0).
pub fn next_attempt(
    now: DateTime<Utc>,
    failed_attempts: u32,
    retry_after: Option<Duration>,
    jitter_fraction: f64,
    policy: &BackoffPolicy,
) -> Option<DateTime<Utc>> {
    if failed_attempts == 0 {
        return Some(now);
    }
    if failed_attempts >= policy.max_attempts {
        return None;
    }
    let doublings = (failed_attempts - 1).min(62);
    let exponential_seconds = policy
        .base_delay_seconds
        .saturating_mul(1u64 << doublings)
        .min(policy.max_delay_seconds);
    let jitter = if jitter_fraction.is_nan() {
        0.0
    } else {
        jitter_fraction.clamp(0.0, 1.0)
    };
    let stretch = 1.0 + policy.jitter_ratio.max(0.0) * jitter;
    let backoff_milliseconds = (exponential_seconds as f64 * 1_000.0 * stretch).round() as i64;
    let backoff = Duration::milliseconds(backoff_milliseconds);
    let delay = match retry_after {
        Some(asked) if asked > backoff => asked,
        _ => backoff,
    };
    now.checked_add_signed(delay)
}

/// Whether an attempt sent at `sent_at` has waited too long for its reply.
pub fn reply_overdue(sent_at: DateTime<Utc>, now: DateTime<Utc>, policy: &BackoffPolicy) -> bool {
    let timeout = i64::try_from(policy.reply_timeout_seconds).unwrap_or(i64::MAX);
    Duration::try_seconds(timeout)
        .and_then(|timeout| sent_at.checked_add_signed(timeout))
        .is_some_and(|deadline| now >= deadline)
}

/// A deterministic jitter fraction in 0..1 for one intent's n-th attempt.
///
/// FNV-1a of the intent id and the attempt: not random (so `step` stays a
/// function and replaying the event log reproduces every state exactly) but
/// different across intents, which is all jitter is for.
pub fn jitter_fraction(intent_id: &str, attempt: u32) -> f64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET_BASIS;
    for byte in intent_id.bytes().chain(attempt.to_le_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(PRIME);
    }
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + seconds, 0).unwrap()
    }

    fn check(failed: u32, retry_after: Option<i64>, jitter: f64, expected_delay: Option<i64>) {
        let policy = BackoffPolicy::default();
        let next = next_attempt(
            at(0),
            failed,
            retry_after.map(Duration::seconds),
            jitter,
            &policy,
        );
        assert_eq!(
            next,
            expected_delay.map(at),
            "failed {failed}, retry_after {retry_after:?}, jitter {jitter}"
        );
    }

    #[test]
    fn exponential_then_budget() {
        check(0, None, 0.0, Some(0));
        check(1, None, 0.0, Some(30));
        check(2, None, 0.0, Some(60));
        check(3, None, 0.0, Some(120));
        check(4, None, 0.0, Some(240));
        check(5, None, 0.0, Some(480));
        check(6, None, 0.0, None);
        check(60, None, 0.0, None);
    }

    fn check_milliseconds(failed: u32, jitter: f64, expected_milliseconds: i64) {
        let policy = BackoffPolicy::default();
        let next = next_attempt(at(0), failed, None, jitter, &policy).unwrap();
        assert_eq!(
            next - at(0),
            Duration::milliseconds(expected_milliseconds),
            "failed {failed}, jitter {jitter}"
        );
    }

    #[test]
    fn jitter_stretches_up_to_the_ratio() {
        check_milliseconds(1, 1.0, 37_500); // 30 s × 1.25
        check_milliseconds(2, 0.5, 67_500); // 60 s × 1.125
        check_milliseconds(1, 0.0, 30_000);
        check_milliseconds(1, f64::NAN, 30_000);
        check_milliseconds(1, -3.0, 30_000);
        check_milliseconds(1, 7.0, 37_500);
    }

    #[test]
    fn cap_applies_to_the_exponential_part() {
        let policy = BackoffPolicy {
            base_delay_seconds: 1_000,
            max_delay_seconds: 1_500,
            max_attempts: 100,
            jitter_ratio: 0.0,
            reply_timeout_seconds: 900,
        };
        let next = next_attempt(at(0), 40, None, 0.0, &policy).unwrap();
        assert_eq!(next, at(1_500));
    }

    #[test]
    fn jitter_fraction_is_stable_in_range_and_varies() {
        let first = jitter_fraction("intent-a", 1);
        assert_eq!(first, jitter_fraction("intent-a", 1));
        assert!((0.0..1.0).contains(&first));
        assert_ne!(first, jitter_fraction("intent-b", 1));
        assert_ne!(first, jitter_fraction("intent-a", 2));
    }
}
