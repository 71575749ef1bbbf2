//! `budget`: the client-side request budget that keeps one connector inside the
//! documented Intune applications service limits (Microsoft Graph
//! throttling-limits, "Intune applications service limits": per app per tenant,
//! 100 POST/PUT/PATCH/DELETE and 1,000 requests of any kind per 20 seconds).
//!
//! A sliding window of the requests sent. A request that would exceed it is not
//! sent and not waited for: the caller gets `rate_limit` with the time until a
//! slot frees as `retry_after`, exactly as if Graph had throttled it, so all
//! backoff stays in the orchestrator (`docs/connectors.md` section 3).

use crate::planes::{ConnectorError, ErrorCode};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// How many requests fit in a window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestBudget {
    pub requests: u32,
    #[serde(with = "crate::planes::seconds::single")]
    pub window_seconds: Duration,
}

impl RequestBudget {
    /// Intune applications service: POST, PUT, DELETE, PATCH per app per tenant.
    pub fn intune_writes() -> RequestBudget {
        RequestBudget {
            requests: 100,
            window_seconds: Duration::from_secs(20),
        }
    }

    /// Intune applications service: any request per app per tenant.
    pub fn intune_all() -> RequestBudget {
        RequestBudget {
            requests: 1_000,
            window_seconds: Duration::from_secs(20),
        }
    }
}

/// A sliding window over the send times of the last `budget.requests` requests.
#[derive(Debug)]
pub struct SlidingWindow {
    budget: RequestBudget,
    sent: Mutex<VecDeque<Instant>>,
}

impl SlidingWindow {
    pub fn new(budget: RequestBudget) -> SlidingWindow {
        SlidingWindow {
            budget,
            sent: Mutex::new(VecDeque::new()),
        }
    }

    /// Takes one slot now, or answers how long until one frees.
    pub fn try_take(&self, now: Instant) -> Result<(), Duration> {
        let mut sent = self.sent.lock().unwrap_or_else(PoisonError::into_inner);
        while sent
            .front()
            .is_some_and(|oldest| now.duration_since(*oldest) >= self.budget.window_seconds)
        {
            sent.pop_front();
        }
        let limit = usize::try_from(self.budget.requests).unwrap_or(usize::MAX);
        if sent.len() < limit {
            sent.push_back(now);
            return Ok(());
        }
        let oldest = sent.front().copied().unwrap_or(now);
        Err((oldest + self.budget.window_seconds).saturating_duration_since(now))
    }

    /// Gives back a slot taken by [`SlidingWindow::try_take`] for a request that
    /// was then not sent (the other window refused it).
    pub fn give_back(&self) {
        let mut sent = self.sent.lock().unwrap_or_else(PoisonError::into_inner);
        sent.pop_back();
    }
}

/// The two windows of one connector: writes, and requests of any kind.
#[derive(Debug)]
pub struct ClientBudget {
    writes: SlidingWindow,
    all: SlidingWindow,
}

impl ClientBudget {
    pub fn new(writes: RequestBudget, all: RequestBudget) -> ClientBudget {
        ClientBudget {
            writes: SlidingWindow::new(writes),
            all: SlidingWindow::new(all),
        }
    }

    /// Admits one request, or refuses it with `rate_limit` and the wait.
    pub fn admit(&self, is_write: bool, operation: &str) -> Result<(), ConnectorError> {
        let now = Instant::now();
        let refused = |wait: Duration, which: &str, budget: &RequestBudget| {
            ConnectorError::new(
                ErrorCode::RateLimit,
                format!(
                    "{operation} not sent: the {which} budget of {} requests per {}s for this \
                     Intune tenant is spent; retry after the wait",
                    budget.requests,
                    budget.window_seconds.as_secs_f64()
                ),
            )
            .with_retry_after(Some(wait))
        };
        if is_write {
            self.writes
                .try_take(now)
                .map_err(|wait| refused(wait, "write", &self.writes.budget))?;
        }
        if let Err(wait) = self.all.try_take(now) {
            if is_write {
                self.writes.give_back();
            }
            return Err(refused(wait, "request", &self.all.budget));
        }
        Ok(())
    }
}
