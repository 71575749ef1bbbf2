//! Processing the tracked branch: every new commit, in order, exactly once.
//!
//! For each commit: load and judge the snapshot (with the first parent as the
//! base), and for every intent whose decision or content changed, sign an
//! evidence pack, commit it to the evidence branch, then record the event and
//! the intent's new state in the store. A commit is marked processed only
//! after all of that, so a crash anywhere makes the next start redo the
//! commit — and the redo recognises work already done (the evidence tip for
//! this intent and commit, the event for that pack) instead of repeating it.

use super::record;
use super::rollout::{EvaluationFacts, IntentState};
use super::rules::{Governance, InForce};
use super::siem::Siem;
use crate::authority::{self, ChangeHistory};
use crate::evaluation::RuntimeFacts;
use crate::evidence::{
    AppendedRecord, CommitRecord, EvidenceBranch, EvidencePack, EvidencePackInput, GitIdentity,
    RecordType, SigningKey,
};
use crate::forge::merge::{CommitCase, ForgeEvidence, MergeFacts};
use crate::judge::Judgement;
use crate::model::{DeploymentIntent, Snapshot, TargetScope};
use crate::policy::Decision;
use crate::source::GovernedRepo;
use crate::source::history;
use crate::store::RulesState;
use crate::store::{
    CommitOutcome, DecisionWrite, EventFilter, EventOutcome, EventType, HeadWrite, IntentUpsert,
    NewEvent, Store, correlation_id_for,
};
use chrono::{DateTime, FixedOffset, TimeZone as _, Utc};
use git2::Oid;
use serde_json::{Value, json};
use std::collections::HashMap;

/// The daemon's actor name in events.
pub const ACTOR: &str = "ringmaster";
const ACTOR_ROLE: &str = "control-plane";

/// Stored intents read at a time by a pass over all of them (the whole
/// table's stored JSON at once was the daemon's peak at 10,000 intents).
const INTENT_PAGE: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("reading the governed repository: {0}")]
    Source(#[from] crate::source::SourceError),
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    #[error("state store: {0}")]
    Store(Box<crate::store::StoreError>),
    /// Invariant 4: without evidence nothing proceeds; the commit is retried.
    #[error("evidence branch cannot be written, publishing is blocked: {0}")]
    Evidence(#[from] crate::evidence::EvidenceError),
    /// How the commit reached the branch (its PR and reviews) could not be
    /// read; the commit is retried, never judged without its approvals.
    #[error("reading the commit's pull request from GitHub: {0}")]
    Forge(Box<crate::forge::ForgeError>),
}

impl From<crate::store::StoreError> for ProcessError {
    fn from(error: crate::store::StoreError) -> Self {
        ProcessError::Store(Box::new(error))
    }
}

/// What one processed commit produced.
#[derive(Debug, Clone)]
pub struct CommitReport {
    pub commit: String,
    pub outcome: CommitOutcome,
    pub errors: usize,
    pub records: Vec<RecordedDecision>,
    /// Intents whose decision did not change (no new pack).
    pub unchanged: usize,
}

/// A decision record a processed commit appended, as its report shows it.
///
/// Only what the report's readers use (the `serve --once` listing, the
/// forge check): a report lives through the rollout step that follows,
/// and 10,000 full [`AppendedRecord`]s (hashes, commit, signature path)
/// held about 6 MB there (issue 17).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedDecision {
    /// The record's sequence on the evidence branch.
    pub sequence: u64,
    pub intent_id: Option<String>,
    /// The pack's path on the evidence branch.
    pub pack_path: String,
}

impl From<AppendedRecord> for RecordedDecision {
    fn from(record: AppendedRecord) -> Self {
        RecordedDecision {
            sequence: record.sequence,
            intent_id: record.intent_id,
            pack_path: record.pack_path,
        }
    }
}

/// Why a commit is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Occasion {
    /// It is new on the tracked branch.
    NewCommit,
    /// It was judged before, and an approval or exception it read expired.
    Expiry,
}

/// A commit, judged with everything the daemon knows.
struct Judged {
    sha: String,
    parent: Option<Oid>,
    author: GitIdentity,
    committer: GitIdentity,
    /// What application scopes were compared with (last authorised).
    base: Option<Snapshot>,
    judgement: Judgement,
    forge_evidence: ForgeEvidence,
    governance: Governance,
    /// The rules in force before the commit (`None` at the root).
    in_force: Option<InForce>,
    /// The commit itself changed the rules (relative to its parent).
    touches_rules: bool,
}

/// The logins approving the merged pull request's head, if it merged one.
fn approving_logins(facts: Option<&MergeFacts>) -> (Option<u64>, Vec<String>) {
    let Some(MergeFacts {
        pull_request: Some(pull_request),
        reviews,
        ..
    }) = facts
    else {
        return (None, Vec::new());
    };
    let logins =
        crate::forge::review::standings(reviews, &pull_request.head_sha, &pull_request.author)
            .into_iter()
            .filter(|s| s.standing == crate::forge::review::Standing::Approving)
            .map(|s| s.login)
            .collect();
    (Some(pull_request.number), logins)
}

/// A place where a test can stop the process dead (see `RINGMASTER_TEST_PAUSE_AT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PausePoint {
    /// After an evidence commit, before its event is recorded.
    AfterEvidenceAppend,
    /// After a plane accepted a publish, before the journal records it.
    AfterPublish,
    /// After a rollout's evidence record (a ring start, a gate, a rollback)
    /// is on the branch, before the journal records it.
    AfterRecordAppend,
    /// After a drift record is on the branch, before its events and its
    /// remediation.
    AfterDriftRecord,
    /// After a plane carried out a rollback or a drift remediation, before
    /// the journal records it.
    AfterRemediation,
    /// After the journal marked a publish sent, before the plane is called.
    BeforePublish,
    /// After the journal marked a remediation (rollback, halt, drift)
    /// sent, before the plane is called.
    BeforeRemediation,
    /// Any of the points above (`any@N`: the N-th point reached, whichever
    /// it is), for kills at random places.
    Any,
}

impl PausePoint {
    /// The point named by `RINGMASTER_TEST_PAUSE_AT`, if it names one.
    pub fn named(name: &str) -> Option<PausePoint> {
        Some(match name {
            "after-evidence-append" => PausePoint::AfterEvidenceAppend,
            "after-publish" => PausePoint::AfterPublish,
            "after-record-append" => PausePoint::AfterRecordAppend,
            "after-drift-record" => PausePoint::AfterDriftRecord,
            "after-remediation" => PausePoint::AfterRemediation,
            "before-publish" => PausePoint::BeforePublish,
            "before-remediation" => PausePoint::BeforeRemediation,
            "any" => PausePoint::Any,
            _ => return None,
        })
    }

    /// Whether a process told to pause at `at` pauses at `point`.
    pub fn hit(at: Option<PausePoint>, point: PausePoint) -> bool {
        at == Some(point) || at == Some(PausePoint::Any)
    }
}

/// Everything processing needs, borrowed from the daemon.
pub struct Processor<'a> {
    pub repo: &'a GovernedRepo,
    pub branch: &'a str,
    pub evidence: &'a EvidenceBranch,
    pub signer: &'a SigningKey,
    pub store: &'a mut Store,
    pub siem: &'a mut Siem,
    /// Test hook: announce on stderr and wait forever at this point, so a test
    /// can `kill -9` the process exactly there.
    pub pause_at: Option<PausePoint>,
    /// The forge, when configured: each commit's pull request and reviews.
    pub forge: Option<&'a dyn crate::forge::MergeFactsSource>,
    /// How each configured plane runs: a decision record says whether the
    /// intent's plane is simulated (`plane_mode`).
    pub plane_modes: std::collections::BTreeMap<crate::model::Plane, super::planes::PlaneMode>,
}

/// Runtime facts read from the store before the (parallel) evaluation:
/// what the daemon, and the PR check the daemon runs, judge with.
#[derive(Debug, Clone, Default)]
pub struct StoreFacts {
    /// Per (application, boundary, business unit): the intents in flight and
    /// their rings.
    active: HashMap<(String, String, String), Vec<(String, String)>>,
    /// Per application: versions a run rolled back (or failed a gate with)
    /// that no newer intent has superseded.
    rolled_back: HashMap<String, Vec<String>>,
    /// Every intent the store knows: its application and segment.
    known: HashMap<String, (String, TargetScope)>,
}

impl StoreFacts {
    /// Reads the facts from `store`.
    pub fn read(store: &Store) -> Result<StoreFacts, crate::store::StoreError> {
        let mut facts = StoreFacts::default();
        for page in store.intent_pages(INTENT_PAGE) {
            for record in page? {
                let segment = (
                    record.application_id.clone(),
                    record.acquisition_boundary.clone(),
                    record.business_unit.clone(),
                );
                if let std::collections::hash_map::Entry::Vacant(slot) = facts.active.entry(segment)
                {
                    let (application, boundary, unit) = slot.key();
                    let changes = store.active_changes_for(application, boundary, unit)?;
                    slot.insert(changes.into_iter().map(|c| (c.intent_id, c.ring)).collect());
                }
                facts.known.insert(
                    record.intent_id.clone(),
                    (
                        record.application_id.clone(),
                        TargetScope {
                            acquisition_boundary: record.acquisition_boundary.clone(),
                            business_unit: record.business_unit.clone(),
                            sites: None,
                            site_class: None,
                            rings: Vec::new(),
                        },
                    ),
                );
                if let Some(run) = IntentState::from_record(&record).run
                    && run.blocks_its_version()
                {
                    facts
                        .rolled_back
                        .entry(run.application_id.clone())
                        .or_default()
                        .push(run.version.clone());
                }
            }
        }
        Ok(facts)
    }
}

impl RuntimeFacts for StoreFacts {
    fn active_changes(&self, intent: &DeploymentIntent) -> Vec<(String, String)> {
        let segment = (
            intent.application_id.clone(),
            intent.target_scope.acquisition_boundary.clone(),
            intent.target_scope.business_unit.clone(),
        );
        self.active
            .get(&segment)
            .into_iter()
            .flatten()
            .filter(|(id, _)| *id != intent.intent_id)
            .cloned()
            .collect()
    }
    fn rolled_back_versions(&self, intent: &DeploymentIntent) -> Vec<String> {
        let mut versions = self
            .rolled_back
            .get(&intent.application_id)
            .cloned()
            .unwrap_or_default();
        versions.sort();
        versions.dedup();
        versions
    }
    fn known_intent(&self, intent_id: &str) -> Option<(String, TargetScope)> {
        self.known.get(intent_id).cloned()
    }
}

fn identity(signature: &git2::Signature<'_>) -> GitIdentity {
    let when = signature.when();
    let offset = FixedOffset::east_opt(when.offset_minutes() * 60)
        .unwrap_or(FixedOffset::east_opt(0).expect("zero offset"));
    GitIdentity {
        name: signature.name().unwrap_or("unknown").to_owned(),
        email: signature.email().unwrap_or("unknown").to_owned(),
        time: offset
            .timestamp_opt(when.seconds(), 0)
            .single()
            .unwrap_or_else(|| offset.timestamp_opt(0, 0).single().expect("epoch")),
    }
}

impl Processor<'_> {
    /// Commits on the tracked branch not yet processed, oldest first (first
    /// parents only: each merge is one change). On a first start only the tip.
    pub fn pending_commits(&self) -> Result<Vec<Oid>, ProcessError> {
        let repository = &self.repo.repository;
        let Ok(reference) = repository.find_reference(&format!("refs/heads/{}", self.branch))
        else {
            return Ok(Vec::new());
        };
        let tip = reference.peel_to_commit()?.id();
        let last = self.store.last_processed_commit(self.branch)?;
        let Some(last) = last else {
            return Ok(vec![tip]);
        };
        let last = Oid::from_str(&last.commit_sha)?;
        if last == tip {
            return Ok(Vec::new());
        }
        if !repository.graph_descendant_of(tip, last).unwrap_or(false) {
            tracing::warn!(%last, %tip, branch = self.branch, "tracked branch was rewritten; processing its tip only");
            return Ok(vec![tip]);
        }
        let mut walk = repository.revwalk()?;
        walk.push(tip)?;
        walk.hide(last)?;
        walk.simplify_first_parent()?;
        walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE)?;
        Ok(walk.collect::<Result<Vec<_>, _>>()?)
    }

    /// Processes every pending commit; stops at the first that fails (it is
    /// retried next time, nothing after it is skipped).
    pub fn process_pending(
        &mut self,
        now: DateTime<Utc>,
    ) -> Result<Vec<CommitReport>, ProcessError> {
        let mut reports = Vec::new();
        for commit in self.pending_commits()? {
            reports.push(self.process_commit(commit, now)?);
        }
        // An approval or exception read by the last judgement has expired
        // since: judge again now, without waiting for a commit.
        if let Some(report) = self.rejudge_if_due(now)? {
            reports.push(report);
        }
        Ok(reports)
    }

    /// Judges the last good commit again when an intent's DENY came only
    /// from changes in flight (`waits_on`, one active change per application
    /// and ring) and none of them is in flight any more: that DENY clears
    /// when they end, not at the next commit. Intents whose decision changes
    /// get a new decision record; their runs hear it at the next pass.
    pub fn rejudge_if_cleared(
        &mut self,
        now: DateTime<Utc>,
    ) -> Result<Option<CommitReport>, ProcessError> {
        let mut cleared = None;
        for page in self.store.intent_pages(INTENT_PAGE) {
            // Every page is read, as the whole table was: a stored state
            // that does not read fails the pass wherever it is.
            let page = page?;
            if cleared.is_some() {
                continue;
            }
            for record in page {
                let Some(evaluation) = IntentState::from_record(&record).evaluation else {
                    continue;
                };
                if evaluation.waits_on.is_empty() {
                    continue;
                }
                let active = self.store.active_changes_for(
                    &record.application_id,
                    &record.acquisition_boundary,
                    &record.business_unit,
                )?;
                let still = evaluation
                    .waits_on
                    .iter()
                    .any(|waited| active.iter().any(|change| change.intent_id == *waited));
                if !still {
                    cleared = Some((record.intent_id.clone(), evaluation.waits_on.clone()));
                    break;
                }
            }
        }
        let Some((intent, waited)) = cleared else {
            return Ok(None);
        };
        let Some(good) = self.store.last_good_commit(self.branch)? else {
            return Ok(None);
        };
        tracing::info!(%intent, ?waited, commit = %good.commit_sha, "the changes a DENY waited on ended: judging the decisions again");
        let commit = Oid::from_str(&good.commit_sha)?;
        self.process_commit(commit, now).map(Some)
    }

    /// Processes one new commit of the tracked branch.
    pub fn process_commit(
        &mut self,
        commit: Oid,
        now: DateTime<Utc>,
    ) -> Result<CommitReport, ProcessError> {
        self.judge_and_record(commit, now, Occasion::NewCommit)
    }

    /// Judges the last judged commit again when an approval or exception it
    /// read has expired (`rejudge_at` in the rules state is due): expiry
    /// takes effect at its instant, not at the next commit. Intents whose
    /// decision changes get a new decision pack, and their runs hear the
    /// new verdict at the next pass (a running rollout holds before its
    /// next ring that needs the lapsed approval or exception).
    pub fn rejudge_if_due(
        &mut self,
        now: DateTime<Utc>,
    ) -> Result<Option<CommitReport>, ProcessError> {
        let Some(state) = self.store.rules_state(self.branch)? else {
            return Ok(None);
        };
        if state.rejudge_at.is_none_or(|at| now < at) {
            return Ok(None);
        }
        let commit = Oid::from_str(&state.judged_commit)?;
        tracing::info!(commit = %state.judged_commit, %now, "an approval or exception expired: judging the decisions again");
        self.judge_and_record(commit, now, Occasion::Expiry)
            .map(Some)
    }

    /// When the decisions must be judged again, if an expiry is ahead.
    pub fn rejudge_at(&self) -> Result<Option<DateTime<Utc>>, ProcessError> {
        Ok(self
            .store
            .rules_state(self.branch)?
            .and_then(|state| state.rejudge_at))
    }

    /// Judges `commit` with every fact the daemon has (see [`Judged`]).
    fn judge_commit(&mut self, commit: Oid, now: DateTime<Utc>) -> Result<Judged, ProcessError> {
        let repository = &self.repo.repository;
        let commit_object = repository.find_commit(commit)?;
        let parent = commit_object.parent_ids().next();
        let sha = commit.to_string();
        let entries = self.repo.entries_at(commit)?;
        // Runtime facts, read before the parallel evaluation.
        let facts = StoreFacts::read(self.store)?;
        let in_force = super::rules::load(self.store, self.repo, self.branch, now)?;
        let root = in_force
            .as_ref()
            .map(|f| Oid::from_str(&f.state.root_commit))
            .transpose()?;
        let merge_facts = match self.forge {
            Some(forge) => Some(
                forge
                    .merge_facts_blocking(self.repo, self.evidence.branch_name(), &sha, root)
                    .map_err(|error| ProcessError::Forge(Box::new(error)))?,
            ),
            None => None,
        };
        let author = identity(&commit_object.author());
        let committer = identity(&commit_object.committer());
        let Some(in_force) = in_force.filter(|f| f.state.root_commit != sha) else {
            // The root of authority: its rules, scopes and records are
            // trusted by definition.
            let (judgement, forge_evidence) = crate::forge::evaluate_commit(CommitCase {
                entries: &entries,
                rules: None,
                identities: None,
                base: None,
                previous: None,
                history: &crate::judge::NO_HISTORY,
                provenance: None,
                facts: merge_facts.as_ref(),
                runtime: &facts,
                now,
            });
            return Ok(Judged {
                sha,
                parent,
                author,
                committer,
                base: None,
                judgement,
                forge_evidence,
                governance: Governance::Root,
                in_force: None,
                touches_rules: true,
            });
        };

        let parent_entries = match parent {
            Some(parent) => Some(self.repo.entries_at(parent)?),
            None => None,
        };
        // Whether the commit touches the rules is all the parent's entries
        // are read for besides its snapshot: found first, so that its bytes
        // become the snapshot's texts (moved, not copied) and are not held
        // twice while the commit is judged.
        let touches_rules = match &parent_entries {
            Some(parent_entries) => {
                !super::rules::changed_rules(parent_entries, &entries).is_empty()
            }
            None => true,
        };
        let previous = parent_entries.map(|e| crate::model::load_owned(e).0);
        let own_signature = history::commit_signature(repository, commit);
        let paths = super::rules::changed_rules(&in_force.rules_entries, &entries);
        let governance = if paths.is_empty() {
            Governance::Unchanged
        } else {
            // The commit's own signature, and for a merge the merged commit's
            // when it brings exactly these rules (a signed branch merged).
            let mut signatures = vec![own_signature.clone()];
            for merged in commit_object.parent_ids().skip(1) {
                if super::rules::changed_rules(&self.repo.entries_at(merged)?, &entries).is_empty()
                {
                    signatures.push(history::commit_signature(repository, merged));
                }
            }
            let (pull_request, approving) = approving_logins(merge_facts.as_ref());
            match authority::authorise_rules_change(
                &in_force.rules,
                pull_request,
                &approving,
                &signatures,
            ) {
                Ok(by) => Governance::Authorised { paths, by },
                Err(reason) => Governance::Unauthorised { paths, reason },
            }
        };
        let change_history = ChangeHistory {
            signed: match parent {
                Some(parent) => history::changed_records(self.repo, parent, commit)?,
                None => Default::default(),
            },
            commits: vec![own_signature],
        };
        let local_provenance = match (&merge_facts, parent) {
            (None, Some(parent)) => Some(history::provenance(self.repo, parent, root)?),
            _ => None,
        };
        let provenance = merge_facts
            .as_ref()
            .map(|f| &f.provenance)
            .or(local_provenance.as_ref());
        let base = previous.as_ref().map(|previous| {
            let missing = in_force
                .scopes
                .keys()
                .any(|id| !previous.applications.contains_key(id));
            let current = if missing {
                crate::model::load(&entries).0
            } else {
                Snapshot::default()
            };
            super::rules::scopes_base(previous, &current, &in_force.scopes)
        });
        let (judgement, forge_evidence) = crate::forge::evaluate_commit(CommitCase {
            entries: &entries,
            rules: (!governance.own_rules()).then_some(&in_force.rules),
            identities: Some(&in_force.rules),
            base: base.as_ref(),
            previous: previous.as_ref(),
            history: &change_history,
            provenance,
            facts: merge_facts.as_ref(),
            runtime: &facts,
            now,
        });
        Ok(Judged {
            sha,
            parent,
            author,
            committer,
            base,
            judgement,
            forge_evidence,
            governance,
            in_force: Some(in_force),
            touches_rules,
        })
    }

    fn judge_and_record(
        &mut self,
        commit: Oid,
        now: DateTime<Utc>,
        occasion: Occasion,
    ) -> Result<CommitReport, ProcessError> {
        let judged = self.judge_commit(commit, now)?;
        let sha = judged.sha.clone();
        let snapshot = &judged.judgement.snapshot;
        let evaluation = &judged.judgement.evaluation;
        let errors = evaluation
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .count();
        if errors > 0 {
            let diagnostics = serde_json::to_value(&evaluation.diagnostics).unwrap_or(Value::Null);
            self.store.append_event(NewEvent {
                correlation_id: format!("commit:{sha}"),
                intent_id: None,
                event_type: EventType::CommitProcessed,
                timestamp: now,
                actor: ACTOR.into(),
                actor_role: ACTOR_ROLE.into(),
                execution_plane: None,
                ring: None,
                outcome: EventOutcome::Failure,
                details: json!({"commit": sha, "errors": errors, "diagnostics": diagnostics, "action": "kept the last good snapshot"}),
            })?;
            self.store.record_commit(
                self.branch,
                &sha,
                CommitOutcome::Invalid,
                &diagnostics,
                now,
            )?;
            self.siem.emit(
                &json!({"type": "invalid_commit", "commit": sha, "errors": errors, "at": now}),
            );
            tracing::warn!(commit = %sha, errors, "commit has invalid files; keeping the last good snapshot");
            return Ok(CommitReport {
                commit: sha,
                outcome: CommitOutcome::Invalid,
                errors,
                records: Vec::new(),
                unchanged: 0,
            });
        }

        let mut state = match occasion {
            Occasion::NewCommit => self.record_governance(&judged, now)?,
            Occasion::Expiry => self.store.rules_state(self.branch)?,
        };
        let mut records = Vec::new();
        // 1. Which intents changed: a decision or content the store does
        //    not hold yet (what the store holds was recorded, and is not
        //    recorded again).
        let mut changed = Vec::new();
        let mut unchanged = 0;
        for intent_evaluation in &evaluation.intents {
            let Some(intent) = snapshot.intents.get(&intent_evaluation.intent_id) else {
                continue;
            };
            let fingerprint = record::fingerprint(intent, intent_evaluation);
            let known = self.store.get_intent(&intent.intent_id)?;
            if known
                .as_ref()
                .is_some_and(|k| k.content_sha256 == fingerprint)
            {
                unchanged += 1;
                continue;
            }
            changed.push((intent, intent_evaluation, fingerprint));
        }
        // 2. Decisions already on the branch's tip: a crash after an append,
        //    before the store heard of it. Only the tip can hold such
        //    records: every earlier batch was recorded before the next one
        //    was appended.
        let on_tip = self.decisions_on_tip(&sha)?;
        // 3. In batches: sign and commit the batch's decisions as one
        //    evidence commit, then record them in the store in one
        //    transaction (see `decision_batch_size`).
        let batch_size = decision_batch_size(changed.len());
        // The same for every decision of the commit: hashed once.
        let policy_bundle = record::policy_bundle_sha256(snapshot);
        for batch in changed.chunks(batch_size) {
            let mut inputs = Vec::with_capacity(batch.len());
            for (intent, intent_evaluation, fingerprint) in batch {
                inputs.push(self.decision_input(
                    &judged,
                    intent,
                    intent_evaluation,
                    fingerprint,
                    &policy_bundle,
                    occasion,
                    now,
                ));
            }
            // The inputs move into the batch: a decision body is built once
            // and never copied (issue 17: a batch's bodies are its memory).
            let appended = self.append_decisions(inputs, &on_tip)?;
            if PausePoint::hit(self.pause_at, PausePoint::AfterEvidenceAppend) {
                pause_forever("after-evidence-append");
            }
            let mut writes = Vec::with_capacity(batch.len());
            for ((intent, intent_evaluation, fingerprint), (record, fresh)) in
                batch.iter().zip(&appended)
            {
                let correlation_id = correlation_id_for(&intent.intent_id);
                // A freshly signed pack has a new hash: no event names it yet.
                let event = if *fresh || !self.event_recorded(&intent.intent_id, record)? {
                    Some(committed_event(
                        intent_evaluation,
                        record,
                        &correlation_id,
                        &sha,
                        now,
                    ))
                } else {
                    None
                };
                let known = self.store.get_intent(&intent.intent_id)?;
                writes.push(DecisionWrite {
                    event,
                    intent: IntentUpsert {
                        intent_id: intent.intent_id.clone(),
                        application_id: intent.application_id.clone(),
                        acquisition_boundary: intent.target_scope.acquisition_boundary.clone(),
                        business_unit: intent.target_scope.business_unit.clone(),
                        version: intent.version.clone(),
                        content_sha256: fingerprint.clone(),
                        state: known
                            .as_ref()
                            .map(|k| k.state.clone())
                            .unwrap_or_else(|| "risk_assessed".into()),
                        state_json: with_evaluation(
                            known.map(|k| k.state_json),
                            evaluation_facts(snapshot, intent, intent_evaluation, &sha),
                        ),
                        decision: Some(intent_evaluation.decision().as_str().to_owned()),
                        risk_score: intent_evaluation
                            .risk
                            .as_ref()
                            .map(|r| u8::try_from(r.risk_score).unwrap_or(100)),
                    },
                });
            }
            let head = appended
                .iter()
                .map(|(record, _)| record)
                .max_by_key(|record| record.sequence)
                .map(|record| HeadWrite {
                    sequence: record.sequence,
                    pack_sha256: record.pack_sha256.clone(),
                    evidence_commit_sha: record.commit.clone(),
                });
            if let Some(head) = head {
                self.store.record_decisions(writes, &head, now)?;
            }
            for ((intent, intent_evaluation, _), (record, _)) in batch.iter().zip(appended) {
                self.emit_decision_lines(snapshot, intent, intent_evaluation, &record, &sha, now);
                records.push(RecordedDecision::from(record));
            }
        }
        records.shrink_to_fit();
        let rejudge_at = judged.judgement.next_expiry(now);
        if let Some(state) = state.as_mut() {
            if occasion == Occasion::NewCommit
                && let Some(in_force) = &judged.in_force
            {
                let rules = if judged.governance.own_rules() {
                    snapshot
                } else {
                    &in_force.rules
                };
                let (scopes, changed) =
                    super::rules::authorised_scopes(&in_force.scopes, snapshot, rules, now);
                if !changed.is_empty() {
                    tracing::info!(applications = ?changed, "application scope changes approved: in force from this commit");
                }
                state.app_scopes = super::rules::scopes_json(&scopes);
            }
            state.judged_commit = sha.clone();
            state.rejudge_at = rejudge_at;
            self.store.save_rules_state(state, now)?;
        }
        if occasion == Occasion::Expiry {
            self.store.append_event(NewEvent {
                correlation_id: format!("commit:{sha}"),
                intent_id: None,
                event_type: EventType::PolicyEvaluated,
                timestamp: now,
                actor: ACTOR.into(),
                actor_role: ACTOR_ROLE.into(),
                execution_plane: None,
                ring: None,
                outcome: EventOutcome::Info,
                details: json!({"commit": sha, "reason": "an approval or exception expired, or a change freeze ended", "records": records.len(), "unchanged": unchanged, "next_rejudge_at": rejudge_at}),
            })?;
            return Ok(CommitReport {
                commit: sha,
                outcome: CommitOutcome::Ok,
                errors: 0,
                records,
                unchanged,
            });
        }
        self.store.append_event(NewEvent {
            correlation_id: format!("commit:{sha}"),
            intent_id: None,
            event_type: EventType::CommitProcessed,
            timestamp: now,
            actor: ACTOR.into(),
            actor_role: ACTOR_ROLE.into(),
            execution_plane: None,
            ring: None,
            outcome: EventOutcome::Success,
            details: json!({"commit": sha, "records": records.len(), "unchanged": unchanged}),
        })?;
        tracing::info!(commit = %sha, records = records.len(), unchanged, "decisions recorded");
        // Warnings (e.g. a supersede that has no effect, a claim that does
        // not count) stay on record.
        let warnings = serde_json::to_value(&evaluation.diagnostics).unwrap_or(Value::Null);
        self.store
            .record_commit(self.branch, &sha, CommitOutcome::Ok, &warnings, now)?;
        Ok(CommitReport {
            commit: sha,
            outcome: CommitOutcome::Ok,
            errors: 0,
            records,
            unchanged,
        })
    }

    /// Records what a valid commit did to the rules in force (see
    /// `daemon::rules`): the root of authority, an authorised change (it
    /// takes effect), an unauthorised one (an event, a SIEM line and an
    /// evidence pack, once per change), or a change reverted. Returns the
    /// new state, already saved, so a crash after it does not record twice.
    fn record_governance(
        &mut self,
        judged: &Judged,
        now: DateTime<Utc>,
    ) -> Result<Option<RulesState>, ProcessError> {
        let sha = &judged.sha;
        let (state, record): (RulesState, Option<(EventType, EventOutcome, Value)>) = match (
            &judged.governance,
            &judged.in_force,
        ) {
            (Governance::Root, Some(in_force)) => (in_force.state.clone(), None),
            (Governance::Root, None) => (
                super::rules::root_state(self.branch, sha, &judged.judgement.snapshot),
                Some((
                    EventType::RulesInForce,
                    EventOutcome::Info,
                    json!({"kind": "root_of_authority", "commit": sha, "branch": self.branch,
                               "message": "the first commit the daemon judges is authorised by definition: its rules, application scopes and records are trusted"}),
                )),
            ),
            (_, None) => return Ok(None),
            (Governance::Unchanged, Some(in_force)) => {
                let mut state = in_force.state.clone();
                let reverted = state.unauthorised.take();
                let record = reverted.map(|previous| {
                        (
                            EventType::RulesInForce,
                            EventOutcome::Info,
                            json!({"kind": "unauthorised_change_reverted", "commit": sha, "rules_in_force": state.rules_commit, "previous": previous}),
                        )
                    });
                (state, record)
            }
            (Governance::Authorised { paths, by }, Some(in_force)) => {
                let mut state = in_force.state.clone();
                let previous_rules = std::mem::replace(&mut state.rules_commit, sha.clone());
                let superseded = state.unauthorised.take();
                (
                    state,
                    Some((
                        EventType::RulesInForce,
                        EventOutcome::Success,
                        json!({"kind": "governance_change_authorised", "commit": sha, "paths": paths,
                                   "authorised_by": by, "previous_rules": previous_rules,
                                   "unauthorised_change_it_ends": superseded}),
                    )),
                )
            }
            (Governance::Unauthorised { paths, reason }, Some(in_force)) => {
                let mut state = in_force.state.clone();
                let already = state
                    .unauthorised
                    .as_ref()
                    .is_some_and(|u| u["commit"] == Value::String(sha.clone()));
                let new_change = state.unauthorised.is_none() || judged.touches_rules;
                if already || !new_change {
                    (state, None)
                } else {
                    let unauthorised = super::rules::unauthorised_record(
                        sha,
                        &state.rules_commit,
                        paths,
                        reason,
                        now,
                    );
                    state.unauthorised = Some(unauthorised.clone());
                    (
                        state,
                        Some((
                            EventType::GovernanceChangeUnauthorised,
                            EventOutcome::Failure,
                            json!({"kind": "governance_change_unauthorised", "commit": sha, "paths": paths,
                                       "reason": reason, "rules_in_force": unauthorised["rules_in_force"],
                                       "action": "judged by the rules in force; the change takes effect only when an admin authorises it (an approving review on the pull request head, or a commit signed by an admin's key)"}),
                        )),
                    )
                }
            }
        };
        if let Some((event_type, outcome, details)) = record {
            // The root of authority is named in every decision pack
            // (`rules_in_force`); a change to the rules gets its own pack.
            let mut event_details = details.clone();
            if details["kind"] != "root_of_authority" {
                let appended = self.append_once(EvidencePackInput {
                    record_type: RecordType::Governance,
                    intent_id: None,
                    correlation_id: format!("governance:{}", self.branch),
                    source_commit: sha.clone(),
                    source_parent: judged.parent.map(|p| p.to_string()),
                    author: judged.author.clone(),
                    committer: judged.committer.clone(),
                    created_at: now,
                    body: details.clone(),
                })?;
                self.store.set_evidence_head(
                    appended.sequence,
                    &appended.pack_sha256,
                    &appended.commit,
                    now,
                )?;
                if let Value::Object(map) = &mut event_details {
                    map.insert("evidence_sha256".into(), json!(appended.pack_sha256));
                    map.insert("evidence_sequence".into(), json!(appended.sequence));
                }
            }
            self.store.append_event(NewEvent {
                correlation_id: format!("governance:{}", self.branch),
                intent_id: None,
                event_type,
                timestamp: now,
                actor: ACTOR.into(),
                actor_role: ACTOR_ROLE.into(),
                execution_plane: None,
                ring: None,
                outcome,
                details: event_details.clone(),
            })?;
            let mut line = event_details;
            if let Value::Object(map) = &mut line {
                let kind = map.get("kind").cloned().unwrap_or(Value::Null);
                map.insert("type".into(), kind);
                map.insert("at".into(), json!(now));
            }
            self.siem.emit(&line);
            match event_type {
                EventType::GovernanceChangeUnauthorised => {
                    tracing::warn!(commit = %sha, "a change to the rules that no admin authorised: judged by the rules in force")
                }
                _ => tracing::info!(commit = %sha, "rules in force: {}", details["kind"]),
            }
        }
        let saved = self.store.save_rules_state(&state, now)?;
        Ok(Some(saved))
    }

    /// Appends the record unless the branch tip already is this record (a
    /// crash after the append, before the store heard of it).
    fn append_once(&mut self, input: EvidencePackInput) -> Result<AppendedRecord, ProcessError> {
        if let Some(existing) = self.tip_record_for(&input)? {
            tracing::info!(
                sequence = existing.sequence,
                "evidence for this change is already on the branch; not appending again"
            );
            return Ok(existing);
        }
        let context = super::append_context(self.store)?;
        match self.evidence.append(input.clone(), self.signer, &context) {
            Ok(record) => Ok(record),
            Err(error) => {
                self.store.append_event(NewEvent {
                    correlation_id: input.correlation_id.clone(),
                    intent_id: input.intent_id.clone(),
                    event_type: EventType::PublishBlocked,
                    timestamp: input.created_at,
                    actor: ACTOR.into(),
                    actor_role: ACTOR_ROLE.into(),
                    execution_plane: None,
                    ring: None,
                    outcome: EventOutcome::Failure,
                    details: json!({"reason": format!("evidence branch cannot be written: {error}"), "commit": input.source_commit}),
                })?;
                Err(error.into())
            }
        }
    }

    /// The record on the branch's tip that is this input's record, if any
    /// (the tip commit may be a batch: every record of it is looked at).
    fn tip_record_for(
        &self,
        input: &EvidencePackInput,
    ) -> Result<Option<AppendedRecord>, ProcessError> {
        Ok(self
            .evidence
            .tip_records()?
            .into_iter()
            .find(|record| same_record(&record.pack, input))
            .map(appended_record))
    }

    /// The decision records of commit `sha` the branch's tip holds, by
    /// intent (see `judge_and_record`, step 2).
    fn decisions_on_tip(&self, sha: &str) -> Result<HashMap<String, CommitRecord>, ProcessError> {
        Ok(self
            .evidence
            .tip_records()?
            .into_iter()
            .filter(|record| {
                record.pack.record_type == RecordType::Decision && record.pack.source_commit == sha
            })
            .filter_map(|record| Some((record.pack.intent_id.clone()?, record)))
            .collect())
    }

    /// The signed record of every input, in input order, each with whether
    /// it was appended now (`true`) or found on the tip (`false`): the
    /// inputs the tip does not hold are appended as one batch. If the
    /// evidence branch cannot be written, a `publish_blocked` event says so
    /// and nothing is recorded (invariant 5).
    fn append_decisions(
        &mut self,
        inputs: Vec<EvidencePackInput>,
        on_tip: &HashMap<String, CommitRecord>,
    ) -> Result<Vec<(AppendedRecord, bool)>, ProcessError> {
        let mut found: Vec<Option<AppendedRecord>> = Vec::with_capacity(inputs.len());
        let mut missing = Vec::new();
        for input in inputs {
            let existing = input
                .intent_id
                .as_ref()
                .and_then(|intent_id| on_tip.get(intent_id))
                .filter(|record| same_record(&record.pack, &input))
                .map(|record| appended_record(record.clone()));
            if existing.is_none() {
                missing.push(input);
            }
            found.push(existing);
        }
        if found.iter().any(Option::is_some) {
            tracing::info!(
                records = found.iter().flatten().count(),
                "evidence for these decisions is already on the branch; not appending again"
            );
        }
        let appended = if missing.is_empty() {
            Vec::new()
        } else {
            let context = super::append_context(self.store)?;
            let count = missing.len();
            // What the failure event names: the first input's ids, not a
            // copy of its body.
            let first = &missing[0];
            let (correlation_id, intent_id, created_at, source_commit) = (
                first.correlation_id.clone(),
                first.intent_id.clone(),
                first.created_at,
                first.source_commit.clone(),
            );
            match self.evidence.append_batch(missing, self.signer, &context) {
                Ok(appended) => appended,
                Err(error) => {
                    self.store.append_event(NewEvent {
                        correlation_id,
                        intent_id,
                        event_type: EventType::PublishBlocked,
                        timestamp: created_at,
                        actor: ACTOR.into(),
                        actor_role: ACTOR_ROLE.into(),
                        execution_plane: None,
                        ring: None,
                        outcome: EventOutcome::Failure,
                        details: json!({"reason": format!("evidence branch cannot be written: {error}"), "commit": source_commit, "records": count}),
                    })?;
                    return Err(error.into());
                }
            }
        };
        let mut appended = appended.into_iter();
        let mut records = Vec::with_capacity(found.len());
        for existing in found {
            match existing {
                Some(record) => records.push((record, false)),
                None => {
                    let record = appended.next().ok_or_else(|| {
                        crate::evidence::EvidenceError::InvalidInput {
                            reason: "the batch appended fewer records than it was given".to_owned(),
                        }
                    })?;
                    records.push((record, true));
                }
            }
        }
        Ok(records)
    }

    /// The decision record's input: the body `docs/evidence.md` describes.
    /// `policy_bundle_sha256` is passed in: it is the same for every
    /// decision of a commit and hashed once per commit.
    #[allow(clippy::too_many_arguments)]
    fn decision_input(
        &self,
        judged: &Judged,
        intent: &crate::model::Located<DeploymentIntent>,
        intent_evaluation: &crate::evaluation::IntentEvaluation,
        fingerprint: &str,
        policy_bundle_sha256: &str,
        occasion: Occasion,
        now: DateTime<Utc>,
    ) -> EvidencePackInput {
        let snapshot = &judged.judgement.snapshot;
        let sha = &judged.sha;
        let mut body = record::decision_body(
            snapshot,
            judged.base.as_ref(),
            intent,
            intent_evaluation,
            sha,
            judged.forge_evidence.for_intent(intent_evaluation),
            policy_bundle_sha256,
        );
        if let Value::Object(map) = &mut body {
            map.insert(
                "claims_not_counted".into(),
                record::claims_not_counted(snapshot, intent, &judged.judgement.applied),
            );
            map.insert(
                "rules_in_force".into(),
                json!({
                    "commit": judged.in_force.as_ref().map_or(sha.as_str(), |f| {
                        if judged.governance.own_rules() { sha.as_str() } else { f.state.rules_commit.as_str() }
                    }),
                    "governance": judged.governance,
                }),
            );
            map.insert("fingerprint".into(), json!(fingerprint));
            // The verdict the rollout runs under, as the store keeps it:
            // what `ringmaster rebuild` restores it from (docs/evidence.md).
            map.insert(
                "evaluation_facts".into(),
                json!(evaluation_facts(snapshot, intent, intent_evaluation, sha)),
            );
            if occasion == Occasion::Expiry {
                map.insert("rejudged_at_expiry".into(), json!(now));
            }
        }
        if let Some(plane) = snapshot.artifact_of(intent).map(|artifact| artifact.plane) {
            body["plane_mode"] = json!(self.plane_modes.get(&plane).map(|mode| mode.as_str()));
        }
        EvidencePackInput {
            record_type: RecordType::Decision,
            intent_id: Some(intent.intent_id.clone()),
            correlation_id: correlation_id_for(&intent.intent_id),
            source_commit: sha.clone(),
            source_parent: judged.parent.map(|p| p.to_string()),
            author: judged.author.clone(),
            committer: judged.committer.clone(),
            created_at: now,
            body,
        }
    }

    /// Whether the store has the `evidence_committed` event of this pack.
    fn event_recorded(
        &self,
        intent_id: &str,
        appended: &AppendedRecord,
    ) -> Result<bool, ProcessError> {
        let previous = self.store.events(&EventFilter {
            intent_id: Some(intent_id.to_owned()),
            correlation_id: None,
            since_seq: None,
            limit: None,
        })?;
        Ok(previous.iter().rev().any(|event| {
            event.event_type == EventType::EvidenceCommitted
                && event.details.get("evidence_sha256").and_then(Value::as_str)
                    == Some(appended.pack_sha256.as_str())
        }))
    }

    /// The SIEM lines of a recorded decision: a privileged change, a
    /// decision other than ALLOW.
    fn emit_decision_lines(
        &mut self,
        snapshot: &Snapshot,
        intent: &DeploymentIntent,
        intent_evaluation: &crate::evaluation::IntentEvaluation,
        appended: &AppendedRecord,
        sha: &str,
        now: DateTime<Utc>,
    ) {
        let correlation_id = correlation_id_for(&intent.intent_id);
        let decision = intent_evaluation.decision();
        let privileged = snapshot
            .applications
            .get(&intent.application_id)
            .is_some_and(|a| a.privileged);
        if privileged {
            self.siem.emit(&json!({
                "type": "privileged_change",
                "intent_id": intent.intent_id,
                "application_id": intent.application_id,
                "correlation_id": correlation_id,
                "decision": decision,
                "requested_by": intent.requested_by,
                "commit": sha,
                "evidence_sha256": appended.pack_sha256,
                "at": now,
            }));
        }
        if decision != Decision::Allow {
            self.siem.emit(&json!({
                "type": "policy_violation",
                "intent_id": intent.intent_id,
                "correlation_id": correlation_id,
                "decision": decision,
                "rules": intent_evaluation.outcome.rule_ids(),
                "commit": sha,
                "evidence_sha256": appended.pack_sha256,
                "at": now,
            }));
        }
    }
}

/// How many decisions go in one evidence commit. A commit that changes a
/// few decisions writes one record per evidence commit (`git log` of the
/// branch reads one line per decision); one that changes many (a policy
/// edit, a first start of a large tenant) writes batches of
/// [`DECISION_BATCH`]: one signed record per decision still, one Git commit
/// and one store transaction per batch (issue 17: 10,000 decisions). The
/// batch size bounds the memory a batch holds and what a crash leaves for
/// the redo to find on the tip.
fn decision_batch_size(changed: usize) -> usize {
    if changed < BATCH_FROM {
        1
    } else {
        DECISION_BATCH
    }
}

/// From how many changed decisions a commit's decisions are batched.
const BATCH_FROM: usize = 32;
/// Decisions per evidence commit once batched.
const DECISION_BATCH: usize = 1_000;

/// Whether `pack` is the record `input` would make: the same kind of
/// record for the same intent at the same commit, and — a decision judged
/// again at the same commit (an expiry) is a new record — the same
/// decision and fingerprint.
fn same_record(pack: &EvidencePack, input: &EvidencePackInput) -> bool {
    pack.record_type == input.record_type
        && pack.intent_id == input.intent_id
        && pack.source_commit == input.source_commit
        && pack.body.get("fingerprint") == input.body.get("fingerprint")
        && pack.body.get("decision") == input.body.get("decision")
}

fn appended_record(record: CommitRecord) -> AppendedRecord {
    AppendedRecord {
        sequence: record.pack.sequence,
        pack_id: record.pack.pack_id.clone(),
        record_type: record.pack.record_type,
        intent_id: record.pack.intent_id.clone(),
        pack_sha256: record.tip.pack_sha256.clone(),
        previous_pack_sha256: record.pack.previous_pack_sha256.clone(),
        signature_path: format!("{}.minisig", record.tip.pack_path),
        pack_path: record.tip.pack_path,
        commit: record.tip.commit,
    }
}

/// The `evidence_committed` event of a decision record.
fn committed_event(
    evaluation: &crate::evaluation::IntentEvaluation,
    appended: &AppendedRecord,
    correlation_id: &str,
    commit: &str,
    now: DateTime<Utc>,
) -> NewEvent {
    let decision = evaluation.decision();
    NewEvent {
        correlation_id: correlation_id.to_owned(),
        intent_id: Some(evaluation.intent_id.clone()),
        event_type: EventType::EvidenceCommitted,
        timestamp: now,
        actor: ACTOR.into(),
        actor_role: ACTOR_ROLE.into(),
        execution_plane: None,
        ring: None,
        outcome: if decision == Decision::Allow {
            EventOutcome::Success
        } else {
            EventOutcome::Pending
        },
        details: json!({
            "decision": decision,
            "risk_score": evaluation.risk.as_ref().map(|r| r.risk_score),
            "rules": evaluation.outcome.rule_ids(),
            "commit": commit,
            "evidence_sequence": appended.sequence,
            "evidence_sha256": appended.pack_sha256,
            "evidence_commit": appended.commit,
            "evidence_path": appended.pack_path,
        }),
    }
}

/// The verdict the rollout driver feeds to the intent's state machine.
fn evaluation_facts(
    snapshot: &Snapshot,
    intent: &DeploymentIntent,
    evaluation: &crate::evaluation::IntentEvaluation,
    commit: &str,
) -> EvaluationFacts {
    let counted = &evaluation.outcome.counted_approvals;
    let approvals: Vec<_> = counted
        .iter()
        .filter_map(|id| snapshot.approvals.get(id))
        .collect();
    EvaluationFacts {
        decision: evaluation.decision().as_str().to_owned(),
        risk_score: evaluation
            .risk
            .as_ref()
            .map(|r| u8::try_from(r.risk_score).unwrap_or(100))
            .unwrap_or(100),
        counted_approvals: counted.clone(),
        supersedes: evaluation.supersedes.clone(),
        conditions: approvals
            .iter()
            .flat_map(|a| a.conditions.clone())
            .collect(),
        emergency_override: approvals.iter().any(|a| a.emergency_override),
        version: intent.version.clone(),
        commit: commit.to_owned(),
        waits_on: super::rollout::runtime_deny_waits_on(&evaluation.outcome),
    }
}

/// The stored state with a new verdict, keeping the rollout run as it is.
fn with_evaluation(previous: Option<Value>, facts: EvaluationFacts) -> Value {
    let mut state: IntentState = previous
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    state.evaluation = Some(facts);
    serde_json::to_value(&state).unwrap_or(Value::Null)
}

/// How many more times the named pause point is passed before the process
/// stops there (`RINGMASTER_TEST_PAUSE_AT=point@N` stops at the N-th time).
static PAUSE_SKIPS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Parses `RINGMASTER_TEST_PAUSE_AT` (`point` or `point@N`, N ≥ 1): the
/// point, with the number of times it is passed before stopping set.
pub(crate) fn pause_point_from_env(value: &str) -> Option<PausePoint> {
    let (name, nth) = match value.split_once('@') {
        Some((name, nth)) => (name, nth.parse::<u32>().ok().filter(|n| *n >= 1)?),
        None => (value, 1),
    };
    let point = PausePoint::named(name)?;
    PAUSE_SKIPS.store(nth - 1, std::sync::atomic::Ordering::SeqCst);
    Some(point)
}

/// Test hook, called each time the process reaches the pause point it was
/// given: once it has been passed as often as asked, say where we are on
/// stderr, then wait to be killed.
pub(crate) fn pause_forever(point: &str) {
    use std::sync::atomic::Ordering;
    if PAUSE_SKIPS
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return;
    }
    eprintln!("RINGMASTER-PAUSED-AT {point}");
    // `RINGMASTER_TEST_PAUSE_STOPS`: stop the whole process (SIGSTOP) and
    // go on from here once continued (a stalled replica, tests/failover.rs).
    if std::env::var_os("RINGMASTER_TEST_PAUSE_STOPS").is_some() {
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::STOP);
        // Once: the work redone after continuing passes the point again.
        PAUSE_SKIPS.store(u32::MAX, Ordering::SeqCst);
        return;
    }
    loop {
        std::thread::park();
    }
}
