//! The ring state machine as a function: `step(run, event, now) -> (run, effects)`.
//!
//! Every decision of a rollout is made here and nowhere else; the daemon only
//! performs the [`Effect`]s and feeds the results back as [`Event`]s. `step` is
//! deterministic: the same run, event and `now` give the same result, so the
//! event log replays exactly (jitter is derived from the intent id, see
//! [`jitter_fraction`](super::backoff::jitter_fraction)).
//!
//! Invariants the tests hold it to:
//!
//! - **Evidence first.** `Publish { ring }` is emitted only in
//!   [`StartStage::Publishing`](super::StartStage), which is entered only when
//!   `EvidenceCommitted` arrived for that ring's start record.
//! - **Every state change that matters has a record**: a `RecordEvidence`
//!   precedes the other effects of the transition (the ring start waits for its
//!   commit; the others, a rollback above all, do not wait on paperwork).
//! - **Events that do not apply change nothing**: a stale or duplicate reply
//!   gives back the same run and no effect, so at-least-once delivery is safe.
//!
//! The handlers live by concern: `starting` (getting a ring published),
//! `retrying` (its retries), `soaking` (verdicts, gates and promotion),
//! `remediation` (rollback, failure, supersession) and `operator` (holds and
//! human actions).

use super::effect::{AuditEventType, AuditOutcome, Effect};
use super::event::Event;
use super::run::{IntentRun, MACHINE_ACTOR, Phase};
use super::{operator, remediation, retrying, soaking, starting};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

/// Applies one event to a run: the next run and what to do.
pub fn step(run: &IntentRun, event: &Event, now: DateTime<Utc>) -> (IntentRun, Vec<Effect>) {
    let mut next = run.clone();
    let effects = step_in_place(&mut next, event, now);
    (next, effects)
}

/// [`step`] without the copy, for passes over many runs.
pub fn step_in_place(run: &mut IntentRun, event: &Event, now: DateTime<Utc>) -> Vec<Effect> {
    let mut step = Step {
        run,
        now,
        effects: Vec::new(),
    };
    match event {
        Event::Evaluated { .. } => soaking::on_evaluated(&mut step, event),
        Event::Tick => on_tick(&mut step),
        Event::EvidenceCommitted { transition_id } => {
            starting::on_evidence_committed(&mut step, transition_id)
        }
        Event::EvidenceFailed {
            transition_id,
            error,
        } => starting::on_evidence_failed(&mut step, transition_id, error),
        Event::RingClaimed { ring } => starting::on_ring_claimed(&mut step, ring),
        Event::RingBusy {
            ring,
            holder_intent_id,
        } => starting::on_ring_busy(&mut step, ring, holder_intent_id),
        Event::PublishConfirmed { ring, external_id } => {
            starting::on_publish_confirmed(&mut step, ring, external_id)
        }
        Event::PublishFailed { ring, error } => starting::on_publish_failed(&mut step, ring, error),
        Event::StatusObserved { .. } => soaking::on_status_observed(&mut step, event),
        Event::OperatorHold { reason, actor } => operator::on_hold(&mut step, reason, actor),
        Event::OperatorResume { actor } => operator::on_resume(&mut step, actor),
        Event::OperatorRollback { reason, actor } => {
            operator::on_rollback(&mut step, reason, actor)
        }
        Event::RollbackConfirmed => remediation::on_rollback_confirmed(&mut step),
        Event::RollbackFailed { error, failure } => {
            remediation::on_rollback_failed(&mut step, error, failure.as_ref())
        }
        Event::Superseded { by_intent } => remediation::on_superseded(&mut step, by_intent),
        Event::VersionBlocked { by_intent } => on_version_blocked(&mut step, by_intent),
        Event::VersionCleared => on_version_cleared(&mut step),
    }
    step.effects
}

/// Time passed: retry what is due, re-check what waits on the clock, ask the
/// plane how a soaking ring is doing.
fn on_tick(step: &mut Step<'_>) {
    match step.run.phase.clone() {
        Phase::RingStarting { ring, stage } => retrying::retry_if_due(step, &ring, stage),
        Phase::RingInProgress { ring } => step.effects.push(Effect::QueryStatus { ring }),
        Phase::ScopeValidated | Phase::CabApproved | Phase::RingCompleted { .. } => {
            starting::advance(step)
        }
        Phase::Paused { until, .. } if step.now >= until => starting::advance(step),
        Phase::RollingBack { .. } => remediation::retry_rollback_if_due(step),
        _ => {}
    }
}

fn on_version_blocked(step: &mut Step<'_>, by_intent: &str) {
    if step.run.phase.is_terminal()
        || by_intent == step.run.intent_id
        || step.run.version_blocked_by() == Some(by_intent)
    {
        return;
    }
    step.run.set_version_blocked_by(Some(by_intent.to_string()));
    step.emit(
        AuditEventType::PublishBlocked,
        AuditOutcome::Info,
        MACHINE_ACTOR,
        None,
        "version_blocked",
        json!({ "blocked_by_intent": by_intent }),
    );
    if let Phase::RingStarting { ring, stage } = step.run.phase.clone()
        && starting::start_no_longer_allowed(step, &ring, stage)
    {
        starting::restart_from_between_rings(step, &ring);
    }
}

fn on_version_cleared(step: &mut Step<'_>) {
    if step.run.set_version_blocked_by(None).is_none() {
        return;
    }
    step.emit(
        AuditEventType::PublishBlocked,
        AuditOutcome::Info,
        MACHINE_ACTOR,
        None,
        "version_cleared",
        json!({}),
    );
    if let Phase::Held {
        cause: super::HoldCause::VersionBlocked,
        resume_to,
        ..
    } = &step.run.phase
    {
        step.run.phase = (**resume_to).clone();
        soaking::reenter(step);
    }
}

/// One event being applied: the run, the time, and the effects so far.
pub(crate) struct Step<'a> {
    pub(crate) run: &'a mut IntentRun,
    pub(crate) now: DateTime<Utc>,
    pub(crate) effects: Vec<Effect>,
}

impl Step<'_> {
    /// Appends an audit event; `details` (an object) gets `kind` added.
    pub(crate) fn emit(
        &mut self,
        event_type: AuditEventType,
        outcome: AuditOutcome,
        actor: &str,
        ring: Option<&str>,
        kind: &str,
        details: Value,
    ) {
        let mut object = match details {
            Value::Object(object) => object,
            Value::Null => Map::new(),
            other => Map::from_iter([("value".to_string(), other)]),
        };
        object.insert("kind".into(), Value::String(kind.to_string()));
        self.effects.push(Effect::EmitEvent {
            event_type,
            outcome,
            actor: actor.to_string(),
            ring: ring.map(str::to_string),
            details: Value::Object(object),
        });
    }

    /// The next transition id of this run for a record of `record_type`.
    pub(crate) fn next_transition_id(&mut self, record_type: &str) -> String {
        self.run.transitions_recorded += 1;
        if self.run.generation > 1 {
            // A later run under the same intent id: its records never take
            // an earlier run's ids (`intent/run-2/0001-ring_start`).
            return format!(
                "{}/run-{}/{:04}-{}",
                self.run.intent_id, self.run.generation, self.run.transitions_recorded, record_type
            );
        }
        format!(
            "{}/{:04}-{}",
            self.run.intent_id, self.run.transitions_recorded, record_type
        )
    }

    /// The summary of a record: the run's identity, its phase, then `details`.
    pub(crate) fn summary(&self, details: Value) -> Value {
        let mut object = Map::new();
        object.insert("intent_id".into(), json!(self.run.intent_id));
        object.insert("application_id".into(), json!(self.run.application_id));
        object.insert("version".into(), json!(self.run.version));
        object.insert("phase".into(), json!(self.run.phase.name()));
        object.insert(
            "decision".into(),
            json!(self.run.decision.map(|decision| decision.as_str())),
        );
        object.insert("risk_score".into(), json!(self.run.risk_score));
        object.insert("at".into(), json!(self.now.to_rfc3339()));
        if let Value::Object(details) = details {
            object.extend(details);
        }
        Value::Object(object)
    }

    /// Records a transition that does not wait for its commit (call it after
    /// setting the new phase, before the transition's other effects).
    pub(crate) fn record(&mut self, record_type: &str, details: Value) -> String {
        let transition_id = self.next_transition_id(record_type);
        let summary = self.summary(details);
        self.effects.push(Effect::RecordEvidence {
            transition_id: transition_id.clone(),
            record_type: record_type.to_string(),
            summary,
        });
        transition_id
    }

    pub(crate) fn alert(&mut self, message: String) {
        self.effects.push(Effect::Alert { message });
    }

    pub(crate) fn wake_at(&mut self, at: DateTime<Utc>) {
        self.effects.push(Effect::WakeAt { at });
    }

    /// Gives back every ring this run holds.
    pub(crate) fn release_claims(&mut self) {
        for ring in std::mem::take(&mut self.run.claimed_rings) {
            self.effects.push(Effect::ReleaseRing { ring });
        }
    }
}
