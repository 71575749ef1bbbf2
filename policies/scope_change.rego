# Scope immutability: widening or narrowing an application's allowed scope is
# a governed change and needs its own CAB approval: a record with
# `application_scope` naming the application and the digest of the new
# scope (`application_scope_sha256`). A release approval of an intent never
# counts for it (docs/governance.md); the daemon puts a new scope in force
# on the same condition (`daemon::rules::authorised_scopes`).
#
#   scope.application_scope_changed  require_approval  application.allowed_scope
#                                                      differs from the base
#                                                      revision's (or the scope in
#                                                      force) and no scope approval
#                                                      counts
#   scope.release_approval_not_for_scope
#                                    note              a release approval counted
#                                                      for the intent, but it does
#                                                      not approve the scope change
package ringmaster.builtin

previous_application := object.get(input, "previous_application", null)

scope_approvals := object.get(input, "scope_approvals", [])

application_scope_sha256 := object.get(input, "application_scope_sha256", "")

application_scope_changed if {
	previous_application != null
	normalized_scope(previous_application.allowed_scope) != normalized_scope(input.application.allowed_scope)
}

# Scope approvals that count: approved, unexpired, by a cab-approver, naming
# this application and the digest of exactly its new allowed_scope.
counted_scope_approvals contains entry.record.approval_id if {
	some entry in scope_approvals
	entry.record.decision == "approved"
	entry.record.application_scope.application_id == input.application.id
	entry.record.application_scope.scope_sha256 == application_scope_sha256
	not_expired(entry.record.expiry)
	entry.approver != null
	"cab-approver" in entry.approver.roles
}

require_approval contains {
	"rule": "scope.application_scope_changed",
	"message": sprintf(
		"application %s's allowed_scope changed from (%s) to (%s) since the last authorised scope; an approvals/ record with application_scope {application_id: %s, scope_sha256: %s} by a cab-approver is needed (a release approval does not count)",
		[
			input.application.id, scope_text(previous_application.allowed_scope),
			scope_text(input.application.allowed_scope), input.application.id,
			application_scope_sha256,
		],
	),
} if {
	application_scope_changed
	count(counted_scope_approvals) == 0
}

notes contains {
	"rule": "scope.release_approval_not_for_scope",
	"message": sprintf(
		"approval %s approves the release of %s, not the change of application %s's allowed_scope; it does not count for the scope change",
		[approval_id, input.intent.intent_id, input.application.id],
	),
} if {
	application_scope_changed
	count(counted_scope_approvals) == 0
	some approval_id in counted_approvals
}
