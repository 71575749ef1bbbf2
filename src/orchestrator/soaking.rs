//! Policy verdicts, soaking rings, gates and promotion.
//!
//! A verdict (`Evaluated`) walks a pending run through risk assessment and
//! scope validation and lets it start; a later verdict replaces the earlier
//! one (an approval arrived, an exception expired). A ring in progress is
//! judged on each status report: pass completes it and starts the next ring,
//! fail rolls back, inconclusive after the soak holds it for a human.

use super::effect::{AuditEventType, AuditOutcome, Effect};
use super::event::Event;
use super::gates::{GateResult, GateVerdict, ObservedStatus, duration_from_hours, evaluate_gate};
use super::operator::hold;
use super::remediation::{fail_run, remediate};
use super::run::{HoldCause, MACHINE_ACTOR, Phase, Requirement};
use super::starting::{advance, restart_from_between_rings, send_stage, start_no_longer_allowed};
use super::state::Step;
use crate::policy::Decision;
use serde_json::json;

fn cab_approved(decision: Option<Decision>, counted_approvals: &[String]) -> bool {
    decision == Some(Decision::Allow) && !counted_approvals.is_empty()
}

pub(crate) fn on_evaluated(step: &mut Step<'_>, event: &Event) {
    let Event::Evaluated {
        decision,
        risk_score,
        counted_approvals,
        conditions,
        emergency_override,
        waits_on,
    } = event
    else {
        return;
    };
    if step.run.phase.is_terminal() || matches!(step.run.phase, Phase::RollingBack { .. }) {
        if step.run.blocks_its_version() {
            step.emit(
                AuditEventType::PolicyEvaluated,
                AuditOutcome::Failure,
                MACHINE_ACTOR,
                None,
                "version_blocked",
                json!({ "message": format!(
                    "version {} was rolled back by this intent; a newer intent must supersede it",
                    step.run.version) }),
            );
        }
        return;
    }
    let was_approved = cab_approved(step.run.decision, step.run.counted_approvals());
    step.run.decision = Some(*decision);
    step.run.risk_score = Some(*risk_score);
    step.run.set_counted_approvals(counted_approvals.clone());
    step.run.set_conditions(conditions.clone());
    step.run.emergency_override = *emergency_override;
    let was_blocked = matches!(
        step.run.phase,
        Phase::AwaitingApproval {
            requirement: Requirement::ActiveChange,
            ..
        }
    );
    step.run.set_waits_on(if *decision == Decision::Deny {
        waits_on.clone()
    } else {
        Vec::new()
    });
    step.run.plan.set_conditions(conditions);
    let is_approved = cab_approved(step.run.decision, counted_approvals);
    step.emit(
        AuditEventType::PolicyEvaluated,
        AuditOutcome::Info,
        MACHINE_ACTOR,
        None,
        "verdict",
        json!({ "decision": decision.as_str(), "risk_score": risk_score,
                "counted_approvals": counted_approvals,
                "emergency_override": emergency_override }),
    );
    if is_approved && !was_approved {
        step.emit(
            AuditEventType::CabApproved,
            AuditOutcome::Success,
            "cab",
            None,
            "cab_approved",
            json!({ "counted_approvals": counted_approvals, "conditions": conditions }),
        );
    }
    if *decision == Decision::Deny && !waits_on.is_empty() {
        // A runtime fact that clears: wait for it, never fail for it.
        let reason = format!(
            "denied while {} in flight for {} in the same rings (one active change at a \
             time); waiting, judged again when {} ends",
            waits_on.join(", "),
            step.run.application_id,
            if waits_on.len() == 1 { "it" } else { "they" }
        );
        step.emit(
            AuditEventType::PublishBlocked,
            AuditOutcome::Pending,
            MACHINE_ACTOR,
            None,
            "blocked",
            json!({ "reason": reason, "waits_on": waits_on }),
        );
        match step.run.phase {
            Phase::Pending
            | Phase::RiskAssessed
            | Phase::ScopeValidated
            | Phase::CabApproved
            | Phase::AwaitingApproval { .. }
            | Phase::Paused { .. }
            | Phase::RingCompleted { .. } => advance(step),
            Phase::RingStarting { ref ring, stage }
                if start_no_longer_allowed(step, ring, stage) =>
            {
                let ring = ring.clone();
                restart_from_between_rings(step, &ring);
            }
            _ => {}
        }
        return;
    }
    if *decision == Decision::Deny {
        let published = !step.run.published_rings().is_empty();
        let reason = "the policy denied the intent (DENY)".to_string();
        fail_run(
            step,
            reason,
            "denied",
            AuditEventType::PolicyEvaluated,
            published,
        );
        return;
    }
    let nothing_started = step.run.rings.iter().all(|ring| !ring.publish_requested);
    match step.run.phase {
        Phase::Pending | Phase::RiskAssessed => walk_from_pending(step),
        // Blocked before its first ring: now it may go, from the start.
        Phase::AwaitingApproval { .. } if was_blocked && nothing_started => walk_from_pending(step),
        Phase::ScopeValidated
        | Phase::CabApproved
        | Phase::AwaitingApproval { .. }
        | Phase::Paused { .. }
        | Phase::RingCompleted { .. } => advance(step),
        Phase::RingStarting { ref ring, stage } if start_no_longer_allowed(step, ring, stage) => {
            let ring = ring.clone();
            restart_from_between_rings(step, &ring);
        }
        _ => {}
    }
}

/// Pending → risk assessed → scope validated (→ CAB approved), then start.
fn walk_from_pending(step: &mut Step<'_>) {
    step.run.phase = Phase::RiskAssessed;
    step.emit(
        AuditEventType::PolicyEvaluated,
        AuditOutcome::Info,
        MACHINE_ACTOR,
        None,
        "risk_assessed",
        json!({ "risk_score": step.run.risk_score }),
    );
    step.run.phase = Phase::ScopeValidated;
    step.emit(
        AuditEventType::PolicyEvaluated,
        AuditOutcome::Success,
        MACHINE_ACTOR,
        None,
        "scope_validated",
        json!({}),
    );
    if cab_approved(step.run.decision, step.run.counted_approvals()) {
        step.run.phase = Phase::CabApproved;
    }
    advance(step);
}

pub(crate) fn on_status_observed(step: &mut Step<'_>, event: &Event) {
    let Event::StatusObserved {
        ring,
        targeted,
        installed,
        failed,
        pending,
        incidents,
        first_install_at: reported_first_install,
    } = event
    else {
        return;
    };
    let Some(index) = step.run.plan.index_of(ring) else {
        return;
    };
    let phase = &step.run.phase;
    if phase.is_terminal()
        || matches!(phase, Phase::RollingBack { .. })
        || step.run.rings[index].started_at().is_none()
        || step.run.rings[index].completed_at().is_some()
    {
        return;
    }
    let progress = step.run.rings[index].start_mut();
    let first_install_at = progress
        .observed
        .as_ref()
        .and_then(|observed| observed.first_install_at)
        .or(*reported_first_install)
        .or((*installed > 0).then_some(step.now));
    progress.observed = Some(Box::new(ObservedStatus {
        targeted: *targeted,
        installed: *installed,
        failed: *failed,
        pending: *pending,
        incidents: *incidents,
        first_install_at,
    }));
    progress.observed_at = Some(step.now);
    if matches!(&step.run.phase, Phase::RingInProgress { ring: current } if current == ring) {
        judge(step, index, OnInconclusive::Hold);
    }
}

/// What an inconclusive gate after its soak leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnInconclusive {
    /// A fresh report is still inconclusive: a human must look.
    Hold,
    /// Just resumed: ask the plane again and judge the next report.
    AskAgain,
}

/// Judges ring `index` on its latest report and acts on the verdict.
pub(crate) fn judge(step: &mut Step<'_>, index: usize, on_inconclusive: OnInconclusive) {
    let planned = step.run.plan.rings[index].clone();
    let progress = &step.run.rings[index];
    let Some(started_at) = progress.started_at() else {
        return;
    };
    let observed = progress.observed().cloned().unwrap_or_default();
    let soak = duration_from_hours(planned.soak_hours);
    let result = evaluate_gate(&planned.gates, &observed, started_at, soak, step.now);
    step.run.rings[index].start_mut().gate = Some(Box::new(result.clone()));
    let ring = planned.ring;
    match (result.verdict, result.soak_complete, on_inconclusive) {
        (GateVerdict::Pass, _, _) => complete_ring(step, index, result),
        (GateVerdict::Fail, _, _) => {
            let reason = format!("gate of {ring} failed: {}", result.reasons.join("; "));
            step.emit(
                AuditEventType::GateEvaluated,
                AuditOutcome::Failure,
                MACHINE_ACTOR,
                Some(&ring),
                "gate_failed",
                json!({ "gate": result }),
            );
            remediate(step, reason, MACHINE_ACTOR, Some(result));
        }
        (GateVerdict::Hold, _, _) => {
            let reason = format!("gate of {ring} holds: {}", result.reasons.join("; "));
            step.emit(
                AuditEventType::GateEvaluated,
                AuditOutcome::Pending,
                MACHINE_ACTOR,
                Some(&ring),
                "gate_incident_hold",
                json!({ "gate": result }),
            );
            hold(step, HoldCause::OpenIncident, reason, MACHINE_ACTOR);
        }
        (GateVerdict::Inconclusive, true, OnInconclusive::Hold) => {
            let reason = format!(
                "gate of {ring} is inconclusive: {}",
                result.reasons.join("; ")
            );
            hold(step, HoldCause::GateInconclusive, reason, MACHINE_ACTOR);
            step.emit(
                AuditEventType::GateEvaluated,
                AuditOutcome::Pending,
                MACHINE_ACTOR,
                Some(&ring),
                "gate_inconclusive",
                json!({ "gate": result }),
            );
        }
        (GateVerdict::Inconclusive, soak_complete, OnInconclusive::AskAgain) => {
            step.effects.push(Effect::QueryStatus { ring });
            if !soak_complete {
                step.wake_at(started_at + soak);
            }
        }
        (GateVerdict::Inconclusive, false, OnInconclusive::Hold) => {}
    }
}

fn complete_ring(step: &mut Step<'_>, index: usize, result: GateResult) {
    let ring = step.run.plan.rings[index].ring.clone();
    step.run.rings[index].start_mut().completed_at = Some(step.now);
    step.run.phase = Phase::RingCompleted { ring: ring.clone() };
    step.record("ring_completed", json!({ "ring": ring, "gate": result }));
    let mut details = json!({ "gate": result });
    if let Some(class) = &step.run.plan.site_class {
        details["site_class"] = json!(class);
    }
    step.emit(
        AuditEventType::RingCompleted,
        AuditOutcome::Success,
        MACHINE_ACTOR,
        Some(&ring),
        "ring_completed",
        details,
    );
    advance(step);
}

/// Every ring passed.
pub(crate) fn complete(step: &mut Step<'_>) {
    step.run.phase = Phase::Completed;
    let rings: Vec<String> = step.run.rings.iter().map(|p| p.ring.to_string()).collect();
    step.record("rollout_completed", json!({ "rings": rings }));
    step.emit(
        AuditEventType::RingCompleted,
        AuditOutcome::Success,
        MACHINE_ACTOR,
        None,
        "rollout_completed",
        json!({ "rings": rings }),
    );
    step.release_claims();
}

/// Carries on from the phase a run was just put back into (after a resume, or
/// when a version block clears): redo what that phase was waiting for.
pub(crate) fn reenter(step: &mut Step<'_>) {
    match step.run.phase.clone() {
        Phase::Pending | Phase::RiskAssessed if step.run.decision.is_some() => {
            walk_from_pending(step)
        }
        Phase::ScopeValidated
        | Phase::CabApproved
        | Phase::AwaitingApproval { .. }
        | Phase::Paused { .. }
        | Phase::RingCompleted { .. } => advance(step),
        Phase::RingStarting { ring, stage } if start_no_longer_allowed(step, &ring, stage) => {
            restart_from_between_rings(step, &ring)
        }
        Phase::RingStarting { ring, stage } => {
            step.run.retry = Default::default();
            send_stage(step, &ring, stage);
        }
        Phase::RingInProgress { ring } => {
            if let Some(index) = step.run.plan.index_of(&ring) {
                judge(step, index, OnInconclusive::AskAgain);
            }
        }
        _ => {}
    }
}
