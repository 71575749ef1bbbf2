//! `error`: how a connector says a call failed, so the orchestrator knows whether
//! to retry, stop, or escalate.
//!
//! The classes and codes are the seed's (`spec/control-plane-design.md`, "Error
//! Classification"), plus `ring_pinned`. The class follows from the code
//! ([`ErrorCode::class`]); a connector builds errors with [`ConnectorError::new`] so
//! the two never disagree. Messages name the plane object and the fix, and never
//! contain a credential (see `docs/connectors.md`).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// What the caller should do about a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The plane is throttling, slow or down: retry later with the same
    /// correlation id (after `retry_after` when the plane said so).
    Transient,
    /// The request or the connector's configuration is wrong: retrying the same
    /// call cannot succeed.
    Permanent,
    /// The plane (or its simulated policy) refuses the change: escalate, do not retry.
    PolicyViolation,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::Permanent => "permanent",
            ErrorClass::PolicyViolation => "policy_violation",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// The closed set of failure codes a connector reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// HTTP 429 or the plane's equivalent.
    RateLimit,
    /// No answer in time. The call may or may not have been applied.
    Timeout,
    /// HTTP 502/503/504 or the plane's equivalent.
    ServiceUnavailable,
    /// The plane refused the connector's credentials (HTTP 401).
    InvalidCredentials,
    /// The correlation id, group, app or package does not exist on the plane.
    ResourceNotFound,
    /// The request is malformed or contradicts what the plane holds.
    InvalidRequest,
    /// The target lies outside what this connector may touch.
    ScopeViolation,
    /// The credentials are valid but lack the permission (HTTP 403).
    Unauthorized,
    /// A plane quota (apps, assignments, storage) is exhausted.
    QuotaExceeded,
    /// The deployment was pinned at a ring ([`crate::planes::Remediation::RingPin`])
    /// and the call would widen it past that ring.
    RingPinned,
    /// The deployment was halted ([`crate::planes::Remediation::Halt`]): no
    /// ring of it is assigned again.
    DeploymentHalted,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::RateLimit => "rate_limit",
            ErrorCode::Timeout => "timeout",
            ErrorCode::ServiceUnavailable => "service_unavailable",
            ErrorCode::InvalidCredentials => "invalid_credentials",
            ErrorCode::ResourceNotFound => "resource_not_found",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::ScopeViolation => "scope_violation",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::QuotaExceeded => "quota_exceeded",
            ErrorCode::RingPinned => "ring_pinned",
            ErrorCode::DeploymentHalted => "deployment_halted",
        }
    }

    /// The class every connector reports this code with.
    pub fn class(self) -> ErrorClass {
        match self {
            ErrorCode::RateLimit | ErrorCode::Timeout | ErrorCode::ServiceUnavailable => {
                ErrorClass::Transient
            }
            ErrorCode::InvalidCredentials
            | ErrorCode::ResourceNotFound
            | ErrorCode::InvalidRequest => ErrorClass::Permanent,
            ErrorCode::ScopeViolation
            | ErrorCode::Unauthorized
            | ErrorCode::QuotaExceeded
            | ErrorCode::RingPinned
            | ErrorCode::DeploymentHalted => ErrorClass::PolicyViolation,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Lets callers write `error.code == "rate_limit"` as in the seed.
impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// A failed connector call.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[error("{code} ({class}): {message}{}", retry_after_suffix(.retry_after))]
pub struct ConnectorError {
    pub class: ErrorClass,
    pub code: ErrorCode,
    /// Names the plane object and the fix. Never contains a credential.
    pub message: String,
    /// How long the plane asked us to wait (`Retry-After`), when it said so.
    #[serde(default, with = "super::seconds::optional")]
    pub retry_after: Option<Duration>,
}

fn retry_after_suffix(retry_after: &Option<Duration>) -> String {
    match retry_after {
        Some(delay) => format!("; retry after {}s", delay.as_secs_f64()),
        None => String::new(),
    }
}

impl ConnectorError {
    /// An error whose class follows from its code.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ConnectorError {
        ConnectorError {
            class: code.class(),
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> ConnectorError {
        self.retry_after = retry_after;
        self
    }

    /// Whether the same call, with the same correlation id, may succeed later.
    pub fn is_retryable(&self) -> bool {
        self.class == ErrorClass::Transient
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_maps_to_the_seed_class() {
        let expected = [
            ("rate_limit", ErrorClass::Transient),
            ("timeout", ErrorClass::Transient),
            ("service_unavailable", ErrorClass::Transient),
            ("invalid_credentials", ErrorClass::Permanent),
            ("resource_not_found", ErrorClass::Permanent),
            ("invalid_request", ErrorClass::Permanent),
            ("scope_violation", ErrorClass::PolicyViolation),
            ("unauthorized", ErrorClass::PolicyViolation),
            ("quota_exceeded", ErrorClass::PolicyViolation),
            ("ring_pinned", ErrorClass::PolicyViolation),
        ];
        for (text, class) in expected {
            let code: ErrorCode = serde_json::from_value(serde_json::json!(text)).unwrap();
            assert_eq!(code.as_str(), text);
            assert!(code == text);
            assert_eq!(code.class(), class, "{text}");
        }
    }

    #[test]
    fn display_names_code_class_message_and_retry_after() {
        let error = ConnectorError::new(ErrorCode::RateLimit, "Graph throttled POST mobileApps")
            .with_retry_after(Some(Duration::from_millis(2128)));
        assert_eq!(
            error.to_string(),
            "rate_limit (transient): Graph throttled POST mobileApps; retry after 2.128s"
        );
        assert!(error.is_retryable());
        let permanent = ConnectorError::new(ErrorCode::InvalidRequest, "no groups");
        assert_eq!(
            permanent.to_string(),
            "invalid_request (permanent): no groups"
        );
        assert!(!permanent.is_retryable());
    }

    #[test]
    fn error_round_trips_through_json_with_retry_after_in_seconds() {
        let error = ConnectorError::new(ErrorCode::RateLimit, "slow down")
            .with_retry_after(Some(Duration::from_millis(1500)));
        let json = serde_json::to_value(&error).unwrap();
        assert_eq!(json["retry_after"], serde_json::json!(1.5));
        assert_eq!(json["class"], serde_json::json!("transient"));
        let back: ConnectorError = serde_json::from_value(json).unwrap();
        assert_eq!(back, error);
    }
}
