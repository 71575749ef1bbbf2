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
package ringmaster.builtin

publisher := input.publisher

# --- scope.publisher_unknown --------------------------------------------

deny contains {
	"rule": "scope.publisher_unknown",
	"message": sprintf(
		"intent %s is requested_by %q, who is not a principal in principals/; add that principal or correct requested_by",
		[input.intent.intent_id, input.intent.requested_by],
	),
} if {
	publisher_absent
}

deny contains {
	"rule": "scope.publisher_unknown",
	"message": sprintf(
		"requester %s does not hold the publisher role; grant it in principals/ or have a publisher request intent %s",
		[publisher.id, input.intent.intent_id],
	),
} if {
	not publisher_absent
	not "publisher" in publisher.roles
}

# --- scope.cross_boundary -------------------------------------------------

deny contains {
	"rule": "scope.cross_boundary",
	"message": sprintf(
		"target_scope.acquisition_boundary %q is outside publisher %s's boundaries %s; publishing across acquisition boundaries is denied by default, so a publisher of %s must request it",
		[
			target.acquisition_boundary, publisher.id,
			bracketed(publisher.scope.acquisition_boundaries), target.acquisition_boundary,
		],
	),
} if {
	not publisher_absent
	not dimension_allows(publisher.scope.acquisition_boundaries, target.acquisition_boundary)
}

# --- scope.outside_publisher ------------------------------------------------

deny contains {
	"rule": "scope.outside_publisher",
	"message": sprintf(
		"target_scope.business_unit %q is outside publisher %s's scope %s; target one of those business units or extend the principal's scope",
		[target.business_unit, publisher.id, bracketed(publisher.scope.business_units)],
	),
} if {
	not publisher_absent
	not dimension_allows(publisher.scope.business_units, target.business_unit)
}

deny contains {
	"rule": "scope.outside_publisher",
	"message": sprintf(
		"target_scope.sites %q is outside publisher %s's sites %s; remove that site from the target or extend the principal's scope",
		[site, publisher.id, bracketed(publisher.scope.sites)],
	),
} if {
	not publisher_absent
	some site in sites_outside(publisher.scope, target)
}

deny contains {
	"rule": "scope.outside_publisher",
	"message": sprintf(
		"target_scope lists no sites, which means every site, but publisher %s's scope is limited to sites %s; list the sites in target_scope.sites",
		[publisher.id, bracketed(publisher.scope.sites)],
	),
} if {
	not publisher_absent
	every_site_outside(publisher.scope, target)
}

# --- scope.outside_application ----------------------------------------------

application_scope := input.application.allowed_scope

deny contains {
	"rule": "scope.outside_application",
	"message": sprintf(
		"target_scope.acquisition_boundary %q is outside application %s's allowed_scope boundaries %s; target one of those or extend allowed_scope in apps/%s/app.yaml (a scope change needs CAB approval)",
		[
			target.acquisition_boundary, input.application.id,
			bracketed(application_scope.acquisition_boundaries), input.application.id,
		],
	),
} if {
	not dimension_allows(application_scope.acquisition_boundaries, target.acquisition_boundary)
}

deny contains {
	"rule": "scope.outside_application",
	"message": sprintf(
		"target_scope.business_unit %q is outside application %s's allowed_scope %s; target one of those or extend allowed_scope in apps/%s/app.yaml (a scope change needs CAB approval)",
		[
			target.business_unit, input.application.id,
			bracketed(application_scope.business_units), input.application.id,
		],
	),
} if {
	not dimension_allows(application_scope.business_units, target.business_unit)
}

deny contains {
	"rule": "scope.outside_application",
	"message": sprintf(
		"target_scope.sites %q is outside application %s's allowed sites %s; remove that site from the target or extend allowed_scope in apps/%s/app.yaml",
		[site, input.application.id, bracketed(application_scope.sites), input.application.id],
	),
} if {
	some site in sites_outside(application_scope, target)
}

deny contains {
	"rule": "scope.outside_application",
	"message": sprintf(
		"target_scope lists no sites, which means every site, but application %s is allowed only at sites %s; list the sites in target_scope.sites",
		[input.application.id, bracketed(application_scope.sites)],
	),
} if {
	every_site_outside(application_scope, target)
}

# --- scope.publisher_scope_mismatch -------------------------------------------

deny contains {
	"rule": "scope.publisher_scope_mismatch",
	"message": sprintf(
		"intent %s declares publisher_scope (%s) but principal %s's scope is (%s); copy the principal's scope from principals/ or remove publisher_scope",
		[
			input.intent.intent_id, scope_text(input.intent.publisher_scope),
			publisher.id, scope_text(publisher.scope),
		],
	),
} if {
	not publisher_absent
	input.intent.publisher_scope != null
	normalized_scope(input.intent.publisher_scope) != normalized_scope(publisher.scope)
}
