//! "Identities are unique": a second principal with the requester's e-mail
//! or forge login is a diagnostic, not a way to approve for them.

use crate::harness::{Attack, each_judge};

#[test]
fn a_twin_principal_with_anothers_email_or_login_is_refused() {
    let attack = Attack::new();
    attack.repo.write(
        "principals/alice2.yaml",
        "apiVersion: ringmaster.dev/v1
kind: Principal
id: alice2
email: Alice.Nakamura@contoso.com
forge_login: ANakamura
roles:
  - cab-approver
scope:
  acquisition_boundaries: [acq-001]
  business_units: [bu-finance]
",
    );
    attack.commit("a second alice who may approve");
    each_judge(&attack, |judge, verdict| {
        assert!(
            verdict.has_error("principals/alice2.yaml: email"),
            "{judge}: {verdict:#?}"
        );
        assert!(
            verdict.has_error("principals/alice2.yaml: forge_login"),
            "{judge}: {verdict:#?}"
        );
    });
}
