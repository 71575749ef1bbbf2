# Shared helpers of the built-in bundle: time, rings, scope coverage and
# formatting. Nothing in this file adds to an output set.
#
# Scope semantics (docs/policy-input.md): a Scope covers a TargetScope when
# the boundary and the business unit are listed (or the list holds "*"), and
# the sites are covered: a Scope without `sites` covers every site; otherwise
# the target must list its sites and each must be in the Scope's sites (or the
# Scope's sites hold "*"). A target without `sites` means "every site", which
# only a Scope without `sites` or with "*" covers.
package ringmaster.builtin

# Evaluated once when the engine is built: forces parsing, analysis and
# preparation of every module (built-in and tenant) without evaluating rules.
bundle_loaded := true

# Evaluation time in nanoseconds since the epoch; undefined when `now` is not
# RFC 3339, which makes every expiry check fail (fail closed).
now_ns := time.parse_rfc3339_ns(input.now)

# True when an RFC 3339 expiry lies strictly after `now`.
not_expired(expiry) if time.parse_rfc3339_ns(expiry) > now_ns

# The intent's target, used by several rules.
target := input.intent.target_scope

# Some target ring is at or after the first ring that needs CAB approval.
reaches_cab_ring if {
	some ring in input.rings
	ring.index >= input.cab_ring_index
}

# The publisher is missing from the input or explicitly null.
publisher_absent if not input.publisher
publisher_absent if input.publisher == null

# One dimension of a Scope allows a value: listed, or the list holds "*".
dimension_allows(values, _) if "*" in values
dimension_allows(values, value) if value in values

# The Scope's site list when it limits sites; undefined when the Scope covers
# every site (no `sites`, null, or "*" among them).
site_limit(scope) := scope.sites if {
	scope.sites != null
	not "*" in scope.sites
}

# The target lists its sites (otherwise it means every site).
target_lists_sites(target_scope) if target_scope.sites != null

# Sites coverage, see the header of this file.
sites_covered(scope, _) if not site_limit(scope)

sites_covered(scope, target_scope) if {
	limit := site_limit(scope)
	target_lists_sites(target_scope)
	every site in target_scope.sites {
		site in limit
	}
}

# A Scope covers a TargetScope in every dimension.
scope_covers(scope, target_scope) if {
	dimension_allows(scope.acquisition_boundaries, target_scope.acquisition_boundary)
	dimension_allows(scope.business_units, target_scope.business_unit)
	sites_covered(scope, target_scope)
}

# Target sites a limited Scope does not allow (empty when all are allowed or
# when the target lists no sites). `site_limit` is written out: regorus's RVM
# (0.14.1) does not fail a comprehension on an undefined `limit :=
# site_limit(scope)` and found every target site outside a Scope holding "*".
sites_outside(scope, target_scope) := {site |
	scope.sites != null
	not "*" in scope.sites
	some site in target_scope.sites
	not site in scope.sites
}

# The target lists no sites (every site) but the Scope is limited to some.
every_site_outside(scope, target_scope) if {
	site_limit(scope)
	not target_lists_sites(target_scope)
}

# `[a, b]`, the way messages show lists.
bracketed(values) := sprintf("[%s]", [concat(", ", values)])

# A Scope with list order and duplicates removed, so equal scopes compare equal.
normalized_scope(scope) := {
	"acquisition_boundaries": {value | some value in scope.acquisition_boundaries},
	"business_units": {value | some value in scope.business_units},
	"sites": normalized_sites(object.get(scope, "sites", null)),
}

normalized_sites(sites) := "every site" if sites == null
normalized_sites(sites) := {site | some site in sites} if sites != null

# A Scope in one line: `boundaries [acq-001], business units [bu-hr], sites [every]`.
scope_text(scope) := sprintf("boundaries %s, business units %s, sites %s", [
	bracketed(scope.acquisition_boundaries),
	bracketed(scope.business_units),
	sites_text(object.get(scope, "sites", null)),
])

sites_text(sites) := "[every]" if sites == null
sites_text(sites) := bracketed(sites) if sites != null

# The target segment in one line: `acq-001/bu-finance`.
target_text := sprintf("%s/%s", [target.acquisition_boundary, target.business_unit])
