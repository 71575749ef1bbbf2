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

/// Bypass 10a: a release approval of one of the app's intents used to
/// satisfy `scope.application_scope_changed`. The VPN's intent has a counted
/// CAB approval (cab-2026-0142); widening the VPN's allowed_scope to a
/// second acquisition boundary is another decision, which only an
/// `application_scope` approval naming the new scope's digest makes.
#[test]
fn a_release_approval_does_not_approve_a_scope_widening() {
    let attack = Attack::new();
    attack.repo.edit(
        "apps/globalprotect-vpn/app.yaml",
        "acquisition_boundaries: [acq-001]",
        "acquisition_boundaries: [acq-001, acq-002]",
    );
    attack.commit("vpn: acq-002 may have it too");
    // Before `each_judge`: the daemon's run fast-forwards main.
    let check = attack.pr_check_with(&[]);
    assert_eq!(check.state.as_str(), "pending", "{}", check.summary);
    assert_eq!(check.scope_changes.len(), 1, "{:#?}", check.scope_changes);
    assert_eq!(check.scope_changes[0].approved_by, None);
    each_judge(&attack, |judge, verdict| {
        assert_eq!(
            verdict.decision("vpn-6.2.1-finance"),
            "REQUIRE_APPROVAL",
            "{judge} let the release approval cover the scope widening: {verdict:#?}"
        );
        assert!(
            verdict.fired("vpn-6.2.1-finance", "scope.application_scope_changed"),
            "{judge}: {verdict:#?}"
        );
        assert!(
            verdict.has_warning(
                "apps/globalprotect-vpn/app.yaml: allowed_scope of application globalprotect-vpn changed"
            ),
            "{judge} did not report the unapproved widening on its file: {verdict:#?}"
        );
    });
}

/// The base without the osquery intent: the application has no intent.
/// (Without the build agent's too, which waits for an exception: every
/// intent left is ALLOW, so `validate --strict` passes the base.)
fn osquery_without_intents() -> Attack {
    Attack::on_base(|repo| {
        for intent in ["osquery-6.0.0-it", "build-agent-2.8.0-engineering"] {
            std::fs::remove_file(repo.path.join(format!("intents/{intent}.yaml"))).expect("rm");
        }
    })
}

fn widen_osquery(attack: &Attack) {
    attack.repo.edit(
        "apps/osquery/app.yaml",
        "acquisition_boundaries: [acq-001, acq-002]",
        "acquisition_boundaries: [acq-001, acq-002, acq-003]",
    );
    attack.commit("osquery: acq-003 too (no intent touches it)");
}

/// Bypass 10b: a widening committed while the app has no intent was never
/// flagged. It is reported on `apps/osquery/app.yaml` by every judge, and
/// keeps the PR check pending: no intent needs to touch it.
#[test]
fn a_scope_widening_with_no_intent_is_reported_by_every_judge() {
    let attack = osquery_without_intents();
    widen_osquery(&attack);
    let check = attack.pr_check_with(&[]);
    assert_eq!(
        check.state.as_str(),
        "pending",
        "a PR that only widens a scope is not green: {}",
        check.summary
    );
    assert!(check.summary.contains("osquery"), "{}", check.summary);
    let strict = |rev: &str| {
        crate::support::ringmaster(
            &[
                "validate",
                ".",
                "--base",
                "main",
                "--rev",
                rev,
                "--now",
                crate::support::NOW,
                "--strict",
            ],
            &attack.repo.path,
        )
    };
    let control = strict("main");
    assert!(
        control.status.success(),
        "the base passes --strict: {}",
        crate::support::stdout(&control)
    );
    let strict = strict("attack");
    assert!(
        !strict.status.success(),
        "validate --strict passes an unapproved widening"
    );
    each_judge(&attack, |judge, verdict| {
        assert!(
            verdict
                .has_warning("apps/osquery/app.yaml: allowed_scope of application osquery changed"),
            "{judge} let a widening with no intent pass unreported: {verdict:#?}"
        );
        assert!(!verdict.decisions.contains_key("osquery-6.0.0-it"));
    });
}

/// ... after which an intent added later is judged against the authorised
/// (narrow) scope, not the already-wide one: the widening still needs its
/// CAB approval, two commits later.
#[test]
fn an_intent_added_after_a_widening_with_no_intent_still_needs_the_scope_approval() {
    let attack = osquery_without_intents();
    widen_osquery(&attack);
    attack.repo.write(
        "intents/osquery-6.0.0-it.yaml",
        include_str!("../../sample-repo/intents/osquery-6.0.0-it.yaml"),
    );
    attack.commit("osquery: the intent comes back");
    each_judge(&attack, |judge, verdict| {
        assert_eq!(
            verdict.decision("osquery-6.0.0-it"),
            "REQUIRE_APPROVAL",
            "{judge} judged the new intent against the unapproved wide scope: {verdict:#?}"
        );
        assert!(
            verdict.fired("osquery-6.0.0-it", "scope.application_scope_changed"),
            "{judge}: {verdict:#?}"
        );
    });
}
