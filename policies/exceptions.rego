# Security exceptions: known risk accepted, for a while, by a security reviewer.
#
#   exception.vulnerability  require_exception  a high or critical CVE in the
#                                               artifact's SBOM without a live
#                                               vulnerability exception listing it
#   exception.unsigned       require_exception  unsigned artifact without a live
#                                               unsigned_package exception
#   exception.expired, exception.not_a_reviewer, exception.self_approval,
#   exception.artifact_changed
#                            note               why an exception record is ignored
package ringmaster.builtin

# An exception record of `exception_type` is live: granted for this very
# binary (artifact_sha256), unexpired, approved by a known security-reviewer
# who is not the intent's requester.
live_exception(entry, exception_type) if {
	entry.record.exception_type == exception_type
	entry.record.artifact_sha256 == input.artifact.sha256
	not_expired(entry.record.expiry)
	entry.approver != null
	"security-reviewer" in entry.approver.roles
	entry.record.approved_by != input.intent.requested_by
}

blocking_severities := {"high", "critical"}

# --- exception.vulnerability ------------------------------------------------

covered_cve(cve_id) if {
	some entry in input.exceptions
	live_exception(entry, "vulnerability")
	cve_id in entry.record.cves
}

require_exception contains {
	"rule": "exception.vulnerability",
	"message": sprintf(
		"artifact %s contains %s CVE %s in %s without a live vulnerability exception; upgrade the component%s or add an exceptions/ record listing %s approved by a security-reviewer",
		[input.artifact.id, cve.severity, cve.id, cve.component, fixed_in_text(cve), cve.id],
	),
} if {
	some cve in input.artifact.sbom.cves
	cve.severity in blocking_severities
	not covered_cve(cve.id)
}

# " (fixed in 1.2.3)" when the SBOM knows a fixed version, else "". Written
# with object.get so a missing or null field can never make the rule vanish.
fixed_in_text(cve) := sprintf(" (fixed in %s)", [cve.fixed_in]) if object.get(cve, "fixed_in", null) != null

fixed_in_text(cve) := "" if object.get(cve, "fixed_in", null) == null

# --- exception.unsigned -----------------------------------------------------

require_exception contains {
	"rule": "exception.unsigned",
	"message": sprintf(
		"artifact %s is not signed; sign the package or add an unsigned_package exceptions/ record approved by a security-reviewer",
		[input.artifact.id],
	),
} if {
	input.artifact.signature.signed == false
	not live_unsigned_exception
}

live_unsigned_exception if {
	some entry in input.exceptions
	live_exception(entry, "unsigned_package")
}

# --- notes: why an exception record is ignored ---------------------------------

notes contains {
	"rule": "exception.expired",
	"message": sprintf(
		"exception %s expired at %s and is ignored; renew it with a later expiry",
		[entry.record.exception_id, entry.record.expiry],
	),
} if {
	some entry in input.exceptions
	not not_expired(entry.record.expiry)
}

notes contains {
	"rule": "exception.not_a_reviewer",
	"message": sprintf(
		"exception %s is approved by %s, who does not hold the security-reviewer role, and is ignored; a security-reviewer must approve it",
		[entry.record.exception_id, entry.record.approved_by],
	),
} if {
	some entry in input.exceptions
	not reviewer(entry.approver)
}

notes contains {
	"rule": "exception.self_approval",
	"message": sprintf(
		"exception %s is approved by %s, who requested intent %s, and is ignored; another security-reviewer must approve it",
		[entry.record.exception_id, entry.record.approved_by, input.intent.intent_id],
	),
} if {
	some entry in input.exceptions
	entry.record.approved_by == input.intent.requested_by
}

reviewer(principal) if {
	principal != null
	"security-reviewer" in principal.roles
}

notes contains {
	"rule": "exception.artifact_changed",
	"message": sprintf(
		"exception %s was granted for artifact %s with sha256 %s, but the artifact is now %s, and is ignored; a security-reviewer must grant it for the new binary",
		[
			entry.record.exception_id, input.artifact.id,
			object.get(entry.record, "artifact_sha256", "none"), input.artifact.sha256,
		],
	),
} if {
	some entry in input.exceptions
	object.get(entry.record, "artifact_sha256", "none") != input.artifact.sha256
}
