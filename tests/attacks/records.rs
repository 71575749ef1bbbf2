//! Approvals and exceptions bound to what they approved (bypass 4 and the
//! exception half of "identities and bindings are unique").

use crate::harness::{Attack, each_judge};

/// Bypass 4: Carol approved GlobalProtect 6.2.1 with its rollback plan as it
/// was; the publisher then swaps the rollback plan and keeps her record.
#[test]
fn an_approval_does_not_survive_an_edit_of_what_it_approved() {
    let attack = Attack::new();
    attack.repo.edit(
        "intents/vpn-6.2.1-finance.yaml",
        "strategy: intune-supersedence",
        "strategy: redeploy-previous",
    );
    attack.commit("vpn: another rollback strategy, same approval");
    each_judge(&attack, |judge, verdict| {
        assert_eq!(
            verdict.decision("vpn-6.2.1-finance"),
            "REQUIRE_APPROVAL",
            "{judge} kept an approval of other content: {verdict:#?}"
        );
        assert!(
            verdict.fired("vpn-6.2.1-finance", "cab.approval_stale"),
            "{judge}: {verdict:#?}"
        );
    });
}

/// Bypass 4, the version: the same intent id now deploys another version.
#[test]
fn an_approval_does_not_survive_a_new_version_under_the_same_intent() {
    let attack = Attack::new();
    let intent = attack.repo.read("intents/vpn-6.2.1-finance.yaml");
    let old_version = attack.repo.read("apps/globalprotect-vpn/6.2.0.yaml");
    let old_hash = old_version
        .lines()
        .find_map(|l| l.trim().strip_prefix("sha256: "))
        .expect("the 6.2.0 artifact has a hash")
        .trim_matches('"')
        .to_owned();
    let new_hash = intent
        .lines()
        .find_map(|l| l.strip_prefix("artifact_hash: "))
        .expect("artifact hash")
        .trim_matches('"')
        .to_owned();
    attack.repo.write(
        "intents/vpn-6.2.1-finance.yaml",
        &intent
            .replace("version: \"6.2.1\"", "version: \"6.2.0\"")
            .replace(&new_hash, &old_hash)
            .replace("rollback_version: \"6.2.0\"", "rollback_version: \"6.2.1\""),
    );
    attack.commit("vpn: roll 6.2.0 under the approved intent");
    each_judge(&attack, |judge, verdict| {
        assert_ne!(
            verdict.decision("vpn-6.2.1-finance"),
            "ALLOW",
            "{judge} let an approval of 6.2.1 approve 6.2.0: {verdict:#?}"
        );
        assert!(
            verdict.fired("vpn-6.2.1-finance", "cab.approval_stale"),
            "{judge}: {verdict:#?}"
        );
    });
}

/// "Exceptions bind to the artifact's sha256": the benefits package is
/// rebuilt under the same artifact id; its unsigned-package exception was
/// granted for the old binary.
#[test]
fn a_swapped_binary_under_the_same_artifact_id_loses_its_exception() {
    let attack = Attack::new();
    let swapped = "sha256:5555555555555555555555555555555555555555555555555555555555555555";
    attack.repo.edit(
        "apps/contoso-benefits/3.4.2.yaml",
        "sha256:422c9a180b45315587577a91c82fe3469ebe545fab63bbb970a8d47e6c0f8701",
        swapped,
    );
    attack.repo.edit(
        "intents/benefits-3.4.2-hr.yaml",
        "sha256:422c9a180b45315587577a91c82fe3469ebe545fab63bbb970a8d47e6c0f8701",
        swapped,
    );
    attack.commit("benefits: new build, same id");
    each_judge(&attack, |judge, verdict| {
        assert_eq!(
            verdict.decision("benefits-3.4.2-hr"),
            "REQUIRE_EXCEPTION",
            "{judge} kept the exception for another binary: {verdict:#?}"
        );
        assert!(
            verdict.fired("benefits-3.4.2-hr", "exception.artifact_changed"),
            "{judge}: {verdict:#?}"
        );
    });
}
