//! One circuit breaker per execution plane, around every call the performer
//! makes to a connector (publish, status, remediation, idempotency checks).
//!
//! The orchestrator already backs off per run; a plane that is down is
//! still called by every run that has something to do on it, at every
//! step. The breaker is the plane's: after a few failures in a row the
//! plane is left alone — no run's call goes out, each gets a transient
//! `service_unavailable` error with the time of the next probe as its
//! `retry_after` — and one call probes it when the open time is over. A
//! success closes it, a failure opens it again for longer (2 s, 4 s, … up
//! to 5 minutes, jittered; see [`crate::orchestrator::BreakerPolicy`]).
//!
//! Only failures that say the plane is unwell count: throttling, timeouts,
//! 5xx (the `transient` class). A refused request (bad input, missing
//! group, policy) is an answer from a working plane and closes the breaker.

use crate::model::Plane;
use crate::orchestrator::{BreakerPolicy, BreakerState, CircuitBreaker};
use crate::planes::{ConnectorError, ErrorClass, ErrorCode};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;

/// The breakers of the planes, created on first use; shared by reference
/// with the performer (status queries take `&self`).
#[derive(Debug, Default)]
pub struct PlaneBreakers {
    breakers: Mutex<BTreeMap<Plane, CircuitBreaker>>,
}

impl PlaneBreakers {
    fn with<T>(&self, plane: Plane, act: impl FnOnce(&mut CircuitBreaker) -> T) -> T {
        let mut breakers = self.breakers.lock().unwrap_or_else(|e| e.into_inner());
        let breaker = breakers.entry(plane).or_insert_with(|| {
            CircuitBreaker::new(
                format!("plane {}", plane.as_str()),
                BreakerPolicy::default(),
            )
        });
        let answer = act(breaker);
        crate::metrics::runtime::breaker(plane.as_str(), breaker);
        answer
    }

    /// Makes `call` to `plane` through its breaker: refused without being
    /// started while the breaker is open, its outcome recorded otherwise.
    /// `operation` (`publish`, `query_status`, ...) labels the call's
    /// metrics (`metrics::runtime`: latency, outcome class, throttling).
    pub async fn call<T>(
        &self,
        plane: Plane,
        operation: &str,
        now: DateTime<Utc>,
        call: impl Future<Output = Result<T, ConnectorError>>,
    ) -> Result<T, ConnectorError> {
        if let Some(refusal) = self.refusal(plane, operation, now) {
            return Err(refusal);
        }
        let result = crate::metrics::runtime::plane_call(plane.as_str(), operation, call).await;
        self.with(plane, |breaker| match &result {
            Err(error) if error.class == ErrorClass::Transient => {
                // A plane that said how long to wait (429/503 with
                // Retry-After) is left alone that long by every run.
                let retry_after = error
                    .retry_after
                    .and_then(|wait| chrono::Duration::from_std(wait).ok());
                let opened_before = breaker.retry_at().is_some();
                let opened =
                    breaker.record_failure(now, error.to_string(), retry_after, rand::random::<f64>());
                if !opened_before && let Some(until) = opened {
                    tracing::warn!(plane = plane.as_str(), %until, %error, "plane failing: its circuit breaker opened");
                }
            }
            _ => {
                if !matches!(breaker.state(), BreakerState::Closed { .. }) {
                    tracing::info!(plane = plane.as_str(), "plane answers again: its circuit breaker closed");
                }
                breaker.record_success();
            }
        });
        result
    }

    /// What [`Self::call`] answers without sending anything while the
    /// plane's breaker is open at `now` (a transient `service_unavailable`
    /// whose `retry_after` is the time to the next probe); `None` when a call
    /// may go out (an open breaker whose time is over lets it through as a
    /// probe). Lets the performer journal a refused call as never sent.
    pub fn refusal(
        &self,
        plane: Plane,
        operation: &str,
        now: DateTime<Utc>,
    ) -> Option<ConnectorError> {
        let refused = self.with(plane, |breaker| breaker.admit(now)).err()?;
        crate::metrics::runtime::plane_call_refused(plane.as_str(), operation);
        let wait = (refused.until - now).to_std().unwrap_or_default();
        Some(ConnectorError {
            class: ErrorClass::Transient,
            code: ErrorCode::ServiceUnavailable,
            message: format!(
                "plane {} is failing; nothing is sent to it before {} (circuit breaker open; last error: {})",
                plane.as_str(),
                refused.until.to_rfc3339(),
                refused.last_error
            ),
            retry_after: Some(wait.max(std::time::Duration::from_secs(1))),
        })
    }

    /// The earliest time an open breaker lets a probe through, for the
    /// event loop's next deadline.
    pub fn retry_at(&self) -> Option<DateTime<Utc>> {
        let breakers = self.breakers.lock().unwrap_or_else(|e| e.into_inner());
        breakers.values().filter_map(CircuitBreaker::retry_at).min()
    }

    /// Each plane's breaker state, for `status`.
    pub fn states(&self) -> BTreeMap<Plane, BreakerState> {
        let breakers = self.breakers.lock().unwrap_or_else(|e| e.into_inner());
        breakers
            .iter()
            .map(|(plane, breaker)| (*plane, breaker.state().clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn down() -> ConnectorError {
        ConnectorError::new(ErrorCode::ServiceUnavailable, "503 from the plane")
    }

    #[tokio::test]
    async fn a_failing_plane_is_left_alone_then_probed_and_others_are_not_affected() {
        let breakers = PlaneBreakers::default();
        let sent = AtomicUsize::new(0);
        let start: DateTime<Utc> = "2026-12-01T00:00:00Z".parse().unwrap();
        let call = |ok: bool| {
            let sent = &sent;
            async move {
                sent.fetch_add(1, Ordering::SeqCst);
                if ok { Ok(()) } else { Err(down()) }
            }
        };
        // Three failures in a row open it.
        for _ in 0..3 {
            assert!(
                breakers
                    .call(Plane::Intune, "publish", start, call(false))
                    .await
                    .is_err()
            );
        }
        assert_eq!(sent.load(Ordering::SeqCst), 3);
        let until = breakers.retry_at().expect("open");
        assert!(until > start);
        // While open: refused without a call, transient, with retry_after.
        let refused = breakers
            .call(Plane::Intune, "publish", start, call(true))
            .await
            .expect_err("refused");
        assert_eq!(sent.load(Ordering::SeqCst), 3, "nothing was sent");
        assert_eq!(refused.class, ErrorClass::Transient);
        assert!(refused.retry_after.is_some());
        assert!(refused.message.contains("intune"), "{}", refused.message);
        // Another plane is not affected.
        breakers
            .call(Plane::Jamf, "publish", start, call(true))
            .await
            .expect("jamf");
        assert_eq!(sent.load(Ordering::SeqCst), 4);
        // A permanent refusal is an answer: it does not count.
        for _ in 0..5 {
            let refusal =
                async { Err::<(), _>(ConnectorError::new(ErrorCode::InvalidRequest, "bad")) };
            let _ = breakers.call(Plane::Jamf, "publish", start, refusal).await;
        }
        assert!(matches!(
            breakers.states()[&Plane::Jamf],
            BreakerState::Closed { .. }
        ));
        // The probe after the open time closes it.
        breakers
            .call(Plane::Intune, "publish", until, call(true))
            .await
            .expect("probe");
        assert_eq!(breakers.retry_at(), None);
    }
}
