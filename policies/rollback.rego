# Every rollout that reaches the CAB ring must know how to undo itself.
#
#   rollback.plan_required  deny  a target ring at or after config.cab.from_ring
#                                 and no rollback_plan, or a plan (other than
#                                 `halt`) that is not validated or names no
#                                 rollback_version
#   version.rolled_back     deny  the intent's version was rolled back and not
#                                 superseded
package ringmaster.builtin

rollback_plan := object.get(input.intent, "rollback_plan", null)

# --- rollback.plan_required ---------------------------------------------------

deny contains {
	"rule": "rollback.plan_required",
	"message": sprintf(
		"intent %s reaches %s without a rollback_plan; add one (strategy, rollback_version, validated: true) or strategy: halt",
		[input.intent.intent_id, input.config.cab.from_ring],
	),
} if {
	reaches_cab_ring
	rollback_plan == null
}

deny contains {
	"rule": "rollback.plan_required",
	"message": sprintf(
		"intent %s reaches %s but its rollback_plan (%s) is not validated; rehearse the rollback and set validated: true, or use strategy: halt",
		[input.intent.intent_id, input.config.cab.from_ring, rollback_plan.strategy],
	),
} if {
	reaches_cab_ring
	rollback_plan != null
	rollback_plan.strategy != "halt"
	object.get(rollback_plan, "validated", false) != true
}

deny contains {
	"rule": "rollback.plan_required",
	"message": sprintf(
		"intent %s reaches %s but its rollback_plan (%s) names no rollback_version; set the version to return to, or use strategy: halt",
		[input.intent.intent_id, input.config.cab.from_ring, rollback_plan.strategy],
	),
} if {
	reaches_cab_ring
	rollback_plan != null
	rollback_plan.strategy != "halt"
	object.get(rollback_plan, "rollback_version", null) == null
}

# --- version.rolled_back --------------------------------------------------------

deny contains {
	"rule": "version.rolled_back",
	"message": sprintf(
		"version %s of application %s was rolled back and has not been superseded; publish a fixed version instead",
		[input.intent.version, input.application.id],
	),
} if {
	input.intent.version in input.rolled_back_versions
}
