//! One attack, three judges: `ringmaster validate --base` (the binary), the
//! PR check (`forge::check::judge`, without GitHub) and the daemon
//! (`Daemon::process_pending` on the tracked branch). An attack is a
//! commit on the `attack` branch of the sample tenant; the daemon sees it
//! fast-forwarded onto `main`, as a direct push would put it there.

#![allow(dead_code)]

use chrono::{DateTime, Utc};
use ringmaster::daemon::Daemon;
use ringmaster::daemon::config::{DaemonConfig, RepoLocation, SiemSink};
use ringmaster::daemon::rollout::IntentState;
use ringmaster::forge::check::{PullRequestInput, PullRequestVerdict};
use ringmaster::forge::wire::{BranchRef, PullRequest, Review, User};
use ringmaster::source::GovernedRepo;
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Command;

pub use crate::support::{NOW, TestRepo};

pub fn now() -> DateTime<Utc> {
    NOW.parse().expect("NOW is RFC 3339")
}

/// What one judge said about the attack.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verdict {
    /// Intent id → decision (`ALLOW`, `DENY`, ...).
    pub decisions: BTreeMap<String, String>,
    /// Intent id → every rule that fired (reasons and notes).
    pub rules: BTreeMap<String, Vec<String>>,
    /// Error diagnostics, as `file: message`.
    pub errors: Vec<String>,
    /// Warning diagnostics, as `file: message`.
    pub warnings: Vec<String>,
    /// Intent id → the intent it may end (an accepted `supersedes`).
    pub supersedes: BTreeMap<String, Option<String>>,
}

impl Verdict {
    pub fn decision(&self, intent: &str) -> &str {
        self.decisions
            .get(intent)
            .map(String::as_str)
            .unwrap_or("(not judged)")
    }

    pub fn fired(&self, intent: &str, rule: &str) -> bool {
        self.rules
            .get(intent)
            .is_some_and(|rules| rules.iter().any(|r| r == rule))
    }

    pub fn has_error(&self, needle: &str) -> bool {
        self.errors.iter().any(|e| e.contains(needle))
    }

    pub fn has_warning(&self, needle: &str) -> bool {
        self.warnings.iter().any(|e| e.contains(needle))
    }
}

/// The sample tenant on `main`, and an `attack` branch to commit on.
pub struct Attack {
    pub repo: TestRepo,
    pub base: String,
}

impl Attack {
    pub fn new() -> Attack {
        let repo = TestRepo::sample();
        let base = repo.git(&["rev-parse", "HEAD"]);
        repo.git(&["checkout", "-q", "-b", "attack"]);
        Attack { repo, base }
    }

    /// The sample tenant with `setup` applied and committed on `main`
    /// before the attack branch is made (the rules the attack meets).
    pub fn on_base(setup: impl FnOnce(&TestRepo)) -> Attack {
        let repo = TestRepo::sample();
        setup(&repo);
        repo.commit_all("the rules the attack meets");
        let base = repo.git(&["rev-parse", "HEAD"]);
        repo.git(&["checkout", "-q", "-b", "attack"]);
        Attack { repo, base }
    }

    /// Commits the work tree on the attack branch.
    pub fn commit(&self, message: &str) -> String {
        self.repo.commit_all(message)
    }

    /// `ringmaster validate --base main --rev attack --format json`.
    pub fn validate(&self) -> Verdict {
        self.validate_with(&[])
    }

    /// [`Attack::validate`] with more arguments (e.g. `--state DIR`).
    pub fn validate_with(&self, extra: &[&str]) -> Verdict {
        let mut args = vec![
            "validate", ".", "--base", "main", "--rev", "attack", "--now", NOW, "--format", "json",
        ];
        args.extend_from_slice(extra);
        let output = crate::support::ringmaster(&args, &self.repo.path);
        let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
            panic!(
                "validate printed no JSON ({error}): {}",
                crate::support::stderr(&output)
            )
        });
        let mut verdict = Verdict::default();
        for intent in report["intents"].as_array().into_iter().flatten() {
            let id = intent["id"].as_str().unwrap_or_default().to_owned();
            verdict.decisions.insert(
                id.clone(),
                intent["decision"].as_str().unwrap_or_default().to_owned(),
            );
            let mut rules: Vec<String> = Vec::new();
            for list in ["reasons", "notes"] {
                for reason in intent[list].as_array().into_iter().flatten() {
                    rules.push(reason["rule"].as_str().unwrap_or_default().to_owned());
                }
            }
            verdict
                .supersedes
                .insert(id.clone(), intent["supersedes"].as_str().map(str::to_owned));
            verdict.rules.insert(id, rules);
        }
        for diagnostic in report["diagnostics"].as_array().into_iter().flatten() {
            let line = format!(
                "{}: {}",
                diagnostic["file"].as_str().unwrap_or_default(),
                diagnostic["message"].as_str().unwrap_or_default()
            );
            if diagnostic["severity"] == "error" {
                verdict.errors.push(line);
            } else {
                verdict.warnings.push(line);
            }
        }
        verdict
    }

    /// The PR check of `attack` into `main`, with `reviews` (none: a PR
    /// nobody reviewed).
    pub fn pr_check_with(&self, reviews: &[Review]) -> PullRequestVerdict {
        self.pr_check_with_runtime(reviews, &ringmaster::evaluation::NoRuntime)
    }

    /// The PR check with the runtime facts of a daemon's store (as the
    /// daemon runs it).
    pub fn pr_check_with_runtime(
        &self,
        reviews: &[Review],
        runtime: &dyn ringmaster::evaluation::RuntimeFacts,
    ) -> PullRequestVerdict {
        let repo = GovernedRepo::open(&self.repo.path).expect("repo");
        let head = repo.resolve("attack").expect("attack");
        let base = repo.resolve("main").expect("main");
        let fork_point = repo.repository.merge_base(head, base).expect("merge base");
        let pull_request = PullRequest {
            number: 1,
            state: "open".into(),
            html_url: None,
            user: Some(User {
                login: "attacker".into(),
            }),
            head: BranchRef {
                name: "attack".into(),
                sha: head.to_string(),
            },
            base: BranchRef {
                name: "main".into(),
                sha: base.to_string(),
            },
            draft: false,
            merged_at: None,
            merge_commit_sha: None,
            updated_at: None,
        };
        let head_entries = repo.entries_at(head).expect("head");
        let base_entries = repo.entries_at(base).expect("base");
        let fork_point_entries = repo.entries_at(fork_point).expect("fork point");
        let history =
            ringmaster::source::history::change_history(&repo, fork_point, head).expect("history");
        ringmaster::forge::check::judge(&PullRequestInput {
            pull_request: &pull_request,
            head_entries: &head_entries,
            base_entries: &base_entries,
            base_sha: &base.to_string(),
            fork_point_entries: &fork_point_entries,
            reviews,
            history: &history,
            runtime,
            now: now(),
        })
    }

    /// The PR check's verdict in the shape of the others.
    pub fn pr_check(&self) -> Verdict {
        verdict_of_check(&self.pr_check_with(&[]))
    }
}

/// A PR check's verdict in the shape of the others.
pub fn verdict_of_check(verdict: &PullRequestVerdict) -> Verdict {
    {
        let mut out = Verdict::default();
        for intent in &verdict.intents {
            let evaluation = &intent.plan.evaluation;
            out.decisions.insert(
                evaluation.intent_id.clone(),
                evaluation.decision().as_str().to_owned(),
            );
            out.supersedes
                .insert(evaluation.intent_id.clone(), evaluation.supersedes.clone());
            let outcome = &evaluation.outcome;
            out.rules.insert(
                evaluation.intent_id.clone(),
                outcome
                    .reasons
                    .iter()
                    .chain(&outcome.notes)
                    .map(|r| r.rule.clone())
                    .collect(),
            );
        }
        for diagnostic in verdict.blocking.iter().chain(&verdict.other_diagnostics) {
            let line = format!("{}: {}", diagnostic.file, diagnostic.message);
            if diagnostic.is_error() {
                out.errors.push(line);
            } else {
                out.warnings.push(line);
            }
        }
        out
    }
}

impl Attack {
    /// The daemon: judges `main` as it was, then the attack fast-forwarded
    /// onto it (a direct push), at [`NOW`].
    pub fn daemon(&self) -> Verdict {
        let mut daemon = Daemon::open(daemon_config(&self.repo)).expect("daemon");
        let (verdict, _) = self.daemon_run(&mut daemon, now());
        verdict
    }

    /// Like [`Attack::daemon`], but hands the daemon back for more steps.
    pub fn daemon_run(&self, daemon: &mut Daemon, at: DateTime<Utc>) -> (Verdict, ()) {
        daemon.process_pending(at).expect("base commit processed");
        self.repo.git(&["checkout", "-q", "main"]);
        self.repo.git(&["merge", "-q", "--ff-only", "attack"]);
        self.repo.git(&["checkout", "-q", "attack"]);
        daemon.process_pending(at).expect("attack commit processed");
        (read_daemon(&self.repo, daemon), ())
    }
}

/// A daemon configuration on `repo` with a fresh key and state directory
/// (both leaked for the test's lifetime: the test process ends soon).
pub fn daemon_config(repo: &TestRepo) -> DaemonConfig {
    let keys = tempfile::tempdir().expect("keys").keep();
    let state = tempfile::tempdir().expect("state").keep();
    let paths = ringmaster::evidence::generate_keypair(&keys, None, false).expect("keygen");
    DaemonConfig {
        repo: RepoLocation::Local(repo.path.clone()),
        store: None,
        state_dir: state,
        key: paths.secret_key,
        key_password: None,
        branch: "main".into(),
        evidence_branch: "evidence".into(),
        poll_interval: std::time::Duration::from_secs(30),
        siem: SiemSink::Off,
        evidence_remote: None,
        listen: None,
        github: None,
        // Every plane explicitly on the simulated fleet (serve refuses a
        // plane without a connector).
        planes: ringmaster::daemon::planes::SimSettings::default()
            .configs(&ringmaster::model::Plane::ALL),
        config_file: None,
        evidence_object_store: None,
        incidents: Default::default(),
        api: None,
        notifications: Vec::new(),
        git_credentials: Default::default(),
    }
}

/// What the daemon concluded about `main`'s tip: each intent's decision
/// from the store, the rules from its latest decision pack, and the
/// diagnostics when the commit was refused.
pub fn read_daemon(repo: &TestRepo, daemon: &Daemon) -> Verdict {
    read_store(repo, daemon.store())
}

/// [`read_daemon`] from a daemon's store (e.g. after `serve --once` exited).
pub fn read_store(repo: &TestRepo, store: &ringmaster::store::Store) -> Verdict {
    let mut verdict = Verdict::default();
    let tip = store
        .last_processed_commit("main")
        .expect("store")
        .expect("a processed commit");
    for diagnostic in tip.diagnostics.as_array().into_iter().flatten() {
        let line = format!(
            "{}: {}",
            diagnostic["file"].as_str().unwrap_or_default(),
            diagnostic["message"].as_str().unwrap_or_default()
        );
        if diagnostic["severity"] == "error" {
            verdict.errors.push(line);
        } else {
            verdict.warnings.push(line);
        }
    }
    for record in store.list_intents().expect("intents") {
        let state = IntentState::from_record(&record);
        verdict.supersedes.insert(
            record.intent_id.clone(),
            state.evaluation.and_then(|e| e.supersedes),
        );
        if let Some(decision) = record.decision {
            verdict.decisions.insert(record.intent_id.clone(), decision);
        }
    }
    for pack in decision_packs(repo) {
        let Some(intent) = pack["intent_id"].as_str() else {
            continue;
        };
        let mut rules = Vec::new();
        for list in ["reasons", "notes"] {
            for reason in pack["body"]["policy"][list]
                .as_array()
                .into_iter()
                .flatten()
            {
                rules.push(reason["rule"].as_str().unwrap_or_default().to_owned());
            }
        }
        verdict.rules.insert(intent.to_owned(), rules);
    }
    verdict
}

/// Every decision pack on the evidence branch, oldest first.
pub fn decision_packs(repo: &TestRepo) -> Vec<Value> {
    let git = |args: &[&str]| -> Vec<u8> {
        let output = Command::new("git")
            .args(args)
            .current_dir(&repo.path)
            .output()
            .expect("git");
        assert!(output.status.success());
        output.stdout
    };
    let names =
        String::from_utf8(git(&["ls-tree", "-r", "--name-only", "evidence"])).expect("utf-8");
    let mut packs: Vec<Value> = names
        .lines()
        .filter(|f| f.ends_with(".json"))
        .filter_map(|f| serde_json::from_slice(&git(&["show", &format!("evidence:{f}")])).ok())
        .filter(|p: &Value| p["record_type"] == "decision")
        .collect();
    packs.sort_by_key(|p| p["sequence"].as_u64());
    packs
}

/// Runs `check` on the verdict of every judge, naming the judge on failure.
pub fn each_judge(attack: &Attack, check: impl Fn(&str, &Verdict)) {
    check("validate --base", &attack.validate());
    check("the PR check", &attack.pr_check());
    check("the daemon", &attack.daemon());
}

/// The details of every event of `event_type` the daemon recorded.
pub fn events_of(daemon: &Daemon, event_type: &str) -> Vec<Value> {
    daemon
        .store()
        .events(&ringmaster::store::EventFilter::default())
        .expect("events")
        .into_iter()
        .filter(|event| event.event_type.as_str() == event_type)
        .map(|event| event.details)
        .collect()
}

/// Every evidence pack of `record_type`, oldest first.
pub fn packs_of(repo: &TestRepo, record_type: &str) -> Vec<Value> {
    let names = repo.git(&["ls-tree", "-r", "--name-only", "evidence"]);
    let mut packs: Vec<Value> = names
        .lines()
        .filter(|f| f.ends_with(".json"))
        .filter_map(|f| serde_json::from_str(&repo.git(&["show", &format!("evidence:{f}")])).ok())
        .filter(|p: &Value| p["record_type"] == record_type)
        .collect();
    packs.sort_by_key(|p| p["sequence"].as_u64());
    packs
}
