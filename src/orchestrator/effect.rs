//! What the state machine asks the daemon to do. The daemon performs effects
//! in the order given, after storing the new state, and feeds the results back
//! as [`Event`](super::Event)s.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How a remediation undoes a deployment on the plane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum RemediationAction {
    /// Put the previous version back (supersedence or redeploy).
    Rollback { to_version: String },
    /// Remove this version; the plan has no version to go back to.
    Uninstall,
    /// Stop the assignment from reaching more devices; leave installed ones.
    Halt,
}

/// The audit event types the orchestrator writes. Their text is the store's
/// event type of the same name; `details.kind` says precisely what happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditEventType {
    /// Supersession by a newer intent (it arrives with a commit).
    CommitProcessed,
    /// Risk assessed, scope validated, a verdict applied or refused.
    PolicyEvaluated,
    /// The CAB requirement is met.
    CabApproved,
    /// A ring was published (or started under an emergency override).
    RingStarted,
    /// A ring passed its gate, or the whole rollout completed.
    RingCompleted,
    /// A gate failed or was inconclusive.
    GateEvaluated,
    /// A rollback or halt started, finished or failed.
    RollbackExecuted,
    /// A human held, resumed or rolled back (or was refused).
    OperatorAction,
    /// Something stopped a ring from being published: evidence, a freeze, a
    /// busy ring, a blocked version, an approval, a plane failure.
    PublishBlocked,
}

impl AuditEventType {
    /// The store's text for this event type.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditEventType::CommitProcessed => "commit_processed",
            AuditEventType::PolicyEvaluated => "policy_evaluated",
            AuditEventType::CabApproved => "cab_approved",
            AuditEventType::RingStarted => "ring_started",
            AuditEventType::RingCompleted => "ring_completed",
            AuditEventType::GateEvaluated => "gate_evaluated",
            AuditEventType::RollbackExecuted => "rollback_executed",
            AuditEventType::OperatorAction => "operator_action",
            AuditEventType::PublishBlocked => "publish_blocked",
        }
    }

    /// Every type, in declaration order.
    pub const ALL: [AuditEventType; 9] = [
        AuditEventType::CommitProcessed,
        AuditEventType::PolicyEvaluated,
        AuditEventType::CabApproved,
        AuditEventType::RingStarted,
        AuditEventType::RingCompleted,
        AuditEventType::GateEvaluated,
        AuditEventType::RollbackExecuted,
        AuditEventType::OperatorAction,
        AuditEventType::PublishBlocked,
    ];
}

/// How an audited thing turned out; the store's outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditOutcome {
    Success,
    Failure,
    /// Started, or waiting for something.
    Pending,
    /// A fact, neither success nor failure.
    Info,
}

impl AuditOutcome {
    /// The store's text for this outcome.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Success => "success",
            AuditOutcome::Failure => "failure",
            AuditOutcome::Pending => "pending",
            AuditOutcome::Info => "info",
        }
    }
}

/// One thing for the daemon to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum Effect {
    /// Build, sign and commit an evidence record on the evidence branch, then
    /// reply `EvidenceCommitted` / `EvidenceFailed` with the same id. Idempotent
    /// on `transition_id`: the same id may be asked for again after a failure.
    RecordEvidence {
        transition_id: String,
        record_type: String,
        summary: Value,
    },
    /// Take the (application, boundary, business unit, ring) lock in the store;
    /// reply `RingClaimed` or `RingBusy`.
    ClaimRing { ring: String },
    /// Give the lock back. No reply.
    ReleaseRing { ring: String },
    /// Assign the version to the ring's groups through the plane, idempotent on
    /// the intent's correlation id; reply `PublishConfirmed` / `PublishFailed`.
    Publish { ring: String },
    /// Ask the plane for the ring's install status; reply `StatusObserved`.
    QueryStatus { ring: String },
    /// Undo the deployment in `rings` by the plan's plane `strategy`; reply
    /// `RollbackConfirmed` / `RollbackFailed` (not for `Halt`, which needs none).
    Remediate {
        strategy: String,
        rings: Vec<String>,
        action: RemediationAction,
    },
    /// Append to the audit log. No reply.
    EmitEvent {
        event_type: AuditEventType,
        outcome: AuditOutcome,
        /// Who: an operator's id, `cab`, or `ringmaster` for the machine.
        actor: String,
        ring: Option<String>,
        /// Always an object with at least `kind`.
        details: Value,
    },
    /// Send this run a `Tick` at (or soon after) `at`.
    WakeAt { at: DateTime<Utc> },
    /// Page a human (on-call, channel); also worth an audit event. No reply.
    Alert { message: String },
}

impl Effect {
    /// The effect's name, as in its serialised `effect` tag.
    pub fn name(&self) -> &'static str {
        match self {
            Effect::RecordEvidence { .. } => "record_evidence",
            Effect::ClaimRing { .. } => "claim_ring",
            Effect::ReleaseRing { .. } => "release_ring",
            Effect::Publish { .. } => "publish",
            Effect::QueryStatus { .. } => "query_status",
            Effect::Remediate { .. } => "remediate",
            Effect::EmitEvent { .. } => "emit_event",
            Effect::WakeAt { .. } => "wake_at",
            Effect::Alert { .. } => "alert",
        }
    }
}
