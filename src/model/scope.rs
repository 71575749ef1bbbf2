//! Tenant segmentation: does a scope cover a target, and how did a scope change.
//!
//! The same semantics are written in Rego (`policies/scope.rego`) for the
//! policy decision; this copy serves reports (approver coverage in `plan`,
//! scope diffs) and is tested against the same table.

use super::kinds::{Scope, TargetScope};
use serde::Serialize;

fn allows(list: &[String], value: &str) -> bool {
    list.iter().any(|item| item == "*" || item == value)
}

/// `target ⊆ scope`: boundary, business unit and every site are allowed.
/// A target without sites means "every site", which only an unrestricted scope covers.
pub fn covers(scope: &Scope, target: &TargetScope) -> bool {
    if !allows(&scope.acquisition_boundaries, &target.acquisition_boundary)
        || !allows(&scope.business_units, &target.business_unit)
    {
        return false;
    }
    match (&scope.sites, &target.sites) {
        (None, _) => true,
        (Some(allowed), _) if allowed.iter().any(|s| s == "*") => true,
        (Some(_), None) => false,
        (Some(allowed), Some(sites)) => sites.iter().all(|site| allowed.contains(site)),
    }
}

/// What changed in one dimension of a scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct DimensionDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

impl DimensionDiff {
    fn between(before: &[String], after: &[String]) -> Self {
        DimensionDiff {
            added: after
                .iter()
                .filter(|v| !before.contains(v))
                .cloned()
                .collect(),
            removed: before
                .iter()
                .filter(|v| !after.contains(v))
                .cloned()
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

/// Previous scope → requested scope, per dimension (for CAB evidence).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct ScopeDiff {
    pub acquisition_boundaries: DimensionDiff,
    pub business_units: DimensionDiff,
    pub sites: DimensionDiff,
}

impl ScopeDiff {
    pub fn between(before: &Scope, after: &Scope) -> Self {
        let sites = |scope: &Scope| scope.sites.clone().unwrap_or_else(|| vec!["*".into()]);
        ScopeDiff {
            acquisition_boundaries: DimensionDiff::between(
                &before.acquisition_boundaries,
                &after.acquisition_boundaries,
            ),
            business_units: DimensionDiff::between(&before.business_units, &after.business_units),
            sites: DimensionDiff::between(&sites(before), &sites(after)),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.acquisition_boundaries.is_empty()
            && self.business_units.is_empty()
            && self.sites.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(boundaries: &[&str], units: &[&str], sites: Option<&[&str]>) -> Scope {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        Scope {
            acquisition_boundaries: owned(boundaries),
            business_units: owned(units),
            sites: sites.map(owned),
        }
    }

    fn target(boundary: &str, unit: &str, sites: Option<&[&str]>) -> TargetScope {
        TargetScope {
            acquisition_boundary: boundary.into(),
            business_unit: unit.into(),
            sites: sites.map(|v| v.iter().map(|s| s.to_string()).collect()),
            site_class: None,
            rings: vec!["ring-0-lab".into()],
        }
    }

    fn check(scope: Scope, target: TargetScope, expected: bool) {
        assert_eq!(covers(&scope, &target), expected, "{scope:?} ⊇ {target:?}");
    }

    #[test]
    fn coverage_table() {
        let fin = scope(&["acq-001"], &["bu-finance"], None);
        check(fin.clone(), target("acq-001", "bu-finance", None), true);
        check(fin.clone(), target("acq-001", "bu-hr", None), false);
        check(fin.clone(), target("acq-002", "bu-finance", None), false);
        check(
            fin,
            target("acq-001", "bu-finance", Some(&["geo-us-east"])),
            true,
        );
        let admin = scope(&["*"], &["*"], Some(&["*"]));
        check(admin, target("acq-002", "bu-x", None), true);
        let sited = scope(&["acq-001"], &["bu-it"], Some(&["geo-us-east"]));
        check(
            sited.clone(),
            target("acq-001", "bu-it", Some(&["geo-us-east"])),
            true,
        );
        check(
            sited.clone(),
            target(
                "acq-001",
                "bu-it",
                Some(&["geo-us-east", "geo-emea-london"]),
            ),
            false,
        );
        check(sited, target("acq-001", "bu-it", None), false);
    }

    #[test]
    fn diff_lists_added_and_removed_per_dimension() {
        let before = scope(&["acq-001"], &["bu-finance"], None);
        let after = scope(
            &["acq-001"],
            &["bu-finance", "bu-hr"],
            Some(&["geo-us-east"]),
        );
        let diff = ScopeDiff::between(&before, &after);
        assert!(diff.acquisition_boundaries.is_empty());
        assert_eq!(diff.business_units.added, vec!["bu-hr"]);
        assert_eq!(diff.sites.added, vec!["geo-us-east"]);
        assert_eq!(diff.sites.removed, vec!["*"]);
        assert!(ScopeDiff::between(&before, &before).is_empty());
    }
}
