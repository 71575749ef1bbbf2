//! Reviews as CAB approvals, through the real PR check: a GitHub-hosted Git
//! repository made with `git`, its mirror as the daemon keeps it, and the
//! fake GitHub API. Each test opens a PR that adds an intent needing CAB
//! approval and shows which reviews turn `ringmaster/policy` green — and
//! that none of the ways around the rules does.

mod forge_support;

use forge_support::*;
use ringmaster::forge::{CheckOutcome, CheckState, Forge};

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

/// A hosted tenant, the fake GitHub, the daemon's mirror and its forge.
struct Scenario {
    hosted: HostedRepo,
    github: FakeGitHub,
    mirror: Mirror,
    forge: Forge,
}

impl Scenario {
    /// The sample tenant on main without `held_back` files (the PR adds them).
    async fn without(held_back: &[&str]) -> Scenario {
        Scenario::with(held_back, |_| {}).await
    }

    async fn with(held_back: &[&str], edit: impl FnOnce(&std::path::Path)) -> Scenario {
        let hosted = HostedRepo::sample_with(held_back, edit);
        let github = FakeGitHub::start(OWNER, REPOSITORY, FakeAuth::Token(TOKEN.into())).await;
        let mirror = mirror(&hosted);
        let forge = token_forge(&github);
        Scenario {
            hosted,
            github,
            mirror,
            forge,
        }
    }

    /// Opens PR `number` by `author` writing `files`; returns its head.
    fn open(&self, number: u64, author: &str, files: &[(&str, String)]) -> String {
        let branch = format!("pr-{number}");
        self.hosted.branch(&branch);
        for (path, text) in files {
            self.hosted.write(path, text);
        }
        let head = self.hosted.commit_pull_request(number, "change");
        let main = self.hosted.sha("main");
        self.github
            .open_pull_request(number, author, &branch, &head, "main", &main);
        head
    }

    /// Pushes another commit to PR `number`'s branch; returns the new head.
    fn push(&self, number: u64, path: &str, text: &str) -> String {
        self.hosted.write(path, text);
        let head = self.hosted.commit_pull_request(number, "another change");
        self.github.push_to_pull_request(number, &head);
        head
    }

    async fn check(&mut self, number: u64) -> CheckOutcome {
        self.forge
            .check_pull_request(&self.mirror.repo, number, now())
            .await
            .expect("check runs")
    }

    fn status(&self, sha: &str) -> (String, String) {
        policy_status(&self.github, sha).expect("a ringmaster/policy status")
    }
}

fn osquery() -> Vec<(&'static str, String)> {
    vec![(OSQUERY, sample_file(OSQUERY))]
}

#[tokio::test]
async fn a_valid_approval_turns_the_check_green() {
    let mut scenario = Scenario::without(&[OSQUERY]).await;
    let head = scenario.open(7, "bokafor", &osquery());
    let outcome = scenario.check(7).await;
    assert_eq!(outcome.state, Some(CheckState::Pending));
    let (state, description) = scenario.status(&head);
    assert_eq!(state, "pending");
    assert!(description.contains("osquery-6.0.0-it"), "{description}");
    let comment = the_comment(&scenario.github, 7);
    assert!(comment.contains("REQUIRE_APPROVAL"), "{comment}");
    assert!(comment.contains("still needed: 1"), "{comment}");
    if std::env::var_os("SHOW_COMMENT").is_some() {
        eprintln!("{comment}");
    }
    assert!(
        comment.contains("@dkowalski (dave)"),
        "eligible reviewers are named: {comment}"
    );

    scenario.github.review(7, "dkowalski", "APPROVED", &head);
    let outcome = scenario.check(7).await;
    assert_eq!(
        outcome.state,
        Some(CheckState::Success),
        "{}",
        outcome.summary
    );
    assert_eq!(scenario.status(&head).0, "success");
    let comment = the_comment(&scenario.github, 7);
    assert!(comment.contains("**ALLOW**"), "{comment}");
    assert!(
        comment.contains("given by: @dkowalski (dave) [`review-"),
        "{comment}"
    );
}

#[tokio::test]
async fn the_comment_is_edited_in_place_not_duplicated() {
    let mut scenario = Scenario::without(&[OSQUERY]).await;
    let head = scenario.open(7, "bokafor", &osquery());
    scenario.check(7).await;
    scenario.check(7).await;
    scenario.github.review(7, "dkowalski", "APPROVED", &head);
    scenario.check(7).await;
    let comments = scenario.github.comments(7);
    assert_eq!(comments.len(), 1, "{comments:#?}");
    assert_eq!(
        comments[0]["edits"], 1,
        "edited once, when the verdict changed"
    );
    assert!(comments[0]["body"].as_str().unwrap().contains("success"));

    // A restarted daemon (no memory) finds the comment again by its marker.
    let mut restarted = token_forge(&scenario.github);
    let outcome = restarted
        .check_pull_request(&scenario.mirror.repo, 7, now())
        .await
        .expect("check");
    assert_eq!(outcome.comment_id, comments[0]["id"].as_u64());
    assert_eq!(scenario.github.comments(7).len(), 1);
}

#[tokio::test]
async fn the_intents_requester_cannot_approve_their_own_intent() {
    // Bob is a publisher and (here) also a cab-approver for IT; he requested
    // the osquery intent, which Judy's PR adds.
    let mut scenario = Scenario::with(&[OSQUERY], |dir| {
        let path = dir.join("principals/bob.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(
            &path,
            text.replace("  - publisher", "  - publisher\n  - cab-approver"),
        )
        .unwrap();
    })
    .await;
    let head = scenario.open(7, "jalvarez-pkg", &osquery());
    scenario.github.review(7, "bokafor", "APPROVED", &head);
    let outcome = scenario.check(7).await;
    assert_eq!(
        outcome.state,
        Some(CheckState::Pending),
        "{}",
        outcome.summary
    );
    let comment = the_comment(&scenario.github, 7);
    assert!(comment.contains("cab.self_approval"), "{comment}");
}

#[tokio::test]
async fn the_pull_request_author_cannot_approve_it() {
    let mut scenario = Scenario::without(&[OSQUERY]).await;
    let head = scenario.open(7, "dkowalski", &osquery());
    scenario.github.review(7, "dkowalski", "APPROVED", &head);
    let outcome = scenario.check(7).await;
    assert_eq!(
        outcome.state,
        Some(CheckState::Pending),
        "{}",
        outcome.summary
    );
    let comment = the_comment(&scenario.github, 7);
    assert!(
        comment.contains("is the pull request's author"),
        "{comment}"
    );
}

#[tokio::test]
async fn stale_approval_does_not_count_after_a_new_push() {
    let mut scenario = Scenario::without(&[OSQUERY]).await;
    let first = scenario.open(7, "bokafor", &osquery());
    scenario.github.review(7, "dkowalski", "APPROVED", &first);
    assert_eq!(scenario.check(7).await.state, Some(CheckState::Success));
    let text = sample_file(OSQUERY).replace("Needs CAB", "Really needs CAB");
    let second = scenario.push(7, OSQUERY, &text);
    let outcome = scenario.check(7).await;
    assert_eq!(
        outcome.state,
        Some(CheckState::Pending),
        "{}",
        outcome.summary
    );
    assert_eq!(scenario.status(&second).0, "pending");
    let comment = the_comment(&scenario.github, 7);
    assert!(comment.contains("approved an earlier commit"), "{comment}");
}

#[tokio::test]
async fn approval_by_a_non_approver_does_not_count() {
    let mut scenario = Scenario::without(&[OSQUERY]).await;
    let head = scenario.open(7, "bokafor", &osquery());
    // Heidi is endpoint-ops; Erin is a publisher; someone unknown to ringmaster.
    for login in ["hschmidt-ops", "erin-brennan-fab", "random-dev"] {
        scenario.github.review(7, login, "APPROVED", &head);
    }
    let outcome = scenario.check(7).await;
    assert_eq!(
        outcome.state,
        Some(CheckState::Pending),
        "{}",
        outcome.summary
    );
    let comment = the_comment(&scenario.github, 7);
    assert!(comment.contains("cab.not_an_approver"), "{comment}");
    assert!(comment.contains("github:random-dev"), "{comment}");
}

#[tokio::test]
async fn approval_from_an_approver_of_another_business_unit_does_not_count() {
    // The VPN rollout targets Finance; Dave approves for IT only, Frank for Fabrikam.
    let mut scenario = Scenario::without(&[VPN, VPN_APPROVAL]).await;
    let head = scenario.open(8, "anakamura", &[(VPN, sample_file(VPN))]);
    scenario.github.review(8, "dkowalski", "APPROVED", &head);
    scenario.github.review(8, "fmueller-fab", "APPROVED", &head);
    let outcome = scenario.check(8).await;
    assert_eq!(
        outcome.state,
        Some(CheckState::Pending),
        "{}",
        outcome.summary
    );
    let comment = the_comment(&scenario.github, 8);
    assert!(comment.contains("cab.approver_scope"), "{comment}");

    // Carol approves for Finance: that one counts.
    scenario.github.review(8, "cjensen", "APPROVED", &head);
    assert_eq!(scenario.check(8).await.state, Some(CheckState::Success));
}

#[tokio::test]
async fn a_pull_request_that_edits_the_rules_to_allow_itself_stays_pending() {
    let mut scenario = Scenario::without(&[OSQUERY]).await;
    // Raise the CAB threshold above osquery's risk, make Heidi a CAB
    // approver, add a tenant rule — and have Heidi approve.
    let config = scenario
        .hosted
        .read("ringmaster.yaml")
        .replace("risk_threshold: 50", "risk_threshold: 99");
    let heidi = scenario
        .hosted
        .read("principals/heidi.yaml")
        .replace("  - endpoint-ops", "  - endpoint-ops\n  - cab-approver");
    let mut files = osquery();
    files.push(("ringmaster.yaml", config));
    files.push(("principals/heidi.yaml", heidi));
    files.push((
        "policies/allow.rego",
        "package ringmaster.tenant.allow\n\nnotes contains {\"rule\": \"allow.all\", \"message\": \"everything is fine\"} if true\n"
            .into(),
    ));
    let head = scenario.open(7, "bokafor", &files);
    scenario.github.review(7, "hschmidt-ops", "APPROVED", &head);
    let outcome = scenario.check(7).await;
    assert_eq!(
        outcome.state,
        Some(CheckState::Pending),
        "{}",
        outcome.summary
    );
    let comment = the_comment(&scenario.github, 7);
    assert!(
        comment.contains("risk score 60 is above the CAB threshold 50"),
        "judged by the base config: {comment}"
    );
    assert!(comment.contains("Changes to the rules"), "{comment}");
    assert!(comment.contains("`policies/allow.rego`"), "{comment}");
    assert!(
        comment.contains("@oharper (olivia)"),
        "the admin who can approve is named: {comment}"
    );
    assert!(
        !comment.contains("allow.all"),
        "the PR's own policy does not judge it: {comment}"
    );

    // Even the admin's approval does not make the change judge itself: the
    // intent still needs a CAB approver under the base's rules.
    scenario.github.review(7, "oharper", "APPROVED", &head);
    let outcome = scenario.check(7).await;
    assert_eq!(
        outcome.state,
        Some(CheckState::Pending),
        "{}",
        outcome.summary
    );
    scenario.github.review(7, "dkowalski", "APPROVED", &head);
    assert_eq!(scenario.check(7).await.state, Some(CheckState::Success));
}

#[tokio::test]
async fn an_approval_record_added_by_the_pull_request_counts_only_with_its_deciders_review() {
    let mut scenario = Scenario::without(&[OSQUERY]).await;
    let digest = sample_intent_sha256("osquery-6.0.0-it");
    let record = format!(
        "apiVersion: ringmaster.dev/v1
kind: ApprovalRecord
approval_id: cab-2026-0150
deployment_intent_id: osquery-6.0.0-it
intent_sha256: \"{digest}\"
decision: approved
decided_by: dave
decided_at: 2026-11-27T10:00:00Z
expiry: 2099-12-31T00:00:00Z
justification: Major osquery upgrade reviewed; pilot ring watched by SecOps.
"
    );
    let mut files = osquery();
    files.push(("approvals/cab-2026-0150.yaml", record));
    let head = scenario.open(7, "bokafor", &files);
    let outcome = scenario.check(7).await;
    assert_eq!(
        outcome.state,
        Some(CheckState::Pending),
        "a file saying dave approved is not dave approving: {}",
        outcome.summary
    );
    let comment = the_comment(&scenario.github, 7);
    assert!(comment.contains("cannot vouch for"), "{comment}");

    scenario.github.review(7, "dkowalski", "APPROVED", &head);
    let outcome = scenario.check(7).await;
    assert_eq!(
        outcome.state,
        Some(CheckState::Success),
        "{}",
        outcome.summary
    );
    let comment = the_comment(&scenario.github, 7);
    assert!(
        comment.contains("[`cab-2026-0150`]"),
        "the record counts once, not twice: {comment}"
    );
}

#[tokio::test]
async fn changes_requested_or_dismissal_after_approval_withdraws_it() {
    let mut scenario = Scenario::without(&[OSQUERY]).await;
    let head = scenario.open(7, "bokafor", &osquery());
    scenario.github.review(7, "dkowalski", "APPROVED", &head);
    assert_eq!(scenario.check(7).await.state, Some(CheckState::Success));
    scenario
        .github
        .review(7, "dkowalski", "CHANGES_REQUESTED", &head);
    assert_eq!(scenario.check(7).await.state, Some(CheckState::Pending));

    let approval = scenario.github.review(7, "cjensen", "APPROVED", &head);
    assert_eq!(scenario.check(7).await.state, Some(CheckState::Success));
    scenario.github.dismiss(7, approval);
    assert_eq!(scenario.check(7).await.state, Some(CheckState::Pending));
    let comment = the_comment(&scenario.github, 7);
    assert!(comment.contains("the approval was dismissed"), "{comment}");
}

#[tokio::test]
async fn a_governance_change_needs_a_platform_admins_approval() {
    let mut scenario = Scenario::without(&[]).await;
    let config = scenario
        .hosted
        .read("ringmaster.yaml")
        .replace("max_incidents: 0", "max_incidents: 1");
    let head = scenario.open(9, "bokafor", &[("ringmaster.yaml", config)]);
    let outcome = scenario.check(9).await;
    assert_eq!(
        outcome.state,
        Some(CheckState::Pending),
        "{}",
        outcome.summary
    );
    assert!(
        outcome.summary.contains("platform admin"),
        "{}",
        outcome.summary
    );
    scenario.github.review(9, "cjensen", "APPROVED", &head);
    assert_eq!(
        scenario.check(9).await.state,
        Some(CheckState::Pending),
        "a CAB approver is not an admin"
    );
    scenario.github.review(9, "oharper", "APPROVED", &head);
    assert_eq!(scenario.check(9).await.state, Some(CheckState::Success));
}

#[tokio::test]
async fn an_invalid_file_fails_the_check_with_file_and_line() {
    let mut scenario = Scenario::without(&[]).await;
    let broken = "apiVersion: ringmaster.dev/v1\nkind: DeploymentIntent\nintent_id: broken\napplication_id: osquery\nversion: 6.0.0\n";
    let head = scenario.open(10, "bokafor", &[("intents/broken.yaml", broken.into())]);
    let outcome = scenario.check(10).await;
    assert_eq!(
        outcome.state,
        Some(CheckState::Failure),
        "{}",
        outcome.summary
    );
    assert_eq!(scenario.status(&head).0, "failure");
    let comment = the_comment(&scenario.github, 10);
    assert!(
        comment.contains("`intents/broken.yaml:"),
        "file:line for every diagnostic: {comment}"
    );
}

#[tokio::test]
async fn a_denied_intent_fails_the_check() {
    let mut scenario = Scenario::without(&[OSQUERY]).await;
    // Alice publishes for Finance only; IT is outside her scope.
    let text = sample_file(OSQUERY).replace("requested_by: bob", "requested_by: alice");
    let head = scenario.open(11, "anakamura", &[(OSQUERY, text)]);
    scenario.github.review(11, "dkowalski", "APPROVED", &head);
    let outcome = scenario.check(11).await;
    assert_eq!(
        outcome.state,
        Some(CheckState::Failure),
        "{}",
        outcome.summary
    );
    assert!(
        outcome.summary.contains("DENY osquery-6.0.0-it"),
        "{}",
        outcome.summary
    );
}

#[tokio::test]
async fn a_pr_event_costs_at_most_five_github_api_calls() {
    let mut scenario = Scenario::without(&[OSQUERY]).await;
    let head = scenario.open(7, "bokafor", &osquery());
    let before = scenario.github.api_requests();
    let opened = scenario.check(7).await;
    let after_open = scenario.github.api_requests();
    let unchanged = scenario.check(7).await;
    let after_unchanged = scenario.github.api_requests();
    scenario.github.review(7, "dkowalski", "APPROVED", &head);
    let reviewed = scenario.check(7).await;
    let after_review = scenario.github.api_requests();
    eprintln!(
        "GitHub API calls per PR event: opened {}, re-check unchanged {}, review {}",
        after_open - before,
        after_unchanged - after_open,
        after_review - after_unchanged
    );
    // pull + reviews + list comments + create comment + status.
    assert_eq!(after_open - before, 5);
    assert_eq!(opened.api_calls, 5);
    // pull + reviews; nothing changed, nothing posted.
    assert_eq!(unchanged.api_calls, 2);
    assert_eq!(after_unchanged - after_open, 2);
    // pull + reviews + edit comment + status.
    assert_eq!(reviewed.api_calls, 4);
    assert_eq!(after_review - after_unchanged, 4);
}

#[tokio::test]
async fn a_pull_request_into_another_branch_is_not_judged() {
    let mut scenario = Scenario::without(&[]).await;
    let head = scenario.open(
        12,
        "bokafor",
        &[("intents/x.yaml", "not: yaml: at: all".into())],
    );
    scenario
        .github
        .open_pull_request(12, "bokafor", "pr-12", &head, "release", &head);
    let outcome = scenario.check(12).await;
    assert_eq!(outcome.state, None);
    assert!(scenario.github.comments(12).is_empty());
    assert!(policy_status(&scenario.github, &head).is_none());
}
