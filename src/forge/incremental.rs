//! The incremental PR check: the same verdict as [`check::judge`], with the
//! base cached and only the intents a pull request can move judged again.
//!
//! A PR check judges the head by the base tip's rules and measures the
//! change from the fork point ([`check`]). Judging every intent of a
//! 10,000-intent repository for each PR costs about a second; a PR usually
//! changes one intent. [`PrCheckCache`] keeps, in memory in the daemon:
//!
//! - **loaded revisions**, keyed by commit id: the snapshot
//!   (`model::load`), its diagnostics, its compiled policies and every
//!   plane's gate-check calls. A commit id names its whole tree, so the
//!   tenant's policies, principals, config and records are covered by it;
//!   ringmaster's own schemas, built-in policies and rubric are compiled
//!   into the binary, and the cache lives only as long as the process, so
//!   the engine version cannot change under it (it is in the key anyway,
//!   [`ENGINE`], for whoever persists it);
//! - **the fork point judged by the base's rules**, keyed by (fork point,
//!   base tip): what judging each intent added to the diagnostics, with
//!   the runtime facts and the `now` it was judged with.
//!
//! Both are small LRUs ([`CACHED_REVISIONS`], [`CACHED_JUDGEMENTS`]).
//! Nothing else invalidates them: an entry is never stale, only evicted;
//! what can differ between two checks of one key (the clock, the daemon's
//! runtime facts, the reviews, the head) is compared on every check, below.
//!
//! **When the check is incremental.** Only when every path the PR changes
//! (between fork point and head, by a Git tree diff, then compared entry by
//! entry as [`changes::changed_paths`] does) is an intent, approval or
//! exception file (`intents/*.yaml`, `approvals/*.yaml`,
//! `exceptions/*.yaml`), the fork point has no duplicate ids, and no id a
//! changed file defines is defined by another file. Anything else — config,
//! principals, policies, applications, versions, entitlements, a path
//! outside the layout, a non-UTF-8 or odd path, a duplicate — is judged by
//! the full [`check::judge`] (correctness first).
//!
//! **What is judged again.** The head's snapshot is the fork point's with
//! the changed files' objects replaced by the loaded new files; reference
//! and targeting checks ([`judge::checks`]) run on the whole patched
//! snapshot; the proof (reviews, signatures) is applied by the same code as
//! the full judge ([`judge::judge_loaded`]). Of the intents, these are
//! judged again: the affected ones (the reported verdicts); every intent in
//! the segment (application, boundary, business unit) of a changed intent,
//! before and after (conflicts); every intent that declares `supersedes`,
//! and its segment (whether it may supersede, and its own decision, decide
//! warnings); every intent whose approvals, scope approvals or exceptions
//! differ from the fork point's after the proof (records the PR changed,
//! review approvals, refused records); every intent whose runtime facts
//! (in-flight changes, rolled-back versions) differ from those the cache
//! was judged with. The other intents' policy inputs are the same as in the
//! cached judgement except for `now`, and the check reports only the
//! affected intents' verdicts: of the others it needs only the diagnostics
//! their evaluation added (a policy error). The built-in rules read `now`
//! only to compare it with a record's expiry, which cannot fail; tenant
//! rules that may read `now` ([`may_read_now`]) make every intent be judged
//! again when the clock moved.
//!
//! `tests/pr_check_incremental.rs` proves the equivalence over a real Git
//! repository: for hundreds of seeded random and hostile PRs, the verdict
//! and the rendered comment are the same as the full check's.

use super::ForgeError;
use super::check::{self, Parts, PullRequestVerdict};
use super::fetch::PullRequestRevisions;
use super::review;
use super::wire::{PullRequest, Review};
use crate::authority::ChangeHistory;
use crate::diagnostic::Diagnostic;
use crate::evaluation::{self, Evaluation, RuntimeFacts};
use crate::judge::{self, Case};
use crate::model::load::MAX_FILE_BYTES;
use crate::model::{self, Entry, EntryContent, Plane, PolicyFile, Snapshot};
use crate::policy::PolicyEngine;
use crate::source::GovernedRepo;
use chrono::{DateTime, Utc};
use git2::{ObjectType, Oid, Tree};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

/// Loaded revisions kept (a base tip and a fork point or two).
pub const CACHED_REVISIONS: usize = 3;
/// Fork points judged by a base's rules kept.
pub const CACHED_JUDGEMENTS: usize = 3;
/// The judging code the cache was filled by.
pub const ENGINE: &str = env!("CARGO_PKG_VERSION");

/// One revision, loaded once.
struct Revision {
    /// `model::load`'s snapshot (what `judge::load` returns too).
    snapshot: Snapshot,
    /// `model::load`'s diagnostics.
    model_diagnostics: Vec<Diagnostic>,
    /// `judge::load`'s: `model_diagnostics` then `judge::checks`.
    load_diagnostics: Vec<Diagnostic>,
    /// Its own policies, compiled, and their diagnostics.
    engine: PolicyEngine,
    policy_diagnostics: Vec<Diagnostic>,
    gate_calls: BTreeMap<Plane, u64>,
    /// Whether loading reported a duplicate id or version.
    duplicates: bool,
}

/// One intent of a fork point, judged by a base's rules.
struct JudgedIntent {
    /// What its evaluation added to the diagnostics.
    diagnostics: Vec<Diagnostic>,
    active_changes: Vec<(String, String)>,
    rolled_back_versions: Vec<String>,
}

/// A fork point judged by a base's rules.
struct Judged {
    now: DateTime<Utc>,
    intents: HashMap<String, JudgedIntent>,
}

/// A small least-recently-used map.
struct Lru<K, V> {
    capacity: usize,
    items: Vec<(K, Arc<V>)>,
}

impl<K: PartialEq + Clone, V> Lru<K, V> {
    fn new(capacity: usize) -> Self {
        Lru {
            capacity: capacity.max(1),
            items: Vec::new(),
        }
    }

    fn get(&mut self, key: &K) -> Option<Arc<V>> {
        let index = self.items.iter().position(|(k, _)| k == key)?;
        let item = self.items.remove(index);
        let value = item.1.clone();
        self.items.insert(0, item);
        Some(value)
    }

    fn put(&mut self, key: K, value: Arc<V>) {
        self.items.retain(|(k, _)| k != &key);
        self.items.insert(0, (key, value));
        self.items.truncate(self.capacity);
    }

    fn len(&self) -> usize {
        self.items.len()
    }
}

/// How the checks went, for the status page and the tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Checks answered incrementally.
    pub incremental: u64,
    /// Checks judged in full (a change the incremental check does not take).
    pub full: u64,
    /// Revisions loaded (cache misses).
    pub loads: u64,
    /// Fork points judged in full by a base's rules (cache misses).
    pub judgements: u64,
    /// Intents judged again by the last incremental check.
    pub last_rejudged: usize,
    /// Where the last incremental check spent its time, step by step.
    pub last_phases: Vec<(&'static str, std::time::Duration)>,
}

/// The base-snapshot cache of the PR check (see the module documentation).
pub struct PrCheckCache {
    revisions: Lru<(Oid, &'static str), Revision>,
    judged: Lru<(Oid, Oid, &'static str), Judged>,
    /// A working copy of the last fork point's snapshot: each check patches
    /// it into the head in place and restores it after, instead of copying
    /// 10,000 intents.
    scratch: Option<(Oid, Snapshot)>,
    pub stats: CacheStats,
}

impl Default for PrCheckCache {
    fn default() -> Self {
        PrCheckCache::new()
    }
}

/// What one check needs besides the revisions.
pub struct CheckRequest<'a> {
    pub pull_request: &'a PullRequest,
    pub reviews: &'a [Review],
    /// `source::history::change_history` from the fork point to the head.
    pub history: &'a ChangeHistory,
    pub runtime: &'a dyn RuntimeFacts,
    pub now: DateTime<Utc>,
}

impl PrCheckCache {
    pub fn new() -> Self {
        PrCheckCache {
            revisions: Lru::new(CACHED_REVISIONS),
            judged: Lru::new(CACHED_JUDGEMENTS),
            scratch: None,
            stats: CacheStats::default(),
        }
    }

    /// Revisions and judgements held.
    pub fn held(&self) -> (usize, usize) {
        (self.revisions.len(), self.judged.len())
    }

    /// Judges a pull request: the verdict [`check::judge`] gives for the
    /// same revisions and facts.
    pub fn check(
        &mut self,
        repo: &GovernedRepo,
        revisions: PullRequestRevisions,
        request: &CheckRequest<'_>,
    ) -> Result<PullRequestVerdict, ForgeError> {
        if let Some(verdict) = self.incremental(repo, revisions, request)? {
            self.stats.incremental += 1;
            return Ok(verdict);
        }
        self.stats.full += 1;
        full_check(repo, revisions, request)
    }

    fn revision(&mut self, repo: &GovernedRepo, commit: Oid) -> Result<Arc<Revision>, ForgeError> {
        if let Some(found) = self.revisions.get(&(commit, ENGINE)) {
            return Ok(found);
        }
        let entries = repo.entries_at(commit)?;
        let (snapshot, model_diagnostics) = model::load(&entries);
        drop(entries);
        let mut load_diagnostics = model_diagnostics.clone();
        load_diagnostics.extend(judge::checks(&snapshot));
        let (engine, policy_diagnostics) = evaluation::engine_for(&snapshot);
        let duplicates = model_diagnostics
            .iter()
            .any(|d| d.message.starts_with("duplicate "));
        let revision = Arc::new(Revision {
            gate_calls: crate::plan::gate_calls_by_plane(&snapshot),
            snapshot,
            model_diagnostics,
            load_diagnostics,
            engine,
            policy_diagnostics,
            duplicates,
        });
        self.stats.loads += 1;
        self.revisions.put((commit, ENGINE), revision.clone());
        Ok(revision)
    }

    /// The verdict, or `None` when the change needs the full check.
    fn incremental(
        &mut self,
        repo: &GovernedRepo,
        revisions: PullRequestRevisions,
        request: &CheckRequest<'_>,
    ) -> Result<Option<PullRequestVerdict>, ForgeError> {
        let mut phases = Phases::start();
        let Some(changed_entries) = changed_entries(repo, revisions.fork_point, revisions.head)?
        else {
            return Ok(None);
        };
        if !changed_entries
            .iter()
            .all(|(path, _)| incremental_path(path))
        {
            return Ok(None);
        }
        let fork = self.revision(repo, revisions.fork_point)?;
        let base = self.revision(repo, revisions.base)?;
        if fork.duplicates {
            return Ok(None);
        }
        let changed: BTreeSet<String> = changed_entries.iter().map(|(p, _)| p.clone()).collect();
        phases.lap("diff and cached revisions");

        // The head: the fork point with the changed files loaded again.
        let new_entries: Vec<Entry> = changed_entries.into_iter().filter_map(|(_, e)| e).collect();
        let (loaded, mut new_diagnostics) = model::load(&new_entries);
        // Loading only some files reports the (absent) config as missing.
        new_diagnostics.retain(|d| d.file != "ringmaster.yaml");
        if new_diagnostics
            .iter()
            .any(|d| d.message.starts_with("duplicate "))
            || loaded.config.is_some()
            || !loaded.principals.is_empty()
            || !loaded.applications.is_empty()
            || !loaded.versions.is_empty()
            || !loaded.entitlements.is_empty()
            || !loaded.policies.is_empty()
        {
            return Ok(None);
        }
        phases.lap("load changed files");
        let mut head = match self.scratch.take() {
            Some((commit, snapshot)) if commit == revisions.fork_point => snapshot,
            _ => fork.snapshot.clone(),
        };
        phases.lap("copy the fork point");
        let removed = take_files(&mut head.intents, &changed);
        take_files(&mut head.approvals, &changed);
        take_files(&mut head.exceptions, &changed);
        let added: Vec<String> = loaded.intents.keys().cloned().collect();
        if !put_all(&mut head.intents, loaded.intents)
            || !put_all(&mut head.approvals, loaded.approvals)
            || !put_all(&mut head.exceptions, loaded.exceptions)
        {
            return Ok(None);
        }
        let mut gate_calls = fork.gate_calls.clone();
        for intent in &removed {
            // Versions and entitlements are the fork point's in the head.
            if let Some((plane, calls)) = crate::plan::gate_calls(&head, intent) {
                *gate_calls.entry(plane).or_insert(0) -= calls;
            }
        }
        for id in &added {
            if let Some((plane, calls)) = crate::plan::gate_calls(&head, &head.intents[id]) {
                *gate_calls.entry(plane).or_insert(0) += calls;
            }
        }
        let mut diagnostics: Vec<Diagnostic> = fork
            .model_diagnostics
            .iter()
            .filter(|d| !changed.contains(&d.file))
            .cloned()
            .collect();
        diagnostics.append(&mut new_diagnostics);
        phases.lap("patch");
        diagnostics.extend(judge::checks(&head));
        phases.lap("reference checks");
        // No policy file changed: the head's own policies are the fork
        // point's.
        diagnostics.extend(fork.policy_diagnostics.iter().cloned());

        let judged = self.judged(&fork, &base, revisions, request);
        phases.lap("cached judgement");
        let standings = review::standings(
            request.reviews,
            &request.pull_request.head.sha,
            request.pull_request.author(),
        );
        // Intents whose objects changed, before and after.
        let mut changed_intents: Vec<(String, model::TargetScope, String)> = removed
            .iter()
            .map(|i| {
                (
                    i.intent_id.clone(),
                    i.target_scope.clone(),
                    i.application_id.clone(),
                )
            })
            .collect();
        changed_intents.extend(added.iter().map(|id| {
            let intent = &head.intents[id];
            (
                id.clone(),
                intent.target_scope.clone(),
                intent.application_id.clone(),
            )
        }));
        let fork_snapshot = &fork.snapshot;
        let runtime = request.runtime;
        let now = request.now;
        let base_snapshot = &base.snapshot;
        let tenant_reads_now = may_read_now(&base.snapshot.policies);
        let mut rejudged = 0;
        let mut inner = Vec::new();
        let judgement = judge::judge_loaded(
            Case {
                entries: &[],
                rules: Some(base_snapshot),
                base: Some(base_snapshot),
                proof: Some(check::proof(
                    request.pull_request,
                    fork_snapshot,
                    standings.clone(),
                    request.history,
                )),
                runtime,
                now,
            },
            head,
            diagnostics,
            &|_rules| base.engine.clone(),
            fork.engine.clone(),
            &mut |snapshot, engine, affected| {
                let again = rejudge_set(
                    snapshot,
                    fork_snapshot,
                    affected,
                    &changed_intents,
                    &judged,
                    runtime,
                    tenant_reads_now && now != judged.now,
                );
                rejudged = again.len();
                let began = std::time::Instant::now();
                let fresh = evaluation::evaluate_intents(
                    snapshot,
                    engine,
                    Some(base_snapshot),
                    now,
                    runtime,
                    Some(&again),
                );
                inner.push(("  of which evaluate re-judged intents", began.elapsed()));
                let mut fresh: BTreeMap<String, _> = fresh
                    .into_iter()
                    .map(|(e, d)| (e.intent_id.clone(), (e, d)))
                    .collect();
                let mut evaluation = Evaluation {
                    diagnostics: Vec::new(),
                    intents: Vec::new(),
                };
                for id in snapshot.intents.keys() {
                    match fresh.remove(id) {
                        Some((intent, mut found)) => {
                            evaluation.diagnostics.append(&mut found);
                            evaluation.intents.push(intent);
                        }
                        None => evaluation.diagnostics.extend(
                            judged
                                .intents
                                .get(id)
                                .map(|j| j.diagnostics.iter().cloned())
                                .into_iter()
                                .flatten(),
                        ),
                    }
                }
                evaluation
            },
        );
        self.stats.last_rejudged = rejudged;
        phases.lap("judge (proof, evaluation, scope changes)");
        phases.laps.extend(inner);
        let (verdict, mut head) = check::verdict(Parts {
            pull_request: request.pull_request,
            base_sha: &revisions.base.to_string(),
            changed,
            base: &base.snapshot,
            base_diagnostics: &base.load_diagnostics,
            fork_point: &fork.snapshot,
            standings,
            judgement,
            gate_calls: Some(gate_calls),
        });
        phases.lap("verdict");
        // Back to the fork point: what the check changed is put back.
        head.config = fork.snapshot.config.clone();
        head.principals = fork.snapshot.principals.clone();
        head.policies = fork.snapshot.policies.clone();
        head.approvals = fork.snapshot.approvals.clone();
        head.exceptions = fork.snapshot.exceptions.clone();
        for id in &added {
            head.intents.remove(id);
        }
        for intent in removed {
            head.intents.insert(intent.intent_id.clone(), intent);
        }
        self.scratch = Some((revisions.fork_point, head));
        phases.lap("restore the working copy");
        self.stats.last_phases = phases.laps;
        Ok(Some(verdict))
    }

    /// The fork point judged by the base's rules, from the cache or judged now.
    fn judged(
        &mut self,
        fork: &Revision,
        base: &Revision,
        revisions: PullRequestRevisions,
        request: &CheckRequest<'_>,
    ) -> Arc<Judged> {
        let key = (revisions.fork_point, revisions.base, ENGINE);
        if let Some(found) = self.judged.get(&key) {
            return found;
        }
        let mut snapshot = fork.snapshot.clone();
        snapshot.config = base.snapshot.config.clone();
        snapshot.principals = base.snapshot.principals.clone();
        snapshot.policies = base.snapshot.policies.clone();
        // The engine `judge::judge_loaded` picks for this pair.
        let engine = if base.snapshot.policies != fork.snapshot.policies {
            &base.engine
        } else {
            &fork.engine
        };
        let evaluated = evaluation::evaluate_intents(
            &snapshot,
            engine,
            Some(&base.snapshot),
            request.now,
            request.runtime,
            None,
        );
        let intents = evaluated
            .into_iter()
            .map(|(evaluation, diagnostics)| {
                let intent = &snapshot.intents[&evaluation.intent_id];
                (
                    evaluation.intent_id.clone(),
                    JudgedIntent {
                        diagnostics,
                        active_changes: request.runtime.active_changes(intent),
                        rolled_back_versions: request.runtime.rolled_back_versions(intent),
                    },
                )
            })
            .collect();
        let judged = Arc::new(Judged {
            now: request.now,
            intents,
        });
        self.stats.judgements += 1;
        self.judged.put(key, judged.clone());
        judged
    }
}

/// Time spent per step.
struct Phases {
    last: std::time::Instant,
    laps: Vec<(&'static str, std::time::Duration)>,
}

impl Phases {
    fn start() -> Self {
        Phases {
            last: std::time::Instant::now(),
            laps: Vec::new(),
        }
    }

    fn lap(&mut self, name: &'static str) {
        let now = std::time::Instant::now();
        self.laps.push((name, now - self.last));
        self.last = now;
    }
}

/// The full check, reading every revision from Git ([`check::judge`]).
pub fn full_check(
    repo: &GovernedRepo,
    revisions: PullRequestRevisions,
    request: &CheckRequest<'_>,
) -> Result<PullRequestVerdict, ForgeError> {
    let head_entries = repo.entries_at(revisions.head)?;
    let base_entries = repo.entries_at(revisions.base)?;
    let fork_point_entries = if revisions.fork_point == revisions.base {
        base_entries.clone()
    } else {
        repo.entries_at(revisions.fork_point)?
    };
    Ok(check::judge(&check::PullRequestInput {
        pull_request: request.pull_request,
        head_entries: &head_entries,
        base_entries: &base_entries,
        base_sha: &revisions.base.to_string(),
        fork_point_entries: &fork_point_entries,
        reviews: request.reviews,
        history: request.history,
        runtime: request.runtime,
        now: request.now,
    }))
}

/// The intents to judge again (see the module documentation).
fn rejudge_set<'a>(
    head: &'a Snapshot,
    fork: &Snapshot,
    affected: &BTreeSet<String>,
    changed_intents: &'a [(String, model::TargetScope, String)],
    judged: &Judged,
    runtime: &dyn RuntimeFacts,
    everything: bool,
) -> BTreeSet<String> {
    if everything {
        return head.intents.keys().cloned().collect();
    }
    let mut again: BTreeSet<String> = affected.clone();
    let mut segments: HashSet<(&'a str, &'a str, &'a str)> = HashSet::new();
    for (id, target, application) in changed_intents {
        again.insert(id.clone());
        segments.insert((
            application,
            &target.acquisition_boundary,
            &target.business_unit,
        ));
    }
    // Records that differ from the fork point's after the proof.
    let mut record_intents: BTreeSet<String> = BTreeSet::new();
    let mut record_applications: BTreeSet<String> = BTreeSet::new();
    for id in changed_keys(&head.approvals, &fork.approvals) {
        for record in [head.approvals.get(&id), fork.approvals.get(&id)]
            .into_iter()
            .flatten()
        {
            record_intents.insert(record.deployment_intent_id.clone());
            if let Some(scope) = &record.application_scope {
                record_applications.insert(scope.application_id.clone());
            }
        }
    }
    let mut record_artifacts: BTreeSet<String> = BTreeSet::new();
    for id in changed_keys(&head.exceptions, &fork.exceptions) {
        for record in [head.exceptions.get(&id), fork.exceptions.get(&id)]
            .into_iter()
            .flatten()
        {
            record_artifacts.insert(record.artifact_id.clone());
        }
    }
    for (id, intent) in &head.intents {
        if intent.supersedes.is_some() {
            again.insert(id.clone());
            segments.insert(segment_of(intent));
        }
    }
    let records_changed = !record_intents.is_empty() || !record_applications.is_empty();
    for (id, intent) in &head.intents {
        if again.contains(id) {
            continue;
        }
        let cached = judged.intents.get(id);
        let stale = match cached {
            None => true,
            Some(cached) => {
                runtime.active_changes(intent) != cached.active_changes
                    || runtime.rolled_back_versions(intent) != cached.rolled_back_versions
            }
        };
        if stale
            || segments.contains(&segment_of(intent))
            || (records_changed
                && (record_intents.contains(id)
                    || record_applications.contains(&intent.application_id)))
            || (!record_artifacts.is_empty()
                && head
                    .artifact_of(intent)
                    .is_some_and(|a| record_artifacts.contains(&a.id)))
        {
            again.insert(id.clone());
        }
    }
    again
}

fn segment_of(intent: &model::DeploymentIntent) -> (&str, &str, &str) {
    (
        &intent.application_id,
        &intent.target_scope.acquisition_boundary,
        &intent.target_scope.business_unit,
    )
}

/// Keys whose record was added, edited or removed.
fn changed_keys<T: PartialEq>(
    after: &BTreeMap<String, model::Located<T>>,
    before: &BTreeMap<String, model::Located<T>>,
) -> Vec<String> {
    let mut keys: Vec<String> = after
        .iter()
        .filter(|(key, value)| before.get(*key).map(|b| &b.value) != Some(&value.value))
        .map(|(key, _)| key.clone())
        .collect();
    keys.extend(
        before
            .keys()
            .filter(|key| !after.contains_key(*key))
            .cloned(),
    );
    keys
}

/// Removes the objects loaded from `files`, returning them.
fn take_files<T>(
    map: &mut BTreeMap<String, model::Located<T>>,
    files: &BTreeSet<String>,
) -> Vec<model::Located<T>> {
    let ids: Vec<String> = map
        .iter()
        .filter(|(_, object)| files.contains(&object.file))
        .map(|(id, _)| id.clone())
        .collect();
    ids.into_iter().filter_map(|id| map.remove(&id)).collect()
}

/// Adds every object; `false` when an id is already taken (a duplicate:
/// which one wins depends on the order of every file, so the full check
/// decides).
fn put_all<T>(
    map: &mut BTreeMap<String, model::Located<T>>,
    from: BTreeMap<String, model::Located<T>>,
) -> bool {
    for (id, object) in from {
        if map.contains_key(&id) {
            return false;
        }
        map.insert(id, object);
    }
    true
}

/// Whether a changed path can be judged incrementally: an intent, approval
/// or exception file where the layout expects one.
fn incremental_path(path: &str) -> bool {
    let mut parts = path.split('/');
    let (Some(folder), Some(name), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    matches!(folder, "intents" | "approvals" | "exceptions")
        && name.ends_with(".yaml")
        && name != ".yaml"
        && !name.starts_with('.')
        && !name.contains('\\')
}

/// Whether tenant policies may read `input.now` (or the clock): any use of
/// `input` other than `input.<field>` with a field other than `now`, or a
/// clock builtin. Conservative: a false alarm only costs speed.
pub fn may_read_now(policies: &[PolicyFile]) -> bool {
    policies.iter().any(|policy| {
        let source = policy.source.as_str();
        if source.contains("now_ns") || source.contains("time.") || source.contains("clock") {
            return true;
        }
        let bytes = source.as_bytes();
        let mut from = 0;
        while let Some(found) = source[from..].find("input") {
            let end = from + found + "input".len();
            from = end;
            if bytes.get(end) != Some(&b'.') {
                return true;
            }
            let field: String = source[end + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if field.is_empty() || field == "now" {
                return true;
            }
        }
        false
    })
}

/// A path a change touched and its entry after the change (`None`: removed).
type ChangedEntry = (String, Option<Entry>);

/// The governed subtree of `commit`, `None` when it has none.
fn governed_tree<'r>(repo: &'r GovernedRepo, commit: Oid) -> Result<Option<Tree<'r>>, ForgeError> {
    let root = repo
        .repository
        .find_commit(commit)
        .and_then(|c| c.tree())
        .map_err(crate::source::SourceError::from)?;
    if repo.subdir.is_empty() {
        return Ok(Some(root));
    }
    let Ok(entry) = root.get_path(Path::new(&repo.subdir)) else {
        return Ok(None);
    };
    Ok(repo.repository.find_tree(entry.id()).ok())
}

/// The entry at `path` of `tree`, read as `GovernedRepo::entries_at` reads
/// it; `None` when there is none (or it is a folder).
fn entry_at(repo: &GovernedRepo, tree: &Tree<'_>, path: &str) -> Result<Option<Entry>, ForgeError> {
    let Ok(found) = tree.get_path(Path::new(path)) else {
        return Ok(None);
    };
    let content = match (found.kind(), found.filemode()) {
        (Some(ObjectType::Tree), _) => return Ok(None),
        (Some(ObjectType::Commit), _) => EntryContent::Submodule,
        (_, 0o120000) => EntryContent::Symlink,
        (Some(ObjectType::Blob), _) => {
            let odb = repo
                .repository
                .odb()
                .map_err(crate::source::SourceError::from)?;
            let (size, _) = odb
                .read_header(found.id())
                .map_err(crate::source::SourceError::from)?;
            if size as u64 > MAX_FILE_BYTES {
                EntryContent::TooLarge(size as u64)
            } else {
                let object = odb
                    .read(found.id())
                    .map_err(crate::source::SourceError::from)?;
                EntryContent::File(object.data().to_vec())
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(Entry {
        path: path.to_owned(),
        content,
    }))
}

/// The paths whose entry differs between `from` and `to`, each with its
/// entry at `to` (`None`: removed), by a Git tree diff; `None` when the
/// diff cannot stand for the full comparison (a governed folder missing,
/// a path that is not UTF-8 or not plain).
fn changed_entries(
    repo: &GovernedRepo,
    from: Oid,
    to: Oid,
) -> Result<Option<Vec<ChangedEntry>>, ForgeError> {
    let (Some(before), Some(after)) = (governed_tree(repo, from)?, governed_tree(repo, to)?) else {
        return Ok(None);
    };
    let mut options = git2::DiffOptions::new();
    options.include_typechange(true);
    let diff = repo
        .repository
        .diff_tree_to_tree(Some(&before), Some(&after), Some(&mut options))
        .map_err(crate::source::SourceError::from)?;
    let mut paths = BTreeSet::new();
    for delta in diff.deltas() {
        for file in [delta.old_file(), delta.new_file()] {
            let Some(bytes) = file.path_bytes() else {
                continue;
            };
            let Ok(path) = std::str::from_utf8(bytes) else {
                return Ok(None);
            };
            if path.is_empty()
                || path
                    .split('/')
                    .any(|part| part.is_empty() || part == "." || part == "..")
            {
                return Ok(None);
            }
            paths.insert(path.to_owned());
        }
    }
    let mut changed = Vec::new();
    for path in paths {
        let old = entry_at(repo, &before, &path)?;
        let new = entry_at(repo, &after, &path)?;
        if old != new {
            changed.push((path, new));
        }
    }
    Ok(Some(changed))
}
