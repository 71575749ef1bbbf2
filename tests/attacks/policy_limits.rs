//! A tenant policy cannot take the judge down (issue 10, part B).
//!
//! The two attacks the issue names — 22 levels of nested brackets (an
//! exponential parse) and `numbers.range(1, 1e9)` (a 24 GB allocation) —
//! are refused before regorus sees the text, with the file and line, by
//! `validate`, the PR check and the daemon; the daemon records the commit
//! invalid, moves on, and judges the fixing commit normally. A family of
//! attacks that only show at evaluation (values doubled forty times, big
//! integers squared, comparisons of such values, a two-gigabyte `sprintf`
//! width) ends in the guarded worker's memory or time limit, as an error of
//! that revision, never a hang or a crash of the judge.

use crate::bounded::{Daemon, errors, pr_check, refused_for, validate};
use crate::support::TestRepo;

const HEADER: &str = "package ringmaster.tenant.attack\n\nimport rego.v1\n\n";

/// The sample tenant on `main` with `policies/attack.rego` committed on
/// top: (repository, commit of the attack).
fn attack(policy: &str) -> (TestRepo, String) {
    let repo = TestRepo::sample();
    repo.git(&["checkout", "-q", "-b", "attack"]);
    repo.write("policies/attack.rego", policy);
    let commit = repo.commit_all("tenant policy");
    repo.git(&["checkout", "-q", "main"]);
    (repo, commit)
}

fn nested_brackets() -> String {
    format!("{HEADER}x := {}{}\n", "[".repeat(22), "]".repeat(22))
}

fn huge_range() -> String {
    format!(
        "{HEADER}deny contains {{\"rule\": \"attack.range\", \"message\": \"many\"}} if {{\n\tcount(numbers.range(1, 1e9)) > 0\n}}\n"
    )
}

/// `validate`, the PR check and the daemon all refuse `policy` at
/// `policies/attack.rego:line`, and the daemon judges the fix.
fn refused_by_every_judge(policy: &str, line: u64, needle: &str) {
    let (repo, commit) = attack(policy);

    let (code, report) = validate(&repo, "attack");
    assert_eq!(code, 1, "validate fails: {report}");
    let found = errors(&report);
    assert!(
        found.iter().any(
            |e| e.starts_with(&format!("policies/attack.rego:{line}: policy limit"))
                && e.contains(needle)
        ),
        "validate names the file and line: {found:?}"
    );

    let verdict = pr_check(&repo, "main", "attack");
    assert!(
        verdict
            .blocking
            .iter()
            .any(|d| d.file == "policies/attack.rego"
                && d.line == line as usize
                && d.message.contains(needle)),
        "the PR check blocks on the file and line: {:?}",
        verdict.blocking
    );

    let daemon = Daemon::new(&repo);
    daemon.step();
    let judged_before = daemon.decisions();
    assert_eq!(judged_before.len(), 7, "the sample is judged first");
    repo.git(&["merge", "-q", "--ff-only", "attack"]);
    daemon.step();
    let processed = daemon.processed(&commit);
    assert!(
        refused_for(&processed, "policies/attack.rego"),
        "the daemon records the commit invalid and moves on: {processed:?}"
    );
    assert_eq!(
        daemon.decisions(),
        judged_before,
        "the last good snapshot stays in force"
    );

    // The fix: the file goes, and the commit is judged like any other.
    std::fs::remove_file(repo.path.join("policies/attack.rego")).expect("remove");
    let fix = repo.commit_all("remove the attack");
    daemon.step();
    let processed = daemon.processed(&fix);
    assert_eq!(
        processed.outcome,
        ringmaster::store::CommitOutcome::Ok,
        "the fixing commit is judged normally: {processed:?}"
    );
}

#[test]
fn nested_bracket_tenant_rego_is_refused_by_every_judge() {
    refused_by_every_judge(&nested_brackets(), 5, "first element");
}

#[test]
fn huge_range_tenant_rego_is_refused_by_every_judge() {
    refused_by_every_judge(&huge_range(), 6, "numbers.range");
}

/// `count` rules doubling a value forty times, then `last` on the result.
fn doubled(seed: &str, step: &str, last: &str) -> String {
    let mut text = format!("{HEADER}v0 := {seed}\n");
    for index in 1..=40 {
        let previous = format!("v{}", index - 1);
        text.push_str(&format!(
            "v{index} := {}\n",
            step.replace("PREV", &previous)
        ));
    }
    text.push_str(&format!(
        "deny contains {{\"rule\": \"attack.value\", \"message\": m}} if {{\n\t{last}\n}}\n"
    ));
    text
}

/// Policies that are within every limit of the text, and blow up only when
/// evaluated: each is refused as an error of the revision by the memory or
/// time limit of the guarded worker, within seconds.
#[test]
fn values_that_blow_up_at_evaluation_end_in_the_workers_limits() {
    let family = [
        (
            "concat doubling (memory)",
            doubled(
                "\"xxxxxxxxxxxxxxxx\"",
                "concat(\"\", [PREV, PREV])",
                "m := sprintf(\"%d\", [count(v40)])",
            ),
        ),
        (
            "shared array serialised (time or memory)",
            doubled("[\"x\"]", "[PREV, PREV]", "m := json.marshal(v40)"),
        ),
        (
            "big integer squared (time or memory)",
            doubled(
                "9223372036854775807",
                "PREV * PREV",
                "v40 > 1\n\tm := \"big\"",
            ),
        ),
        (
            "two-gigabyte sprintf width (memory)",
            format!(
                "{HEADER}deny contains {{\"rule\": \"attack.width\", \"message\": m}} if {{\n\tm := sprintf(\"%2000000000d\", [1])\n}}\n"
            ),
        ),
        (
            "walk over a shared value (time or memory)",
            doubled(
                "[\"x\"]",
                "[PREV, PREV]",
                "m := sprintf(\"%d\", [count(walk(v40))])",
            ),
        ),
    ];
    let handles: Vec<_> = family
        .into_iter()
        .map(|(name, policy)| {
            std::thread::spawn(move || {
                let (repo, _) = attack(&policy);
                let (code, report) = validate(&repo, "attack");
                (name, code, errors(&report))
            })
        })
        .collect();
    for handle in handles {
        let (name, code, found) = handle.join().expect("validate ran");
        assert_eq!(code, 1, "{name}: the revision is refused: {found:?}");
        assert!(
            found
                .iter()
                .any(|e| e.contains("memory limit") || e.contains("time limit")),
            "{name}: a limit stopped it: {found:?}"
        );
    }
}

/// The daemon moves past a commit whose tenant policy exhausts the worker's
/// memory, and judges the fixing commit.
#[test]
fn the_daemon_moves_past_a_policy_that_exhausts_memory() {
    let policy = doubled(
        "\"xxxxxxxxxxxxxxxx\"",
        "concat(\"\", [PREV, PREV])",
        "m := sprintf(\"%d\", [count(v40)])",
    );
    let (repo, commit) = attack(&policy);
    let daemon = Daemon::new(&repo);
    // The attack is the first commit this daemon judges (its root of
    // authority), so its policy is in force and must be evaluated: a policy
    // a later commit adds without an admin is never in force at all
    // (`rules_in_force.rs`).
    repo.git(&["merge", "-q", "--ff-only", "attack"]);
    daemon.step();
    let processed = daemon.processed(&commit);
    assert_eq!(processed.outcome, ringmaster::store::CommitOutcome::Invalid);
    // Which bound trips first depends on the machine's load: the memory
    // bound on an idle machine, the deadline on a busy one. Either way the
    // worker was stopped and the commit recorded as unjudgeable.
    let shown = processed.diagnostics.to_string();
    assert!(
        shown.contains("memory limit") || shown.contains("time limit"),
        "{shown}"
    );
    std::fs::remove_file(repo.path.join("policies/attack.rego")).expect("remove");
    let fix = repo.commit_all("remove the attack");
    daemon.step();
    assert_eq!(
        daemon.processed(&fix).outcome,
        ringmaster::store::CommitOutcome::Ok
    );
}
