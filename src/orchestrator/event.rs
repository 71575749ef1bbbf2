//! What happens to a run: policy verdicts, results of effects, the clock, and
//! operators. The daemon turns everything it learns into one of these and hands
//! it to [`step`](super::step).

use crate::model::ApprovalCondition;
use crate::policy::Decision;
use serde::{Deserialize, Serialize};

/// How a connector call failed, which decides whether it is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// Throttling, timeouts, 5xx: retried with backoff.
    Transient,
    /// The request itself is wrong (bad group id, missing app): not retried.
    Permanent,
    /// The plane's own policy refused it (scope, compliance): not retried.
    PolicyViolation,
    /// No connector is configured for the plane (the tenant listed it after
    /// the daemon started): the run holds until one is, then goes on.
    PlaneUnavailable,
}

/// A connector's failure as the state machine needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectorFailure {
    pub class: FailureClass,
    /// The plane's error code or HTTP status, for the audit log.
    pub code: String,
    /// How long the plane asked us to wait (HTTP `Retry-After`), if it did.
    pub retry_after_seconds: Option<u64>,
}

/// One thing that happened to an intent's run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The policy verdict for the current revision of the intent (after a
    /// merge, a new approval, an expiry). It replaces the previous verdict.
    Evaluated {
        #[serde(with = "super::decision_wire")]
        decision: Decision,
        risk_score: u8,
        /// Approval ids that count towards the CAB requirement.
        counted_approvals: Vec<String>,
        /// Conditions of the counted approvals.
        conditions: Vec<ApprovalCondition>,
        /// A counted approval allows starting rings inside change freezes.
        emergency_override: bool,
        /// A DENY caused only by a runtime fact that clears: these intents'
        /// changes are in flight in the same application and rings (one
        /// active change at a time). The run waits (`blocked`) instead of
        /// failing, and is judged again when they end.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        waits_on: Vec<String>,
    },
    /// The evidence record `transition_id` is signed and committed.
    EvidenceCommitted { transition_id: String },
    /// The evidence record `transition_id` could not be committed.
    EvidenceFailed {
        transition_id: String,
        error: String,
    },
    /// The store gave this run the ring (reply to `ClaimRing`).
    RingClaimed { ring: String },
    /// Another intent holds the ring for this application (reply to `ClaimRing`).
    RingBusy {
        ring: String,
        holder_intent_id: String,
    },
    /// The plane accepted the assignment for the ring.
    PublishConfirmed { ring: String, external_id: String },
    /// The plane refused or could not take the assignment.
    PublishFailed {
        ring: String,
        error: ConnectorFailure,
    },
    /// What the plane reports for the ring now (reply to `QueryStatus`).
    StatusObserved {
        ring: String,
        targeted: u32,
        installed: u32,
        failed: u32,
        pending: u32,
        incidents: u32,
        /// When the plane says the first device of the ring installed, if it
        /// reports that; time to compliance is measured from it (a run that
        /// was held and looks late must not count the hold as install time).
        #[serde(default)]
        first_install_at: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Time passed: the daemon's periodic pass, or a `WakeAt` coming due.
    Tick,
    /// An operator stops automatic progress.
    OperatorHold { reason: String, actor: String },
    /// An operator lets a held run continue.
    OperatorResume { actor: String },
    /// An operator asks for this version to be rolled back.
    OperatorRollback { reason: String, actor: String },
    /// The plane finished the remediation.
    RollbackConfirmed,
    /// The plane could not finish the remediation. A transient failure
    /// (throttling, 5xx, a timeout, a plane without connector) is retried
    /// with backoff like any action; the run fails once the budget is spent.
    RollbackFailed {
        error: String,
        /// How it failed; `None` (older records) counts as permanent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failure: Option<ConnectorFailure>,
    },
    /// A newer intent replaces this one.
    Superseded { by_intent: String },
    /// Another run of the same application and version was rolled back (or
    /// failed its gate): this version must not be promoted further.
    VersionBlocked { by_intent: String },
    /// The run that blocked this version was superseded: promotion may go on.
    VersionCleared,
}

impl Event {
    /// The event's name, as in its serialised `event` tag.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Evaluated { .. } => "evaluated",
            Event::EvidenceCommitted { .. } => "evidence_committed",
            Event::EvidenceFailed { .. } => "evidence_failed",
            Event::RingClaimed { .. } => "ring_claimed",
            Event::RingBusy { .. } => "ring_busy",
            Event::PublishConfirmed { .. } => "publish_confirmed",
            Event::PublishFailed { .. } => "publish_failed",
            Event::StatusObserved { .. } => "status_observed",
            Event::Tick => "tick",
            Event::OperatorHold { .. } => "operator_hold",
            Event::OperatorResume { .. } => "operator_resume",
            Event::OperatorRollback { .. } => "operator_rollback",
            Event::RollbackConfirmed => "rollback_confirmed",
            Event::RollbackFailed { .. } => "rollback_failed",
            Event::Superseded { .. } => "superseded",
            Event::VersionBlocked { .. } => "version_blocked",
            Event::VersionCleared => "version_cleared",
        }
    }
}
