//! Starting a ring: whether the next ring may start now, then claim → record →
//! publish, with retries.
//!
//! [`advance`] is called whenever the run stands between rings. It checks, in
//! order: a CAB condition holding the rollout at the previous ring, a blocked
//! version, the policy verdict (REQUIRE_APPROVAL lets rings before the CAB
//! ring start; REQUIRE_EXCEPTION lets none), the intent's scheduled start, and
//! change freezes (an emergency override starts anyway and says so). Only then
//! does the ring start, in three stages: claim the ring in the store, record
//! the signed start record and wait for its commit, publish.

use super::effect::{AuditEventType, AuditOutcome, Effect};
use super::event::{ConnectorFailure, FailureClass};
use super::freeze::active_freeze;
use super::gates::duration_from_hours;
use super::operator::hold;
use super::remediation::fail_run;
use super::retrying::stage_failed;
use super::run::{
    CompactJson, HoldCause, MACHINE_ACTOR, PendingRecord, Phase, RetryState, StartStage,
};
use super::soaking::complete;
use super::state::Step;
use crate::policy::Decision;
use chrono::Duration;
use serde_json::json;

/// The phase a run rests in before ring `index` when nothing else applies.
pub(crate) fn resting_phase(step: &Step<'_>, index: usize) -> Phase {
    match index.checked_sub(1) {
        Some(previous) => Phase::RingCompleted {
            ring: step.run.plan.rings[previous].ring.clone(),
        },
        None if step.run.decision == Some(Decision::Allow)
            && !step.run.counted_approvals().is_empty() =>
        {
            Phase::CabApproved
        }
        None => Phase::ScopeValidated,
    }
}

/// Starts the next ring if nothing stops it, or says what does. Called only
/// between rings (never inside a ring start, a soak, a hold or a rollback).
pub(crate) fn advance(step: &mut Step<'_>) {
    let Some(index) = step.run.next_ring_index() else {
        complete(step);
        return;
    };
    let ring = step.run.plan.rings[index].ring.clone();
    if let Some(previous) = index.checked_sub(1)
        && let Some(description) = step.run.plan.rings[previous].cab_hold.clone()
        && !step.run.rings[previous].cab_hold_released
    {
        let previous_ring = step.run.plan.rings[previous].ring.clone();
        step.run.phase = resting_phase(step, index);
        let reason = format!("CAB condition at {previous_ring}: {description}");
        hold(step, HoldCause::CabCondition, reason, "cab");
        return;
    }
    if let Some(blocked_by) = step.run.version_blocked_by().map(str::to_string) {
        step.run.phase = resting_phase(step, index);
        let reason = format!(
            "version {} of {} failed or was rolled back under intent {blocked_by}; it \
             stays blocked until a newer intent supersedes that one",
            step.run.version, step.run.application_id
        );
        hold(step, HoldCause::VersionBlocked, reason, MACHINE_ACTOR);
        return;
    }
    if let Some(requirement) = step.run.requirement_for(index) {
        let awaiting = Phase::AwaitingApproval {
            ring: ring.clone(),
            requirement,
        };
        if step.run.phase != awaiting {
            step.run.phase = awaiting;
            step.emit(
                AuditEventType::PublishBlocked,
                AuditOutcome::Pending,
                MACHINE_ACTOR,
                Some(&ring),
                "awaiting_approval",
                json!({ "requirement": requirement,
                        "decision": step.run.decision.map(|decision| decision.as_str()) }),
            );
        }
        return;
    }
    if let Some(not_before) = step.run.plan.rings[index].not_before
        && step.now < not_before
    {
        step.run.phase = resting_phase(step, index);
        step.wake_at(not_before);
        return;
    }
    let mut freeze_override = None;
    if let Some(window) = active_freeze(&step.run.plan.change_freezes, step.now) {
        if !step.run.emergency_override {
            let paused = Phase::Paused {
                freeze: window.name.clone(),
                ring: ring.clone(),
                until: window.ends_at,
            };
            if step.run.phase != paused {
                step.run.phase = paused;
                step.emit(
                    AuditEventType::PublishBlocked,
                    AuditOutcome::Pending,
                    MACHINE_ACTOR,
                    Some(&ring),
                    "change_freeze",
                    json!({ "freeze": window.name, "ends_at": window.ends_at.to_rfc3339() }),
                );
            }
            step.wake_at(window.ends_at);
            return;
        }
        step.emit(
            AuditEventType::RingStarted,
            AuditOutcome::Info,
            MACHINE_ACTOR,
            Some(&ring),
            "change_freeze_overridden",
            json!({ "freeze": window.name, "started_at": window.started_at.to_rfc3339(),
                    "ends_at": window.ends_at.to_rfc3339(),
                    "counted_approvals": step.run.counted_approvals() }),
        );
        freeze_override = Some(window);
    }
    step.run.rings[index].set_freeze_override(freeze_override);
    step.run.start_record = None;
    step.run.phase = Phase::RingStarting {
        ring: ring.clone(),
        stage: StartStage::Claiming,
    };
    step.run.retry = RetryState::default();
    send_stage(step, &ring, StartStage::Claiming);
}

/// Whether a ring start that has not published yet must go back and wait:
/// the verdict no longer allows the ring, or its version was blocked since.
pub(crate) fn start_no_longer_allowed(step: &Step<'_>, ring: &str, stage: StartStage) -> bool {
    stage != StartStage::Publishing
        && step.run.plan.index_of(ring).is_some_and(|index| {
            step.run.requirement_for(index).is_some() || step.run.version_blocked_by().is_some()
        })
}

/// Abandons an unpublished ring start and decides again from between rings.
pub(crate) fn restart_from_between_rings(step: &mut Step<'_>, ring: &str) {
    if let Some(index) = step.run.plan.index_of(ring) {
        step.run.phase = resting_phase(step, index);
        step.run.retry = RetryState::default();
        advance(step);
    }
}

/// Sends the stage's request: the claim, the start record, or the publish.
/// A start record is built once and re-sent verbatim; a committed one moves
/// straight on to publishing.
pub(crate) fn send_stage(step: &mut Step<'_>, ring: &str, stage: StartStage) {
    step.run.retry.next_attempt_at = None;
    step.run.retry.last_attempt_at = Some(step.now);
    let Some(index) = step.run.plan.index_of(ring) else {
        return;
    };
    match stage {
        StartStage::Claiming => step.effects.push(Effect::ClaimRing {
            ring: ring.to_string(),
        }),
        StartStage::RecordingEvidence => {
            let record = match &step.run.start_record {
                Some(record) if record.ring == ring => record.clone(),
                _ => build_start_record(step, index),
            };
            if record.committed {
                enter_publishing(step, ring);
                return;
            }
            step.effects.push(Effect::RecordEvidence {
                transition_id: record.transition_id,
                record_type: record.record_type,
                summary: record.summary.to_value(),
            });
        }
        StartStage::Publishing => {
            step.run.rings[index].publish_requested = true;
            step.effects.push(Effect::Publish {
                ring: ring.to_string(),
            });
        }
    }
}

fn enter_publishing(step: &mut Step<'_>, ring: &str) {
    step.run.phase = Phase::RingStarting {
        ring: ring.to_string(),
        stage: StartStage::Publishing,
    };
    step.run.retry = RetryState::default();
    send_stage(step, ring, StartStage::Publishing);
}

fn build_start_record(step: &mut Step<'_>, index: usize) -> PendingRecord {
    let planned = step.run.plan.rings[index].clone();
    let transition_id = step.next_transition_id("ring_start");
    let previous_gate = index
        .checked_sub(1)
        .and_then(|previous| step.run.rings[previous].gate().cloned());
    let summary = step.summary(json!({
        "ring": planned.ring,
        "ring_index": index,
        "soak_hours": planned.soak_hours,
        "not_before": planned.not_before.map(|at| at.to_rfc3339()),
        "gates": planned.gates,
        "counted_approvals": step.run.counted_approvals(),
        "conditions": step.run.conditions(),
        "previous_ring_gate": previous_gate,
        "emergency_override": step.run.rings[index].freeze_override(),
    }));
    let record = PendingRecord {
        transition_id,
        ring: planned.ring,
        record_type: "ring_start".into(),
        summary: CompactJson::of(&summary),
        committed: false,
    };
    step.run.start_record = Some(record.clone());
    record
}

/// The start stage this event answers, if the run is in it (or held in it).
fn stage_of(phase: &Phase) -> Option<(&str, StartStage, bool)> {
    match phase {
        Phase::RingStarting { ring, stage } => Some((ring, *stage, false)),
        Phase::Held { resume_to, .. } => match resume_to.as_ref() {
            Phase::RingStarting { ring, stage } => Some((ring, *stage, true)),
            _ => None,
        },
        _ => None,
    }
}

/// Moves the run (or, when held, the phase it resumes to) to `stage`.
fn set_stage(step: &mut Step<'_>, ring: &str, stage: StartStage) {
    let starting = Phase::RingStarting {
        ring: ring.to_string(),
        stage,
    };
    match &mut step.run.phase {
        Phase::Held { resume_to, .. } => **resume_to = starting,
        phase => *phase = starting,
    }
    step.run.retry = RetryState::default();
}

pub(crate) fn on_ring_claimed(step: &mut Step<'_>, ring: &str) {
    if step.run.phase.is_terminal() {
        step.effects.push(Effect::ReleaseRing {
            ring: ring.to_string(),
        });
        return;
    }
    if !step.run.claimed_rings.iter().any(|claimed| claimed == ring) {
        // Room for this one only: a run holds one or two claims at a time,
        // and 10,000 runs held room for four each (issue 17).
        step.run.claimed_rings.reserve_exact(1);
        step.run.claimed_rings.push(ring.to_string());
    }
    if let Some((current, StartStage::Claiming, held)) = stage_of(&step.run.phase)
        && current == ring
    {
        set_stage(step, ring, StartStage::RecordingEvidence);
        if !held {
            send_stage(step, ring, StartStage::RecordingEvidence);
        }
    }
}

pub(crate) fn on_ring_busy(step: &mut Step<'_>, ring: &str, holder_intent_id: &str) {
    if let Some((current, StartStage::Claiming, false)) = stage_of(&step.run.phase)
        && current == ring
    {
        let details = json!({ "holder_intent_id": holder_intent_id });
        stage_failed(step, ring, StartStage::Claiming, None, "ring_busy", details);
    }
}

pub(crate) fn on_evidence_committed(step: &mut Step<'_>, transition_id: &str) {
    let Some(record) = step.run.start_record.as_mut() else {
        return;
    };
    if record.transition_id != transition_id || record.committed {
        return;
    }
    record.committed = true;
    let ring = record.ring.clone();
    if let Some(index) = step.run.plan.index_of(&ring) {
        step.run.rings[index].start_mut().start_transition_id = Some(transition_id.into());
    }
    if let Some((current, StartStage::RecordingEvidence, held)) = stage_of(&step.run.phase)
        && current == ring
    {
        set_stage(step, &ring, StartStage::Publishing);
        if !held {
            send_stage(step, &ring, StartStage::Publishing);
        }
    }
}

pub(crate) fn on_evidence_failed(step: &mut Step<'_>, transition_id: &str, error: &str) {
    let start_record = step
        .run
        .start_record
        .as_ref()
        .filter(|record| record.transition_id == transition_id);
    match start_record {
        Some(record) if record.committed => {}
        Some(record) => {
            let ring = record.ring.clone();
            let details = json!({
                "transition_id": transition_id,
                "error": error,
                "message": format!("ring {ring} is not published until its start record is committed"),
            });
            match stage_of(&step.run.phase) {
                Some((current, StartStage::RecordingEvidence, false)) if current == ring => {
                    let stage = StartStage::RecordingEvidence;
                    stage_failed(step, &ring, stage, None, "evidence_failed", details);
                }
                _ => step.emit(
                    AuditEventType::PublishBlocked,
                    AuditOutcome::Failure,
                    MACHINE_ACTOR,
                    Some(&ring),
                    "evidence_failed",
                    details,
                ),
            }
        }
        None => {
            step.emit(
                AuditEventType::PublishBlocked,
                AuditOutcome::Failure,
                MACHINE_ACTOR,
                None,
                "evidence_failed",
                json!({ "transition_id": transition_id, "error": error }),
            );
            let message = format!(
                "evidence record {transition_id} of intent {} could not be committed: {error}",
                step.run.intent_id
            );
            step.alert(message);
        }
    }
}

pub(crate) fn on_publish_confirmed(step: &mut Step<'_>, ring: &str, external_id: &str) {
    let Some(index) = step.run.plan.index_of(ring) else {
        return;
    };
    let expected = stage_of(&step.run.phase)
        .is_some_and(|(current, stage, _)| current == ring && stage == StartStage::Publishing);
    let late = !expected
        && step.run.rings[index].publish_requested
        && step.run.rings[index].started_at().is_none();
    if !expected && !late {
        return;
    }
    let progress = &mut step.run.rings[index];
    progress.publish_requested = true;
    let progress = progress.start_mut();
    progress.started_at = Some(step.now);
    progress.external_id = Some(external_id.into());
    let soak_hours = step.run.plan.rings[index].soak_hours;
    let details = json!({ "external_id": external_id, "soak_hours": soak_hours,
                          "start_transition_id": progress.start_transition_id });
    if late {
        let kind = "late_publish_confirmation";
        let outcome = AuditOutcome::Info;
        step.emit(
            AuditEventType::RingStarted,
            outcome,
            MACHINE_ACTOR,
            Some(ring),
            kind,
            details,
        );
        return;
    }
    step.run.retry = RetryState::default();
    let in_progress = Phase::RingInProgress {
        ring: ring.to_string(),
    };
    match &mut step.run.phase {
        Phase::Held { resume_to, .. } => **resume_to = in_progress,
        phase => *phase = in_progress,
    }
    let outcome = AuditOutcome::Success;
    step.emit(
        AuditEventType::RingStarted,
        outcome,
        MACHINE_ACTOR,
        Some(ring),
        "ring_started",
        details,
    );
    step.wake_at(step.now + duration_from_hours(soak_hours));
}

pub(crate) fn on_publish_failed(step: &mut Step<'_>, ring: &str, error: &ConnectorFailure) {
    let Some((current, StartStage::Publishing, held)) = stage_of(&step.run.phase) else {
        return;
    };
    if current != ring {
        return;
    }
    let details = json!({ "code": error.code, "class": error.class,
                          "retry_after_seconds": error.retry_after_seconds });
    match error.class {
        FailureClass::PlaneUnavailable if held => {}
        FailureClass::PlaneUnavailable => {
            step.run.retry = RetryState::default();
            let reason = format!(
                "ring {ring} is not published: the plane has no connector ({}); it is published \
                 once the plane is configured under planes: in the daemon config",
                error.code
            );
            hold(step, HoldCause::PlaneUnavailable, reason, MACHINE_ACTOR);
        }
        FailureClass::Transient if held => step.emit(
            AuditEventType::PublishBlocked,
            AuditOutcome::Failure,
            MACHINE_ACTOR,
            Some(ring),
            "publish_failed",
            details,
        ),
        FailureClass::Transient => {
            let retry_after = error
                .retry_after_seconds
                .and_then(|seconds| Duration::try_seconds(i64::try_from(seconds).ok()?));
            let stage = StartStage::Publishing;
            stage_failed(step, ring, stage, retry_after, "publish_failed", details);
        }
        FailureClass::Permanent | FailureClass::PolicyViolation => {
            let class = if error.class == FailureClass::Permanent {
                "a permanent error"
            } else {
                "a policy violation"
            };
            let reason = format!(
                "the plane refused ring {ring} with {class} ({}); not retried",
                error.code
            );
            fail_run(
                step,
                reason,
                "publish_refused",
                AuditEventType::PublishBlocked,
                true,
            );
        }
    }
}
