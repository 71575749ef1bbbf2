//! `injection`: what a test (or the demo) can do to the simulated plane behind the
//! connector's back: make calls fail ([`Fault`]) and change what the plane holds
//! ([`Drift`]).

use crate::planes::{ConnectorError, ErrorCode};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A failure of the next connector call. Faults wait in a queue and each is used
/// by exactly one call, whatever the operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
pub enum Fault {
    /// HTTP 429, with or without `Retry-After`. Nothing is applied.
    RateLimited {
        #[serde(default, with = "crate::planes::seconds::optional")]
        retry_after: Option<Duration>,
    },
    /// HTTP 503. Nothing is applied.
    ServiceUnavailable,
    /// No answer in time, and nothing was applied.
    Timeout,
    /// The plane applies the call, then the answer is lost: the caller sees a
    /// timeout and must find what it created when it retries.
    ResponseLostAfterApply,
}

impl Fault {
    /// Whether the call is carried out on the plane before the caller hears of it.
    pub fn applies_call(&self) -> bool {
        matches!(self, Fault::ResponseLostAfterApply)
    }

    /// What the caller sees.
    pub fn error(&self, operation: &str) -> ConnectorError {
        match self {
            Fault::RateLimited { retry_after } => ConnectorError::new(
                ErrorCode::RateLimit,
                format!("sim plane throttled {operation} (HTTP 429); back off and retry"),
            )
            .with_retry_after(*retry_after),
            Fault::ServiceUnavailable => ConnectorError::new(
                ErrorCode::ServiceUnavailable,
                format!("sim plane answered {operation} with HTTP 503; retry later"),
            ),
            Fault::Timeout | Fault::ResponseLostAfterApply => ConnectorError::new(
                ErrorCode::Timeout,
                format!(
                    "sim plane did not answer {operation} in time; it may have been applied, \
                     retry with the same correlation id"
                ),
            ),
        }
    }
}

/// A change made on the plane outside ringmaster (an admin in the console, another
/// tool, a user), for the reconciler to find in `observed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "drift", rename_all = "snake_case")]
pub enum Drift {
    /// The assignment to `group` was deleted. Its devices keep what they run.
    AssignmentMissing { group: String },
    /// Up to `devices` devices that ran the delivered version now run `to_version`.
    VersionReverted { to_version: String, devices: u32 },
    /// The app was also assigned to `extra_group` (a registered group), under the
    /// last ring published; its devices start installing.
    ScopeWidened { extra_group: String },
}
