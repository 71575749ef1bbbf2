//! Driving intents through their rings: the effects of the orchestrator's
//! state machine, performed, and their results fed back.
//!
//! Level-triggered, like a Kubernetes controller: every pass reads each
//! intent's stored state — the latest policy verdict (`evaluation`, written
//! by commit processing) and the rollout run (`run`, owned by the state
//! machine) — and feeds the machine whatever changed: a new verdict, a new
//! revision, an operator request, a tick. Each run is saved before its
//! effects are performed by the one performer (`daemon::performer`), which
//! puts every plane call through the idempotency journal and every evidence
//! record through a look-up before it is appended, so a crash anywhere is
//! followed by a pass that finishes the work without repeating it.
//!
//! A ring's start record must also reach the evidence remote before the ring
//! is published: the pass pushes once per round of effects and only then
//! tells the runs their start records are committed.

use super::performer::{PendingRecord, Performer};
use crate::model::ApprovalCondition;
use crate::orchestrator::{
    self, AuditEventType, AuditOutcome, Effect, Event, IntentRun, Phase, PlanShares, RolloutPlan,
};
use crate::store::{EventOutcome, EventType, IntentRecord, correlation_id_for};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};

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
    /// A DENY only because these intents' changes are in flight (one active
    /// change per application and ring, a runtime fact that clears): the
    /// run waits, and the commit is judged again once they end.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waits_on: Vec<String>,
}

/// The rule id of the built-in finding about another intent's change in
/// flight (one active change per application and ring): a runtime fact
/// that clears, unlike `concurrency.one_active_change` (two files that
/// overlap), which stands until the files change.
pub const CHANGE_IN_FLIGHT_RULE: &str = "concurrency.change_in_flight";

/// The intents whose in-flight change is the only cause of a DENY: every
/// deciding DENY reason is the built-in [`CHANGE_IN_FLIGHT_RULE`] finding,
/// and the intent it waits on is the finding's structured `waits_on` field
/// (never read from the message). Empty when the DENY stands on anything
/// else, or when such a finding names no intent.
pub fn runtime_deny_waits_on(outcome: &crate::policy::PolicyOutcome) -> Vec<String> {
    use crate::policy::{Decision, ReasonKind};
    if outcome.decision != Decision::Deny {
        return Vec::new();
    }
    let mut waits_on = Vec::new();
    for reason in outcome
        .reasons
        .iter()
        .filter(|reason| reason.kind == ReasonKind::Deny)
    {
        let runtime = reason.source == "builtin" && reason.rule == CHANGE_IN_FLIGHT_RULE;
        match &reason.waits_on {
            Some(intent) if runtime && !intent.is_empty() => {
                if !waits_on.contains(intent) {
                    waits_on.push(intent.clone());
                }
            }
            _ => return Vec::new(),
        }
    }
    waits_on
}

/// The plane an intent's rollout runs on, and whether it is simulated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaneFacts {
    pub plane: String,
    pub mode: super::planes::PlaneMode,
}

/// What the store's `state_json` holds for an intent.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IntentState {
    #[serde(default)]
    pub evaluation: Option<EvaluationFacts>,
    #[serde(default)]
    pub run: Option<IntentRun>,
    /// Set when the run is saved: what `status` shows as the plane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plane: Option<PlaneFacts>,
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
    /// This replica may not act: its lease on the shared store lapsed or
    /// another replica leads (nothing was sent; the journal resumes it).
    #[error("leadership: {0}")]
    Leadership(#[from] super::lease::LeaseLost),
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

/// One pass over the rollouts: reads the facts, steps the state machine,
/// hands every effect to the performer.
pub struct Driver<'a> {
    pub performer: Performer<'a>,
    /// First pass after a start: resolve what was in flight when the last
    /// process stopped with the planes, then re-send it (every such effect is
    /// idempotent), instead of waiting for the state machine's reply timeout.
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
                summary: record.summary.to_value(),
            }
        }
        StartStage::Publishing => Effect::Publish { ring: ring.clone() },
    })
}

/// JSON an effect carries, held as its compact text while the effect waits
/// in the pass's queue (issue 17: a round queues an effect per run, and the
/// `details` of 10,000 `ring_started` events held as `Value` trees took
/// about 700 bytes each, a map node with room for eleven members), and that
/// text deflated against the first text of its kind ([`Packer`]): 10,000
/// gate judgements or ring records are the same text but for a few ids and
/// figures, and held as text they were still the largest thing in the
/// queue at a pass's peak (11 MB at issue 17's scale).
///
/// Text only when it gives the very value back: the value parsed from the
/// text must serialize to the same text (serde_json's float parsing is best
/// effort without `float_roundtrip`, and the shortest float text is unique
/// per `f64`), so what the store writes and hashes is the same; otherwise
/// the tree is kept. Packed only when it inflates to the very text;
/// otherwise the text is kept.
#[derive(Debug)]
enum HeldJson {
    Text(Box<str>),
    /// The text, deflated ([`Packer::pack`]).
    Packed(Packed),
    Tree(Box<Value>),
    /// Lent: the run's start record holds the same summary
    /// ([`lend_start_summaries`]).
    Lent,
}

impl HeldJson {
    /// `value`, held as compactly as gives it back; `kind` names what it is
    /// (texts of one kind are packed against the same dictionary).
    fn hold(value: Value, kind: Kind<'_>, packer: &mut Packer) -> HeldJson {
        let text = value.to_string();
        // The text of the value parsed back (compared as text: a `Value`
        // compared with a string is a JSON string's comparison).
        let again = serde_json::from_str::<Value>(&text).map(|back| back.to_string());
        if !again.is_ok_and(|again| again == text) {
            return HeldJson::Tree(Box::new(value));
        }
        drop(value);
        match packer.pack(kind, &text) {
            Some(packed) => HeldJson::Packed(packed),
            None => HeldJson::Text(text.into_boxed_str()),
        }
    }

    /// The value held (`null` when lent).
    fn into_value(self, packer: &mut Packer) -> Value {
        match self {
            HeldJson::Text(text) => serde_json::from_str(&text)
                .expect("held as text only when the text parses to the value"),
            HeldJson::Packed(packed) => serde_json::from_slice(packer.unpack(&packed))
                .expect("packed only when it inflates to the text of the value"),
            HeldJson::Tree(value) => *value,
            HeldJson::Lent => Value::Null,
        }
    }

    /// Whether this holds the compact text `text`.
    fn is_text(&self, text: &str, packer: &mut Packer) -> bool {
        match self {
            HeldJson::Text(held) => **held == *text,
            HeldJson::Packed(packed) => {
                packed.len() == text.len() && packer.unpack(packed) == text.as_bytes()
            }
            HeldJson::Tree(_) | HeldJson::Lent => false,
        }
    }
}

/// What a held JSON text is: the texts of a kind are packed against one
/// dictionary.
#[derive(Debug, Clone, Copy)]
enum Kind<'a> {
    /// The summary of an evidence record of this type.
    Record(&'a str),
    /// The details of an event of this type.
    Event(AuditEventType),
}

/// A [`Kind`], kept with its dictionary.
#[derive(Debug)]
enum KindOf {
    Record(Box<str>),
    Event(AuditEventType),
}

impl KindOf {
    fn of(kind: Kind<'_>) -> KindOf {
        match kind {
            Kind::Record(record_type) => KindOf::Record(record_type.into()),
            Kind::Event(event_type) => KindOf::Event(event_type),
        }
    }

    fn is(&self, kind: Kind<'_>) -> bool {
        match (self, kind) {
            (KindOf::Record(kept), Kind::Record(record_type)) => **kept == *record_type,
            (KindOf::Event(kept), Kind::Event(event_type)) => *kept == event_type,
            _ => false,
        }
    }
}

/// A JSON text deflated against its kind's dictionary: the dictionary's
/// index (2 bytes), the text's length (4 bytes), then the raw deflate
/// stream.
#[derive(Debug)]
struct Packed(Box<[u8]>);

impl Packed {
    const HEADER: usize = 6;

    fn dictionary(&self) -> usize {
        usize::from(u16::from_le_bytes([self.0[0], self.0[1]]))
    }

    fn len(&self) -> usize {
        u32::from_le_bytes([self.0[2], self.0[3], self.0[4], self.0[5]]) as usize
    }

    fn stream(&self) -> &[u8] {
        &self.0[Self::HEADER..]
    }
}

/// Deflates the queue's JSON texts, each against a preset dictionary: the
/// first text of its kind, kept for the pass (a few KB in all). One per
/// pass; its deflate state (about 300 KB) is made at the first text.
///
/// At issue 17's scale the texts of a kind differ in a few ids and figures:
/// a ring record's 585 bytes deflate to about 40, an event's details of
/// 423 bytes to about 20.
#[derive(Default)]
struct Packer {
    deflate: Option<zlib_rs::Deflate>,
    inflate: Option<zlib_rs::Inflate>,
    dictionaries: Vec<(KindOf, Box<[u8]>)>,
    /// Room for what one text deflates to, and what it inflates to.
    deflated: Vec<u8>,
    inflated: Vec<u8>,
}

impl Packer {
    /// The deflate level: the texts are short, and most of a text's cost
    /// is setting the dictionary, not searching it.
    const LEVEL: i32 = 6;
    /// A raw deflate stream with a 32 KiB window (no header, no checksum:
    /// the text is checked when it is packed).
    const WINDOW_BITS: u8 = 15;
    /// The longest dictionary deflate uses: its window.
    const MOST_DICTIONARY: usize = 1 << 15;

    /// `text` deflated against its kind's dictionary, when that inflates to
    /// the very text and is shorter; `None` otherwise (the text is held as
    /// it is). The first text of a kind becomes the kind's dictionary.
    fn pack(&mut self, kind: Kind<'_>, text: &str) -> Option<Packed> {
        let dictionary = match self.dictionaries.iter().position(|(k, _)| k.is(kind)) {
            Some(index) => index,
            None => {
                let index = self.dictionaries.len();
                if index > usize::from(u16::MAX) {
                    return None;
                }
                let end = text.len().min(Self::MOST_DICTIONARY);
                self.dictionaries
                    .push((KindOf::of(kind), text.as_bytes()[..end].into()));
                index
            }
        };
        let length = u32::try_from(text.len()).ok()?;
        let deflate = self
            .deflate
            .get_or_insert_with(|| zlib_rs::Deflate::new(Self::LEVEL, false, Self::WINDOW_BITS));
        deflate.reset();
        deflate
            .set_dictionary(&self.dictionaries[dictionary].1)
            .ok()?;
        self.deflated.clear();
        self.deflated
            .resize(Packed::HEADER + zlib_rs::compress_bound(text.len()), 0);
        self.deflated[..2].copy_from_slice(&(dictionary as u16).to_le_bytes());
        self.deflated[2..Packed::HEADER].copy_from_slice(&length.to_le_bytes());
        let status = deflate
            .compress(
                text.as_bytes(),
                &mut self.deflated[Packed::HEADER..],
                zlib_rs::DeflateFlush::Finish,
            )
            .ok()?;
        let end = Packed::HEADER + usize::try_from(deflate.total_out()).ok()?;
        if status != zlib_rs::Status::StreamEnd || end >= text.len() {
            return None;
        }
        let packed = Packed(self.deflated[..end].into());
        // Held packed only when it gives the very text back.
        (self.unpack(&packed) == text.as_bytes()).then_some(packed)
    }

    /// The text `packed` inflates to (empty when it does not inflate in
    /// full to its length, which `pack` never holds).
    fn unpack(&mut self, packed: &Packed) -> &[u8] {
        let length = packed.len();
        self.inflated.clear();
        self.inflated.resize(length, 0);
        let Some((_, dictionary)) = self.dictionaries.get(packed.dictionary()) else {
            return &[];
        };
        let inflate = self
            .inflate
            .get_or_insert_with(|| zlib_rs::Inflate::new(false, Self::WINDOW_BITS));
        inflate.reset(false);
        if inflate.set_dictionary(dictionary).is_err() {
            return &[];
        }
        let done = inflate.decompress(
            packed.stream(),
            &mut self.inflated,
            zlib_rs::InflateFlush::Finish,
        );
        let whole = matches!(done, Ok(zlib_rs::Status::StreamEnd))
            && inflate.total_out() == length as u64
            && inflate.total_in() == packed.stream().len() as u64;
        if whole { &self.inflated } else { &[] }
    }
}

/// An effect waiting in the pass's queue, held compactly (a round queues
/// an effect or two per run: 20,000 at issue 17's scale): its JSON as text
/// ([`HeldJson`]), its strings boxed; the same effect again when it is
/// performed.
#[derive(Debug)]
enum Queued {
    RecordEvidence {
        transition_id: Box<str>,
        record_type: Box<str>,
        summary: HeldJson,
    },
    EmitEvent {
        event_type: AuditEventType,
        outcome: AuditOutcome,
        actor: Box<str>,
        ring: Option<Box<str>>,
        details: HeldJson,
    },
    Ring {
        effect: RingEffect,
        ring: Box<str>,
    },
    WakeAt {
        at: DateTime<Utc>,
    },
    /// A remediation or an alert (few).
    Other(Box<Effect>),
}

/// The effects on one ring that carry nothing but its name.
#[derive(Debug, Clone, Copy)]
enum RingEffect {
    Claim,
    Release,
    Publish,
    QueryStatus,
}

impl Queued {
    fn of(effect: Effect, packer: &mut Packer) -> Queued {
        match effect {
            Effect::RecordEvidence {
                transition_id,
                record_type,
                summary,
            } => Queued::RecordEvidence {
                transition_id: transition_id.into_boxed_str(),
                summary: HeldJson::hold(summary, Kind::Record(&record_type), packer),
                record_type: record_type.into_boxed_str(),
            },
            Effect::EmitEvent {
                event_type,
                outcome,
                actor,
                ring,
                details,
            } => Queued::EmitEvent {
                event_type,
                outcome,
                actor: actor.into_boxed_str(),
                ring: ring.map(String::into_boxed_str),
                details: HeldJson::hold(details, Kind::Event(event_type), packer),
            },
            Effect::ClaimRing { ring } => Queued::ring(RingEffect::Claim, ring),
            Effect::ReleaseRing { ring } => Queued::ring(RingEffect::Release, ring),
            Effect::Publish { ring } => Queued::ring(RingEffect::Publish, ring),
            Effect::QueryStatus { ring } => Queued::ring(RingEffect::QueryStatus, ring),
            Effect::WakeAt { at } => Queued::WakeAt { at },
            other @ (Effect::Remediate { .. } | Effect::Alert { .. }) => {
                Queued::Other(Box::new(other))
            }
        }
    }

    fn ring(effect: RingEffect, ring: String) -> Queued {
        Queued::Ring {
            effect,
            ring: ring.into_boxed_str(),
        }
    }

    /// The effect again (a lent summary is `null`: the round takes it
    /// back from the run).
    fn into_effect(self, packer: &mut Packer) -> Effect {
        match self {
            Queued::RecordEvidence {
                transition_id,
                record_type,
                summary,
            } => Effect::RecordEvidence {
                transition_id: transition_id.into(),
                record_type: record_type.into(),
                summary: summary.into_value(packer),
            },
            Queued::EmitEvent {
                event_type,
                outcome,
                actor,
                ring,
                details,
            } => Effect::EmitEvent {
                event_type,
                outcome,
                actor: actor.into(),
                ring: ring.map(String::from),
                details: details.into_value(packer),
            },
            Queued::Ring { effect, ring } => {
                let ring = String::from(ring);
                match effect {
                    RingEffect::Claim => Effect::ClaimRing { ring },
                    RingEffect::Release => Effect::ReleaseRing { ring },
                    RingEffect::Publish => Effect::Publish { ring },
                    RingEffect::QueryStatus => Effect::QueryStatus { ring },
                }
            }
            Queued::WakeAt { at } => Effect::WakeAt { at },
            Queued::Other(effect) => *effect,
        }
    }
}

/// The evidence records of one round, waiting to be written together.
#[derive(Default)]
struct RecordBatch<'run> {
    records: Vec<PendingRecord<'run>>,
    /// The index in `runs` of each record's run, in the same order.
    indices: Vec<usize>,
    intents: HashSet<usize>,
}

/// Most records one evidence commit of the rollouts carries (as the
/// decisions' batches: it bounds what a batch holds in memory and what a
/// crash leaves to find on the tip).
const RECORD_BATCH: usize = 1_000;

impl<'run> RecordBatch<'run> {
    fn push(&mut self, index: usize, record: PendingRecord<'run>) {
        self.intents.insert(index);
        self.indices.push(index);
        self.records.push(record);
    }

    /// Whether run `index` has a record waiting: its next effect must wait
    /// until it is written.
    fn waits_for(&self, index: usize) -> bool {
        self.intents.contains(&index)
    }

    fn full(&self) -> bool {
        self.records.len() >= RECORD_BATCH
    }

    /// The records, and the index of each one's run.
    fn take(&mut self) -> (Vec<usize>, Vec<PendingRecord<'run>>) {
        self.intents.clear();
        (
            std::mem::take(&mut self.indices),
            std::mem::take(&mut self.records),
        )
    }
}

/// Where each run of a pass is in its `runs`, by intent id.
enum RunIndex {
    /// The runs are in strictly increasing intent id order (as the pass
    /// reads them, from a map by intent id): a binary search, with nothing
    /// held (issue 17: a map held a copy of 10,000 intent ids).
    Sorted,
    Map(BTreeMap<String, usize>),
}

impl RunIndex {
    fn of(runs: &[IntentRun]) -> RunIndex {
        if runs
            .windows(2)
            .all(|pair| pair[0].intent_id < pair[1].intent_id)
        {
            return RunIndex::Sorted;
        }
        RunIndex::Map(
            runs.iter()
                .enumerate()
                .map(|(index, run)| (run.intent_id.clone(), index))
                .collect(),
        )
    }

    /// The index in `runs` (the runs `of` was given) of `intent_id`'s run.
    fn get(&self, runs: &[IntentRun], intent_id: &str) -> Option<usize> {
        match self {
            RunIndex::Sorted => runs
                .binary_search_by(|run| run.intent_id.as_str().cmp(intent_id))
                .ok(),
            RunIndex::Map(map) => map.get(intent_id).copied(),
        }
    }
}

/// The effects of a round that wait for their run's pending record or
/// publish, in the order they were asked for.
#[derive(Default)]
struct Waiting {
    effects: VecDeque<(usize, Queued, bool)>,
    intents: HashSet<usize>,
    /// The waiting effects being taken up again, once what they waited for
    /// was written.
    again: VecDeque<(usize, Queued, bool)>,
}

impl Waiting {
    /// Whether a run has an effect waiting: its later effects wait behind it.
    fn holds(&self, index: usize) -> bool {
        self.intents.contains(&index)
    }

    fn push(&mut self, index: usize, effect: Queued, lent: bool) {
        self.intents.insert(index);
        self.effects.push_back((index, effect, lent));
    }

    fn is_empty(&self) -> bool {
        self.effects.is_empty() && self.again.is_empty()
    }

    /// Takes every waiting effect up again (what they waited for is written).
    fn again(&mut self) {
        debug_assert!(self.again.is_empty());
        self.again = std::mem::take(&mut self.effects);
        self.intents.clear();
    }

    /// The next effect taken up again, if any.
    fn next_again(&mut self) -> Option<(usize, Queued, bool)> {
        self.again.pop_front()
    }
}

/// Most publishes one chunk sends after one commit of their journal
/// entries (bounds what a crash leaves `sent` to ask the plane about).
const PUBLISH_CHUNK: usize = 200;

/// Most runs saved per store transaction (bounds the states held at once:
/// about 4.4 KB of text each at issue 17's scale). The pass's saves are
/// inside its write batch, which commits them together.
const SAVE_BATCH: usize = 100;

/// Intents read per page when a pass starts.
const INTENT_PAGE: usize = 500;

/// Most effects one pass performs before yielding (a guard against a
/// state machine that keeps asking; the next pass continues).
const EFFECT_BUDGET: usize = 100_000;

impl Driver<'_> {
    /// One pass over every intent. Idempotent: a pass with nothing new to
    /// react to performs only the status queries of soaking rings.
    pub async fn drive(&mut self, now: DateTime<Utc>) -> Result<DriveReport, DriveError> {
        // Read a page at a time: the stored JSON of every intent at once is
        // several times the typed states (issue 17).
        let mut states: BTreeMap<String, IntentState> = BTreeMap::new();
        // Every plan of the pass shares its gates and freezes with the
        // others that have the same (issue 17).
        let mut shares = PlanShares::default();
        for page in self.performer.store.intent_pages(INTENT_PAGE) {
            for record in &page? {
                let mut state = IntentState::from_record(record);
                if let Some(run) = state.run.as_mut() {
                    shares.share(&mut run.plan);
                }
                states.insert(record.intent_id.clone(), state);
            }
        }
        let mut queue: VecDeque<(String, Event)> = VecDeque::new();
        // The runs to save, by intent id until `runs` is built.
        let mut dirty_ids: BTreeSet<String> = BTreeSet::new();
        // What was in flight when the last process stopped: only a run
        // stored mid-start (not one this pass starts) is re-sent.
        let stored_in_flight: HashSet<String> = if self.recover {
            states
                .iter()
                .filter(|(_, state)| {
                    state
                        .run
                        .as_ref()
                        .is_some_and(|run| in_flight(run).is_some())
                })
                .map(|(intent_id, _)| intent_id.clone())
                .collect()
        } else {
            HashSet::new()
        };

        // New verdicts and revisions.
        for (intent_id, state) in states.iter_mut() {
            let Some(evaluation) = state.evaluation.clone() else {
                continue;
            };
            let Some(intent) = self.performer.snapshot.intents.get(intent_id) else {
                continue;
            };
            let stale_revision = state
                .run
                .as_ref()
                .is_some_and(|run| run.version != evaluation.version);
            let mut generation = 1;
            if stale_revision {
                // A new version under the same intent id: the old run hands
                // over, and the new one is the next generation (its plane
                // correlation id, journal keys and evidence ids are its own).
                if let Some(old) = state.run.as_mut() {
                    generation = old.generation.saturating_add(1);
                    let effects = orchestrator::step_in_place(
                        old,
                        &Event::Superseded {
                            by_intent: intent_id.clone(),
                        },
                        now,
                    );
                    for effect in effects {
                        self.performer.perform(old, effect, now).await?;
                    }
                }
                state.run = None;
            }
            if state.run.is_none() {
                let config = self.performer.snapshot.config.as_ref().map(|c| &c.value);
                let Some(config) = config else { continue };
                match RolloutPlan::resolve_sharing(
                    intent,
                    config,
                    &evaluation.conditions,
                    &mut shares,
                ) {
                    Ok(plan) => {
                        let mut run = IntentRun::new(intent, plan);
                        run.generation = generation;
                        state.run = Some(run);
                        dirty_ids.insert(intent_id.clone());
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
            if decision_changed
                || run.counted_approvals() != evaluation.counted_approvals
                || run.waits_on() != evaluation.waits_on
            {
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
                        waits_on: evaluation.waits_on.clone(),
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
        for request in self.performer.store.pending_operator_requests()? {
            // Who asked, as evidence will show it: an API caller's principal,
            // how it authenticated and the request id; a local CLI actor is
            // marked self-declared (whoever can write the state directory).
            let origin = crate::api::RequestOrigin::of_operator_request(&request);
            let actor = origin.evidence_label();
            let event = match request.action.as_str() {
                "hold" => Event::OperatorHold {
                    reason: request.reason.clone(),
                    actor: actor.clone(),
                },
                "resume" => Event::OperatorResume {
                    actor: actor.clone(),
                },
                _ => Event::OperatorRollback {
                    reason: request.reason.clone(),
                    actor: actor.clone(),
                },
            };
            if states
                .get(&request.intent_id)
                .is_some_and(|s| s.run.is_some())
            {
                queue.push_back((request.intent_id.clone(), event));
            }
            self.performer.store.append_event(crate::store::NewEvent {
                correlation_id: origin
                    .request_id()
                    .map(str::to_owned)
                    .unwrap_or_else(|| correlation_id_for(&request.intent_id)),
                intent_id: Some(request.intent_id.clone()),
                event_type: EventType::OperatorAction,
                timestamp: now,
                actor: origin.actor(),
                actor_role: origin.role(),
                execution_plane: None,
                ring: None,
                outcome: EventOutcome::Info,
                details: json!({"action": request.action, "reason": request.reason, "request_id": request.request_id, "stage": "handled", "origin": origin.to_json()}),
            })?;
            self.performer.siem.emit(&json!({"type": "operator_action", "intent_id": request.intent_id, "action": request.action, "actor": origin.actor(), "actor_role": origin.role(), "reason": request.reason, "origin": origin.to_json(), "at": now}));
            self.performer
                .store
                .mark_operator_request_handled(request.request_id, now)?;
        }

        // A run held because its plane had no connector goes on once it has one.
        for (intent_id, state) in &states {
            let Some(run) = &state.run else { continue };
            let Phase::Held {
                cause: orchestrator::HoldCause::PlaneUnavailable,
                ..
            } = &run.phase
            else {
                continue;
            };
            let snapshot = self.performer.snapshot;
            let configured = snapshot
                .intents
                .get(intent_id)
                .and_then(|intent| self.performer.plane_of(intent))
                .is_some_and(|plane| self.performer.planes.connector(plane).is_some());
            if configured {
                queue.push_back((
                    intent_id.clone(),
                    Event::OperatorResume {
                        actor: orchestrator::MACHINE_ACTOR.into(),
                    },
                ));
            }
        }

        // The tick: every non-terminal run looks at the clock.
        // Room for exactly the runs (collected from a filter, the `Vec`
        // would grow by doubling: 16,384 runs' room for 10,000, issue 17).
        let mut runs: Vec<IntentRun> =
            Vec::with_capacity(states.values().filter(|s| s.run.is_some()).count());
        runs.extend(states.values_mut().filter_map(|s| s.run.take()));
        drop(states);
        // Each queued effect with its run's index in `runs`, its JSON packed
        // against the first of its kind (`Packer`, for the pass).
        let mut work: VecDeque<(usize, Queued)> = VecDeque::new();
        let mut packer = Packer::default();
        // Queued events first, so a fresh verdict is seen before the tick.
        let by_id = RunIndex::of(&runs);
        // The runs to save, by their index in `runs`.
        let mut dirty: Vec<bool> = runs
            .iter()
            .map(|run| dirty_ids.contains(&run.intent_id))
            .collect();
        drop(dirty_ids);
        while let Some((intent_id, event)) = queue.pop_front() {
            if let Some(index) = by_id.get(&runs, &intent_id) {
                for effect in orchestrator::step_in_place(&mut runs[index], &event, now) {
                    work.push_back((index, Queued::of(effect, &mut packer)));
                }
                dirty[index] = true;
            }
        }
        // Drained: its room (an event per intent, 10,000 at issue 17's
        // scale) is not held through the rounds.
        drop(queue);
        if self.recover {
            self.performer.recover_in_flight(now).await?;
            for (index, run) in runs
                .iter()
                .enumerate()
                .filter(|(_, run)| stored_in_flight.contains(&run.intent_id))
            {
                if let Some(effect) = in_flight(run) {
                    tracing::info!(intent = %run.intent_id, effect = effect.name(), "re-sending what was in flight before the restart");
                    work.push_back((index, Queued::of(effect, &mut packer)));
                }
            }
        }
        for (intent_id, effect) in orchestrator::pass(&mut runs, now) {
            // Every effect of the pass is of one of `runs`.
            if let Some(index) = by_id.get(&runs, &intent_id) {
                work.push_back((index, Queued::of(effect, &mut packer)));
                dirty[index] = true;
            }
        }
        let mut report = DriveReport::default();
        // The rounds' store writes (run states, ring claims, journal
        // entries, events) share commits: the performer makes them durable
        // before every plane call, evidence append and message out
        // (`Performer::durable`), so what guards an action is committed
        // before it, and a crash anywhere leaves a state the store had.
        self.performer.store.begin_batch()?;
        let performed = async {
            while !work.is_empty() && report.effects_performed < EFFECT_BUDGET {
                // Save every run before performing the effects it asked for.
                self.save(&runs, &mut dirty, now)?;
                // A queued ring-start record is a copy of the start record
                // its run holds; until the round's results the runs do not
                // change, so the queue lends the run's copy instead of
                // holding a second one per run. `lent[i]`: the i-th effect
                // popped this round (nothing is queued until the round
                // ends) was emptied.
                let lent = lend_start_summaries(&mut work, &runs, &mut packer);
                let mut popped = 0usize;
                // Each event with its run's index in `runs`.
                let mut results: Vec<(usize, Event)> = Vec::new();
                // The evidence records this round asks for, written as one
                // batch (one commit, one fsync); a run's later effects wait for
                // its record (a record comes before its transition's effects).
                let mut records = RecordBatch::default();
                // The publishes this round asks for, sent in chunks (one
                // commit of their journal entries per chunk): a run's later
                // effects wait for its publish.
                let mut publishes: Vec<(usize, String)> = Vec::new();
                // A run's effects after its pending record or publish wait
                // here, in order, instead of writing the batch early: the
                // round's records go out in full batches (every run's
                // `ring_completed` record is followed by its event and next
                // claim), and the waiting effects follow once the batch is
                // written. Each run's own effects keep their order; runs do
                // not change within a round, so what a waiting effect is
                // performed on is the same.
                let mut waiting = Waiting::default();
                loop {
                    let (index, effect, lent_here) = if let Some(item) = waiting.next_again() {
                        item
                    } else if let Some((index, effect)) = work.pop_front() {
                        let position = popped;
                        popped += 1;
                        // A round can queue an effect per run (10,000 at
                        // issue 17's scale); give the room back as the
                        // queue drains rather than holding it through
                        // the plane calls.
                        if work.capacity() > 1024 && work.len() < work.capacity() / 4 {
                            work.shrink_to_fit();
                        }
                        report.effects_performed += 1;
                        let lent_here = lent.get(position).copied().unwrap_or(false);
                        (index, effect, lent_here)
                    } else if waiting.is_empty() {
                        break;
                    } else {
                        // Everything else of the round is done: write
                        // what the waiting effects wait for, then take
                        // them up again.
                        self.write_records(&mut records, &mut results, now)?;
                        self.publish_chunk(&runs, &mut publishes, &mut results, now)
                            .await?;
                        waiting.again();
                        continue;
                    };
                    if let Queued::WakeAt { at } = &effect {
                        report.next_wake =
                            Some(report.next_wake.map_or(*at, |w: DateTime<Utc>| w.min(*at)));
                        continue;
                    }
                    if waiting.holds(index)
                        || records.waits_for(index)
                        || publishes.iter().any(|(waiting, _)| *waiting == index)
                    {
                        waiting.push(index, effect, lent_here);
                        continue;
                    }
                    let effect = effect.into_effect(&mut packer);
                    if let Effect::Publish { ring } = effect {
                        publishes.push((index, ring));
                        if publishes.len() >= PUBLISH_CHUNK {
                            self.publish_chunk(&runs, &mut publishes, &mut results, now)
                                .await?;
                        }
                        continue;
                    }
                    if let Effect::RecordEvidence {
                        transition_id,
                        record_type,
                        summary,
                    } = effect
                    {
                        let summary = if lent_here {
                            // Given back: the run still holds the very
                            // record (`lend_start_summaries` checked it, and
                            // runs do not change within a round).
                            runs[index]
                                .start_record
                                .as_ref()
                                .filter(|record| record.transition_id == transition_id)
                                .map(|record| record.summary.to_value())
                                .expect("a lent start record stays on its run within a round")
                        } else {
                            summary
                        };
                        records.push(
                            index,
                            PendingRecord::of(&runs[index], transition_id, record_type, summary),
                        );
                        if records.full() {
                            self.write_records(&mut records, &mut results, now)?;
                        }
                        continue;
                    }
                    let events = {
                        let run = runs[index].clone();
                        self.performer.perform(&run, effect, now).await?
                    };
                    results.extend(events.into_iter().map(|e| (index, e)));
                }
                self.write_records(&mut records, &mut results, now)?;
                self.publish_chunk(&runs, &mut publishes, &mut results, now)
                    .await?;
                self.push_start_records(&runs, &mut results, now)?;
                for (index, event) in results {
                    for effect in orchestrator::step_in_place(&mut runs[index], &event, now) {
                        work.push_back((index, Queued::of(effect, &mut packer)));
                    }
                    dirty[index] = true;
                }
            }
            self.save(&runs, &mut dirty, now)?;
            Ok::<(), DriveError>(())
        }
        .await;
        // Fenced or deposed: nothing more of this pass is stored (its last
        // commit stands, as after a crash); otherwise what it wrote is.
        let fenced = matches!(&performed, Err(DriveError::Leadership(_)))
            || matches!(&performed, Err(DriveError::Store(error)) if matches!(**error, crate::store::StoreError::Fenced { .. }));
        let ended = self.performer.store.end_batch(!fenced);
        performed?;
        ended?;
        Ok(report)
    }

    /// Sends the chunk of publishes ([`Performer::publish_chunk`]) and adds
    /// their outcomes to `results`.
    async fn publish_chunk(
        &mut self,
        runs: &[IntentRun],
        publishes: &mut Vec<(usize, String)>,
        results: &mut Vec<(usize, Event)>,
        now: DateTime<Utc>,
    ) -> Result<(), DriveError> {
        if publishes.is_empty() {
            return Ok(());
        }
        let (indices, items): (Vec<usize>, Vec<(&IntentRun, String)>) = publishes
            .drain(..)
            .map(|(index, ring)| (index, (&runs[index], ring)))
            .unzip();
        let outcomes = self.performer.publish_chunk(&items, now).await?;
        for (index, events) in indices.into_iter().zip(outcomes) {
            results.extend(events.into_iter().map(|event| (index, event)));
        }
        Ok(())
    }

    /// Writes the batched records ([`Performer::record_evidence_batch`])
    /// and adds their outcomes to `results`.
    fn write_records(
        &mut self,
        records: &mut RecordBatch<'_>,
        results: &mut Vec<(usize, Event)>,
        now: DateTime<Utc>,
    ) -> Result<(), DriveError> {
        let (indices, pending) = records.take();
        if pending.is_empty() {
            return Ok(());
        }
        let ids: Vec<(usize, String)> = indices
            .into_iter()
            .zip(&pending)
            .map(|(index, record)| (index, record.transition_id.clone()))
            .collect();
        let outcomes = self.performer.record_evidence_batch(pending, now)?;
        for ((index, transition_id), outcome) in ids.into_iter().zip(outcomes) {
            let event = match outcome {
                Ok(_) => Event::EvidenceCommitted { transition_id },
                Err(error) => Event::EvidenceFailed {
                    transition_id,
                    error,
                },
            };
            results.push((index, event));
        }
        Ok(())
    }

    /// Evidence first, to the remote too: when a round committed ring start
    /// records and an evidence remote is configured, pushes once; if the push
    /// fails the runs hear that their start records failed (they retry with
    /// backoff, then hold) and nothing is published.
    fn push_start_records(
        &mut self,
        runs: &[IntentRun],
        results: &mut [(usize, Event)],
        now: DateTime<Utc>,
    ) -> Result<(), DriveError> {
        let is_start_record = |index: usize, event: &Event| {
            let Event::EvidenceCommitted { transition_id } = event else {
                return false;
            };
            runs[index]
                .start_record
                .as_ref()
                .is_some_and(|record| record.transition_id == *transition_id)
        };
        if !results
            .iter()
            .any(|(index, event)| is_start_record(*index, event))
        {
            return Ok(());
        }
        let Err(reason) = self.performer.ensure_pushed(now) else {
            return Ok(());
        };
        for (index, event) in results.iter_mut() {
            if !is_start_record(*index, event) {
                continue;
            }
            let intent_id = &runs[*index].intent_id;
            let Event::EvidenceCommitted { transition_id } = event else {
                continue;
            };
            let transition_id = transition_id.clone();
            self.performer.event(
                intent_id,
                (EventType::PublishBlocked, EventOutcome::Failure),
                super::process::ACTOR,
                None,
                json!({"kind": "evidence_not_pushed", "reason": reason, "transition_id": transition_id}),
                now,
            )?;
            *event = Event::EvidenceFailed {
                transition_id,
                error: reason.clone(),
            };
        }
        Ok(())
    }

    fn save(
        &mut self,
        runs: &[IntentRun],
        dirty: &mut [bool],
        now: DateTime<Utc>,
    ) -> Result<(), DriveError> {
        // Every changed run in one write transaction (one fsync).
        let count = dirty.iter().filter(|dirty| **dirty).count();
        let mut states = Vec::with_capacity(count.min(SAVE_BATCH));
        for (run, _) in runs.iter().zip(dirty.iter()).filter(|(_, dirty)| **dirty) {
            let Some(record) = self.performer.store.get_intent(&run.intent_id)? else {
                continue;
            };
            let mut state = IntentState::from_record(&record);
            state.run = Some(run.clone());
            let snapshot = self.performer.snapshot;
            if let Some(plane) = snapshot
                .intents
                .get(&run.intent_id)
                .and_then(|intent| self.performer.plane_of(intent))
            {
                state.plane = Some(PlaneFacts {
                    plane: plane.as_str().to_owned(),
                    mode: self.performer.planes.mode(plane),
                });
            }
            // Serialized now (through a value, as the store always wrote
            // it: the same bytes), so the batch holds text, not values.
            let json = serde_json::to_value(&state).unwrap_or(Value::Null);
            let mut text = serde_json::to_string(&json).map_err(crate::store::StoreError::from)?;
            // A batch holds 500 of these (about 4.4 KB of text each at
            // issue 17's scale): not the room the writer grew into.
            text.shrink_to_fit();
            states.push((run.intent_id.clone(), run.phase.name().to_owned(), text));
            if states.len() >= SAVE_BATCH {
                self.performer.store.set_intent_states(&states, now)?;
                states.clear();
            }
        }
        self.performer.store.set_intent_states(&states, now)?;
        dirty.fill(false);
        Ok(())
    }
}

/// Empties the summary of every queued `RecordEvidence` that is its run's
/// start record (the same transition id and the same summary: the state
/// machine queues a clone of the record it keeps) and answers, for each
/// queued effect in queue order, whether it was emptied: the round takes
/// the summary back from the run when it writes the record. Only valid
/// while the runs do not change and nothing is queued, i.e. within one
/// round (issue 17: 10,000 queued ring starts held their summaries twice).
fn lend_start_summaries(
    work: &mut VecDeque<(usize, Queued)>,
    runs: &[IntentRun],
    packer: &mut Packer,
) -> Vec<bool> {
    let mut lent = Vec::with_capacity(work.len());
    for (index, effect) in work.iter_mut() {
        let emptied = match effect {
            Queued::RecordEvidence {
                transition_id,
                summary,
                ..
            } => {
                let held = runs[*index].start_record.as_ref().is_some_and(|record| {
                    record.transition_id.as_str() == &**transition_id
                        && match &*summary {
                            HeldJson::Tree(value) => record.summary.holds(value),
                            // The same compact text (`CompactJson::of` is
                            // the value's `to_string`, as `HeldJson::hold`).
                            held => held.is_text(record.summary.as_str(), packer),
                        }
                });
                if held {
                    *summary = HeldJson::Lent;
                }
                held
            }
            _ => false,
        };
        lent.push(emptied);
    }
    lent
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{PolicyOutcome, Reason, ReasonKind};

    fn deny(rule: &str, source: &str, message: &str, waits_on: Option<&str>) -> Reason {
        Reason {
            rule: rule.into(),
            kind: ReasonKind::Deny,
            message: message.into(),
            source: source.into(),
            waits_on: waits_on.map(str::to_owned),
        }
    }

    /// A waiting record lends its run (issue 17); the summary it builds is
    /// the one it used to hold: the effect's summary with the run's JSON.
    #[test]
    fn a_pending_record_builds_the_summary_with_its_run() {
        let intent = orchestrator::testing::intent(&["ring-0-lab", "ring-1-canary"]);
        let plan = RolloutPlan::resolve(&intent, &orchestrator::testing::config(), &[]).unwrap();
        let run = IntentRun::new(&intent, plan);
        let summary = json!({"ring": "ring-0-lab", "at": "2026-12-01T09:00:00+00:00"});
        let record = PendingRecord::of(
            &run,
            "t/0001-ring_start".into(),
            "ring_started".into(),
            summary.clone(),
        );
        assert_eq!(record.intent_id, run.intent_id);
        let mut expected = summary;
        expected
            .as_object_mut()
            .unwrap()
            .insert("run".into(), json!(run));
        assert!(expected["run"]["plan"]["rings"].is_array());
        assert_eq!(record.into_summary(), expected);
    }

    /// A queued effect is the same effect again when performed, whatever
    /// its JSON holds (issue 17: its JSON waits as text).
    #[test]
    fn a_queued_effect_is_performed_as_it_was_asked_for() {
        let mut floats = vec![
            0.1,
            0.95,
            4.0,
            -0.0,
            1e-7,
            0.1 + 0.2,
            1.0 / 3.0,
            std::f64::consts::PI,
            f64::MAX,
            f64::MIN_POSITIVE,
            f64::EPSILON,
            f64::from_bits(1),
            f64::from_bits(0x000F_FFFF_FFFF_FFFF),
        ];
        // Finite floats of every magnitude, from a fixed sequence of bits.
        let mut bits: u64 = 0x9E37_79B9_7F4A_7C15;
        while floats.len() < 2_000 {
            bits = bits
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let float = f64::from_bits(bits);
            if float.is_finite() {
                floats.push(float);
            }
        }
        let mut values: Vec<Value> = floats.iter().map(|f| json!(f)).collect();
        values.push(json!({"external_id": "sim-1", "soak_hours": 4.0,
                           "start_transition_id": "t/0001-ring_start", "kind": "ring_started",
                           "n": u64::MAX, "m": i64::MIN, "s": "é \" \n \u{1}", "a": [1, 2.5, null, true]}));
        // Deeper than serde_json parses (128 levels): its text does not
        // give it back, so it stays a tree.
        let mut deep = json!(1);
        for _ in 0..200 {
            deep = json!([deep]);
        }
        values.push(deep.clone());
        // One packer for every value, as for a pass: the first text of each
        // kind is the dictionary of the later ones.
        let mut packer = Packer::default();
        let mut trees = 0;
        for value in values {
            let text = value.to_string();
            let held = HeldJson::hold(
                value.clone(),
                Kind::Event(AuditEventType::GateEvaluated),
                &mut packer,
            );
            match &held {
                HeldJson::Text(held) => assert_eq!(**held, *text),
                HeldJson::Packed(packed) => {
                    assert_eq!(packed.len(), text.len());
                    assert_eq!(packer.unpack(packed), text.as_bytes());
                }
                HeldJson::Tree(_) => trees += 1,
                HeldJson::Lent => panic!("lent only by the round"),
            }
            assert_eq!(
                held.is_text(&text, &mut packer),
                !matches!(held, HeldJson::Tree(_))
            );
            let back = held.into_value(&mut packer);
            assert_eq!(back, value);
            assert_eq!(back.to_string(), text, "{text}");
            let effects = [
                Effect::EmitEvent {
                    event_type: AuditEventType::RingStarted,
                    outcome: AuditOutcome::Success,
                    actor: "ringmaster".into(),
                    ring: Some("ring-0-lab".into()),
                    details: json!({"kind": "ring_started", "x": value.clone()}),
                },
                Effect::RecordEvidence {
                    transition_id: "t/0001-ring_start".into(),
                    record_type: "ring_start".into(),
                    summary: json!({"x": value.clone()}),
                },
                Effect::Publish {
                    ring: "ring-0-lab".into(),
                },
                Effect::ClaimRing {
                    ring: "ring-1-canary".into(),
                },
                Effect::ReleaseRing {
                    ring: "ring-2-pilot".into(),
                },
                Effect::QueryStatus {
                    ring: "ring-3".into(),
                },
                Effect::WakeAt {
                    at: "2026-12-01T09:00:00.123456Z".parse().unwrap(),
                },
                Effect::Remediate {
                    strategy: "intune-supersedence".into(),
                    rings: vec!["ring-0-lab".into()],
                    action: orchestrator::RemediationAction::Halt,
                },
                Effect::Alert {
                    message: "m".into(),
                },
                Effect::EmitEvent {
                    event_type: AuditEventType::OperatorAction,
                    outcome: AuditOutcome::Info,
                    actor: "ops@example.com".into(),
                    ring: None,
                    details: value.clone(),
                },
            ];
            for effect in effects {
                let again = Queued::of(effect.clone(), &mut packer).into_effect(&mut packer);
                assert_eq!(again, effect);
                assert_eq!(json!(again).to_string(), json!(effect).to_string());
            }
        }
        assert_eq!(trees, 1, "only the value too deep to parse stays a tree");
    }

    /// Texts of one kind, alike but for a few ids and figures (a pass's
    /// gate judgements), are held deflated against the first of them, a
    /// fraction of their size, and give the very text back; a kind's first
    /// text is no dictionary for another kind.
    #[test]
    fn queued_texts_of_a_kind_are_packed_against_the_first_of_it() {
        let judgement = |index: usize| {
            json!({"application_id": format!("synthetic-app-{index:05}"), "at": "2026-12-01T13:30:00+00:00",
                   "decision": "ALLOW", "gate": {"reasons": ["0 open incident(s), within the maximum of 0",
                   format!("success rate 1.0000 ({index} of {index} targeted devices installed) meets the threshold 0.95"),
                   "first install after 0.3 h, within the 24 h allowed"], "reporting_devices": index,
                   "reporting_fraction": 1.0, "soak_complete": true, "success_rate": 1.0,
                   "targeted_devices": index, "time_to_compliance_hours": index as f64 / 7.0, "verdict": "pass"},
                   "intent_id": format!("synthetic-app-{index:05}-finance"), "phase": "ring_completed",
                   "ring": "ring-0-lab", "risk_score": 30, "version": "1.1.0"})
        };
        let mut packer = Packer::default();
        let (mut texts, mut packed) = (0, 0);
        for index in 0..200 {
            let value = judgement(index);
            let text = value.to_string();
            let held = HeldJson::hold(value.clone(), Kind::Record("ring_completed"), &mut packer);
            let HeldJson::Packed(bytes) = &held else {
                panic!("held as {held:?}");
            };
            texts += text.len();
            packed += bytes.0.len();
            assert_eq!(packer.unpack(bytes), text.as_bytes());
            assert_eq!(held.into_value(&mut packer), value);
        }
        assert!(packed * 6 < texts, "{packed} bytes packed of {texts}");
        assert_eq!(packer.dictionaries.len(), 1);
        // Another kind learns its own dictionary.
        let held = HeldJson::hold(
            judgement(7),
            Kind::Event(AuditEventType::RingCompleted),
            &mut packer,
        );
        assert_eq!(packer.dictionaries.len(), 2);
        assert_eq!(held.into_value(&mut packer), judgement(7));
        // A stream that does not inflate to its length gives nothing back.
        let HeldJson::Packed(Packed(mut bytes)) =
            HeldJson::hold(judgement(8), Kind::Record("ring_completed"), &mut packer)
        else {
            panic!("packed");
        };
        bytes[2] ^= 1;
        assert_eq!(packer.unpack(&Packed(bytes)), b"");
    }

    /// A queued start record is lent to its run only when the run holds the
    /// very summary, and given back as the run's.
    #[test]
    fn a_queued_start_record_is_lent_only_when_its_run_holds_it() {
        let intent = orchestrator::testing::intent(&["ring-0-lab", "ring-1-canary"]);
        let plan = RolloutPlan::resolve(&intent, &orchestrator::testing::config(), &[]).unwrap();
        let mut run = IntentRun::new(&intent, plan);
        let summary = json!({"ring": "ring-0-lab", "soak_hours": 4.0});
        run.start_record = Some(orchestrator::PendingRecord {
            transition_id: "t/0001-ring_start".into(),
            ring: "ring-0-lab".into(),
            record_type: "ring_start".into(),
            summary: orchestrator::CompactJson::of(&summary),
            committed: false,
        });
        let mut packer = Packer::default();
        let mut record = |summary: &Value| {
            Queued::of(
                Effect::RecordEvidence {
                    transition_id: "t/0001-ring_start".into(),
                    record_type: "ring_start".into(),
                    summary: summary.clone(),
                },
                &mut packer,
            )
        };
        let mut work: VecDeque<(usize, Queued)> = VecDeque::from([
            (0, record(&summary)),
            (0, record(&json!({"ring": "ring-0-lab", "soak_hours": 5.0}))),
            (
                0,
                Queued::of(
                    Effect::Publish {
                        ring: "ring-0-lab".into(),
                    },
                    &mut packer,
                ),
            ),
        ]);
        // Held packed (the first against itself, the second against the
        // first), compared with the run's record as text.
        for (_, queued) in work.iter().take(2) {
            assert!(matches!(
                queued,
                Queued::RecordEvidence {
                    summary: HeldJson::Packed(_),
                    ..
                }
            ));
        }
        // The same summary, held as a tree (a text that would not give it
        // back), is lent too.
        work.push_back((
            0,
            Queued::RecordEvidence {
                transition_id: "t/0001-ring_start".into(),
                record_type: "ring_start".into(),
                summary: HeldJson::Tree(Box::new(summary.clone())),
            },
        ));
        let lent = lend_start_summaries(&mut work, std::slice::from_ref(&run), &mut packer);
        assert_eq!(lent, [true, false, false, true]);
        assert!(matches!(
            work[0].1,
            Queued::RecordEvidence {
                summary: HeldJson::Lent,
                ..
            }
        ));
        let Effect::RecordEvidence { summary: other, .. } =
            work.remove(1).unwrap().1.into_effect(&mut packer)
        else {
            panic!("a record");
        };
        assert_eq!(other, json!({"ring": "ring-0-lab", "soak_hours": 5.0}));
    }

    /// Runs in intent id order are found by a binary search, others
    /// through a map: either way, each intent id's own run.
    #[test]
    fn a_run_is_found_by_its_intent_id_in_any_order() {
        let run = |id: &str| {
            let mut intent = orchestrator::testing::intent(&["ring-0-lab"]);
            intent.intent_id = id.into();
            let plan =
                RolloutPlan::resolve(&intent, &orchestrator::testing::config(), &[]).unwrap();
            IntentRun::new(&intent, plan)
        };
        for ids in [
            vec!["a", "b", "c"],
            vec!["b", "a", "c"],
            vec!["c", "a"],
            vec![],
        ] {
            let runs: Vec<IntentRun> = ids.iter().map(|id| run(id)).collect();
            let by_id = RunIndex::of(&runs);
            assert_eq!(
                matches!(by_id, RunIndex::Sorted),
                ids.windows(2).all(|pair| pair[0] < pair[1])
            );
            for (index, id) in ids.iter().enumerate() {
                assert_eq!(by_id.get(&runs, id), Some(index));
            }
            assert_eq!(by_id.get(&runs, "d"), None);
            assert_eq!(by_id.get(&runs, ""), None);
        }
    }

    fn waits(reasons: Vec<Reason>) -> Vec<String> {
        runtime_deny_waits_on(&PolicyOutcome::from_findings(reasons, 0, Vec::new()))
    }

    #[test]
    fn a_runtime_deny_is_recognised_by_its_rule_id_and_structured_field_not_its_message() {
        // The message says nothing a text match would find: the rule id and
        // `waits_on` decide.
        assert_eq!(
            waits(vec![
                deny(CHANGE_IN_FLIGHT_RULE, "builtin", "busy", Some("a")),
                deny(CHANGE_IN_FLIGHT_RULE, "builtin", "busy too", Some("b")),
                deny(CHANGE_IN_FLIGHT_RULE, "builtin", "busy again", Some("a")),
            ]),
            vec!["a".to_owned(), "b".to_owned()]
        );
        // The message of the old text match, on another rule: final.
        let lookalike = "intent x is still in flight in ring-0-lab for application y in z; wait";
        assert!(
            waits(vec![deny(
                "concurrency.one_active_change",
                "builtin",
                lookalike,
                Some("x")
            )])
            .is_empty()
        );
        // A tenant rule cannot make a DENY look transient.
        assert!(
            waits(vec![deny(
                CHANGE_IN_FLIGHT_RULE,
                "ringmaster.tenant.x",
                "busy",
                Some("x")
            )])
            .is_empty()
        );
        // Without the structured field there is nothing to wait on.
        assert!(
            waits(vec![deny(
                CHANGE_IN_FLIGHT_RULE,
                "builtin",
                lookalike,
                None
            )])
            .is_empty()
        );
        // Any other deciding DENY makes it final.
        assert!(
            waits(vec![
                deny(CHANGE_IN_FLIGHT_RULE, "builtin", "busy", Some("a")),
                deny("version.rolled_back", "builtin", "no", None),
            ])
            .is_empty()
        );
    }
}
