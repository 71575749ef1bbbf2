//! End to end, with the real binary: a PR opened against a real Git
//! repository → `ringmaster/policy` pending with the comment → a qualifying
//! review → success → merge → the decision pack carries the review →
//! `ringmaster verify` passes.
//!
//! GitHub is the fake API (App authentication: a JWT from a key made by
//! `openssl`, installation tokens, check runs) plus a bare repository holding
//! `refs/pull/<n>/head`; webhooks are the recorded payloads, patched and
//! signed. Every wait is on a signal from the fake (a check run arrived),
//! bounded by a timeout that only turns a hang into a failure.

mod forge_support;

use forge_support::*;
use serde_json::Value;
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const OSQUERY: &str = "intents/osquery-6.0.0-it.yaml";

/// The daemon process; killed if the test fails half-way.
struct Daemon {
    child: Child,
    /// Its stderr lines, for failure messages.
    lines: mpsc::Receiver<String>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    fn start(args: &[String]) -> (Daemon, String) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ringmaster"))
            .args(args)
            .env("RINGMASTER_LOG", "ringmaster=info")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("daemon starts");
        let stderr = child.stderr.take().expect("stderr");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let daemon = Daemon { child, lines };
        let mut seen = Vec::new();
        loop {
            let line = daemon
                .lines
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("the daemon never said where it listens: {seen:#?}"));
            if let Some(address) = line.strip_prefix("ringmaster: listening on ") {
                return (daemon, address.trim().to_owned());
            }
            seen.push(line);
        }
    }

    fn log(&self) -> String {
        self.lines.try_iter().collect::<Vec<_>>().join("\n")
    }

    /// SIGTERM, then wait for a clean exit.
    fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let exit = self.child.wait().expect("daemon exits");
        assert!(exit.success(), "daemon exit: {exit:?}\n{}", self.log());
    }
}

fn ringmaster(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ringmaster"))
        .args(args)
        .output()
        .expect("ringmaster runs")
}

fn path(p: &Path) -> String {
    p.to_str().expect("utf-8 path").to_owned()
}

/// The decision packs on `repository`'s evidence branch.
fn decision_packs(repository: &Path) -> Vec<Value> {
    let git = |args: &[&str]| {
        let output = Command::new("git")
            .arg("--git-dir")
            .arg(repository)
            .args(args)
            .output()
            .expect("git");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    };
    let listing = String::from_utf8(git(&["ls-tree", "-r", "--name-only", "evidence"])).unwrap();
    listing
        .lines()
        .filter(|file| file.ends_with(".json"))
        .map(|file| {
            serde_json::from_slice::<Value>(&git(&["show", &format!("evidence:{file}")]))
                .expect("pack json")
        })
        .filter(|pack| pack["record_type"] == "decision")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_request_review_merge_and_verified_evidence() {
    let hosted = HostedRepo::sample_without(&[OSQUERY]);
    let osquery = {
        let (_, bytes) = ringmaster::sample::SAMPLE_REPO
            .iter()
            .find(|(p, _)| *p == OSQUERY)
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    };
    let files = tempfile::tempdir().unwrap();
    let output = ringmaster(&["keygen", "--out", &path(files.path())]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (private_key, public_key) = app_key_pair(files.path());
    std::fs::write(
        files.path().join("webhook.secret"),
        format!("{WEBHOOK_SECRET}\n"),
    )
    .unwrap();
    let github = FakeGitHub::start(
        OWNER,
        REPOSITORY,
        FakeAuth::App {
            app_id: 42,
            installation_id: 7,
            public_key_pem: public_key,
            token_lifetime: chrono::Duration::hours(1),
        },
    )
    .await;
    drop(private_key);
    let state = tempfile::tempdir().unwrap();
    let args: Vec<String> = [
        "serve",
        "--repo",
        &hosted.url,
        "--state",
        &path(state.path()),
        "--config",
        &path(&forge_support::sim_planes_config(state.path())),
        "--key",
        &path(&files.path().join("ringmaster.key")),
        "--listen",
        "127.0.0.1:0",
        "--github-repository",
        &format!("{OWNER}/{REPOSITORY}"),
        "--github-api-url",
        &github.url,
        "--github-app-id",
        "42",
        "--github-installation-id",
        "7",
        "--github-app-key-file",
        &path(&files.path().join("app.pem")),
        "--github-webhook-secret-file",
        &path(&files.path().join("webhook.secret")),
        "--poll-seconds",
        "3600",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (daemon, address) = Daemon::start(&args);
    let webhook_url = format!("{address}/webhooks/github");
    let http = reqwest::Client::new();
    let root = hosted.sha("main");

    // 1. The PR is opened: pending, with the comment.
    hosted.branch("pr-7").write(OSQUERY, &osquery);
    let head = hosted.commit_pull_request(7, "osquery 6.0.0 for IT");
    github.open_pull_request(7, "bokafor", "pr-7", &head, "main", &root);
    let opened = serde_json::to_vec(&pull_request_payload("opened", 7, &head, false)).unwrap();
    let (status, answer) = deliver(
        &http,
        &webhook_url,
        "pull_request",
        "delivery-1",
        &opened,
        WEBHOOK_SECRET,
    )
    .await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (202, Some("queued")),
        "{answer}"
    );
    github
        .wait_until("a pending check run on the PR head", |s| {
            s.check_runs
                .iter()
                .any(|r| r["head_sha"] == head.as_str() && r["status"] == "in_progress")
        })
        .await;
    let comment = the_comment(&github, 7);
    assert!(
        comment.contains("osquery-6.0.0-it`: **REQUIRE_APPROVAL**"),
        "{comment}"
    );
    assert!(
        comment.contains("**Blast radius**: 4380 device(s)"),
        "{comment}"
    );
    assert!(comment.contains("still needed: 1"), "{comment}");

    // 2. A qualifying review: success, the same comment edited.
    let review_id = github.review_at(7, "dkowalski", "APPROVED", &head, Some(chrono::Utc::now()));
    let reviewed =
        serde_json::to_vec(&review_payload("submitted", 7, review_id, "dkowalski")).unwrap();
    let (status, _) = deliver(
        &http,
        &webhook_url,
        "pull_request_review",
        "delivery-2",
        &reviewed,
        WEBHOOK_SECRET,
    )
    .await;
    assert_eq!(status, 202);
    github
        .wait_until("a successful check run on the PR head", |s| {
            s.check_runs
                .iter()
                .any(|r| r["head_sha"] == head.as_str() && r["conclusion"] == "success")
        })
        .await;
    let comment = the_comment(&github, 7);
    assert!(comment.contains("given by: @dkowalski (dave)"), "{comment}");
    assert_eq!(github.comments(7)[0]["edits"], 1);

    // 3. Merge: the push re-evaluates the merged commit with the review.
    let merge = hosted.merge("pr-7", 7);
    github.merge(7, &merge);
    let pushed = serde_json::to_vec(&push_payload("refs/heads/main", &merge)).unwrap();
    let closed = serde_json::to_vec(&pull_request_payload("closed", 7, &head, true)).unwrap();
    deliver(
        &http,
        &webhook_url,
        "push",
        "delivery-3",
        &pushed,
        WEBHOOK_SECRET,
    )
    .await;
    deliver(
        &http,
        &webhook_url,
        "pull_request",
        "delivery-4",
        &closed,
        WEBHOOK_SECRET,
    )
    .await;
    github
        .wait_until("the merged commit's check run", |s| {
            s.check_runs.iter().any(|r| r["head_sha"] == merge.as_str())
        })
        .await;
    let merged_runs = github.check_runs(&merge);
    assert_eq!(merged_runs.len(), 1, "{merged_runs:#?}");
    assert_eq!(merged_runs[0]["name"], "ringmaster/policy");
    assert_eq!(
        merged_runs[0]["conclusion"],
        "success",
        "{merged_runs:#?}\n{}",
        daemon.log()
    );
    daemon.stop();

    // 4. The evidence: the merged commit's decision carries the review.
    let packs = decision_packs(&hosted.bare);
    let pack = packs
        .iter()
        .find(|p| p["intent_id"] == "osquery-6.0.0-it" && p["source_commit"] == merge.as_str())
        .unwrap_or_else(|| panic!("a decision pack for osquery at the merge commit: {packs:#?}"));
    let body = &pack["body"];
    assert_eq!(body["decision"], "ALLOW");
    let forge = &body["forge"];
    assert_eq!(forge["provider"], "github");
    assert_eq!(forge["pull_request"]["number"], 7);
    assert_eq!(
        forge["pull_request"]["url"],
        "https://github.com/contoso/tenant/pull/7"
    );
    assert_eq!(forge["pull_request"]["head_commit"], head.as_str());
    assert_eq!(forge["pull_request"]["merge_commit"], merge.as_str());
    let counted = forge["counted_reviews"]
        .as_array()
        .expect("counted reviews");
    assert_eq!(counted.len(), 1, "{forge:#}");
    assert_eq!(counted[0]["review_id"], review_id);
    assert_eq!(counted[0]["login"], "dkowalski");
    assert_eq!(counted[0]["principal"], "dave");
    assert_eq!(counted[0]["commit_reviewed"], head.as_str());
    assert!(counted[0]["submitted_at"].is_string());
    let approval = body["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["counted"] == true)
        .expect("a counted approval");
    assert_eq!(approval["established_by"]["kind"], "pull_request_review");
    assert_eq!(approval["decided_by"], "dave");
    // Intents the merge did not touch were decided at the root and not again.
    assert!(
        packs
            .iter()
            .filter(|p| p["source_commit"] == merge.as_str())
            .all(|p| p["intent_id"] == "osquery-6.0.0-it")
    );
    assert!(packs.iter().any(
        |p| p["source_commit"] == root.as_str() && p["body"]["forge"]["pull_request"].is_null()
    ));

    // 5. `ringmaster verify` accepts the evidence branch GitHub now holds.
    let public_key = files.path().join("ringmaster.pub");
    let output = ringmaster(&[
        "verify",
        &path(&hosted.bare),
        "--public-key",
        &path(&public_key),
        "--state",
        &path(state.path()),
    ]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
