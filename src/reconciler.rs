//! Drift detection and what to do about it: compare what a plane holds with
//! what an intent wants, then decide — report, remediate, ticket, defer, or
//! leave alone.
//!
//! Pure and idempotent, like the orchestrator: the same facts always give the
//! same answer, so running it every hour (or twice by accident, or again after
//! a crash) is harmless. The daemon reads the facts (the plane's status
//! through the performer, earlier drift reports from the event log, the run),
//! calls [`compare`] and [`decide`], and performs the answer through the one
//! performer: drift events and an evidence record first, then the remediation
//! through the idempotency journal, then its result (event and evidence).
//!
//! Remediation respects holds and change freezes ([`orchestrator::guard`]): a
//! held run's drift is recorded and its remediation deferred until the hold
//! ends; inside a freeze only an emergency override lets it through, and that
//! is audited. A remediation that was decided but not finished (a crash, a
//! failed call, a deferral) stays owed on the drift record and is carried out
//! by a later pass, under the same record, so a restart never repeats it.
//!
//! [`orchestrator::guard`]: crate::orchestrator::guard

use crate::model::RemediationPolicy;
use crate::orchestrator::guard::{Permission, PlaneChange, may_change_plane};
use crate::orchestrator::{IntentRun, Phase};
use crate::planes::{DeploymentStatus, Remediation};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// What the intent wants on the plane, from the rings it has completed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DesiredState {
    pub version: String,
    /// Plane group ids of every ring rolled out so far.
    pub groups: Vec<String>,
    pub assigned_devices: u32,
}

/// The seed's drift types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftType {
    AssignmentMissing,
    VersionMismatch,
    ScopeMismatch,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Drift {
    pub drift_type: DriftType,
    pub desired_state: Value,
    pub actual_state: Value,
    pub detail: String,
}

/// Every way the plane's state differs from `desired`.
///
/// Devices still installing or whose install failed run another version by
/// design (the gates judge those); only devices beyond them count as
/// version drift.
pub fn compare(desired: &DesiredState, status: &DeploymentStatus) -> Vec<Drift> {
    let observed = &status.observed;
    let mut drifts = Vec::new();
    let missing: Vec<&String> = desired
        .groups
        .iter()
        .filter(|group| !observed.assigned_groups.contains(group))
        .collect();
    if !missing.is_empty() {
        drifts.push(Drift {
            drift_type: DriftType::AssignmentMissing,
            desired_state: json!({"version": desired.version, "assigned_groups": desired.groups, "assigned_devices": desired.assigned_devices}),
            actual_state: json!({"assigned_groups": observed.assigned_groups, "assigned_devices": observed.assigned_devices}),
            detail: format!("assignment to {} missing on the plane", join(&missing)),
        });
    }
    let extra: Vec<&String> = observed
        .assigned_groups
        .iter()
        .filter(|group| !desired.groups.contains(group))
        .collect();
    if !extra.is_empty() {
        drifts.push(Drift {
            drift_type: DriftType::ScopeMismatch,
            desired_state: json!({"assigned_groups": desired.groups}),
            actual_state: json!({"assigned_groups": observed.assigned_groups}),
            detail: format!("assigned to {} beyond the intent's scope", join(&extra)),
        });
    }
    let other_versions: Vec<(&String, &u32)> = observed
        .installed_versions
        .iter()
        .filter(|(version, count)| **version != desired.version && **count > 0)
        .collect();
    let devices: u32 = other_versions.iter().map(|(_, count)| **count).sum();
    let in_flight: u32 = status
        .rings
        .values()
        .map(|ring| ring.pending + ring.failed)
        .sum();
    if devices > in_flight {
        let devices = devices - in_flight;
        drifts.push(Drift {
            drift_type: DriftType::VersionMismatch,
            desired_state: json!({"version": desired.version}),
            actual_state: json!({"version": observed.version, "installed_versions": observed.installed_versions}),
            detail: format!(
                "{devices} device(s) run {} instead of {}",
                other_versions.iter().map(|(v, _)| v.as_str()).collect::<Vec<_>>().join(", "),
                desired.version
            ),
        });
    }
    drifts
}

fn join(groups: &[&String]) -> String {
    groups
        .iter()
        .map(|g| g.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What to do about drifts under a remediation policy: `auto` redeploys
/// (restores missing assignments, removes foreign ones, reinstalls the
/// intended version); `ticket` does nothing on the plane.
pub fn remediation_for(drifts: &[Drift], policy: RemediationPolicy) -> Option<Remediation> {
    match (drifts.is_empty(), policy) {
        (true, _) | (false, RemediationPolicy::Ticket) => None,
        (false, RemediationPolicy::Auto) => Some(Remediation::Redeploy),
    }
}

/// Whether a run's deployment is compared with its plane at all: something
/// was published under it and it is not being (or has not been) taken back.
/// A ring being published is left to its publish.
pub fn wants_reconcile(run: &IntentRun) -> bool {
    let published = run.rings.iter().any(|ring| ring.started_at().is_some());
    let phase_allows = match &run.phase {
        Phase::RingStarting { .. }
        | Phase::RollingBack { .. }
        | Phase::RolledBack { .. }
        | Phase::Failed { .. }
        | Phase::Superseded { .. }
        | Phase::Pending
        | Phase::RiskAssessed => false,
        Phase::Held { resume_to, .. } => !matches!(**resume_to, Phase::RingStarting { .. }),
        _ => true,
    };
    published && phase_allows
}

/// The drifts' identity: the same drifts give the same signature.
pub fn signature(drifts: &[Drift]) -> String {
    drifts
        .iter()
        .map(|drift| format!("{:?}:{}", drift.drift_type, drift.detail))
        .collect::<Vec<_>>()
        .join("|")
}

/// What was decided when a drift was reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportedAction {
    /// Remediate through the plane (`remediation: auto`).
    Auto,
    /// Open a ticket (`remediation: ticket`).
    ManualTicket,
    /// Remediate, but not now: the run was held or frozen.
    Deferred,
}

/// How a remediation of a reported drift turned out (the `remediation_result`
/// of its event).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemediationOutcome {
    /// The plane carried it out. Final.
    Success,
    /// The call failed; a later pass tries again (see [`MAX_REMEDIATION_FAILURES`]).
    Failed,
    /// A ticket was opened. Final.
    Pending,
    /// Held or frozen; carried out when that ends.
    Deferred,
    /// Its evidence could not be written, so nothing was sent; tried again.
    Blocked,
    /// The drift was gone before the remediation was sent. Final.
    NotNeeded,
}

impl RemediationOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RemediationOutcome::Success => "success",
            RemediationOutcome::Failed => "failed",
            RemediationOutcome::Pending => "pending",
            RemediationOutcome::Deferred => "deferred",
            RemediationOutcome::Blocked => "blocked",
            RemediationOutcome::NotNeeded => "not_needed",
        }
    }

    pub fn parse(text: &str) -> Option<RemediationOutcome> {
        [
            RemediationOutcome::Success,
            RemediationOutcome::Failed,
            RemediationOutcome::Pending,
            RemediationOutcome::Deferred,
            RemediationOutcome::Blocked,
            RemediationOutcome::NotNeeded,
        ]
        .into_iter()
        .find(|outcome| outcome.as_str() == text)
    }

    /// Nothing more is owed for the drift record.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RemediationOutcome::Success
                | RemediationOutcome::Pending
                | RemediationOutcome::NotNeeded
        )
    }
}

/// A remediation that failed this many times is given up (it was alerted
/// each time); the drift stays reported.
pub const MAX_REMEDIATION_FAILURES: u32 = 3;

/// The latest drift report of a run, as the event log has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastReport {
    /// The drift record's id (its evidence record and journal key).
    pub record_id: String,
    pub signature: String,
    pub action: ReportedAction,
    /// The latest result recorded for it, if any.
    pub outcome: Option<RemediationOutcome>,
    /// How many of its results were failures.
    pub failures: u32,
}

/// What [`decide`] is given.
#[derive(Debug, Clone)]
pub struct ReconcileFacts<'a> {
    pub run: &'a IntentRun,
    pub drifts: Vec<Drift>,
    /// The intent's remediation policy, else the config's.
    pub policy: RemediationPolicy,
    pub last_report: Option<LastReport>,
    pub now: DateTime<Utc>,
}

/// How a remediation may go ahead now.
#[derive(Debug, Clone, PartialEq)]
pub struct RemediationPlan {
    pub remediation: Remediation,
    /// The freeze it runs inside, under the run's emergency override.
    pub freeze_override: Option<String>,
}

/// What to do about a newly reported drift.
#[derive(Debug, Clone, PartialEq)]
pub enum DriftAction {
    Remediate(RemediationPlan),
    Ticket,
    Defer { reason: String },
}

/// The answer of [`decide`].
#[derive(Debug, Clone, PartialEq)]
pub enum ReconcileDecision {
    /// No drift, nothing owed.
    InSync,
    /// The same drift was reported and nothing more is owed (ticketed, given
    /// up, or deferred and still held): nothing to do.
    AlreadyReported,
    /// A new drift: record it (events + evidence), then do `action`.
    Report {
        signature: String,
        action: DriftAction,
    },
    /// Carry out the remediation still owed for an earlier report.
    Remediate {
        record_id: String,
        plan: RemediationPlan,
    },
    /// The remediation owed for an earlier report is still not allowed:
    /// record that it waits (once).
    Defer { record_id: String, reason: String },
    /// The drift of an earlier report is gone before its remediation ran.
    Close { record_id: String },
}

/// Decides what to do about a run's drift. Pure; see the module doc.
pub fn decide(facts: &ReconcileFacts<'_>) -> ReconcileDecision {
    let signature = signature(&facts.drifts);
    let permission = may_change_plane(facts.run, PlaneChange::Extend, facts.now);
    let plan = |permission: &Permission| {
        remediation_for(&facts.drifts, RemediationPolicy::Auto).map(|remediation| RemediationPlan {
            remediation,
            freeze_override: match permission {
                Permission::AllowedUnderOverride { freeze } => Some(freeze.name.clone()),
                _ => None,
            },
        })
    };
    if let Some(last) = &facts.last_report {
        let owed = last.action != ReportedAction::ManualTicket
            && !last.outcome.is_some_and(RemediationOutcome::is_final)
            && last.failures < MAX_REMEDIATION_FAILURES;
        if owed && facts.drifts.is_empty() {
            return ReconcileDecision::Close {
                record_id: last.record_id.clone(),
            };
        }
        if owed && last.signature == signature {
            return match (&permission, plan(&permission)) {
                (Permission::Refused { reason, .. }, _) => {
                    if last.outcome == Some(RemediationOutcome::Deferred) {
                        ReconcileDecision::AlreadyReported
                    } else {
                        ReconcileDecision::Defer {
                            record_id: last.record_id.clone(),
                            reason: reason.clone(),
                        }
                    }
                }
                (_, Some(plan)) => ReconcileDecision::Remediate {
                    record_id: last.record_id.clone(),
                    plan,
                },
                (_, None) => ReconcileDecision::AlreadyReported,
            };
        }
        let fixed = last.outcome.is_some_and(|outcome| {
            matches!(
                outcome,
                RemediationOutcome::Success | RemediationOutcome::NotNeeded
            )
        });
        if last.signature == signature && !fixed {
            return ReconcileDecision::AlreadyReported;
        }
    }
    if facts.drifts.is_empty() {
        return ReconcileDecision::InSync;
    }
    let action = match (facts.policy, &permission) {
        (RemediationPolicy::Ticket, _) => DriftAction::Ticket,
        (RemediationPolicy::Auto, Permission::Refused { reason, .. }) => DriftAction::Defer {
            reason: reason.clone(),
        },
        (RemediationPolicy::Auto, permission) => match plan(permission) {
            Some(plan) => DriftAction::Remediate(plan),
            None => DriftAction::Ticket,
        },
    };
    ReconcileDecision::Report { signature, action }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn desired() -> DesiredState {
        DesiredState {
            version: "2.0.0".into(),
            groups: vec!["g-lab".into(), "g-canary".into()],
            assigned_devices: 50,
        }
    }

    fn status(groups: &[&str], versions: &[(&str, u32)], pending: u32) -> DeploymentStatus {
        let ring = crate::planes::RingStatus {
            targeted: 50,
            pending,
            ..Default::default()
        };
        DeploymentStatus {
            correlation_id: "c".into(),
            rings: BTreeMap::from([("ring-1-canary".to_string(), ring)]),
            observed: crate::planes::ObservedState {
                version: versions.first().map(|(v, _)| v.to_string()),
                assigned_groups: groups.iter().map(|g| g.to_string()).collect(),
                assigned_devices: 50,
                installed_versions: versions
                    .iter()
                    .map(|(v, n)| (v.to_string(), *n))
                    .collect::<BTreeMap<_, _>>(),
            },
        }
    }

    fn observed(groups: &[&str], versions: &[(&str, u32)]) -> DeploymentStatus {
        status(groups, versions, 0)
    }

    fn check(status: DeploymentStatus, expected: &[DriftType]) {
        let drifts = compare(&desired(), &status);
        let types: Vec<DriftType> = drifts.iter().map(|d| d.drift_type).collect();
        assert_eq!(types, expected, "{drifts:#?}");
    }

    #[test]
    fn drift_table() {
        check(observed(&["g-lab", "g-canary"], &[("2.0.0", 50)]), &[]);
        check(
            observed(&["g-lab"], &[("2.0.0", 10)]),
            &[DriftType::AssignmentMissing],
        );
        check(
            observed(&["g-lab", "g-canary", "g-global"], &[("2.0.0", 50)]),
            &[DriftType::ScopeMismatch],
        );
        check(
            observed(&["g-lab", "g-canary"], &[("2.0.0", 45), ("1.9.0", 5)]),
            &[DriftType::VersionMismatch],
        );
        check(
            observed(&["g-canary", "g-other"], &[("1.9.0", 5)]),
            &[
                DriftType::AssignmentMissing,
                DriftType::ScopeMismatch,
                DriftType::VersionMismatch,
            ],
        );
    }

    #[test]
    fn devices_still_installing_are_not_drift() {
        check(
            status(&["g-lab", "g-canary"], &[("2.0.0", 45), ("1.9.0", 5)], 5),
            &[],
        );
        check(
            status(&["g-lab", "g-canary"], &[("2.0.0", 40), ("1.9.0", 10)], 5),
            &[DriftType::VersionMismatch],
        );
    }

    #[test]
    fn comparing_twice_gives_the_same_answer() {
        let status = observed(&["g-lab"], &[("1.9.0", 3)]);
        assert_eq!(compare(&desired(), &status), compare(&desired(), &status));
    }

    #[test]
    fn remediation_follows_the_policy() {
        let drifts = compare(&desired(), &observed(&["g-lab"], &[]));
        assert_eq!(
            remediation_for(&drifts, RemediationPolicy::Auto),
            Some(Remediation::Redeploy)
        );
        assert_eq!(remediation_for(&drifts, RemediationPolicy::Ticket), None);
        assert_eq!(remediation_for(&[], RemediationPolicy::Auto), None);
    }

    mod decisions {
        use super::super::*;
        use crate::orchestrator::testing::{config, intent};
        use crate::orchestrator::{HoldCause, RolloutPlan};
        use chrono::TimeZone as _;

        const CALM: (i32, u32, u32) = (2026, 11, 30);
        const FROZEN: (i32, u32, u32) = (2026, 12, 24);

        fn run(phase: Phase, emergency_override: bool) -> IntentRun {
            let intent = intent(&["ring-0-lab", "ring-1-canary"]);
            let plan = RolloutPlan::resolve(&intent, &config(), &[]).unwrap();
            let mut run = IntentRun::new(&intent, plan);
            run.rings[0].start_mut().started_at =
                Some(Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap());
            run.phase = phase;
            run.emergency_override = emergency_override;
            run
        }

        fn held() -> Phase {
            Phase::Held {
                reason: "investigating".into(),
                by: "olivia".into(),
                cause: HoldCause::Operator,
                resume_to: Box::new(Phase::Completed),
            }
        }

        fn drift() -> Vec<Drift> {
            vec![Drift {
                drift_type: DriftType::AssignmentMissing,
                desired_state: json!({}),
                actual_state: json!({}),
                detail: "assignment to g-lab missing on the plane".into(),
            }]
        }

        fn last(
            action: ReportedAction,
            outcome: Option<RemediationOutcome>,
            failures: u32,
        ) -> Option<LastReport> {
            Some(LastReport {
                record_id: "vpn-2.1/drift-1".into(),
                signature: signature(&drift()),
                action,
                outcome,
                failures,
            })
        }

        /// One row: the run's phase and override, the day, the policy, whether
        /// the drift is there, the last report → the decision's kind.
        fn check(
            phase: Phase,
            emergency_override: bool,
            day: (i32, u32, u32),
            policy: RemediationPolicy,
            drifted: bool,
            last_report: Option<LastReport>,
            expected: &str,
        ) {
            let run = run(phase, emergency_override);
            let facts = ReconcileFacts {
                run: &run,
                drifts: if drifted { drift() } else { Vec::new() },
                policy,
                last_report,
                now: Utc.with_ymd_and_hms(day.0, day.1, day.2, 10, 0, 0).unwrap(),
            };
            let decision = decide(&facts);
            let kind = match &decision {
                ReconcileDecision::InSync => "in_sync".to_string(),
                ReconcileDecision::AlreadyReported => "already_reported".to_string(),
                ReconcileDecision::Report { action, .. } => match action {
                    DriftAction::Remediate(plan) if plan.freeze_override.is_some() => {
                        "report+remediate_under_override".to_string()
                    }
                    DriftAction::Remediate(_) => "report+remediate".to_string(),
                    DriftAction::Ticket => "report+ticket".to_string(),
                    DriftAction::Defer { .. } => "report+defer".to_string(),
                },
                ReconcileDecision::Remediate { .. } => "remediate".to_string(),
                ReconcileDecision::Defer { .. } => "defer".to_string(),
                ReconcileDecision::Close { .. } => "close".to_string(),
            };
            assert_eq!(kind, expected, "{decision:?}");
        }

        #[test]
        fn decision_table() {
            use RemediationOutcome::*;
            use RemediationPolicy::{Auto, Ticket};
            use ReportedAction::{Auto as AutoAction, Deferred as DeferredAction, ManualTicket};
            let done = Phase::Completed;
            check(done.clone(), false, CALM, Auto, false, None, "in_sync");
            check(
                done.clone(),
                false,
                CALM,
                Auto,
                true,
                None,
                "report+remediate",
            );
            check(
                done.clone(),
                false,
                CALM,
                Ticket,
                true,
                None,
                "report+ticket",
            );
            // Holds and freezes apply to remediation.
            check(held(), false, CALM, Auto, true, None, "report+defer");
            check(
                done.clone(),
                false,
                FROZEN,
                Auto,
                true,
                None,
                "report+defer",
            );
            check(
                done.clone(),
                true,
                FROZEN,
                Auto,
                true,
                None,
                "report+remediate_under_override",
            );
            check(held(), true, FROZEN, Auto, true, None, "report+defer");
            // A deferred remediation waits, then runs when allowed.
            check(
                held(),
                false,
                CALM,
                Auto,
                true,
                last(DeferredAction, Some(Deferred), 0),
                "already_reported",
            );
            check(
                done.clone(),
                false,
                CALM,
                Auto,
                true,
                last(DeferredAction, Some(Deferred), 0),
                "remediate",
            );
            check(
                done.clone(),
                false,
                FROZEN,
                Auto,
                true,
                last(AutoAction, None, 0),
                "defer",
            );
            // Owed after a crash (no result yet), or after a failure, or blocked evidence.
            check(
                done.clone(),
                false,
                CALM,
                Auto,
                true,
                last(AutoAction, None, 0),
                "remediate",
            );
            check(
                done.clone(),
                false,
                CALM,
                Auto,
                true,
                last(AutoAction, Some(Failed), 1),
                "remediate",
            );
            check(
                done.clone(),
                false,
                CALM,
                Auto,
                true,
                last(AutoAction, Some(Blocked), 0),
                "remediate",
            );
            check(
                done.clone(),
                false,
                CALM,
                Auto,
                true,
                last(AutoAction, Some(Failed), 3),
                "already_reported",
            );
            // The drift went away before the owed remediation ran.
            check(
                done.clone(),
                false,
                CALM,
                Auto,
                false,
                last(AutoAction, None, 0),
                "close",
            );
            // Final outcomes: the same drift is not reported again...
            check(
                done.clone(),
                false,
                CALM,
                Ticket,
                true,
                last(ManualTicket, Some(Pending), 0),
                "already_reported",
            );
            // ...unless it was fixed and came back.
            check(
                done.clone(),
                false,
                CALM,
                Auto,
                true,
                last(AutoAction, Some(Success), 0),
                "report+remediate",
            );
            check(
                done,
                false,
                CALM,
                Auto,
                false,
                last(AutoAction, Some(Success), 0),
                "in_sync",
            );
        }

        #[test]
        fn only_published_runs_not_being_taken_back_are_reconciled() {
            assert!(wants_reconcile(&run(Phase::Completed, false)));
            assert!(wants_reconcile(&run(held(), false)));
            assert!(!wants_reconcile(&run(
                Phase::RolledBack {
                    reason: "gate".into()
                },
                false
            )));
            let starting = Phase::RingStarting {
                ring: "ring-1-canary".into(),
                stage: crate::orchestrator::StartStage::Publishing,
            };
            assert!(!wants_reconcile(&run(starting, false)));
            let mut unpublished = run(Phase::Completed, false);
            unpublished.rings[0].start_mut().started_at = None;
            assert!(!wants_reconcile(&unpublished));
        }
    }
}
