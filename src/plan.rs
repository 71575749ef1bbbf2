//! What an intent would do: the facts `ringmaster plan` and the PR comment show.
//!
//! Pure: built from a snapshot, the intent's evaluation and, optionally, the
//! base revision's snapshot (for the scope diff).

use crate::evaluation::IntentEvaluation;
use crate::model::scope::ScopeDiff;
use crate::model::{DeploymentIntent, Plane, Scope, Snapshot, TargetScope};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct BlastRow {
    pub ring: String,
    pub plane: Plane,
    pub entitlement: Option<String>,
    pub groups: Vec<String>,
    pub devices: u32,
    /// The entitlement's posture constraints, which the plane does not
    /// apply (`targeting`): `devices` counts every device of the groups.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub posture_not_applied: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimelineRow {
    pub ring: String,
    pub name: String,
    /// Absolute start when the schedule fixes one.
    pub start: Option<DateTime<Utc>>,
    /// Hours after the rollout starts, when no absolute start is known.
    pub offset_hours: f64,
    pub soak_hours: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApplicationScopeChange {
    pub previous: Option<Scope>,
    pub current: Scope,
    pub diff: ScopeDiff,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetChange {
    /// `None` when the intent is new at this revision.
    pub previous: Option<TargetScope>,
    pub current: TargetScope,
    pub rings_added: Vec<String>,
    pub rings_removed: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub intent_id: String,
    /// What an approval of this intent must carry as `intent_sha256`
    /// (`model::digest`).
    pub intent_sha256: String,
    pub application_id: String,
    pub version: String,
    pub plane: Option<Plane>,
    pub evaluation: IntentEvaluation,
    /// `None` without a base revision.
    pub application_scope: Option<ApplicationScopeChange>,
    pub target: Option<TargetChange>,
    pub blast_radius: Vec<BlastRow>,
    pub total_devices: u64,
    pub timeline: Vec<TimelineRow>,
    /// The diagnostics of the intent's own file (`ringmaster plan` fills
    /// them): an error there means no judge lets the intent roll out.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<crate::diagnostic::Diagnostic>,
    /// How often the intent's plane can serve gate checks in the worst case:
    /// every intent of the revision on that plane rolling out at once, each
    /// in its last ring (a check then reads every ring's devices,
    /// [`gate_calls`]), with the plane's default call budget and one check
    /// per daemon poll ([`GATE_CHECK_SECONDS`]); `None` for a plane without
    /// an HTTP budget. The daemon paces from what its active rollouts cost
    /// now (`budget::pacing`), and its status page shows both.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate_check: Option<crate::planes::budget::GateInterval>,
}

/// The gate-check interval the daemon aims at: a soaking ring's status is
/// asked at every step, and steps come at least every poll (30 s default).
pub const GATE_CHECK_SECONDS: u64 = 30;

/// Items per page the connectors' status queries read by default.
pub const STATUS_PAGE_SIZE: u64 = 100;

/// The default call budget of a plane's connector, if it has one. The
/// Ansible plane's is AWX's (Automation Controller, its HTTP mode); a local
/// `ansible-playbook` makes no API calls, and `plan` does not know which
/// mode the daemon runs, so it plans with the budget that can run short.
pub fn default_budget(plane: Plane) -> Option<crate::planes::budget::BudgetConfig> {
    use crate::planes::budget::BudgetConfig;
    match plane {
        Plane::Intune => Some(BudgetConfig::intune()),
        Plane::Jamf => Some(BudgetConfig::jamf()),
        Plane::Sccm => Some(BudgetConfig::sccm()),
        Plane::Landscape => Some(BudgetConfig::landscape()),
        Plane::Ansible => Some(BudgetConfig::awx()),
    }
}

/// The worst-case gate-check interval of `plane` for `snapshot`'s intents
/// (every intent in its last ring at once, [`gate_calls`]).
pub fn gate_check(
    snapshot: &Snapshot,
    plane: Plane,
) -> Option<crate::planes::budget::GateInterval> {
    gate_check_every(
        snapshot,
        plane,
        std::time::Duration::from_secs(GATE_CHECK_SECONDS),
    )
}

/// [`gate_check`] for a daemon whose gate checks come every `wanted`.
pub fn gate_check_every(
    snapshot: &Snapshot,
    plane: Plane,
    wanted: std::time::Duration,
) -> Option<crate::planes::budget::GateInterval> {
    default_budget(plane)?;
    let calls: u64 = snapshot
        .intents
        .values()
        .filter_map(|intent| gate_calls(snapshot, intent))
        .filter(|(on, _)| *on == plane)
        .map(|(_, calls)| calls)
        .sum();
    gate_interval(plane, calls, wanted)
}

/// The status calls one intent's gate check costs in the worst case, and on
/// which plane: in its last ring, when a status query reads the devices of
/// every ring the rollout has started (the connectors read the deployment's
/// every assigned group). `plan`'s gate-check line sums it over a plane's
/// intents. `None` when the intent's artifact does not resolve.
pub fn gate_calls(snapshot: &Snapshot, intent: &DeploymentIntent) -> Option<(Plane, u64)> {
    let last = intent.target_scope.rings.last()?;
    ring_gate_calls(snapshot, intent, last)
}

/// The status calls one gate check of `intent` costs while `ring` soaks: a
/// status query reads the devices of every ring started so far (`ring` and
/// those before it in the intent's order; every ring when `ring` is not
/// one of them). What the daemon's pacing counts for a rollout before its
/// first check in that ring is answered (`budget::pacing`). `None` when the
/// intent's artifact does not resolve.
pub fn ring_gate_calls(
    snapshot: &Snapshot,
    intent: &DeploymentIntent,
    ring: &str,
) -> Option<(Plane, u64)> {
    let plane = snapshot.artifact_of(intent)?.plane;
    let target = &intent.target_scope;
    let started = target
        .rings
        .iter()
        .position(|planned| planned == ring)
        .map_or(target.rings.len(), |index| index + 1);
    let devices: u64 = target.rings[..started]
        .iter()
        .filter_map(|ring| {
            snapshot.entitlement_for(
                plane,
                ring,
                &target.acquisition_boundary,
                &target.business_unit,
            )
        })
        .map(|rule| u64::from(rule.expected_devices))
        .sum();
    Some((
        plane,
        crate::planes::budget::status_calls(devices, STATUS_PAGE_SIZE),
    ))
}

/// Every plane's gate-check calls for `snapshot`'s intents ([`gate_calls`]
/// summed), so one pass serves every intent's [`gate_check`].
pub fn gate_calls_by_plane(snapshot: &Snapshot) -> std::collections::BTreeMap<Plane, u64> {
    let mut calls = std::collections::BTreeMap::new();
    for intent in snapshot.intents.values() {
        if let Some((plane, count)) = gate_calls(snapshot, intent) {
            *calls.entry(plane).or_insert(0) += count;
        }
    }
    calls
}

/// The gate-check interval of `plane` when its intents need `calls` status
/// calls per check; `None` for a plane without an HTTP budget.
pub fn gate_interval(
    plane: Plane,
    calls: u64,
    wanted: std::time::Duration,
) -> Option<crate::planes::budget::GateInterval> {
    let budget = default_budget(plane)?;
    Some(crate::planes::budget::GateInterval::compute(
        plane_name(plane),
        &budget,
        calls,
        wanted,
    ))
}

/// A plane's name as the gate-check sentences say it.
pub fn plane_name(plane: Plane) -> &'static str {
    match plane {
        Plane::Intune => "Intune",
        Plane::Jamf => "Jamf",
        Plane::Sccm => "Configuration Manager",
        Plane::Landscape => "Landscape",
        Plane::Ansible => "Ansible",
    }
}

pub fn build(
    snapshot: &Snapshot,
    intent: &DeploymentIntent,
    evaluation: IntentEvaluation,
    base: Option<&Snapshot>,
) -> Plan {
    let mut plan = build_without_gate_check(snapshot, intent, evaluation, base);
    plan.gate_check = plan.plane.and_then(|plane| gate_check(snapshot, plane));
    plan
}

/// [`build`] with every plane's gate-check calls already summed
/// ([`gate_calls_by_plane`] of `snapshot`): the same plan without a pass
/// over every intent for each one planned.
pub fn build_with_gate_calls(
    snapshot: &Snapshot,
    intent: &DeploymentIntent,
    evaluation: IntentEvaluation,
    base: Option<&Snapshot>,
    calls: &std::collections::BTreeMap<Plane, u64>,
) -> Plan {
    let mut plan = build_without_gate_check(snapshot, intent, evaluation, base);
    plan.gate_check = plan.plane.and_then(|plane| {
        gate_interval(
            plane,
            calls.get(&plane).copied().unwrap_or(0),
            std::time::Duration::from_secs(GATE_CHECK_SECONDS),
        )
    });
    plan
}

/// [`build`] without the plane's gate-check interval (`gate_check: None`).
/// The interval is a pass over every intent of the snapshot: what a
/// decision record carries of the plan does not include it, and building
/// it for each of 10,000 intents made the daemon's first start quadratic.
pub fn build_without_gate_check(
    snapshot: &Snapshot,
    intent: &DeploymentIntent,
    evaluation: IntentEvaluation,
    base: Option<&Snapshot>,
) -> Plan {
    let plane = snapshot.artifact_of(intent).map(|a| a.plane);
    let target = &intent.target_scope;
    let blast_radius: Vec<BlastRow> = target
        .rings
        .iter()
        .filter_map(|ring| {
            let plane = plane?;
            let rule = snapshot.entitlement_for(
                plane,
                ring,
                &target.acquisition_boundary,
                &target.business_unit,
            );
            Some(BlastRow {
                ring: ring.clone(),
                plane,
                entitlement: rule.map(|r| r.id.clone()),
                groups: rule
                    .map(|r| {
                        r.groups
                            .iter()
                            .map(|g| g.name.clone().unwrap_or_else(|| g.id.clone()))
                            .collect()
                    })
                    .unwrap_or_default(),
                devices: rule.map(|r| r.expected_devices).unwrap_or(0),
                posture_not_applied: rule
                    .map(|r| crate::targeting::posture_constraints(&r.posture))
                    .unwrap_or_default(),
            })
        })
        .collect();
    let total_devices = blast_radius.iter().map(|row| u64::from(row.devices)).sum();

    let mut timeline = Vec::new();
    if let Some(config) = &snapshot.config {
        let mut offset = 0.0;
        let mut previous_end: Option<DateTime<Utc>> = None;
        for ring in &target.rings {
            let definition = config.rings.iter().find(|r| &r.id == ring);
            let window = intent.schedule.get(ring);
            let soak = window
                .map(|w| w.duration_hours)
                .or(definition.map(|d| d.soak_hours))
                .unwrap_or(0.0);
            let start = window.and_then(|w| w.start).or(previous_end);
            timeline.push(TimelineRow {
                ring: ring.clone(),
                name: definition
                    .map(|d| d.name.clone())
                    .unwrap_or_else(|| ring.clone()),
                start,
                offset_hours: offset,
                soak_hours: soak,
            });
            previous_end = start.map(|s| s + Duration::minutes((soak * 60.0) as i64));
            offset += soak;
        }
    }

    let (application_scope, target_change) = match base {
        None => (None, None),
        Some(base) => {
            let application_scope =
                snapshot
                    .applications
                    .get(&intent.application_id)
                    .map(|current| {
                        let previous = base
                            .applications
                            .get(&intent.application_id)
                            .map(|a| a.allowed_scope.clone());
                        ApplicationScopeChange {
                            diff: previous
                                .as_ref()
                                .map(|p| ScopeDiff::between(p, &current.allowed_scope))
                                .unwrap_or_default(),
                            previous,
                            current: current.allowed_scope.clone(),
                        }
                    });
            let previous = base
                .intents
                .get(&intent.intent_id)
                .map(|i| i.target_scope.clone());
            let before: Vec<String> = previous
                .as_ref()
                .map(|p| p.rings.clone())
                .unwrap_or_default();
            let target_change = TargetChange {
                rings_added: target
                    .rings
                    .iter()
                    .filter(|r| !before.contains(r))
                    .cloned()
                    .collect(),
                rings_removed: before
                    .iter()
                    .filter(|r| !target.rings.contains(r))
                    .cloned()
                    .collect(),
                previous,
                current: target.clone(),
            };
            (application_scope, Some(target_change))
        }
    };

    Plan {
        intent_id: intent.intent_id.clone(),
        intent_sha256: crate::model::digest::intent_sha256(snapshot, intent),
        application_id: intent.application_id.clone(),
        version: intent.version.clone(),
        plane,
        evaluation,
        application_scope,
        target: target_change,
        blast_radius,
        total_devices,
        timeline,
        diagnostics: Vec::new(),
        gate_check: None,
    }
}
