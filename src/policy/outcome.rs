//! The policy decision: what the Rego sets said, aggregated into one verdict.
//!
//! Rego produces sets of findings per package; this module turns them into a
//! [`PolicyOutcome`] with the contract's aggregation: any `deny` → DENY, else
//! any `require_exception` → REQUIRE_EXCEPTION, else any `require_approval` →
//! REQUIRE_APPROVAL, else ALLOW. `notes` explain and never change the decision.

use serde::Serialize;
use std::fmt;

/// The verdict on one deployment intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Decision {
    Allow,
    Deny,
    RequireApproval,
    RequireException,
}

impl Decision {
    /// The wire form used in status checks, evidence packs and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "ALLOW",
            Decision::Deny => "DENY",
            Decision::RequireApproval => "REQUIRE_APPROVAL",
            Decision::RequireException => "REQUIRE_EXCEPTION",
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Which output set a finding came from. The order is the order of severity,
/// which is also the order reasons are listed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonKind {
    Deny,
    RequireException,
    RequireApproval,
    Note,
}

impl ReasonKind {
    /// Every kind, in severity order.
    pub const ALL: [ReasonKind; 4] = [
        ReasonKind::Deny,
        ReasonKind::RequireException,
        ReasonKind::RequireApproval,
        ReasonKind::Note,
    ];

    /// The name of the Rego partial set that holds findings of this kind.
    pub fn set_name(self) -> &'static str {
        match self {
            ReasonKind::Deny => "deny",
            ReasonKind::RequireException => "require_exception",
            ReasonKind::RequireApproval => "require_approval",
            ReasonKind::Note => "notes",
        }
    }
}

/// One finding of one rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Reason {
    /// Rule id, e.g. `scope.cross_boundary`.
    pub rule: String,
    pub kind: ReasonKind,
    /// One human sentence naming the thing and the fix.
    pub message: String,
    /// `builtin`, or the tenant package that produced it (`ringmaster.tenant.x`).
    pub source: String,
    /// For a finding about a runtime fact that clears (a change in flight):
    /// the intent it waits on, as the rule's `waits_on` field says it. The
    /// daemon reads this, never the message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waits_on: Option<String>,
}

impl Reason {
    /// The deterministic order of reasons: severity, rule id, source, message.
    fn sort_key(&self) -> (ReasonKind, &str, &str, &str) {
        (
            self.kind,
            self.rule.as_str(),
            self.source.as_str(),
            self.message.as_str(),
        )
    }
}

/// The result of evaluating the policy bundle on one input document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyOutcome {
    pub decision: Decision,
    /// Findings that decide: deny, require_exception and require_approval.
    pub reasons: Vec<Reason>,
    /// Findings that only explain (e.g. why an approval was ignored).
    pub notes: Vec<Reason>,
    /// CAB approvals this intent needs; 0 when it needs none.
    pub approvals_required: u32,
    /// Approval ids that count towards `approvals_required`, sorted.
    pub counted_approvals: Vec<String>,
}

impl PolicyOutcome {
    /// Aggregates findings into a decision, sorting and de-duplicating them.
    pub fn from_findings(
        findings: Vec<Reason>,
        approvals_required: u32,
        mut counted_approvals: Vec<String>,
    ) -> PolicyOutcome {
        let (mut notes, mut reasons): (Vec<Reason>, Vec<Reason>) = findings
            .into_iter()
            .partition(|reason| reason.kind == ReasonKind::Note);
        for list in [&mut reasons, &mut notes] {
            list.sort_by(|left, right| left.sort_key().cmp(&right.sort_key()));
            list.dedup();
        }
        counted_approvals.sort();
        counted_approvals.dedup();
        PolicyOutcome {
            decision: decide(&reasons),
            reasons,
            notes,
            approvals_required,
            counted_approvals,
        }
    }

    /// Rule ids of the deciding reasons, in order, without repeats.
    pub fn rule_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.reasons.iter().map(|r| r.rule.as_str()).collect();
        ids.dedup();
        ids
    }
}

/// The contract's aggregation over the deciding reasons.
fn decide(reasons: &[Reason]) -> Decision {
    let has = |kind: ReasonKind| reasons.iter().any(|reason| reason.kind == kind);
    if has(ReasonKind::Deny) {
        Decision::Deny
    } else if has(ReasonKind::RequireException) {
        Decision::RequireException
    } else if has(ReasonKind::RequireApproval) {
        Decision::RequireApproval
    } else {
        Decision::Allow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(kind: ReasonKind, rule: &str) -> Reason {
        Reason {
            rule: rule.to_string(),
            kind,
            message: format!("{rule} fired"),
            source: "builtin".to_string(),
            waits_on: None,
        }
    }

    fn check(kinds: &[ReasonKind], expected: Decision) {
        let findings = kinds.iter().map(|kind| reason(*kind, "rule")).collect();
        let outcome = PolicyOutcome::from_findings(findings, 0, Vec::new());
        assert_eq!(outcome.decision, expected, "kinds {kinds:?}");
    }

    #[test]
    fn aggregation_follows_severity_order() {
        use ReasonKind::*;
        check(&[], Decision::Allow);
        check(&[Note], Decision::Allow);
        check(&[RequireApproval, Note], Decision::RequireApproval);
        check(
            &[RequireApproval, RequireException],
            Decision::RequireException,
        );
        check(&[RequireApproval, RequireException, Deny], Decision::Deny);
        check(&[Deny, Note], Decision::Deny);
    }

    #[test]
    fn reasons_are_sorted_by_kind_then_rule_and_notes_kept_apart() {
        let findings = vec![
            reason(ReasonKind::RequireApproval, "b.rule"),
            reason(ReasonKind::Note, "z.note"),
            reason(ReasonKind::Deny, "c.rule"),
            reason(ReasonKind::Deny, "a.rule"),
            reason(ReasonKind::Deny, "a.rule"),
        ];
        let outcome = PolicyOutcome::from_findings(findings, 2, vec!["b".into(), "a".into()]);
        assert_eq!(outcome.rule_ids(), vec!["a.rule", "c.rule", "b.rule"]);
        assert_eq!(outcome.notes.len(), 1);
        assert_eq!(outcome.counted_approvals, vec!["a", "b"]);
    }

    #[test]
    fn decision_serialises_in_screaming_case() {
        let json = serde_json::to_string(&Decision::RequireException).unwrap();
        assert_eq!(json, "\"REQUIRE_EXCEPTION\"");
        let json = serde_json::to_string(&ReasonKind::RequireApproval).unwrap();
        assert_eq!(json, "\"require_approval\"");
    }
}
