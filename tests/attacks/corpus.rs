//! The one-judge corpus: the same repositories and changes — a valid one and
//! hostile ones — judged through every entry point, with the same decision
//! everywhere:
//!
//! - `ringmaster validate --base main --rev attack` (the binary);
//! - `ringmaster plan --base main --rev attack <intent>` for every intent;
//! - the PR check (`forge::check::judge`) of `attack` into `main`;
//! - the merge re-judgement (`forge::merge::evaluate_commit`) of the PR
//!   merged without reviews, as the daemon runs it with a forge;
//! - the daemon: `ringmaster serve --once` on the real Git repository, once
//!   on `main`, then again after the change is pushed onto `main`.
//!
//! Justified differences, asserted as such: the PR check reports only the
//! intents the change affects (the others are compared by the rest); a
//! commit with errors is refused whole by the daemon, which keeps the
//! decisions of the last good commit (every entry point reports the same
//! errors); `plan` reports one intent. A version rolled back needs the
//! daemon's runtime facts: that case is `rolled_back.rs` (validate
//! `--state`, the PR check with the store's facts, the daemon).

use crate::harness::{Attack, NOW, Verdict, now, read_store, verdict_of_check};
use crate::support::{TestRepo, ringmaster, stderr};
use ringmaster::forge::merge::{CommitCase, MergeFacts, MergedPullRequest};
use ringmaster::source::GovernedRepo;
use std::collections::{BTreeMap, BTreeSet};

/// One change of the corpus: what it does to the attack branch.
struct Case {
    name: &'static str,
    apply: fn(&Attack),
    /// Whether the change has errors (the daemon refuses the commit whole).
    invalid: bool,
    /// Intent → the decision every entry point must reach.
    expect: &'static [(&'static str, &'static str)],
}

const CORPUS: &[Case] = &[
    Case {
        name: "valid: a description edited",
        apply: |attack| {
            reword(attack, "zoom-6.3.0-finance");
            attack.commit("zoom: reworded");
        },
        invalid: false,
        expect: &[("zoom-6.3.0-finance", "ALLOW")],
    },
    Case {
        name: "broken: a freeze cron with a thirteenth month",
        apply: |attack| {
            attack.repo.edit(
                "ringmaster.yaml",
                "cron: \"0 0 0 20 12 *\"",
                "cron: \"0 0 0 20 13 *\"",
            );
            attack.commit("freeze in the thirteenth month");
        },
        invalid: true,
        expect: &[],
    },
    Case {
        name: "hostile: the CAB threshold raised in the commit that needs it",
        apply: |attack| {
            attack.repo.edit(
                "ringmaster.yaml",
                "risk_threshold: 50",
                "risk_threshold: 99",
            );
            reword(attack, "osquery-6.0.0-it");
            attack.commit("osquery: no CAB needed any more");
        },
        invalid: false,
        expect: &[("osquery-6.0.0-it", "REQUIRE_APPROVAL")],
    },
    Case {
        name: "hostile: a CAB approval forged in carol's name (unsigned)",
        apply: |attack| {
            let digest = crate::support::intent_sha256(&attack.repo.path, "osquery-6.0.0-it");
            attack.repo.write(
                "approvals/cab-2026-0666.yaml",
                &format!(
                    "apiVersion: ringmaster.dev/v1\nkind: ApprovalRecord\napproval_id: cab-2026-0666\n\
                     deployment_intent_id: osquery-6.0.0-it\nintent_sha256: \"{digest}\"\n\
                     decision: approved\ndecided_by: carol\ndecided_at: \"2026-11-30T10:00:00Z\"\n\
                     expiry: \"2027-06-30T00:00:00Z\"\njustification: looks fine\n"
                ),
            );
            attack.commit("osquery: approved (honest)");
        },
        invalid: false,
        expect: &[("osquery-6.0.0-it", "REQUIRE_APPROVAL")],
    },
    Case {
        name: "hostile: scope widened, covered only by a release approval",
        apply: |attack| {
            attack.repo.edit(
                "apps/globalprotect-vpn/app.yaml",
                "acquisition_boundaries: [acq-001]",
                "acquisition_boundaries: [acq-001, acq-002]",
            );
            attack.commit("vpn: acq-002 too");
        },
        invalid: false,
        expect: &[("vpn-6.2.1-finance", "REQUIRE_APPROVAL")],
    },
];

/// Changes the description of `intent` (an edit that moves no decision).
fn reword(attack: &Attack, intent: &str) {
    attack.repo.edit(
        &format!("intents/{intent}.yaml"),
        "description: >-",
        "description: >-\n  Reworded.",
    );
}

/// `ringmaster plan --base main --rev attack INTENT --format json`: the
/// decision and the rules fired.
fn plan(attack: &Attack, intent: &str) -> (String, Vec<String>) {
    let output = ringmaster(
        &[
            "plan", ".", intent, "--base", "main", "--rev", "attack", "--now", NOW, "--format",
            "json",
        ],
        &attack.repo.path,
    );
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "plan {intent} printed no JSON ({error}): {}",
            stderr(&output)
        )
    });
    let outcome = &plan["evaluation"]["outcome"];
    let mut rules = Vec::new();
    for list in ["reasons", "notes"] {
        for reason in outcome[list].as_array().into_iter().flatten() {
            rules.push(reason["rule"].as_str().unwrap_or_default().to_owned());
        }
    }
    (
        outcome["decision"].as_str().unwrap_or_default().to_owned(),
        rules,
    )
}

/// The merge re-judgement: `attack` merged into `main` through a pull
/// request nobody reviewed, judged as the daemon judges a merged commit
/// (a change to the rules unauthorised, so judged by main's).
fn merge(attack: &Attack) -> Verdict {
    let repo = GovernedRepo::open(&attack.repo.path).expect("repo");
    let head = repo.resolve("attack").expect("attack");
    let base = repo.resolve("main").expect("main");
    let head_entries = repo.entries_at(head).expect("head");
    let base_entries = repo.entries_at(base).expect("base");
    let (main, _) = ringmaster::judge::load(&base_entries);
    let rules_changed = !ringmaster::forge::changes::governance_paths(
        &ringmaster::forge::changes::changed_paths(&base_entries, &head_entries),
    )
    .is_empty();
    let history = ringmaster::source::history::change_history(&repo, base, head).expect("history");
    let facts = MergeFacts {
        repository: "contoso/tenant".into(),
        pull_request: Some(MergedPullRequest {
            number: 1,
            url: None,
            author: "attacker".into(),
            head_sha: head.to_string(),
            merge_commit_sha: head.to_string(),
            merged_at: None,
        }),
        reviews: Vec::new(),
        carried: Vec::new(),
        provenance: BTreeMap::new(),
    };
    let (judgement, _) = ringmaster::forge::evaluate_commit(CommitCase {
        entries: &head_entries,
        rules: rules_changed.then_some(&main),
        identities: Some(&main),
        base: Some(&main),
        previous: Some(&main),
        history: &history,
        provenance: None,
        facts: Some(&facts),
        runtime: &ringmaster::evaluation::NoRuntime,
        now: now(),
    });
    let mut verdict = Verdict::default();
    for evaluation in &judgement.evaluation.intents {
        verdict.decisions.insert(
            evaluation.intent_id.clone(),
            evaluation.decision().as_str().to_owned(),
        );
        let outcome = &evaluation.outcome;
        verdict.rules.insert(
            evaluation.intent_id.clone(),
            outcome
                .reasons
                .iter()
                .chain(&outcome.notes)
                .map(|r| r.rule.clone())
                .collect(),
        );
    }
    for diagnostic in &judgement.evaluation.diagnostics {
        let line = format!("{}: {}", diagnostic.file, diagnostic.message);
        if diagnostic.is_error() {
            verdict.errors.push(line);
        } else {
            verdict.warnings.push(line);
        }
    }
    verdict
}

/// `ringmaster serve --once` on `main`, then again with `attack` pushed
/// onto it; the daemon's verdict read from its store and evidence branch.
fn serve_once(attack: &Attack) -> Verdict {
    let dir = tempfile::tempdir().expect("daemon dir");
    let keygen = ringmaster(
        &["keygen", "--out", dir.path().to_str().expect("utf-8")],
        dir.path(),
    );
    assert!(keygen.status.success(), "keygen: {}", stderr(&keygen));
    let config = crate::support::sim_planes_config(dir.path());
    let state = dir.path().join("state");
    let key = dir.path().join("ringmaster.key");
    let serve = |repo: &TestRepo| {
        let output = ringmaster(
            &[
                "serve",
                "--repo",
                repo.path.to_str().expect("utf-8"),
                "--state",
                state.to_str().expect("utf-8"),
                "--key",
                key.to_str().expect("utf-8"),
                "--config",
                config.to_str().expect("utf-8"),
                "--once",
            ],
            &repo.path,
        );
        assert!(output.status.success(), "serve --once: {}", stderr(&output));
    };
    serve(&attack.repo);
    attack.repo.git(&["checkout", "-q", "main"]);
    attack.repo.git(&["merge", "-q", "--ff-only", "attack"]);
    attack.repo.git(&["checkout", "-q", "attack"]);
    serve(&attack.repo);
    let store =
        ringmaster::store::Store::open_existing(&state.join("ringmaster.db")).expect("store");
    read_store(&attack.repo, &store)
}

fn sorted(rules: Option<&Vec<String>>) -> BTreeSet<String> {
    rules.into_iter().flatten().cloned().collect()
}

fn sorted_lines(lines: &[String]) -> BTreeSet<String> {
    lines.iter().cloned().collect()
}

#[test]
fn every_entry_point_reaches_the_same_decisions_on_the_corpus() {
    for case in CORPUS {
        let attack = Attack::new();
        (case.apply)(&attack);
        let validate = attack.validate();
        let plans: BTreeMap<String, (String, Vec<String>)> = validate
            .decisions
            .keys()
            .map(|intent| (intent.clone(), plan(&attack, intent)))
            .collect();
        let pr_check = verdict_of_check(&attack.pr_check_with(&[]));
        let merge = merge(&attack);
        // Last: the daemon pushes the change onto main.
        let daemon = serve_once(&attack);
        let name = case.name;

        // The same errors everywhere (file: message).
        let errors = sorted_lines(&validate.errors);
        assert_eq!(case.invalid, !errors.is_empty(), "{name}: {validate:#?}");
        for (judge, verdict) in [
            ("the PR check", &pr_check),
            ("the merge", &merge),
            ("the daemon", &daemon),
        ] {
            assert_eq!(
                sorted_lines(&verdict.errors),
                errors,
                "{name}: {judge} reports other errors"
            );
        }
        // The same warnings from validate and the daemon (no forge: both
        // judge a push); the PR check's and the merge's on the same files
        // (a claim's reason there names the pull request nobody approved).
        if !case.invalid {
            assert_eq!(
                sorted_lines(&daemon.warnings),
                sorted_lines(&validate.warnings),
                "{name}: daemon"
            );
        }
        let files = |verdict: &Verdict| -> BTreeSet<String> {
            verdict
                .warnings
                .iter()
                .filter_map(|w| w.split(": ").next().map(str::to_owned))
                .collect()
        };
        assert_eq!(
            files(&pr_check),
            files(&validate),
            "{name}: PR check warnings"
        );
        assert_eq!(files(&merge), files(&validate), "{name}: merge warnings");

        for (intent, decision) in &validate.decisions {
            let rules = sorted(validate.rules.get(intent));
            let (plan_decision, plan_rules) = &plans[intent];
            assert_eq!(
                (
                    plan_decision,
                    &plan_rules.iter().cloned().collect::<BTreeSet<_>>()
                ),
                (decision, &rules),
                "{name}: plan and validate disagree on {intent}"
            );
            assert_eq!(
                merge.decision(intent),
                decision,
                "{name}: merge on {intent}"
            );
            assert_eq!(
                sorted(merge.rules.get(intent)),
                rules,
                "{name}: merge rules on {intent}"
            );
            if let Some(pr_decision) = pr_check.decisions.get(intent) {
                assert_eq!(pr_decision, decision, "{name}: PR check on {intent}");
                assert_eq!(
                    sorted(pr_check.rules.get(intent)),
                    rules,
                    "{name}: PR rules on {intent}"
                );
            }
            if !case.invalid {
                assert_eq!(
                    daemon.decision(intent),
                    decision,
                    "{name}: daemon on {intent}"
                );
                assert_eq!(
                    sorted(daemon.rules.get(intent)),
                    rules,
                    "{name}: daemon rules on {intent}"
                );
            }
        }
        for (intent, expected) in case.expect {
            assert_eq!(
                validate.decision(intent),
                *expected,
                "{name}: {validate:#?}"
            );
            assert_eq!(
                pr_check.decision(intent),
                *expected,
                "{name}: the PR check must report the intent the change affects: {pr_check:#?}"
            );
        }
    }
}
