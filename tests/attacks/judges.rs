//! Bypass 1: several judges that disagreed. The PR check used to skip the
//! change-freeze validation that `validate` applies.

use crate::harness::{Attack, each_judge};

#[test]
fn a_broken_freeze_cron_fails_every_judge() {
    let attack = Attack::new();
    attack.repo.edit(
        "ringmaster.yaml",
        "cron: \"0 0 0 20 12 *\"",
        "cron: \"0 0 0 20 13 *\"",
    );
    attack.commit("freeze in the thirteenth month");
    each_judge(&attack, |judge, verdict| {
        assert!(
            verdict
                .errors
                .iter()
                .any(|e| e.starts_with("ringmaster.yaml:")),
            "{judge} accepted a freeze cron with a thirteenth month: {verdict:#?}"
        );
    });
}
