//! The runtime state of one intent's rollout: its phase, its plan, each ring's
//! progress, retry bookkeeping and the policy verdict it runs under.
//!
//! An [`IntentRun`] is plain data (serde both ways): the daemon stores it as
//! JSON next to the intent and hands it to [`step`](super::step) with each
//! event. Nothing here reads a clock or does I/O.

use super::backoff::BackoffPolicy;
use super::freeze::ActiveFreeze;
use super::gates::{GateResult, ObservedStatus};
use super::plan::{RolloutPlan, Shared};
use crate::model::{ApprovalCondition, DeploymentIntent};
use crate::policy::Decision;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::{Arc, Mutex};

/// The actor of everything the machine does on its own.
pub const MACHINE_ACTOR: &str = "ringmaster";

/// What a ring waits for before it may start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Requirement {
    /// REQUIRE_APPROVAL: CAB approval, for the CAB ring and after.
    CabApproval,
    /// REQUIRE_EXCEPTION: a security exception, for any ring.
    Exception,
    /// No verdict that allows a rollout (not evaluated, or denied).
    PolicyVerdict,
    /// Denied only because another change of the application is in flight
    /// in the same rings: blocked until it ends, then judged again.
    ActiveChange,
}

/// The steps of starting a ring, in order. Evidence first: `Publishing` is
/// only ever entered when the ring's start record is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartStage {
    /// `ClaimRing` sent; waiting for `RingClaimed` / `RingBusy`.
    Claiming,
    /// `RecordEvidence` sent for the start record; waiting for its commit.
    RecordingEvidence,
    /// The record is committed; `Publish` sent, waiting for the plane.
    Publishing,
}

/// Why a run is held: what a human is asked to look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldCause {
    /// An operator held it.
    Operator,
    /// A gate stayed inconclusive after its soak (too few reporting devices).
    GateInconclusive,
    /// A CAB condition holds the rollout at a ring until someone resumes.
    CabCondition,
    /// The ring's start record could not be committed within the retry budget.
    EvidenceUnavailable,
    /// Another intent kept the ring beyond the retry budget.
    RingBusy,
    /// This version was rolled back elsewhere; it clears by itself when that
    /// run is superseded.
    VersionBlocked,
    /// The plane has no connector; the daemon resumes the run once one is
    /// configured.
    PlaneUnavailable,
    /// An open incident of the application in the ring, and the gates say to
    /// hold on one (`on_incident: hold`).
    OpenIncident,
}

/// Where a run is. `RiskAssessed` is passed through within one `Evaluated`
/// event (the verdict carries risk and scope together) and shows in the audit
/// log; every other phase can be stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// Known, not evaluated yet.
    Pending,
    /// Risk scored (transient, see above).
    RiskAssessed,
    /// Policy allows at least part of the rollout; no CAB approval counted.
    ScopeValidated,
    /// The next ring needs an approval or exception the verdict lacks.
    AwaitingApproval {
        ring: String,
        requirement: Requirement,
    },
    /// The CAB approved: rings may start up to the end.
    CabApproved,
    /// The ring is being claimed, recorded and published.
    RingStarting { ring: String, stage: StartStage },
    /// The plane took the assignment; the ring soaks until its gate is judged.
    RingInProgress { ring: String },
    /// The ring passed its gate; the next one has not started.
    RingCompleted { ring: String },
    /// A change freeze stops `ring` from starting until `until`.
    Paused {
        freeze: String,
        ring: String,
        until: DateTime<Utc>,
    },
    /// A human must act; `resume_to` is where `OperatorResume` goes back to.
    Held {
        reason: String,
        by: String,
        cause: HoldCause,
        resume_to: Box<Phase>,
    },
    /// A rollback was sent to the plane; waiting for its result.
    RollingBack { reason: String },
    /// Every ring passed. Terminal.
    Completed,
    /// Stopped for good: denied, a plane refused, a halt, a failed rollback.
    Failed { reason: String },
    /// Rolled back; the version stays blocked until superseded. Terminal.
    RolledBack { reason: String },
    /// A newer intent took over. Terminal.
    Superseded { by_intent: String },
}

impl Phase {
    /// The phase's name, as in its serialised tag (the store's `state` column).
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Pending => "pending",
            Phase::RiskAssessed => "risk_assessed",
            Phase::ScopeValidated => "scope_validated",
            Phase::AwaitingApproval {
                requirement: Requirement::ActiveChange,
                ..
            } => "blocked",
            Phase::AwaitingApproval { .. } => "awaiting_approval",
            Phase::CabApproved => "cab_approved",
            Phase::RingStarting { .. } => "ring_starting",
            Phase::RingInProgress { .. } => "ring_in_progress",
            Phase::RingCompleted { .. } => "ring_completed",
            Phase::Paused { .. } => "paused",
            Phase::Held { .. } => "held",
            Phase::RollingBack { .. } => "rolling_back",
            Phase::Completed => "completed",
            Phase::Failed { .. } => "failed",
            Phase::RolledBack { .. } => "rolled_back",
            Phase::Superseded { .. } => "superseded",
        }
    }

    /// No event moves the run on by itself any more (an operator may still
    /// roll back a completed or failed run).
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Phase::Completed
                | Phase::Failed { .. }
                | Phase::RolledBack { .. }
                | Phase::Superseded { .. }
        )
    }
}

/// One ring's progress.
///
/// Every planned ring of every run has one from the run's start (50,000 at
/// issue 17's 10,000 intents), while a ring has figures only once it starts,
/// and few rings start at a time: those live in one box ([`RingStart`]),
/// none for a ring that has not started, read through the methods named
/// after them. The ring's name is one allocation shared by every run
/// ([`ring_name`]). Stored with the same fields as ever, in the same order
/// ([`StoredProgress`]).
#[derive(Debug, Clone)]
pub struct RingProgress {
    pub ring: Arc<str>,
    /// A `Publish` was sent: the ring may be live on the plane, so a rollback
    /// must cover it.
    pub publish_requested: bool,
    /// An operator resumed past this ring's CAB hold.
    pub cab_hold_released: bool,
    /// What the ring's start recorded; `None` until any of it is set.
    start: Option<Box<RingStart>>,
}

/// The figures of a ring that started (or is starting).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RingStart {
    /// The committed start record; set before the ring is ever published.
    pub start_transition_id: Option<Box<str>>,
    /// The plane's id of the assignment.
    pub external_id: Option<Box<str>>,
    /// When the plane confirmed the publish: the soak starts here.
    pub started_at: Option<DateTime<Utc>>,
    pub observed: Option<Box<ObservedStatus>>,
    pub observed_at: Option<DateTime<Utc>>,
    /// The latest gate judgement.
    pub gate: Option<Box<GateResult>>,
    pub completed_at: Option<DateTime<Utc>>,
    /// The freeze this ring started inside, under an emergency override.
    pub freeze_override: Option<Box<ActiveFreeze>>,
}

impl RingStart {
    fn is_empty(&self) -> bool {
        *self == RingStart::default()
    }
}

impl RingProgress {
    fn new(ring: &str) -> RingProgress {
        RingProgress {
            ring: ring_name(ring),
            publish_requested: false,
            cab_hold_released: false,
            start: None,
        }
    }

    /// The figures of the ring's start, to set (made when first set).
    pub fn start_mut(&mut self) -> &mut RingStart {
        self.start.get_or_insert_with(Box::default)
    }

    /// The figures of the ring's start, `None` before any is set.
    pub fn start(&self) -> Option<&RingStart> {
        self.start.as_deref().filter(|start| !start.is_empty())
    }

    /// The committed start record; set before the ring is ever published.
    pub fn start_transition_id(&self) -> Option<&str> {
        self.start.as_ref()?.start_transition_id.as_deref()
    }

    /// The plane's id of the assignment.
    pub fn external_id(&self) -> Option<&str> {
        self.start.as_ref()?.external_id.as_deref()
    }

    /// When the plane confirmed the publish: the soak starts here.
    pub fn started_at(&self) -> Option<DateTime<Utc>> {
        self.start.as_ref()?.started_at
    }

    pub fn observed(&self) -> Option<&ObservedStatus> {
        self.start.as_ref()?.observed.as_deref()
    }

    pub fn observed_at(&self) -> Option<DateTime<Utc>> {
        self.start.as_ref()?.observed_at
    }

    /// The latest gate judgement.
    pub fn gate(&self) -> Option<&GateResult> {
        self.start.as_ref()?.gate.as_deref()
    }

    pub fn completed_at(&self) -> Option<DateTime<Utc>> {
        self.start.as_ref()?.completed_at
    }

    /// The freeze this ring started inside, under an emergency override.
    pub fn freeze_override(&self) -> Option<&ActiveFreeze> {
        self.start.as_ref()?.freeze_override.as_deref()
    }

    /// Sets (or clears) the freeze override; clearing makes no box.
    pub fn set_freeze_override(&mut self, freeze: Option<ActiveFreeze>) {
        match freeze {
            Some(freeze) => self.start_mut().freeze_override = Some(Box::new(freeze)),
            None => {
                if let Some(start) = self.start.as_mut() {
                    start.freeze_override = None;
                }
            }
        }
    }
}

impl PartialEq for RingProgress {
    /// Equal as stored: a start box with nothing set equals none.
    fn eq(&self, other: &RingProgress) -> bool {
        self.ring == other.ring
            && self.publish_requested == other.publish_requested
            && self.cab_hold_released == other.cab_hold_released
            && self.start() == other.start()
    }
}

/// A [`RingProgress`] as stored: every field, in the order it always had.
#[derive(Serialize, Deserialize)]
#[serde(rename = "RingProgress")]
struct StoredProgress<Text, Figure, Gate, Freeze> {
    ring: Text,
    start_transition_id: Option<Text>,
    publish_requested: bool,
    external_id: Option<Text>,
    started_at: Option<DateTime<Utc>>,
    observed: Option<Figure>,
    observed_at: Option<DateTime<Utc>>,
    gate: Option<Gate>,
    completed_at: Option<DateTime<Utc>>,
    cab_hold_released: bool,
    freeze_override: Option<Freeze>,
}

impl Serialize for RingProgress {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        StoredProgress {
            ring: &*self.ring,
            start_transition_id: self.start_transition_id(),
            publish_requested: self.publish_requested,
            external_id: self.external_id(),
            started_at: self.started_at(),
            observed: self.observed(),
            observed_at: self.observed_at(),
            gate: self.gate(),
            completed_at: self.completed_at(),
            cab_hold_released: self.cab_hold_released,
            freeze_override: self.freeze_override(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RingProgress {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let stored = StoredProgress::<
            std::borrow::Cow<'de, str>,
            Box<ObservedStatus>,
            Box<GateResult>,
            Box<ActiveFreeze>,
        >::deserialize(deserializer)?;
        let start = RingStart {
            start_transition_id: stored.start_transition_id.map(|id| id.into()),
            external_id: stored.external_id.map(|id| id.into()),
            started_at: stored.started_at,
            observed: stored.observed,
            observed_at: stored.observed_at,
            gate: stored.gate,
            completed_at: stored.completed_at,
            freeze_override: stored.freeze_override,
        };
        Ok(RingProgress {
            ring: ring_name(&stored.ring),
            publish_requested: stored.publish_requested,
            cab_hold_released: stored.cab_hold_released,
            start: (!start.is_empty()).then(|| Box::new(start)),
        })
    }
}

/// Ring names kept by [`ring_name`]: a tenant has a handful of rings.
const RING_NAMES_KEPT: usize = 64;

/// `name` as the one allocation every run's progress of that ring shares
/// (10,000 runs held 50,000 copies of five names, issue 17). A cache, not
/// state: the value is the name either way.
pub fn ring_name(name: &str) -> Arc<str> {
    static KEPT: Mutex<Vec<Arc<str>>> = Mutex::new(Vec::new());
    let mut kept = KEPT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(known) = kept.iter().find(|known| ***known == *name) {
        return Arc::clone(known);
    }
    let name: Arc<str> = Arc::from(name);
    if kept.len() < RING_NAMES_KEPT {
        kept.push(Arc::clone(&name));
    }
    name
}

/// Retries of the current start stage (claim, evidence or publish).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RetryState {
    /// Failed attempts so far.
    pub attempts: u32,
    /// When to try again; `None` while an attempt is out (or none is due).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When the attempt now out was sent; `None` when none is out.
    pub last_attempt_at: Option<DateTime<Utc>>,
}

/// The evidence record a ring start waits for, kept to re-send it verbatim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingRecord {
    pub transition_id: String,
    pub ring: String,
    pub record_type: String,
    /// Held as text: every run keeps its start record through the publish,
    /// and 10,000 runs held theirs as JSON trees (issue 17).
    pub summary: CompactJson,
    /// `EvidenceCommitted` arrived for it: the ring may be published.
    pub committed: bool,
}

/// A JSON value held as its compact text, serialized and deserialized as
/// the value itself (the stored shape is the value's, not a string).
///
/// A `serde_json::Value` object costs several times its text (a map node,
/// a key `String` and a 32-byte `Value` per member): a ring-start summary of
/// about 650 bytes of text took about 3 KiB as a tree, once per run (issue
/// 17). The text is `serde_json`'s compact form of the value; objects are
/// sorted maps, so equal values have equal text and comparing the text
/// compares the values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactJson(Box<str>);

impl CompactJson {
    /// The compact text of `value`.
    pub fn of(value: &Value) -> CompactJson {
        CompactJson(value.to_string().into_boxed_str())
    }

    /// The value again (`null` for text that is not JSON, which `of` never
    /// makes).
    pub fn to_value(&self) -> Value {
        serde_json::from_str(&self.0).unwrap_or(Value::Null)
    }

    /// The compact text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the compact text of `value`.
    pub fn holds(&self, value: &Value) -> bool {
        *self == CompactJson::of(value)
    }
}

impl Serialize for CompactJson {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for CompactJson {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(|value| CompactJson::of(&value))
    }
}

/// An intent's rollout, as stored between events.
#[derive(Debug, Clone, PartialEq)]
pub struct IntentRun {
    pub intent_id: String,
    /// 1 for the intent id's first run; a revision with a new version under
    /// the same id starts the next generation, whose plane correlation id,
    /// journal keys and evidence ids cannot collide with the earlier run's.
    pub generation: u32,
    pub application_id: String,
    pub version: String,
    pub phase: Phase,
    /// Shared with the runs of the same plan ([`PlanShares`](super::PlanShares)).
    pub plan: Shared<RolloutPlan>,
    /// One entry per planned ring, same order.
    pub rings: Vec<RingProgress>,
    /// The latest policy verdict; `None` until evaluated.
    pub decision: Option<Decision>,
    pub risk_score: Option<u8>,
    /// A counted approval lets rings start inside change freezes.
    pub emergency_override: bool,
    pub retry: RetryState,
    /// The start record of the ring being started (evidence first).
    pub start_record: Option<PendingRecord>,
    /// Sequence of this run's evidence records (part of each transition id).
    pub transitions_recorded: u32,
    /// Rings this run holds in the store, released when it ends.
    pub claimed_rings: Vec<String>,
    /// This run rolled its version back (or failed a gate): the version is
    /// blocked until a newer intent supersedes this one.
    pub blocks_version: bool,
    /// The default policy is one allocation every run shares.
    pub backoff: Shared<BackoffPolicy>,
    /// Approvals, conditions, waits and blocks: mostly none, read through
    /// the methods named after them; `None` while all are empty (every
    /// setter keeps it so, and equality relies on it).
    seldom: Option<Box<Seldom>>,
}

/// What few runs have (10,000 runs held five empty fields each, issue 17).
#[derive(Debug, Clone, Default, PartialEq)]
struct Seldom {
    counted_approvals: Vec<String>,
    conditions: Vec<ApprovalCondition>,
    version_blocked_by: Option<String>,
    superseded_by: Option<String>,
    waits_on: Vec<String>,
}

impl Seldom {
    fn is_empty(&self) -> bool {
        let Seldom {
            counted_approvals,
            conditions,
            version_blocked_by,
            superseded_by,
            waits_on,
        } = self;
        counted_approvals.is_empty()
            && conditions.is_empty()
            && version_blocked_by.is_none()
            && superseded_by.is_none()
            && waits_on.is_empty()
    }

    fn boxed(self) -> Option<Box<Seldom>> {
        (!self.is_empty()).then(|| Box::new(self))
    }
}

/// An [`IntentRun`] as stored: every field in the order it always had.
#[derive(Serialize)]
#[serde(rename = "IntentRun")]
struct StoredRunRef<'a> {
    intent_id: &'a str,
    generation: u32,
    application_id: &'a str,
    version: &'a str,
    phase: &'a Phase,
    plan: &'a RolloutPlan,
    rings: &'a [RingProgress],
    #[serde(with = "super::decision_wire::optional")]
    decision: Option<Decision>,
    risk_score: Option<u8>,
    counted_approvals: &'a [String],
    conditions: &'a [ApprovalCondition],
    emergency_override: bool,
    retry: &'a RetryState,
    start_record: Option<&'a PendingRecord>,
    transitions_recorded: u32,
    claimed_rings: &'a [String],
    blocks_version: bool,
    version_blocked_by: Option<&'a str>,
    superseded_by: Option<&'a str>,
    backoff: &'a BackoffPolicy,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    waits_on: &'a [String],
}

/// [`StoredRunRef`] read back.
#[derive(Deserialize)]
#[serde(rename = "IntentRun")]
struct StoredRun {
    intent_id: String,
    #[serde(default = "first_generation")]
    generation: u32,
    application_id: String,
    version: String,
    phase: Phase,
    plan: Shared<RolloutPlan>,
    rings: Vec<RingProgress>,
    #[serde(with = "super::decision_wire::optional")]
    decision: Option<Decision>,
    risk_score: Option<u8>,
    counted_approvals: Vec<String>,
    conditions: Vec<ApprovalCondition>,
    emergency_override: bool,
    retry: RetryState,
    start_record: Option<PendingRecord>,
    transitions_recorded: u32,
    claimed_rings: Vec<String>,
    blocks_version: bool,
    version_blocked_by: Option<String>,
    superseded_by: Option<String>,
    #[serde(deserialize_with = "super::backoff::deserialize_shared")]
    backoff: Shared<BackoffPolicy>,
    #[serde(default)]
    waits_on: Vec<String>,
}

impl Serialize for IntentRun {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        StoredRunRef {
            intent_id: &self.intent_id,
            generation: self.generation,
            application_id: &self.application_id,
            version: &self.version,
            phase: &self.phase,
            plan: &self.plan,
            rings: &self.rings,
            decision: self.decision,
            risk_score: self.risk_score,
            counted_approvals: self.counted_approvals(),
            conditions: self.conditions(),
            emergency_override: self.emergency_override,
            retry: &self.retry,
            start_record: self.start_record.as_ref(),
            transitions_recorded: self.transitions_recorded,
            claimed_rings: &self.claimed_rings,
            blocks_version: self.blocks_version,
            version_blocked_by: self.version_blocked_by(),
            superseded_by: self.superseded_by(),
            backoff: &self.backoff,
            waits_on: self.waits_on(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for IntentRun {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let StoredRun {
            intent_id,
            generation,
            application_id,
            version,
            phase,
            plan,
            rings,
            decision,
            risk_score,
            counted_approvals,
            conditions,
            emergency_override,
            retry,
            start_record,
            transitions_recorded,
            claimed_rings,
            blocks_version,
            version_blocked_by,
            superseded_by,
            backoff,
            waits_on,
        } = StoredRun::deserialize(deserializer)?;
        Ok(IntentRun {
            intent_id,
            generation,
            application_id,
            version,
            phase,
            plan,
            rings,
            decision,
            risk_score,
            emergency_override,
            retry,
            start_record,
            transitions_recorded,
            claimed_rings,
            blocks_version,
            backoff,
            seldom: Seldom {
                counted_approvals,
                conditions,
                version_blocked_by,
                superseded_by,
                waits_on,
            }
            .boxed(),
        })
    }
}

fn first_generation() -> u32 {
    1
}

impl IntentRun {
    /// A new run in `Pending`, with the default backoff policy.
    pub fn new(intent: &DeploymentIntent, plan: impl Into<Shared<RolloutPlan>>) -> IntentRun {
        let plan = plan.into();
        let rings = plan
            .rings
            .iter()
            .map(|planned| RingProgress::new(&planned.ring))
            .collect();
        IntentRun {
            intent_id: intent.intent_id.clone(),
            generation: 1,
            application_id: intent.application_id.clone(),
            version: intent.version.clone(),
            phase: Phase::Pending,
            plan,
            rings,
            decision: None,
            risk_score: None,
            emergency_override: false,
            retry: RetryState::default(),
            start_record: None,
            transitions_recorded: 0,
            claimed_rings: Vec::new(),
            blocks_version: false,
            backoff: BackoffPolicy::shared_default(),
            seldom: None,
        }
    }

    fn seldom_mut(&mut self) -> &mut Seldom {
        self.seldom.get_or_insert_with(Box::default)
    }

    /// Drops the box when a change left it empty.
    fn tidy(&mut self) {
        if self.seldom.as_ref().is_some_and(|seldom| seldom.is_empty()) {
            self.seldom = None;
        }
    }

    /// The approvals the latest verdict counted.
    pub fn counted_approvals(&self) -> &[String] {
        self.seldom
            .as_ref()
            .map_or(&[], |seldom| &seldom.counted_approvals)
    }

    /// The CAB conditions of the counted approvals.
    pub fn conditions(&self) -> &[ApprovalCondition] {
        self.seldom
            .as_ref()
            .map_or(&[], |seldom| &seldom.conditions)
    }

    /// Another run blocked this version: rings do not start while set.
    pub fn version_blocked_by(&self) -> Option<&str> {
        self.seldom.as_ref()?.version_blocked_by.as_deref()
    }

    /// The newer intent that took over.
    pub fn superseded_by(&self) -> Option<&str> {
        self.seldom.as_ref()?.superseded_by.as_deref()
    }

    /// The latest verdict is a DENY only because these intents' changes are
    /// in flight: the run waits for them instead of failing.
    pub fn waits_on(&self) -> &[String] {
        self.seldom.as_ref().map_or(&[], |seldom| &seldom.waits_on)
    }

    pub fn set_counted_approvals(&mut self, approvals: Vec<String>) {
        self.seldom_mut().counted_approvals = approvals;
        self.tidy();
    }

    pub fn set_conditions(&mut self, conditions: Vec<ApprovalCondition>) {
        self.seldom_mut().conditions = conditions;
        self.tidy();
    }

    /// Sets (or clears) the run that blocks this version; returns the
    /// one before.
    pub fn set_version_blocked_by(&mut self, by_intent: Option<String>) -> Option<String> {
        let before = std::mem::replace(&mut self.seldom_mut().version_blocked_by, by_intent);
        self.tidy();
        before
    }

    pub fn set_superseded_by(&mut self, by_intent: Option<String>) {
        self.seldom_mut().superseded_by = by_intent;
        self.tidy();
    }

    pub fn set_waits_on(&mut self, intents: Vec<String>) {
        self.seldom_mut().waits_on = intents;
        self.tidy();
    }

    /// The first ring that has not completed.
    pub fn next_ring_index(&self) -> Option<usize> {
        self.rings
            .iter()
            .position(|progress| progress.completed_at().is_none())
    }

    /// Rings that may be live on the plane, in plan order.
    pub fn published_rings(&self) -> Vec<String> {
        self.rings
            .iter()
            .filter(|progress| progress.publish_requested)
            .map(|progress| progress.ring.to_string())
            .collect()
    }

    /// What ring `index` still needs from policy, or `None` if it may start.
    pub fn requirement_for(&self, index: usize) -> Option<Requirement> {
        match self.decision {
            Some(Decision::Allow) => None,
            Some(Decision::RequireApproval) => self
                .plan
                .cab_ring_index
                .is_some_and(|cab_index| index >= cab_index)
                .then_some(Requirement::CabApproval),
            Some(Decision::RequireException) => Some(Requirement::Exception),
            Some(Decision::Deny) if !self.waits_on().is_empty() => Some(Requirement::ActiveChange),
            Some(Decision::Deny) | None => Some(Requirement::PolicyVerdict),
        }
    }

    /// This run blocks its version for others right now.
    pub fn blocks_its_version(&self) -> bool {
        self.blocks_version && self.superseded_by().is_none()
    }
}

/// The intent whose rollback blocks `version` of `application_id`, if any: a
/// run that rolled back (or failed a gate) and has not been superseded.
pub fn is_blocked_version<'a>(
    runs: &'a [IntentRun],
    application_id: &str,
    version: &str,
) -> Option<&'a str> {
    runs.iter()
        .find(|run| {
            run.blocks_its_version()
                && run.application_id == application_id
                && run.version == version
        })
        .map(|run| run.intent_id.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every planned ring of every run has a `RingProgress` (50,000 at
    /// issue 17's scale): the figures of a started ring stay boxed.
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn ring_progress_stays_small() {
        assert!(std::mem::size_of::<RingProgress>() <= 32);
    }

    /// A ring whose start figures were set, then cleared, is the ring that
    /// never had them: equal, and stored the same.
    #[test]
    fn a_cleared_start_is_no_start() {
        let fresh = RingProgress::new("ring-0-lab");
        let mut cleared = RingProgress::new("ring-0-lab");
        cleared.start_mut().started_at = Some(chrono::TimeZone::timestamp_opt(&Utc, 0, 0).unwrap());
        assert_ne!(cleared, fresh);
        cleared.start_mut().started_at = None;
        cleared.set_freeze_override(None);
        assert_eq!(cleared, fresh);
        assert_eq!(
            serde_json::to_value(&cleared).unwrap(),
            serde_json::to_value(&fresh).unwrap()
        );
        // Only the start record committed: stored and read back as such.
        let mut recorded = RingProgress::new("ring-1-canary");
        recorded.start_mut().start_transition_id = Some("a/0001-ring_start".into());
        let stored = serde_json::to_value(&recorded).unwrap();
        assert_eq!(stored["start_transition_id"], "a/0001-ring_start");
        assert_eq!(stored["started_at"], Value::Null);
        let back: RingProgress = serde_json::from_value(stored).unwrap();
        assert_eq!(back, recorded);
        assert_eq!(back.start_transition_id(), Some("a/0001-ring_start"));
        assert!(Arc::ptr_eq(&back.ring, &recorded.ring));
    }

    /// Issue 17 holds 10,000 runs with five rings each through a pass: the
    /// run's inline size counts 10,000 times, a ring's progress 50,000.
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn a_run_stays_small() {
        use std::mem::size_of;
        eprintln!(
            "IntentRun {} RingProgress {} RolloutPlan {} PlannedRing {} Phase {} PendingRecord {} RetryState {}",
            size_of::<IntentRun>(),
            size_of::<RingProgress>(),
            size_of::<RolloutPlan>(),
            size_of::<super::super::PlannedRing>(),
            size_of::<Phase>(),
            size_of::<PendingRecord>(),
            size_of::<RetryState>(),
        );
        assert!(size_of::<RingProgress>() <= 32);
        assert!(size_of::<IntentRun>() <= 480);
    }

    /// The boxed fields are stored as the values they hold.
    #[test]
    fn ring_progress_is_stored_as_before() {
        let stored = json!({
            "ring": "ring-1-canary",
            "start_transition_id": "app-eng/0003-ring_start",
            "publish_requested": true,
            "external_id": "sim-app-1",
            "started_at": "2026-12-01T09:00:00Z",
            "observed": {"targeted": 40, "installed": 31, "failed": 2, "pending": 7,
                         "incidents": 0, "first_install_at": "2026-12-01T10:00:00Z"},
            "observed_at": "2026-12-01T13:00:00Z",
            "gate": {"verdict": "pass", "success_rate": 0.775, "reporting_devices": 33,
                     "targeted_devices": 40, "reporting_fraction": 0.825,
                     "time_to_compliance_hours": 1.0, "soak_complete": true,
                     "reasons": ["success rate 77.5% >= 75%"]},
            "completed_at": "2026-12-01T13:00:00Z",
            "cab_hold_released": false,
            "freeze_override": {"name": "year-end", "started_at": "2026-12-20T00:00:00Z",
                                "ends_at": "2027-01-03T00:00:00Z"},
        });
        let progress: RingProgress = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(progress.observed().unwrap().installed, 31);
        assert_eq!(
            progress.gate().unwrap().verdict,
            super::super::gates::GateVerdict::Pass
        );
        assert_eq!(serde_json::to_value(&progress).unwrap(), stored);
        let fresh = RingProgress::new("ring-0-lab");
        assert_eq!(
            serde_json::to_value(&fresh).unwrap(),
            json!({"ring": "ring-0-lab", "start_transition_id": null, "publish_requested": false,
                   "external_id": null, "started_at": null, "observed": null, "observed_at": null,
                   "gate": null, "completed_at": null, "cab_hold_released": false,
                   "freeze_override": null})
        );
    }
}
