//! The one performer: the only code that calls an execution plane.
//!
//! Every effect the state machine or the reconciler decides is carried out
//! here, and every plane call goes through the same four rules:
//!
//! 1. **Through the journal.** A call that changes a plane is planned in the
//!    store's idempotency journal under a key of the run, marked sent just
//!    before the call and confirmed or failed after it, so a retry, a crash or
//!    a restart never sends it blind (see [`Performer::recover_in_flight`]).
//! 2. **Evidence first.** The signed record that authorises the change must be
//!    committed — and, with an evidence remote, pushed — before the call; if
//!    it is not, nothing is sent and a `publish_blocked` event says why.
//! 3. **Holds and freezes.** A change that reaches more devices (publish,
//!    redeploy) is refused for a held run and inside a change freeze, unless
//!    the run's emergency override applies, which is then audited
//!    ([`orchestrator::guard`]). Taking a deployment back is always allowed.
//! 4. **Only what happened.** Events and evidence say which plane was called
//!    and whether it is a simulated one (`plane_mode`).
//!
//! Reads (status queries, idempotency checks) go through here too, so every
//! plane call has one place to be wrapped (circuit breakers, budgets).
//!
//! [`orchestrator::guard`]: crate::orchestrator::guard

use super::planes::Planes;
use super::process::{ACTOR, PausePoint, pause_forever};
use super::rollout::DriveError;
use super::siem::Siem;
use crate::evidence::{
    EvidenceBranch, EvidencePack, EvidencePackInput, GitIdentity, RecordType, SigningKey,
};
use crate::model::{DeploymentIntent, Plane, Snapshot};
use crate::orchestrator::guard::{Permission, PlaneChange, may_change_plane};
use crate::orchestrator::{
    ConnectorFailure, Effect, Event, FailureClass, IntentRun, RemediationAction,
};
use crate::planes::{
    ArtifactRef, ConnectorError, DeploymentStatus, ErrorClass, ExecutionPlaneConnector as _,
    PublishRequest, Remediation, RemediationResult,
};
use crate::reconciler::RemediationPlan;
use crate::store::{
    ActionState, EventOutcome, EventType, NewAction, NewEvent, Store, action_key,
    correlation_id_for,
};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// What the performer knows about the evidence remote between passes.
#[derive(Debug, Clone)]
pub struct EvidencePush {
    /// The evidence commit last pushed to the remote by this process.
    pub pushed_tip: Option<String>,
    /// The remote failing: no push is tried while it is open (see
    /// [`push_evidence`]), so an unreachable remote is not hammered.
    pub breaker: crate::orchestrator::CircuitBreaker,
}

impl Default for EvidencePush {
    fn default() -> Self {
        EvidencePush {
            pushed_tip: None,
            breaker: crate::orchestrator::CircuitBreaker::new(
                "evidence remote (push)",
                crate::orchestrator::BreakerPolicy::default(),
            ),
        }
    }
}

/// The daemon's parts the performer borrows for one pass.
pub struct Performer<'a> {
    pub store: &'a mut Store,
    pub evidence: &'a EvidenceBranch,
    pub signer: &'a SigningKey,
    pub siem: &'a mut Siem,
    pub planes: &'a Planes,
    /// The last good snapshot of the tracked branch.
    pub snapshot: &'a Snapshot,
    /// Its commit, cited by every record written.
    pub source_commit: &'a str,
    /// Test hook (see `RINGMASTER_TEST_PAUSE_AT`).
    pub pause_at: Option<PausePoint>,
    /// The Git remote evidence must reach before a plane is changed, if any.
    pub evidence_remote: Option<&'a str>,
    pub push: &'a mut EvidencePush,
    /// Every connector call goes through its plane's circuit breaker.
    pub plane_breakers: &'a super::plane_breakers::PlaneBreakers,
    /// On a shared store, this replica's lease: checked (and renewed at a
    /// third) before every plane call and evidence append; `None` on SQLite.
    pub lease: Option<&'a mut super::lease::Lease>,
    /// Gate checks paced to the plane's effective interval (issue 17).
    pub gate_pacing: &'a std::sync::Mutex<crate::planes::budget::pacing::GatePacing>,
}

/// Begins each plane's gate-check pacing for the step at `now`
/// (`budget::pacing`): the schedule's interval (`intervals`' wanted, one per
/// plane of the snapshot) and the requests per hour the plane's budget
/// leaves gate status now — its connector's budget after adaptive back-off,
/// or the plane's default for a connector without one. The pacing itself
/// works from what the active rollouts' checks cost now, never from the
/// worst case `intervals` carry.
pub fn plan_gate_pacing(
    pacing: &std::sync::Mutex<crate::planes::budget::pacing::GatePacing>,
    planes: &Planes,
    intervals: &[(Plane, crate::planes::budget::GateInterval)],
    now: DateTime<Utc>,
) {
    let mut pacing = pacing
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for (plane, interval) in intervals {
        let wanted = std::time::Duration::from_secs(interval.wanted_seconds);
        // The connector's budget as it admits status reads now: its share
        // per window after back-off, and what is left of it at `now` (the
        // most one step's burst of checks can get).
        let window = planes
            .connector(*plane)
            .and_then(|connector| connector.transport())
            .map(|transport| transport.budget().window());
        let (available, burst) = match window {
            Some(mut window) => {
                let per_window =
                    f64::from(window.limit_for(crate::planes::budget::Priority::Status));
                let left = per_window - window.in_window(now) as f64;
                let available = crate::planes::budget::status_per_hour(
                    per_window,
                    window.config().window_seconds,
                    wanted,
                );
                (available, Some(left.max(0.0)))
            }
            None => (interval.available_per_hour as f64, None),
        };
        let plane_pacing = pacing.plane(plane.as_str(), wanted, available);
        plane_pacing.set_burst(burst);
        plane_pacing.begin_step(now);
    }
}

/// What each plane's gate pacing says after a step: the interval at the
/// live demand (`ringmaster_plane_gate_check_interval_seconds{interval=
/// "effective"}` and the status page's "now" line), beside the worst case
/// `intervals` carry.
pub fn report_gate_pacing(
    pacing: &std::sync::Mutex<crate::planes::budget::pacing::GatePacing>,
    intervals: &[(Plane, crate::planes::budget::GateInterval)],
) {
    let pacing = pacing
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for (plane, worst_case) in intervals {
        let Some(plane_pacing) = pacing.get(plane.as_str()) else {
            continue;
        };
        crate::metrics::runtime::record_gate_checks(
            plane.as_str(),
            crate::planes::budget::GateChecks {
                now: Some(plane_pacing.live(crate::plan::plane_name(*plane))),
                rollouts: plane_pacing.active(),
                worst_case: worst_case.clone(),
            },
        );
    }
}

/// A ring-transition record one step asked for, waiting to be written
/// with the others of its step ([`Performer::record_evidence_batch`]).
///
/// It lends its run rather than holding the run's JSON: the summary gets
/// `"run"` only when the record is built ([`Self::into_summary`]), one
/// record at a time (issue 17: 1,000 waiting records held 1,000 runs as
/// JSON values). The runs do not change while their records wait (within
/// one round of `rollout::Driver::drive`), so the JSON is the same.
#[derive(Debug, Clone)]
pub struct PendingRecord<'run> {
    pub intent_id: String,
    pub transition_id: String,
    /// The transition (`ring_started`, `rollback_started`, …).
    pub transition: String,
    /// The record's summary, without the run.
    pub summary: Value,
    /// The run, as the store holds it.
    pub run: &'run IntentRun,
}

impl<'run> PendingRecord<'run> {
    /// The record `Effect::RecordEvidence` asks for, with the run as the
    /// store holds it (what `ringmaster rebuild` restores it from,
    /// docs/evidence.md).
    pub fn of(
        run: &'run IntentRun,
        transition_id: String,
        transition: String,
        summary: Value,
    ) -> Self {
        PendingRecord {
            intent_id: run.intent_id.clone(),
            transition_id,
            transition,
            summary,
            run,
        }
    }

    /// The record's summary with the run (`"run"`), as it is signed.
    pub fn into_summary(self) -> Value {
        let mut summary = self.summary;
        if let Value::Object(object) = &mut summary {
            object.insert("run".into(), json!(self.run));
        }
        summary
    }
}

/// How a drift remediation went.
#[derive(Debug, Clone, PartialEq)]
pub enum DriftRemediation {
    Applied(RemediationResult),
    /// The plane refused or failed; the error.
    Failed(String),
    /// Nothing was sent: missing evidence (`deferred: false`, tried again at
    /// the next pass), or a hold or a freeze (`deferred: true`, carried out
    /// when it ends).
    NotSent {
        reason: String,
        deferred: bool,
    },
}

/// The correlation id a run's deployment carries on its plane: the intent's
/// for its first run, a distinct one for each later generation (a new version
/// under the same intent id is a new deployment for the plane).
pub fn plane_correlation_id(run: &IntentRun) -> String {
    if run.generation <= 1 {
        correlation_id_for(&run.intent_id)
    } else {
        correlation_id_for(&format!("{}#run-{}", run.intent_id, run.generation))
    }
}

/// The journal's action name of `name` for this run's generation, so a later
/// run never finds an earlier run's journal entries.
pub fn journal_action(run: &IntentRun, name: &str) -> String {
    if run.generation <= 1 {
        name.to_owned()
    } else {
        format!("{name}@run-{}", run.generation)
    }
}

/// A journal request, with the run's plane correlation id when it is not
/// the intent's (so recovery asks the plane about the right deployment).
fn with_run_correlation(run: &IntentRun, mut request: Value) -> Value {
    if run.generation > 1
        && let Value::Object(object) = &mut request
    {
        object.insert("correlation_id".into(), json!(plane_correlation_id(run)));
    }
    request
}

/// A publish checked and planned in the journal, ready to be sent.
struct PreparedPublish {
    planned: crate::store::Action,
    request: PublishRequest,
    ring: String,
}

/// What became of a journalled plane call.
enum Sent<T> {
    /// It went out (the entry was marked `sent`); the plane's answer.
    Answered(Result<T, ConnectorError>),
    /// The plane's circuit breaker refused it before anything went out: the
    /// entry was journalled as not sent (still `planned` or `failed`, with
    /// the time of the next probe) and is sent again later.
    Refused(ConnectorError),
}

/// Why a change that reaches more devices may not go out now.
struct Refusal {
    /// `change_freeze` or `held`.
    code: &'static str,
    reason: String,
    /// Seconds until a freeze that refuses it ends.
    retry_after: Option<u64>,
}

fn failure_of(error: &ConnectorError) -> ConnectorFailure {
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

fn transient(code: &str, retry_after_seconds: Option<u64>) -> ConnectorFailure {
    ConnectorFailure {
        class: FailureClass::Transient,
        code: code.to_owned(),
        retry_after_seconds,
    }
}

fn permanent(code: &str) -> ConnectorFailure {
    ConnectorFailure {
        class: FailureClass::Permanent,
        code: code.to_owned(),
        retry_after_seconds: None,
    }
}

fn evidence_record_type(transition: &str) -> RecordType {
    match transition {
        "rollback_started" | "rolled_back" | "rollback_failed" | "halted" => RecordType::Rollback,
        "gate_result" => RecordType::GateResult,
        "operator_action" => RecordType::OperatorAction,
        "drift" => RecordType::Drift,
        "remediation" => RecordType::Remediation,
        _ => RecordType::RingTransition,
    }
}

/// The journal entry of an evidence record: the record's id in the ring slot.
fn evidence_action(intent_id: &str, transition_id: &str, transition: &str) -> NewAction {
    NewAction {
        intent_id: intent_id.to_owned(),
        plane: "evidence".into(),
        ring: transition_id.to_owned(),
        action: "record".into(),
        request: json!({"transition": transition}),
    }
}

impl Performer<'_> {
    /// The plane an intent deploys on (its artifact's), if it resolves.
    pub fn plane_of(&self, intent: &DeploymentIntent) -> Option<Plane> {
        self.snapshot
            .artifact_of(intent)
            .map(|artifact| artifact.plane)
    }

    /// Appends an audit event about an intent, naming its plane and whether
    /// the plane is simulated.
    pub fn event(
        &mut self,
        intent_id: &str,
        (event_type, outcome): (EventType, EventOutcome),
        actor: &str,
        ring: Option<String>,
        details: Value,
        now: DateTime<Utc>,
    ) -> Result<(), DriveError> {
        let plane = self
            .snapshot
            .intents
            .get(intent_id)
            .and_then(|intent| self.plane_of(intent));
        let mut details = details;
        if let (Some(plane), Value::Object(object)) = (plane, &mut details) {
            object.insert("plane_mode".into(), json!(self.planes.mode(plane).as_str()));
        }
        self.store.append_event(NewEvent {
            correlation_id: correlation_id_for(intent_id),
            intent_id: Some(intent_id.to_owned()),
            event_type,
            timestamp: now,
            actor: actor.to_owned(),
            actor_role: "control-plane".into(),
            execution_plane: plane.map(|plane| plane.as_str().to_owned()),
            ring,
            outcome,
            details,
        })?;
        Ok(())
    }

    /// Performs one effect of the state machine and returns the events that
    /// report its outcome.
    pub async fn perform(
        &mut self,
        run: &IntentRun,
        effect: Effect,
        now: DateTime<Utc>,
    ) -> Result<Vec<Event>, DriveError> {
        let intent_id = run.intent_id.as_str();
        let snapshot = self.snapshot;
        let intent = snapshot.intents.get(intent_id).map(|i| &i.value);
        Ok(match effect {
            Effect::RecordEvidence {
                transition_id,
                record_type,
                summary,
            } => {
                // The run as the store holds it with this record: what
                // `ringmaster rebuild` restores it from (docs/evidence.md).
                let mut summary = summary;
                if let Value::Object(object) = &mut summary {
                    object.insert("run".into(), json!(run));
                }
                let written =
                    self.record_evidence(intent_id, &transition_id, &record_type, summary, now)?;
                vec![match written {
                    Ok(_) => Event::EvidenceCommitted { transition_id },
                    Err(error) => Event::EvidenceFailed {
                        transition_id,
                        error,
                    },
                }]
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
                vec![self.publish(run, intent, &ring, now).await?]
            }
            Effect::QueryStatus { ring } => {
                let Some(intent) = intent else {
                    return Ok(Vec::new());
                };
                // Nothing holds the store's writer lock while the plane
                // answers (a write batch commits here).
                self.durable()?;
                self.ring_status(run, intent, &ring, now)
                    .await
                    .into_iter()
                    .collect()
            }
            Effect::Remediate {
                strategy,
                rings,
                action,
            } => {
                let plane = match intent {
                    Some(intent) => self.plane_of(intent),
                    // A run whose intent file is gone (a superseding commit
                    // deleted it) is still halted, on the plane it ran on.
                    None if action == RemediationAction::Halt => self
                        .store
                        .get_intent(intent_id)?
                        .and_then(|record| super::rollout::IntentState::from_record(&record).plane)
                        .and_then(|facts| Plane::named(&facts.plane)),
                    None => return Ok(Vec::new()),
                };
                self.remediate(run, plane, &strategy, &rings, action, now)
                    .await?
            }
            Effect::EmitEvent {
                event_type,
                outcome,
                actor,
                ring,
                details,
            } => {
                self.event(
                    intent_id,
                    (
                        EventType::from_stored(event_type.as_str())
                            .unwrap_or(EventType::OperatorAction),
                        EventOutcome::from_stored(outcome.as_str()).unwrap_or(EventOutcome::Info),
                    ),
                    &actor,
                    ring,
                    details,
                    now,
                )?;
                Vec::new()
            }
            Effect::WakeAt { .. } => Vec::new(),
            Effect::Alert { message } => {
                tracing::warn!(intent = intent_id, %message, "ALERT");
                self.durable()?;
                self.siem.emit(&json!({"type": "alert", "intent_id": intent_id, "message": message, "at": now}));
                Vec::new()
            }
        })
    }

    /// Appends an evidence record once per transition id: the journal says
    /// whether it was written; after a crash, the branch tip is checked.
    /// `Ok(Ok(pack sha256))` when the record is on the branch, `Ok(Err(why))`
    /// when it could not be written (a `publish_blocked` event says so).
    pub fn record_evidence(
        &mut self,
        intent_id: &str,
        transition_id: &str,
        transition: &str,
        summary: Value,
        now: DateTime<Utc>,
    ) -> Result<Result<String, String>, DriveError> {
        let action = evidence_action(intent_id, transition_id, transition);
        let planned = self.store.plan_action(&action, now)?;
        if planned.state == ActionState::Confirmed {
            return Ok(Ok(planned.external_id.unwrap_or_default()));
        }
        if let Some(tip) = self.tip_holds_transition(transition_id) {
            self.confirm(&planned.key, planned.state, &tip.pack_sha256, now)?;
            // A crash after the append, before the store heard of it: the
            // store's evidence head catches up with the branch.
            self.store
                .set_evidence_head(tip.sequence, &tip.pack_sha256, &tip.commit, now)?;
            return Ok(Ok(tip.pack_sha256));
        }
        let input = self.record_input(intent_id, transition_id, transition, summary, now);
        if planned.state != ActionState::Sent {
            self.store.mark_sent(&planned.key, now)?;
        }
        let context = super::append_context(self.store)?;
        self.durable()?;
        self.keep_lease(now)?;
        match self.evidence.append(input, self.signer, &context) {
            Ok(record) => {
                let (pause, name) = match transition {
                    "drift" => (PausePoint::AfterDriftRecord, "after-drift-record"),
                    _ => (PausePoint::AfterRecordAppend, "after-record-append"),
                };
                self.pause(pause, name)?;
                self.store
                    .mark_confirmed(&planned.key, Some(&record.pack_sha256), now)?;
                self.store.set_evidence_head(
                    record.sequence,
                    &record.pack_sha256,
                    &record.commit,
                    now,
                )?;
                Ok(Ok(record.pack_sha256))
            }
            Err(error) => {
                let message = format!("evidence branch cannot be written: {error}");
                self.store.mark_failed(&planned.key, &message, None, now)?;
                self.event(
                    intent_id,
                    (EventType::PublishBlocked, EventOutcome::Failure),
                    ACTOR,
                    None,
                    json!({"reason": message, "transition_id": transition_id}),
                    now,
                )?;
                Ok(Err(message))
            }
        }
    }

    /// The signed record's input of a transition: the body
    /// `docs/evidence.md` describes.
    fn record_input(
        &self,
        intent_id: &str,
        transition_id: &str,
        transition: &str,
        summary: Value,
        now: DateTime<Utc>,
    ) -> EvidencePackInput {
        let identity = GitIdentity {
            name: "ringmaster".into(),
            email: "ringmaster@localhost".into(),
            time: now.fixed_offset(),
        };
        let plane = self
            .snapshot
            .intents
            .get(intent_id)
            .and_then(|intent| self.plane_of(intent));
        EvidencePackInput {
            record_type: evidence_record_type(transition),
            intent_id: Some(intent_id.to_owned()),
            correlation_id: correlation_id_for(intent_id),
            source_commit: self.source_commit.to_owned(),
            source_parent: None,
            author: identity.clone(),
            committer: identity,
            created_at: now,
            body: json!({
                "transition_id": transition_id,
                "transition": transition,
                "summary": summary,
                "execution_plane": plane.map(Plane::as_str),
                "plane_mode": plane.map(|plane| self.planes.mode(plane).as_str()),
            }),
        }
    }

    /// [`Self::record_evidence`] for the records one step of the rollouts
    /// produced across many runs (issue 17): journalled in one store
    /// transaction, signed and chained one by one into ONE evidence commit
    /// ([`EvidenceBranch::append_batch_from`], one fsync), then confirmed with
    /// the evidence head in one transaction. The order of each record's
    /// life is the per-record path's: planned, marked sent, appended,
    /// confirmed; a record the journal has confirmed is not written again,
    /// and one a crash left unconfirmed is looked for among the tip
    /// commit's records (every earlier batch was confirmed before the next
    /// was appended) and confirmed instead of appended twice. Answers each
    /// record's outcome in `records` order, as [`Self::record_evidence`].
    pub fn record_evidence_batch(
        &mut self,
        records: Vec<PendingRecord<'_>>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Result<String, String>>, DriveError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let actions: Vec<NewAction> = records
            .iter()
            .map(|record| {
                evidence_action(&record.intent_id, &record.transition_id, &record.transition)
            })
            .collect();
        let planned = self.store.plan_actions(&actions, now)?;
        drop(actions);
        let mut outcomes: Vec<Option<Result<String, String>>> = planned
            .iter()
            .map(|action| {
                (action.state == ActionState::Confirmed)
                    .then(|| Ok(action.external_id.clone().unwrap_or_default()))
            })
            .collect();
        // A crash after an append, before the store heard of it: the
        // records are on the tip commit; the store catches up with them.
        let mut found: Vec<(String, String)> = Vec::new();
        let mut found_head: Option<crate::store::HeadWrite> = None;
        if planned
            .iter()
            .any(|action| matches!(action.state, ActionState::Sent | ActionState::Failed))
        {
            let on_tip = self.tip_transitions();
            for ((record, action), outcome) in records.iter().zip(&planned).zip(&mut outcomes) {
                if outcome.is_some() || action.state == ActionState::Planned {
                    continue;
                }
                if let Some(tip) =
                    on_tip.get(&(record.intent_id.clone(), record.transition_id.clone()))
                {
                    found.push((action.key.clone(), tip.pack_sha256.clone()));
                    *outcome = Some(Ok(tip.pack_sha256.clone()));
                    if found_head
                        .as_ref()
                        .is_none_or(|head| head.sequence < tip.sequence)
                    {
                        found_head = Some(crate::store::HeadWrite {
                            sequence: tip.sequence,
                            pack_sha256: tip.pack_sha256.clone(),
                            evidence_commit_sha: tip.commit.clone(),
                        });
                    }
                }
            }
        }
        let mut keys = Vec::new();
        let mut to_send = Vec::new();
        let mut to_write = Vec::new();
        for (index, ((record, action), outcome)) in
            records.into_iter().zip(&planned).zip(&outcomes).enumerate()
        {
            if outcome.is_some() {
                continue;
            }
            if action.state != ActionState::Sent {
                to_send.push(action.key.clone());
            }
            keys.push((
                index,
                action.key.clone(),
                record.intent_id.clone(),
                record.transition_id.clone(),
            ));
            to_write.push(record);
        }
        if to_write.is_empty() {
            if let Some(head) = found_head {
                self.store.confirm_evidence_batch(&found, &head, now)?;
            }
            return Ok(outcomes
                .into_iter()
                .map(|outcome| {
                    outcome.unwrap_or_else(|| Err("evidence record not written".to_owned()))
                })
                .collect());
        }
        self.store.mark_sent_all(&to_send, now)?;
        let context = super::append_context(self.store)?;
        self.durable()?;
        self.keep_lease(now)?;
        // Each record's input (with its run) is made when the batch reads
        // it, so one run's JSON is held at a time.
        let inputs = to_write.into_iter().map(|record| {
            let (intent_id, transition_id, transition) = (
                record.intent_id.clone(),
                record.transition_id.clone(),
                record.transition.clone(),
            );
            let summary = record.into_summary();
            self.record_input(&intent_id, &transition_id, &transition, summary, now)
        });
        match self
            .evidence
            .append_batch_from(inputs, self.signer, &context)
        {
            Ok(appended) if appended.len() == keys.len() => {
                self.pause(PausePoint::AfterRecordAppend, "after-record-append")?;
                let last = appended.last().expect("a batch has records");
                let head = crate::store::HeadWrite {
                    sequence: last.sequence,
                    pack_sha256: last.pack_sha256.clone(),
                    evidence_commit_sha: last.commit.clone(),
                };
                for ((index, key, _, _), record) in keys.iter().zip(&appended) {
                    found.push((key.clone(), record.pack_sha256.clone()));
                    outcomes[*index] = Some(Ok(record.pack_sha256.clone()));
                }
                self.store.confirm_evidence_batch(&found, &head, now)?;
                tracing::info!(
                    records = keys.len(),
                    last = head.sequence,
                    "rollout evidence batch committed"
                );
            }
            result => {
                let message = match result {
                    Err(error) => format!("evidence branch cannot be written: {error}"),
                    Ok(_) => "evidence branch cannot be written: the batch appended fewer records than it was given".to_owned(),
                };
                if let Some(head) = found_head {
                    self.store.confirm_evidence_batch(&found, &head, now)?;
                }
                for (index, key, intent_id, transition_id) in keys {
                    self.store.mark_failed(&key, &message, None, now)?;
                    self.event(
                        &intent_id,
                        (EventType::PublishBlocked, EventOutcome::Failure),
                        ACTOR,
                        None,
                        json!({"reason": message, "transition_id": transition_id}),
                        now,
                    )?;
                    outcomes[index] = Some(Err(message.clone()));
                }
            }
        }
        Ok(outcomes
            .into_iter()
            .map(|outcome| outcome.unwrap_or_else(|| Err("evidence record not written".to_owned())))
            .collect())
    }

    /// The (intent, transition) records of the branch's tip commit (a
    /// batch or one record), with their place on the chain.
    fn tip_transitions(
        &self,
    ) -> std::collections::HashMap<(String, String), crate::evidence::ChainTip> {
        let Ok(records) = self.evidence.tip_records() else {
            return std::collections::HashMap::new();
        };
        records
            .into_iter()
            .filter_map(|record| {
                let transition_id = record
                    .pack
                    .body
                    .get("transition_id")
                    .and_then(Value::as_str)?
                    .to_owned();
                Some(((record.pack.intent_id.clone()?, transition_id), record.tip))
            })
            .collect()
    }

    /// Whether the evidence record `transition_id` of `intent_id` is
    /// committed (the journal says so).
    fn evidence_committed(&self, intent_id: &str, transition_id: &str) -> Result<bool, DriveError> {
        let key = action_key(intent_id, "evidence", transition_id, "record");
        Ok(self
            .store
            .get_action(&key)?
            .is_some_and(|action| action.state == ActionState::Confirmed))
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

    /// The tip when it records this transition.
    fn tip_holds_transition(&self, transition_id: &str) -> Option<crate::evidence::ChainTip> {
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
            .then_some(tip)
    }

    /// Makes sure every evidence record is on the evidence remote (when one
    /// is configured) and then in the WORM store (when one is configured)
    /// before a plane is changed: committed, pushed, copied. `Err(why)` when
    /// it cannot.
    pub fn ensure_pushed(&mut self, now: DateTime<Utc>) -> Result<(), String> {
        self.ensure_remote_has_evidence(now)?;
        self.evidence
            .copy_to_worm(now)
            .map(|_| ())
            .map_err(|error| format!("evidence could not be copied to the WORM store: {error}"))
    }

    /// The push half of [`Self::ensure_pushed`]: pushes when the local
    /// branch is ahead of what this process last pushed.
    fn ensure_remote_has_evidence(&mut self, now: DateTime<Utc>) -> Result<(), String> {
        let Some(remote) = self.evidence_remote else {
            return Ok(());
        };
        let tip = match self.evidence.tip() {
            Ok(Some(tip)) => tip.commit,
            Ok(None) => return Ok(()),
            Err(error) => return Err(format!("evidence branch unreadable: {error}")),
        };
        if self.push.pushed_tip.as_deref() == Some(tip.as_str()) {
            return Ok(());
        }
        match push_evidence(
            self.evidence,
            self.signer,
            self.store,
            self.push,
            remote,
            now,
        ) {
            Ok(()) => Ok(()),
            Err(error) => Err(format!("evidence could not be pushed to {remote}: {error}")),
        }
    }

    fn publish_request(
        &self,
        run: &IntentRun,
        intent: &DeploymentIntent,
        ring: &str,
    ) -> Option<PublishRequest> {
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
            correlation_id: plane_correlation_id(run),
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
            sites: scope.sites.clone(),
        })
    }

    /// Checks that a change that reaches more devices may go out now: the
    /// run's hold and freeze, audited when an emergency override lets it
    /// through. `Err((code, why, retry after))` when it may not.
    fn extension_allowed(
        &mut self,
        run: &IntentRun,
        ring: Option<&str>,
        what: &str,
        now: DateTime<Utc>,
    ) -> Result<Result<(), Refusal>, DriveError> {
        match may_change_plane(run, PlaneChange::Extend, now) {
            Permission::Allowed => Ok(Ok(())),
            Permission::AllowedUnderOverride { freeze } => {
                self.event(
                    &run.intent_id,
                    (EventType::OperatorAction, EventOutcome::Info),
                    "cab",
                    ring.map(str::to_owned),
                    json!({"kind": "emergency_override", "action": what, "freeze": freeze,
                           "counted_approvals": run.counted_approvals()}),
                    now,
                )?;
                Ok(Ok(()))
            }
            Permission::Refused { reason, until } => {
                let retry_after = until.map(|until| {
                    u64::try_from((until - now).num_seconds())
                        .unwrap_or(0)
                        .max(1)
                });
                let code = if until.is_some() {
                    "change_freeze"
                } else {
                    "held"
                };
                Ok(Err(Refusal {
                    code,
                    reason,
                    retry_after,
                }))
            }
        }
    }

    /// Publishes one ring through the journal: planned → sent → confirmed |
    /// failed, after checking the evidence and the run's holds and freezes.
    async fn publish(
        &mut self,
        run: &IntentRun,
        intent: &DeploymentIntent,
        ring: &str,
        now: DateTime<Utc>,
    ) -> Result<Event, DriveError> {
        let prepared = match self.prepare_publish(run, intent, ring, now)? {
            Ok(prepared) => prepared,
            Err(event) => return Ok(event),
        };
        let planes = self.planes;
        let connector = planes
            .connector(prepared.request.plane)
            .expect("checked by prepare_publish");
        let call = connector.publish(&prepared.request, now);
        let sent = self
            .send_journalled(
                &prepared.planned,
                prepared.request.plane,
                "publish",
                now,
                (PausePoint::BeforePublish, "before-publish"),
                call,
            )
            .await?;
        let answer = match sent {
            Sent::Answered(answer) => answer,
            Sent::Refused(refusal) => {
                return Ok(Event::PublishFailed {
                    ring: ring.to_owned(),
                    error: failure_of(&refusal),
                });
            }
        };
        self.finish_publish(&prepared, answer, now)
    }

    /// The publishes of many runs' rings one round asks for (issue 17),
    /// each as [`Self::publish`] does it, with the journal's writes shared:
    /// every entry is planned and marked sent, then the store commits once
    /// (`sent` is durable before any of the calls, as before each call on
    /// its own), the calls go out one by one, and their outcomes are
    /// journalled in the write batch. A call whose plane's circuit breaker
    /// opened during the chunk does not go out and its entry is journalled
    /// as not sent ([`crate::store::Store::mark_unsent`]). Answers each
    /// item's events in `items` order.
    pub async fn publish_chunk(
        &mut self,
        items: &[(&IntentRun, String)],
        now: DateTime<Utc>,
    ) -> Result<Vec<Vec<Event>>, DriveError> {
        let snapshot = self.snapshot;
        let mut outcomes: Vec<Vec<Event>> = vec![Vec::new(); items.len()];
        let mut ready: Vec<(usize, PreparedPublish, ActionState)> = Vec::new();
        for (index, (run, ring)) in items.iter().enumerate() {
            let Some(intent) = snapshot.intents.get(&run.intent_id).map(|i| &i.value) else {
                continue;
            };
            let prepared = match self.prepare_publish(run, intent, ring, now)? {
                Ok(prepared) => prepared,
                Err(event) => {
                    outcomes[index].push(event);
                    continue;
                }
            };
            if let Some(refusal) =
                self.not_sent_by_breaker(&prepared.planned, prepared.request.plane, "publish", now)?
            {
                outcomes[index].push(Event::PublishFailed {
                    ring: ring.clone(),
                    error: failure_of(&refusal),
                });
                continue;
            }
            let before = prepared.planned.state;
            if before != ActionState::Sent {
                self.store.mark_sent(&prepared.planned.key, now)?;
            }
            ready.push((index, prepared, before));
        }
        if ready.is_empty() {
            return Ok(outcomes);
        }
        self.pause(PausePoint::BeforePublish, "before-publish")?;
        self.durable()?;
        let planes = self.planes;
        for (index, prepared, before) in ready {
            let plane = prepared.request.plane;
            if let Some(refusal) = self.plane_breakers.refusal(plane, "publish", now) {
                // Opened by an earlier call of this chunk: nothing goes out.
                let retry_at = refusal
                    .retry_after
                    .and_then(|wait| chrono::Duration::from_std(wait).ok())
                    .map(|wait| now + wait);
                self.store.mark_unsent(
                    &prepared.planned.key,
                    before,
                    &format!("not sent: {refusal}"),
                    retry_at,
                    now,
                )?;
                outcomes[index].push(Event::PublishFailed {
                    ring: prepared.ring.clone(),
                    error: failure_of(&refusal),
                });
                continue;
            }
            // A replica stalled since the journal write must not send.
            self.keep_lease(now)?;
            let connector = planes.connector(plane).expect("checked by prepare_publish");
            let answer = self
                .plane_breakers
                .call(
                    plane,
                    "publish",
                    now,
                    connector.publish(&prepared.request, now),
                )
                .await;
            outcomes[index].push(self.finish_publish(&prepared, answer, now)?);
        }
        Ok(outcomes)
    }

    /// A publish's checks and its journal entry, planned: `Err(event)` when
    /// it ends there (refused, blocked, or confirmed already).
    /// A publish's checks and its journal entry, planned: `Err(event)` when
    /// it ends there (refused, blocked, or confirmed already).
    fn prepare_publish(
        &mut self,
        run: &IntentRun,
        intent: &DeploymentIntent,
        ring: &str,
        now: DateTime<Utc>,
    ) -> Result<Result<PreparedPublish, Event>, DriveError> {
        let failed = |error: ConnectorFailure| Event::PublishFailed {
            ring: ring.to_owned(),
            error,
        };
        let Some(request) = self.publish_request(run, intent, ring) else {
            return Ok(Err(failed(permanent("no_entitlement"))));
        };
        let planes = self.planes;
        if planes.connector(request.plane).is_none() {
            let reason = format!(
                "plane {} has no connector: add it under planes: in the daemon config",
                request.plane.as_str()
            );
            self.blocked(&run.intent_id, ring, &reason, now)?;
            return Ok(Err(failed(ConnectorFailure {
                class: FailureClass::PlaneUnavailable,
                code: "plane_not_configured".into(),
                retry_after_seconds: None,
            })));
        }
        // Evidence first: the ring's start record committed, and pushed.
        let start_record = run
            .plan
            .index_of(ring)
            .and_then(|index| run.rings[index].start_transition_id());
        let committed = match &start_record {
            Some(transition_id) => self.evidence_committed(&run.intent_id, transition_id)?,
            None => false,
        };
        if !committed {
            let reason = format!(
                "ring {ring} is not published: its start record is not committed on the evidence branch"
            );
            self.blocked(&run.intent_id, ring, &reason, now)?;
            return Ok(Err(failed(transient("evidence_not_committed", None))));
        }
        if let Err(reason) = self.ensure_pushed(now) {
            self.blocked(&run.intent_id, ring, &reason, now)?;
            return Ok(Err(failed(transient("evidence_not_pushed", None))));
        }
        if let Err(refusal) = self.extension_allowed(run, Some(ring), "publish", now)? {
            self.blocked(&run.intent_id, ring, &refusal.reason, now)?;
            return Ok(Err(failed(transient(refusal.code, refusal.retry_after))));
        }
        let action = NewAction {
            intent_id: intent.intent_id.clone(),
            plane: request.plane.as_str().to_owned(),
            ring: ring.to_owned(),
            action: journal_action(run, "publish"),
            request: with_run_correlation(
                run,
                json!({"version": request.version, "artifact": request.artifact.sha256,
                       "groups": request.groups}),
            ),
        };
        let planned = match self.store.plan_action(&action, now) {
            Ok(planned) => planned,
            Err(crate::store::StoreError::ActionRequestMismatch { .. }) => {
                return Ok(Err(failed(permanent("request_changed"))));
            }
            Err(error) => return Err(error.into()),
        };
        if planned.state == ActionState::Confirmed {
            return Ok(Err(Event::PublishConfirmed {
                ring: ring.to_owned(),
                external_id: planned.external_id.unwrap_or_default(),
            }));
        }
        Ok(Ok(PreparedPublish {
            planned,
            request,
            ring: ring.to_owned(),
        }))
    }

    /// Journals a publish's answer: confirmed (after the `after-publish`
    /// pause point) or failed.
    fn finish_publish(
        &mut self,
        prepared: &PreparedPublish,
        answer: Result<crate::planes::PublishResult, ConnectorError>,
        now: DateTime<Utc>,
    ) -> Result<Event, DriveError> {
        let ring = prepared.ring.as_str();
        let planned = &prepared.planned;
        match answer {
            Ok(result) => {
                self.pause(PausePoint::AfterPublish, "after-publish")?;
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
    /// Sends a journalled call to `plane`: marks the entry `sent`, then
    /// calls through the plane's circuit breaker — unless the breaker is
    /// open, in which case nothing goes out and the entry is journalled as
    /// not sent ([`Store::mark_not_sent`]), never as sent then failed.
    async fn send_journalled<T>(
        &mut self,
        planned: &crate::store::Action,
        plane: Plane,
        operation: &str,
        now: DateTime<Utc>,
        pause: (PausePoint, &'static str),
        call: impl std::future::Future<Output = Result<T, ConnectorError>>,
    ) -> Result<Sent<T>, DriveError> {
        if let Some(refusal) = self.not_sent_by_breaker(planned, plane, operation, now)? {
            return Ok(Sent::Refused(refusal));
        }
        if planned.state != ActionState::Sent {
            self.store.mark_sent(&planned.key, now)?;
        }
        let (point, name) = pause;
        self.pause(point, name)?;
        // A replica stalled since the journal write must not send: another
        // may lead by now and resume this entry from the journal.
        self.durable()?;
        self.keep_lease(now)?;
        Ok(Sent::Answered(
            self.plane_breakers.call(plane, operation, now, call).await,
        ))
    }

    /// The plane's circuit breaker refusing a journalled call before
    /// anything went out: the entry is journalled as not sent (its state
    /// kept, with the time of the next probe) and the refusal answered.
    fn not_sent_by_breaker(
        &mut self,
        planned: &crate::store::Action,
        plane: Plane,
        operation: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<ConnectorError>, DriveError> {
        let Some(refusal) = self.plane_breakers.refusal(plane, operation, now) else {
            return Ok(None);
        };
        let retry_at = refusal
            .retry_after
            .and_then(|wait| chrono::Duration::from_std(wait).ok())
            .map(|wait| now + wait);
        self.store
            .mark_not_sent(&planned.key, &format!("not sent: {refusal}"), retry_at, now)?;
        Ok(Some(refusal))
    }

    /// On a shared store: refuses to act once this replica's lease lapsed
    /// or another replica leads (see [`super::lease`]); renews it at a
    /// third. Nothing on SQLite.
    fn keep_lease(&mut self, now: DateTime<Utc>) -> Result<(), DriveError> {
        let Some(lease) = self.lease.as_deref_mut() else {
            return Ok(());
        };
        let kept = lease.keep(self.store, now).map_err(|lost| {
            eprintln!("ringmaster: stops acting: {lost}");
            tracing::error!(%lost, "not acting");
            DriveError::from(lost)
        });
        // A renewal is durable at once, not with the batch's next commit.
        if kept.is_ok() {
            self.durable()?;
        }
        kept
    }

    /// Makes the store's writes so far durable when a write batch is open
    /// ([`crate::store::Store::begin_batch`]): called before anything
    /// outside the store acts on them — a plane call, an evidence append,
    /// a SIEM message, a test's pause point — so the journal entry that
    /// guards an action is committed before the action, as with one
    /// commit per write; and the writer lock is not held while the plane
    /// answers (the batch's next write takes it again). No-op outside a
    /// batch.
    pub fn durable(&mut self) -> Result<(), DriveError> {
        self.store.flush_batch()?;
        Ok(())
    }

    /// A test's pause point (`RINGMASTER_TEST_PAUSE_AT`): the store's
    /// writes so far are made durable, then the process waits to be killed.
    fn pause(&mut self, point: PausePoint, name: &'static str) -> Result<(), DriveError> {
        if PausePoint::hit(self.pause_at, point) {
            self.durable()?;
            pause_forever(name);
        }
        Ok(())
    }

    /// Records that a plane change was not sent, and why.
    fn blocked(
        &mut self,
        intent_id: &str,
        ring: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), DriveError> {
        self.event(
            intent_id,
            (EventType::PublishBlocked, EventOutcome::Failure),
            ACTOR,
            Some(ring.to_owned()),
            json!({"kind": "plane_change_refused", "reason": reason}),
            now,
        )
    }

    /// What the plane reports for a deployment: the one read path of the
    /// planes.
    pub async fn query_status(
        &self,
        plane: Plane,
        correlation_id: &str,
        now: DateTime<Utc>,
    ) -> Result<DeploymentStatus, ConnectorError> {
        let Some(connector) = self.planes.connector(plane) else {
            return Err(ConnectorError::new(
                crate::planes::ErrorCode::ResourceNotFound,
                format!(
                    "plane {} has no connector; configure it under planes: in the daemon config",
                    plane.as_str()
                ),
            ));
        };
        let call = connector.query_status(correlation_id, now);
        self.plane_breakers
            .call(plane, "query_status", now, call)
            .await
    }

    /// Requests sent so far through `plane`'s call budget (0 for a plane
    /// without one).
    fn sent_on(&self, plane: Plane) -> u64 {
        self.planes
            .connector(plane)
            .and_then(|connector| connector.transport())
            .map_or(0, |transport| transport.budget().window().sent_total)
    }

    async fn ring_status(
        &self,
        run: &IntentRun,
        intent: &DeploymentIntent,
        ring: &str,
        now: DateTime<Utc>,
    ) -> Option<Event> {
        let plane = self.plane_of(intent)?;
        let correlation_id = plane_correlation_id(run);
        // Gate pacing: when the plane's budget cannot serve a check of
        // every rollout at every poll, a rollout checked less than the
        // effective interval ago waits, leaving the budget to those waiting
        // longest (it is asked again at a later tick, like a failed query).
        let sent_before = self.sent_on(plane);
        {
            // What a check of this rollout costs before one in this ring is
            // answered: the devices of the rings it has started.
            let estimate =
                crate::plan::ring_gate_calls(self.snapshot, intent, ring).map(|(_, calls)| calls);
            let budgeted = self
                .planes
                .connector(plane)
                .is_some_and(|connector| connector.transport().is_some());
            let mut pacing = self
                .gate_pacing
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // Every rollout asking counts in the plane's live demand; only a
            // plane with a call budget holds a check back.
            if let Some(plane_pacing) = pacing.get_mut(plane.as_str())
                && !plane_pacing.due(&correlation_id, ring, estimate, now)
                && budgeted
            {
                tracing::debug!(intent = %intent.intent_id, plane = plane.as_str(), "gate check paced: the budget's share of this step went to rollouts waiting longer");
                return None;
            }
        }
        let gate_status = self.query_status(plane, &correlation_id, now);
        match crate::planes::budget::with_priority(
            crate::planes::budget::Priority::Status,
            gate_status,
        )
        .await
        {
            Ok(status) => {
                let spent = self.sent_on(plane).saturating_sub(sent_before);
                if let Some(plane_pacing) = self
                    .gate_pacing
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .get_mut(plane.as_str())
                {
                    plane_pacing.checked(&correlation_id, now, spent);
                }
                let counts = status.rings.get(ring).cloned().unwrap_or_default();
                let incidents = match self.open_incidents(run, intent, ring, now) {
                    Ok(incidents) => incidents,
                    Err(error) => {
                        // Without the incident count there is no verdict.
                        tracing::warn!(intent = %intent.intent_id, %error, "cannot read open incidents; the gate waits");
                        return None;
                    }
                };
                Some(Event::StatusObserved {
                    ring: ring.to_owned(),
                    targeted: counts.targeted,
                    installed: counts.installed,
                    failed: counts.failed,
                    pending: counts.pending,
                    incidents,
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

    /// Open incidents that count against the ring's gate: the store's open
    /// incidents of the intent's application in this ring and business unit
    /// (or for every ring or business unit) that began once the ring was live.
    fn open_incidents(
        &self,
        run: &IntentRun,
        intent: &DeploymentIntent,
        ring: &str,
        now: DateTime<Utc>,
    ) -> Result<u32, crate::store::StoreError> {
        let started_at = run
            .plan
            .index_of(ring)
            .and_then(|index| run.rings[index].started_at());
        let incidents = self.store.open_incidents_matching(
            &intent.application_id,
            ring,
            &intent.target_scope.business_unit,
            now,
        )?;
        let counted = incidents
            .iter()
            .filter(|incident| started_at.is_none_or(|started| incident.started_at >= started))
            .count();
        Ok(u32::try_from(counted).unwrap_or(u32::MAX))
    }

    /// Takes a deployment back (rollback, uninstall, halt) through the journal.
    async fn remediate(
        &mut self,
        run: &IntentRun,
        plane: Option<Plane>,
        strategy: &str,
        rings: &[String],
        action: RemediationAction,
        now: DateTime<Utc>,
    ) -> Result<Vec<Event>, DriveError> {
        let halting = action == RemediationAction::Halt;
        let remediation = match &action {
            RemediationAction::Halt => Remediation::Halt,
            RemediationAction::Rollback { to_version } => Remediation::Rollback {
                to_version: to_version.clone(),
                strategy: Some(strategy.to_owned()),
            },
            RemediationAction::Uninstall => Remediation::Uninstall,
        };
        let intent_id = run.intent_id.as_str();
        let Some(plane) = plane else {
            return Ok(vec![Event::RollbackFailed {
                error: "the intent's artifact no longer resolves".into(),
                failure: Some(permanent("artifact_unresolved")),
            }]);
        };
        let planes = self.planes;
        let Some(connector) = planes.connector(plane) else {
            return Ok(vec![Event::RollbackFailed {
                error: format!("plane {} is not configured", plane.as_str()),
                failure: Some(ConnectorFailure {
                    class: FailureClass::PlaneUnavailable,
                    code: "plane_unavailable".into(),
                    retry_after_seconds: None,
                }),
            }]);
        };
        let action_record = NewAction {
            intent_id: intent_id.to_owned(),
            plane: plane.as_str().to_owned(),
            ring: rings.join(","),
            action: journal_action(run, &format!("remediate:{}", remediation.name())),
            request: with_run_correlation(
                run,
                json!({"strategy": strategy, "remediation": remediation}),
            ),
        };
        let planned = self.store.plan_action(&action_record, now)?;
        if planned.state == ActionState::Confirmed {
            return Ok(vec![Event::RollbackConfirmed]);
        }
        let correlation_id = plane_correlation_id(run);
        let call = crate::planes::budget::with_priority(
            crate::planes::budget::Priority::of_remediation(&remediation),
            connector.remediate(&correlation_id, &remediation, now),
        );
        let answer = match self
            .send_journalled(
                &planned,
                plane,
                "remediate",
                now,
                (PausePoint::BeforeRemediation, "before-remediation"),
                call,
            )
            .await?
        {
            Sent::Answered(answer) => answer,
            Sent::Refused(refusal) => Err(refusal),
        };
        match answer {
            Ok(result) => {
                self.pause(PausePoint::AfterRemediation, "after-remediation")?;
                self.store.mark_confirmed(&planned.key, None, now)?;
                self.durable()?;
                self.siem.emit(&json!({"type": remediation.name(), "intent_id": intent_id, "strategy": strategy, "rings": rings, "applied": result.applied, "at": now}));
                if halting {
                    self.event(
                        intent_id,
                        (EventType::RollbackExecuted, EventOutcome::Success),
                        ACTOR,
                        None,
                        json!({"kind": "halted_on_plane", "rings": rings, "applied": result.applied,
                               "detail": result.detail}),
                        now,
                    )?;
                    return Ok(Vec::new());
                }
                Ok(vec![Event::RollbackConfirmed])
            }
            Err(error) => {
                if let Some(action) = self.store.get_action(&planned.key)?
                    && action.state == ActionState::Sent
                {
                    self.store
                        .mark_failed(&planned.key, &error.to_string(), None, now)?;
                }
                if halting {
                    // The run has ended: the halt it could not carry out is
                    // reported (event, SIEM) for a human to finish.
                    self.event(
                        intent_id,
                        (EventType::RollbackExecuted, EventOutcome::Failure),
                        ACTOR,
                        None,
                        json!({"kind": "halt_failed", "rings": rings, "error": error.to_string(),
                               "code": error.code.as_str()}),
                        now,
                    )?;
                    self.durable()?;
                    self.siem.emit(&json!({"type": "halt_failed", "intent_id": intent_id, "rings": rings, "error": error.to_string(), "at": now}));
                    return Ok(Vec::new());
                }
                Ok(vec![Event::RollbackFailed {
                    error: error.to_string(),
                    failure: Some(failure_of(&error)),
                }])
            }
        }
    }

    /// Carries out the remediation of a drift record through the journal,
    /// evidence first (the drift record committed and pushed), respecting the
    /// run's hold and freeze. Idempotent on the record id: a remediation the
    /// journal confirms is not sent again.
    pub async fn remediate_drift(
        &mut self,
        run: &IntentRun,
        plane: Plane,
        record_id: &str,
        plan: &RemediationPlan,
        now: DateTime<Utc>,
    ) -> Result<DriftRemediation, DriveError> {
        let planes = self.planes;
        let not_sent =
            |reason: String, deferred: bool| DriftRemediation::NotSent { reason, deferred };
        let Some(connector) = planes.connector(plane) else {
            let reason = format!("plane {} has no connector", plane.as_str());
            return Ok(not_sent(reason, false));
        };
        if !self.evidence_committed(&run.intent_id, record_id)? {
            let reason =
                format!("the drift record {record_id} is not committed on the evidence branch");
            return Ok(not_sent(reason, false));
        }
        if let Err(reason) = self.ensure_pushed(now) {
            return Ok(not_sent(reason, false));
        }
        if let Err(refusal) = self.extension_allowed(run, None, "redeploy", now)? {
            return Ok(not_sent(refusal.reason, true));
        }
        let action = NewAction {
            intent_id: run.intent_id.clone(),
            plane: plane.as_str().to_owned(),
            ring: record_id.to_owned(),
            action: journal_action(run, &format!("remediate:{}", plan.remediation.name())),
            request: with_run_correlation(
                run,
                json!({"remediation": plan.remediation, "drift_record": record_id}),
            ),
        };
        let planned = self.store.plan_action(&action, now)?;
        if planned.state == ActionState::Confirmed {
            return Ok(DriftRemediation::Applied(RemediationResult {
                action: plan.remediation.clone(),
                applied: false,
                detail: "already carried out (the journal confirms it)".into(),
            }));
        }
        let correlation_id = plane_correlation_id(run);
        let call = crate::planes::budget::with_priority(
            crate::planes::budget::Priority::of_remediation(&plan.remediation),
            connector.remediate(&correlation_id, &plan.remediation, now),
        );
        let answer = match self
            .send_journalled(
                &planned,
                plane,
                "remediate",
                now,
                (PausePoint::BeforeRemediation, "before-remediation"),
                call,
            )
            .await?
        {
            Sent::Answered(answer) => answer,
            Sent::Refused(refusal) => return Ok(DriftRemediation::Failed(refusal.to_string())),
        };
        match answer {
            Ok(result) => {
                self.pause(PausePoint::AfterRemediation, "after-remediation")?;
                self.store.mark_confirmed(&planned.key, None, now)?;
                Ok(DriftRemediation::Applied(result))
            }
            Err(error) => {
                self.store
                    .mark_failed(&planned.key, &error.to_string(), None, now)?;
                Ok(DriftRemediation::Failed(error.to_string()))
            }
        }
    }

    /// Confirms the remediation of drift record `record_id` that the journal
    /// has as sent, once the plane shows no drift any more (the daemon died
    /// between the plane's answer and the journal): answers whether there
    /// was one. Recorded as an `in_flight_resolved` event.
    pub fn confirm_sent_remediation(
        &mut self,
        run: &IntentRun,
        plane: Plane,
        record_id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, DriveError> {
        let sent: Vec<_> = self
            .store
            .pending_actions()?
            .into_iter()
            .filter(|action| {
                action.state == ActionState::Sent
                    && action.intent_id == run.intent_id
                    && action.plane == plane.as_str()
                    && action.ring == record_id
                    && action.action.starts_with("remediate:")
            })
            .collect();
        for action in &sent {
            self.store.mark_confirmed(&action.key, None, now)?;
            self.event(
                &run.intent_id,
                (EventType::OperatorAction, EventOutcome::Info),
                ACTOR,
                None,
                json!({"kind": "in_flight_resolved", "journal_key": action.key,
                       "action": action.action, "drift_record": record_id,
                       "next": "confirmed: the plane no longer shows the drift it repaired"}),
                now,
            )?;
        }
        Ok(!sent.is_empty())
    }

    /// After a start: resolves every plane action the journal has as sent but
    /// not confirmed, by asking the plane whether it holds the deployment
    /// (`verify_idempotency`) before anything is sent again. The finding is
    /// recorded as an event; the action itself is then completed by the
    /// normal path, whose call is idempotent on the correlation id (a publish
    /// finds what the lost call created and answers `created: false`).
    pub async fn recover_in_flight(&mut self, now: DateTime<Utc>) -> Result<usize, DriveError> {
        let mut resolved = 0;
        for action in self.store.pending_actions()? {
            let Some(plane) = Plane::named(&action.plane) else {
                continue; // evidence records: found on the branch tip
            };
            if action.state != ActionState::Sent {
                continue; // planned only: never sent, nothing to resolve
            }
            let correlation_id = action
                .request
                .get("correlation_id")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| correlation_id_for(&action.intent_id));
            let planes = self.planes;
            let Some(connector) = planes.connector(plane) else {
                continue;
            };
            let call = connector.verify_idempotency(&correlation_id, now);
            let found = match self
                .plane_breakers
                .call(plane, "verify_idempotency", now, call)
                .await
            {
                Ok(found) => found,
                Err(error) => {
                    tracing::warn!(key = %action.key, %error, "cannot ask the plane about an action in flight; its retry will");
                    continue;
                }
            };
            resolved += 1;
            tracing::info!(key = %action.key, found, "in-flight action resolved with the plane");
            if self.store.get_intent(&action.intent_id)?.is_some() {
                self.event(
                    &action.intent_id,
                    (EventType::OperatorAction, EventOutcome::Info),
                    ACTOR,
                    Some(action.ring.clone()),
                    json!({"kind": "in_flight_resolved", "journal_key": action.key,
                           "action": action.action, "found_on_plane": found,
                           "next": "completed by re-sending the same idempotent request"}),
                    now,
                )?;
            }
        }
        Ok(resolved)
    }
}

/// Pushes the evidence branch through the remote's circuit breaker: while
/// it is open nothing is sent ([`crate::evidence::EvidenceError::Unavailable`]);
/// a push that fails for the remote's sake (not a rejected fast-forward)
/// counts towards opening it. Records the commit pushed in `push`.
pub fn push_evidence(
    evidence: &EvidenceBranch,
    signer: &SigningKey,
    store: &mut Store,
    push: &mut EvidencePush,
    remote: &str,
    now: DateTime<Utc>,
) -> Result<(), crate::evidence::EvidenceError> {
    use crate::evidence::EvidenceError;
    if let Err(refused) = push.breaker.admit(now) {
        return Err(EvidenceError::Unavailable {
            remote: remote.to_owned(),
            detail: refused.to_string(),
        });
    }
    let result = push_evidence_now(evidence, signer, store, remote, now);
    match &result {
        Ok(pushed) => {
            push.breaker.record_success();
            push.pushed_tip = Some(pushed.clone());
        }
        Err(EvidenceError::PushRejected { .. } | EvidenceError::Rewritten { .. }) => {
            push.breaker.record_success()
        }
        Err(error) => {
            push.breaker
                .record_failure(now, error.to_string(), None, rand::random::<f64>());
        }
    }
    crate::metrics::runtime::breaker("evidence_push", &push.breaker);
    result.map(drop)
}

/// Pushes the evidence branch fast-forward only. When the remote moved
/// (another writer), fetches, replays our records on top of the remote's —
/// re-signed, new sequence numbers — and pushes again. Never forces. Returns
/// the commit pushed.
fn push_evidence_now(
    evidence: &EvidenceBranch,
    signer: &SigningKey,
    store: &mut Store,
    remote: &str,
    now: DateTime<Utc>,
) -> Result<String, crate::evidence::EvidenceError> {
    use crate::evidence::{EvidenceError, FetchOutcome};
    for _attempt in 0..3 {
        match evidence.push(remote) {
            Ok(report) => return Ok(report.commit),
            Err(EvidenceError::PushRejected { .. }) => {}
            Err(error) => return Err(error),
        }
        match evidence.fetch(remote)? {
            FetchOutcome::Diverged {
                remote: remote_tip, ..
            } => {
                let replayed = evidence.replay_onto(&remote_tip, signer)?;
                if let Some(last) = replayed.last()
                    && let Err(error) =
                        store.set_evidence_head(last.sequence, &last.pack_sha256, &last.commit, now)
                {
                    tracing::warn!(%error, "could not record the replayed evidence head");
                }
            }
            FetchOutcome::LocalAhead { .. }
            | FetchOutcome::UpToDate { .. }
            | FetchOutcome::FastForwarded { .. }
            | FetchOutcome::RemoteHasNoBranch => {}
        }
    }
    evidence.push(remote).map(|report| report.commit)
}
