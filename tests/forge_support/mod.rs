//! Shared harness of the forge tests: a fake GitHub API, GitHub-hosted Git
//! repositories, signed webhook deliveries from the recorded payloads, and
//! an App key pair made by the real `openssl`.

#![allow(dead_code)]

/// The contract recorder of the conformance suite: every request ringmaster
/// sends to the fake, checked against GitHub's OpenAPI description.
#[path = "../conformance/contract.rs"]
pub mod contract;
pub mod fake_github;
mod fake_routes;
pub mod repos;

#[allow(unused_imports)]
pub use fake_github::{FakeAuth, FakeGitHub, Scripted, review_time};
pub use repos::HostedRepo;

use chrono::{DateTime, TimeZone, Utc};
use ringmaster::forge::signature;
use ringmaster::forge::{
    Forge, GitHubAuth, GitHubClient, GitHubSettings, GitHubToken, WebhookSecret,
};
use ringmaster::source::GovernedRepo;
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;

pub const OWNER: &str = "contoso";
pub const REPOSITORY: &str = "tenant";
pub const TOKEN: &str = "ghp_test_token";
pub const WEBHOOK_SECRET: &str = "It's a Secret to Everybody";

/// The instant the checks judge at: the sample's approvals and live
/// exception are valid, and so are reviews from [`review_time`].
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap()
}

pub fn fixed_clock() -> ringmaster::forge::Clock {
    Arc::new(now)
}

/// A recorded payload from `tests/fixtures/github/`.
pub fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/github/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("fixture json")
}

pub fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/github/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture")
}

/// `pull_request` delivery for our repository: the recorded payload, patched.
pub fn pull_request_payload(action: &str, number: u64, head_sha: &str, merged: bool) -> Value {
    let mut payload = fixture("pull_request.opened.0.json");
    payload["action"] = action.into();
    payload["number"] = number.into();
    payload["pull_request"]["number"] = number.into();
    payload["pull_request"]["head"]["sha"] = head_sha.into();
    payload["pull_request"]["base"]["ref"] = "main".into();
    payload["pull_request"]["merged"] = merged.into();
    payload["repository"]["full_name"] = format!("{OWNER}/{REPOSITORY}").into();
    payload
}

/// `pull_request_review` delivery for our repository.
pub fn review_payload(action: &str, number: u64, review_id: u64, login: &str) -> Value {
    let mut payload = fixture("pull_request_review.submitted.0.json");
    payload["action"] = action.into();
    payload["review"]["id"] = review_id.into();
    payload["review"]["user"]["login"] = login.into();
    payload["pull_request"]["number"] = number.into();
    payload["repository"]["full_name"] = format!("{OWNER}/{REPOSITORY}").into();
    payload
}

/// `push` delivery for our repository.
pub fn push_payload(reference: &str, after: &str) -> Value {
    let mut payload = fixture("push.event.0.json");
    payload["ref"] = reference.into();
    payload["after"] = after.into();
    payload["repository"]["full_name"] = format!("{OWNER}/{REPOSITORY}").into();
    payload
}

/// Posts a delivery signed as GitHub would; returns the status and body.
pub async fn deliver(
    client: &reqwest::Client,
    url: &str,
    event: &str,
    delivery_id: &str,
    body: &[u8],
    secret: &str,
) -> (u16, Value) {
    let signature = signature::sign(&WebhookSecret::new(secret), body);
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-github-delivery", delivery_id)
        .header("x-hub-signature-256", signature)
        .body(body.to_vec())
        .send()
        .await
        .expect("delivery sent");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// An RSA key pair for a GitHub App, made by the real `openssl`: (private PEM, public PEM).
pub fn app_key_pair(dir: &Path) -> (String, String) {
    let private = dir.join("app.pem");
    let public = dir.join("app.pub.pem");
    let run = |args: &[&str]| {
        let output = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl runs");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    run(&[
        "genrsa",
        "-traditional",
        "-out",
        private.to_str().unwrap(),
        "2048",
    ]);
    run(&[
        "rsa",
        "-in",
        private.to_str().unwrap(),
        "-pubout",
        "-out",
        public.to_str().unwrap(),
    ]);
    (
        std::fs::read_to_string(private).unwrap(),
        std::fs::read_to_string(public).unwrap(),
    )
}

pub fn token_settings(github: &FakeGitHub) -> GitHubSettings {
    GitHubSettings {
        api_base_url: github.url.clone(),
        owner: OWNER.into(),
        repository: REPOSITORY.into(),
        auth: GitHubAuth::Token(GitHubToken::new(TOKEN)),
    }
}

/// A daemon-side view of a hosted repository: its mirror, as remote mode keeps it.
pub struct Mirror {
    _dir: tempfile::TempDir,
    pub repo: GovernedRepo,
}

pub fn mirror(hosted: &HostedRepo) -> Mirror {
    let dir = tempfile::tempdir().expect("mirror dir");
    let path = dir.path().join("mirror.git");
    ringmaster::source::remote::open_mirror(&hosted.url, &path, "main").expect("mirror");
    let repo = GovernedRepo::open(&path).expect("open mirror");
    Mirror { _dir: dir, repo }
}

/// A forge connected to the fake with a token (commit statuses), tracking main.
pub fn token_forge(github: &FakeGitHub) -> Forge {
    let client = GitHubClient::new(&token_settings(github), fixed_clock()).expect("client");
    Forge::new(Arc::new(client), "main", true)
}

/// The latest `ringmaster/policy` commit status for `sha`: (state, description).
pub fn policy_status(github: &FakeGitHub, sha: &str) -> Option<(String, String)> {
    github
        .statuses(sha)
        .into_iter()
        .rfind(|s| s["context"] == "ringmaster/policy")
        .map(|s| {
            (
                s["state"].as_str().unwrap_or_default().to_owned(),
                s["description"].as_str().unwrap_or_default().to_owned(),
            )
        })
}

/// The body of ringmaster's one comment on PR `number`.
pub fn the_comment(github: &FakeGitHub, number: u64) -> String {
    let comments = github.comments(number);
    assert_eq!(comments.len(), 1, "exactly one comment: {comments:#?}");
    comments[0]["body"].as_str().unwrap().to_owned()
}

/// Writes a daemon config in `dir` that runs every plane of the sample tenant
/// on the simulated fleet, explicitly (`type: sim`): `serve` refuses to start
/// with a plane that has no connector. Returns its path, for `--config`.
pub fn sim_planes_config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("ringmaster-daemon.yaml");
    std::fs::write(
        &path,
        "planes:\n  intune: {type: sim}\n  jamf: {type: sim}\n  sccm: {type: sim}\n  landscape: {type: sim}\n  ansible: {type: sim}\n",
    )
    .expect("write the daemon config");
    path
}

/// The digest an approval of a sample intent carries (`intent_sha256`).
pub fn sample_intent_sha256(intent: &str) -> String {
    let entries: Vec<ringmaster::model::Entry> = ringmaster::sample::SAMPLE_REPO
        .iter()
        .map(|(path, bytes)| ringmaster::model::Entry::file(*path, bytes.to_vec()))
        .collect();
    let (snapshot, _) = ringmaster::model::load(&entries);
    ringmaster::model::digest::intent_sha256(&snapshot, &snapshot.intents[intent])
}
