//! Unknown YAML tags are refused with file:line, not silently dropped: a
//! tag on a governed value (`!custom`, `!!python/object`, `!!binary`)
//! could mean something to another YAML reader and nothing to ringmaster.

use crate::harness::{Attack, NOW, each_judge};

#[test]
fn a_tagged_value_is_refused_by_every_judge_with_its_line() {
    let attack = Attack::new();
    let path = "intents/chrome-131-finance.yaml";
    attack.repo.edit(
        path,
        "  business_unit: bu-finance",
        "  business_unit: !custom bu-finance",
    );
    attack.repo.edit(
        "intents/zoom-6.3.0-finance.yaml",
        "kind: DeploymentIntent",
        "kind: !!python/object:os.system DeploymentIntent",
    );
    attack.commit("tag two values");
    each_judge(&attack, |judge, verdict| {
        for (file, tag) in [
            (path, "!custom"),
            (
                "intents/zoom-6.3.0-finance.yaml",
                "!!python/object:os.system",
            ),
        ] {
            let expected = format!("{file}: invalid YAML: YAML tag {tag} is not allowed");
            assert!(
                verdict.errors.iter().any(|e| e.starts_with(&expected)),
                "{judge} did not refuse {tag} in {file}: {verdict:#?}"
            );
        }
    });
    let output = crate::support::ringmaster(
        &["validate", ".", "--rev", "attack", "--now", NOW],
        &attack.repo.path,
    );
    let shown = crate::support::stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{shown}");
    let line = attack
        .repo
        .read(path)
        .lines()
        .position(|l| l.contains("!custom"))
        .expect("tagged line")
        + 1;
    assert!(
        shown.contains(&format!("{path}:{line}:")),
        "validate does not point at {path}:{line}: {shown}"
    );
}
