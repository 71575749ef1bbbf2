//! The one judge: a revision's entries, the rules in force, the proof of who
//! decided, runtime facts and `now` in; diagnostics and decisions out.
//!
//! Every entry point reaches a decision through [`judge`] and nothing else:
//! `validate` and `plan` (the revision's own rules, or `--base`'s), the PR
//! check (`forge::check`: the head judged by the base tip's rules, with the
//! reviews on the head), the merge re-judgement (`forge::merge`) and the
//! daemon (`daemon::process`). What differs between them is only the facts
//! they pass in ([`Case`]); the steps are the same, in this order:
//!
//! 1. load the entries and check every reference (`model::load`,
//!    `model::links`), the change-freeze windows of the config, and the
//!    tenant policy files (they are compiled for their diagnostics even when
//!    other rules judge);
//! 2. swap in the rules in force ([`Snapshot::judged_by`]) when the caller
//!    has them, so a change never relaxes what judges it (DESIGN §4.1);
//! 3. apply the proof of who decided ([`Proof`]): records the change adds
//!    count only when their decider vouched for them (an approving review on
//!    the head, or a valid SSH signature by their key on the commit that
//!    wrote them), reviews on the head become approval records
//!    (`forge::approvals`); a claim that does not count is a warning on its
//!    file, with the reason; with `require_signed_commits`, every commit of
//!    the change must be signed by a principal's key;
//! 4. judge every intent with the policy engine of the rules in force
//!    (`evaluation::evaluate`).
//!
//! Pure: no I/O and no clock; the shell gathers the facts.

use crate::authority::{ChangeHistory, CommitSignature, KeyRing};
use crate::diagnostic::{self, Diagnostic};
use crate::evaluation::{self, Evaluation, RuntimeFacts};
use crate::forge::approvals::{self, AppliedReviews, ReviewContext};
use crate::forge::carried::CarriedApproval;
use crate::forge::changes;
use crate::forge::provenance::RecordProvenance;
use crate::forge::review::ReviewStanding;
use crate::model::digest::scope_sha256;
use crate::model::{self, Entry, Scope, Snapshot};
use crate::progress::Progress;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Who vouched for what in the change being judged.
pub struct Proof<'a> {
    /// What was merged before the change (the PR's fork point, the commit's
    /// first parent): records it already had are kept when what vouches for
    /// them still does, records the change adds or edits must be earned.
    /// `None` trusts every record (a repository's first commit).
    pub previous: Option<&'a Snapshot>,
    /// Every reviewer's standing on the change's head (empty without a forge).
    pub standings: Vec<ReviewStanding>,
    /// Names the source of review approvals, e.g. `pull/7` or `push`.
    pub source: String,
    /// The head commit reviews must be on.
    pub head_sha: String,
    pub pull_request: Option<u64>,
    /// What vouches for each record `previous` already had, by path; `None`
    /// trusts them all (what the base branch has was merged).
    pub provenance: Option<&'a BTreeMap<String, RecordProvenance>>,
    /// Review approvals earlier merges counted (read from the evidence).
    pub carried: &'a [CarriedApproval],
    /// Who signed the commits of the change (`source::history`): the
    /// commits that wrote each record it adds, edits or deletes, and every
    /// commit for `require_signed_commits`. Empty when not known.
    pub history: &'a ChangeHistory,
    /// Whose principals and signing keys identify deciders: the rules in
    /// force *before* the change (a commit cannot vouch for itself with a
    /// key it adds). `None`: the rules that judge, else `previous`.
    pub identities: Option<&'a Snapshot>,
}

/// No history known: no record was written by a signed commit.
pub static NO_HISTORY: ChangeHistory = ChangeHistory {
    signed: BTreeMap::new(),
    commits: Vec::new(),
};

impl Proof<'_> {
    /// No reviews: a change checked without a forge (`validate --base`);
    /// `history` is the history between the fork point and the head.
    pub fn without_reviews<'a>(
        previous: Option<&'a Snapshot>,
        history: &'a ChangeHistory,
    ) -> Proof<'a> {
        Proof {
            previous,
            standings: Vec::new(),
            source: "local".to_owned(),
            head_sha: String::new(),
            pull_request: None,
            provenance: None,
            carried: &[],
            history,
            identities: None,
        }
    }
}

/// Everything the judge needs to decide on one revision.
pub struct Case<'a> {
    /// The revision's files.
    pub entries: &'a [Entry],
    /// The rules in force: whose config, principals and policies judge.
    /// `None`: the revision's own.
    pub rules: Option<&'a Snapshot>,
    /// The revision application scope changes are measured against.
    pub base: Option<&'a Snapshot>,
    /// Who vouched for the change; `None` takes every record as written.
    pub proof: Option<Proof<'a>>,
    pub runtime: &'a dyn RuntimeFacts,
    pub now: DateTime<Utc>,
}

/// An application whose allowed_scope differs from the last authorised one
/// (`Case::base`): a governed change whether or not the application has
/// intents, authorised only by a CAB scope approval naming its digest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ScopeChange {
    pub application_id: String,
    /// `apps/<app>/app.yaml`.
    pub file: String,
    pub from: Scope,
    pub to: Scope,
    /// `model::digest::scope_sha256` of `to`: what the approval must name.
    pub scope_sha256: String,
    /// The approval that authorises it, if one counts.
    pub approved_by: Option<String>,
}

/// The scope approval that authorises application `application_id`'s new
/// allowed `scope`: a proven record of `snapshot` with `application_scope`
/// naming the application and the scope's digest, approved, unexpired at
/// `now`, decided by a `cab-approver` of `rules`. A release approval never
/// counts. The one definition the policy (`policies/scope_change.rego`)
/// mirrors and the daemon's scopes in force use.
pub fn scope_approval(
    snapshot: &Snapshot,
    rules: &Snapshot,
    application_id: &str,
    scope: &Scope,
    now: DateTime<Utc>,
) -> Option<String> {
    use crate::model::{ApprovalDecision, Role};
    let digest = scope_sha256(application_id, scope);
    snapshot
        .approvals
        .values()
        .find(|approval| {
            approval.application_scope.as_ref().is_some_and(|named| {
                named.application_id == application_id && named.scope_sha256 == digest
            }) && approval.decision == ApprovalDecision::Approved
                && approval.expiry > now
                && rules
                    .principals
                    .get(&approval.decided_by)
                    .is_some_and(|p| p.has_role(Role::CabApprover))
        })
        .map(|approval| approval.approval_id.clone())
}

/// Every application of `snapshot` whose allowed_scope differs (ignoring
/// order and repeats) from its scope in `base`. An application `base` lacks
/// is new: it starts with its scope.
pub fn scope_changes(
    snapshot: &Snapshot,
    base: &Snapshot,
    rules: &Snapshot,
    now: DateTime<Utc>,
) -> Vec<ScopeChange> {
    snapshot
        .applications
        .iter()
        .filter_map(|(id, application)| {
            let before = &base.applications.get(id)?.allowed_scope;
            let after = &application.allowed_scope;
            if before == after {
                return None;
            }
            let digest = scope_sha256(id, after);
            if scope_sha256(id, before) == digest {
                return None;
            }
            Some(ScopeChange {
                application_id: id.clone(),
                file: application.file.clone(),
                from: before.clone(),
                to: after.clone(),
                scope_sha256: digest,
                approved_by: scope_approval(snapshot, rules, id, after, now),
            })
        })
        .collect()
}

fn scope_text(scope: &Scope) -> String {
    format!(
        "boundaries [{}], business units [{}], sites {}",
        scope.acquisition_boundaries.join(", "),
        scope.business_units.join(", "),
        match &scope.sites {
            None => "(every site)".to_owned(),
            Some(sites) => format!("[{}]", sites.join(", ")),
        }
    )
}

/// The warning an unapproved scope change gets on its `app.yaml`.
fn unapproved_scope_change(snapshot: &Snapshot, change: &ScopeChange) -> Option<Diagnostic> {
    let application = snapshot.applications.get(&change.application_id)?;
    Some(application.warning(
        "/allowed_scope",
        format!(
            "allowed_scope of application {} changed from ({}) to ({}) since the last authorised scope, and no CAB scope approval counts: the change does not take effect and every intent of {} waits for it (scope.application_scope_changed); add an approvals/ record with application_scope {{application_id: {}, scope_sha256: \"{}\"}} decided by a cab-approver (a release approval does not count)",
            change.application_id,
            scope_text(&change.from),
            scope_text(&change.to),
            change.application_id,
            change.application_id,
            change.scope_sha256,
        ),
    ))
}

/// What the judge concluded.
#[derive(Debug, Clone)]
pub struct Judgement {
    /// The revision as judged: rules in force swapped in, unearned records
    /// left out, review approvals added.
    pub snapshot: Snapshot,
    /// Every diagnostic (sorted) and every intent's decision.
    pub evaluation: Evaluation,
    /// Review approvals added and records refused.
    pub applied: AppliedReviews,
    /// Intents whose decision the change can move (every intent without a
    /// previous revision).
    pub affected: BTreeSet<String>,
    /// Applications whose allowed_scope differs from the base's (empty
    /// without a base), approved or not.
    pub scope_changes: Vec<ScopeChange>,
}

impl Judgement {
    /// Scope changes no CAB scope approval authorises.
    pub fn unapproved_scope_changes(&self) -> impl Iterator<Item = &ScopeChange> {
        self.scope_changes
            .iter()
            .filter(|change| change.approved_by.is_none())
    }
}

/// Loads a revision and checks what does not need the policy: schemas,
/// references, the config's change-freeze windows. Every entry point that
/// only needs the typed snapshot of a revision calls this too.
pub fn load(entries: &[Entry]) -> (Snapshot, Vec<Diagnostic>) {
    load_observed(entries, &crate::progress::Silent)
}

/// [`load`], telling `progress` each step.
pub fn load_observed(entries: &[Entry], progress: &dyn Progress) -> (Snapshot, Vec<Diagnostic>) {
    progress.stage(&format!("loading {} files", entries.len()), None);
    let (snapshot, mut diagnostics) = model::load(entries);
    progress.stage("checking references", None);
    diagnostics.extend(checks(&snapshot));
    (snapshot, diagnostics)
}

/// [`load_observed`] of entries the caller gives up (`model::load_owned`):
/// the same result, each file's bytes held once (`validate`).
pub fn load_owned_observed(
    entries: Vec<Entry>,
    progress: &dyn Progress,
) -> (Snapshot, Vec<Diagnostic>) {
    progress.stage(&format!("loading {} files", entries.len()), None);
    let (snapshot, mut diagnostics) = model::load_owned(entries);
    progress.stage("checking references", None);
    diagnostics.extend(checks(&snapshot));
    (snapshot, diagnostics)
}

/// [`load_observed`]'s checks on a revision loaded as it was read
/// (`source::GovernedRepo::load_at`, what `validate` does): the same
/// result as [`load`] of the same entries.
pub fn checks_observed(
    (snapshot, mut diagnostics): (Snapshot, Vec<Diagnostic>),
    progress: &dyn Progress,
) -> (Snapshot, Vec<Diagnostic>) {
    progress.stage("checking references", None);
    diagnostics.extend(checks(&snapshot));
    (snapshot, diagnostics)
}

/// What [`load`] checks on a loaded snapshot after `model::load`: every
/// reference, targeting, the config's change-freeze windows. The
/// incremental PR check (`forge::incremental`) runs it on a snapshot it
/// patched instead of loading every file again.
pub fn checks(snapshot: &Snapshot) -> Vec<Diagnostic> {
    let mut diagnostics = model::links::check(snapshot);
    diagnostics.extend(crate::targeting::check(snapshot));
    if let Some(config) = &snapshot.config {
        for (index, message) in crate::orchestrator::validate_freezes(&config.change_freezes) {
            diagnostics.push(config.error(&format!("/change_freezes/{index}"), message));
        }
    }
    diagnostics
}

/// Approval records of a snapshot by the intent they decide on (those
/// without `application_scope`): the one reference [`checks`] follows
/// from an object a pull request does not change to one it can add or
/// remove. Built once per cached revision (`forge::incremental`).
#[derive(Debug, Default)]
pub struct ReferenceIndex {
    approvals_by_intent: HashMap<String, Vec<String>>,
}

impl ReferenceIndex {
    pub fn of(snapshot: &Snapshot) -> ReferenceIndex {
        let mut approvals_by_intent: HashMap<String, Vec<String>> = HashMap::new();
        for (id, approval) in &snapshot.approvals {
            if approval.application_scope.is_none() {
                approvals_by_intent
                    .entry(approval.deployment_intent_id.clone())
                    .or_default()
                    .push(id.clone());
            }
        }
        ReferenceIndex {
            approvals_by_intent,
        }
    }
}

/// How `head` differs from the revision [`checks_after_change`] starts
/// from: the objects loaded from `files` were taken out and the files
/// loaded again; nothing else differs. Only intents, approvals and
/// exceptions may come from `files` (config, principals, applications,
/// versions, entitlements and policies are the same objects).
pub struct ObjectChange<'a> {
    /// The changed files (added, edited, removed).
    pub files: &'a BTreeSet<String>,
    /// Ids of the intents the revision had from `files` and of those `head`
    /// has from them.
    pub intents: &'a BTreeSet<String>,
    /// Ids of the approval records `head` has from `files`.
    pub approvals: &'a BTreeSet<String>,
    /// Ids of the exceptions `head` has from `files`.
    pub exceptions: &'a BTreeSet<String>,
}

/// [`checks`] of `head`, from `before_checks` ([`checks`] of the revision
/// `head` was patched from, whose [`ReferenceIndex`] is `index`) and
/// `change`: what a diagnostic on an unchanged file says depends only on
/// objects that did not change, except an approval's `deployment_intent_id`
/// (does `head` have that intent?). So the findings on every file `change`
/// touched, and on the files of the approvals naming an intent it added or
/// removed, are found again ([`model::links::check_intent`],
/// [`model::links::check_approval`], [`model::links::check_exception`],
/// [`crate::targeting::check_intent`]); the others are kept. Every object
/// is in a file of its own, so a file's findings are all kept or all found
/// again, in the order [`checks`] finds them. The same diagnostics as
/// [`checks`] (`tests/pr_check_incremental.rs` compares the verdicts).
pub fn checks_after_change(
    before_checks: &[Diagnostic],
    index: &ReferenceIndex,
    head: &Snapshot,
    change: &ObjectChange<'_>,
) -> Vec<Diagnostic> {
    let mut files: BTreeSet<&str> = change.files.iter().map(String::as_str).collect();
    let mut approvals: BTreeSet<&str> = change.approvals.iter().map(String::as_str).collect();
    for id in change.intents {
        for approval_id in index.approvals_by_intent.get(id).into_iter().flatten() {
            if let Some(approval) = head.approvals.get(approval_id)
                && !change.files.contains(&approval.file)
            {
                files.insert(&approval.file);
                approvals.insert(approval_id);
            }
        }
    }
    let mut diagnostics: Vec<Diagnostic> = before_checks
        .iter()
        .filter(|d| !files.contains(d.file.as_str()))
        .cloned()
        .collect();
    let intents: Vec<_> = change
        .intents
        .iter()
        .filter_map(|id| head.intents.get(id))
        .filter(|intent| change.files.contains(&intent.file))
        .collect();
    for intent in &intents {
        model::links::check_intent(head, intent, &mut diagnostics);
    }
    for approval in approvals.iter().filter_map(|id| head.approvals.get(*id)) {
        model::links::check_approval(head, approval, &mut diagnostics);
    }
    if !change.exceptions.is_empty() {
        let artifact_ids = model::links::artifact_ids(head);
        for exception in change
            .exceptions
            .iter()
            .filter_map(|id| head.exceptions.get(id))
        {
            model::links::check_exception(head, &artifact_ids, exception, &mut diagnostics);
        }
    }
    diagnostics.extend(
        intents
            .iter()
            .filter_map(|intent| crate::targeting::check_intent(head, intent)),
    );
    diagnostics
}

/// `require_signed_commits: true`: every commit of the change must carry a
/// valid signature by a principal's key; each that does not is an error.
fn unsigned_commits(
    snapshot: &Snapshot,
    keys: &KeyRing,
    commits: &[CommitSignature],
) -> Vec<Diagnostic> {
    let Some(config) = &snapshot.config else {
        return Vec::new();
    };
    keys.unsigned(commits)
        .into_iter()
        .map(|(_, reason)| {
            config.error(
                "/require_signed_commits",
                format!(
                    "{reason}; require_signed_commits is true, so every governed commit must carry a valid SSH signature by a key in principals/ (git config gpg.format ssh, user.signingkey, git commit -S)"
                ),
            )
        })
        .collect()
}

/// Judges one revision. See the module documentation for the steps.
pub fn judge(case: Case<'_>) -> Judgement {
    judge_observed(case, &crate::progress::Silent)
}

/// [`judge`], telling `progress` each step as it starts (`validate` draws
/// them, and prints their times with `RINGMASTER_TIMINGS=1`).
pub fn judge_observed(case: Case<'_>, progress: &dyn Progress) -> Judgement {
    let (own, diagnostics) = load_observed(case.entries, progress);
    judge_snapshot_observed(case, own, diagnostics, progress)
}

/// [`judge_observed`] in two steps, so a caller that owns the entries can
/// free them between the two (`validate`): [`load_observed`], then this on
/// what it loaded (`case.entries` is not read again).
pub fn judge_snapshot_observed(
    case: Case<'_>,
    own: Snapshot,
    mut diagnostics: Vec<Diagnostic>,
    progress: &dyn Progress,
) -> Judgement {
    progress.stage("compiling policies", None);
    let (own_engine, policy_diagnostics) = evaluation::engine_for(&own);
    diagnostics.extend(policy_diagnostics);
    let (base, now, runtime) = (case.base, case.now, case.runtime);
    judge_loaded(
        case,
        own,
        diagnostics,
        &|rules| evaluation::engine_for(rules).0,
        own_engine,
        None,
        &mut |snapshot, engine, _affected| {
            progress.stage(&format!("judging {} intents", snapshot.intents.len()), None);
            let evaluation = evaluation::evaluate(snapshot, engine, base, now, runtime);
            progress.stage("checking scope changes, sorting diagnostics", None);
            evaluation
        },
    )
}

/// Steps 2 to 4 of [`judge`] on a revision already loaded: `own` and its
/// `diagnostics` (those of [`load`] and of compiling its own policies),
/// `own_engine` compiled from its policies, `engine_for` compiling the
/// rules in force when their policies differ, and `evaluate` judging the
/// intents of the snapshot as judged (given the intents the change
/// affects). [`judge`] passes `evaluation::evaluate`; the incremental PR
/// check (`forge::incremental`) passes cached parts and re-judges only the
/// intents a change can move. `affected`: the intents the change can move,
/// when the caller knows them (what `changes::affected_intents` gives for
/// `own` and the proof's previous revision); `None` computes them.
#[allow(clippy::too_many_arguments)]
pub fn judge_loaded(
    case: Case<'_>,
    own: Snapshot,
    mut diagnostics: Vec<Diagnostic>,
    engine_for: &dyn Fn(&Snapshot) -> crate::policy::PolicyEngine,
    own_engine: crate::policy::PolicyEngine,
    affected: Option<BTreeSet<String>>,
    evaluate: &mut dyn FnMut(
        &Snapshot,
        &crate::policy::PolicyEngine,
        &BTreeSet<String>,
    ) -> Evaluation,
) -> Judgement {
    let own_policies = own.policies.clone();
    let mut snapshot = own;
    if let Some(rules) = case.rules {
        // `Snapshot::judged_by`, without copying the revision's objects.
        snapshot.config = rules.config.clone();
        snapshot.principals = rules.principals.clone();
        snapshot.policies = rules.policies.clone();
    }
    let mut applied = AppliedReviews::default();
    let previous = case.proof.as_ref().and_then(|proof| proof.previous);
    let affected = affected.unwrap_or_else(|| changes::affected_intents(&snapshot, previous));
    if let Some(proof) = &case.proof {
        let fallback;
        let principals_from = match (proof.identities, case.rules, proof.previous) {
            (Some(identities), _, _) => identities,
            (None, Some(rules), _) => rules,
            (None, None, Some(previous)) => previous,
            (None, None, None) => {
                fallback = snapshot.clone();
                &fallback
            }
        };
        let keys = KeyRing::of(principals_from);
        if snapshot
            .config
            .as_ref()
            .is_some_and(|config| config.require_signed_commits)
        {
            diagnostics.extend(unsigned_commits(&snapshot, &keys, &proof.history.commits));
        }
        let context = ReviewContext {
            standings: &proof.standings,
            principals_from,
            previous: proof.previous,
            source: proof.source.clone(),
            head_sha: proof.head_sha.clone(),
            pull_request: proof.pull_request,
            provenance: proof.provenance,
            signed: &proof.history.signed,
            keys,
        };
        applied = approvals::apply(&mut snapshot, &context, &affected);
        approvals::apply_carried(&mut snapshot, proof.carried, &mut applied);
        diagnostics.extend(applied.uncorroborated.iter().map(|r| r.diagnostic()));
    }

    let engine = match case.rules {
        // The rules in force have other policies than the revision: the
        // revision's own were compiled above for their diagnostics only.
        Some(rules) if rules.policies != own_policies => engine_for(rules),
        _ => own_engine,
    };
    let mut evaluation = evaluate(&snapshot, &engine, &affected);
    diagnostics.append(&mut evaluation.diagnostics);
    // A change of an application's allowed_scope is governed whether or not
    // the application has an intent: reported here, in every entry point.
    let scope_changes = match case.base {
        Some(base) => scope_changes(&snapshot, base, case.rules.unwrap_or(&snapshot), case.now),
        None => Vec::new(),
    };
    diagnostics.extend(
        scope_changes
            .iter()
            .filter(|change| change.approved_by.is_none())
            .filter_map(|change| unapproved_scope_change(&snapshot, change)),
    );
    diagnostic::sort(&mut diagnostics);
    evaluation.diagnostics = diagnostics;
    Judgement {
        snapshot,
        evaluation,
        applied,
        affected,
        scope_changes,
    }
}

impl Judgement {
    /// The earliest instant after `now` at which an approval or exception
    /// this judgement read expires: the decisions must be judged again then
    /// (DESIGN §4.3: expiry takes effect at its instant, not at the next
    /// commit). Review approvals expire too (`forge::approvals`).
    ///
    /// The end of a change freeze in force at `now` is in the schedule too:
    /// work held by the freeze (rings waiting to start, deferred
    /// remediations) resumes at its end without waiting for a commit.
    pub fn next_expiry(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let approvals = self.snapshot.approvals.values().map(|a| a.expiry);
        let exceptions = self.snapshot.exceptions.values().map(|e| e.expiry);
        let freeze_end = self
            .snapshot
            .config
            .as_ref()
            .and_then(|config| crate::orchestrator::active_freeze(&config.change_freezes, now))
            .map(|freeze| freeze.ends_at);
        approvals
            .chain(exceptions)
            .chain(freeze_end)
            .filter(|at| *at > now)
            .min()
    }
}
