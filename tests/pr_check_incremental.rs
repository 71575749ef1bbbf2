//! The incremental PR check (`forge::incremental`) reaches exactly the
//! verdict of the full check (`forge::check::judge`) — state, summary,
//! every intent's decision, risk and reasons, every diagnostic, the changed
//! paths and the rendered comment / check-run text — for every pull
//! request: seeded random edits over a real Git repository (a synthetic
//! tenant of a few hundred intents, made with `git`), including hostile
//! ones, with the clock, the reviews and the runtime facts moving between
//! checks, and the base branch moving under open pull requests.

use chrono::{DateTime, Duration, TimeZone, Utc};
use ringmaster::evaluation::RuntimeFacts;
use ringmaster::forge::comment;
use ringmaster::forge::fetch::PullRequestRevisions;
use ringmaster::forge::incremental::{CheckRequest, PrCheckCache, full_check};
use ringmaster::forge::wire::{BranchRef, PullRequest, Review, User};
use ringmaster::model::{DeploymentIntent, TargetScope};
use ringmaster::source::GovernedRepo;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const INTENTS: usize = 80;

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "dev")
        .env("GIT_AUTHOR_EMAIL", "dev@example.com")
        .env("GIT_COMMITTER_NAME", "dev")
        .env("GIT_COMMITTER_EMAIL", "dev@example.com")
        .output()
        .expect("git runs (install git)");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// xorshift64*: seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// Runtime facts as a daemon's store would hold them: in-flight changes by
/// segment, rolled-back versions by application.
#[derive(Default, Clone)]
struct Facts {
    active: BTreeMap<(String, String, String), Vec<(String, String)>>,
    rolled_back: BTreeMap<String, Vec<String>>,
}

impl RuntimeFacts for Facts {
    fn active_changes(&self, intent: &DeploymentIntent) -> Vec<(String, String)> {
        self.active
            .get(&(
                intent.application_id.clone(),
                intent.target_scope.acquisition_boundary.clone(),
                intent.target_scope.business_unit.clone(),
            ))
            .into_iter()
            .flatten()
            .filter(|(id, _)| *id != intent.intent_id)
            .cloned()
            .collect()
    }
    fn rolled_back_versions(&self, intent: &DeploymentIntent) -> Vec<String> {
        self.rolled_back
            .get(&intent.application_id)
            .cloned()
            .unwrap_or_default()
    }
    fn known_intent(&self, _: &str) -> Option<(String, TargetScope)> {
        None
    }
}

struct Repo {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Repo {
    fn intents(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path.join("intents"))
            .map(|dir| {
                dir.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".yaml"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    fn write(&self, relative: &str, bytes: &[u8]) {
        let path = self.path.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(&path);
        std::fs::write(path, bytes).unwrap();
    }

    fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.path.join(relative)).unwrap_or_default()
    }
}

fn setup() -> Repo {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("governed");
    std::fs::create_dir_all(&path).unwrap();
    ringmaster::synthetic::write(&path, INTENTS).unwrap();
    let repo = Repo { _dir: dir, path };
    // Records and a supersede from the start, so unchanged PRs have some.
    let first = repo.intents()[0].trim_end_matches(".yaml").to_owned();
    repo.write(
        "approvals/cab-seed.yaml",
        approval("cab-seed", &first, "2026-12-02T06:00:00Z").as_bytes(),
    );
    // An approval naming an intent no file defines yet (an error on the
    // approval until a pull request adds it), and one naming the intent a
    // pull request may delete or rename.
    repo.write(
        "approvals/cab-ghost.yaml",
        approval("cab-ghost", "ghost-intent", "2026-12-03T06:00:00Z").as_bytes(),
    );
    let second = repo.intents()[1].trim_end_matches(".yaml").to_owned();
    repo.write(
        "approvals/cab-second.yaml",
        approval("cab-second", &second, "2026-12-04T06:00:00Z").as_bytes(),
    );
    repo.write(
        "exceptions/exc-seed.yaml",
        exception(
            "exc-seed",
            "synthetic-app-00001-1.1.0-intune",
            "2026-12-02T12:00:00Z",
        )
        .as_bytes(),
    );
    // A tenant rule that fails to evaluate (a complete rule with two
    // values) for every intent that conflicts with another: an edit to one
    // intent then puts an error on its unchanged neighbour's file, which
    // the incremental check must find too.
    repo.write(
        "policies/conflict_guard.rego",
        b"package ringmaster.tenant.guard\n\nlevel := 1 if {\n\tcount(input.conflicts) > 0\n}\n\nlevel := 2 if {\n\tcount(input.conflicts) > 0\n}\n\ndeny contains msg if {\n\tlevel == 3\n\tmsg := \"never\"\n}\n",
    );
    git(&repo.path, &["init", "-q", "-b", "main"]);
    git(&repo.path, &["add", "-A"]);
    git(&repo.path, &["commit", "-q", "-m", "synthetic tenant"]);
    repo
}

fn approval(id: &str, intent: &str, expiry: &str) -> String {
    format!(
        "apiVersion: ringmaster.dev/v1\nkind: ApprovalRecord\napproval_id: {id}\ndeployment_intent_id: {intent}\nintent_sha256: \"sha256:0000000000000000000000000000000000000000000000000000000000000000\"\ndecision: approved\ndecided_by: carol\ndecided_at: \"2026-11-24T15:40:00Z\"\nsubmitted_by: alice\nsubmitted_at: \"2026-11-23T09:12:00Z\"\nassigned_to: [carol]\nexpiry: \"{expiry}\"\njustification: test\nemergency_override: false\n"
    )
}

fn exception(id: &str, artifact: &str, expiry: &str) -> String {
    format!(
        "apiVersion: ringmaster.dev/v1\nkind: Exception\nexception_id: {id}\nartifact_id: {artifact}\nartifact_sha256: \"sha256:04bd29d23c428411443359bf858babd953d3d76d6ec2bc417f965f58c5756176\"\nexception_type: vulnerability\nseverity: high\ndetails: test\ncves: [CVE-2022-42003]\ncompensating_controls: [none]\napproved_by: grace\napproved_at: \"2026-05-04T14:30:00Z\"\nexpiry: \"{expiry}\"\nowner: judy\n"
    )
}

fn scope_approval(id: &str, application: &str, expiry: &str) -> String {
    format!(
        "apiVersion: ringmaster.dev/v1\nkind: ApprovalRecord\napproval_id: {id}\napplication_scope:\n  application_id: {application}\n  scope_sha256: \"sha256:1111111111111111111111111111111111111111111111111111111111111111\"\ndecision: approved\ndecided_by: carol\ndecided_at: \"2026-11-24T15:40:00Z\"\nsubmitted_by: alice\nsubmitted_at: \"2026-11-23T09:12:00Z\"\nassigned_to: [carol]\nexpiry: \"{expiry}\"\njustification: test\nemergency_override: false\n"
    )
}

/// The intents the approval records of the working tree name.
fn approved_intents(repo: &Repo) -> Vec<String> {
    let mut named: Vec<String> = std::fs::read_dir(repo.path.join("approvals"))
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .filter_map(|text| {
                    text.lines()
                        .find_map(|l| l.strip_prefix("deployment_intent_id: "))
                        .map(str::to_owned)
                })
                .collect()
        })
        .unwrap_or_default();
    named.sort();
    named
}

/// One random edit of the working tree; returns what it did.
fn edit(repo: &Repo, rng: &mut Rng, serial: usize) -> String {
    let intents = repo.intents();
    let pick = |rng: &mut Rng| intents[rng.below(intents.len())].clone();
    let hours = |rng: &mut Rng| {
        let at = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap()
            + Duration::hours(rng.below(96) as i64);
        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    match rng.below(30) {
        0..=4 => {
            // Edit one intent: rings, version, requester or a comment.
            let name = pick(rng);
            let file = format!("intents/{name}");
            let text = repo.read(&file);
            let text = match rng.below(4) {
                0 => text.replace(", ring-4-global]", "]"),
                1 => text.replace("version: \"1.1.0\"", "version: \"1.0.0\""),
                2 => text.replace("requested_by: synthetic-publisher-", "requested_by: x-"),
                _ => format!("# touched {serial}\n{text}"),
            };
            repo.write(&file, text.as_bytes());
            format!("edit {file}")
        }
        5 | 6 => {
            // A new intent in the segment of another (a conflict).
            let name = pick(rng);
            let id = name.trim_end_matches(".yaml");
            let new_id = format!("{id}-again{serial}");
            let text = repo.read(&format!("intents/{name}"));
            repo.write(
                &format!("intents/{new_id}.yaml"),
                text.replace(&format!("intent_id: {id}"), &format!("intent_id: {new_id}"))
                    .as_bytes(),
            );
            format!("add {new_id}")
        }
        7 => {
            let name = pick(rng);
            std::fs::remove_file(repo.path.join("intents").join(&name)).unwrap();
            format!("delete {name}")
        }
        8 => {
            // Rename: the file only (the id no longer matches), or both.
            let name = pick(rng);
            let id = name.trim_end_matches(".yaml");
            let text = repo.read(&format!("intents/{name}"));
            std::fs::remove_file(repo.path.join("intents").join(&name)).unwrap();
            let new_id = format!("{id}-renamed{serial}");
            let text = if rng.chance(50) {
                text.replace(&format!("intent_id: {id}"), &format!("intent_id: {new_id}"))
            } else {
                text
            };
            repo.write(&format!("intents/{new_id}.yaml"), text.as_bytes());
            format!("rename {name}")
        }
        9 => {
            // Duplicate id across files.
            let name = pick(rng);
            let text = repo.read(&format!("intents/{name}"));
            repo.write(&format!("intents/zz-copy-{serial}.yaml"), text.as_bytes());
            repo.write(&format!("intents/aa-copy-{serial}.yaml"), text.as_bytes());
            format!("duplicate {name}")
        }
        10 => {
            let name = pick(rng);
            let bytes: &[u8] = match rng.below(4) {
                0 => {
                    b"apiVersion: ringmaster.dev/v1\nkind: DeploymentIntent\nintent_id: [unclosed\n"
                }
                1 => b"\xff\xfe not utf-8 \xc3\x28",
                2 => b"a: &anchor {b: 1}\nc: *anchor\n",
                _ => b"apiVersion: ringmaster.dev/v1\nkind: Config\n",
            };
            repo.write(&format!("intents/{name}"), bytes);
            format!("malformed {name}")
        }
        11 => {
            let names = [
                "intents/..evil.yaml",
                "intents/a b.yaml",
                "intents/\u{fc}n\u{ef}code.yaml",
                "intents/x.yml",
                "intents/sub/nested.yaml",
                "intents/.hidden.yaml",
                "intents/back\\slash.yaml",
                "intents/.yaml",
                "approvals/../approvals-x.yaml",
                "stray.yaml",
            ];
            let path = names[rng.below(names.len())];
            let text = repo.read(&format!("intents/{}", pick(rng)));
            repo.write(path, text.as_bytes());
            format!("hostile name {path}")
        }
        12 => {
            let target = repo.path.join("intents").join(format!("link{serial}.yaml"));
            let _ = std::fs::remove_file(&target);
            std::os::unix::fs::symlink("../ringmaster.yaml", &target).unwrap();
            "symlink".into()
        }
        13 => {
            let name = pick(rng);
            let mut text = repo.read(&format!("intents/{name}"));
            text.push_str(&format!("# {}\n", "x".repeat(300 * 1024)));
            repo.write(&format!("intents/{name}"), text.as_bytes());
            format!("oversized {name}")
        }
        14 | 15 => {
            let name = pick(rng);
            let id = name.trim_end_matches(".yaml");
            let id_of = format!("cab-{}", rng.below(4));
            repo.write(
                &format!("approvals/{id_of}.yaml"),
                approval(&id_of, id, &hours(rng)).as_bytes(),
            );
            format!("approval {id_of} for {id}")
        }
        16 => {
            let app = rng.below(INTENTS / 4);
            let id_of = format!("exc-{}", rng.below(3));
            repo.write(
                &format!("exceptions/{id_of}.yaml"),
                exception(
                    &id_of,
                    &format!("synthetic-app-{app:05}-1.1.0-intune"),
                    &hours(rng),
                )
                .as_bytes(),
            );
            format!("exception {id_of}")
        }
        17 => {
            // Supersede a neighbour (same application, other segment).
            let name = pick(rng);
            let id = name.trim_end_matches(".yaml");
            let other = intents
                .iter()
                .map(|n| n.trim_end_matches(".yaml"))
                .find(|n| *n != id && n.starts_with(&id[..id.len().min(18)]))
                .unwrap_or(id)
                .to_owned();
            let mut text = repo.read(&format!("intents/{name}"));
            text.push_str(&format!("supersedes: {other}\n"));
            repo.write(&format!("intents/{name}"), text.as_bytes());
            format!("supersede {id} -> {other}")
        }
        18 => {
            let text = repo.read("ringmaster.yaml");
            repo.write(
                "ringmaster.yaml",
                text.replacen("soak_hours: ", "soak_hours: 1", 1).as_bytes(),
            );
            "ring config".into()
        }
        19 => {
            repo.write(
                &format!("policies/extra{serial}.rego"),
                b"package ringmaster.tenant.extra\n\ndeny contains msg if {\n\tinput.intent.target_scope.business_unit == \"bu-hr\"\n\tmsg := \"hr is frozen\"\n}\n",
            );
            "policy".into()
        }
        20 => {
            let app = rng.below(INTENTS / 4);
            let file = format!("apps/synthetic-app-{app:05}/app.yaml");
            let text = repo.read(&file);
            repo.write(&file, text.replace("bu-hr, ", "").as_bytes());
            format!("application scope {file}")
        }
        21 => {
            // Remove a record.
            let _ = std::fs::remove_file(repo.path.join("approvals/cab-seed.yaml"));
            "remove approval".into()
        }
        22 | 23 => {
            // Delete or rename (file and id) an intent an unchanged approval
            // names: the approval's reference breaks.
            let named = approved_intents(repo);
            if named.is_empty() {
                return "no approval names an intent".into();
            }
            let id = named[rng.below(named.len())].clone();
            let file = format!("intents/{id}.yaml");
            let text = repo.read(&file);
            if text.is_empty() {
                return format!("approved intent {id} already gone");
            }
            std::fs::remove_file(repo.path.join(&file)).unwrap();
            if rng.chance(50) {
                let new_id = format!("{id}-moved{serial}");
                repo.write(
                    &format!("intents/{new_id}.yaml"),
                    text.replace(&format!("intent_id: {id}"), &format!("intent_id: {new_id}"))
                        .as_bytes(),
                );
                format!("rename approved {id}")
            } else {
                format!("delete approved {id}")
            }
        }
        24 => {
            // Add the intent an unchanged approval names (its reference
            // resolves), or put one back.
            let named = approved_intents(repo);
            let id = named
                .iter()
                .find(|id| repo.read(&format!("intents/{id}.yaml")).is_empty())
                .cloned()
                .unwrap_or_else(|| "ghost-intent".to_owned());
            let name = pick(rng);
            let other = name.trim_end_matches(".yaml");
            let text = repo.read(&format!("intents/{name}"));
            repo.write(
                &format!("intents/{id}.yaml"),
                text.replace(&format!("intent_id: {other}"), &format!("intent_id: {id}"))
                    .as_bytes(),
            );
            format!("add approved {id}")
        }
        25 => {
            // Sites the plane cannot honour (a targeting error), or a ring
            // that does not exist (a reference error).
            let name = pick(rng);
            let file = format!("intents/{name}");
            let text = repo.read(&file);
            let text = if rng.chance(50) {
                text.replace("  rings: [", "  sites: [site-a]\n  rings: [")
            } else {
                text.replace("  rings: [", "  rings: [ring-9-nowhere, ")
            };
            repo.write(&file, text.as_bytes());
            format!("targeting {file}")
        }
        26 => {
            // A scope approval, of an application or of none.
            let application = if rng.chance(70) {
                format!("synthetic-app-{:05}", rng.below(INTENTS / 4))
            } else {
                "no-such-app".to_owned()
            };
            let id_of = format!("cab-scope-{}", rng.below(3));
            repo.write(
                &format!("approvals/{id_of}.yaml"),
                scope_approval(&id_of, &application, &hours(rng)).as_bytes(),
            );
            format!("scope approval {id_of} for {application}")
        }
        27 => {
            // Records with broken references: an intent or an artifact that
            // does not exist, a decider who is not a principal.
            let id_of = format!("cab-broken-{}", rng.below(3));
            let text = match rng.below(3) {
                0 => approval(&id_of, "no-such-intent", &hours(rng)),
                1 => approval(&id_of, &pick(rng).replace(".yaml", ""), &hours(rng))
                    .replace("decided_by: carol", "decided_by: nobody"),
                _ => {
                    repo.write(
                        &format!("exceptions/exc-broken-{serial}.yaml"),
                        exception(
                            &format!("exc-broken-{serial}"),
                            "no-such-artifact",
                            &hours(rng),
                        )
                        .as_bytes(),
                    );
                    return "exception for no artifact".into();
                }
            };
            repo.write(&format!("approvals/{id_of}.yaml"), text.as_bytes());
            format!("broken record {id_of}")
        }
        _ => {
            // An approval removed, or pointed at another intent.
            let id_of = if rng.chance(50) {
                "cab-second"
            } else {
                "cab-ghost"
            };
            if rng.chance(50) {
                let _ = std::fs::remove_file(repo.path.join(format!("approvals/{id_of}.yaml")));
                format!("remove {id_of}")
            } else {
                let other = pick(rng).replace(".yaml", "");
                repo.write(
                    &format!("approvals/{id_of}.yaml"),
                    approval(id_of, &other, &hours(rng)).as_bytes(),
                );
                format!("repoint {id_of} to {other}")
            }
        }
    }
}

fn pull_request(number: u64, head: &str, base: &str) -> PullRequest {
    PullRequest {
        number,
        state: "open".into(),
        html_url: None,
        user: Some(User {
            login: "anakamura".into(),
        }),
        head: BranchRef {
            name: format!("pr-{number}"),
            sha: head.to_owned(),
        },
        base: BranchRef {
            name: "main".into(),
            sha: base.to_owned(),
        },
        draft: false,
        merged_at: None,
        merge_commit_sha: None,
        updated_at: None,
    }
}

#[test]
fn the_incremental_check_reaches_the_full_checks_verdict_for_every_pull_request() {
    let repo = setup();
    let mut rng = Rng(0x5eed_2026_1206_0001);
    let mut cache = PrCheckCache::new();
    let mut facts = Facts::default();
    let mut now: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
    let mut main_commits = vec![git(&repo.path, &["rev-parse", "HEAD"])];
    let mut compared = 0;
    let mut differences = Vec::new();
    for number in 1..=70u64 {
        // The base branch moves now and then, under open pull requests.
        if number % 15 == 0 {
            let what = edit(&repo, &mut rng, 10_000 + number as usize);
            git(&repo.path, &["add", "-A"]);
            git(&repo.path, &["commit", "-q", "--allow-empty", "-m", &what]);
            main_commits.push(git(&repo.path, &["rev-parse", "HEAD"]));
        }
        // Mostly from the tip, sometimes from an older commit of main.
        let fork = if rng.chance(75) {
            main_commits.last().unwrap().clone()
        } else {
            main_commits[rng.below(main_commits.len())].clone()
        };
        let branch = format!("pr-{number}");
        git(&repo.path, &["checkout", "-q", "-B", &branch, &fork]);
        let mut did = Vec::new();
        for _ in 0..1 + usize::from(rng.chance(30)) {
            did.push(edit(&repo, &mut rng, number as usize));
        }
        git(&repo.path, &["add", "-A"]);
        git(
            &repo.path,
            &["commit", "-q", "--allow-empty", "-m", &did.join("; ")],
        );
        let head = git(&repo.path, &["rev-parse", "HEAD"]);
        git(&repo.path, &["checkout", "-q", "-f", "main"]);
        git(&repo.path, &["clean", "-qfdx"]);

        // The clock, the runtime facts and the reviews move too.
        now += Duration::minutes(rng.below(24 * 60) as i64);
        if rng.chance(20) {
            let app = rng.below(INTENTS / 4);
            facts.active.insert(
                (
                    format!("synthetic-app-{app:05}"),
                    "acq-001".into(),
                    "bu-finance".into(),
                ),
                vec![(format!("elsewhere-{number}"), "ring-1-canary".into())],
            );
        }
        if rng.chance(10) {
            facts.rolled_back.insert(
                format!("synthetic-app-{:05}", rng.below(INTENTS / 4)),
                vec!["1.1.0".into()],
            );
        }
        let reviews: Vec<Review> = if rng.chance(30) {
            vec![Review {
                id: number,
                user: Some(User {
                    login: if rng.chance(50) {
                        "cjensen"
                    } else {
                        "hschmidt-ops"
                    }
                    .into(),
                }),
                state: "APPROVED".into(),
                commit_id: Some(head.clone()),
                submitted_at: Some(now),
                html_url: None,
            }]
        } else {
            Vec::new()
        };

        let governed = GovernedRepo::open(&repo.path).unwrap();
        let head_oid = git2::Oid::from_str(&head).unwrap();
        let base_oid = git2::Oid::from_str(main_commits.last().unwrap()).unwrap();
        let revisions = PullRequestRevisions {
            head: head_oid,
            base: base_oid,
            fork_point: governed
                .repository
                .merge_base(head_oid, base_oid)
                .unwrap_or(base_oid),
        };
        let history = ringmaster::source::history::change_history(
            &governed,
            revisions.fork_point,
            revisions.head,
        )
        .unwrap();
        let pull_request = pull_request(number, &head, main_commits.last().unwrap());
        let request = CheckRequest {
            pull_request: &pull_request,
            reviews: &reviews,
            history: &history,
            runtime: &facts,
            now,
        };
        let full = full_check(&governed, revisions, &request).unwrap();
        let incremental = cache.check(&governed, revisions, &request).unwrap();
        let full_json = serde_json::to_string_pretty(&full).unwrap();
        let incremental_json = serde_json::to_string_pretty(&incremental).unwrap();
        if full_json != incremental_json || comment::render(&full) != comment::render(&incremental)
        {
            let line = full_json
                .lines()
                .zip(incremental_json.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            differences.push(format!(
                "PR #{number} ({}): full and incremental differ from line {line}:\n  full:        {}\n  incremental: {}",
                did.join("; "),
                full_json.lines().nth(line).unwrap_or(""),
                incremental_json.lines().nth(line).unwrap_or("")
            ));
        }
        compared += 1;
    }
    assert!(
        differences.is_empty(),
        "{} of {compared} pull requests differ:\n{}",
        differences.len(),
        differences.join("\n")
    );
    // The comparison means something only if the incremental path ran.
    let stats = cache.stats.clone();
    eprintln!("{stats:?}");
    assert!(
        stats.incremental >= 30 && stats.full >= 10,
        "incremental {} and full {} checks: the mix of edits no longer exercises both paths",
        stats.incremental,
        stats.full
    );
    assert!(
        stats.judgements < stats.incremental,
        "the base's judgement was not reused: {stats:?}"
    );
}
