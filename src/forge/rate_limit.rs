//! GitHub's rate limits, read from a response: when may the next call go?
//!
//! Pure: a status, the headers, the body and `now` in; a verdict out. The
//! client ([`super::client`]) acts on it — waits briefly and retries, or
//! refuses every call until the limit lifts — so all backoff decisions live
//! in one place. The rules are GitHub's ("Rate limits for the REST API"):
//!
//! - a `403` or `429` with `retry-after` (a secondary limit): not before that
//!   many seconds have passed;
//! - a `403` or `429` with `x-ratelimit-remaining: 0`: not before
//!   `x-ratelimit-reset` (UTC epoch seconds; the primary limit);
//! - a `429`, or a `403` whose message names a rate limit, without either
//!   header: wait at least one minute;
//! - any response with `x-ratelimit-remaining: 0` means the quota is spent:
//!   the response is good, but no further call before the reset.

use axum::http::HeaderMap;
use chrono::{DateTime, Duration, TimeZone as _, Utc};

/// How long to wait on a secondary limit that gives no header.
pub const DEFAULT_SECONDARY_WAIT: Duration = Duration::seconds(60);

/// Which of GitHub's limits was hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// The hourly quota (`x-ratelimit-remaining: 0`).
    Primary,
    /// Abuse protection (too many concurrent or content-creating requests).
    Secondary,
}

/// What a response says about calling GitHub again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitVerdict {
    /// Not rate limited. `quota_spent_until` is set when this response used
    /// the last call of the quota: no call before that instant.
    Proceed {
        quota_spent_until: Option<DateTime<Utc>>,
    },
    /// Rate limited: the request was not served; retry no earlier than `until`.
    Limited {
        kind: LimitKind,
        until: DateTime<Utc>,
    },
}

fn header_number(headers: &HeaderMap, name: &str) -> Option<i64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

fn reset_time(headers: &HeaderMap, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let reset = Utc
        .timestamp_opt(header_number(headers, "x-ratelimit-reset")?, 0)
        .single()?;
    // A reset in the past (clock skew) still means "wait a moment", never "retry at once".
    Some(reset.max(now + Duration::seconds(1)))
}

/// Reads the verdict from a response's status, headers and body text.
pub fn assess(
    status: u16,
    headers: &HeaderMap,
    body: &str,
    now: DateTime<Utc>,
) -> RateLimitVerdict {
    let quota_spent = header_number(headers, "x-ratelimit-remaining") == Some(0);
    if status == 403 || status == 429 {
        if let Some(seconds) = header_number(headers, "retry-after") {
            return RateLimitVerdict::Limited {
                kind: LimitKind::Secondary,
                until: now + Duration::seconds(seconds.max(0)),
            };
        }
        if quota_spent && let Some(until) = reset_time(headers, now) {
            return RateLimitVerdict::Limited {
                kind: LimitKind::Primary,
                until,
            };
        }
        if status == 429 || body.to_ascii_lowercase().contains("rate limit") {
            return RateLimitVerdict::Limited {
                kind: LimitKind::Secondary,
                until: now + DEFAULT_SECONDARY_WAIT,
            };
        }
    }
    RateLimitVerdict::Proceed {
        quota_spent_until: if quota_spent {
            reset_time(headers, now)
        } else {
            None
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn check(status: u16, pairs: &[(&'static str, &str)], body: &str, expected: RateLimitVerdict) {
        assert_eq!(
            assess(status, &headers(pairs), body, now()),
            expected,
            "{status} {pairs:?} {body}"
        );
    }

    fn limited(kind: LimitKind, seconds: i64) -> RateLimitVerdict {
        RateLimitVerdict::Limited {
            kind,
            until: now() + Duration::seconds(seconds),
        }
    }

    fn proceed(spent_for: Option<i64>) -> RateLimitVerdict {
        RateLimitVerdict::Proceed {
            quota_spent_until: spent_for.map(|s| now() + Duration::seconds(s)),
        }
    }

    #[test]
    fn rate_limit_table() {
        let reset = (now() + Duration::seconds(600)).timestamp().to_string();
        let past = (now() - Duration::seconds(600)).timestamp().to_string();
        use LimitKind::*;
        check(200, &[("x-ratelimit-remaining", "4999")], "", proceed(None));
        check(200, &[], "", proceed(None));
        check(
            200,
            &[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", &reset),
            ],
            "",
            proceed(Some(600)),
        );
        check(429, &[("retry-after", "30")], "", limited(Secondary, 30));
        check(403, &[("retry-after", "5")], "", limited(Secondary, 5));
        check(403, &[("retry-after", "0")], "", limited(Secondary, 0));
        check(
            403,
            &[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", &reset),
            ],
            "",
            limited(Primary, 600),
        );
        check(
            429,
            &[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", &reset),
            ],
            "",
            limited(Primary, 600),
        );
        check(
            403,
            &[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", &past)],
            "",
            limited(Primary, 1),
        );
        check(429, &[], "", limited(Secondary, 60));
        check(
            403,
            &[("x-ratelimit-remaining", "12")],
            "You have exceeded a secondary rate limit",
            limited(Secondary, 60),
        );
        // A plain 403 is a permission problem, not a limit.
        check(
            403,
            &[("x-ratelimit-remaining", "12")],
            "Resource not accessible by integration",
            proceed(None),
        );
        check(404, &[], "Not Found", proceed(None));
        check(500, &[("retry-after", "5")], "", proceed(None));
    }
}
