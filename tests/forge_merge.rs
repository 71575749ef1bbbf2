//! Merged commits judged again with their pull request's reviews: only an
//! approval of the exact head that merged counts, it stays with the intent
//! on later commits until the intent changes, a direct push cannot bring its
//! own approval record, and `serve --once` records the forge facts in the
//! evidence that `verify` accepts.

mod forge_support;

use forge_support::*;
use git2::Oid;
use ringmaster::evaluation::NoRuntime;
use ringmaster::forge::merge::{MergeFacts, MergedPullRequest};
use ringmaster::forge::wire::{Review, User};
use ringmaster::forge::{evaluate_commit, review::Standing};
use ringmaster::policy::Decision;
use ringmaster::source::GovernedRepo;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const OSQUERY: &str = "intents/osquery-6.0.0-it.yaml";
const VPN: &str = "intents/vpn-6.2.1-finance.yaml";
const VPN_APPROVAL: &str = "approvals/cab-2026-0142.yaml";

fn sample_file(path: &str) -> String {
    let (_, bytes) = ringmaster::sample::SAMPLE_REPO
        .iter()
        .find(|(p, _)| *p == path)
        .expect("sample file");
    String::from_utf8(bytes.to_vec()).expect("utf-8")
}

fn approval(id: u64, login: &str, commit: &str) -> Review {
    Review {
        id,
        user: Some(User {
            login: login.into(),
        }),
        state: "APPROVED".into(),
        commit_id: Some(commit.into()),
        submitted_at: Some(review_time(id)),
        html_url: None,
    }
}

/// The osquery decision at `merge` with `reviews` on PR 7 whose head was `head`.
fn osquery_at_merge(
    hosted: &HostedRepo,
    head: &str,
    merge: &str,
    reviews: Vec<Review>,
) -> (Decision, Value) {
    let repo = GovernedRepo::open(&hosted.clone).expect("repo");
    let merge_oid = Oid::from_str(merge).unwrap();
    let parent = repo
        .repository
        .find_commit(merge_oid)
        .unwrap()
        .parent_id(0)
        .unwrap();
    let (base, _) = ringmaster::model::load(&repo.entries_at(parent).unwrap());
    let facts = MergeFacts {
        repository: "contoso/tenant".into(),
        pull_request: Some(MergedPullRequest {
            number: 7,
            url: None,
            author: "bokafor".into(),
            head_sha: head.into(),
            merge_commit_sha: merge.into(),
            merged_at: None,
        }),
        reviews,
        carried: Vec::new(),
        provenance: Default::default(),
    };
    let entries = repo.entries_at(merge_oid).unwrap();
    let (judgement, evidence) = evaluate_commit(ringmaster::forge::merge::CommitCase {
        entries: &entries,
        rules: None,
        identities: None,
        base: Some(&base),
        previous: Some(&base),
        history: &ringmaster::judge::NO_HISTORY,
        provenance: Some(&facts.provenance),
        facts: Some(&facts),
        runtime: &NoRuntime,
        now: now(),
    });
    let evaluation = judgement.evaluation;
    let osquery = evaluation
        .intents
        .iter()
        .find(|i| i.intent_id == "osquery-6.0.0-it")
        .expect("osquery judged");
    (osquery.decision(), evidence.for_intent(osquery))
}

#[test]
fn only_an_approval_of_the_head_that_merged_counts_at_merge() {
    let hosted = HostedRepo::sample_without(&[OSQUERY]);
    hosted.branch("pr-7").write(OSQUERY, &sample_file(OSQUERY));
    let first = hosted.commit_pull_request(7, "osquery");
    hosted.edit(OSQUERY, "Needs CAB", "Really needs CAB");
    let head = hosted.commit_pull_request(7, "wording");
    let merge = hosted.merge("pr-7", 7);

    let (decision, forge) = osquery_at_merge(
        &hosted,
        &head,
        &merge,
        vec![approval(1, "dkowalski", &first)],
    );
    assert_eq!(decision, Decision::RequireApproval, "{forge:#}");
    assert_eq!(forge["counted_reviews"], Value::Array(vec![]));
    assert_eq!(
        forge["reviews"][0]["standing"],
        serde_json::to_value(Standing::Stale).unwrap()
    );

    let (decision, forge) = osquery_at_merge(
        &hosted,
        &head,
        &merge,
        vec![approval(2, "dkowalski", &head)],
    );
    assert_eq!(decision, Decision::Allow, "{forge:#}");
    assert_eq!(forge["counted_reviews"][0]["login"], "dkowalski");
    assert_eq!(forge["counted_reviews"][0]["principal"], "dave");
    assert_eq!(
        forge["counted_reviews"][0]["commit_reviewed"],
        head.as_str()
    );
    assert_eq!(forge["pull_request"]["merge_commit"], merge.as_str());
}

#[tokio::test]
async fn merge_facts_name_the_merged_pull_request_and_its_reviews() {
    let github = FakeGitHub::start(OWNER, REPOSITORY, FakeAuth::Token(TOKEN.into())).await;
    github.open_pull_request(7, "bokafor", "pr-7", "head7", "main", "base");
    github.open_pull_request(8, "bokafor", "pr-8", "head8", "main", "base");
    github.review(7, "dkowalski", "APPROVED", "head7");
    github.merge(7, "merge7");
    let forge = token_forge(&github);
    let facts = forge.merge_facts("merge7").await.expect("facts");
    let pull_request = facts.pull_request.expect("the merged PR");
    assert_eq!(
        (pull_request.number, pull_request.head_sha.as_str()),
        (7, "head7")
    );
    assert_eq!(
        pull_request.url.as_deref(),
        Some("https://github.com/contoso/tenant/pull/7")
    );
    assert_eq!(facts.reviews.len(), 1);
    // A commit that is only some PR's (unmerged) head is not a merge.
    let facts = forge.merge_facts("head8").await.expect("facts");
    assert!(facts.pull_request.is_none());
    assert!(facts.reviews.is_empty());
}

fn ringmaster(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ringmaster"))
        .args(args)
        .env("RINGMASTER_GITHUB_TOKEN", TOKEN)
        .output()
        .expect("ringmaster runs")
}

fn path(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

/// The decision packs (not rollout records) made for `commit`.
fn packs_at(repository: &Path, commit: &str) -> Vec<Value> {
    let git = |args: &[&str]| {
        let output = Command::new("git")
            .arg("--git-dir")
            .arg(repository)
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    };
    String::from_utf8(git(&["ls-tree", "-r", "--name-only", "evidence"]))
        .unwrap()
        .lines()
        .filter(|f| f.ends_with(".json"))
        .map(|f| {
            serde_json::from_slice::<Value>(&git(&["show", &format!("evidence:{f}")])).unwrap()
        })
        .filter(|p| p["source_commit"] == commit && p["record_type"] == "decision")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_once_records_the_pr_carries_its_approval_and_refuses_a_pushed_record() {
    let hosted = HostedRepo::sample_without(&[OSQUERY, VPN, VPN_APPROVAL]);
    let github = FakeGitHub::start(OWNER, REPOSITORY, FakeAuth::Token(TOKEN.into())).await;
    let keys = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    assert!(
        ringmaster(&["keygen", "--out", &path(keys.path())])
            .status
            .success()
    );
    let serve_once = || {
        let output = ringmaster(&[
            "serve",
            "--once",
            "--repo",
            &hosted.url,
            "--state",
            &path(state.path()),
            "--config",
            &path(&forge_support::sim_planes_config(state.path())),
            "--key",
            &path(&keys.path().join("ringmaster.key")),
            "--github-repository",
            "contoso/tenant",
            "--github-api-url",
            &github.url,
        ]);
        assert!(
            output.status.success(),
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let root = hosted.sha("main");
    let github_for_thread = &github;
    tokio::task::block_in_place(serve_once);
    // The sample's build agent waits for an exception: the root commit is pending.
    assert_eq!(
        policy_status(github_for_thread, &root)
            .map(|s| s.0)
            .as_deref(),
        Some("pending")
    );

    // PR 7 adds osquery; Dave approves its head; it merges.
    hosted.branch("pr-7").write(OSQUERY, &sample_file(OSQUERY));
    let head = hosted.commit_pull_request(7, "osquery");
    github.open_pull_request(7, "bokafor", "pr-7", &head, "main", &root);
    github.review_at(7, "dkowalski", "APPROVED", &head, Some(chrono::Utc::now()));
    let merge = hosted.merge("pr-7", 7);
    github.merge(7, &merge);
    // Then someone pushes the VPN intent with an approval record straight to main.
    hosted
        .write(VPN, &sample_file(VPN))
        .write(VPN_APPROVAL, &sample_file(VPN_APPROVAL));
    hosted.git(&["add", "-A"]);
    hosted.git(&["commit", "-q", "-m", "vpn, approved (says the file)"]);
    hosted.git(&["push", "-q", "origin", "main"]);
    let pushed = hosted.sha("main");
    tokio::task::block_in_place(serve_once);

    let merged = packs_at(&hosted.bare, &merge);
    assert_eq!(merged.len(), 1, "{merged:#?}");
    assert_eq!(merged[0]["body"]["decision"], "ALLOW");
    assert_eq!(merged[0]["body"]["forge"]["pull_request"]["number"], 7);
    assert_eq!(
        merged[0]["body"]["forge"]["counted_reviews"][0]["principal"],
        "dave"
    );
    assert_eq!(
        policy_status(&github, &merge).map(|s| s.0).as_deref(),
        Some("success"),
        "{:#?}",
        github.statuses(&merge)
    );

    let direct = packs_at(&hosted.bare, &pushed);
    assert!(
        direct.iter().all(|p| p["intent_id"] != "osquery-6.0.0-it"),
        "the review approval is carried to later commits while osquery is unchanged: {direct:#?}"
    );
    let vpn = direct
        .iter()
        .find(|p| p["intent_id"] == "vpn-6.2.1-finance")
        .expect("a vpn decision");
    assert_eq!(vpn["body"]["decision"], "REQUIRE_APPROVAL", "{vpn:#}");
    assert!(vpn["body"]["forge"]["pull_request"].is_null());
    assert_eq!(
        vpn["body"]["forge"]["uncorroborated_records"][0]["id"],
        "cab-2026-0142"
    );
    assert_eq!(
        policy_status(&github, &pushed).map(|s| s.0).as_deref(),
        Some("pending")
    );

    // Editing what the approved intent does (its rollback plan) ends the
    // approval: it needs a new one.
    hosted.edit(
        OSQUERY,
        "validation_date: \"2026-11-24T10:00:00Z\"",
        "validation_date: \"2026-11-25T10:00:00Z\"",
    );
    hosted.git(&["commit", "-q", "-am", "edit osquery without review"]);
    hosted.git(&["push", "-q", "origin", "main"]);
    let edited = hosted.sha("main");
    tokio::task::block_in_place(serve_once);
    let packs = packs_at(&hosted.bare, &edited);
    assert_eq!(packs.len(), 1, "{packs:#?}");
    assert_eq!(packs[0]["intent_id"], "osquery-6.0.0-it");
    assert_eq!(packs[0]["body"]["decision"], "REQUIRE_APPROVAL");

    let output = ringmaster(&[
        "verify",
        &path(&hosted.bare),
        "--public-key",
        &path(&keys.path().join("ringmaster.pub")),
    ]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[tokio::test]
async fn a_records_provenance_is_the_commit_that_put_it_there() {
    let hosted = HostedRepo::sample_without(&[OSQUERY]);
    let github = FakeGitHub::start(OWNER, REPOSITORY, FakeAuth::Token(TOKEN.into())).await;
    let root = hosted.sha("main");
    let record = |id: &str| {
        format!(
            "apiVersion: ringmaster.dev/v1\nkind: ApprovalRecord\napproval_id: {id}\ndeployment_intent_id: osquery-6.0.0-it\ndecision: approved\ndecided_by: dave\ndecided_at: 2026-11-27T10:00:00Z\nexpiry: 2099-12-31T00:00:00Z\njustification: reviewed\n"
        )
    };
    hosted
        .branch("pr-7")
        .write("approvals/cab-via-pr.yaml", &record("cab-via-pr"));
    let head = hosted.commit_pull_request(7, "approval record");
    github.open_pull_request(7, "bokafor", "pr-7", &head, "main", &root);
    github.review(7, "dkowalski", "APPROVED", &head);
    let merge = hosted.merge("pr-7", 7);
    github.merge(7, &merge);
    hosted.write("approvals/cab-pushed.yaml", &record("cab-pushed"));
    hosted.git(&["add", "-A"]);
    hosted.git(&["commit", "-q", "-m", "pushed record"]);
    hosted.write(
        "intents/unrelated.txt",
        "later commits do not change where records came from",
    );
    hosted.git(&["add", "-A"]);
    hosted.git(&["commit", "-q", "-m", "later"]);

    let repo = GovernedRepo::open(&hosted.clone).unwrap();
    let forge = token_forge(&github);
    let tip = Oid::from_str(&hosted.sha("main")).unwrap();
    let provenance = forge
        .record_provenance(&repo, tip, None)
        .await
        .expect("provenance");
    use ringmaster::forge::provenance::RecordProvenance;
    assert_eq!(
        provenance["approvals/cab-2026-0142.yaml"],
        RecordProvenance::Bootstrap
    );
    assert_eq!(
        provenance["approvals/cab-via-pr.yaml"],
        RecordProvenance::PullRequest {
            number: 7,
            approving_logins: vec!["dkowalski".into()],
            signatures: provenance_signatures(&provenance["approvals/cab-via-pr.yaml"]),
        }
    );
    let keys = ringmaster::authority::KeyRing::default();
    assert!(
        provenance["approvals/cab-via-pr.yaml"]
            .vouches_for(Some("DKowalski"), "dkowalski", &keys)
            .is_ok()
    );
    assert!(
        provenance["approvals/cab-via-pr.yaml"]
            .vouches_for(Some("cjensen"), "cjensen", &keys)
            .is_err()
    );
    assert!(matches!(
        provenance["approvals/cab-pushed.yaml"],
        RecordProvenance::DirectPush { .. }
    ));
    assert!(
        provenance["approvals/cab-pushed.yaml"]
            .vouches_for(Some("dkowalski"), "dkowalski", &keys)
            .is_err()
    );
    let calls = github.api_requests();
    forge
        .record_provenance(&repo, tip, None)
        .await
        .expect("again");
    assert_eq!(
        github.api_requests(),
        calls,
        "each record blob is traced once"
    );
}

/// The signatures a provenance carries (the test commits are unsigned).
fn provenance_signatures(
    provenance: &ringmaster::forge::provenance::RecordProvenance,
) -> Vec<ringmaster::authority::CommitSignature> {
    match provenance {
        ringmaster::forge::provenance::RecordProvenance::PullRequest { signatures, .. }
        | ringmaster::forge::provenance::RecordProvenance::DirectPush { signatures, .. } => {
            signatures.clone()
        }
        ringmaster::forge::provenance::RecordProvenance::Bootstrap => Vec::new(),
    }
}
