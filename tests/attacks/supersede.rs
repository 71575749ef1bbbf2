//! Bypass 9: `supersedes` acted before policy. An intent may end another
//! run only when it is of the same application, the other intent's target
//! is inside its publisher's scope, and it is not itself DENY.

use crate::harness::{Attack, each_judge};

/// Erin (a Fabrikam publisher, acq-002) writes a GlobalProtect intent for
/// Contoso Finance — DENY, across the boundary — that supersedes Finance's
/// own rollout; and her 7-Zip intent (ALLOW, her own segment) supersedes it
/// too. Neither may touch vpn-6.2.1-finance.
#[test]
fn a_denied_or_foreign_intent_cannot_end_another_teams_rollout() {
    let attack = Attack::new();
    let vpn = attack.repo.read("intents/vpn-6.2.1-finance.yaml");
    attack.repo.write(
        "intents/vpn-takeover.yaml",
        &vpn.replace("intent_id: vpn-6.2.1-finance", "intent_id: vpn-takeover")
            .replace("requested_by: alice", "requested_by: erin")
            .replace(
                "requested_by: erin",
                "requested_by: erin\nsupersedes: vpn-6.2.1-finance",
            ),
    );
    attack.repo.edit(
        "intents/7zip-25.1.0-engineering.yaml",
        "requested_by: erin",
        "requested_by: erin\nsupersedes: vpn-6.2.1-finance",
    );
    attack.commit("erin supersedes finance's VPN rollout");
    each_judge(&attack, |judge, verdict| {
        assert_eq!(
            verdict.decision("vpn-takeover"),
            "DENY",
            "{judge}: {verdict:#?}"
        );
        for intent in ["vpn-takeover", "7zip-25.1.0-engineering"] {
            assert_eq!(
                verdict.supersedes.get(intent).cloned().flatten(),
                None,
                "{judge} let {intent} end vpn-6.2.1-finance: {verdict:#?}"
            );
        }
        assert!(
            verdict.has_warning("supersedes \"vpn-6.2.1-finance\" has no effect"),
            "{judge} did not say the supersede has no effect: {verdict:#?}"
        );
        // The PR check reports only the intents a change affects.
        assert!(
            ["ALLOW", "(not judged)"].contains(&verdict.decision("vpn-6.2.1-finance")),
            "{judge}: the victim's decision moved: {verdict:#?}"
        );
    });
}

/// The legitimate case still works: Finance's own publisher supersedes its
/// own rollout with the next intent of the same application.
#[test]
fn a_publisher_supersedes_their_own_intent_of_the_same_application() {
    let attack = Attack::new();
    let vpn = attack.repo.read("intents/vpn-6.2.1-finance.yaml");
    attack.repo.write(
        "intents/vpn-6.2.1-finance-b.yaml",
        &vpn.replace(
            "intent_id: vpn-6.2.1-finance",
            "intent_id: vpn-6.2.1-finance-b",
        )
        .replace(
            "requested_by: alice",
            "requested_by: alice\nsupersedes: vpn-6.2.1-finance",
        ),
    );
    attack.commit("alice replaces her own rollout");
    each_judge(&attack, |judge, verdict| {
        assert_eq!(
            verdict
                .supersedes
                .get("vpn-6.2.1-finance-b")
                .cloned()
                .flatten(),
            Some("vpn-6.2.1-finance".to_owned()),
            "{judge}: {verdict:#?}"
        );
        assert!(
            !verdict.fired("vpn-6.2.1-finance-b", "concurrency.one_active_change"),
            "{judge}: {verdict:#?}"
        );
    });
}
