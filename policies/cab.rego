# Change Advisory Board approvals.
#
#   cab.approval_required  require_approval  risk above the CAB threshold or a
#                                            privileged application, a target ring
#                                            at or after config.cab.from_ring, and
#                                            fewer counted approvals than needed
#   cab.denied             deny              a qualified, live approval record says "denied"
#   cab.approval_expired, cab.self_approval, cab.not_an_approver,
#   cab.approver_scope, cab.approval_pending, cab.approval_stale
#                          note              why an approval record does not count
#
# Also defines `approvals_required` and `counted_approvals`, read by Rust.
package ringmaster.builtin

# --- which approvals count ------------------------------------------------------

# A record's approver may decide on this intent: a known principal holding
# cab-approver, whose scope covers the target, who is not the requester, and
# whose record has not expired. The decision itself is not looked at here.
qualified_decision(entry) if {
	not_expired(entry.record.expiry)
	entry.approver != null
	"cab-approver" in entry.approver.roles
	scope_covers(entry.approver.scope, target)
	entry.record.decided_by != input.intent.requested_by
}

# The record approved this exact content: its intent_sha256 is the intent's
# digest now (docs/governance.md). A denial binds whatever its digest says.
bound_to_intent(entry) if entry.record.intent_sha256 == input.intent_sha256

# Approval ids that count towards the CAB quorum.
counted_approvals contains entry.record.approval_id if {
	some entry in input.approvals
	entry.record.decision == "approved"
	qualified_decision(entry)
	bound_to_intent(entry)
}

# Distinct principals behind the counted approvals: the quorum counts people,
# not records (two records by one approver are one approval).
counted_approvers contains entry.record.decided_by if {
	some entry in input.approvals
	entry.record.decision == "approved"
	qualified_decision(entry)
	bound_to_intent(entry)
}

# --- how many are needed ----------------------------------------------------------

# The risk score is above the tenant's CAB threshold.
risk_above_threshold if input.risk.risk_score > input.config.cab.risk_threshold

# Why CAB is involved at all: high risk, or privileged tooling at any risk.
cab_needed if {
	reaches_cab_ring
	risk_above_threshold
}

cab_needed if {
	reaches_cab_ring
	input.application.privileged == true
}

# The highest band the score is above wins; never fewer than one approver.
cab_quorum := max({1} | {band.approvals |
	some band in input.config.cab.approvals_by_risk
	input.risk.risk_score > band.above
})

# Approvals this intent needs: the CAB quorum when CAB is needed, one when
# only the application's allowed scope changed (scope.application_scope_changed),
# otherwise none.
default approvals_required := 0

approvals_required := cab_quorum if cab_needed

approvals_required := 1 if {
	not cab_needed
	application_scope_changed
}

# --- cab.approval_required ------------------------------------------------------------

cab_reasons contains sprintf(
	"risk score %v is above the CAB threshold %v",
	[input.risk.risk_score, input.config.cab.risk_threshold],
) if risk_above_threshold

cab_reasons contains sprintf("application %s is privileged", [input.application.id]) if {
	input.application.privileged == true
}

require_approval contains {
	"rule": "cab.approval_required",
	"message": sprintf(
		"%s and the intent reaches %s, so it needs %d CAB approval(s) and %d count; add approvals/ records by cab-approvers whose scope covers %s",
		[
			concat(" and ", sort(cab_reasons)), input.config.cab.from_ring,
			cab_quorum, count(counted_approvers), target_text,
		],
	),
} if {
	cab_needed
	count(counted_approvers) < cab_quorum
}

# --- cab.denied ----------------------------------------------------------------------------

deny contains {
	"rule": "cab.denied",
	"message": sprintf(
		"approval %s by %s denies intent %s (%q); address the CAB's objection in a new intent or obtain a new decision",
		[entry.record.approval_id, entry.record.decided_by, input.intent.intent_id, entry.record.justification],
	),
} if {
	some entry in input.approvals
	entry.record.decision == "denied"
	qualified_decision(entry)
}

# --- notes: why a record does not count ---------------------------------------------------

notes contains {
	"rule": "cab.approval_pending",
	"message": sprintf(
		"approval %s is still pending and does not count; %s has not decided yet",
		[entry.record.approval_id, entry.record.decided_by],
	),
} if {
	some entry in input.approvals
	entry.record.decision == "pending"
}

notes contains {
	"rule": "cab.approval_expired",
	"message": sprintf(
		"approval %s by %s expired at %s and is ignored; record a new decision with a later expiry",
		[entry.record.approval_id, entry.record.decided_by, entry.record.expiry],
	),
} if {
	some entry in input.approvals
	entry.record.decision != "pending"
	not not_expired(entry.record.expiry)
}

notes contains {
	"rule": "cab.self_approval",
	"message": sprintf(
		"approval %s is by %s, who requested intent %s, and is ignored; another cab-approver must decide",
		[entry.record.approval_id, entry.record.decided_by, input.intent.intent_id],
	),
} if {
	some entry in input.approvals
	entry.record.decision != "pending"
	entry.record.decided_by == input.intent.requested_by
}

notes contains {
	"rule": "cab.not_an_approver",
	"message": sprintf(
		"approval %s is by %s, who is not a known principal, and is ignored; add the principal with the cab-approver role",
		[entry.record.approval_id, entry.record.decided_by],
	),
} if {
	some entry in input.approvals
	entry.record.decision != "pending"
	entry.approver == null
}

notes contains {
	"rule": "cab.not_an_approver",
	"message": sprintf(
		"approval %s is by %s, who does not hold the cab-approver role, and is ignored; a cab-approver must decide",
		[entry.record.approval_id, entry.record.decided_by],
	),
} if {
	some entry in input.approvals
	entry.record.decision != "pending"
	entry.approver != null
	not "cab-approver" in entry.approver.roles
}

notes contains {
	"rule": "cab.approver_scope",
	"message": sprintf(
		"approval %s is by %s, whose scope (%s) does not cover the target %s, and is ignored; an approver scoped to %s must decide",
		[
			entry.record.approval_id, entry.record.decided_by,
			scope_text(entry.approver.scope), target_text, target_text,
		],
	),
} if {
	some entry in input.approvals
	entry.record.decision != "pending"
	entry.approver != null
	"cab-approver" in entry.approver.roles
	not scope_covers(entry.approver.scope, target)
}

notes contains {
	"rule": "cab.approval_stale",
	"message": sprintf(
		"approval %s by %s approved other content (intent_sha256 %s) than intent %s now is (%s) and does not count; the approver must look at the intent again and record intent_sha256: %s",
		[
			entry.record.approval_id, entry.record.decided_by,
			object.get(entry.record, "intent_sha256", "none"),
			input.intent.intent_id, input.intent_sha256, input.intent_sha256,
		],
	),
} if {
	some entry in input.approvals
	entry.record.decision == "approved"
	not bound_to_intent(entry)
}
