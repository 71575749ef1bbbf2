//! The pull-request check: what the PR head would do, judged by the base.
//!
//! Pure. The head's files are loaded as they are; the config, principals and
//! policies that judge them come from the base branch's tip
//! ([`Snapshot::judged_by`]), so a pull request can never relax the rules it
//! is judged by (DESIGN invariant 1). What the PR changed is measured from
//! the fork point (the merge base), so commits that landed on the base
//! branch since are not blamed on it. Reviews become approvals as
//! [`super::approvals`] describes; a change to the rules themselves needs an
//! approving review by a platform admin.
//!
//! The aggregate: `failure` when a file the PR touches (or breaks) has an
//! error or an affected intent is denied; `pending` while any affected
//! intent waits for approval or an exception, a governance change waits
//! for an admin, or an application's allowed_scope changes without a CAB
//! scope approval (with or without intents); `success` otherwise.

use super::approvals::AppliedReviews;
use super::changes;
use super::review::{self, ReviewStanding, Standing};
use super::wire::{PullRequest, Review};
use crate::authority::ChangeHistory;
use crate::diagnostic::Diagnostic;
use crate::evaluation::RuntimeFacts;
use crate::judge::{self, Case, Proof};
use crate::model::{self, Entry, Role};
use crate::plan::{self, Plan};
use crate::policy::Decision;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeSet;

/// What the check needs: the pull request, three revisions' entries, the reviews.
pub struct PullRequestInput<'a> {
    pub pull_request: &'a PullRequest,
    /// The PR head's files.
    pub head_entries: &'a [Entry],
    /// The base branch's tip: the rules.
    pub base_entries: &'a [Entry],
    pub base_sha: &'a str,
    /// The merge base of head and base: what the PR started from.
    pub fork_point_entries: &'a [Entry],
    pub reviews: &'a [Review],
    /// Who signed the PR's commits (`source::history::change_history` from
    /// the fork point to the head).
    pub history: &'a ChangeHistory,
    /// What the daemon's store knows (in-flight changes, rolled-back
    /// versions); `NoRuntime` without one.
    pub runtime: &'a dyn RuntimeFacts,
    pub now: DateTime<Utc>,
}

/// The state of the `ringmaster/policy` check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckState {
    Success,
    Pending,
    Failure,
}

impl CheckState {
    /// The commit status `state`.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckState::Success => "success",
            CheckState::Pending => "pending",
            CheckState::Failure => "failure",
        }
    }
}

/// One approval that counted, and who gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CountedApproval {
    pub approval_id: String,
    /// `@login (principal)` for a review, `principal (file)` for a record.
    pub given_by: String,
}

/// The report on one intent the PR affects.
#[derive(Debug, Clone, Serialize)]
pub struct IntentReport {
    pub plan: Plan,
    pub approvals_required: u32,
    pub counted: Vec<CountedApproval>,
    /// Approvals still needed.
    pub missing: u32,
    /// Reviewers whose approval would count: `@login (principal)`.
    pub eligible_reviewers: Vec<String>,
}

impl IntentReport {
    pub fn decision(&self) -> Decision {
        self.plan.evaluation.decision()
    }
}

/// A change to the rules themselves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GovernanceReport {
    pub paths: Vec<String>,
    /// Admins approving the head: `@login (principal)`.
    pub approved_by: Vec<String>,
    pub eligible_reviewers: Vec<String>,
}

impl GovernanceReport {
    pub fn satisfied(&self) -> bool {
        !self.approved_by.is_empty()
    }
}

/// Everything the check found; the status and the comment are rendered from it.
#[derive(Debug, Clone, Serialize)]
pub struct PullRequestVerdict {
    pub number: u64,
    pub head_sha: String,
    pub base_ref: String,
    pub base_sha: String,
    pub state: CheckState,
    /// One line, at most 140 characters (a commit status description).
    pub summary: String,
    pub intents: Vec<IntentReport>,
    pub removed_intents: Vec<String>,
    pub governance: Option<GovernanceReport>,
    /// Applications whose allowed_scope the PR changes, approved or not
    /// (an unapproved one keeps the check pending, with or without intents).
    pub scope_changes: Vec<crate::judge::ScopeChange>,
    /// Errors the PR is responsible for: in files it changed, or new with it.
    pub blocking: Vec<Diagnostic>,
    /// Findings that were already on the base branch, or warnings.
    pub other_diagnostics: Vec<Diagnostic>,
    pub standings: Vec<ReviewStanding>,
    pub applied: AppliedReviews,
    pub changed_paths: Vec<String>,
}

fn who(login: &str, principal: Option<&str>) -> String {
    match principal {
        Some(id) => format!("@{login} ({id})"),
        None => format!("@{login} (no principal)"),
    }
}

/// Judges a pull request: every revision loaded and every intent judged
/// (the reference the incremental check, [`super::incremental`], must
/// match for every pull request).
pub fn judge(input: &PullRequestInput<'_>) -> PullRequestVerdict {
    let changed = changes::changed_paths(input.fork_point_entries, input.head_entries);
    let (base, base_diagnostics) = judge::load(input.base_entries);
    let (fork_point, _) = judge::load(input.fork_point_entries);
    let standings = review::standings(
        input.reviews,
        &input.pull_request.head.sha,
        input.pull_request.author(),
    );
    let judgement = judge::judge(Case {
        entries: input.head_entries,
        rules: Some(&base),
        base: Some(&base),
        proof: Some(proof(
            input.pull_request,
            &fork_point,
            standings.clone(),
            input.history,
        )),
        runtime: input.runtime,
        now: input.now,
    });
    let (verdict, _) = verdict(Parts {
        pull_request: input.pull_request,
        base_sha: input.base_sha,
        changed,
        base: &base,
        base_diagnostics: &base_diagnostics,
        fork_point: &fork_point,
        standings,
        judgement,
        gate_calls: None,
        removed_intents: None,
    });
    verdict
}

/// The proof a pull request brings: the reviews on its head, the
/// signatures of its commits, measured from its fork point.
pub(crate) fn proof<'a>(
    pull_request: &PullRequest,
    fork_point: &'a crate::model::Snapshot,
    standings: Vec<ReviewStanding>,
    history: &'a ChangeHistory,
) -> Proof<'a> {
    Proof {
        previous: Some(fork_point),
        standings,
        source: format!("pull/{}", pull_request.number),
        head_sha: pull_request.head.sha.clone(),
        pull_request: Some(pull_request.number),
        provenance: None,
        carried: &[],
        history,
        identities: None,
    }
}

/// What a verdict is made of, however the head was judged.
pub(crate) struct Parts<'a> {
    pub pull_request: &'a PullRequest,
    pub base_sha: &'a str,
    /// Paths whose entry differs between the fork point and the head.
    pub changed: BTreeSet<String>,
    /// The base tip, loaded (`judge::load`), and its diagnostics.
    pub base: &'a crate::model::Snapshot,
    pub base_diagnostics: &'a [Diagnostic],
    pub fork_point: &'a crate::model::Snapshot,
    pub standings: Vec<ReviewStanding>,
    /// The head judged by the base's rules (its `evaluation.intents` need
    /// only hold the affected intents).
    pub judgement: judge::Judgement,
    /// Every plane's gate-check calls for the judged head
    /// (`plan::gate_calls_by_plane`), when the caller has them.
    pub gate_calls: Option<std::collections::BTreeMap<crate::model::Plane, u64>>,
    /// The fork point's intents the head no longer has, in id order
    /// (`changes::removed_intents`), when the caller knows them.
    pub removed_intents: Option<Vec<String>>,
}

/// The verdict on a judged pull request, and the judged snapshot back.
pub(crate) fn verdict(parts: Parts<'_>) -> (PullRequestVerdict, crate::model::Snapshot) {
    let Parts {
        pull_request,
        base_sha,
        changed,
        base,
        base_diagnostics,
        fork_point,
        standings,
        judgement,
        gate_calls,
        removed_intents,
    } = parts;
    let author = pull_request.author();
    let head_sha = pull_request.head.sha.as_str();
    let judged = judgement.snapshot;
    let evaluation = judgement.evaluation;
    let applied = judgement.applied;
    let affected = judgement.affected;
    let scope_changes = judgement.scope_changes;
    let diagnostics = evaluation.diagnostics.clone();
    let known_on_base: BTreeSet<(&str, &str)> = base_diagnostics
        .iter()
        .map(|d| (d.file.as_str(), d.message.as_str()))
        .collect();
    let (blocking, other_diagnostics): (Vec<Diagnostic>, Vec<Diagnostic>) =
        diagnostics.into_iter().partition(|d| {
            d.is_error()
                && (changed.contains(&d.file)
                    || !known_on_base.contains(&(d.file.as_str(), d.message.as_str())))
        });

    let reported: Vec<_> = evaluation
        .intents
        .iter()
        .filter(|e| affected.contains(&e.intent_id))
        .collect();
    // One pass over every intent for the gate-check intervals, not one per
    // intent planned.
    let gate_calls = match gate_calls {
        Some(calls) => calls,
        None if reported.is_empty() => Default::default(),
        None => plan::gate_calls_by_plane(&judged),
    };
    let intents: Vec<IntentReport> = reported
        .into_iter()
        .filter_map(|intent_evaluation| {
            let intent = judged.intents.get(&intent_evaluation.intent_id)?;
            let outcome = &intent_evaluation.outcome;
            let counted: Vec<CountedApproval> = outcome
                .counted_approvals
                .iter()
                .map(|approval_id| CountedApproval {
                    approval_id: approval_id.clone(),
                    given_by: match applied.review_for(&intent.intent_id, approval_id) {
                        Some(review) => who(&review.login, review.principal.as_deref()),
                        None => judged
                            .approvals
                            .values()
                            .find(|a| &a.approval_id == approval_id)
                            .map(|a| format!("{} ({})", a.decided_by, a.file))
                            .unwrap_or_else(|| approval_id.clone()),
                    },
                })
                .collect();
            let missing = outcome
                .approvals_required
                .saturating_sub(u32::try_from(counted.len()).unwrap_or(u32::MAX));
            let eligible_reviewers = base
                .principals
                .values()
                .filter(|p| p.has_role(Role::CabApprover))
                .filter(|p| model::scope::covers(&p.scope, &intent.target_scope))
                .filter(|p| p.id != intent.requested_by)
                .filter_map(|p| {
                    let login = p.forge_login.as_deref()?;
                    (!login.eq_ignore_ascii_case(author)).then(|| who(login, Some(&p.id)))
                })
                .collect();
            Some(IntentReport {
                plan: plan::build_with_gate_calls(
                    &judged,
                    intent,
                    intent_evaluation.clone(),
                    Some(base),
                    &gate_calls,
                ),
                approvals_required: outcome.approvals_required,
                counted,
                missing,
                eligible_reviewers,
            })
        })
        .collect();

    let governance_paths = changes::governance_paths(&changed);
    let governance = (!governance_paths.is_empty()).then(|| GovernanceReport {
        paths: governance_paths,
        approved_by: standings
            .iter()
            .filter(|s| s.standing == Standing::Approving)
            .filter_map(|s| {
                let principal = base.principal_by_login(&s.login)?;
                principal
                    .has_role(Role::Admin)
                    .then(|| who(&s.login, Some(&principal.id)))
            })
            .collect(),
        eligible_reviewers: base
            .principals
            .values()
            .filter(|p| p.has_role(Role::Admin))
            .filter_map(|p| {
                let login = p.forge_login.as_deref()?;
                (!login.eq_ignore_ascii_case(author)).then(|| who(login, Some(&p.id)))
            })
            .collect(),
    });

    let (state, summary) = aggregate(&intents, governance.as_ref(), &scope_changes, &blocking);
    let verdict = PullRequestVerdict {
        number: pull_request.number,
        head_sha: head_sha.to_owned(),
        base_ref: pull_request.base.name.clone(),
        base_sha: base_sha.to_owned(),
        state,
        summary,
        removed_intents: removed_intents
            .unwrap_or_else(|| changes::removed_intents(&judged, fork_point)),
        intents,
        governance,
        scope_changes,
        blocking,
        other_diagnostics,
        standings,
        applied,
        changed_paths: changed.into_iter().collect(),
    };
    (verdict, judged)
}

/// The check state and its one-line summary.
fn aggregate(
    intents: &[IntentReport],
    governance: Option<&GovernanceReport>,
    scope_changes: &[crate::judge::ScopeChange],
    blocking: &[Diagnostic],
) -> (CheckState, String) {
    let scopes_unapproved: Vec<&str> = scope_changes
        .iter()
        .filter(|change| change.approved_by.is_none())
        .map(|change| change.application_id.as_str())
        .collect();
    let with = |decision: Decision| -> Vec<&str> {
        intents
            .iter()
            .filter(|i| i.decision() == decision)
            .map(|i| i.plan.intent_id.as_str())
            .collect()
    };
    let denied = with(Decision::Deny);
    let approval = with(Decision::RequireApproval);
    let exception = with(Decision::RequireException);
    let admin_missing = governance.is_some_and(|g| !g.satisfied());
    let (state, summary) = if !blocking.is_empty() || !denied.is_empty() {
        let mut parts = Vec::new();
        if !blocking.is_empty() {
            parts.push(format!("{} error(s) in changed files", blocking.len()));
        }
        if !denied.is_empty() {
            parts.push(format!("DENY {}", denied.join(", ")));
        }
        (CheckState::Failure, parts.join("; "))
    } else if !approval.is_empty()
        || !exception.is_empty()
        || admin_missing
        || !scopes_unapproved.is_empty()
    {
        let mut parts = Vec::new();
        if !approval.is_empty() {
            let missing: u32 = intents.iter().map(|i| i.missing).sum();
            parts.push(format!(
                "waiting for {} CAB approval(s): {}",
                missing.max(1),
                approval.join(", ")
            ));
        }
        if !exception.is_empty() {
            parts.push(format!(
                "waiting for an exception: {}",
                exception.join(", ")
            ));
        }
        if !scopes_unapproved.is_empty() {
            parts.push(format!(
                "changes the allowed scope of {}: needs a CAB scope approval",
                scopes_unapproved.join(", ")
            ));
        }
        if admin_missing {
            parts.push("changes the rules: needs a platform admin's approval".to_owned());
        }
        (CheckState::Pending, parts.join("; "))
    } else if intents.is_empty() {
        (
            CheckState::Success,
            "no deployment decision changes".to_owned(),
        )
    } else {
        (
            CheckState::Success,
            format!("ALLOW {}", with(Decision::Allow).join(", ")),
        )
    };
    (state, truncate(&summary, 140))
}

/// Cuts `text` to at most `limit` characters, marking the cut with `…`.
pub fn truncate(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(limit - 1).collect();
    cut.push('…');
    cut
}
