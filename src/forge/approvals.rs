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
//! (`decided_by`, `approved_by`) approved the change's head commit, or when
//! the commit that wrote the record carries a valid SSH signature by one of
//! that principal's keys (`authority`, with the keys in force before the
//! change). Otherwise the record is dropped (or its merged version kept)
//! before evaluation, with the reason, so a pull request — or a direct push
//! — cannot approve itself by writing a file. Pure.

use super::carried::CarriedApproval;
use super::provenance::RecordProvenance;
use super::review::{ReviewStanding, Standing};
use crate::authority::{CommitSignature, KeyRing};
use crate::model::digest::intent_sha256;
use crate::model::{ApprovalDecision, ApprovalRecord, Located, Objects, Snapshot, yaml};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// How long a review approval stays valid after it was given: long enough
/// for a rollout through every ring, short enough that a change approved
/// and parked for a quarter is looked at again.
pub const REVIEW_APPROVAL_VALIDITY: Duration = Duration::days(90);

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
    /// The pull request the review was given on.
    pub pull_request: Option<u64>,
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
    /// What the record is about: the intent an approval decides on, the
    /// artifact an exception covers.
    pub subject: String,
    pub file: String,
    /// The principal the record says decided.
    pub claimed_by: String,
    /// `true` when the previously merged version of the record was kept.
    pub previous_kept: bool,
    /// Why the claim does not count (no review, unsigned, signed by
    /// another principal's key, a signature that does not verify).
    pub reason: String,
}

impl UncorroboratedRecord {
    /// The claim as a warning on the record's file: shown by `validate`,
    /// `plan`, the PR check and stored with the daemon's commit.
    pub fn diagnostic(&self) -> crate::diagnostic::Diagnostic {
        let kind = match self.kind {
            RecordKind::Approval => "approval",
            RecordKind::Exception => "exception",
        };
        crate::diagnostic::Diagnostic::warning(
            &self.file,
            format!(
                "{kind} {} is a claim by {} that does not count: {}; {}",
                self.id,
                self.claimed_by,
                self.reason,
                if self.previous_kept {
                    "the version merged before is used"
                } else {
                    "it is ignored"
                }
            ),
        )
    }
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
    /// The pull request the reviews are on.
    pub pull_request: Option<u64>,
    /// What vouches for the records `previous` already had, by path; `None`
    /// trusts them all (the PR check: the base branch is what was merged).
    pub provenance: Option<&'a BTreeMap<String, RecordProvenance>>,
    /// For each record the change adds, edits or deletes (by path): the
    /// signatures of the commits that wrote it. A record missing here has
    /// only the reviews to vouch for it.
    pub signed: &'a BTreeMap<String, Vec<CommitSignature>>,
    /// The signing keys of `principals_from`.
    pub keys: KeyRing,
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

    /// Whether the commit that put the merged record at `file` vouches for
    /// its decider; `Err` says why not.
    fn vouched(&self, file: &str, decider: &str) -> Result<(), String> {
        let Some(provenance) = self.provenance.and_then(|all| all.get(file)) else {
            return Ok(());
        };
        let login = self
            .principals_from
            .principals
            .get(decider)
            .and_then(|p| p.forge_login.as_deref());
        provenance.vouches_for(login, decider, &self.keys)
    }

    /// Whether the change's proof shows that `decider` made the change to
    /// the record at `file`: an approving review on the head, or a valid
    /// signature by their key on the commit that wrote it.
    fn proves(
        &self,
        file: &str,
        decider: &str,
        approvers: &BTreeSet<String>,
    ) -> Result<(), String> {
        if approvers.contains(decider) {
            return Ok(());
        }
        let no_review = match self.pull_request {
            Some(number) => {
                format!("{decider} has not approved the head of pull request #{number}")
            }
            None => format!("it did not arrive through a pull request {decider} approved"),
        };
        match self.signed.get(file) {
            Some(signatures) => self
                .keys
                .signed_by(decider, signatures)
                .map(|_| ())
                .map_err(|why| format!("{no_review}, and {why}")),
            None => Err(format!("{no_review}, and no signed commit vouches for it")),
        }
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
        let check = Check {
            proves: &|file: &str, decider: &str| context.proves(file, decider, &approvers),
            vouched: &|file: &str, decider: &str| context.vouched(file, decider),
        };
        applied.uncorroborated.extend(corroborate(
            &mut snapshot.approvals,
            &previous.approvals,
            &check,
            RecordKind::Approval,
            |record| {
                (
                    record.approval_id.clone(),
                    record.decided_by.clone(),
                    record.deployment_intent_id.clone(),
                )
            },
        ));
        applied.uncorroborated.extend(corroborate(
            &mut snapshot.exceptions,
            &previous.exceptions,
            &check,
            RecordKind::Exception,
            |record| {
                (
                    record.exception_id.clone(),
                    record.approved_by.clone(),
                    record.artifact_id.clone(),
                )
            },
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
            if !snapshot.intents.contains_key(intent_id) {
                continue;
            }
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
            let approval = ReviewApproval {
                approval_id: format!("review-{}", review.id),
                intent_id: intent_id.clone(),
                review_id: review.id,
                login: standing.login.clone(),
                principal: principal.clone(),
                submitted_at: review.submitted_at,
                commit_reviewed: context.head_sha.clone(),
                pull_request: context.pull_request,
            };
            let digest = intent_sha256(snapshot, &snapshot.intents[intent_id]);
            insert(snapshot, &approval, &decided_by, &context.source, digest);
            applied.approvals.push(approval);
        }
    }
    applied
}

/// Re-applies approvals that counted when an earlier commit was merged, to
/// intents still byte-for-byte the ones approved (see [`super::carried`]).
pub fn apply_carried(
    snapshot: &mut Snapshot,
    carried: &[CarriedApproval],
    applied: &mut AppliedReviews,
) {
    for carried in carried {
        let approval = &carried.approval;
        let Some(intent) = snapshot.intents.get(&approval.intent_id) else {
            continue;
        };
        let digest = intent_sha256(snapshot, intent);
        if digest != carried.intent_sha256 {
            continue;
        }
        let decided_by = approval
            .principal
            .clone()
            .unwrap_or_else(|| format!("github:{}", approval.login));
        let duplicate = applied
            .approvals
            .iter()
            .any(|a| a.intent_id == approval.intent_id && a.review_id == approval.review_id)
            || snapshot.approvals.values().any(|a| {
                a.deployment_intent_id == approval.intent_id && a.decided_by == decided_by
            });
        if duplicate {
            continue;
        }
        let source = match approval.pull_request {
            Some(number) => format!("pull/{number}"),
            None => "review".to_owned(),
        };
        insert(snapshot, approval, &decided_by, &source, digest);
        applied.approvals.push(approval.clone());
    }
}

/// Adds the approval record a review stands for, bound to the intent as it
/// is on the reviewed head (`intent_sha256`).
fn insert(
    snapshot: &mut Snapshot,
    approval: &ReviewApproval,
    decided_by: &str,
    source: &str,
    intent_sha256: String,
) {
    let decided_at = approval.submitted_at.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    let record = ApprovalRecord {
        approval_id: approval.approval_id.clone(),
        deployment_intent_id: approval.intent_id.clone(),
        intent_sha256: Some(intent_sha256),
        application_scope: None,
        decision: ApprovalDecision::Approved,
        decided_by: decided_by.to_owned(),
        decided_at,
        submitted_by: None,
        submitted_at: None,
        assigned_to: Vec::new(),
        conditions: Vec::new(),
        expiry: decided_at + REVIEW_APPROVAL_VALIDITY,
        justification: format!(
            "approving review {} on {source} at commit {}",
            approval.review_id, approval.commit_reviewed
        ),
        emergency_override: false,
    };
    snapshot.approvals.insert(
        format!("{}/{}", approval.approval_id, approval.intent_id),
        Located::new(
            record,
            format!("{source}#review-{}", approval.review_id),
            Arc::new(empty_document()),
        ),
    );
}

fn empty_document() -> yaml::Document {
    yaml::parse("{}").expect("an empty mapping is valid YAML")
}

/// How a record's claim is checked: `proves` for what the change wrote
/// (reviews on its head, signatures of its commits), `vouched` for what was
/// merged before (the provenance of the commit that wrote it).
struct Check<'a> {
    proves: &'a dyn Fn(&str, &str) -> Result<(), String>,
    vouched: &'a dyn Fn(&str, &str) -> Result<(), String>,
}

/// Keeps a record when its decider proved this change (review or
/// signature), or when it is unchanged from what was merged and the commit
/// that put it there vouches for it. Otherwise reverts to the merged
/// version (if that one is vouched for) or drops it, and says why. Removing
/// a record is a claim too (removing a `denied` decision would lift a DENY),
/// so a record the change deletes stays unless its decider proved it.
fn corroborate<T: Clone + PartialEq>(
    records: &mut Objects<String, T>,
    previous: &Objects<String, T>,
    check: &Check<'_>,
    kind: RecordKind,
    identity: impl Fn(&T) -> (String, String, String),
) -> Vec<UncorroboratedRecord> {
    let merged_and_vouched = |merged: &Located<T>| {
        let (_, decider, _) = identity(&merged.value);
        (check.vouched)(&merged.file, &decider).is_ok()
    };
    let mut refused = Vec::new();
    let keys: Vec<String> = records.keys().cloned().collect();
    for key in keys {
        let record = &records[&key];
        let merged = previous.get(&key);
        let unchanged = merged.map(|p| &p.value) == Some(&record.value);
        let (id, decider, subject) = identity(&record.value);
        let verdict = if unchanged {
            // What vouched for it when it was merged, or this change's
            // approving review by its decider.
            (check.vouched)(&record.file, &decider)
                .or_else(|why| (check.proves)(&record.file, &decider).map_err(|_| why))
        } else {
            (check.proves)(&record.file, &decider)
        };
        let Err(reason) = verdict else {
            continue;
        };
        let file = record.file.clone();
        let previous_kept = match merged.filter(|m| !unchanged && merged_and_vouched(m)) {
            Some(_) => {
                // The merged object itself, shared.
                if let Some(merged) = previous.get_shared(&key) {
                    records.insert(key, merged.clone());
                }
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
            subject,
            file,
            claimed_by: decider,
            previous_kept,
            reason,
        });
    }
    for (key, shared) in previous.iter_shared() {
        let merged: &Located<T> = shared;
        if records.contains_key(key) || !merged_and_vouched(merged) {
            continue;
        }
        let (id, decider, subject) = identity(&merged.value);
        let Err(reason) = (check.proves)(&merged.file, &decider) else {
            continue;
        };
        records.insert(key.clone(), shared.clone());
        refused.push(UncorroboratedRecord {
            kind,
            id,
            subject,
            file: merged.file.clone(),
            claimed_by: decider,
            previous_kept: true,
            reason: format!("removing it is a claim too: {reason}"),
        });
    }
    refused
}
