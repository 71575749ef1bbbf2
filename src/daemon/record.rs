//! What a decision's evidence pack says, and when an intent needs a new one.
//!
//! Pure: built from the snapshot of the processed commit and the intent's
//! evaluation. The pack body holds everything an auditor needs to re-check
//! the decision without ringmaster: the resolved intent, the approvals and
//! how each was established, the risk assessment, the policy decision with
//! its reasons, the scope diff and blast radius, the artifact facts, the
//! exceptions applied and the hash of the policy bundle that judged it.

use crate::evaluation::IntentEvaluation;
use crate::evidence::{canonical_json, sha256_hex};
use crate::model::{self, DeploymentIntent, Snapshot};
use crate::plan;
use serde_json::{Value, json};

/// SHA-256 over what makes a decision: the intent as authored, the decision,
/// the risk score and the approvals that counted. A change in any of them
/// (a new approval, an edited intent, an expired exception) means a new pack.
pub fn fingerprint(intent: &DeploymentIntent, evaluation: &IntentEvaluation) -> String {
    let value = json!({
        "intent": intent,
        "decision": evaluation.decision(),
        "risk_score": evaluation.risk.as_ref().map(|r| r.risk_score),
        "counted_approvals": evaluation.outcome.counted_approvals,
        "rules": evaluation.outcome.rule_ids(),
    });
    sha256_hex(&canonical_json(&value))
}

/// SHA-256 of the policies that judged: built-in bundle and tenant files.
pub fn policy_bundle_sha256(snapshot: &Snapshot) -> String {
    let builtin: Vec<Value> = crate::policy::BUILTIN_POLICIES
        .iter()
        .map(|(path, source)| json!({"path": path, "sha256": sha256_hex(source.as_bytes())}))
        .collect();
    let tenant: Vec<Value> = snapshot
        .policies
        .iter()
        .map(|p| json!({"path": p.path, "sha256": sha256_hex(p.source.as_bytes())}))
        .collect();
    sha256_hex(&canonical_json(
        &json!({"builtin": builtin, "tenant": tenant}),
    ))
}

/// The body of a `decision` evidence pack. `forge` is the forge slot
/// (`forge::ForgeEvidence::for_intent`; `null` without a forge);
/// `policy_bundle_sha256` is [`policy_bundle_sha256`] of `snapshot`
/// (computed once per commit by the caller, not once per decision).
pub fn decision_body(
    snapshot: &Snapshot,
    base: Option<&Snapshot>,
    intent: &model::Located<DeploymentIntent>,
    evaluation: &IntentEvaluation,
    source_commit: &str,
    forge: Value,
    policy_bundle_sha256: &str,
) -> Value {
    // The record carries no gate-check interval (see `build_without_gate_check`).
    let plan = plan::build_without_gate_check(snapshot, intent, evaluation.clone(), base);
    let artifact = snapshot.artifact_of(intent);
    let counted = &evaluation.outcome.counted_approvals;
    let approvals: Vec<Value> = snapshot
        .approvals
        .values()
        .filter(|a| a.deployment_intent_id == intent.intent_id)
        .map(|approval| {
            let approver = snapshot.principals.get(&approval.decided_by);
            json!({
                "approval_id": approval.approval_id,
                "decision": approval.decision,
                "decided_by": approval.decided_by,
                "decided_by_email": approver.map(|p| p.email.clone()),
                "decided_by_roles": approver.map(|p| p.roles.clone()),
                "decided_at": approval.decided_at,
                "expiry": approval.expiry,
                "intent_sha256": approval.intent_sha256,
                "conditions": approval.conditions,
                "emergency_override": approval.emergency_override,
                "counted": counted.contains(&approval.approval_id),
                "established_by": crate::forge::merge::established_by(&forge, &approval.approval_id)
                    .unwrap_or_else(|| json!({
                        "kind": "approval_record",
                        "file": approval.file,
                        "commit": source_commit,
                    })),
            })
        })
        .collect();
    let exceptions: Vec<Value> = artifact
        .map(|artifact| {
            snapshot
                .exceptions
                .values()
                .filter(|e| e.artifact_id == artifact.id)
                .map(|e| {
                    json!({
                        "exception_id": e.exception_id,
                        "exception_type": e.exception_type,
                        "severity": e.severity,
                        "cves": e.cves,
                        "artifact_sha256": e.artifact_sha256,
                        "approved_by": e.approved_by,
                        "expiry": e.expiry,
                        "compensating_controls": e.compensating_controls,
                        "file": e.file,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let artifact_facts = artifact.map(|a| {
        json!({
            "id": a.id,
            "plane": a.plane,
            "file": a.file,
            "sha256": a.sha256,
            "signature": a.signature,
            "provenance": a.provenance,
            "sbom": a.sbom,
        })
    });
    json!({
        "decision": evaluation.decision(),
        "intent": intent.value,
        "intent_file": intent.file,
        // What approvals of this intent must be bound to (model::digest).
        "intent_sha256": crate::model::digest::intent_sha256(snapshot, intent),
        "risk": evaluation.risk,
        "policy": evaluation.outcome,
        "policy_bundle_sha256": policy_bundle_sha256,
        "approvals": approvals,
        "exceptions": exceptions,
        "artifact": artifact_facts,
        "scope_diff": {
            "application": plan.application_scope,
            "target": plan.target,
        },
        "blast_radius": plan.blast_radius,
        "total_devices": plan.total_devices,
        "timeline": plan.timeline,
        // PR number and URL, head and merge commits, each counted review.
        "forge": forge,
    })
}

/// The approval and exception records about this intent (its approvals,
/// the exceptions of its artifact) that claim a decision but do not count,
/// each with the reason: nobody proved they were its decider.
pub fn claims_not_counted(
    snapshot: &Snapshot,
    intent: &DeploymentIntent,
    applied: &crate::forge::approvals::AppliedReviews,
) -> Value {
    use crate::forge::approvals::RecordKind;
    let artifact = snapshot.artifact_of(intent).map(|a| a.id.as_str());
    let claims: Vec<Value> = applied
        .uncorroborated
        .iter()
        .filter(|claim| match claim.kind {
            RecordKind::Approval => claim.subject == intent.intent_id,
            RecordKind::Exception => Some(claim.subject.as_str()) == artifact,
        })
        .map(|claim| json!(claim))
        .collect();
    Value::Array(claims)
}
