//! Bypass 5: a scope widening split over two commits. The first commit
//! widens the benefits application's allowed_scope (its intent is flagged
//! there); the second changes nothing about scopes, so compared with its
//! parent it looks innocent. Every judge compares with the last authorised
//! scope: `validate --base` and the PR check with the base's, the daemon
//! with the scope in force (only a scope approval puts a new one in force).

use crate::harness::{Attack, each_judge};

#[test]
fn a_scope_widening_split_over_two_commits_still_needs_cab() {
    let attack = Attack::new();
    attack.repo.edit(
        "apps/contoso-benefits/app.yaml",
        "business_units: [bu-hr, bu-finance]",
        "business_units: [bu-hr, bu-finance, bu-it]",
    );
    attack.commit("benefits: IT may use it too");
    attack.repo.edit(
        "intents/benefits-3.4.2-hr.yaml",
        "description: >-",
        "# reviewed again\ndescription: >-",
    );
    attack.commit("benefits: a comment");
    each_judge(&attack, |judge, verdict| {
        assert_eq!(
            verdict.decision("benefits-3.4.2-hr"),
            "REQUIRE_APPROVAL",
            "{judge} forgot the widening of the commit before: {verdict:#?}"
        );
        assert!(
            verdict.fired("benefits-3.4.2-hr", "scope.application_scope_changed"),
            "{judge}: {verdict:#?}"
        );
    });
}
