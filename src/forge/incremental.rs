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
//! (between fork point and head: the two trees compared entry by entry in
//! Git's order, skipping every folder whose tree id is the same on both
//! sides, then each differing entry read as [`changes::changed_paths`]
//! compares them) is an intent, approval or exception file
//! (`intents/*.yaml`, `approvals/*.yaml`, `exceptions/*.yaml`), the fork
//! point has no duplicate ids, and no id a changed file defines is defined
//! by another file. Anything else — config, principals, policies,
//! applications, versions, entitlements, a path outside the layout or in a
//! folder below those three, a non-UTF-8 or odd path, a duplicate — is
//! judged by the full [`check::judge`] (correctness first).
//!
//! **What is judged again.** The head's snapshot is the fork point's with
//! the changed files' objects replaced by the loaded new files (a copy of
//! the fork point's snapshot: the objects and the maps are shared, and the
//! maps the check changes are copied, keys and pointers; a changed file's
//! objects are found by its name, [`Index::by_name`]). Reference and
//! targeting checks are the fork point's
//! ([`judge::checks`], cached) except on the changed files and on the
//! approvals naming an intent the PR added or removed, which are checked
//! again ([`judge::checks_after_change`]). The intents the change affects
//! are found from the changed files' objects (what
//! [`changes::affected_intents`] would find by comparing every intent).
//! The proof (reviews, signatures) is applied by the same code as the full
//! judge ([`judge::judge_loaded`]). Of the intents, these are
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
//! again when the clock moved. The segments, applications, artifacts and
//! `supersedes` are looked up in the fork point's [`Index`]; only the
//! runtime facts are asked for every intent (they may change under any).
//!
//! **Memory.** A loaded revision of 10,000 intents holds its snapshot, its
//! diagnostics, its compiled policies and, for a fork point, its [`Index`];
//! the cache holds at most [`CACHED_REVISIONS`] of them and
//! [`CACHED_JUDGEMENTS`] judgements (the diagnostics an evaluation added,
//! and the runtime facts of the intents judged with some). The revisions
//! share what they have in common: a snapshot's objects are shared
//! (`model::Objects`), and a revision loaded into the cache takes the
//! objects of every file the revision cached last has unchanged (a Git
//! tree diff, [`differing_paths`]; the objects compared equal too), then
//! every map of that revision whose keys and objects are all the same
//! ([`share_maps`]), and its compiled policies when they are the same. So
//! a second or third revision costs the maps that differ (keys and
//! pointers: its intents map when an intent changed) and its index, not
//! its objects, and a check's head is a copy of the fork point whose
//! changed maps alone are copied, patched and dropped after the check. The
//! maps are rebuilt with full nodes ([`compact_snapshot`]). The index keeps
//! the shared intents in one list by segment (and so by application) and
//! hashes of artifact ids, not copies of ids. `benches/pr_check.rs`
//! measures it, part by part.
//!
//! `tests/pr_check_incremental.rs` proves the equivalence over a real Git
//! repository: for seeded random and hostile PRs (edits, deletions and
//! renames of intents approvals name, records with broken references,
//! targeting errors, scope approvals, the base moving under open PRs), the
//! verdict and the rendered comment are the same as the full check's.

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
use crate::model::{self, Entry, EntryContent, Located, Objects, Plane, PolicyFile, Snapshot};
use crate::policy::PolicyEngine;
use crate::source::GovernedRepo;
use chrono::{DateTime, Utc};
use git2::{ObjectType, Oid, Tree};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// Loaded revisions kept (a base tip and a fork point or two).
pub const CACHED_REVISIONS: usize = 3;
/// Fork points judged by a base's rules kept.
pub const CACHED_JUDGEMENTS: usize = 3;
/// The judging code the cache was filled by.
pub const ENGINE: &str = env!("CARGO_PKG_VERSION");

/// One revision, loaded once.
struct Revision {
    /// `model::load`'s snapshot (what `judge::load` returns too); its
    /// objects are shared with the other cached revisions that have the
    /// same file ([`share_objects`]).
    snapshot: Snapshot,
    /// `judge::load`'s: `model::load`'s diagnostics then `judge::checks`.
    load_diagnostics: Vec<Diagnostic>,
    /// How many of `load_diagnostics` are `model::load`'s (the rest are
    /// `judge::checks`').
    model_count: usize,
    /// Its own policies, compiled, and their diagnostics.
    engine: PolicyEngine,
    policy_diagnostics: Vec<Diagnostic>,
    gate_calls: BTreeMap<Plane, u64>,
    /// Whether loading reported a duplicate id or version.
    duplicates: bool,
    /// Its indexes, built the first time it is a fork point.
    index: OnceLock<Index>,
}

impl Revision {
    /// `model::load`'s diagnostics.
    fn model_diagnostics(&self) -> &[Diagnostic] {
        &self.load_diagnostics[..self.model_count]
    }

    /// `judge::checks` of the snapshot.
    fn checks(&self) -> &[Diagnostic] {
        &self.load_diagnostics[self.model_count..]
    }

    fn index(&self) -> &Index {
        self.index.get_or_init(|| Index::of(&self.snapshot))
    }
}

/// A fork point's intents by what a change can reach them through, so a
/// check finds the intents to judge again without reading all of them.
/// Compact: the intents themselves, shared with the snapshot, in one list
/// by segment ([`BySegment`]: the intents of an application are one run of
/// it too) and in a list of (hash of the artifact id, intent) whose reader
/// checks the key on the intent ([`Keyed::get`]), so a hash collision
/// costs nothing but a comparison.
#[derive(Default)]
struct Index {
    /// Intents by segment (application, boundary, business unit), hence by
    /// application, and by the id of the artifact they deploy.
    by_segment: BySegment,
    by_artifact: Keyed,
    /// Intents that declare `supersedes`.
    superseding: Vec<Arc<Located<model::DeploymentIntent>>>,
    /// What `judge::checks_after_change` follows.
    references: judge::ReferenceIndex,
    /// Every intent, approval and exception is keyed by its id and was
    /// loaded from `<folder>/<id>.yaml` (`model::load` refuses an id that
    /// is not its file's name), so the objects of a changed file are found
    /// by its name ([`take_files`]). When not, the full check judges.
    by_name: bool,
}

/// Intents in segment order (application, boundary, business unit), so
/// the intents of one segment, or of one application, are one run.
#[derive(Default)]
struct BySegment(Vec<Arc<Located<model::DeploymentIntent>>>);

impl BySegment {
    fn of(mut intents: Vec<Arc<Located<model::DeploymentIntent>>>) -> BySegment {
        intents.sort_by(|a, b| segment_of(a).cmp(&segment_of(b)));
        intents.shrink_to_fit();
        BySegment(intents)
    }

    /// The intents of the segment (application, boundary, business unit).
    fn segment<'s>(
        &'s self,
        segment: (&'s str, &'s str, &'s str),
    ) -> impl Iterator<Item = &'s Located<model::DeploymentIntent>> + 's {
        let from = self
            .0
            .partition_point(|intent| segment_of(intent) < segment);
        self.0[from..]
            .iter()
            .take_while(move |intent| segment_of(intent) == segment)
            .map(|intent| &**intent)
    }

    /// The intents of the application (the first part of the order).
    fn application<'s>(
        &'s self,
        application: &'s str,
    ) -> impl Iterator<Item = &'s Located<model::DeploymentIntent>> + 's {
        let from = self
            .0
            .partition_point(|intent| intent.application_id.as_str() < application);
        self.0[from..]
            .iter()
            .take_while(move |intent| intent.application_id == application)
            .map(|intent| &**intent)
    }
}

/// Intents by the hash of a key, in hash order.
#[derive(Default)]
struct Keyed(Vec<(u64, Arc<Located<model::DeploymentIntent>>)>);

impl Keyed {
    fn of(mut items: Vec<(u64, Arc<Located<model::DeploymentIntent>>)>) -> Keyed {
        items.sort_by_key(|(hash, _)| *hash);
        items.shrink_to_fit();
        Keyed(items)
    }

    /// The intents whose key is `key` (`is` tells, on an intent).
    fn get<'s>(
        &'s self,
        key: &[&str],
        is: impl Fn(&model::DeploymentIntent) -> bool + 's,
    ) -> impl Iterator<Item = &'s Located<model::DeploymentIntent>> + 's {
        let hash = key_hash(key);
        let from = self.0.partition_point(|(h, _)| *h < hash);
        self.0[from..]
            .iter()
            .take_while(move |(h, _)| *h == hash)
            .map(|(_, intent)| &**intent)
            .filter(move |intent| is(intent))
    }
}

fn key_hash(parts: &[&str]) -> u64 {
    let mut hasher = DefaultHasher::new();
    parts.hash(&mut hasher);
    hasher.finish()
}

/// Whether every object of `objects` is keyed by its id and comes from
/// `<folder>/<id>.yaml`.
fn named_by_id<T>(objects: &Objects<String, T>, folder: &str, id: impl Fn(&T) -> &str) -> bool {
    objects.iter().all(|(key, object)| {
        *key == id(object)
            && object
                .file
                .strip_prefix(folder)
                .and_then(|rest| rest.strip_prefix('/'))
                .and_then(|rest| rest.strip_suffix(".yaml"))
                == Some(key.as_str())
    })
}

impl Index {
    fn of(snapshot: &Snapshot) -> Index {
        let mut by_segment = Vec::with_capacity(snapshot.intents.len());
        let mut by_artifact = Vec::with_capacity(snapshot.intents.len());
        let mut superseding = Vec::new();
        for (_, intent) in snapshot.intents.iter_shared() {
            by_segment.push(intent.clone());
            if let Some(artifact) = snapshot.artifact_of(intent) {
                by_artifact.push((key_hash(&[&artifact.id]), intent.clone()));
            }
            if intent.supersedes.is_some() {
                superseding.push(intent.clone());
            }
        }
        Index {
            by_segment: BySegment::of(by_segment),
            by_artifact: Keyed::of(by_artifact),
            superseding,
            references: judge::ReferenceIndex::of(snapshot),
            by_name: named_by_id(&snapshot.intents, "intents", |i| &i.intent_id)
                && named_by_id(&snapshot.approvals, "approvals", |a| &a.approval_id)
                && named_by_id(&snapshot.exceptions, "exceptions", |e| &e.exception_id),
        }
    }
}

/// The runtime facts an intent was judged with: in-flight changes,
/// rolled-back versions.
type Facts = (Vec<(String, String)>, Vec<String>);

/// A fork point judged by a base's rules.
struct Judged {
    now: DateTime<Utc>,
    /// What each intent's evaluation added to the diagnostics, for the
    /// intents whose evaluation added any.
    diagnostics: BTreeMap<String, Vec<Diagnostic>>,
    /// The runtime facts of the intents judged with some (in-flight
    /// changes or rolled-back versions), by intent id; the others had none.
    facts: BTreeMap<String, Facts>,
    /// Whether every intent of the fork point was judged (so an intent
    /// missing from `facts` had none).
    every_intent: bool,
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

    /// The item used last.
    fn first(&self) -> Option<(K, Arc<V>)> {
        self.items.first().map(|(k, v)| (k.clone(), v.clone()))
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
        let (mut snapshot, mut load_diagnostics) = model::load(&entries);
        drop(entries);
        // The objects of the files it has in common with the revision
        // cached last are that revision's (equal objects, shared).
        let other = self.revisions.first();
        if let Some(((other_commit, _), other)) = &other
            && let Some(differing) = differing_paths(repo, *other_commit, commit)?
        {
            share_snapshot(&mut snapshot, &other.snapshot, &differing);
        }
        compact_snapshot(&mut snapshot);
        // A map whose objects are all that revision's is that revision's.
        if let Some((_, other)) = &other {
            share_maps(&mut snapshot, &other.snapshot);
        }
        let model_count = load_diagnostics.len();
        let duplicates = load_diagnostics
            .iter()
            .any(|d| d.message.starts_with("duplicate "));
        load_diagnostics.extend(judge::checks(&snapshot));
        load_diagnostics.shrink_to_fit();
        // The same policies compile to the same engine.
        let (engine, policy_diagnostics) = match &other {
            Some((_, other)) if other.snapshot.policies == snapshot.policies => {
                (other.engine.clone(), other.policy_diagnostics.clone())
            }
            _ => evaluation::engine_for(&snapshot),
        };
        let revision = Arc::new(Revision {
            gate_calls: crate::plan::gate_calls_by_plane(&snapshot),
            snapshot,
            load_diagnostics,
            model_count,
            engine,
            policy_diagnostics,
            duplicates,
            index: OnceLock::new(),
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
        phases.lap("tree diff");
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
        let index = fork.index();
        if !index.by_name {
            return Ok(None);
        }
        let changed: BTreeSet<String> = changed_entries.iter().map(|(p, _)| p.clone()).collect();
        phases.lap("cached revisions");

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
        // A copy of the fork point's maps (its objects are shared), patched
        // into the head.
        let mut head = fork.snapshot.clone();
        phases.lap("copy the fork point");
        let removed = take_files(&mut head.intents, "intents", &changed);
        let removed_approvals = take_files(&mut head.approvals, "approvals", &changed);
        let removed_exceptions = take_files(&mut head.exceptions, "exceptions", &changed);
        let added: Vec<String> = loaded.intents.keys().cloned().collect();
        let added_approvals: BTreeSet<String> = loaded.approvals.keys().cloned().collect();
        let added_exceptions: BTreeSet<String> = loaded.exceptions.keys().cloned().collect();
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
            .model_diagnostics()
            .iter()
            .filter(|d| !changed.contains(&d.file))
            .cloned()
            .collect();
        diagnostics.append(&mut new_diagnostics);
        phases.lap("patch");
        let changed_intent_ids: BTreeSet<String> = removed
            .iter()
            .map(|i| i.intent_id.clone())
            .chain(added.iter().cloned())
            .collect();
        diagnostics.extend(judge::checks_after_change(
            fork.checks(),
            &index.references,
            &head,
            &judge::ObjectChange {
                files: &changed,
                intents: &changed_intent_ids,
                approvals: &added_approvals,
                exceptions: &added_exceptions,
            },
        ));
        phases.lap("reference checks");
        // No policy file changed: the head's own policies are the fork
        // point's.
        diagnostics.extend(fork.policy_diagnostics.iter().cloned());

        let judged = self.judged(&fork, &base, revisions, request);
        phases.lap("cached judgement");
        let affected = affected_intents(
            &head,
            &fork.snapshot,
            index,
            &added,
            &removed_approvals,
            &added_approvals,
            &removed_exceptions,
            &added_exceptions,
        );
        phases.lap("affected intents");
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
        let removed_ids: HashSet<&str> = removed.iter().map(|i| i.intent_id.as_str()).collect();
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
            Some(affected),
            &mut |snapshot, engine, affected| {
                let began = std::time::Instant::now();
                let again = rejudge_set(
                    &Rejudge {
                        head: snapshot,
                        fork: fork_snapshot,
                        index,
                        removed: &removed_ids,
                        added: &added,
                        changed_intents: &changed_intents,
                        judged: &judged,
                        runtime,
                    },
                    affected,
                    tenant_reads_now && now != judged.now,
                );
                rejudged = again.len();
                inner.push(("  of which the intents to judge again", began.elapsed()));
                let began = std::time::Instant::now();
                let fresh = evaluation::evaluate_intents(
                    snapshot,
                    engine,
                    Some(base_snapshot),
                    now,
                    runtime,
                    Some(&again),
                );
                inner.push(("  of which evaluate them", began.elapsed()));
                let began = std::time::Instant::now();
                // Every intent's diagnostics in intent id order, as
                // `evaluation::evaluate` gives them: the fresh ones', and
                // the cached ones' of the others.
                let fresh_ids: HashSet<String> =
                    fresh.iter().map(|(e, _)| e.intent_id.clone()).collect();
                let mut cached = judged
                    .diagnostics
                    .iter()
                    .filter(|(id, _)| {
                        !fresh_ids.contains(id.as_str()) && snapshot.intents.contains_key(*id)
                    })
                    .peekable();
                let mut evaluation = Evaluation {
                    diagnostics: Vec::new(),
                    intents: Vec::new(),
                };
                for (intent, mut found) in fresh {
                    while let Some((_, earlier)) =
                        cached.next_if(|(id, _)| id.as_str() < intent.intent_id.as_str())
                    {
                        evaluation.diagnostics.extend(earlier.iter().cloned());
                    }
                    evaluation.diagnostics.append(&mut found);
                    evaluation.intents.push(intent);
                }
                for (_, later) in cached {
                    evaluation.diagnostics.extend(later.iter().cloned());
                }
                inner.push(("  of which put the diagnostics together", began.elapsed()));
                evaluation
            },
        );
        self.stats.last_rejudged = rejudged;
        phases.lap("judge (proof, evaluation, scope changes)");
        phases.laps.extend(inner);
        let mut removed_intents: Vec<String> = removed
            .iter()
            .map(|i| i.intent_id.clone())
            .filter(|id| !judgement.snapshot.intents.contains_key(id))
            .collect();
        removed_intents.sort();
        removed_intents.dedup();
        let (verdict, head) = check::verdict(Parts {
            pull_request: request.pull_request,
            base_sha: &revisions.base.to_string(),
            changed,
            base: &base.snapshot,
            base_diagnostics: &base.load_diagnostics,
            fork_point: &fork.snapshot,
            standings,
            judgement,
            gate_calls: Some(gate_calls),
            removed_intents: Some(removed_intents),
        });
        phases.lap("verdict");
        drop(head);
        phases.lap("drop the head");
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
        let mut diagnostics = BTreeMap::new();
        let mut facts = BTreeMap::new();
        let mut judged_ids = BTreeSet::new();
        for (evaluation, found) in evaluated {
            let intent = &snapshot.intents[&evaluation.intent_id];
            let (active, rolled_back) = (
                request.runtime.active_changes(intent),
                request.runtime.rolled_back_versions(intent),
            );
            if !active.is_empty() || !rolled_back.is_empty() {
                facts.insert(evaluation.intent_id.clone(), (active, rolled_back));
            }
            judged_ids.insert(evaluation.intent_id.clone());
            if !found.is_empty() {
                diagnostics.insert(evaluation.intent_id, found);
            }
        }
        let every_intent = judged_ids.len() == snapshot.intents.len()
            && snapshot.intents.keys().all(|id| judged_ids.contains(id));
        drop(judged_ids);
        let judged = Arc::new(Judged {
            now: request.now,
            diagnostics,
            facts,
            every_intent,
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

/// What [`rejudge_set`] reads.
struct Rejudge<'a> {
    /// The head as judged (after the proof).
    head: &'a Snapshot,
    fork: &'a Snapshot,
    /// The fork point's.
    index: &'a Index,
    /// Ids of the fork point's intents from the changed files.
    removed: &'a HashSet<&'a str>,
    /// Ids of the head's intents from the changed files.
    added: &'a [String],
    /// Intents whose objects changed, before and after: id, target,
    /// application.
    changed_intents: &'a [(String, model::TargetScope, String)],
    judged: &'a Judged,
    runtime: &'a dyn RuntimeFacts,
}

impl Rejudge<'_> {
    /// The head's intents among the fork point's `found` (those not from
    /// a changed file: the same objects in the head), and the added
    /// intents `also` takes.
    fn members<'s>(
        &'s self,
        found: impl Iterator<Item = &'s Located<model::DeploymentIntent>> + 's,
        also: impl Fn(&model::DeploymentIntent) -> bool + 's,
    ) -> impl Iterator<Item = &'s String> + 's {
        let unchanged = found
            .map(|intent| &intent.intent_id)
            .filter(|id| !self.removed.contains(id.as_str()));
        let added = self.added.iter().filter(move |id| {
            self.head
                .intents
                .get(*id)
                .is_some_and(|intent| also(intent))
        });
        unchanged.chain(added)
    }
}

/// The intents to judge again (see the module documentation), found
/// through the fork point's [`Index`] instead of reading every intent;
/// only the runtime facts are asked of every intent (they can change
/// under any of them).
fn rejudge_set(
    input: &Rejudge<'_>,
    affected: &BTreeSet<String>,
    everything: bool,
) -> BTreeSet<String> {
    let head = input.head;
    if everything {
        return head.intents.keys().cloned().collect();
    }
    let mut again: BTreeSet<String> = affected.clone();
    let mut segments: BTreeSet<(&str, &str, &str)> = BTreeSet::new();
    for (id, target, application) in input.changed_intents {
        again.insert(id.clone());
        segments.insert((
            application,
            &target.acquisition_boundary,
            &target.business_unit,
        ));
    }
    // Every intent that declares `supersedes`, and its segment.
    let superseding = input.members(
        input.index.superseding.iter().map(|intent| &**intent),
        |intent| intent.supersedes.is_some(),
    );
    for id in superseding {
        if let Some(intent) = head.intents.get(id) {
            again.insert(id.clone());
            segments.insert(segment_of(intent));
        }
    }
    // Every intent of those segments.
    for (application, boundary, unit) in &segments {
        let segment = (*application, *boundary, *unit);
        let found = input.index.by_segment.segment(segment);
        let members = input.members(found, move |intent| segment_of(intent) == segment);
        again.extend(members.cloned());
    }
    // Records that differ from the fork point's after the proof.
    let mut record_intents: BTreeSet<String> = BTreeSet::new();
    let mut record_applications: BTreeSet<String> = BTreeSet::new();
    for id in changed_keys(&head.approvals, &input.fork.approvals) {
        for record in [head.approvals.get(&id), input.fork.approvals.get(&id)]
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
    for id in changed_keys(&head.exceptions, &input.fork.exceptions) {
        for record in [head.exceptions.get(&id), input.fork.exceptions.get(&id)]
            .into_iter()
            .flatten()
        {
            record_artifacts.insert(record.artifact_id.clone());
        }
    }
    again.extend(
        record_intents
            .iter()
            .filter(|id| head.intents.contains_key(*id))
            .cloned(),
    );
    for application in &record_applications {
        let found = input.index.by_segment.application(application);
        let members = input.members(found, |intent| intent.application_id == *application);
        again.extend(members.cloned());
    }
    for artifact in &record_artifacts {
        let fork = input.fork;
        let found = input.index.by_artifact.get(&[artifact], |intent| {
            fork.artifact_of(intent).is_some_and(|a| a.id == *artifact)
        });
        let members = input.members(found, |intent| {
            head.artifact_of(intent).is_some_and(|a| a.id == *artifact)
        });
        again.extend(members.cloned());
    }
    // Runtime facts that differ from those the cache was judged with: both
    // maps are in id order, read side by side. An intent of the fork point
    // the cache has no facts of was judged with none.
    let mut cached = input.judged.facts.iter().peekable();
    for (id, intent) in &head.intents {
        while cached
            .next_if(|(key, _)| key.as_str() < id.as_str())
            .is_some()
        {}
        let stale = match cached.peek() {
            Some((key, (active, rolled_back))) if *key == id => {
                input.runtime.active_changes(intent) != *active
                    || input.runtime.rolled_back_versions(intent) != *rolled_back
            }
            _ if input.judged.every_intent && input.fork.intents.contains_key(id) => {
                !input.runtime.active_changes(intent).is_empty()
                    || !input.runtime.rolled_back_versions(intent).is_empty()
            }
            _ => true,
        };
        if stale {
            again.insert(id.clone());
        }
    }
    again
}

/// [`changes::affected_intents`] of the head against the fork point,
/// from what the check changed: the head differs from the fork point only
/// in the intents, approvals and exceptions of the changed files, so an
/// intent is affected when it is a changed file's and differs from the
/// fork point's, or a changed approval names it, or a changed exception
/// covers its artifact (found through the fork point's [`Index`]).
#[allow(clippy::too_many_arguments)]
fn affected_intents(
    head: &Snapshot,
    fork: &Snapshot,
    index: &Index,
    added: &[String],
    removed_approvals: &[Arc<Located<model::ApprovalRecord>>],
    added_approvals: &BTreeSet<String>,
    removed_exceptions: &[Arc<Located<model::Exception>>],
    added_exceptions: &BTreeSet<String>,
) -> BTreeSet<String> {
    let mut affected: BTreeSet<String> = added
        .iter()
        .filter(|id| {
            fork.intents.get(*id).map(|i| &i.value) != head.intents.get(*id).map(|i| &i.value)
        })
        .cloned()
        .collect();
    // `changes::changed_keys` of the records: only those of the changed
    // files can differ.
    let approval_ids: BTreeSet<&String> = removed_approvals
        .iter()
        .map(|a| &a.approval_id)
        .chain(added_approvals)
        .collect();
    let mut touched_intents: BTreeSet<&str> = BTreeSet::new();
    for id in approval_ids {
        let (before, after) = (fork.approvals.get(id), head.approvals.get(id));
        if before.map(|r| &r.value) != after.map(|r| &r.value) {
            for record in [after, before].into_iter().flatten() {
                touched_intents.insert(&record.deployment_intent_id);
            }
        }
    }
    let exception_ids: BTreeSet<&String> = removed_exceptions
        .iter()
        .map(|e| &e.exception_id)
        .chain(added_exceptions)
        .collect();
    let mut touched_artifacts: BTreeSet<&str> = BTreeSet::new();
    for id in exception_ids {
        let (before, after) = (fork.exceptions.get(id), head.exceptions.get(id));
        if before.map(|r| &r.value) != after.map(|r| &r.value) {
            for record in [after, before].into_iter().flatten() {
                touched_artifacts.insert(&record.artifact_id);
            }
        }
    }
    affected.extend(
        touched_intents
            .into_iter()
            .filter(|id| head.intents.contains_key(*id))
            .map(str::to_owned),
    );
    for artifact in touched_artifacts {
        // The fork point's intents that deploy it and are the same in the
        // head (versions are the fork point's), and the changed files'.
        let found = index.by_artifact.get(&[artifact], |intent| {
            fork.artifact_of(intent).is_some_and(|a| a.id == artifact)
        });
        for id in found.map(|intent| &intent.intent_id) {
            if let (Some(before), Some(after)) = (fork.intents.get(id), head.intents.get(id))
                && before.file == after.file
                && before.value == after.value
            {
                affected.insert(id.clone());
            }
        }
        for id in added {
            if let Some(intent) = head.intents.get(id)
                && head.artifact_of(intent).is_some_and(|a| a.id == artifact)
            {
                affected.insert(id.clone());
            }
        }
    }
    affected
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
    after: &Objects<String, T>,
    before: &Objects<String, T>,
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

/// Removes the objects loaded from `files` (each object of `map` is
/// `<folder>/<id>.yaml`'s, [`Index::by_name`]), returning them.
fn take_files<T>(
    map: &mut Objects<String, T>,
    folder: &str,
    files: &BTreeSet<String>,
) -> Vec<Arc<Located<T>>> {
    files
        .iter()
        .filter_map(|file| {
            let id = file
                .strip_prefix(folder)?
                .strip_prefix('/')?
                .strip_suffix(".yaml")?;
            if map.get(id)?.file != *file {
                return None;
            }
            map.remove(id)
        })
        .collect()
}

/// Adds every object; `false` when an id is already taken (a duplicate:
/// which one wins depends on the order of every file, so the full check
/// decides).
fn put_all<T>(map: &mut Objects<String, T>, from: Objects<String, T>) -> bool {
    for (id, object) in from.into_shared() {
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

/// What `GovernedRepo::entries_at` reads for a tree entry of this kind,
/// mode and id at `path`; `None` for a folder or an entry it skips.
fn entry_of(
    repo: &GovernedRepo,
    path: &str,
    kind: Option<ObjectType>,
    filemode: i32,
    id: Oid,
) -> Result<Option<Entry>, ForgeError> {
    let content = match (kind, filemode) {
        (Some(ObjectType::Tree), _) => return Ok(None),
        (Some(ObjectType::Commit), _) => EntryContent::Submodule,
        (_, 0o120000) => EntryContent::Symlink,
        (Some(ObjectType::Blob), _) => {
            let odb = repo
                .repository
                .odb()
                .map_err(crate::source::SourceError::from)?;
            let (size, _) = odb
                .read_header(id)
                .map_err(crate::source::SourceError::from)?;
            if size as u64 > MAX_FILE_BYTES {
                EntryContent::TooLarge(size as u64)
            } else {
                let object = odb.read(id).map_err(crate::source::SourceError::from)?;
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

/// The paths (below the governed folder) whose entry differs between the
/// revisions `from` and `to`, or `None` when that cannot be told (a
/// governed folder missing, a name that is not UTF-8 or plain, trees out
/// of Git's order): the trees compared as [`diff_trees`] does, every
/// folder whose tree id is the same on both sides skipped whole.
fn differing_paths(
    repo: &GovernedRepo,
    from: Oid,
    to: Oid,
) -> Result<Option<HashSet<String>>, ForgeError> {
    let (Some(before), Some(after)) = (governed_tree(repo, from)?, governed_tree(repo, to)?) else {
        return Ok(None);
    };
    let mut differing = HashSet::new();
    if before.id() != after.id()
        && !differing_below(repo, Some(&before), Some(&after), "", &mut differing)?
    {
        return Ok(None);
    }
    Ok(Some(differing))
}

/// Adds to `differing` the paths under `prefix` whose entry differs
/// between `before` and `after` (see [`differing_paths`]).
fn differing_below(
    repo: &GovernedRepo,
    before: Option<&Tree<'_>>,
    after: Option<&Tree<'_>>,
    prefix: &str,
    differing: &mut HashSet<String>,
) -> Result<bool, ForgeError> {
    each_differing_entry(before, after, prefix, |path, _, a, b| {
        // A file on one side and a folder on the other: both differ.
        for side in [a, b].into_iter().flatten() {
            if !is_tree(side) {
                differing.insert(path.clone());
            }
        }
        let tree = |side: Option<&git2::TreeEntry<'_>>| -> Result<Option<Tree<'_>>, ForgeError> {
            match side.filter(|entry| is_tree(entry)) {
                Some(entry) => Ok(Some(
                    repo.repository
                        .find_tree(entry.id())
                        .map_err(crate::source::SourceError::from)?,
                )),
                None => Ok(None),
            }
        };
        let (before_tree, after_tree) = (tree(a)?, tree(b)?);
        if (before_tree.is_some() || after_tree.is_some())
            && !differing_below(
                repo,
                before_tree.as_ref(),
                after_tree.as_ref(),
                &format!("{path}/"),
                differing,
            )?
        {
            return Ok(false);
        }
        Ok(true)
    })
}

/// Rebuilds every map of `snapshot` with full nodes ([`Objects::compact`]):
/// the cache keeps it, and every copy of it, for many checks.
fn compact_snapshot(snapshot: &mut Snapshot) {
    snapshot.principals.compact();
    snapshot.applications.compact();
    snapshot.versions.compact();
    snapshot.entitlements.compact();
    snapshot.intents.compact();
    snapshot.approvals.compact();
    snapshot.exceptions.compact();
}

/// Makes every map of `snapshot` that holds the same keys with the very
/// same objects as `other`'s be `other`'s ([`Objects::share_if_same`]).
fn share_maps(snapshot: &mut Snapshot, other: &Snapshot) {
    snapshot.principals.share_if_same(&other.principals);
    snapshot.applications.share_if_same(&other.applications);
    snapshot.versions.share_if_same(&other.versions);
    snapshot.entitlements.share_if_same(&other.entitlements);
    snapshot.intents.share_if_same(&other.intents);
    snapshot.approvals.share_if_same(&other.approvals);
    snapshot.exceptions.share_if_same(&other.exceptions);
}

/// Makes the objects of `snapshot` that `other` has too — the same key,
/// from the same file, which is not one of the `differing` paths (so the
/// same text: the same positions), and equal — be `other`'s, shared.
fn share_snapshot(snapshot: &mut Snapshot, other: &Snapshot, differing: &HashSet<String>) {
    share_objects(&mut snapshot.principals, &other.principals, differing);
    share_objects(&mut snapshot.applications, &other.applications, differing);
    share_objects(&mut snapshot.versions, &other.versions, differing);
    share_objects(&mut snapshot.entitlements, &other.entitlements, differing);
    share_objects(&mut snapshot.intents, &other.intents, differing);
    share_objects(&mut snapshot.approvals, &other.approvals, differing);
    share_objects(&mut snapshot.exceptions, &other.exceptions, differing);
}

fn share_objects<K: Ord + Clone, T: PartialEq>(
    objects: &mut Objects<K, T>,
    other: &Objects<K, T>,
    differing: &HashSet<String>,
) {
    for (key, object) in objects.iter_shared_mut() {
        if differing.contains(&object.file) {
            continue;
        }
        if let Some(theirs) = other.get_shared(key)
            && !Arc::ptr_eq(theirs, object)
            && theirs.file == object.file
            && theirs.value == object.value
        {
            *object = theirs.clone();
        }
    }
}

/// The folders whose files a check can take incrementally.
const INCREMENTAL_FOLDERS: [&str; 3] = ["intents", "approvals", "exceptions"];

/// The paths whose entry differs between `from` and `to`, each with its
/// entry at `to` (`None`: removed), as [`changes::changed_paths`] compares
/// `entries_at`; `None` when the change is not one the incremental check
/// takes (a governed folder missing; a difference outside `intents/`,
/// `approvals/`, `exceptions/` or in a folder below them; a name that is
/// not UTF-8 or not plain; trees out of Git's order).
///
/// The trees are compared entry by entry, both sides in Git's order, and
/// a folder whose tree id is the same on both sides is skipped whole: a
/// one-intent change reads the two `intents/` trees and two blobs.
///
/// [`changes::changed_paths`]: super::changes::changed_paths
fn changed_entries(
    repo: &GovernedRepo,
    from: Oid,
    to: Oid,
) -> Result<Option<Vec<ChangedEntry>>, ForgeError> {
    let (Some(before), Some(after)) = (governed_tree(repo, from)?, governed_tree(repo, to)?) else {
        return Ok(None);
    };
    let mut changed = Vec::new();
    if before.id() != after.id()
        && !diff_trees(repo, Some(&before), Some(&after), "", &mut changed)?
    {
        return Ok(None);
    }
    Ok(Some(changed))
}

/// Git's order of tree entries: by name, a folder's name as if it ended
/// in `/`.
fn git_order(a: &[u8], a_tree: bool, b: &[u8], b_tree: bool) -> std::cmp::Ordering {
    let shared = a.len().min(b.len());
    a[..shared].cmp(&b[..shared]).then_with(|| {
        let tail = |name: &[u8], tree: bool| {
            name[shared..]
                .iter()
                .copied()
                .chain(tree.then_some(b'/'))
                .collect::<Vec<u8>>()
        };
        tail(a, a_tree).cmp(&tail(b, b_tree))
    })
}

/// Whether a tree entry is a folder.
fn is_tree(entry: &git2::TreeEntry<'_>) -> bool {
    entry.kind() == Some(ObjectType::Tree)
}

/// Walks the entries of `before` and `after` (two listings of one folder,
/// `prefix` its path) in Git's order and calls `visit(path, name, old,
/// new)` for each entry that differs (one side `None` when only the other
/// has it); `false` when a listing is not in Git's order, a name is not
/// one the incremental check takes, or `visit` answers `false`.
fn each_differing_entry<'t>(
    before: Option<&'t Tree<'_>>,
    after: Option<&'t Tree<'_>>,
    prefix: &str,
    mut visit: impl FnMut(
        String,
        &str,
        Option<&git2::TreeEntry<'t>>,
        Option<&git2::TreeEntry<'t>>,
    ) -> Result<bool, ForgeError>,
) -> Result<bool, ForgeError> {
    let (Some(old), Some(new)) = (sorted_entries(before), sorted_entries(after)) else {
        return Ok(false);
    };
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        let order = match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) => git_order(a.name_bytes(), is_tree(a), b.name_bytes(), is_tree(b)),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        let (a, b) = match order {
            std::cmp::Ordering::Less => {
                i += 1;
                (old.get(i - 1), None)
            }
            std::cmp::Ordering::Greater => {
                j += 1;
                (None, new.get(j - 1))
            }
            std::cmp::Ordering::Equal => {
                i += 1;
                j += 1;
                let (a, b) = (&old[i - 1], &new[j - 1]);
                if a.id() == b.id() && a.filemode() == b.filemode() {
                    continue;
                }
                (Some(a), Some(b))
            }
        };
        let Some(entry) = a.or(b) else { continue };
        let Ok(name) = std::str::from_utf8(entry.name_bytes()) else {
            return Ok(false);
        };
        if name.is_empty() || name == "." || name == ".." || name.contains('\u{fffd}') {
            return Ok(false);
        }
        let path = format!("{prefix}{name}");
        if !visit(path, name, a, b)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The entries of `tree` (none without one), checked to be in Git's order
/// with no name twice; `None` when they are not.
fn sorted_entries<'t>(tree: Option<&'t Tree<'_>>) -> Option<Vec<git2::TreeEntry<'t>>> {
    let entries: Vec<git2::TreeEntry<'t>> = tree.map(|t| t.iter().collect()).unwrap_or_default();
    let in_order = entries.windows(2).all(|pair| {
        git_order(
            pair[0].name_bytes(),
            pair[0].kind() == Some(ObjectType::Tree),
            pair[1].name_bytes(),
            pair[1].kind() == Some(ObjectType::Tree),
        ) == std::cmp::Ordering::Less
    });
    in_order.then_some(entries)
}

/// Adds to `changed` the paths under `prefix` whose entry differs between
/// `before` and `after` (see [`changed_entries`]); `false` when the
/// incremental check does not take the difference.
fn diff_trees(
    repo: &GovernedRepo,
    before: Option<&Tree<'_>>,
    after: Option<&Tree<'_>>,
    prefix: &str,
    changed: &mut Vec<ChangedEntry>,
) -> Result<bool, ForgeError> {
    each_differing_entry(before, after, prefix, |path, name, a, b| {
        if a.or(b).is_some_and(is_tree) {
            // A folder: only the record folders at the top, one level deep.
            if !prefix.is_empty() || !INCREMENTAL_FOLDERS.contains(&name) {
                return Ok(false);
            }
            let open =
                |side: Option<&git2::TreeEntry<'_>>| -> Result<Option<Tree<'_>>, ForgeError> {
                    match side {
                        Some(entry) => Ok(Some(
                            repo.repository
                                .find_tree(entry.id())
                                .map_err(crate::source::SourceError::from)?,
                        )),
                        None => Ok(None),
                    }
                };
            let (before_tree, after_tree) = (open(a)?, open(b)?);
            if !diff_trees(
                repo,
                before_tree.as_ref(),
                after_tree.as_ref(),
                &format!("{path}/"),
                changed,
            )? {
                return Ok(false);
            }
            return Ok(true);
        }
        let read = |side: Option<&git2::TreeEntry<'_>>| match side {
            Some(entry) => entry_of(repo, &path, entry.kind(), entry.filemode(), entry.id()),
            None => Ok(None),
        };
        let (old_entry, new_entry) = (read(a)?, read(b)?);
        if old_entry != new_entry {
            changed.push((path, new_entry));
        }
        Ok(true)
    })
}

/// What one cached revision holds, part by part: the heap each part
/// keeps, as `live` (the caller's count of live heap bytes, e.g. a counting
/// allocator's) sees it grow and shrink while the parts are built and then
/// dropped one by one. For `benches/pr_check.rs`; nothing else calls it.
#[doc(hidden)]
pub fn memory_breakdown(
    repo: &GovernedRepo,
    commit: Oid,
    runtime: &dyn RuntimeFacts,
    now: DateTime<Utc>,
    live: &dyn Fn() -> usize,
) -> Result<Vec<(String, usize)>, ForgeError> {
    let mut parts = Vec::new();
    let start = live();
    let entries = repo.entries_at(commit)?;
    let mut texts: BTreeMap<String, usize> = BTreeMap::new();
    for entry in &entries {
        if let EntryContent::File(bytes) = &entry.content {
            let folder = entry.path.split('/').next().unwrap_or("").to_owned();
            *texts.entry(folder).or_default() += bytes.len();
        }
    }
    let with_entries = live();
    let (mut snapshot, model_diagnostics) = model::load(&entries);
    drop(entries);
    compact_snapshot(&mut snapshot);
    let loaded = live() - start;
    parts.push((
        format!(
            "model::load (snapshot + diagnostics; the entries read were {} bytes)",
            with_entries - start
        ),
        loaded,
    ));
    for (folder, bytes) in &texts {
        parts.push((
            format!("  of which file texts in {folder}/ (from the entries)"),
            *bytes,
        ));
    }
    let keys: usize = snapshot.intents.keys().map(String::len).sum::<usize>()
        + snapshot.approvals.keys().map(String::len).sum::<usize>()
        + snapshot.exceptions.keys().map(String::len).sum::<usize>();
    let files: usize = snapshot
        .intents
        .values()
        .map(|i| i.file.len())
        .sum::<usize>()
        + snapshot
            .approvals
            .values()
            .map(|a| a.file.len())
            .sum::<usize>()
        + snapshot
            .exceptions
            .values()
            .map(|e| e.file.len())
            .sum::<usize>();
    parts.push((
        "  of which id keys' bytes (intents, approvals, exceptions)".into(),
        keys,
    ));
    parts.push(("  of which file names' bytes (same)".into(), files));
    let before = live();
    let checks = judge::checks(&snapshot);
    let checked = live();
    parts.push((
        format!(
            "judge::checks ({} diagnostics, with the positions they read)",
            checks.len()
        ),
        checked - before,
    ));
    let before = live();
    let (engine, policy_diagnostics) = evaluation::engine_for(&snapshot);
    parts.push(("compiled policies".into(), live() - before));
    let before = live();
    let index = Index::of(&snapshot);
    parts.push(("index (all maps)".into(), live() - before));
    let before = live();
    // What each check's head costs: the maps are shared until changed, and
    // a check changes (copies) the intents map.
    let mut copy = snapshot.clone();
    copy.intents.iter_shared_mut().next();
    parts.push((
        "a copy of the snapshot, its intents map copied (each check's head, transient)".into(),
        live() - before,
    ));
    drop(copy);
    let before = live();
    let evaluated =
        evaluation::evaluate_intents(&snapshot, &engine, Some(&snapshot), now, runtime, None);
    let mut diagnostics = BTreeMap::new();
    let mut facts = BTreeMap::new();
    for (evaluation, found) in evaluated {
        let intent = &snapshot.intents[&evaluation.intent_id];
        let (active, rolled_back) = (
            runtime.active_changes(intent),
            runtime.rolled_back_versions(intent),
        );
        if !active.is_empty() || !rolled_back.is_empty() {
            facts.insert(evaluation.intent_id.clone(), (active, rolled_back));
        }
        if !found.is_empty() {
            diagnostics.insert(evaluation.intent_id, found);
        }
    }
    let judged = Judged {
        now,
        diagnostics,
        facts,
        every_intent: true,
    };
    parts.push((
        format!(
            "judgement ({} intents with diagnostics)",
            judged.diagnostics.len()
        ),
        live() - before,
    ));
    // Dropped one by one: what each held.
    let mut drop_part = |name: &str, part: Box<dyn FnOnce()>| {
        let before = live();
        part();
        parts.push((format!("  dropped: {name}"), before.saturating_sub(live())));
    };
    let Index {
        by_segment,
        by_artifact,
        superseding,
        references,
        ..
    } = index;
    drop_part(
        "index by segment (and application)",
        Box::new(move || drop(by_segment)),
    );
    drop_part("index by artifact", Box::new(move || drop(by_artifact)));
    drop_part("index superseding", Box::new(move || drop(superseding)));
    drop_part(
        "index references (approvals by intent)",
        Box::new(move || drop(references)),
    );
    let Judged {
        diagnostics, facts, ..
    } = judged;
    drop_part("judgement: facts", Box::new(move || drop(facts)));
    drop_part(
        "judgement: diagnostics",
        Box::new(move || drop(diagnostics)),
    );
    drop_part(
        "model diagnostics",
        Box::new(move || drop(model_diagnostics)),
    );
    drop_part("checks' diagnostics", Box::new(move || drop(checks)));
    drop_part(
        "engine",
        Box::new(move || drop((engine, policy_diagnostics))),
    );
    let Snapshot {
        config,
        principals,
        applications,
        versions,
        entitlements,
        intents,
        approvals,
        exceptions,
        policies,
    } = snapshot;
    drop_part("snapshot intents", Box::new(move || drop(intents)));
    drop_part("snapshot approvals", Box::new(move || drop(approvals)));
    drop_part("snapshot exceptions", Box::new(move || drop(exceptions)));
    drop_part("snapshot versions", Box::new(move || drop(versions)));
    drop_part(
        "snapshot config, principals, applications, entitlements, policies",
        Box::new(move || drop((config, principals, applications, entitlements, policies))),
    );
    Ok(parts)
}

#[cfg(test)]
mod tests {
    //! `differing_paths` decides which objects a cached revision may share
    //! with the previous one, so it must name every path whose entry
    //! differs: checked against libgit2's own tree diff over many commits
    //! of random edits made with the real `git`.
    use super::*;
    use std::process::Command;
    use tempfile::TempDir;

    fn git(directory: &Path, args: &[&str]) -> String {
        let output = Command::new("git")
            .args(["-c", "user.name=T", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(directory)
            .output()
            .expect("git runs");
        assert!(output.status.success(), "git {args:?}: {output:?}");
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    /// The paths (below `subdir`) that libgit2's tree diff names between
    /// two commits, old and new sides.
    fn libgit2_paths(repo: &GovernedRepo, from: Oid, to: Oid) -> HashSet<String> {
        let before = governed_tree(repo, from).unwrap().unwrap();
        let after = governed_tree(repo, to).unwrap().unwrap();
        let mut options = git2::DiffOptions::new();
        options.include_typechange(false).ignore_submodules(false);
        let diff = repo
            .repository
            .diff_tree_to_tree(Some(&before), Some(&after), Some(&mut options))
            .unwrap();
        diff.deltas()
            .flat_map(|delta| [delta.old_file().path(), delta.new_file().path()])
            .flatten()
            .map(|path| path.to_str().unwrap().to_owned())
            .collect()
    }

    /// A small deterministic generator (xorshift), so a failure replays.
    struct Random(u64);
    impl Random {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    const NAMES: [&str; 6] = ["a", "b.yaml", "b", "a-b", "a.yaml", "z"];

    fn random_path(random: &mut Random) -> String {
        let depth = 1 + random.below(3);
        (0..depth)
            .map(|_| NAMES[random.below(NAMES.len())])
            .collect::<Vec<_>>()
            .join("/")
    }

    /// One random edit of the work tree under `root`: a file written,
    /// removed, made executable, turned into a symlink, or a file and a
    /// folder swapped at one path.
    fn edit(root: &Path, random: &mut Random, round: usize) {
        let path = root.join(random_path(random));
        match random.below(6) {
            0 | 1 => {
                if path.is_dir() {
                    std::fs::remove_dir_all(&path).unwrap();
                }
                if let Some(parent) = path.parent() {
                    // A file where a folder is needed goes.
                    let mut ancestor = parent.to_path_buf();
                    while ancestor != root {
                        if ancestor.is_file() || ancestor.is_symlink() {
                            std::fs::remove_file(&ancestor).unwrap();
                        }
                        ancestor.pop();
                    }
                    std::fs::create_dir_all(parent).unwrap();
                }
                if path.is_symlink() {
                    std::fs::remove_file(&path).unwrap();
                }
                std::fs::write(&path, format!("round: {round}\n")).unwrap();
            }
            2 => {
                if path.is_dir() {
                    std::fs::remove_dir_all(&path).unwrap();
                } else if path.is_file() || path.is_symlink() {
                    std::fs::remove_file(&path).unwrap();
                }
            }
            3 => {
                if path.is_file() && !path.is_symlink() {
                    use std::os::unix::fs::PermissionsExt;
                    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode ^ 0o111))
                        .unwrap();
                }
            }
            4 => {
                if path.is_file() && !path.is_symlink() {
                    std::fs::remove_file(&path).unwrap();
                    std::os::unix::fs::symlink("elsewhere", &path).unwrap();
                }
            }
            _ => {
                // Rewrite a file with its own content: no difference.
                if path.is_file() && !path.is_symlink() {
                    let text = std::fs::read(&path).unwrap();
                    std::fs::write(&path, text).unwrap();
                }
            }
        }
    }

    fn check_against_libgit2(subdir: &str, seed: u64) {
        let directory = TempDir::new().unwrap();
        let top = directory.path();
        git(top, &["init", "-q", "-b", "main"]);
        let root = if subdir.is_empty() {
            top.to_path_buf()
        } else {
            top.join(subdir)
        };
        std::fs::create_dir_all(root.join("intents")).unwrap();
        std::fs::write(root.join("intents/keep.yaml"), "kept: true\n").unwrap();
        std::fs::write(top.join("outside.txt"), "0\n").unwrap();
        git(top, &["add", "-A"]);
        git(top, &["commit", "-q", "-m", "start"]);
        let repo = GovernedRepo::open(&root).unwrap();
        assert_eq!(repo.subdir, subdir);
        let mut random = Random(seed);
        let mut commits = vec![repo.resolve("HEAD").unwrap()];
        let mut compared = 0;
        for round in 0..24 {
            for _ in 0..1 + random.below(4) {
                edit(&root, &mut random, round);
            }
            // A change outside the governed folder is never a difference.
            std::fs::write(top.join("outside.txt"), format!("{round}\n")).unwrap();
            git(top, &["add", "-A"]);
            git(top, &["commit", "-q", "--allow-empty", "-m", "edit"]);
            commits.push(repo.resolve("HEAD").unwrap());
            // Against the previous commit and against one further back.
            let to = commits[commits.len() - 1];
            for from in [
                commits[commits.len() - 2],
                commits[random.below(commits.len())],
            ] {
                let ours = differing_paths(&repo, from, to)
                    .unwrap()
                    .expect("plain names are compared");
                assert_eq!(
                    ours,
                    libgit2_paths(&repo, from, to),
                    "seed {seed}, round {round}, subdir {subdir:?}"
                );
                compared += 1;
            }
        }
        assert_eq!(compared, 48);
    }

    #[test]
    fn differing_paths_are_the_paths_libgit2_diffs() {
        for seed in [1, 7, 42] {
            check_against_libgit2("", seed);
            check_against_libgit2("governed/tenant", seed);
        }
    }

    #[test]
    fn differing_paths_are_none_without_the_governed_folder() {
        let directory = TempDir::new().unwrap();
        let top = directory.path();
        git(top, &["init", "-q", "-b", "main"]);
        std::fs::create_dir_all(top.join("governed")).unwrap();
        std::fs::write(top.join("governed/a.yaml"), "a: 1\n").unwrap();
        git(top, &["add", "-A"]);
        git(top, &["commit", "-q", "-m", "one"]);
        let repo = GovernedRepo::open(&top.join("governed")).unwrap();
        let first = repo.resolve("HEAD").unwrap();
        git(top, &["rm", "-q", "-r", "governed"]);
        std::fs::write(top.join("other"), "x\n").unwrap();
        git(top, &["add", "-A"]);
        git(top, &["commit", "-q", "-m", "two"]);
        let second = repo.resolve("HEAD").unwrap();
        assert_eq!(differing_paths(&repo, first, second).unwrap(), None);
        assert_eq!(
            differing_paths(&repo, first, first).unwrap(),
            Some(HashSet::new())
        );
    }
}
