//! Every metric ringmaster exposes, in one place: name, type, help and label
//! set. Nothing else in the code spells a metric name; `docs/observability.md`
//! lists the same table and a test keeps the two in step.
//!
//! Label bound: no intent id, device id or correlation id is ever a label.
//! `application` is bounded by the tenant's applications, `ring` by the
//! config's rings, `plane` by the six plane types, `business_unit` by the
//! tenant's business units, `site_class` by [`MAX_SITE_CLASSES`] (the rest
//! report as `other`); every other label is a closed set of words. No
//! family carries two of the open dimensions (application, business unit)
//! at once: per-ring device counts are summed over business units by
//! application, and over applications by business unit, so the largest
//! family has at most applications × rings × 4 series
//! (`docs/observability.md` lists every family's bound).
//!
//! Two sources: [`STORED`] families are read from the state store at
//! scrape time; [`PROCESS`] families are measured in the running process
//! (`metrics::runtime`: plane calls, circuit breakers, policy evaluation)
//! and start again from zero when it restarts.

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

/// Per-ring rates are over every application's latest rollout: the
/// per-application rate is `ringmaster_ring_devices` divided in PromQL.
const RING: &[&str] = &["ring", "plane"];

/// At most this many site classes are labels of time to compliance; the
/// others are counted under `other` (an intent without one: `unspecified`).
pub const MAX_SITE_CLASSES: usize = 8;

// The seed's seven (control-plane design, section 8).

/// 1. `successful_installs / total_target_devices` per ring.
pub const RING_SUCCESS_RATE: Family = family(
    "ringmaster_ring_success_rate",
    Kind::Gauge,
    "Installed devices over targeted devices of the ring, over the latest rollout of every application and business unit (0..1).",
    RING,
);
/// 2. First successful install after the ring started.
pub const TIME_TO_COMPLIANCE: Family = family(
    "ringmaster_ring_time_to_compliance_seconds",
    Kind::Histogram,
    "Time from a ring's start to its first successful install, per completed ring and the intent's site class.",
    &["ring", "site_class"],
);
/// 3. `failed_installs / total_target_devices` per ring.
pub const RING_FAILURE_RATE: Family = family(
    "ringmaster_ring_failure_rate",
    Kind::Gauge,
    "Failed devices over targeted devices of the ring, over the latest rollout of every application and business unit (0..1).",
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
    "Devices of the latest rollout of each application and business unit, summed by application, by install status.",
    &["application", "ring", "plane", "status"],
);
pub const BUSINESS_UNIT_DEVICES: Family = family(
    "ringmaster_business_unit_devices",
    Kind::Gauge,
    "Devices of the latest rollout of each application and business unit, summed by business unit, by install status.",
    &["business_unit", "ring", "status"],
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

// Execution planes, measured in the process (`metrics::runtime`).

pub const PLANE_CALLS: Family = family(
    "ringmaster_plane_calls_total",
    Kind::Counter,
    "Connector calls by plane, operation and outcome class (success, transient, permanent, policy_violation; circuit_open: refused by the breaker, not sent).",
    &["plane", "operation", "outcome"],
);
pub const PLANE_CALL_SECONDS: Family = family(
    "ringmaster_plane_call_seconds",
    Kind::Histogram,
    "How long a connector call took (calls sent only), by plane and operation.",
    &["plane", "operation"],
);
pub const PLANE_THROTTLED: Family = family(
    "ringmaster_plane_throttled_total",
    Kind::Counter,
    "Connector calls the plane throttled (HTTP 429 or the plane's equivalent).",
    &["plane"],
);
pub const PLANE_BUDGET_LIMIT: Family = family(
    "ringmaster_plane_budget_requests_per_window",
    Kind::Gauge,
    "Requests per window the plane's call budget admits now: the configured rate after adaptive back-off on 429/503.",
    &["plane"],
);
pub const PLANE_BUDGET_REQUESTS: Family = family(
    "ringmaster_plane_budget_requests_total",
    Kind::Counter,
    "HTTP requests through the plane's call budget, by outcome (sent; refused: not sent, the budget was spent; throttled: the plane answered 429/503).",
    &["plane", "outcome"],
);
pub const PLANE_GATE_INTERVAL: Family = family(
    "ringmaster_plane_gate_check_interval_seconds",
    Kind::Gauge,
    "Gate-check interval per plane: wanted (the schedule); effective (what the plane's call budget serves for the rollouts asking now, each at what its check costs in the ring it is in); worst_case (every intent of the tracked revision in its last ring at once, as `plan` says).",
    &["plane", "interval"],
);
pub const CIRCUIT_STATE: Family = family(
    "ringmaster_circuit_breaker_state",
    Kind::Gauge,
    "Circuit breaker of each dependency the daemon calls: 0 closed, 1 half-open (probing), 2 open.",
    &["dependency"],
);
pub const CIRCUIT_OPENINGS: Family = family(
    "ringmaster_circuit_breaker_openings_total",
    Kind::Counter,
    "Times a dependency's circuit breaker opened.",
    &["dependency"],
);
pub const POLICY_EVALUATION_SECONDS: Family = family(
    "ringmaster_policy_evaluation_seconds",
    Kind::Histogram,
    "How long evaluating the policy bundle on one intent took, by result (ok, error).",
    &["result"],
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

/// Every family read from the store at scrape time.
pub const STORED: &[Family] = &[
    RING_SUCCESS_RATE,
    TIME_TO_COMPLIANCE,
    RING_FAILURE_RATE,
    ROLLBACKS_EXECUTED,
    CAB_APPROVAL_TIME,
    DRIFT_EVENTS,
    REMEDIATION_SUCCESS_RATE,
    RING_DEVICES,
    BUSINESS_UNIT_DEVICES,
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

/// Every family measured in the running process.
pub const PROCESS: &[Family] = &[
    PLANE_CALLS,
    PLANE_CALL_SECONDS,
    PLANE_THROTTLED,
    PLANE_BUDGET_LIMIT,
    PLANE_BUDGET_REQUESTS,
    PLANE_GATE_INTERVAL,
    CIRCUIT_STATE,
    CIRCUIT_OPENINGS,
    POLICY_EVALUATION_SECONDS,
];

/// Every family.
pub const ALL: &[Family] = &[
    RING_SUCCESS_RATE,
    TIME_TO_COMPLIANCE,
    RING_FAILURE_RATE,
    ROLLBACKS_EXECUTED,
    CAB_APPROVAL_TIME,
    DRIFT_EVENTS,
    REMEDIATION_SUCCESS_RATE,
    RING_DEVICES,
    BUSINESS_UNIT_DEVICES,
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
    PLANE_CALLS,
    PLANE_CALL_SECONDS,
    PLANE_THROTTLED,
    PLANE_BUDGET_LIMIT,
    PLANE_BUDGET_REQUESTS,
    PLANE_GATE_INTERVAL,
    CIRCUIT_STATE,
    CIRCUIT_OPENINGS,
    POLICY_EVALUATION_SECONDS,
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
pub const PLANE_CALL_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
pub const POLICY_EVALUATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
pub const CAB_APPROVAL_BUCKETS: &[f64] = &[
    900.0, 3600.0, 14400.0, 28800.0, 86400.0, 172800.0, 259200.0, 604800.0, 1209600.0,
];
