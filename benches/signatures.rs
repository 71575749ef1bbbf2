//! Signature-check benchmark (a plain `harness = false` binary that prints
//! figures): what proving who decided costs per commit and per change.
//!
//! A temporary Git repository gets N commits, each signed with an SSH key
//! (`ssh-keygen -t ed25519`, `git commit -S` with `gpg.format ssh`) and each
//! adding one approval record, as a signed approval arrives. Then:
//!
//! 1. `model::signing::check`: one SSHSIG verified over the signed payload
//!    (the cryptographic part alone), per second;
//! 2. `source::history::commit_signature`: the `gpgsig` header extracted
//!    with git2 and verified, per commit per second (what the daemon pays
//!    for each commit it judges);
//! 3. `source::history::change_history` over the whole change of N commits:
//!    which commit wrote each of the N approval records and what its
//!    signature proves, plus every commit's signature for
//!    `require_signed_commits` (what `validate --base` and the PR check pay
//!    per change), as records checked per second.
//!
//! `cargo bench --bench signatures`; `RINGMASTER_BENCH_SIGNED_COMMITS` (N,
//! default 200), `RINGMASTER_BENCH_ROUNDS` (repetitions of 1 and 2, default
//! 5). Needs `git` and `ssh-keygen` (Debian `openssh-client`).

use git2::Oid;
use ringmaster::model::signing;
use ringmaster::source::{GovernedRepo, history};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn environment_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn run(directory: &Path, program: &str, arguments: &[&str]) -> String {
    let output = Command::new(program)
        .current_dir(directory)
        .args(arguments)
        .output()
        .unwrap_or_else(|error| panic!("{program} does not run ({error}); install it"));
    assert!(
        output.status.success(),
        "{program} {arguments:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn per_second(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let commits = environment_number("RINGMASTER_BENCH_SIGNED_COMMITS", 200).max(1);
    let rounds = environment_number("RINGMASTER_BENCH_ROUNDS", 5).max(1);
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = dir.path().join("governed");
    std::fs::create_dir_all(repo.join("approvals")).expect("mkdir");
    let key = dir.path().join("signer");
    run(
        dir.path(),
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "carol",
            "-f",
            key.to_str().expect("utf-8"),
        ],
    );
    run(&repo, "git", &["init", "-q", "-b", "main"]);
    for (name, value) in [
        ("user.name", "Carol"),
        ("user.email", "carol@example.com"),
        ("gpg.format", "ssh"),
        ("user.signingkey", key.to_str().expect("utf-8")),
        ("commit.gpgsign", "true"),
    ] {
        run(&repo, "git", &["config", name, value]);
    }
    std::fs::write(repo.join("ringmaster.yaml"), "kind: Config\n").expect("write");
    run(&repo, "git", &["add", "-A"]);
    run(&repo, "git", &["commit", "-q", "-m", "base"]);
    let base = run(&repo, "git", &["rev-parse", "HEAD"]);
    let started = Instant::now();
    for index in 0..commits {
        std::fs::write(
            repo.join(format!("approvals/cab-{index:05}.yaml")),
            format!(
                "kind: ApprovalRecord\napproval_id: cab-{index:05}\ndeployment_intent_id: i-{index}\ndecision: approved\ndecided_by: carol\n"
            ),
        )
        .expect("write");
        run(&repo, "git", &["add", "-A"]);
        run(
            &repo,
            "git",
            &["commit", "-q", "-S", "-m", &format!("approval {index}")],
        );
    }
    println!(
        "setup: {commits} signed commits (ed25519, git commit -S) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let head = run(&repo, "git", &["rev-parse", "HEAD"]);
    let governed = GovernedRepo::open(&repo).expect("open");
    let repository = &governed.repository;
    let base = Oid::from_str(&base).expect("oid");
    let head = Oid::from_str(&head).expect("oid");
    let oids: Vec<Oid> = {
        let mut walk = repository.revwalk().expect("walk");
        walk.push(head).expect("push");
        walk.hide(base).expect("hide");
        walk.collect::<Result<_, _>>().expect("walk")
    };
    let extracted: Vec<(String, Vec<u8>)> = oids
        .iter()
        .map(|oid| {
            let (signature, payload) = repository.extract_signature(oid, None).expect("signed");
            (
                String::from_utf8(signature.to_vec()).expect("utf-8"),
                payload.to_vec(),
            )
        })
        .collect();

    // 1. verification alone.
    let mut verify_rates = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        for (signature, payload) in &extracted {
            let check = signing::check(Some(signature), payload);
            assert!(check.fingerprint().is_some(), "{check:?}");
        }
        verify_rates.push(per_second(extracted.len() as u64, started.elapsed()));
    }
    let verify = median(verify_rates);
    println!(
        "signing::check (SSHSIG ed25519 verify): {verify:.0} signatures/s ({:.1} µs each), median of {rounds} rounds of {}",
        1e6 / verify,
        extracted.len()
    );

    // 2. per commit, extraction included.
    let mut commit_rates = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        for oid in &oids {
            let signed = history::commit_signature(repository, *oid);
            assert!(signed.signature.fingerprint().is_some());
        }
        commit_rates.push(per_second(oids.len() as u64, started.elapsed()));
    }
    let per_commit = median(commit_rates);
    println!(
        "history::commit_signature (git2 extract + verify): {per_commit:.0} commits/s ({:.1} µs per commit)",
        1e6 / per_commit
    );

    // 3. one change of N commits, N records.
    let mut change_times = Vec::new();
    for _ in 0..rounds.min(3) {
        let started = Instant::now();
        let change = history::change_history(&governed, base, head).expect("history");
        change_times.push(started.elapsed().as_secs_f64());
        assert_eq!(change.signed.len() as u64, commits);
        assert_eq!(change.commits.len() as u64, commits);
    }
    let change = median(change_times);
    println!(
        "history::change_history ({commits} commits, {commits} approval records): {:.1} ms per change, {:.0} records checked/s",
        change * 1e3,
        commits as f64 / change
    );
}
