//! Driving intents through their rings: the effects of the orchestrator's
//! state machine, performed, and their results fed back.
//!
//! Level-triggered, like a Kubernetes controller: every pass reads each
//! intent's stored state — the latest policy verdict (`evaluation`, written
//! by commit processing) and the rollout run (`run`, owned by the state
//! machine) — and feeds the machine whatever changed: a new verdict, a new
//! revision, an operator request, a tick. Each run is saved before its
//! effects are performed; every outbound action goes through the idempotency
//! journal first, and every evidence record is looked up before it is
//! appended, so a crash anywhere is followed by a pass that finishes the work
//! without repeating it.

use super::planes::Planes;
use super::process::ACTOR;
use super::siem::Siem;
use crate::evidence::{
    EvidenceBranch, EvidencePack, EvidencePackInput, GitIdentity, RecordType, SigningKey,
};
use crate::model::{ApprovalCondition, DeploymentIntent, Snapshot};
use crate::orchestrator::{
    self, ConnectorFailure, Effect, Event, FailureClass, IntentRun, Phase, RemediationAction,
    RolloutPlan,
};
use crate::planes::{
    ArtifactRef, ErrorClass, ExecutionPlaneConnector as _, PublishRequest, Remediation,
};
use crate::store::{
    ActionState, EventOutcome, EventType, IntentRecord, NewAction, NewEvent, Store,
    correlation_id_for,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// The policy verdict commit processing wrote for an intent; the run is fed
/// an `Evaluated` event whenever it differs from what the run last saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationFacts {
    pub decision: String,
    pub risk_score: u8,
    pub counted_approvals: Vec<String>,
    pub conditions: Vec<ApprovalCondition>,
    pub emergency_override: bool,
    pub version: String,
    pub commit: String,
    /// The intent this one may end: set only when the judge accepted the
    /// supersede (same application, inside the publisher's scope, not DENY).
    #[serde(default)]
    pub supersedes: Option<String>,
}

/// What the store's `state_json` holds for an intent.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IntentState {
    #[serde(default)]
    pub evaluation: Option<EvaluationFacts>,
    #[serde(default)]
    pub run: Option<IntentRun>,
}

impl IntentState {
    pub fn from_record(record: &IntentRecord) -> IntentState {
        serde_json::from_value(record.state_json.clone()).unwrap_or_default()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    #[error("state store: {0}")]
    Store(Box<crate::store::StoreError>),
}

impl From<crate::store::StoreError> for DriveError {
    fn from(error: crate::store::StoreError) -> Self {
        DriveError::Store(Box::new(error))
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default)]
pub struct DriveReport {
    pub effects_performed: usize,
    pub next_wake: Option<DateTime<Utc>>,
}

/// The daemon's parts a pass borrows.
pub struct Driver<'a> {
    pub store: &'a mut Store,
    pub evidence: &'a EvidenceBranch,
    pub signer: &'a SigningKey,
    pub siem: &'a mut Siem,
    pub planes: &'a Planes,
    /// The last good snapshot of the tracked branch.
    pub snapshot: &'a Snapshot,
    /// Its commit, cited by every record the pass writes.
    pub source_commit: &'a str,
    /// Test hook (see `RINGMASTER_TEST_PAUSE_AT`).
    pub pause_at: Option<super::process::PausePoint>,
    /// First pass after a start: re-send what was in flight when the last
    /// process stopped (every such effect is idempotent), instead of waiting
    /// for the state machine's reply timeout.
    pub recover: bool,
}

/// The effect a run was waiting on when the process stopped, if any.
fn in_flight(run: &IntentRun) -> Option<Effect> {
    use crate::orchestrator::StartStage;
    let Phase::RingStarting { ring, stage } = &run.phase else {
        return None;
    };
    Some(match stage {
        StartStage::Claiming => Effect::ClaimRing { ring: ring.clone() },
        StartStage::RecordingEvidence => {
            let record = run.start_record.as_ref()?;
            Effect::RecordEvidence {
                transition_id: record.transition_id.clone(),
                record_type: record.record_type.clone(),
                summary: record.summary.clone(),
            }
        }
        StartStage::Publishing => Effect::Publish { ring: ring.clone() },
    })
}

/// Most effects one pass performs before yielding (a guard against a
/// state machine that keeps asking; the next pass continues).
const EFFECT_BUDGET: usize = 100_000;

fn failure_of(error: &crate::planes::ConnectorError) -> ConnectorFailure {
    ConnectorFailure {
        class: match error.class {
            ErrorClass::Transient => FailureClass::Transient,
            ErrorClass::Permanent => FailureClass::Permanent,
            ErrorClass::PolicyViolation => FailureClass::PolicyViolation,
        },
        code: error.code.as_str().to_owned(),
        retry_after_seconds: error.retry_after.map(|d| d.as_secs().max(1)),
    }
}

fn evidence_record_type(transition: &str) -> RecordType {
    match transition {
        "rollback_started" | "rolled_back" => RecordType::Rollback,
        "gate_result" => RecordType::GateResult,
        "operator_action" => RecordType::OperatorAction,
        "drift" => RecordType::Drift,
        "remediation" => RecordType::Remediation,
        _ => RecordType::RingTransition,
    }
}

impl Driver<'_> {
    /// One pass over every intent. Idempotent: a pass with nothing new to
    /// react to performs only the status queries of soaking rings.
    pub async fn drive(&mut self, now: DateTime<Utc>) -> Result<DriveReport, DriveError> {
        let mut states: BTreeMap<String, IntentState> = self
            .store
            .list_intents()?
            .iter()
            .map(|record| (record.intent_id.clone(), IntentState::from_record(record)))
            .collect();
        let mut queue: VecDeque<(String, Event)> = VecDeque::new();
        let mut dirty: BTreeSet<String> = BTreeSet::new();

        // New verdicts and revisions.
        for (intent_id, state) in states.iter_mut() {
            let Some(evaluation) = state.evaluation.clone() else {
                continue;
            };
            let Some(intent) = self.snapshot.intents.get(intent_id) else {
                continue;
            };
            let stale_revision = state
                .run
                .as_ref()
                .is_some_and(|run| run.version != evaluation.version);
            if stale_revision {
                // A new version under the same intent id: the old run hands over.
                if let Some(old) = state.run.as_mut() {
                    let effects = orchestrator::step_in_place(
                        old,
                        &Event::Superseded {
                            by_intent: intent_id.clone(),
                        },
                        now,
                    );
                    let mut results = Vec::new();
                    for effect in effects {
                        results.extend(self.perform(intent_id, old, effect, now).await?);
                    }
                }
                state.run = None;
            }
            if state.run.is_none() {
                let config = self.snapshot.config.as_ref().map(|c| &c.value);
                let Some(config) = config else { continue };
                match RolloutPlan::resolve(intent, config, &evaluation.conditions) {
                    Ok(plan) => {
                        state.run = Some(IntentRun::new(intent, plan));
                        dirty.insert(intent_id.clone());
                    }
                    Err(error) => {
                        tracing::warn!(intent = %intent_id, %error, "cannot plan the rollout");
                        continue;
                    }
                }
            }
            let run = state.run.as_ref().expect("set above");
            let decision_changed =
                run.decision.map(|d| d.as_str().to_owned()) != Some(evaluation.decision.clone());
            if decision_changed || run.counted_approvals != evaluation.counted_approvals {
                let Some(decision) = decision_from(&evaluation.decision) else {
                    continue;
                };
                queue.push_back((
                    intent_id.clone(),
                    Event::Evaluated {
                        decision,
                        risk_score: evaluation.risk_score,
                        counted_approvals: evaluation.counted_approvals.clone(),
                        conditions: evaluation.conditions.clone(),
                        emergency_override: evaluation.emergency_override,
                    },
                ));
            }
            // Only a supersede the judge accepted ends another run.
            if let Some(superseded) = &evaluation.supersedes {
                queue.push_back((
                    superseded.clone(),
                    Event::Superseded {
                        by_intent: intent_id.clone(),
                    },
                ));
            }
        }

        // Operator requests, in the order they were made.
        for request in self.store.pending_operator_requests()? {
            let event = match request.action.as_str() {
                "hold" => Event::OperatorHold {
                    reason: request.reason.clone(),
                    actor: request.actor.clone(),
                },
                "resume" => Event::OperatorResume {
                    actor: request.actor.clone(),
                },
                _ => Event::OperatorRollback {
                    reason: request.reason.clone(),
                    actor: request.actor.clone(),
                },
            };
            if states
                .get(&request.intent_id)
                .is_some_and(|s| s.run.is_some())
            {
                queue.push_back((request.intent_id.clone(), event));
            }
            self.store.append_event(NewEvent {
                correlation_id: correlation_id_for(&request.intent_id),
                intent_id: Some(request.intent_id.clone()),
                event_type: EventType::OperatorAction,
                timestamp: now,
                actor: request.actor.clone(),
                actor_role: "operator".into(),
                execution_plane: None,
                ring: None,
                outcome: EventOutcome::Info,
                details: json!({"action": request.action, "reason": request.reason, "request_id": request.request_id}),
            })?;
            self.siem.emit(&json!({"type": "operator_action", "intent_id": request.intent_id, "action": request.action, "actor": request.actor, "reason": request.reason, "at": now}));
            self.store
                .mark_operator_request_handled(request.request_id, now)?;
        }

        // The tick: every non-terminal run looks at the clock.
        let mut runs: Vec<IntentRun> = states.values_mut().filter_map(|s| s.run.take()).collect();
        let mut work: VecDeque<(String, Effect)> = VecDeque::new();
        // Queued events first, so a fresh verdict is seen before the tick.
        let mut by_id: BTreeMap<String, usize> = runs
            .iter()
            .enumerate()
            .map(|(i, r)| (r.intent_id.clone(), i))
            .collect();
        while let Some((intent_id, event)) = queue.pop_front() {
            if let Some(&index) = by_id.get(&intent_id) {
                for effect in orchestrator::step_in_place(&mut runs[index], &event, now) {
                    work.push_back((intent_id.clone(), effect));
                }
                dirty.insert(intent_id);
            }
        }
        if self.recover {
            for run in &runs {
                if let Some(effect) = in_flight(run) {
                    tracing::info!(intent = %run.intent_id, effect = effect.name(), "re-sending what was in flight before the restart");
                    work.push_back((run.intent_id.clone(), effect));
                }
            }
        }
        for (intent_id, effect) in orchestrator::pass(&mut runs, now) {
            dirty.insert(intent_id.clone());
            work.push_back((intent_id, effect));
        }
        let mut report = DriveReport::default();
        while !work.is_empty() && report.effects_performed < EFFECT_BUDGET {
            // Save every run before performing the effects it asked for.
            self.save(&runs, &mut dirty, now)?;
            let mut results: Vec<(String, Event)> = Vec::new();
            while let Some((intent_id, effect)) = work.pop_front() {
                report.effects_performed += 1;
                let Some(&index) = by_id.get(&intent_id) else {
                    continue;
                };
                if let Effect::WakeAt { at } = &effect {
                    report.next_wake =
                        Some(report.next_wake.map_or(*at, |w: DateTime<Utc>| w.min(*at)));
                    continue;
                }
                let events = {
                    let run = runs[index].clone();
                    self.perform(&intent_id, &run, effect, now).await?
                };
                results.extend(events.into_iter().map(|e| (intent_id.clone(), e)));
            }
            for (intent_id, event) in results {
                let index = by_id[&intent_id];
                for effect in orchestrator::step_in_place(&mut runs[index], &event, now) {
                    work.push_back((intent_id.clone(), effect));
                }
                dirty.insert(intent_id);
            }
        }
        self.save(&runs, &mut dirty, now)?;
        by_id.clear();
        Ok(report)
    }

    fn save(
        &mut self,
        runs: &[IntentRun],
        dirty: &mut BTreeSet<String>,
        now: DateTime<Utc>,
    ) -> Result<(), DriveError> {
        for run in runs.iter().filter(|run| dirty.contains(&run.intent_id)) {
            let Some(record) = self.store.get_intent(&run.intent_id)? else {
                continue;
            };
            let mut state = IntentState::from_record(&record);
            state.run = Some(run.clone());
            let json = serde_json::to_value(&state).unwrap_or(Value::Null);
            self.store
                .set_intent_state(&run.intent_id, run.phase.name(), &json, now)?;
        }
        dirty.clear();
        Ok(())
    }

    /// Performs one effect and returns the events that report its outcome.
    async fn perform(
        &mut self,
        intent_id: &str,
        run: &IntentRun,
        effect: Effect,
        now: DateTime<Utc>,
    ) -> Result<Vec<Event>, DriveError> {
        let intent = self.snapshot.intents.get(intent_id).map(|i| &i.value);
        Ok(match effect {
            Effect::RecordEvidence {
                transition_id,
                record_type,
                summary,
            } => {
                vec![self.record_evidence(intent_id, &transition_id, &record_type, summary, now)?]
            }
            Effect::ClaimRing { ring } => {
                let Some(intent) = intent else {
                    return Ok(Vec::new());
                };
                let scope = &intent.target_scope;
                match self.store.claim_ring(
                    intent_id,
                    &intent.application_id,
                    &scope.acquisition_boundary,
                    &scope.business_unit,
                    &ring,
                    now,
                ) {
                    Ok(()) => vec![Event::RingClaimed { ring }],
                    Err(crate::store::StoreError::RingBusy {
                        holder_intent_id, ..
                    }) => vec![Event::RingBusy {
                        ring,
                        holder_intent_id,
                    }],
                    Err(error) => return Err(error.into()),
                }
            }
            Effect::ReleaseRing { ring } => {
                self.store.release_ring(intent_id, &ring, now)?;
                Vec::new()
            }
            Effect::Publish { ring } => {
                let Some(intent) = intent else {
                    return Ok(Vec::new());
                };
                vec![self.publish(intent, &ring, now).await?]
            }
            Effect::QueryStatus { ring } => {
                let Some(intent) = intent else {
                    return Ok(Vec::new());
                };
                self.query_status(intent, &ring, now)
                    .await
                    .into_iter()
                    .collect()
            }
            Effect::Remediate {
                strategy,
                rings,
                action,
            } => {
                let Some(intent) = intent else {
                    return Ok(Vec::new());
                };
                self.remediate(intent, run, &strategy, &rings, action, now)
                    .await?
            }
            Effect::EmitEvent {
                event_type,
                outcome,
                actor,
                ring,
                details,
            } => {
                let plane = intent
                    .and_then(|i| self.snapshot.artifact_of(i))
                    .map(|a| a.plane.as_str().to_owned());
                self.store.append_event(NewEvent {
                    correlation_id: correlation_id_for(intent_id),
                    intent_id: Some(intent_id.to_owned()),
                    event_type: EventType::from_stored(event_type.as_str())
                        .unwrap_or(EventType::OperatorAction),
                    timestamp: now,
                    actor,
                    actor_role: "control-plane".into(),
                    execution_plane: plane,
                    ring,
                    outcome: EventOutcome::from_stored(outcome.as_str())
                        .unwrap_or(EventOutcome::Info),
                    details,
                })?;
                Vec::new()
            }
            Effect::WakeAt { .. } => Vec::new(),
            Effect::Alert { message } => {
                tracing::warn!(intent = intent_id, %message, "ALERT");
                self.siem.emit(&json!({"type": "alert", "intent_id": intent_id, "message": message, "at": now}));
                Vec::new()
            }
        })
    }

    /// Appends an evidence record once per transition id: the journal says
    /// whether it was written; after a crash, the branch tip is checked.
    fn record_evidence(
        &mut self,
        intent_id: &str,
        transition_id: &str,
        transition: &str,
        summary: Value,
        now: DateTime<Utc>,
    ) -> Result<Event, DriveError> {
        let action = NewAction {
            intent_id: intent_id.to_owned(),
            plane: "evidence".into(),
            ring: transition_id.to_owned(),
            action: "record".into(),
            request: json!({"transition": transition}),
        };
        let planned = self.store.plan_action(&action, now)?;
        if planned.state == ActionState::Confirmed {
            return Ok(Event::EvidenceCommitted {
                transition_id: transition_id.to_owned(),
            });
        }
        if let Some(sha) = self.tip_holds_transition(transition_id) {
            self.confirm(&planned.key, planned.state, &sha, now)?;
            return Ok(Event::EvidenceCommitted {
                transition_id: transition_id.to_owned(),
            });
        }
        let identity = GitIdentity {
            name: "ringmaster".into(),
            email: "ringmaster@localhost".into(),
            time: now.fixed_offset(),
        };
        let input = EvidencePackInput {
            record_type: evidence_record_type(transition),
            intent_id: Some(intent_id.to_owned()),
            correlation_id: correlation_id_for(intent_id),
            source_commit: self.source_commit.to_owned(),
            source_parent: None,
            author: identity.clone(),
            committer: identity,
            created_at: now,
            body: json!({"transition_id": transition_id, "transition": transition, "summary": summary}),
        };
        if planned.state != ActionState::Sent {
            self.store.mark_sent(&planned.key, now)?;
        }
        match self.evidence.append(input, self.signer) {
            Ok(record) => {
                self.store
                    .mark_confirmed(&planned.key, Some(&record.pack_sha256), now)?;
                self.store.set_evidence_head(
                    record.sequence,
                    &record.pack_sha256,
                    &record.commit,
                    now,
                )?;
                Ok(Event::EvidenceCommitted {
                    transition_id: transition_id.to_owned(),
                })
            }
            Err(error) => {
                let message = format!("evidence branch cannot be written: {error}");
                self.store.mark_failed(&planned.key, &message, None, now)?;
                self.store.append_event(NewEvent {
                    correlation_id: correlation_id_for(intent_id),
                    intent_id: Some(intent_id.to_owned()),
                    event_type: EventType::PublishBlocked,
                    timestamp: now,
                    actor: ACTOR.into(),
                    actor_role: "control-plane".into(),
                    execution_plane: None,
                    ring: None,
                    outcome: EventOutcome::Failure,
                    details: json!({"reason": message, "transition_id": transition_id}),
                })?;
                Ok(Event::EvidenceFailed {
                    transition_id: transition_id.to_owned(),
                    error: message,
                })
            }
        }
    }

    fn confirm(
        &mut self,
        key: &str,
        state: ActionState,
        external_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), DriveError> {
        if matches!(state, ActionState::Planned | ActionState::Failed) {
            self.store.mark_sent(key, now)?;
        }
        self.store.mark_confirmed(key, Some(external_id), now)?;
        Ok(())
    }

    /// The tip pack's sha256 when the tip records this transition.
    fn tip_holds_transition(&self, transition_id: &str) -> Option<String> {
        let tip = self.evidence.tip().ok()??;
        let repository = git2::Repository::open(self.evidence.repository_path()).ok()?;
        let commit = repository
            .find_commit(git2::Oid::from_str(&tip.commit).ok()?)
            .ok()?;
        let entry = commit
            .tree()
            .ok()?
            .get_path(std::path::Path::new(&tip.pack_path))
            .ok()?;
        let blob = repository.find_blob(entry.id()).ok()?;
        let pack: EvidencePack = serde_json::from_slice(blob.content()).ok()?;
        (pack.body.get("transition_id").and_then(Value::as_str) == Some(transition_id))
            .then_some(tip.pack_sha256)
    }

    fn publish_request(&self, intent: &DeploymentIntent, ring: &str) -> Option<PublishRequest> {
        let artifact = self.snapshot.artifact_of(intent)?;
        let application = self.snapshot.applications.get(&intent.application_id)?;
        let scope = &intent.target_scope;
        let rule = self.snapshot.entitlement_for(
            artifact.plane,
            ring,
            &scope.acquisition_boundary,
            &scope.business_unit,
        )?;
        Some(PublishRequest {
            correlation_id: correlation_id_for(&intent.intent_id),
            intent_id: intent.intent_id.clone(),
            application_id: intent.application_id.clone(),
            application_name: application.name.clone(),
            version: intent.version.clone(),
            plane: artifact.plane,
            ring: ring.to_owned(),
            artifact: ArtifactRef::from(artifact),
            groups: rule.groups.iter().map(|g| g.id.clone()).collect(),
            exclusions: rule.exclusions.iter().map(|g| g.id.clone()).collect(),
            expected_devices: rule.expected_devices,
            supersedes_version: intent
                .rollback_plan
                .as_ref()
                .and_then(|p| p.rollback_version.clone()),
        })
    }

    /// Publishes one ring through the journal: planned → sent → confirmed | failed.
    async fn publish(
        &mut self,
        intent: &DeploymentIntent,
        ring: &str,
        now: DateTime<Utc>,
    ) -> Result<Event, DriveError> {
        let permanent = |code: &str| Event::PublishFailed {
            ring: ring.to_owned(),
            error: ConnectorFailure {
                class: FailureClass::Permanent,
                code: code.to_owned(),
                retry_after_seconds: None,
            },
        };
        let Some(request) = self.publish_request(intent, ring) else {
            return Ok(permanent("no_entitlement"));
        };
        let Some(connector) = self.planes.connector(request.plane) else {
            return Ok(permanent("plane_not_configured"));
        };
        let action = NewAction {
            intent_id: intent.intent_id.clone(),
            plane: request.plane.as_str().to_owned(),
            ring: ring.to_owned(),
            action: "publish".into(),
            request: json!({"version": request.version, "artifact": request.artifact.sha256, "groups": request.groups}),
        };
        let planned = match self.store.plan_action(&action, now) {
            Ok(planned) => planned,
            Err(crate::store::StoreError::ActionRequestMismatch { .. }) => {
                return Ok(permanent("request_changed"));
            }
            Err(error) => return Err(error.into()),
        };
        if planned.state == ActionState::Confirmed {
            let external_id = planned.external_id.unwrap_or_default();
            return Ok(Event::PublishConfirmed {
                ring: ring.to_owned(),
                external_id,
            });
        }
        if planned.state != ActionState::Sent {
            self.store.mark_sent(&planned.key, now)?;
        }
        match connector.publish(&request, now).await {
            Ok(result) => {
                if self.pause_at == Some(super::process::PausePoint::AfterPublish) {
                    super::process::pause_forever("after-publish");
                }
                self.store
                    .mark_confirmed(&planned.key, Some(&result.external_id), now)?;
                Ok(Event::PublishConfirmed {
                    ring: ring.to_owned(),
                    external_id: result.external_id,
                })
            }
            Err(error) => {
                self.store
                    .mark_failed(&planned.key, &error.to_string(), None, now)?;
                Ok(Event::PublishFailed {
                    ring: ring.to_owned(),
                    error: failure_of(&error),
                })
            }
        }
    }

    async fn query_status(
        &self,
        intent: &DeploymentIntent,
        ring: &str,
        now: DateTime<Utc>,
    ) -> Option<Event> {
        let plane = self.snapshot.artifact_of(intent)?.plane;
        let connector = self.planes.connector(plane)?;
        match connector
            .query_status(&correlation_id_for(&intent.intent_id), now)
            .await
        {
            Ok(status) => {
                let counts = status.rings.get(ring).cloned().unwrap_or_default();
                Some(Event::StatusObserved {
                    ring: ring.to_owned(),
                    targeted: counts.targeted,
                    installed: counts.installed,
                    failed: counts.failed,
                    pending: counts.pending,
                    incidents: 0,
                    first_install_at: counts.first_install_at,
                })
            }
            Err(error) => {
                // A status query that fails is retried on the next tick.
                tracing::warn!(intent = %intent.intent_id, %error, "status query failed");
                None
            }
        }
    }

    async fn remediate(
        &mut self,
        intent: &DeploymentIntent,
        _run: &IntentRun,
        strategy: &str,
        rings: &[String],
        action: RemediationAction,
        now: DateTime<Utc>,
    ) -> Result<Vec<Event>, DriveError> {
        let remediation = match &action {
            RemediationAction::Halt => return Ok(Vec::new()),
            RemediationAction::Rollback { to_version } => Remediation::Rollback {
                to_version: to_version.clone(),
            },
            RemediationAction::Uninstall => Remediation::Uninstall,
        };
        let Some(plane) = self.snapshot.artifact_of(intent).map(|a| a.plane) else {
            return Ok(vec![Event::RollbackFailed {
                error: "the intent's artifact no longer resolves".into(),
            }]);
        };
        let Some(connector) = self.planes.connector(plane) else {
            return Ok(vec![Event::RollbackFailed {
                error: format!("plane {} is not configured", plane.as_str()),
            }]);
        };
        let action_record = NewAction {
            intent_id: intent.intent_id.clone(),
            plane: plane.as_str().to_owned(),
            ring: rings.join(","),
            action: format!("remediate:{}", remediation.name()),
            request: json!({"strategy": strategy, "remediation": remediation}),
        };
        let planned = self.store.plan_action(&action_record, now)?;
        if planned.state == ActionState::Confirmed {
            return Ok(vec![Event::RollbackConfirmed]);
        }
        if planned.state != ActionState::Sent {
            self.store.mark_sent(&planned.key, now)?;
        }
        match connector
            .remediate(&correlation_id_for(&intent.intent_id), &remediation, now)
            .await
        {
            Ok(result) => {
                self.store.mark_confirmed(&planned.key, None, now)?;
                self.siem.emit(&json!({"type": "rollback", "intent_id": intent.intent_id, "strategy": strategy, "rings": rings, "applied": result.applied, "at": now}));
                Ok(vec![Event::RollbackConfirmed])
            }
            Err(error) => {
                self.store
                    .mark_failed(&planned.key, &error.to_string(), None, now)?;
                Ok(vec![Event::RollbackFailed {
                    error: error.to_string(),
                }])
            }
        }
    }
}

/// What one reconciliation found and did.
#[derive(Debug, Clone, Default)]
pub struct ReconcileReport {
    pub intents_checked: usize,
    pub drifts: usize,
    pub remediated: usize,
    pub tickets: usize,
}

impl Driver<'_> {
    /// Compares each rolled-out intent with what its plane holds; records
    /// every drift (event + evidence) and remediates or opens a ticket as the
    /// intent's (or the config's) remediation policy says. Idempotent: with
    /// no drift it only reads.
    pub async fn reconcile(&mut self, now: DateTime<Utc>) -> Result<ReconcileReport, DriveError> {
        use crate::reconciler::{DesiredState, compare, remediation_for};
        let mut report = ReconcileReport::default();
        let default_policy = self
            .snapshot
            .config
            .as_ref()
            .map(|c| c.remediation)
            .unwrap_or_default();
        for record in self.store.list_intents()? {
            let state = IntentState::from_record(&record);
            let Some(run) = state.run else { continue };
            let rolled_out = matches!(
                run.phase,
                orchestrator::Phase::Completed
                    | orchestrator::Phase::RingInProgress { .. }
                    | orchestrator::Phase::RingCompleted { .. }
            );
            if !rolled_out {
                continue;
            }
            let Some(intent) = self
                .snapshot
                .intents
                .get(&record.intent_id)
                .map(|i| i.value.clone())
            else {
                continue;
            };
            let Some(artifact) = self.snapshot.artifact_of(&intent) else {
                continue;
            };
            let plane = artifact.plane;
            let Some(connector) = self.planes.connector(plane) else {
                continue;
            };
            let scope = &intent.target_scope;
            let mut groups = Vec::new();
            let mut devices = 0;
            for ring in run.published_rings() {
                if let Some(rule) = self.snapshot.entitlement_for(
                    plane,
                    &ring,
                    &scope.acquisition_boundary,
                    &scope.business_unit,
                ) {
                    groups.extend(rule.groups.iter().map(|g| g.id.clone()));
                    devices += rule.expected_devices;
                }
            }
            let desired = DesiredState {
                version: intent.version.clone(),
                groups,
                assigned_devices: devices,
            };
            let correlation_id = correlation_id_for(&intent.intent_id);
            let status = match connector.query_status(&correlation_id, now).await {
                Ok(status) => status,
                Err(error) => {
                    tracing::warn!(intent = %intent.intent_id, %error, "reconcile: status query failed; next run retries");
                    continue;
                }
            };
            report.intents_checked += 1;
            let drifts = compare(&desired, &status);
            if drifts.is_empty() {
                continue;
            }
            // The same drift, already reported and not fixed since, is not
            // reported again (one ticket per drift, not one per hour).
            let signature: String = drifts
                .iter()
                .map(|d| format!("{:?}:{}", d.drift_type, d.detail))
                .collect::<Vec<_>>()
                .join("|");
            let history = self.store.events(&crate::store::EventFilter {
                intent_id: Some(intent.intent_id.clone()),
                ..crate::store::EventFilter::default()
            })?;
            let last_drift = history
                .iter()
                .rev()
                .find(|e| e.event_type == EventType::DriftDetected);
            let last_fix = history.iter().rev().find(|e| {
                e.event_type == EventType::RemediationResult
                    && e.details.get("remediation_result").and_then(Value::as_str)
                        == Some("success")
            });
            let already_reported = last_drift.is_some_and(|drift| {
                drift.details.get("signature").and_then(Value::as_str) == Some(signature.as_str())
                    && last_fix.is_none_or(|fix| fix.seq < drift.seq)
            });
            if already_reported {
                continue;
            }
            report.drifts += drifts.len();
            let policy = intent.remediation.unwrap_or(default_policy);
            let remediation = remediation_for(&drifts, policy);
            let stamp = now.format("%Y%m%dT%H%M%SZ");
            for drift in &drifts {
                let details = json!({
                    "event_type": "drift_detected",
                    "drift_type": drift.drift_type,
                    "desired_state": drift.desired_state,
                    "actual_state": drift.actual_state,
                    "detail": drift.detail,
                    "remediation_action": if remediation.is_some() { "auto" } else { "manual_ticket" },
                    "signature": signature,
                });
                self.store.append_event(NewEvent {
                    correlation_id: correlation_id.clone(),
                    intent_id: Some(intent.intent_id.clone()),
                    event_type: EventType::DriftDetected,
                    timestamp: now,
                    actor: ACTOR.into(),
                    actor_role: "control-plane".into(),
                    execution_plane: Some(plane.as_str().to_owned()),
                    ring: None,
                    outcome: EventOutcome::Failure,
                    details: details.clone(),
                })?;
                self.siem.emit(&json!({"type": "drift", "intent_id": intent.intent_id, "drift": details, "at": now}));
            }
            let drift_record = format!("{}:drift:{stamp}", intent.intent_id);
            self.record_evidence(
                &intent.intent_id,
                &drift_record,
                "drift",
                json!({"drifts": drifts, "desired": desired, "observed": status.observed}),
                now,
            )?;
            let (result, outcome, detail) = match remediation {
                Some(action) => match connector.remediate(&correlation_id, &action, now).await {
                    Ok(result) => {
                        report.remediated += 1;
                        (
                            "success",
                            EventOutcome::Success,
                            json!({"remediation_action": "auto", "action": result.action, "applied": result.applied, "detail": result.detail}),
                        )
                    }
                    Err(error) => (
                        "failed",
                        EventOutcome::Failure,
                        json!({"remediation_action": "auto", "error": error.to_string()}),
                    ),
                },
                None => {
                    report.tickets += 1;
                    let ticket = format!("RM-{}-{stamp}", intent.intent_id);
                    (
                        "pending",
                        EventOutcome::Pending,
                        json!({"remediation_action": "manual_ticket", "ticket": ticket}),
                    )
                }
            };
            let mut details = detail;
            details["remediation_result"] = json!(result);
            self.store.append_event(NewEvent {
                correlation_id: correlation_id.clone(),
                intent_id: Some(intent.intent_id.clone()),
                event_type: EventType::RemediationResult,
                timestamp: now,
                actor: ACTOR.into(),
                actor_role: "control-plane".into(),
                execution_plane: Some(plane.as_str().to_owned()),
                ring: None,
                outcome,
                details: details.clone(),
            })?;
            let remediation_record = format!("{}:remediation:{stamp}", intent.intent_id);
            self.record_evidence(
                &intent.intent_id,
                &remediation_record,
                "remediation",
                details,
                now,
            )?;
        }
        Ok(report)
    }
}

fn decision_from(text: &str) -> Option<crate::policy::Decision> {
    use crate::policy::Decision;
    [
        Decision::Allow,
        Decision::Deny,
        Decision::RequireApproval,
        Decision::RequireException,
    ]
    .into_iter()
    .find(|d| d.as_str() == text)
}
