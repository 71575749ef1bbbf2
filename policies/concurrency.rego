# One active change at a time per application, segment and ring.
#
#   concurrency.one_active_change  deny  another intent of the same application
#                                        and segment overlaps this one's rings
#                                        (`conflicts`, from the snapshot)
#   concurrency.change_in_flight   deny  another intent of the same application
#                                        and segment is in flight
#                                        (`active_changes`, from the store): a
#                                        runtime fact that clears; `waits_on`
#                                        names the intent, so the daemon waits
#                                        on it instead of failing the run
package ringmaster.builtin

deny contains {
	"rule": "concurrency.one_active_change",
	"message": sprintf(
		"intent %s also targets %s for application %s in %s; only one change per application and ring is allowed, so set supersedes: %s or remove the overlapping rings",
		[
			conflict.intent_id, bracketed(object.get(conflict, "rings", [])),
			input.application.id, target_text, conflict.intent_id,
		],
	),
} if {
	some conflict in input.conflicts
}

deny contains {
	"rule": "concurrency.change_in_flight",
	"waits_on": change.intent_id,
	"message": sprintf(
		"intent %s is still in flight in %s for application %s in %s; wait until it completes or is rolled back",
		[change.intent_id, change.ring, input.application.id, target_text],
	),
} if {
	some change in input.active_changes
}
