//! Reviews as CAB approvals, and approval records that must be earned.
//!
//! How review approvals enter the policy input: before evaluation, every
//! reviewer who approves the current head (see [`super::review`]) becomes one
//! synthesised `ApprovalRecord` per affected intent — `approval_id`
//! `review-<review id>`, `decided_by` the principal whose `forge_login` is the
//! reviewer's login in the *base* revision's principals (`github:<login>` when
//! none is), `decided_at` the review's time, `expiry` thirty days later. The
//! built-in Rego then applies exactly the rules it applies to `approvals/`
//! files: cab-approver role, scope covering the target, not the intent's
//! requester, unexpired, quorum from the config's risk bands. A review that
//! fails one of them shows up as the same policy note a file would.
//!
//! Approval and exception records that the change itself adds or edits are
//! claims, not facts: they count only when the principal they name
//! (`decided_by`, `approved_by`) approved the change's head commit. Otherwise
//! the record is dropped (or its merged version kept) before evaluation, so a
//! pull request cannot approve itself by writing a file. Pure.

use super::review::{ReviewStanding, Standing};
use crate::model::{ApprovalDecision, ApprovalRecord, DeploymentIntent, Located, Snapshot, yaml};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// How long a review approval stays valid after it was given.
pub const REVIEW_APPROVAL_VALIDITY: Duration = Duration::days(30);

/// A review turned into an approval record for one intent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReviewApproval {
    pub approval_id: String,
    pub intent_id: String,
    pub review_id: u64,
    pub login: String,
    /// The principal the login maps to in the base revision, if any.
    pub principal: Option<String>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub commit_reviewed: String,
}

/// Which kind of record a claim was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    Approval,
    Exception,
}

/// A record added or edited by the change whose named decider did not
/// approve the change's head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UncorroboratedRecord {
    pub kind: RecordKind,
    pub id: String,
    pub file: String,
    /// The principal the record says decided.
    pub claimed_by: String,
    /// `true` when the previously merged version of the record was kept.
    pub previous_kept: bool,
}

/// What applying the reviews did to a snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AppliedReviews {
    pub approvals: Vec<ReviewApproval>,
    pub uncorroborated: Vec<UncorroboratedRecord>,
}

impl AppliedReviews {
    /// The review behind a counted approval id for an intent, if it was one.
    pub fn review_for(&self, intent_id: &str, approval_id: &str) -> Option<&ReviewApproval> {
        self.approvals
            .iter()
            .find(|a| a.intent_id == intent_id && a.approval_id == approval_id)
    }
}

/// The facts reviews are applied with.
pub struct ReviewContext<'a> {
    /// Every reviewer's standing on the head.
    pub standings: &'a [ReviewStanding],
    /// Whose principals map logins (the base revision: the rules in force).
    pub principals_from: &'a Snapshot,
    /// What was merged before the change; `None` trusts every record (a
    /// repository's first commit).
    pub previous: Option<&'a Snapshot>,
    /// Names the synthesised records' source, e.g. `pull/7`.
    pub source: String,
    pub head_sha: String,
}

impl ReviewContext<'_> {
    fn approving(&self) -> impl Iterator<Item = &ReviewStanding> {
        self.standings
            .iter()
            .filter(|s| s.standing == Standing::Approving)
    }

    /// Principal ids of everyone approving the head (logins that map).
    fn approving_principals(&self) -> BTreeSet<String> {
        self.approving()
            .filter_map(|s| self.principals_from.principal_by_login(&s.login))
            .map(|p| p.id.clone())
            .collect()
    }
}

/// Applies reviews to `snapshot`: drops uncorroborated records, then adds one
/// approval per approving reviewer and intent in `intents`.
pub fn apply(
    snapshot: &mut Snapshot,
    context: &ReviewContext<'_>,
    intents: &BTreeSet<String>,
) -> AppliedReviews {
    let mut applied = AppliedReviews::default();
    if let Some(previous) = context.previous {
        let approvers = context.approving_principals();
        applied.uncorroborated.extend(corroborate(
            &mut snapshot.approvals,
            &previous.approvals,
            &approvers,
            RecordKind::Approval,
            |record| (record.approval_id.clone(), record.decided_by.clone()),
        ));
        applied.uncorroborated.extend(corroborate(
            &mut snapshot.exceptions,
            &previous.exceptions,
            &approvers,
            RecordKind::Exception,
            |record| (record.exception_id.clone(), record.approved_by.clone()),
        ));
    }
    for standing in context.approving() {
        let principal = context
            .principals_from
            .principal_by_login(&standing.login)
            .map(|p| p.id.clone());
        let decided_by = principal
            .clone()
            .unwrap_or_else(|| format!("github:{}", standing.login));
        for intent_id in intents {
            let Some(intent) = snapshot.intents.get(intent_id) else {
                continue;
            };
            // A decider who also wrote a record for this intent is one
            // approver, not two: the record stands, the review backs it.
            let already_recorded = snapshot
                .approvals
                .values()
                .any(|a| a.deployment_intent_id == *intent_id && a.decided_by == decided_by);
            if already_recorded {
                continue;
            }
            let review = &standing.review;
            let record = synthesise(intent, review.id, &decided_by, review.submitted_at, context);
            let approval_id = record.approval_id.clone();
            let file = format!("{}#review-{}", context.source, review.id);
            snapshot.approvals.insert(
                format!("{approval_id}/{intent_id}"),
                Located::new(record, file, Arc::new(empty_document())),
            );
            applied.approvals.push(ReviewApproval {
                approval_id,
                intent_id: intent_id.clone(),
                review_id: review.id,
                login: standing.login.clone(),
                principal: principal.clone(),
                submitted_at: review.submitted_at,
                commit_reviewed: context.head_sha.clone(),
            });
        }
    }
    applied
}

fn synthesise(
    intent: &DeploymentIntent,
    review_id: u64,
    decided_by: &str,
    submitted_at: Option<DateTime<Utc>>,
    context: &ReviewContext<'_>,
) -> ApprovalRecord {
    let decided_at = submitted_at.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    ApprovalRecord {
        approval_id: format!("review-{review_id}"),
        deployment_intent_id: intent.intent_id.clone(),
        decision: ApprovalDecision::Approved,
        decided_by: decided_by.to_owned(),
        decided_at,
        submitted_by: None,
        submitted_at: None,
        assigned_to: Vec::new(),
        conditions: Vec::new(),
        expiry: decided_at + REVIEW_APPROVAL_VALIDITY,
        justification: format!(
            "approving review {review_id} on {} at commit {}",
            context.source, context.head_sha
        ),
        emergency_override: false,
    }
}

fn empty_document() -> yaml::Document {
    yaml::parse("{}").expect("an empty mapping is valid YAML")
}

/// Keeps records that were merged before or whose decider approved; reverts,
/// drops or restores the rest and says so. Removing a record is a claim too
/// (removing a `denied` decision would lift a DENY), so a record the change
/// deletes stays unless its decider approved.
fn corroborate<T: Clone + PartialEq>(
    records: &mut BTreeMap<String, Located<T>>,
    previous: &BTreeMap<String, Located<T>>,
    approvers: &BTreeSet<String>,
    kind: RecordKind,
    identity: impl Fn(&T) -> (String, String),
) -> Vec<UncorroboratedRecord> {
    let mut refused = Vec::new();
    let keys: Vec<String> = records.keys().cloned().collect();
    for key in keys {
        let record = &records[&key];
        let unchanged = previous.get(&key).map(|p| &p.value) == Some(&record.value);
        let (id, decider) = identity(&record.value);
        if unchanged || approvers.contains(&decider) {
            continue;
        }
        let file = record.file.clone();
        let previous_kept = match previous.get(&key) {
            Some(merged) => {
                records.insert(key, merged.clone());
                true
            }
            None => {
                records.remove(&key);
                false
            }
        };
        refused.push(UncorroboratedRecord {
            kind,
            id,
            file,
            claimed_by: decider,
            previous_kept,
        });
    }
    for (key, merged) in previous {
        if records.contains_key(key) {
            continue;
        }
        let (id, decider) = identity(&merged.value);
        if approvers.contains(&decider) {
            continue;
        }
        records.insert(key.clone(), merged.clone());
        refused.push(UncorroboratedRecord {
            kind,
            id,
            file: merged.file.clone(),
            claimed_by: decider,
            previous_kept: true,
        });
    }
    refused
}
