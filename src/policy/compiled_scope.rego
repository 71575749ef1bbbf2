# The rules of policies/scope.rego as the compiled RVM program runs them
# (`super::compiled`): the same deny findings, with the same messages, for
# every input of the documented shape (`super::shape`), the only inputs the
# RVM is given. Every other input, and every tenant rule, is judged by the
# interpreter on policies/scope.rego itself, which stays the reference (and
# what evidence packs hash).
#
# Why a copy: the RVM pays for each rule or function call (even a cached
# one), and policies/scope.rego makes about 36 of them per intent through
# its helpers (`publisher`, `target`, `publisher_absent`, `dimension_allows`,
# `sites_outside`, `site_limit`, `every_site_outside`). Here the helpers are
# written out in each body, which on documented inputs means the same:
#
#   publisher_absent            not input.publisher, or input.publisher == null
#                               (two bodies with the same finding)
#   not publisher_absent        input.publisher != null   (a principal object,
#                                                          null, or absent)
#   not dimension_allows(V, v)  not "*" in V; not v in V  (v is a string)
#   some site in sites_outside(S, T)
#                               limit := S.sites; limit != null; not "*" in limit;
#                               some site in T.sites; not site in limit
#   every_site_outside(S, T)    S.sites != null; not "*" in S.sites;
#                               not T.sites != null
#
# The messages are the ones of policies/scope.rego, word for word. A unit
# test pins the digest of policies/scope.rego, so a change there fails until
# this file is brought in line; the parity tests (tests/policy_rules.rs, the
# differential test in `super::compiled`) compare both on many inputs.
package ringmaster.builtin

# Not read by the rules below; defined as in policies/scope.rego.
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
