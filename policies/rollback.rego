# Every rollout that reaches the CAB ring must know how to undo itself.
#
#   rollback.plan_required  deny  a target ring at or after config.cab.from_ring
#                                 and no rollback_plan, or a plan (other than
#                                 `halt`) that is not validated or names no
#                                 rollback_version
#   rollback.strategy_plane deny  a plane-specific strategy of another plane
#                                 than the artifact's: its plane would refuse
#                                 the rollback when a gate fails
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

# --- rollback.strategy_plane --------------------------------------------------------

# The plane each plane-specific strategy is carried out on, as the connectors
# check it (`planes::contract::rollback_method`); `redeploy-previous` and
# `halt` suit every plane.
strategy_plane := {
	"intune-supersedence": "intune",
	"jamf-uninstall-policy": "jamf",
	"sccm-uninstall-deployment": "sccm",
	"landscape-remove-packages": "landscape",
	"ansible-uninstall": "ansible",
}

# Each plane's own strategy, for the message.
plane_strategy := {
	"intune": "intune-supersedence",
	"jamf": "jamf-uninstall-policy",
	"sccm": "sccm-uninstall-deployment",
	"landscape": "landscape-remove-packages",
	"ansible": "ansible-uninstall",
}

deny contains {
	"rule": "rollback.strategy_plane",
	"message": sprintf(
		"intent %s rolls back with %s, a strategy for %s deployments, but artifact %s is deployed by %s, which would refuse it when a gate fails; use %s, redeploy-previous or halt",
		[
			input.intent.intent_id, rollback_plan.strategy, own_plane,
			input.artifact.id, input.artifact.plane,
			object.get(plane_strategy, input.artifact.plane, "the plane's own strategy"),
		],
	),
} if {
	rollback_plan != null
	own_plane := strategy_plane[rollback_plan.strategy]
	own_plane != input.artifact.plane
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
