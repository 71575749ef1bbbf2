//! Every metric ringmaster exposes, in one place: name, type, help and label
//! set. Nothing else in the code spells a metric name; `docs/observability.md`
//! lists the same table and a test keeps the two in step.
//!
//! Label bound: no intent id, device id or correlation id is ever a label.
//! `application` is bounded by the tenant's applications, `ring` by the
//! config's rings, `plane` by the six plane types, `business_unit` by the
//! tenant's business units; every other label is a closed set of words.

/// The Prometheus type of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
    pub labels: &'static [&'static str],
}

const fn family(
    name: &'static str,
    kind: Kind,
    help: &'static str,
    labels: &'static [&'static str],
) -> Family {
    Family {
        name,
        kind,
        help,
        labels,
    }
}

const RING: &[&str] = &["application", "ring", "plane", "business_unit"];

// The seed's seven (control-plane design, section 8).

/// 1. `successful_installs / total_target_devices` per ring.
pub const RING_SUCCESS_RATE: Family = family(
    "ringmaster_ring_success_rate",
    Kind::Gauge,
    "Installed devices over targeted devices of the ring (0..1).",
    RING,
);
/// 2. First successful install after the ring started.
pub const TIME_TO_COMPLIANCE: Family = family(
    "ringmaster_ring_time_to_compliance_seconds",
    Kind::Histogram,
    "Time from a ring's start to its first successful install, per completed ring.",
    &["ring"],
);
/// 3. `failed_installs / total_target_devices` per ring.
pub const RING_FAILURE_RATE: Family = family(
    "ringmaster_ring_failure_rate",
    Kind::Gauge,
    "Failed devices over targeted devices of the ring (0..1).",
    RING,
);
/// 4. Rollbacks executed per application.
pub const ROLLBACKS_EXECUTED: Family = family(
    "ringmaster_rollbacks_executed_total",
    Kind::Counter,
    "Rollbacks carried out on a plane, per application.",
    &["application"],
);
/// 5. CAB approval time, `decided_at - submitted_at`.
pub const CAB_APPROVAL_TIME: Family = family(
    "ringmaster_cab_approval_seconds",
    Kind::Histogram,
    "CAB decision time (decided_at - submitted_at) of the approval records in force.",
    &["decision"],
);
/// 6. Drift events per application.
pub const DRIFT_EVENTS: Family = family(
    "ringmaster_drift_events_total",
    Kind::Counter,
    "Drift detected between the desired and the plane's state, by drift type.",
    &["application", "drift_type"],
);
/// 7. Remediation success rate.
pub const REMEDIATION_SUCCESS_RATE: Family = family(
    "ringmaster_remediation_success_rate",
    Kind::Gauge,
    "Successful remediations over all remediation results (0..1; 1 with none).",
    &[],
);

// Rollouts.

pub const RING_DEVICES: Family = family(
    "ringmaster_ring_devices",
    Kind::Gauge,
    "Devices of the latest rollout of each application and business unit, by install status.",
    &["application", "ring", "plane", "business_unit", "status"],
);
pub const ROLLOUTS: Family = family(
    "ringmaster_rollouts",
    Kind::Gauge,
    "Deployment intents by the state of their rollout.",
    &["state"],
);
pub const RING_STARTS: Family = family(
    "ringmaster_ring_starts_total",
    Kind::Counter,
    "Rings started on a plane.",
    &["ring", "plane"],
);
pub const GATE_VERDICTS: Family = family(
    "ringmaster_gate_verdicts_total",
    Kind::Counter,
    "Promotion gate verdicts that moved a rollout (pass completes the ring).",
    &["ring", "verdict"],
);
pub const REMEDIATIONS: Family = family(
    "ringmaster_remediations_total",
    Kind::Counter,
    "Remediation results, by outcome.",
    &["outcome"],
);

// CAB.

pub const APPROVALS_PENDING: Family = family(
    "ringmaster_approvals_pending",
    Kind::Gauge,
    "Rollouts waiting for a CAB approval or an exception.",
    &["requirement"],
);
pub const APPROVALS_OLDEST_WAIT: Family = family(
    "ringmaster_approvals_pending_oldest_seconds",
    Kind::Gauge,
    "How long the longest-waiting rollout has waited for its approval (0 with none).",
    &[],
);
pub const CAB_APPROVALS: Family = family(
    "ringmaster_cab_approvals_total",
    Kind::Counter,
    "CAB approvals that let a rollout go on.",
    &[],
);

// Execution planes.

pub const PLANE_ACTIONS: Family = family(
    "ringmaster_plane_actions",
    Kind::Gauge,
    "Plane changes in the idempotency journal, by operation and state (planned, sent, confirmed, failed).",
    &["plane", "operation", "state"],
);
pub const PLANE_ATTEMPTS: Family = family(
    "ringmaster_plane_action_attempts_total",
    Kind::Counter,
    "Calls made for plane changes (every retry counts), by operation.",
    &["plane", "operation"],
);
pub const PLANE_REFUSED: Family = family(
    "ringmaster_plane_changes_refused_total",
    Kind::Counter,
    "Plane changes refused before any call (policy violation, hold, freeze).",
    &["plane"],
);

// The daemon.

pub const COMMITS_PROCESSED: Family = family(
    "ringmaster_commits_processed_total",
    Kind::Counter,
    "Commits of the tracked branch judged, by outcome (ok, invalid).",
    &["outcome"],
);
pub const LAST_COMMIT_AGE: Family = family(
    "ringmaster_last_processed_commit_age_seconds",
    Kind::Gauge,
    "Seconds since the daemon last processed a commit (-1 before the first).",
    &[],
);
pub const EVIDENCE_RECORDS: Family = family(
    "ringmaster_evidence_records_written_total",
    Kind::Counter,
    "Signed records on the evidence branch (the head's sequence number).",
    &[],
);
pub const EVIDENCE_PUSH_FAILURES: Family = family(
    "ringmaster_evidence_push_failures_total",
    Kind::Counter,
    "Times pushing the evidence branch to its remote started failing.",
    &[],
);
pub const PUBLISH_BLOCKED: Family = family(
    "ringmaster_publish_blocked_total",
    Kind::Counter,
    "Publishes held back, by reason.",
    &["reason"],
);
pub const WEBHOOK_DELIVERIES: Family = family(
    "ringmaster_webhook_deliveries_total",
    Kind::Counter,
    "Forge webhook deliveries accepted, by outcome (processed, queued).",
    &["outcome"],
);
pub const INCIDENTS_OPENED: Family = family(
    "ringmaster_incidents_opened_total",
    Kind::Counter,
    "Incident reports received from the incident sources.",
    &[],
);
pub const EVENTS: Family = family(
    "ringmaster_events_total",
    Kind::Counter,
    "Events in the hash-chained audit log.",
    &[],
);
pub const SCRAPE_DURATION: Family = family(
    "ringmaster_metrics_collect_seconds",
    Kind::Gauge,
    "How long collecting the previous scrape took.",
    &[],
);

/// Every family, in the order the exposition and the docs list them.
pub const ALL: &[Family] = &[
    RING_SUCCESS_RATE,
    TIME_TO_COMPLIANCE,
    RING_FAILURE_RATE,
    ROLLBACKS_EXECUTED,
    CAB_APPROVAL_TIME,
    DRIFT_EVENTS,
    REMEDIATION_SUCCESS_RATE,
    RING_DEVICES,
    ROLLOUTS,
    RING_STARTS,
    GATE_VERDICTS,
    REMEDIATIONS,
    APPROVALS_PENDING,
    APPROVALS_OLDEST_WAIT,
    CAB_APPROVALS,
    PLANE_ACTIONS,
    PLANE_ATTEMPTS,
    PLANE_REFUSED,
    COMMITS_PROCESSED,
    LAST_COMMIT_AGE,
    EVIDENCE_RECORDS,
    EVIDENCE_PUSH_FAILURES,
    PUBLISH_BLOCKED,
    WEBHOOK_DELIVERIES,
    INCIDENTS_OPENED,
    EVENTS,
    SCRAPE_DURATION,
];

/// The seed's seven metrics (section 8 of the control-plane design).
pub const SEED_SEVEN: [Family; 7] = [
    RING_SUCCESS_RATE,
    TIME_TO_COMPLIANCE,
    RING_FAILURE_RATE,
    ROLLBACKS_EXECUTED,
    CAB_APPROVAL_TIME,
    DRIFT_EVENTS,
    REMEDIATION_SUCCESS_RATE,
];

/// Histogram buckets, in seconds.
pub const TIME_TO_COMPLIANCE_BUCKETS: &[f64] = &[
    300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 43200.0, 86400.0, 172800.0, 259200.0,
    604800.0,
];
pub const CAB_APPROVAL_BUCKETS: &[f64] = &[
    900.0, 3600.0, 14400.0, 28800.0, 86400.0, 172800.0, 259200.0, 604800.0, 1209600.0,
];
