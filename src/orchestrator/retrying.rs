//! Retrying a ring start's stage (claim, start record, publish): every
//! failure goes through [`next_attempt`], the one backoff decision, and a spent
//! budget ends in a decision — publishing fails the run, a record or a claim
//! that cannot be had holds it for a human.

use super::backoff::{jitter_fraction, next_attempt, reply_overdue};
use super::effect::{AuditEventType, AuditOutcome};
use super::operator::hold;
use super::remediation::fail_run;
use super::run::{HoldCause, MACHINE_ACTOR, StartStage};
use super::starting::send_stage;
use super::state::Step;
use chrono::Duration;
use serde_json::json;

/// On a tick: re-send the stage's request when its retry is due, or count a
/// request that never got a reply as failed.
pub(crate) fn retry_if_due(step: &mut Step<'_>, ring: &str, stage: StartStage) {
    let retry = step.run.retry.clone();
    match (retry.next_attempt_at, retry.last_attempt_at) {
        (Some(at), _) if step.now >= at => send_stage(step, ring, stage),
        (None, Some(sent_at)) if reply_overdue(sent_at, step.now, &step.run.backoff) => {
            let details = json!({ "sent_at": sent_at.to_rfc3339() });
            stage_failed(step, ring, stage, None, "no_reply", details);
        }
        _ => {}
    }
}

/// A stage's attempt failed: schedule the next one through the one backoff
/// function, or give up when the budget is spent (publishing fails the run; a
/// record or a claim that cannot be had holds it for a human).
pub(crate) fn stage_failed(
    step: &mut Step<'_>,
    ring: &str,
    stage: StartStage,
    retry_after: Option<Duration>,
    kind: &str,
    details: serde_json::Value,
) {
    step.run.retry.attempts += 1;
    step.run.retry.last_attempt_at = None;
    let attempts = step.run.retry.attempts;
    let jitter = jitter_fraction(&step.run.intent_id, attempts);
    let next = next_attempt(step.now, attempts, retry_after, jitter, &step.run.backoff);
    step.run.retry.next_attempt_at = next;
    let mut details = details;
    details["attempt"] = json!(attempts);
    details["retry_at"] = json!(next.map(|at| at.to_rfc3339()));
    let outcome = if next.is_some() {
        AuditOutcome::Pending
    } else {
        AuditOutcome::Failure
    };
    let event_type = AuditEventType::PublishBlocked;
    step.emit(
        event_type,
        outcome,
        MACHINE_ACTOR,
        Some(ring),
        kind,
        details,
    );
    if let Some(at) = next {
        step.wake_at(at);
        return;
    }
    let reason = match stage {
        StartStage::Claiming => {
            format!("ring {ring} could not be claimed in {attempts} attempts (last: {kind})")
        }
        StartStage::RecordingEvidence => format!(
            "the start record of ring {ring} was not committed in {attempts} attempts; \
             publishing is blocked until it is"
        ),
        StartStage::Publishing => {
            format!(
                "publishing ring {ring} failed {attempts} times, the whole retry budget ({kind})"
            )
        }
    };
    match stage {
        StartStage::Claiming => hold(step, HoldCause::RingBusy, reason, MACHINE_ACTOR),
        StartStage::RecordingEvidence => {
            hold(step, HoldCause::EvidenceUnavailable, reason, MACHINE_ACTOR)
        }
        StartStage::Publishing => {
            let kind = "retry_budget_exhausted";
            fail_run(step, reason, kind, AuditEventType::PublishBlocked, true);
        }
    }
}
