//! May a plane be changed for this run, now? The one check the performer
//! makes before every call that changes a plane (publish, redeploy, rollback,
//! uninstall, halt), whoever asked for it: the state machine or the
//! reconciler.
//!
//! Changes that reach more devices ([`PlaneChange::Extend`]: a publish, a
//! redeploy) respect holds and change freezes: a held run, or one that is
//! rolling back, rolled back, failed or superseded, is refused; inside a
//! freeze the change is refused unless the run's counted approval carries an
//! emergency override, and then it is allowed *and says so*, so the caller
//! audits it. Changes that take a deployment back ([`PlaneChange::Reduce`]: a
//! rollback, an uninstall, a halt) are safety actions and always allowed.

use super::freeze::{ActiveFreeze, active_freeze};
use super::run::{IntentRun, Phase};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Which way a plane call moves a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlaneChange {
    /// Reaches devices: publish, redeploy.
    Extend,
    /// Takes back: rollback, uninstall, halt.
    Reduce,
}

/// The answer of [`may_change_plane`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "permission", rename_all = "snake_case")]
pub enum Permission {
    Allowed,
    /// Inside `freeze`, allowed by the run's emergency override: audit it.
    AllowedUnderOverride {
        freeze: ActiveFreeze,
    },
    /// Not now. `until`: when a freeze that refuses it ends, if that is why.
    Refused {
        reason: String,
        until: Option<DateTime<Utc>>,
    },
}

impl Permission {
    pub fn is_allowed(&self) -> bool {
        !matches!(self, Permission::Refused { .. })
    }
}

/// Whether `change` may be made on the plane for `run` at `now`. Pure.
pub fn may_change_plane(run: &IntentRun, change: PlaneChange, now: DateTime<Utc>) -> Permission {
    if change == PlaneChange::Reduce {
        return Permission::Allowed;
    }
    let refused = |reason: String| Permission::Refused {
        reason,
        until: None,
    };
    match &run.phase {
        Phase::Held { reason, by, .. } => {
            return refused(format!("the rollout is held by {by}: {reason}"));
        }
        Phase::RollingBack { .. }
        | Phase::RolledBack { .. }
        | Phase::Failed { .. }
        | Phase::Superseded { .. } => {
            return refused(format!(
                "the rollout is {}; nothing more is deployed under it",
                run.phase.name()
            ));
        }
        _ => {}
    }
    match active_freeze(&run.plan.change_freezes, now) {
        None => Permission::Allowed,
        Some(freeze) if run.emergency_override => Permission::AllowedUnderOverride { freeze },
        Some(freeze) => Permission::Refused {
            reason: format!(
                "change freeze {} is in force until {}; only an emergency override may change the plane",
                freeze.name,
                freeze.ends_at.to_rfc3339()
            ),
            until: Some(freeze.ends_at),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orchestrator::testing::{config, intent};
    use crate::orchestrator::{HoldCause, RolloutPlan};
    use chrono::TimeZone as _;

    fn run(phase: Phase, emergency_override: bool) -> IntentRun {
        let intent = intent(&["ring-0-lab", "ring-1-canary"]);
        let plan = RolloutPlan::resolve(&intent, &config(), &[]).unwrap();
        let mut run = IntentRun::new(&intent, plan);
        run.phase = phase;
        run.emergency_override = emergency_override;
        run
    }

    fn held() -> Phase {
        Phase::Held {
            reason: "helpdesk spike".into(),
            by: "olivia".into(),
            cause: HoldCause::Operator,
            resume_to: Box::new(Phase::Completed),
        }
    }

    /// `(phase, override, hour of 2026-12-24 or 2026-11-30, change) → allowed?`
    fn check(
        phase: Phase,
        emergency_override: bool,
        frozen: bool,
        change: PlaneChange,
        expected: &str,
    ) {
        let now = if frozen {
            Utc.with_ymd_and_hms(2026, 12, 24, 10, 0, 0).unwrap()
        } else {
            Utc.with_ymd_and_hms(2026, 11, 30, 10, 0, 0).unwrap()
        };
        let answer = may_change_plane(&run(phase.clone(), emergency_override), change, now);
        let kind = match answer {
            Permission::Allowed => "allowed",
            Permission::AllowedUnderOverride { .. } => "override",
            Permission::Refused { .. } => "refused",
        };
        assert_eq!(
            kind, expected,
            "{phase:?} override {emergency_override} frozen {frozen} {change:?}"
        );
    }

    #[test]
    fn permission_table() {
        use PlaneChange::{Extend, Reduce};
        check(Phase::Completed, false, false, Extend, "allowed");
        check(Phase::Completed, false, true, Extend, "refused");
        check(Phase::Completed, true, true, Extend, "override");
        check(held(), false, false, Extend, "refused");
        check(held(), true, true, Extend, "refused");
        check(held(), false, true, Reduce, "allowed");
        check(
            Phase::RolledBack {
                reason: "gate".into(),
            },
            false,
            false,
            Extend,
            "refused",
        );
        check(
            Phase::Failed { reason: "x".into() },
            false,
            false,
            Extend,
            "refused",
        );
        check(Phase::Completed, false, true, Reduce, "allowed");
        let ring = Phase::RingInProgress {
            ring: "ring-1-canary".into(),
        };
        check(ring, false, false, Extend, "allowed");
    }

    #[test]
    fn a_refusal_in_a_freeze_says_when_it_ends() {
        let now = Utc.with_ymd_and_hms(2026, 12, 24, 10, 0, 0).unwrap();
        let answer = may_change_plane(&run(Phase::Completed, false), PlaneChange::Extend, now);
        let Permission::Refused { reason, until } = answer else {
            panic!("refused");
        };
        assert!(reason.contains("year-end"), "{reason}");
        assert_eq!(
            until,
            Some(Utc.with_ymd_and_hms(2027, 1, 3, 0, 0, 0).unwrap())
        );
    }
}
