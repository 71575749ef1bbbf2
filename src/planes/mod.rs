//! `planes`: the connector contract and the connectors that drive the execution
//! planes (Intune, Jamf Pro, Configuration Manager, Landscape, Ansible).
//!
//! ringmaster never installs anything itself. It hands each plane a
//! [`PublishRequest`] per ring, reads back a [`DeploymentStatus`], and asks for a
//! [`Remediation`] when a gate or the reconciler says so. Every call is idempotent on
//! the intent's correlation id and takes `now`, so time is the caller's. The
//! written contract every connector obeys is `docs/connectors.md`.
//!
//! The set of connectors is closed, dispatched by an enum (added with the first
//! connector).

mod contract;
mod error;
mod seconds;
mod secret;

pub use contract::{
    ArtifactRef, DeploymentStatus, ObservedState, PublishRequest, PublishResult, Remediation,
    RemediationResult, RingStatus,
};
pub use error::{ConnectorError, ErrorClass, ErrorCode};
pub use secret::Secret;

use chrono::{DateTime, Utc};
use std::future::Future;

/// The seed's `ExecutionPlaneConnector`: four operations, all idempotent on the
/// correlation id, all taking the caller's `now`. See `docs/connectors.md`.
pub trait ExecutionPlaneConnector {
    /// Makes the app exist on the plane and assigns it to the request's groups;
    /// finds and completes what an earlier call with the same correlation id did.
    fn publish(
        &self,
        request: &PublishRequest,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<PublishResult, ConnectorError>> + Send;

    /// Per-ring install counts and what the plane holds, as of `now`.
    fn query_status(
        &self,
        correlation_id: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<DeploymentStatus, ConnectorError>> + Send;

    /// Carries out the action; `applied: false` when the plane was already there.
    fn remediate(
        &self,
        correlation_id: &str,
        remediation: &Remediation,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<RemediationResult, ConnectorError>> + Send;

    /// Whether the plane already holds a deployment with this correlation id: what
    /// the daemon asks after a crash instead of publishing blind.
    fn verify_idempotency(
        &self,
        correlation_id: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, ConnectorError>> + Send;
}
