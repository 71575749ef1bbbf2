//! Disaster recovery: the runtime state made again from Git and the planes.
//!
//! The evidence branch holds a signed record of every decision and every
//! ring transition; since the records carry the verdict a rollout runs
//! under (`evaluation_facts`) and the run as the store held it
//! (`summary.run`, see `docs/evidence.md`), the store can be rebuilt from
//! them. [`rebuild`] verifies the branch with the same code as `ringmaster
//! verify` (signatures, hash chain, sequence, append-only history; a
//! tampered branch is refused before anything is written), reads the
//! records through the evidence reader, checks that what it read is the
//! chain it verified, and writes:
//!
//! - every intent's verdict and run (ring progress, rolled-back versions —
//!   a run that rolled back keeps blocking its version);
//! - the idempotency journal's evidence entries, confirmed: no record that
//!   is on the branch is ever appended again;
//! - the rings each run holds (active changes);
//! - the processed commits the records name, and the rules in force;
//! - the evidence head;
//! - a `store_rebuilt` event, the first of the new event log, and a signed
//!   `operator_action` record of the rebuild on the evidence branch that
//!   anchors it: `verify --state` checks the new log against that record
//!   like any other (the log before the rebuild stays anchored by the
//!   records before it, on the branch).
//!
//! Then it asks each plane (through the connectors the daemon's config
//! names) about every run that was starting a ring: a ring whose start
//! record is committed and which the plane already holds is confirmed as
//! published, at the time of its start record, so the daemon never
//! publishes it again and its soak is not restarted.
//!
//! [`catch_up`] does the same for a store restored from a backup, which is
//! behind the branch: only the records after its evidence head are applied.
//! [`standing`] tells the two apart from a store that is current.

pub mod standing;

use crate::daemon::performer::plane_correlation_id;
use crate::daemon::rollout::{EvaluationFacts, IntentState, PlaneFacts};
use crate::evidence::{
    AppendContext, EventChainAnchor, EvidenceBranch, EvidencePackInput, ExpectedHead, GitIdentity,
    RecordSummary, RecordType, SigningKey, VerifyingKey,
};
use crate::model::Plane;
use crate::orchestrator::{Event, IntentRun, Phase, StartStage};
use crate::planes::{Connector, ExecutionPlaneConnector as _};
use crate::source::GovernedRepo;
use crate::store::{
    CommitOutcome, EventOutcome, EventType, IntentUpsert, NewAction, NewEvent, RulesState, Store,
    StoreError, action_key,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The correlation id of the `store_rebuilt` events.
pub const REBUILD_CORRELATION_ID: &str = "store:rebuild";

/// The `kind` of the event a rebuild appends.
pub const REBUILD_EVENT_KIND: &str = "store_rebuilt";

/// Records read from the branch per page.
const PAGE: usize = 512;

/// Everything that stops a rebuild.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error(transparent)]
    Evidence(Box<crate::evidence::EvidenceError>),
    #[error(transparent)]
    Store(Box<StoreError>),
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),
    #[error(transparent)]
    Git(#[from] git2::Error),
    /// The branch does not verify: nothing was written.
    #[error(
        "the evidence branch {branch:?} does not verify, so nothing was rebuilt from it: {failure}. \
         Restore the branch from the evidence remote or the WORM copy, check it with \
         `ringmaster verify`, then rebuild"
    )]
    Tampered { branch: String, failure: String },
    /// What was read differs from what was verified (the branch moved or
    /// was changed in between).
    #[error(
        "the evidence branch changed while it was read (record #{sequence}: {reason}); nothing \
         more was written: run the rebuild again"
    )]
    ChangedWhileReading { sequence: u64, reason: String },
    /// The target store already holds state.
    #[error(
        "the state store {path} is not empty (evidence head #{head}, {intents} intent(s)); \
         rebuild writes only into an empty store: pass --force to move it aside first, or \
         --catch-up to bring a restored store forward"
    )]
    NotEmpty {
        path: String,
        head: u64,
        intents: usize,
    },
    /// `catch_up` on a store the branch no longer holds, or ahead of it.
    #[error("{0}")]
    CannotCatchUp(String),
}

impl From<StoreError> for RecoveryError {
    fn from(error: StoreError) -> Self {
        RecoveryError::Store(Box::new(error))
    }
}

impl From<crate::evidence::EvidenceError> for RecoveryError {
    fn from(error: crate::evidence::EvidenceError) -> Self {
        RecoveryError::Evidence(Box::new(error))
    }
}

/// What a rebuild wrote, for its summary line.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// `rebuild` or `catch_up`.
    pub mode: &'static str,
    /// The store's evidence head before (0 for a fresh store).
    pub from_sequence: u64,
    /// The branch's head the store was rebuilt to.
    pub head_sequence: u64,
    pub head_pack_sha256: String,
    /// The signed record of the rebuild, appended after it (the store's
    /// evidence head now).
    pub rebuild_record: u64,
    /// Records read and applied.
    pub records: u64,
    /// Intents written.
    pub intents: usize,
    /// Runs restored (intents whose rollout had started).
    pub runs: usize,
    /// Rings published, completed, by intent count of rings.
    pub rings_published: usize,
    pub rings_completed: usize,
    /// Runs by phase name.
    pub phases: BTreeMap<String, usize>,
    /// `application@version` blocked because a run of it rolled back.
    pub blocked_versions: Vec<String>,
    /// Rings held by runs (active changes).
    pub active_changes: usize,
    /// Evidence records entered in the idempotency journal.
    pub journal_entries: usize,
    pub processed_commits: usize,
    /// Status queries sent to the planes.
    pub plane_queries: usize,
    /// Runs moved on with what the planes reported (a ring found published).
    pub confirmed_from_planes: usize,
    /// Runs that were starting a ring the plane could not confirm (asked
    /// again, or published, by the daemon on its first pass).
    pub left_to_daemon: Vec<String>,
    /// Decision records without `evaluation_facts` (written before it
    /// existed): their verdict is read from the rest of the body.
    pub legacy_decisions: usize,
    pub elapsed_seconds: f64,
}

/// What the caller hands a rebuild.
pub struct Sources<'a> {
    pub repo: &'a GovernedRepo,
    /// The tracked branch (`main`).
    pub branch: &'a str,
    pub evidence_branch: &'a str,
    pub key: &'a VerifyingKey,
    /// Signs the record of the rebuild (the daemon's key).
    pub signer: &'a SigningKey,
    /// The connectors of the daemon's config, by plane.
    pub connectors: &'a BTreeMap<Plane, Connector>,
    pub progress: &'a dyn crate::progress::Progress,
}

/// Rebuilds an empty store from the evidence branch and the planes.
pub async fn rebuild(
    sources: &Sources<'_>,
    store: &mut Store,
    now: DateTime<Utc>,
) -> Result<Summary, RecoveryError> {
    let head = store.evidence_head()?;
    let intents = store.list_intents()?.len();
    if head.is_some() || intents > 0 || store.last_event()?.is_some() {
        return Err(RecoveryError::NotEmpty {
            path: store.path().map_or_else(
                || "(PostgreSQL)".to_owned(),
                |path| path.display().to_string(),
            ),
            head: head.map_or(0, |head| head.sequence),
            intents,
        });
    }
    apply(sources, store, 0, now, "rebuild").await
}

/// Brings a store that is behind the branch (restored from a backup)
/// forward: the records after its evidence head are applied; the branch
/// must still hold that head.
pub async fn catch_up(
    sources: &Sources<'_>,
    store: &mut Store,
    now: DateTime<Utc>,
) -> Result<Summary, RecoveryError> {
    let Some(head) = store.evidence_head()? else {
        return apply(sources, store, 0, now, "rebuild").await;
    };
    apply(sources, store, head.sequence, now, "catch_up").await
}

/// One record's contribution, folded newest first.
#[derive(Default)]
struct Folded {
    /// Per intent: the newest decision's fields.
    decisions: BTreeMap<String, Decision>,
    /// Per intent: the newest run, with its plane.
    runs: BTreeMap<String, (IntentRun, Option<PlaneFacts>)>,
    /// Evidence journal entries: (intent, transition id, transition, pack sha256).
    journal: Vec<(String, String, String, String)>,
    /// When each transition's record was made.
    recorded_at: BTreeMap<String, DateTime<Utc>>,
    source_commits: BTreeSet<String>,
    /// The oldest record's source commit (the root of authority on a fresh rebuild).
    oldest_source: Option<String>,
    /// Newest first: the rules commits named by decisions and governance records.
    rules_commit: Option<String>,
    /// The newest governance record's body, when it is an unauthorised change.
    unauthorised: Option<(String, Value, DateTime<Utc>)>,
    governance_seen: bool,
    records: u64,
    legacy_decisions: usize,
}

struct Decision {
    upsert: IntentUpsert,
    evaluation: EvaluationFacts,
}

async fn apply(
    sources: &Sources<'_>,
    store: &mut Store,
    from: u64,
    now: DateTime<Utc>,
    mode: &'static str,
) -> Result<Summary, RecoveryError> {
    let started = std::time::Instant::now();
    let repository_path = sources.repo.repository.path();
    let expected = match from {
        0 => None,
        _ => store
            .evidence_head()?
            .map(|head| crate::evidence::ExpectedHead {
                sequence: head.sequence,
                pack_sha256: head.pack_sha256,
            }),
    };
    // 1. The same verification as `ringmaster verify`.
    let report = crate::evidence::verify_branch_with_progress(
        repository_path,
        sources.evidence_branch,
        sources.key,
        expected,
        sources.progress,
    )?;
    if !report.ok {
        return Err(RecoveryError::Tampered {
            branch: sources.evidence_branch.to_owned(),
            failure: report
                .first_failure
                .map(|failure| crate::escape::terminal(&failure.to_string()).into_owned())
                .unwrap_or_default(),
        });
    }
    let Some(verified) = report.head else {
        return Ok(Summary {
            mode,
            elapsed_seconds: started.elapsed().as_secs_f64(),
            ..Summary::default()
        });
    };
    if verified.sequence < from {
        return Err(RecoveryError::CannotCatchUp(format!(
            "the store's evidence head #{from} is ahead of the branch's #{}: the branch lost records; restore it from the evidence remote",
            verified.sequence
        )));
    }

    // 2. Read the records after `from`, newest first, checking each link
    //    against the verified head.
    sources.progress.stage(
        "reading records",
        Some(verified.sequence.saturating_sub(from)),
    );
    let branch = EvidenceBranch::open(repository_path, sources.evidence_branch)?;
    let mut folded = Folded::default();
    let mut expected_sha = verified.pack_sha256.clone();
    let mut head_commit = None;
    let mut head_source = None;
    let mut before = verified.sequence + 1;
    while before > from + 1 {
        let page = branch.records_before(Some(before), PAGE)?;
        if page.is_empty() {
            break;
        }
        for record in page {
            let sequence = record.pack.sequence;
            if sequence != before - 1 || record.tip.sequence != sequence {
                return Err(RecoveryError::ChangedWhileReading {
                    sequence: before - 1,
                    reason: format!("found record #{sequence} in its place"),
                });
            }
            if record.tip.pack_sha256 != expected_sha {
                return Err(RecoveryError::ChangedWhileReading {
                    sequence,
                    reason: format!(
                        "its sha256 is {}, the verified chain has {expected_sha}",
                        record.tip.pack_sha256
                    ),
                });
            }
            expected_sha = record.pack.previous_pack_sha256.clone();
            before = sequence;
            if head_commit.is_none() {
                head_commit = Some(record.tip.commit.clone());
                head_source = Some(record.pack.source_commit.clone());
            }
            if sequence <= from {
                break;
            }
            fold(&mut folded, record);
            sources.progress.advance(1);
        }
    }

    // 3. Write.
    sources.progress.stage("writing the store", None);
    store.set_bulk_load(true)?;
    let mut summary = Summary {
        mode,
        from_sequence: from,
        head_sequence: verified.sequence,
        head_pack_sha256: verified.pack_sha256.clone(),
        records: folded.records,
        legacy_decisions: folded.legacy_decisions,
        ..Summary::default()
    };
    let written = write(sources, store, &mut folded, &mut summary, now).await;
    let durable = store.set_bulk_load(false);
    written?;
    durable?;
    store.set_evidence_head(
        verified.sequence,
        &verified.pack_sha256,
        head_commit.as_deref().unwrap_or_default(),
        now,
    )?;
    summary.elapsed_seconds = started.elapsed().as_secs_f64();
    let marker = store.append_event(NewEvent {
        correlation_id: REBUILD_CORRELATION_ID.into(),
        intent_id: None,
        event_type: EventType::OperatorAction,
        timestamp: now,
        actor: "ringmaster rebuild".into(),
        actor_role: "operator".into(),
        execution_plane: None,
        ring: None,
        outcome: EventOutcome::Success,
        details: json!({
            "kind": REBUILD_EVENT_KIND,
            "mode": mode,
            "from_sequence": from,
            "evidence_sequence": verified.sequence,
            "pack_sha256": verified.pack_sha256,
            "evidence_commit": head_commit,
            "why": "the runtime state was made again from the evidence branch and the planes; \
                    the event log before this event lives on the evidence branch only",
            "summary": &summary,
        }),
    })?;
    // The rebuild's own record: signed, anchoring the new log's first
    // event, so `verify --state` checks this store like any other.
    let identity = GitIdentity {
        name: "ringmaster rebuild".into(),
        email: "ringmaster@localhost".into(),
        time: now.fixed_offset(),
    };
    let appended = branch.append(
        EvidencePackInput {
            record_type: RecordType::OperatorAction,
            intent_id: None,
            correlation_id: REBUILD_CORRELATION_ID.into(),
            source_commit: head_source.unwrap_or_default(),
            source_parent: None,
            author: identity.clone(),
            committer: identity,
            created_at: now,
            body: json!({
                "kind": REBUILD_EVENT_KIND,
                "mode": mode,
                "from_sequence": from,
                "evidence_sequence": verified.sequence,
                "pack_sha256": verified.pack_sha256,
                "event": {"seq": marker.seq, "hash": marker.hash},
                "summary": &summary,
            }),
        },
        sources.signer,
        &AppendContext {
            known_head: Some(ExpectedHead {
                sequence: verified.sequence,
                pack_sha256: verified.pack_sha256.clone(),
            }),
            event_chain: Some(EventChainAnchor {
                seq: marker.seq,
                hash: marker.hash.clone(),
            }),
        },
    )?;
    store.set_evidence_head(
        appended.sequence,
        &appended.pack_sha256,
        &appended.commit,
        now,
    )?;
    summary.rebuild_record = appended.sequence;
    Ok(summary)
}

/// Takes what one record says, unless a newer record already said it.
fn fold(folded: &mut Folded, record: RecordSummary) {
    let pack = record.pack;
    folded.records += 1;
    folded.source_commits.insert(pack.source_commit.clone());
    folded.oldest_source = Some(pack.source_commit.clone());
    let body = &pack.body;
    match (pack.record_type, &pack.intent_id) {
        (RecordType::Decision, Some(intent_id)) => {
            if folded.rules_commit.is_none()
                && let Some(commit) = body
                    .pointer("/rules_in_force/commit")
                    .and_then(Value::as_str)
            {
                folded.rules_commit = Some(commit.to_owned());
            }
            if folded.decisions.contains_key(intent_id) {
                return;
            }
            if let Some(decision) = decision_of(intent_id, &pack.source_commit, body, folded) {
                folded.decisions.insert(intent_id.clone(), decision);
            }
        }
        (RecordType::Governance, _) if !folded.governance_seen => {
            folded.governance_seen = true;
            match body.get("kind").and_then(Value::as_str) {
                Some("governance_change_unauthorised") => {
                    folded.unauthorised =
                        Some((pack.source_commit.clone(), body.clone(), pack.created_at));
                }
                Some("governance_change_authorised") if folded.rules_commit.is_none() => {
                    folded.rules_commit = Some(pack.source_commit.clone());
                }
                _ => {}
            }
        }
        (_, Some(intent_id)) => {
            let Some(transition_id) = body.get("transition_id").and_then(Value::as_str) else {
                return;
            };
            let transition = body
                .get("transition")
                .and_then(Value::as_str)
                .unwrap_or_default();
            folded.journal.push((
                intent_id.clone(),
                transition_id.to_owned(),
                transition.to_owned(),
                record.tip.pack_sha256.clone(),
            ));
            folded
                .recorded_at
                .insert(transition_id.to_owned(), pack.created_at);
            if folded.runs.contains_key(intent_id) {
                return;
            }
            let run = body
                .pointer("/summary/run")
                .and_then(|run| serde_json::from_value::<IntentRun>(run.clone()).ok());
            if let Some(run) = run {
                let plane = body
                    .get("execution_plane")
                    .and_then(Value::as_str)
                    .zip(body.get("plane_mode").cloned())
                    .and_then(|(plane, mode)| {
                        Some(PlaneFacts {
                            plane: plane.to_owned(),
                            mode: serde_json::from_value(mode).ok()?,
                        })
                    });
                folded.runs.insert(intent_id.clone(), (run, plane));
            }
        }
        _ => {}
    }
}

/// The verdict and the intent's row from a decision record's body.
fn decision_of(
    intent_id: &str,
    source_commit: &str,
    body: &Value,
    folded: &mut Folded,
) -> Option<Decision> {
    let intent = body.get("intent")?;
    let text = |pointer: &str| {
        intent
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let decision = body.get("decision").and_then(Value::as_str)?.to_owned();
    let risk_score = body
        .pointer("/risk/risk_score")
        .and_then(Value::as_u64)
        .map(|score| u8::try_from(score).unwrap_or(100));
    let evaluation = match body
        .get("evaluation_facts")
        .and_then(|facts| serde_json::from_value::<EvaluationFacts>(facts.clone()).ok())
    {
        Some(facts) => facts,
        None => {
            // Written before records carried the verdict: what the body says.
            folded.legacy_decisions += 1;
            let counted: Vec<String> = body
                .pointer("/policy/counted_approvals")
                .and_then(|value| serde_json::from_value(value.clone()).ok())
                .unwrap_or_default();
            let approvals = body.get("approvals").and_then(Value::as_array);
            let counted_records = || {
                approvals
                    .into_iter()
                    .flatten()
                    .filter(|approval| approval.get("counted") == Some(&Value::Bool(true)))
            };
            EvaluationFacts {
                decision: decision.clone(),
                risk_score: risk_score.unwrap_or(100),
                counted_approvals: counted,
                conditions: counted_records()
                    .filter_map(|approval| approval.get("conditions"))
                    .filter_map(|conditions| {
                        serde_json::from_value::<Vec<crate::model::ApprovalCondition>>(
                            conditions.clone(),
                        )
                        .ok()
                    })
                    .flatten()
                    .collect(),
                emergency_override: counted_records()
                    .any(|approval| approval.get("emergency_override") == Some(&Value::Bool(true))),
                version: text("/version"),
                commit: source_commit.to_owned(),
                supersedes: None,
                waits_on: Vec::new(),
            }
        }
    };
    Some(Decision {
        upsert: IntentUpsert {
            intent_id: intent_id.to_owned(),
            application_id: text("/application_id"),
            acquisition_boundary: text("/target_scope/acquisition_boundary"),
            business_unit: text("/target_scope/business_unit"),
            version: text("/version"),
            content_sha256: body
                .get("fingerprint")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            state: "risk_assessed".into(),
            state_json: Value::Null,
            decision: Some(decision),
            risk_score,
        },
        evaluation,
    })
}

async fn write(
    sources: &Sources<'_>,
    store: &mut Store,
    folded: &mut Folded,
    summary: &mut Summary,
    now: DateTime<Utc>,
) -> Result<(), RecoveryError> {
    // Processed commits, in the tracked branch's order, so the daemon goes
    // on after the newest one the records name.
    let history = first_parent_history(sources.repo, sources.branch)?;
    let mut commits: Vec<(usize, &String)> = folded
        .source_commits
        .iter()
        .filter_map(|commit| history.get(commit.as_str()).map(|index| (*index, commit)))
        .collect();
    commits.sort();
    for (_, commit) in &commits {
        if !store.is_commit_processed(sources.branch, commit)? {
            store.record_commit(sources.branch, commit, CommitOutcome::Ok, &json!([]), now)?;
            summary.processed_commits += 1;
        }
    }
    let newest_commit = commits.last().map(|(_, commit)| (*commit).clone());

    // The rules in force.
    if let Some(judged) = &newest_commit {
        write_rules(sources, store, folded, judged, now)?;
    }

    // Intents: the newest verdict and the newest run.
    let intent_ids: BTreeSet<String> = folded
        .decisions
        .keys()
        .chain(folded.runs.keys())
        .cloned()
        .collect();
    for intent_id in &intent_ids {
        let known = store.get_intent(intent_id)?;
        let mut state = known
            .as_ref()
            .map(IntentState::from_record)
            .unwrap_or_default();
        if let Some(decision) = folded.decisions.get(intent_id) {
            state.evaluation = Some(decision.evaluation.clone());
        }
        if let Some((run, plane)) = folded.runs.get(intent_id) {
            state.run = Some(run.clone());
            if plane.is_some() {
                state.plane = plane.clone();
            }
        }
        let phase = state.run.as_ref().map(|run| run.phase.name().to_owned());
        let json = serde_json::to_value(&state).unwrap_or(Value::Null);
        match (folded.decisions.get(intent_id), &known) {
            (Some(decision), _) => {
                let mut upsert = decision.upsert.clone();
                upsert.state = phase
                    .or_else(|| known.as_ref().map(|k| k.state.clone()))
                    .unwrap_or_else(|| "risk_assessed".into());
                upsert.state_json = json;
                store.upsert_intent(&upsert, now)?;
            }
            (None, Some(known)) => {
                store.set_intent_state(
                    intent_id,
                    phase.as_deref().unwrap_or(&known.state),
                    &json,
                    now,
                )?;
            }
            // A run without any decision record cannot be placed.
            (None, None) => continue,
        }
        summary.intents += 1;
    }

    // The evidence journal: every record on the branch, confirmed.
    for (intent_id, transition_id, transition, pack_sha256) in folded.journal.iter().rev() {
        if store.get_intent(intent_id)?.is_none() {
            continue;
        }
        let key = action_key(intent_id, "evidence", transition_id, "record");
        if store
            .get_action(&key)?
            .is_some_and(|action| action.state == crate::store::ActionState::Confirmed)
        {
            continue;
        }
        let planned = store.plan_action(
            &NewAction {
                intent_id: intent_id.clone(),
                plane: "evidence".into(),
                ring: transition_id.clone(),
                action: "record".into(),
                request: json!({"transition": transition}),
            },
            now,
        )?;
        if planned.state != crate::store::ActionState::Sent {
            store.mark_sent(&planned.key, now)?;
        }
        store.mark_confirmed(&planned.key, Some(pack_sha256), now)?;
        summary.journal_entries += 1;
    }

    // Runs that were starting a ring: what the plane holds decides.
    let runs: Vec<String> = folded.runs.keys().cloned().collect();
    for intent_id in runs {
        if store.get_intent(&intent_id)?.is_none() {
            continue;
        }
        let Some((mut run, plane)) = folded.runs.remove(&intent_id) else {
            continue;
        };
        if catch_up_with_plane(sources, &mut run, plane.as_ref(), folded, summary, now).await {
            let record = store.get_intent(&intent_id)?;
            if let Some(record) = record {
                let mut state = IntentState::from_record(&record);
                state.run = Some(run.clone());
                let json = serde_json::to_value(&state).unwrap_or(Value::Null);
                store.set_intent_state(&intent_id, run.phase.name(), &json, now)?;
            }
        }
        tally(&run, summary);
        claim_rings(store, &run, now, summary)?;
    }
    Ok(())
}

/// The run's figures in the summary.
fn tally(run: &IntentRun, summary: &mut Summary) {
    summary.runs += 1;
    *summary
        .phases
        .entry(run.phase.name().to_owned())
        .or_default() += 1;
    summary.rings_published += run
        .rings
        .iter()
        .filter(|ring| ring.started_at().is_some())
        .count();
    summary.rings_completed += run
        .rings
        .iter()
        .filter(|ring| ring.completed_at().is_some())
        .count();
    if run.blocks_its_version() {
        summary
            .blocked_versions
            .push(format!("{}@{}", run.application_id, run.version));
    }
}

/// The rings the run holds, as active changes; rings it no longer holds
/// (a store caught up) are released.
fn claim_rings(
    store: &mut Store,
    run: &IntentRun,
    now: DateTime<Utc>,
    summary: &mut Summary,
) -> Result<(), RecoveryError> {
    let Some(record) = store.get_intent(&run.intent_id)? else {
        return Ok(());
    };
    for change in store.active_changes_for(
        &record.application_id,
        &record.acquisition_boundary,
        &record.business_unit,
    )? {
        if change.intent_id == run.intent_id && !run.claimed_rings.contains(&change.ring) {
            store.release_ring(&run.intent_id, &change.ring, now)?;
        }
    }
    for ring in &run.claimed_rings {
        match store.claim_ring(
            &run.intent_id,
            &record.application_id,
            &record.acquisition_boundary,
            &record.business_unit,
            ring,
            now,
        ) {
            Ok(()) => summary.active_changes += 1,
            Err(StoreError::RingBusy {
                holder_intent_id, ..
            }) => tracing::warn!(intent = %run.intent_id, %ring, holder = %holder_intent_id,
                "the records say both intents hold this ring; the one written first keeps it"),
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}

/// A run caught starting a ring: when its start record is on the branch,
/// the run hears it committed; when the plane already holds the ring, it
/// hears the publish confirmed, at the time of the start record (the
/// daemon publishes in the same step, so the soak keeps its start). Only
/// the pure state machine is stepped; its other effects (audit events, a
/// wake-up) are the daemon's business at its next pass. True when the run
/// changed.
async fn catch_up_with_plane(
    sources: &Sources<'_>,
    run: &mut IntentRun,
    plane: Option<&PlaneFacts>,
    folded: &Folded,
    summary: &mut Summary,
    now: DateTime<Utc>,
) -> bool {
    let Phase::RingStarting { ring, stage } = run.phase.clone() else {
        return false;
    };
    if stage == StartStage::Claiming {
        return false;
    }
    let Some(start) = run.start_record.clone() else {
        return false;
    };
    let Some(recorded_at) = folded.recorded_at.get(&start.transition_id).copied() else {
        return false;
    };
    let mut changed = false;
    if !start.committed {
        crate::orchestrator::step_in_place(
            run,
            &Event::EvidenceCommitted {
                transition_id: start.transition_id.clone(),
            },
            recorded_at,
        );
        changed = true;
    }
    let connector = plane
        .and_then(|facts| Plane::named(&facts.plane))
        .and_then(|plane| sources.connectors.get(&plane));
    let Some(connector) = connector else {
        summary.left_to_daemon.push(run.intent_id.clone());
        return changed;
    };
    summary.plane_queries += 1;
    let correlation_id = plane_correlation_id(run);
    match connector.query_status(&correlation_id, now).await {
        Ok(status) if status.rings.contains_key(&ring) => {
            crate::orchestrator::step_in_place(
                run,
                &Event::PublishConfirmed {
                    ring: ring.clone(),
                    external_id: format!("{correlation_id} (confirmed by rebuild)"),
                },
                recorded_at,
            );
            summary.confirmed_from_planes += 1;
            true
        }
        Ok(_) => {
            summary.left_to_daemon.push(run.intent_id.clone());
            changed
        }
        Err(error) => {
            tracing::warn!(intent = %run.intent_id, %error, "the plane did not answer; the daemon asks it again before publishing");
            summary.left_to_daemon.push(run.intent_id.clone());
            changed
        }
    }
}

/// The rules in force on the tracked branch, from the records: the root
/// of authority is the oldest record's commit (on a fresh rebuild), the
/// rules commit the newest a decision named (or an authorised governance
/// change), the application scopes those of the rules commit.
fn write_rules(
    sources: &Sources<'_>,
    store: &mut Store,
    folded: &Folded,
    judged: &str,
    now: DateTime<Utc>,
) -> Result<(), RecoveryError> {
    let existing = store.rules_state(sources.branch)?;
    let rules_commit = folded
        .rules_commit
        .clone()
        .or_else(|| existing.as_ref().map(|state| state.rules_commit.clone()))
        .unwrap_or_else(|| judged.to_owned());
    let oid = git2::Oid::from_str(&rules_commit)?;
    let (snapshot, _) = crate::model::load(&sources.repo.entries_at(oid)?);
    let mut state: RulesState =
        crate::daemon::rules::root_state(sources.branch, &rules_commit, &snapshot);
    state.root_commit = existing
        .as_ref()
        .map(|state| state.root_commit.clone())
        .or_else(|| folded.oldest_source.clone())
        .unwrap_or_else(|| rules_commit.clone());
    state.judged_commit = judged.to_owned();
    state.unauthorised = match &folded.unauthorised {
        Some((commit, body, at)) => Some(crate::daemon::rules::unauthorised_record(
            commit,
            body.get("rules_in_force")
                .and_then(Value::as_str)
                .unwrap_or(&rules_commit),
            &body
                .get("paths")
                .and_then(|paths| serde_json::from_value::<Vec<String>>(paths.clone()).ok())
                .unwrap_or_default(),
            body.get("reason")
                .and_then(Value::as_str)
                .unwrap_or_default(),
            *at,
        )),
        None if folded.governance_seen => None,
        None => existing.and_then(|state| state.unauthorised),
    };
    store.save_rules_state(&state, now)?;
    Ok(())
}

/// Commit id → position on the tracked branch's first-parent history
/// (0 the oldest).
fn first_parent_history(
    repo: &GovernedRepo,
    branch: &str,
) -> Result<std::collections::HashMap<String, usize>, RecoveryError> {
    let repository = &repo.repository;
    let mut positions = std::collections::HashMap::new();
    let Ok(reference) = repository.find_reference(&format!("refs/heads/{branch}")) else {
        return Ok(positions);
    };
    let tip = reference.peel_to_commit()?.id();
    let mut walk = repository.revwalk()?;
    walk.push(tip)?;
    walk.simplify_first_parent()?;
    walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE)?;
    for (index, commit) in walk.enumerate() {
        positions.insert(commit?.to_string(), index);
    }
    Ok(positions)
}

/// Moves an existing state database (and its WAL files) aside, for
/// `rebuild --force`: nothing is deleted. Returns where it went.
pub fn move_aside(
    database: &Path,
    now: DateTime<Utc>,
) -> std::io::Result<Option<std::path::PathBuf>> {
    if !database.exists() {
        return Ok(None);
    }
    let stamp = now.format("%Y%m%dT%H%M%SZ");
    let aside = database.with_extension(format!("db.before-rebuild-{stamp}"));
    std::fs::rename(database, &aside)?;
    for suffix in ["-wal", "-shm"] {
        let mut from = database.as_os_str().to_owned();
        from.push(suffix);
        let from = std::path::PathBuf::from(from);
        if from.exists() {
            let mut to = aside.as_os_str().to_owned();
            to.push(suffix);
            std::fs::rename(&from, std::path::PathBuf::from(to))?;
        }
    }
    Ok(Some(aside))
}
