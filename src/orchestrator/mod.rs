//! The orchestrator's pure core: the ring state machine, gates, change-freeze
//! windows and backoff, as functions of values.
//!
//! The daemon owns the world (store, evidence branch, planes, clock); this
//! module owns every decision. One run per intent ([`IntentRun`]) moves by
//! [`step`]`(run, event, now) -> (run, effects)`: the daemon performs the
//! [`Effect`]s in order and feeds their results back as [`Event`]s. No tokio,
//! no SQLite, no git2, no HTTP, no wall clock, no randomness.
//!
//! - [`plan`]: [`RolloutPlan::resolve`] turns an intent + config (+ CAB
//!   conditions) into rings with soaks, earliest starts and gates.
//! - [`state`]: [`step`], split by concern into `starting` (claim → evidence →
//!   publish), `retrying` (its retries), `soaking` (verdicts, gates,
//!   promotion), `remediation` (rollback, halt, failure, supersession) and
//!   `operator` (holds).
//! - [`gates`]: [`evaluate_gate`]. [`freeze`]: [`active_freeze`],
//!   [`validate_freezes`]. [`backoff`]: [`next_attempt`], the one place a
//!   retry delay is decided; [`breaker`]: [`CircuitBreaker`], which keeps
//!   the daemon off a dependency that is down (GitHub, Git, each plane).
//! - [`pass`]: one orchestrator pass over every run (a `Tick` each, after
//!   telling runs whose version another run blocked or cleared).

pub mod backoff;
pub mod breaker;
mod decision_wire;
pub mod effect;
pub mod event;
pub mod freeze;
pub mod gates;
pub mod guard;
mod operator;
pub mod plan;
mod remediation;
mod retrying;
pub mod run;
mod soaking;
mod starting;
pub mod state;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

pub use backoff::{BackoffPolicy, jitter_fraction, next_attempt};
pub use breaker::{BreakerPolicy, BreakerState, CircuitBreaker, Refused};
pub use effect::{AuditEventType, AuditOutcome, Effect, RemediationAction};
pub use event::{ConnectorFailure, Event, FailureClass};
pub use freeze::{ActiveFreeze, FreezeError, active_freeze, freeze_window_at, validate_freezes};
pub use gates::{GateResult, GateVerdict, ObservedStatus, duration_from_hours, evaluate_gate};
pub use plan::{PlanError, PlanShares, PlannedRing, RolloutPlan, Shared};
pub use remediation::HALT_STRATEGY;
pub use run::{
    CompactJson, HoldCause, IntentRun, MACHINE_ACTOR, PendingRecord, Phase, Requirement,
    RetryState, RingProgress, StartStage, is_blocked_version,
};
pub use state::{step, step_in_place};

use chrono::{DateTime, Utc};
use std::collections::HashMap;

/// One orchestrator pass at `now`: tells each run whose version another run
/// blocked (or no longer blocks), then gives every unfinished run a `Tick`.
/// Returns the effects tagged with their intent id, runs in slice order.
///
/// `runs` must include the finished runs that still block their version
/// ([`IntentRun::blocks_its_version`]): a block is lifted when its run is
/// superseded, and equally when it is left out.
pub fn pass(runs: &mut [IntentRun], now: DateTime<Utc>) -> Vec<(String, Effect)> {
    let blocked: HashMap<(String, String), String> = runs
        .iter()
        .filter(|run| run.blocks_its_version())
        .map(|run| {
            let key = (run.application_id.clone(), run.version.clone());
            (key, run.intent_id.clone())
        })
        .collect();
    let mut effects = Vec::new();
    for run in runs.iter_mut() {
        if run.phase.is_terminal() {
            continue;
        }
        let blocker = if blocked.is_empty() {
            None
        } else {
            blocked
                .get(&(run.application_id.clone(), run.version.clone()))
                .filter(|intent| **intent != run.intent_id)
        };
        let notice = match (blocker, run.version_blocked_by()) {
            (Some(by_intent), current) if current != Some(by_intent.as_str()) => {
                Some(Event::VersionBlocked {
                    by_intent: by_intent.clone(),
                })
            }
            (None, Some(_)) => Some(Event::VersionCleared),
            _ => None,
        };
        if let Some(notice) = notice {
            for effect in step_in_place(run, &notice, now) {
                effects.push((run.intent_id.clone(), effect));
            }
        }
        for effect in step_in_place(run, &Event::Tick, now) {
            effects.push((run.intent_id.clone(), effect));
        }
    }
    effects
}
