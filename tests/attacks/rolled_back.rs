//! Bypass 7: `version.rolled_back` could never fire. A version a run rolled
//! back is re-proposed under a new intent id; every judge that has the
//! daemon's runtime facts refuses it: `validate --state` (the daemon's state
//! directory), the PR check the daemon runs (its store's facts) and the
//! daemon itself. Static `validate` without `--state` knows no runtime and
//! says ALLOW: the one documented difference (docs/governance.md).

use crate::harness::{Attack, daemon_config, now, read_daemon, verdict_of_check};
use chrono::Duration;
use ringmaster::daemon::Daemon;
use ringmaster::daemon::process::StoreFacts;
use ringmaster::daemon::rollout::IntentState;
use ringmaster::model::Plane;
use ringmaster::orchestrator::Phase;

const CHROME: &str = "chrome-131-finance";
const AGAIN: &str = "chrome-131-finance-again";

fn phase(daemon: &Daemon, intent: &str) -> Option<Phase> {
    let record = daemon.store().get_intent(intent).expect("store")?;
    IntentState::from_record(&record).run.map(|run| run.phase)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rolled_back_version_re_proposed_is_refused_by_every_judge_with_runtime_facts() {
    let attack = Attack::new();
    let config = daemon_config(&attack.repo);
    let state = config.state_dir.clone();
    let mut daemon = Daemon::open(config).expect("daemon");

    // Chrome 131 fails its canary gate and rolls back.
    let mut at = now();
    daemon.step(at).await.expect("step");
    daemon
        .planes()
        .and_then(|planes| planes.sim(Plane::Intune))
        .expect("simulated intune")
        .set_success_rate("google-chrome", "131.0.6778", 0.2)
        .expect("rate");
    let limit = at + Duration::days(6);
    while !matches!(phase(&daemon, CHROME), Some(Phase::RolledBack { .. })) {
        assert!(
            at < limit,
            "chrome never rolled back: {:?}",
            phase(&daemon, CHROME)
        );
        at += Duration::hours(2);
        daemon.step(at).await.expect("step");
    }

    // The same version again, under another intent id.
    let original = attack.repo.read("intents/chrome-131-finance.yaml");
    std::fs::remove_file(attack.repo.path.join("intents/chrome-131-finance.yaml")).expect("rm");
    attack.repo.write(
        &format!("intents/{AGAIN}.yaml"),
        &original.replace(
            "intent_id: chrome-131-finance",
            &format!("intent_id: {AGAIN}"),
        ),
    );
    attack.commit("chrome 131 again, under a fresh id");

    let state_arg = state.to_str().expect("utf-8 path");
    let with_state = attack.validate_with(&["--state", state_arg]);
    let facts = StoreFacts::read(daemon.store()).expect("facts");
    let pr_check = verdict_of_check(&attack.pr_check_with_runtime(&[], &facts));
    let without_state = attack.validate();
    for (judge, verdict) in [
        ("validate --state", &with_state),
        ("the PR check", &pr_check),
    ] {
        assert_eq!(verdict.decision(AGAIN), "DENY", "{judge}: {verdict:#?}");
        assert!(
            verdict.fired(AGAIN, "version.rolled_back"),
            "{judge}: {verdict:#?}"
        );
    }
    assert_eq!(
        without_state.decision(AGAIN),
        "ALLOW",
        "static validation has no runtime facts (the documented difference): {without_state:#?}"
    );

    // The daemon: the re-proposal pushed onto main.
    attack.repo.git(&["checkout", "-q", "main"]);
    attack.repo.git(&["merge", "-q", "--ff-only", "attack"]);
    daemon.step(at + Duration::minutes(5)).await.expect("step");
    let verdict = read_daemon(&attack.repo, &daemon);
    assert_eq!(verdict.decision(AGAIN), "DENY", "the daemon: {verdict:#?}");
    assert!(
        verdict.fired(AGAIN, "version.rolled_back"),
        "the daemon: {verdict:#?}"
    );
    let intune = daemon
        .planes()
        .and_then(|planes| planes.sim(Plane::Intune))
        .expect("simulated intune");
    assert_eq!(
        intune.assignment_count(&ringmaster::store::correlation_id_for(AGAIN)),
        0,
        "the refused version reached no device: {:?}",
        phase(&daemon, AGAIN)
    );
}
