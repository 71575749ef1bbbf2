//! Benchmark: the PR check of a pull request that changes one intent in a
//! synthetic repository of N intents (default 10,000;
//! `RINGMASTER_BENCH_INTENTS` to change), read from a real Git repository.
//!
//! Prints, each as median and p95 over its runs:
//! - **full**: today's code path before the cache (`incremental::full_check`,
//!   i.e. `forge::check::judge` on every entry of head, base and fork point);
//! - **cold**: the incremental check with an empty cache (loads and judges
//!   the base, then the PR);
//! - **warm**: the incremental check of a new PR changing one intent, the
//!   base cached (the clock moves a minute between checks, as in the daemon).
//!
//! The target is warm ≤ 50 ms at 10,000 intents. Every warm verdict
//! is compared with the full check's for the same PR (a wrong fast answer is
//! no answer).
//!
//! **Memory**: the heap the cache holds (every allocation counted by this
//! benchmark's allocator, live bytes with the cache minus without it),
//! after the warm runs (one revision) and at its bound: three revisions
//! (the base branch moved twice under open pull requests) and three
//! judgements.
//!
//! Run: `cargo bench --bench pr_check`; `RINGMASTER_BENCH_RUNS` (warm runs,
//! default 30), `RINGMASTER_BENCH_COLD_RUNS` (default 3).

use chrono::{Duration, TimeZone, Utc};
use ringmaster::evaluation::NoRuntime;
use ringmaster::forge::fetch::PullRequestRevisions;
use ringmaster::forge::incremental::{CheckRequest, PrCheckCache, full_check};
use ringmaster::forge::wire::{BranchRef, PullRequest, User};
use ringmaster::source::GovernedRepo;
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// The system allocator, counting the bytes live.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args([
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@example.invalid",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(output.status.success(), "git {args:?} failed");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn summary(name: &str, mut millis: Vec<f64>) {
    millis.sort_by(f64::total_cmp);
    let median = millis[millis.len() / 2];
    let p95 = millis[((millis.len() as f64 * 0.95).ceil() as usize).clamp(1, millis.len()) - 1];
    println!(
        "{name:<6} median {median:>9.1} ms   p95 {p95:>9.1} ms   ({} runs)",
        millis.len()
    );
}

fn main() {
    let intents = env("RINGMASTER_BENCH_INTENTS", 10_000);
    let warm_runs = env("RINGMASTER_BENCH_RUNS", 30);
    let cold_runs = env("RINGMASTER_BENCH_COLD_RUNS", 3);

    let dir = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    ringmaster::synthetic::write(dir.path(), intents).expect("write synthetic repo");
    git(dir.path(), &["init", "-q", "-b", "main"]);
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-q", "-m", "synthetic"]);
    let base = git(dir.path(), &["rev-parse", "HEAD"]);

    // One branch per PR, each changing a different intent (its rings).
    let mut names: Vec<String> = std::fs::read_dir(dir.path().join("intents"))
        .expect("intents")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let prs = warm_runs + cold_runs + 1;
    let step = (names.len() / prs).max(1);
    let mut heads = Vec::new();
    for number in 0..prs {
        let name = &names[(number * step) % names.len()];
        git(
            dir.path(),
            &["checkout", "-q", "-B", &format!("pr-{number}"), &base],
        );
        let path = dir.path().join("intents").join(name);
        let text = std::fs::read_to_string(&path).expect("intent");
        std::fs::write(&path, text.replace(", ring-4-global]", "]")).expect("write");
        git(
            dir.path(),
            &["commit", "-q", "-am", &format!("narrow {name}")],
        );
        heads.push(git(dir.path(), &["rev-parse", "HEAD"]));
    }
    git(dir.path(), &["checkout", "-q", "main"]);
    println!(
        "{intents} intents committed and {prs} pull requests (one intent each) made in {:.1?}",
        started.elapsed()
    );

    let repo = GovernedRepo::open(dir.path()).expect("repo");
    let base_oid = git2::Oid::from_str(&base).expect("oid");
    let start = Utc.with_ymd_and_hms(2026, 12, 6, 3, 0, 0).unwrap();
    let check = |cache: Option<&mut PrCheckCache>, number: usize, minutes: i64| {
        let head = heads[number].clone();
        let pull_request = PullRequest {
            number: number as u64 + 1,
            state: "open".into(),
            html_url: None,
            user: Some(User {
                login: "anakamura".into(),
            }),
            head: BranchRef {
                name: format!("pr-{number}"),
                sha: head.clone(),
            },
            base: BranchRef {
                name: "main".into(),
                sha: base.clone(),
            },
            draft: false,
            merged_at: None,
            merge_commit_sha: None,
            updated_at: None,
        };
        let began = Instant::now();
        let head_oid = git2::Oid::from_str(&head).expect("oid");
        let revisions = PullRequestRevisions {
            head: head_oid,
            base: base_oid,
            fork_point: repo
                .repository
                .merge_base(head_oid, base_oid)
                .expect("merge base"),
        };
        let history = ringmaster::source::history::change_history(
            &repo,
            revisions.fork_point,
            revisions.head,
        )
        .expect("history");
        let request = CheckRequest {
            pull_request: &pull_request,
            reviews: &[],
            history: &history,
            runtime: &NoRuntime,
            now: start + Duration::minutes(minutes),
        };
        let verdict = match cache {
            Some(cache) => cache.check(&repo, revisions, &request),
            None => full_check(&repo, revisions, &request),
        }
        .expect("check");
        (began.elapsed().as_secs_f64() * 1000.0, verdict)
    };

    if cold_runs > 0 {
        let mut full = Vec::new();
        for run in 0..cold_runs {
            full.push(check(None, run, run as i64).0);
        }
        summary("full", full);

        let mut cold = Vec::new();
        for run in 0..cold_runs {
            let mut cache = PrCheckCache::new();
            cold.push(check(Some(&mut cache), run, run as i64).0);
            assert_eq!(cache.stats.incremental, 1, "a one-intent PR is incremental");
        }
        summary("cold", cold);
    }

    let mut cache = PrCheckCache::new();
    check(Some(&mut cache), cold_runs, 0);
    let mut warm = Vec::new();
    let mut verdicts = Vec::new();
    for run in 0..warm_runs {
        let number = cold_runs + 1 + run;
        let (millis, verdict) = check(Some(&mut cache), number, 1 + run as i64);
        warm.push(millis);
        verdicts.push((number, 1 + run as i64, verdict));
    }
    let stats = cache.stats.clone();
    summary("warm", warm);
    // The heap the warm cache holds: live bytes with it minus without it.
    let with_cache = LIVE.load(Ordering::Relaxed);
    let held = cache.held();
    drop(cache);
    let without = LIVE.load(Ordering::Relaxed);
    println!(
        "cache memory after the warm runs: {:.1} MiB ({} revision(s), {} judgement(s), the working copy)",
        mib(with_cache.saturating_sub(without)),
        held.0,
        held.1
    );
    println!("the last warm check, step by step:");
    for (step, took) in &stats.last_phases {
        println!("  {step:<45} {:>8.2} ms", took.as_secs_f64() * 1000.0);
    }
    println!(
        "warm checks: {} incremental, {} full, {} base judgement(s), {} intent(s) re-judged by the last",
        stats.incremental, stats.full, stats.judgements, stats.last_rejudged
    );
    assert_eq!(stats.judgements, 1, "the base was judged once");
    // The same verdicts as the full check (a few, to keep the run short).
    for (number, minutes, verdict) in verdicts.iter().step_by((warm_runs / 3).max(1)) {
        let (_, reference) = check(None, *number, *minutes);
        assert_eq!(
            serde_json::to_string(verdict).unwrap(),
            serde_json::to_string(&reference).unwrap(),
            "PR {number}: the incremental verdict differs from the full check's"
        );
    }
    println!("warm verdicts equal the full check's (sampled)");

    // The cache at its bound: the base branch moves twice; pull requests
    // forked from each of its three commits are checked against its tip.
    let mut commits = vec![base.clone()];
    for round in 0..2 {
        git(dir.path(), &["checkout", "-q", "main"]);
        let name = &names[(round * 7 + 3) % names.len()];
        let path = dir.path().join("intents").join(name);
        let text = std::fs::read_to_string(&path).expect("intent");
        std::fs::write(&path, format!("# base moved {round}\n{text}")).expect("write");
        git(dir.path(), &["commit", "-q", "-am", "base moves"]);
        commits.push(git(dir.path(), &["rev-parse", "HEAD"]));
    }
    let tip = git2::Oid::from_str(commits.last().unwrap()).expect("oid");
    let before = LIVE.load(Ordering::Relaxed);
    let mut cache = PrCheckCache::new();
    for (number, fork) in commits.iter().enumerate() {
        git(dir.path(), &["checkout", "-q", "-B", "bound", fork]);
        let name = &names[(number * 11 + 5) % names.len()];
        let path = dir.path().join("intents").join(name);
        let text = std::fs::read_to_string(&path).expect("intent");
        std::fs::write(&path, text.replace(", ring-4-global]", "]")).expect("write");
        git(dir.path(), &["commit", "-q", "-am", "narrow"]);
        let head = git2::Oid::from_str(&git(dir.path(), &["rev-parse", "HEAD"])).expect("oid");
        let pull_request = PullRequest {
            number: 1000 + number as u64,
            state: "open".into(),
            html_url: None,
            user: Some(User {
                login: "anakamura".into(),
            }),
            head: BranchRef {
                name: "bound".into(),
                sha: head.to_string(),
            },
            base: BranchRef {
                name: "main".into(),
                sha: tip.to_string(),
            },
            draft: false,
            merged_at: None,
            merge_commit_sha: None,
            updated_at: None,
        };
        let revisions = PullRequestRevisions {
            head,
            base: tip,
            fork_point: repo.repository.merge_base(head, tip).expect("merge base"),
        };
        let history =
            ringmaster::source::history::change_history(&repo, revisions.fork_point, head)
                .expect("history");
        let request = CheckRequest {
            pull_request: &pull_request,
            reviews: &[],
            history: &history,
            runtime: &NoRuntime,
            now: start,
        };
        cache.check(&repo, revisions, &request).expect("check");
    }
    let full = LIVE.load(Ordering::Relaxed);
    let held = cache.held();
    drop(cache);
    println!(
        "cache memory at its bound: {:.1} MiB ({} revisions, {} judgements, the working copy); {:.1} MiB live after dropping it (of {:.1} MiB before it)",
        mib(full.saturating_sub(LIVE.load(Ordering::Relaxed))),
        held.0,
        held.1,
        mib(LIVE.load(Ordering::Relaxed)),
        mib(before)
    );

    // What one revision holds, part by part.
    println!("one revision of {intents} intents, part by part (heap bytes):");
    let parts = ringmaster::forge::incremental::memory_breakdown(
        &repo,
        base_oid,
        &NoRuntime,
        start,
        &|| LIVE.load(Ordering::Relaxed),
    )
    .expect("breakdown");
    for (part, bytes) in parts {
        println!("  {part:<75} {:>8.2} MiB", mib(bytes));
    }
}
