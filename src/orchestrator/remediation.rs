//! The ways a run ends badly or is replaced: rollback, halt, failure,
//! supersession.
//!
//! A failing gate (or an operator) rolls back every ring that may be live, by
//! the intent's rollback plan: back to `rollback_version` through the plane
//! strategy, or an uninstall when the plan names no version. A plan whose
//! strategy is `halt`, or no plan at all, stops the assignment, alerts a human
//! and fails the run instead. Either way the version is then blocked for
//! promotion until a newer intent supersedes this one.

use super::backoff::{jitter_fraction, next_attempt};
use super::effect::{AuditEventType, AuditOutcome, Effect, RemediationAction};
use super::event::{ConnectorFailure, FailureClass};
use super::gates::GateResult;
use super::run::{MACHINE_ACTOR, Phase, RetryState};
use super::state::Step;
use chrono::Duration;
use serde_json::json;

/// The rollback plan strategy that means "stop and alert, do not roll back".
pub const HALT_STRATEGY: &str = "halt";

/// Rolls back (or halts) everything this run may have published.
pub(crate) fn remediate(
    step: &mut Step<'_>,
    reason: String,
    actor: &str,
    gate: Option<GateResult>,
) {
    step.run.blocks_version = true;
    step.run.retry = RetryState::default();
    let rings = step.run.published_rings();
    if rings.is_empty() {
        step.run.phase = Phase::RolledBack {
            reason: format!("{reason} (nothing was published)"),
        };
        step.record(
            "rolled_back",
            json!({ "reason": reason, "rings": rings, "actor": actor }),
        );
        step.emit(
            AuditEventType::RollbackExecuted,
            AuditOutcome::Success,
            actor,
            None,
            "rolled_back",
            json!({ "reason": reason, "nothing_published": true }),
        );
        step.release_claims();
        return;
    }
    let rollback_plan = step
        .run
        .plan
        .rollback
        .clone()
        .filter(|plan| plan.strategy != HALT_STRATEGY);
    let Some(rollback_plan) = rollback_plan else {
        let why = if step.run.plan.rollback.is_none() {
            "the intent has no rollback plan"
        } else {
            "the rollback plan's strategy is halt"
        };
        step.run.phase = Phase::Failed {
            reason: format!("{reason}; halted: {why}"),
        };
        step.record(
            "halted",
            json!({ "reason": reason, "why": why, "rings": rings, "gate": gate, "actor": actor }),
        );
        step.effects.push(Effect::Remediate {
            strategy: HALT_STRATEGY.to_string(),
            rings: rings.clone(),
            action: RemediationAction::Halt,
        });
        step.emit(
            AuditEventType::RollbackExecuted,
            AuditOutcome::Failure,
            actor,
            None,
            "halted",
            json!({ "reason": reason, "why": why, "rings": rings }),
        );
        let message = format!(
            "intent {} ({} {}) halted in [{}]: {reason}; {why}: roll back by hand",
            step.run.intent_id,
            step.run.application_id,
            step.run.version,
            rings.join(", ")
        );
        step.alert(message);
        step.release_claims();
        return;
    };
    let action = match &rollback_plan.rollback_version {
        Some(version) => RemediationAction::Rollback {
            to_version: version.clone(),
        },
        None => RemediationAction::Uninstall,
    };
    step.run.phase = Phase::RollingBack {
        reason: reason.clone(),
    };
    let details = json!({ "reason": reason, "strategy": rollback_plan.strategy, "rings": rings,
                          "action": action, "gate": gate, "actor": actor });
    step.record("rollback_started", details.clone());
    step.effects.push(Effect::Remediate {
        strategy: rollback_plan.strategy,
        rings,
        action,
    });
    step.emit(
        AuditEventType::RollbackExecuted,
        AuditOutcome::Pending,
        actor,
        None,
        "rollback_started",
        details,
    );
}

/// Ends the run as failed: record, audit, give the rings back, maybe page.
pub(crate) fn fail_run(
    step: &mut Step<'_>,
    reason: String,
    kind: &str,
    event_type: AuditEventType,
    alert: bool,
) {
    step.run.phase = Phase::Failed {
        reason: reason.clone(),
    };
    step.run.retry = RetryState::default();
    step.record("failed", json!({ "reason": reason, "kind": kind }));
    step.emit(
        event_type,
        AuditOutcome::Failure,
        MACHINE_ACTOR,
        None,
        kind,
        json!({ "reason": reason }),
    );
    step.release_claims();
    if alert {
        let message = format!(
            "intent {} ({} {}) failed: {reason}",
            step.run.intent_id, step.run.application_id, step.run.version
        );
        step.alert(message);
    }
}

pub(crate) fn on_rollback_confirmed(step: &mut Step<'_>) {
    let Phase::RollingBack { reason } = step.run.phase.clone() else {
        return;
    };
    step.run.phase = Phase::RolledBack {
        reason: reason.clone(),
    };
    step.record("rolled_back", json!({ "reason": reason }));
    step.emit(
        AuditEventType::RollbackExecuted,
        AuditOutcome::Success,
        MACHINE_ACTOR,
        None,
        "rolled_back",
        json!({ "reason": reason }),
    );
    step.release_claims();
}

/// The remediation effect of the run's rollback plan (what [`remediate`]
/// sent), to send again; `None` when the plan is gone or halts.
fn rollback_effect(step: &Step<'_>) -> Option<Effect> {
    let plan = step
        .run
        .plan
        .rollback
        .clone()
        .filter(|plan| plan.strategy != HALT_STRATEGY)?;
    let action = match &plan.rollback_version {
        Some(version) => RemediationAction::Rollback {
            to_version: version.clone(),
        },
        None => RemediationAction::Uninstall,
    };
    Some(Effect::Remediate {
        strategy: plan.strategy,
        rings: step.run.published_rings(),
        action,
    })
}

/// On a tick while rolling back: send the rollback again when its retry is
/// due (idempotent on the plane and in the journal).
pub(crate) fn retry_rollback_if_due(step: &mut Step<'_>) {
    let due = step
        .run
        .retry
        .next_attempt_at
        .is_some_and(|at| step.now >= at);
    if !due {
        return;
    }
    if let Some(effect) = rollback_effect(step) {
        step.run.retry.next_attempt_at = None;
        step.run.retry.last_attempt_at = Some(step.now);
        step.effects.push(effect);
    }
}

pub(crate) fn on_rollback_failed(
    step: &mut Step<'_>,
    error: &str,
    failure: Option<&ConnectorFailure>,
) {
    let Phase::RollingBack { reason } = step.run.phase.clone() else {
        return;
    };
    let retryable = failure.is_some_and(|failure| {
        matches!(
            failure.class,
            FailureClass::Transient | FailureClass::PlaneUnavailable
        )
    });
    if retryable {
        step.run.retry.attempts += 1;
        step.run.retry.last_attempt_at = None;
        let attempts = step.run.retry.attempts;
        let retry_after = failure
            .and_then(|failure| failure.retry_after_seconds)
            .and_then(|seconds| Duration::try_seconds(i64::try_from(seconds).ok()?));
        let jitter = jitter_fraction(&step.run.intent_id, attempts);
        let next = next_attempt(step.now, attempts, retry_after, jitter, &step.run.backoff);
        if let Some(at) = next {
            step.run.retry.next_attempt_at = Some(at);
            step.emit(
                AuditEventType::RollbackExecuted,
                AuditOutcome::Pending,
                MACHINE_ACTOR,
                None,
                "rollback_retry",
                json!({ "error": error, "attempt": attempts, "retry_at": at.to_rfc3339(),
                        "code": failure.map(|failure| failure.code.clone()) }),
            );
            step.wake_at(at);
            return;
        }
    }
    let failure = format!("rollback failed: {error} (rolling back because {reason})");
    step.run.phase = Phase::Failed {
        reason: failure.clone(),
    };
    step.record(
        "rollback_failed",
        json!({ "reason": failure, "error": error }),
    );
    step.emit(
        AuditEventType::RollbackExecuted,
        AuditOutcome::Failure,
        MACHINE_ACTOR,
        None,
        "rollback_failed",
        json!({ "error": error, "reason": reason }),
    );
    let message = format!(
        "intent {} ({} {}): {failure}; devices may still run the bad version, act by hand",
        step.run.intent_id, step.run.application_id, step.run.version
    );
    step.alert(message);
    step.release_claims();
}

pub(crate) fn on_superseded(step: &mut Step<'_>, by_intent: &str) {
    if step.run.superseded_by() == Some(by_intent)
        || matches!(step.run.phase, Phase::Superseded { .. })
    {
        return;
    }
    step.run.set_superseded_by(Some(by_intent.to_string()));
    let keeps_phase =
        step.run.phase.is_terminal() || matches!(step.run.phase, Phase::RollingBack { .. });
    if !keeps_phase {
        step.run.phase = Phase::Superseded {
            by_intent: by_intent.to_string(),
        };
        step.run.retry = RetryState::default();
    }
    step.record("superseded", json!({ "by_intent": by_intent }));
    step.emit(
        AuditEventType::CommitProcessed,
        AuditOutcome::Info,
        MACHINE_ACTOR,
        None,
        "superseded",
        json!({ "by_intent": by_intent, "phase": step.run.phase.name() }),
    );
    if !keeps_phase {
        // The superseded run's assignments stop installing now: the
        // superseding intent takes the devices over.
        let rings = step.run.published_rings();
        if !rings.is_empty() {
            step.effects.push(Effect::Remediate {
                strategy: HALT_STRATEGY.to_string(),
                rings,
                action: RemediationAction::Halt,
            });
        }
        step.release_claims();
    }
}
