//! Bypass 2: a commit relaxing its own rules. Each attack changes the rules
//! (`ringmaster.yaml`, `principals/`, `policies/`) in the same commit that
//! profits from the change, with nobody authorising it. Every judge must
//! judge it by the rules in force: `validate --base` and the PR check by the
//! base branch's, the daemon by the last authorised (it also records
//! `governance_change_unauthorised`: an event, and a governance evidence
//! pack).

use crate::harness::{Attack, Verdict, daemon_config, events_of, now, packs_of};
use ringmaster::daemon::Daemon;

/// Runs `check` on every judge's verdict (as `each_judge` does), then
/// checks the daemon's record of the unauthorised change: an event naming
/// `path`, a governance evidence pack, and the rules in force unchanged
/// with the change reported.
fn every_judge_and_the_record(attack: &Attack, path: &str, check: impl Fn(&str, &Verdict)) {
    check("validate --base", &attack.validate());
    check("the PR check", &attack.pr_check());
    let config = daemon_config(&attack.repo);
    let state_dir = config.state_dir.clone();
    let mut daemon = Daemon::open(config).expect("daemon");
    let (verdict, ()) = attack.daemon_run(&mut daemon, now());
    check("the daemon", &verdict);
    let events = events_of(&daemon, "governance_change_unauthorised");
    assert_eq!(events.len(), 1, "one event for the change: {events:#?}");
    assert!(
        events[0]["paths"]
            .as_array()
            .is_some_and(|paths| paths.iter().any(|p| p == path)),
        "the event names {path}: {events:#?}"
    );
    let packs = packs_of(&attack.repo, "governance");
    assert!(
        packs
            .iter()
            .any(|p| p["body"]["kind"] == "governance_change_unauthorised"),
        "a governance evidence pack records it: {packs:#?}"
    );
    let state = daemon
        .store()
        .rules_state("main")
        .expect("store")
        .expect("rules in force");
    assert_eq!(
        state.rules_commit, attack.base,
        "the base's rules stay in force"
    );
    assert!(state.unauthorised.is_some(), "{state:?}");
    let status = crate::support::ringmaster(
        &["status", "--state", state_dir.to_str().expect("utf-8")],
        &attack.repo.path,
    );
    let said = crate::support::stderr(&status);
    assert!(
        status.status.success()
            && said.contains("governance_change_unauthorised")
            && said.contains(path),
        "status reports the change: {said}"
    );
}

/// The CAB threshold raised from 50 to 90 in the same commit: osquery
/// (risk 60) would need no approval by the commit's own rules.
#[test]
fn a_commit_cannot_raise_the_cab_threshold_that_judges_it() {
    let attack = Attack::new();
    attack.repo.edit(
        "ringmaster.yaml",
        "risk_threshold: 50",
        "risk_threshold: 90",
    );
    attack.repo.edit(
        "ringmaster.yaml",
        "    - above: 50\n      approvals: 1",
        "    - above: 90\n      approvals: 1",
    );
    attack.repo.edit(
        "intents/osquery-6.0.0-it.yaml",
        "Needs CAB before ring-2-pilot.",
        "No CAB needed any more.",
    );
    attack.commit("cab: fewer approvals, and osquery goes out");
    every_judge_and_the_record(&attack, "ringmaster.yaml", |judge, verdict| {
        assert_eq!(
            verdict.decision("osquery-6.0.0-it"),
            "REQUIRE_APPROVAL",
            "{judge} judged the commit by its own CAB threshold: {verdict:#?}"
        );
        assert!(
            verdict.fired("osquery-6.0.0-it", "cab.approval_required"),
            "{judge}: {verdict:#?}"
        );
    });
}

/// Erin (a Fabrikam publisher) makes herself an admin with every scope and
/// publishes to Contoso Finance in the same commit.
#[test]
fn a_principal_cannot_grant_itself_a_role_and_scope() {
    let attack = Attack::new();
    attack.repo.edit(
        "principals/erin.yaml",
        "  - publisher\n",
        "  - publisher\n  - admin\n",
    );
    attack.repo.edit(
        "principals/erin.yaml",
        "acquisition_boundaries: [acq-002]\n  business_units: [bu-engineering]",
        "acquisition_boundaries: [\"*\"]\n  business_units: [\"*\"]",
    );
    attack.repo.edit(
        "intents/chrome-131-finance.yaml",
        "requested_by: alice",
        "requested_by: erin",
    );
    attack.repo.edit(
        "intents/chrome-131-finance.yaml",
        "publisher_scope:\n  acquisition_boundaries: [acq-001]\n  business_units: [bu-finance]",
        "publisher_scope:\n  acquisition_boundaries: [\"*\"]\n  business_units: [\"*\"]",
    );
    attack.commit("erin: admin, everywhere");
    every_judge_and_the_record(&attack, "principals/erin.yaml", |judge, verdict| {
        assert_eq!(
            verdict.decision("chrome-131-finance"),
            "DENY",
            "{judge} let a principal's own commit widen who it is: {verdict:#?}"
        );
        assert!(
            verdict.fired("chrome-131-finance", "scope.cross_boundary"),
            "{judge}: {verdict:#?}"
        );
    });
}

/// The tenant policy in force denies Chrome for Finance (a browser
/// freeze); the attack deletes the rule in the same commit that edits the
/// intent.
#[test]
fn a_commit_cannot_remove_the_tenant_rule_that_denies_it() {
    let attack = Attack::on_base(|repo| {
        repo.write(
            "policies/browser_freeze.rego",
            "package ringmaster.tenant.freeze\n\nimport rego.v1\n\ndeny contains {\"rule\": \"contoso.browser_freeze\", \"message\": \"browsers are frozen for Finance\"} if {\n\tinput.application.id == \"google-chrome\"\n}\n",
        );
    });
    std::fs::remove_file(attack.repo.path.join("policies/browser_freeze.rego")).expect("rm");
    attack.repo.write(
        "policies/allow.rego",
        "package ringmaster.tenant.allow\n\nimport rego.v1\n\nallow := true\n",
    );
    attack.repo.edit(
        "intents/chrome-131-finance.yaml",
        "Monthly Chrome",
        "Urgent Chrome",
    );
    attack.commit("chrome: thaw the browser freeze");
    every_judge_and_the_record(&attack, "policies/browser_freeze.rego", |judge, verdict| {
        assert_eq!(
            verdict.decision("chrome-131-finance"),
            "DENY",
            "{judge} let the commit remove the tenant rule that judges it: {verdict:#?}"
        );
        assert!(
            verdict.fired("chrome-131-finance", "contoso.browser_freeze"),
            "{judge}: {verdict:#?}"
        );
    });
}
