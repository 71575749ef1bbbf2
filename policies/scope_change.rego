# Scope immutability: widening or narrowing an application's allowed scope is
# a governed change and needs a counted CAB approval.
#
#   scope.application_scope_changed  require_approval  application.allowed_scope
#                                                      differs from the base
#                                                      revision's and no approval
#                                                      counts
package ringmaster.builtin

previous_application := object.get(input, "previous_application", null)

application_scope_changed if {
	previous_application != null
	normalized_scope(previous_application.allowed_scope) != normalized_scope(input.application.allowed_scope)
}

require_approval contains {
	"rule": "scope.application_scope_changed",
	"message": sprintf(
		"application %s's allowed_scope changed from (%s) to (%s) since the base revision; a CAB approval by a cab-approver whose scope covers %s is needed",
		[
			input.application.id, scope_text(previous_application.allowed_scope),
			scope_text(input.application.allowed_scope), target_text,
		],
	),
} if {
	application_scope_changed
	count(counted_approvals) == 0
}
