//! Holds, and what humans do: hold, resume, roll back.
//!
//! A hold parks the run in [`Phase::Held`] with the phase to go back to. The
//! machine holds on its own when a human must decide (an inconclusive gate, a
//! CAB condition, evidence or a ring that cannot be had, a blocked version) and
//! pages; an operator may hold any run that is moving, or a completed one to
//! keep drift remediation off its deployment. While held, replies to
//! requests already sent are still recorded, but nothing new is started.
//! Resume goes back and redoes what that phase was waiting for (a gate is
//! judged again). A refused action is audited with the reason.

use super::effect::{AuditEventType, AuditOutcome};
use super::remediation::remediate;
use super::run::{HoldCause, Phase};
use super::soaking::reenter;
use super::state::Step;
use serde_json::json;

/// Holds the run where it is (never call it on a held run).
pub(crate) fn hold(step: &mut Step<'_>, cause: HoldCause, reason: String, by: &str) {
    let resume_to = std::mem::replace(&mut step.run.phase, Phase::Pending);
    let resume_name = resume_to.name();
    step.run.phase = Phase::Held {
        reason: reason.clone(),
        by: by.to_string(),
        cause,
        resume_to: Box::new(resume_to),
    };
    step.record(
        "held",
        json!({ "cause": cause, "reason": reason, "by": by, "resume_to": resume_name }),
    );
    let event_type = match cause {
        HoldCause::Operator => AuditEventType::OperatorAction,
        HoldCause::GateInconclusive | HoldCause::OpenIncident => AuditEventType::GateEvaluated,
        HoldCause::CabCondition
        | HoldCause::EvidenceUnavailable
        | HoldCause::RingBusy
        | HoldCause::VersionBlocked
        | HoldCause::PlaneUnavailable => AuditEventType::PublishBlocked,
    };
    step.emit(
        event_type,
        AuditOutcome::Pending,
        by,
        None,
        "held",
        json!({ "cause": cause, "reason": reason }),
    );
    if cause != HoldCause::Operator {
        let message = format!(
            "intent {} ({} {}) is held: {reason}; resume or roll back",
            step.run.intent_id, step.run.application_id, step.run.version
        );
        step.alert(message);
    }
}

fn refuse(step: &mut Step<'_>, actor: &str, kind: &str, why: String) {
    step.emit(
        AuditEventType::OperatorAction,
        AuditOutcome::Failure,
        actor,
        None,
        kind,
        json!({ "why": why, "phase": step.run.phase.name() }),
    );
}

/// An operator holds a moving run, or a completed one (which stops the
/// reconciler from remediating its drift until the hold is lifted).
pub(crate) fn on_hold(step: &mut Step<'_>, reason: &str, actor: &str) {
    let phase = &step.run.phase;
    let holdable = !phase.is_terminal() || matches!(phase, Phase::Completed);
    if !holdable || matches!(phase, Phase::Held { .. } | Phase::RollingBack { .. }) {
        let why = format!("a run that is {} cannot be held", phase.name());
        refuse(step, actor, "hold_refused", why);
        return;
    }
    hold(step, HoldCause::Operator, reason.to_string(), actor);
}

pub(crate) fn on_resume(step: &mut Step<'_>, actor: &str) {
    let Phase::Held {
        cause, resume_to, ..
    } = step.run.phase.clone()
    else {
        let why = format!("a run that is {} is not held", step.run.phase.name());
        refuse(step, actor, "resume_refused", why);
        return;
    };
    if cause == HoldCause::VersionBlocked
        && let Some(blocked_by) = step.run.version_blocked_by().map(str::to_string)
    {
        let why = format!("the version is still blocked by intent {blocked_by}'s rollback");
        refuse(step, actor, "resume_refused", why);
        return;
    }
    if cause == HoldCause::CabCondition
        && let Phase::RingCompleted { ring } = resume_to.as_ref()
        && let Some(index) = step.run.plan.index_of(ring)
    {
        step.run.rings[index].cab_hold_released = true;
    }
    step.run.phase = *resume_to;
    step.record("resumed", json!({ "actor": actor, "cause": cause }));
    step.emit(
        AuditEventType::OperatorAction,
        AuditOutcome::Success,
        actor,
        None,
        "resumed",
        json!({ "cause": cause, "phase": step.run.phase.name() }),
    );
    reenter(step);
}

pub(crate) fn on_rollback(step: &mut Step<'_>, reason: &str, actor: &str) {
    if matches!(
        step.run.phase,
        Phase::RollingBack { .. } | Phase::RolledBack { .. } | Phase::Superseded { .. }
    ) {
        let why = format!(
            "a run that is {} cannot be rolled back",
            step.run.phase.name()
        );
        refuse(step, actor, "rollback_refused", why);
        return;
    }
    remediate(step, format!("operator {actor}: {reason}"), actor, None);
    step.emit(
        AuditEventType::OperatorAction,
        AuditOutcome::Success,
        actor,
        None,
        "rollback_requested",
        json!({ "reason": reason }),
    );
}
