//! Merged commits: the decision again, with the pull request's reviews.
//!
//! The PR check is never trusted alone: when a commit lands on the tracked
//! branch the daemon judges it again (`daemon::process`), and when the forge
//! is configured it first asks GitHub how the commit got there
//! ([`MergeFacts`]). The reviews that approved the exact head commit that
//! merged become approvals as in [`super::approvals`] (logins mapped by the
//! first parent's principals — the rules in force when the reviews were
//! given), records the merge adds without their decider's approval are
//! ignored, and the decision pack carries the facts ([`ForgeEvidence`]):
//! PR number and URL, head and merge commits, each counted review.
//!
//! A commit without a pull request (a direct push) gets no new review
//! approvals, and the approval and exception records it adds count only if
//! the commit that wrote them is signed by their decider's key, or it is
//! the daemon's root of authority (its first commit). Approvals earlier merges recorded
//! are carried to intents that did not change ([`super::carried`]). Pure.

use super::approvals::AppliedReviews;
use super::carried::CarriedApproval;
use super::provenance::RecordProvenance;
use super::review::{self, ReviewStanding};
use super::wire::Review;
use crate::authority::ChangeHistory;
use crate::evaluation::{IntentEvaluation, RuntimeFacts};
use crate::judge::{self, Case, Judgement, Proof};
use crate::model::{Entry, Snapshot};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The pull request a commit merged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MergedPullRequest {
    pub number: u64,
    pub url: Option<String>,
    pub author: String,
    /// The head commit that was merged: the one approvals must be on.
    pub head_sha: String,
    pub merge_commit_sha: String,
    pub merged_at: Option<DateTime<Utc>>,
}

/// What GitHub says about how one commit reached the tracked branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MergeFacts {
    /// `owner/name`.
    pub repository: String,
    /// `None` when no merged pull request has this commit as its merge commit.
    pub pull_request: Option<MergedPullRequest>,
    pub reviews: Vec<Review>,
    /// Review approvals earlier merges recorded (see [`super::carried`]).
    pub carried: Vec<CarriedApproval>,
    /// What vouches for the records the first parent already had, by path
    /// (see [`super::provenance`]).
    pub provenance: BTreeMap<String, RecordProvenance>,
}

/// The forge facts for a commit's decision packs.
#[derive(Debug, Clone, Default)]
pub struct ForgeEvidence {
    facts: Option<MergeFacts>,
    standings: Vec<ReviewStanding>,
    applied: AppliedReviews,
}

impl ForgeEvidence {
    /// No forge configured: packs carry `"forge": null`.
    pub fn none() -> ForgeEvidence {
        ForgeEvidence::default()
    }

    /// The `forge` slot of one intent's decision pack.
    pub fn for_intent(&self, evaluation: &IntentEvaluation) -> Value {
        let Some(facts) = &self.facts else {
            return Value::Null;
        };
        let counted = &evaluation.outcome.counted_approvals;
        let review_approvals: Vec<Value> = self
            .applied
            .approvals
            .iter()
            .filter(|a| a.intent_id == evaluation.intent_id)
            .map(|a| {
                json!({
                    "approval_id": a.approval_id,
                    "review_id": a.review_id,
                    "login": a.login,
                    "principal": a.principal,
                    "submitted_at": a.submitted_at,
                    "commit_reviewed": a.commit_reviewed,
                    "pull_request": a.pull_request,
                    "counted": counted.contains(&a.approval_id),
                })
            })
            .collect();
        let counted_reviews: Vec<Value> = review_approvals
            .iter()
            .filter(|a| a["counted"] == Value::Bool(true))
            .cloned()
            .collect();
        let reviews: Vec<Value> = self
            .standings
            .iter()
            .map(|s| {
                json!({
                    "review_id": s.review.id,
                    "login": s.login,
                    "state": s.review.state,
                    "standing": s.standing,
                    "commit_reviewed": s.review.commit_id,
                    "submitted_at": s.review.submitted_at,
                })
            })
            .collect();
        json!({
            "provider": "github",
            "repository": facts.repository,
            "pull_request": facts.pull_request.as_ref().map(|pr| json!({
                "number": pr.number,
                "url": pr.url,
                "author": pr.author,
                "head_commit": pr.head_sha,
                "merge_commit": pr.merge_commit_sha,
                "merged_at": pr.merged_at,
            })),
            "counted_reviews": counted_reviews,
            "review_approvals": review_approvals,
            "reviews": reviews,
            "uncorroborated_records": self.applied.uncorroborated,
        })
    }
}

/// How an approval in a pack was established, when a review established it
/// (for the `established_by` of the pack's approval list).
pub fn established_by(forge: &Value, approval_id: &str) -> Option<Value> {
    let approval = forge
        .get("review_approvals")?
        .as_array()?
        .iter()
        .find(|a| a["approval_id"] == approval_id)?;
    Some(json!({
        "kind": "pull_request_review",
        "pull_request": approval["pull_request"],
        "review_id": approval["review_id"],
        "login": approval["login"],
        "commit_reviewed": approval["commit_reviewed"],
    }))
}

/// One commit of the tracked branch, with everything the daemon knows
/// about it (see `daemon::process`).
pub struct CommitCase<'a> {
    pub entries: &'a [Entry],
    /// The rules in force, when the commit's own change to them is not
    /// authorised; `None` judges it by its own.
    pub rules: Option<&'a Snapshot>,
    /// The principals and keys in force before the commit (who decided).
    pub identities: Option<&'a Snapshot>,
    /// What application scopes are compared with (the last authorised).
    pub base: Option<&'a Snapshot>,
    /// The first parent; `None` trusts every record (the root of authority).
    pub previous: Option<&'a Snapshot>,
    /// Who signed the commit (and, for a merge, what it merged).
    pub history: &'a ChangeHistory,
    /// What vouches for each record `previous` already had.
    pub provenance: Option<&'a BTreeMap<String, RecordProvenance>>,
    /// How the commit reached the branch, when a forge is configured.
    pub facts: Option<&'a MergeFacts>,
    pub runtime: &'a dyn RuntimeFacts,
    pub now: DateTime<Utc>,
}

/// Loads, links and judges a commit's entries through the one judge
/// ([`crate::judge`]); the merged pull request's reviews (with `facts`),
/// the signatures of the commits that wrote each record and the provenance
/// of the records are the proof of who decided.
pub fn evaluate_commit(case: CommitCase<'_>) -> (Judgement, ForgeEvidence) {
    let facts = case.facts;
    let standings = match facts {
        Some(MergeFacts {
            pull_request: Some(pr),
            reviews,
            ..
        }) => review::standings(reviews, &pr.head_sha, &pr.author),
        _ => Vec::new(),
    };
    let pull_request = facts.and_then(|facts| facts.pull_request.as_ref());
    let proof = Proof {
        previous: case.previous,
        standings: standings.clone(),
        source: pull_request
            .map(|pr| format!("pull/{}", pr.number))
            .unwrap_or_else(|| "push".to_owned()),
        head_sha: pull_request
            .map(|pr| pr.head_sha.clone())
            .unwrap_or_default(),
        pull_request: pull_request.map(|pr| pr.number),
        provenance: case.provenance,
        carried: facts.map(|f| f.carried.as_slice()).unwrap_or(&[]),
        history: case.history,
        identities: case.identities,
    };
    let judgement = judge::judge(Case {
        entries: case.entries,
        rules: case.rules,
        base: case.base,
        proof: Some(proof),
        runtime: case.runtime,
        now: case.now,
    });
    let evidence = match facts {
        Some(facts) => ForgeEvidence {
            facts: Some(facts.clone()),
            standings,
            applied: judgement.applied.clone(),
        },
        None => ForgeEvidence::none(),
    };
    (judgement, evidence)
}
