//! The safety net behind webhooks: GitHub never redelivers a failed
//! delivery, so open pull requests are polled, and deliveries stored before
//! a crash are handled after the restart.

mod forge_support;

use forge_support::*;
use ringmaster::forge::CheckState;
use ringmaster::forge::webhook::WebhookHint;
use ringmaster::store::Store;
use std::process::Command;

const OSQUERY: &str = "intents/osquery-6.0.0-it.yaml";

fn osquery() -> String {
    let (_, bytes) = ringmaster::sample::SAMPLE_REPO
        .iter()
        .find(|(p, _)| *p == OSQUERY)
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn the_poll_judges_pull_requests_no_webhook_announced_and_only_when_they_move() {
    let hosted = HostedRepo::sample_without(&[OSQUERY]);
    let github = FakeGitHub::start(OWNER, REPOSITORY, FakeAuth::Token(TOKEN.into())).await;
    let mirror = mirror(&hosted);
    let mut forge = token_forge(&github);
    let root = hosted.sha("main");
    hosted.branch("pr-7").write(OSQUERY, &osquery());
    let head = hosted.commit_pull_request(7, "osquery");
    github.open_pull_request(7, "bokafor", "pr-7", &head, "main", &root);

    let outcomes = forge
        .poll_pull_requests(&mirror.repo, now())
        .await
        .expect("poll");
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].state, Some(CheckState::Pending));
    assert_eq!(policy_status(&github, &head).unwrap().0, "pending");

    let before = github.api_requests();
    let outcomes = forge
        .poll_pull_requests(&mirror.repo, now())
        .await
        .expect("poll");
    assert!(outcomes.is_empty(), "nothing moved: {outcomes:?}");
    assert_eq!(
        github.api_requests() - before,
        1,
        "one list call when nothing moved"
    );

    github.review(7, "dkowalski", "APPROVED", &head);
    let outcomes = forge
        .poll_pull_requests(&mirror.repo, now())
        .await
        .expect("poll");
    assert_eq!(outcomes.len(), 1, "a review updates the PR");
    assert_eq!(outcomes[0].state, Some(CheckState::Success));

    github.merge(7, "0000000000000000000000000000000000000007");
    let outcomes = forge
        .poll_pull_requests(&mirror.repo, now())
        .await
        .expect("poll");
    assert!(outcomes.is_empty(), "closed PRs are not polled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_stored_before_a_restart_is_handled_after_it() {
    let hosted = HostedRepo::sample_without(&[OSQUERY]);
    let github = FakeGitHub::start(OWNER, REPOSITORY, FakeAuth::Token(TOKEN.into())).await;
    let root = hosted.sha("main");
    hosted.branch("pr-7").write(OSQUERY, &osquery());
    let head = hosted.commit_pull_request(7, "osquery");
    github.open_pull_request(7, "bokafor", "pr-7", &head, "main", &root);

    let keys = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_ringmaster"))
            .args(args)
            .env("RINGMASTER_GITHUB_TOKEN", TOKEN)
            .output()
            .expect("runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    run(&["keygen", "--out", keys.path().to_str().unwrap()]);
    // The receiver stored this delivery, then the daemon died before handling it.
    let database = state.path().join("ringmaster.db");
    let hint = WebhookHint::PullRequest {
        repository: format!("{OWNER}/{REPOSITORY}"),
        number: 7,
        action: "opened".into(),
        head_sha: head.clone(),
        base_ref: "main".into(),
        merged: false,
    };
    Store::open(&database)
        .unwrap()
        .record_delivery(
            "delivery-before-crash",
            "pull_request",
            &serde_json::to_value(&hint).unwrap(),
            now(),
        )
        .unwrap();

    tokio::task::block_in_place(|| {
        run(&[
            "serve",
            "--once",
            "--repo",
            &hosted.url,
            "--state",
            state.path().to_str().unwrap(),
            "--config",
            forge_support::sim_planes_config(state.path())
                .to_str()
                .unwrap(),
            "--key",
            keys.path().join("ringmaster.key").to_str().unwrap(),
            "--github-repository",
            "contoso/tenant",
            "--github-api-url",
            &github.url,
        ])
    });
    assert!(
        Store::open(&database)
            .unwrap()
            .unprocessed_deliveries()
            .unwrap()
            .is_empty()
    );
    assert_eq!(policy_status(&github, &head).unwrap().0, "pending");
    assert_eq!(github.comments(7).len(), 1);
}
