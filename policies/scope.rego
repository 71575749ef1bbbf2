# Tenant segmentation: who may publish where, and where an application may go.
#
#   scope.publisher_unknown        deny  requester is not a known publisher
#   scope.cross_boundary           deny  target boundary outside the publisher's boundaries
#   scope.outside_publisher        deny  target business unit or sites outside the publisher's scope
#   scope.outside_application      deny  target outside application.allowed_scope
#   scope.publisher_scope_mismatch deny  intent.publisher_scope differs from the principal's scope
#
# Invariant: target_scope ⊆ publisher scope and target_scope ⊆ application
# scope, with default deny across acquisition boundaries.
#
# Each rule's conditions are written out in its body rather than through the
# helpers of common.rego (`dimension_allows`, `sites_outside`,
# `every_site_outside`, `publisher_absent`): the compiled RVM program pays for
# every rule or function call, and these helpers were a third of an intent's
# instructions. Written out, on inputs of the documented shape:
#
#   publisher absent            not input.publisher, or input.publisher == null
#                               (two bodies with the same finding)
#   a known publisher           input.publisher != null
#   a dimension allows v        "*" in the values, or v in the values
#   a site outside a Scope S    S.sites != null; not "*" in S.sites;
#                               some site in the target's sites; not site in S.sites
#   every site outside S        S.sites != null; not "*" in S.sites;
#                               the target lists no sites
#
# The interpreter and the RVM run this one file, and evidence packs hash it.
# A differential test (`policy::compiled`) checks, on thousands of inputs,
# that it gives the findings of the helper-based rules it replaced
# (src/policy/testdata/scope_before_2026_12_06.rego) on both paths.
package ringmaster.builtin

publisher := input.publisher

application_scope := input.application.allowed_scope

# --- scope.publisher_unknown --------------------------------------------

deny contains {
	"rule": "scope.publisher_unknown",
	"message": sprintf(
		"intent %s is requested_by %q, who is not a principal in principals/; add that principal or correct requested_by",
		[input.intent.intent_id, input.intent.requested_by],
	),
} if {
	not input.publisher
}

deny contains {
	"rule": "scope.publisher_unknown",
	"message": sprintf(
		"intent %s is requested_by %q, who is not a principal in principals/; add that principal or correct requested_by",
		[input.intent.intent_id, input.intent.requested_by],
	),
} if {
	input.publisher == null
}

deny contains {
	"rule": "scope.publisher_unknown",
	"message": sprintf(
		"requester %s does not hold the publisher role; grant it in principals/ or have a publisher request intent %s",
		[input.publisher.id, input.intent.intent_id],
	),
} if {
	input.publisher != null
	not "publisher" in input.publisher.roles
}

# --- scope.cross_boundary -------------------------------------------------

deny contains {
	"rule": "scope.cross_boundary",
	"message": sprintf(
		"target_scope.acquisition_boundary %q is outside publisher %s's boundaries %s; publishing across acquisition boundaries is denied by default, so a publisher of %s must request it",
		[
			input.intent.target_scope.acquisition_boundary, input.publisher.id,
			bracketed(input.publisher.scope.acquisition_boundaries), input.intent.target_scope.acquisition_boundary,
		],
	),
} if {
	input.publisher != null
	not "*" in input.publisher.scope.acquisition_boundaries
	not input.intent.target_scope.acquisition_boundary in input.publisher.scope.acquisition_boundaries
}

# --- scope.outside_publisher ------------------------------------------------

deny contains {
	"rule": "scope.outside_publisher",
	"message": sprintf(
		"target_scope.business_unit %q is outside publisher %s's scope %s; target one of those business units or extend the principal's scope",
		[input.intent.target_scope.business_unit, input.publisher.id, bracketed(input.publisher.scope.business_units)],
	),
} if {
	input.publisher != null
	not "*" in input.publisher.scope.business_units
	not input.intent.target_scope.business_unit in input.publisher.scope.business_units
}

deny contains {
	"rule": "scope.outside_publisher",
	"message": sprintf(
		"target_scope.sites %q is outside publisher %s's sites %s; remove that site from the target or extend the principal's scope",
		[site, input.publisher.id, bracketed(input.publisher.scope.sites)],
	),
} if {
	input.publisher != null
	limit := input.publisher.scope.sites
	limit != null
	not "*" in limit
	some site in input.intent.target_scope.sites
	not site in limit
}

deny contains {
	"rule": "scope.outside_publisher",
	"message": sprintf(
		"target_scope lists no sites, which means every site, but publisher %s's scope is limited to sites %s; list the sites in target_scope.sites",
		[input.publisher.id, bracketed(input.publisher.scope.sites)],
	),
} if {
	input.publisher != null
	input.publisher.scope.sites != null
	not "*" in input.publisher.scope.sites
	not input.intent.target_scope.sites != null
}

# --- scope.outside_application ----------------------------------------------

deny contains {
	"rule": "scope.outside_application",
	"message": sprintf(
		"target_scope.acquisition_boundary %q is outside application %s's allowed_scope boundaries %s; target one of those or extend allowed_scope in apps/%s/app.yaml (a scope change needs CAB approval)",
		[
			input.intent.target_scope.acquisition_boundary, input.application.id,
			bracketed(input.application.allowed_scope.acquisition_boundaries), input.application.id,
		],
	),
} if {
	not "*" in input.application.allowed_scope.acquisition_boundaries
	not input.intent.target_scope.acquisition_boundary in input.application.allowed_scope.acquisition_boundaries
}

deny contains {
	"rule": "scope.outside_application",
	"message": sprintf(
		"target_scope.business_unit %q is outside application %s's allowed_scope %s; target one of those or extend allowed_scope in apps/%s/app.yaml (a scope change needs CAB approval)",
		[
			input.intent.target_scope.business_unit, input.application.id,
			bracketed(input.application.allowed_scope.business_units), input.application.id,
		],
	),
} if {
	not "*" in input.application.allowed_scope.business_units
	not input.intent.target_scope.business_unit in input.application.allowed_scope.business_units
}

deny contains {
	"rule": "scope.outside_application",
	"message": sprintf(
		"target_scope.sites %q is outside application %s's allowed sites %s; remove that site from the target or extend allowed_scope in apps/%s/app.yaml",
		[site, input.application.id, bracketed(input.application.allowed_scope.sites), input.application.id],
	),
} if {
	limit := input.application.allowed_scope.sites
	limit != null
	not "*" in limit
	some site in input.intent.target_scope.sites
	not site in limit
}

deny contains {
	"rule": "scope.outside_application",
	"message": sprintf(
		"target_scope lists no sites, which means every site, but application %s is allowed only at sites %s; list the sites in target_scope.sites",
		[input.application.id, bracketed(input.application.allowed_scope.sites)],
	),
} if {
	input.application.allowed_scope.sites != null
	not "*" in input.application.allowed_scope.sites
	not input.intent.target_scope.sites != null
}

# --- scope.publisher_scope_mismatch -------------------------------------------

deny contains {
	"rule": "scope.publisher_scope_mismatch",
	"message": sprintf(
		"intent %s declares publisher_scope (%s) but principal %s's scope is (%s); copy the principal's scope from principals/ or remove publisher_scope",
		[
			input.intent.intent_id, scope_text(input.intent.publisher_scope),
			input.publisher.id, scope_text(input.publisher.scope),
		],
	),
} if {
	input.intent.publisher_scope != null
	input.publisher != null
	normalized_scope(input.intent.publisher_scope) != normalized_scope(input.publisher.scope)
}
