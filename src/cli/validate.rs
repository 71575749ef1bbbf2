//! `ringmaster validate`: every finding about a revision, and each intent's decision.

use super::{Format, RepoArgs, output};
use crate::diagnostic::Severity;
use crate::evaluation::{Evaluation, NoRuntime, RuntimeFacts};
use crate::judge::{self, Case, Judgement, Proof};
use crate::model::{Entry, Snapshot};
use crate::policy::Decision;
use crate::progress::Progress;
use crate::source::{GovernedRepo, read_worktree};
use anyhow::Context as _;
use chrono::{DateTime, Utc};
use serde_json::json;
use std::path::Path;
use std::process::ExitCode;

/// A revision's entries and how to name it in reports.
pub(super) struct Revision {
    pub entries: Vec<Entry>,
    /// e.g. `sample-repo @ 1a2b3c4 (HEAD)` or `sample-repo (work tree)`.
    pub label: String,
    /// Path of the governed root inside the Git repository, for annotations.
    pub subdir: String,
    /// Open repository, when reading revisions (for `--base`).
    pub repo: Option<GovernedRepo>,
    /// The commit read (`None` for a work tree).
    pub commit: Option<git2::Oid>,
}

pub(super) fn read(args: &RepoArgs) -> anyhow::Result<Revision> {
    if args.worktree {
        let entries = read_worktree(&args.repo)?;
        let subdir = GovernedRepo::open(&args.repo)
            .map(|r| r.subdir)
            .unwrap_or_default();
        return Ok(Revision {
            entries,
            label: format!("{} (work tree)", args.repo.display()),
            subdir,
            repo: None,
            commit: None,
        });
    }
    let repo = GovernedRepo::open(&args.repo)?;
    let commit = repo.resolve(&args.rev)?;
    let entries = repo.entries_at(commit)?;
    let short = &commit.to_string()[..10];
    Ok(Revision {
        entries,
        label: format!("{} @ {short} ({})", args.repo.display(), args.rev),
        subdir: repo.subdir.clone(),
        repo: Some(repo),
        commit: Some(commit),
    })
}

/// The base revision of `validate --base` / `plan --base`: its snapshot is
/// the rules in force, and the fork point (merge base of the base and the
/// revision) is what the change started from, exactly as in the PR check.
pub(super) struct Base {
    pub rules: Snapshot,
    pub fork_point: Snapshot,
    /// Who signed the commits from the fork point to the revision.
    pub history: crate::authority::ChangeHistory,
}

/// Loads the base revision and the fork point, if `--base` was given.
pub(super) fn base_revision(
    revision: &Revision,
    base: Option<&str>,
) -> anyhow::Result<Option<Base>> {
    let Some(base) = base else {
        return Ok(None);
    };
    let repo = revision.repo.as_ref().context(
        "--base needs a Git revision to compare with; it cannot be used with --worktree alone",
    )?;
    let base_commit = repo.resolve(base)?;
    let (rules, _) = crate::judge::load(&repo.entries_at(base_commit)?);
    let fork_point = match revision.commit {
        Some(head) => repo
            .repository
            .merge_base(base_commit, head)
            .unwrap_or(base_commit),
        None => base_commit,
    };
    let history = match revision.commit {
        Some(head) => crate::source::history::change_history(repo, fork_point, head)?,
        None => crate::authority::ChangeHistory::default(),
    };
    let fork_point = if fork_point == base_commit {
        rules.clone()
    } else {
        crate::judge::load(&repo.entries_at(fork_point)?).0
    };
    Ok(Some(Base {
        rules,
        fork_point,
        history,
    }))
}

/// Judges a revision as `validate` and `plan` do: by its own rules, or with
/// `--base`, by the base's rules exactly as the PR check does (without
/// reviews).
pub(super) fn judge_revision(
    revision: &Revision,
    base: Option<&Base>,
    now: DateTime<Utc>,
) -> Judgement {
    judge_revision_with(revision, base, &NoRuntime, now)
}

/// [`judge_revision`] with runtime facts (`validate --state`).
pub(super) fn judge_revision_with(
    revision: &Revision,
    base: Option<&Base>,
    runtime: &dyn RuntimeFacts,
    now: DateTime<Utc>,
) -> Judgement {
    judge_revision_observed(revision, base, runtime, now, &crate::progress::Silent)
}

fn judge_revision_observed(
    revision: &Revision,
    base: Option<&Base>,
    runtime: &dyn RuntimeFacts,
    now: DateTime<Utc>,
    progress: &dyn Progress,
) -> Judgement {
    judge::judge_observed(case(revision, base, runtime, now), progress)
}

/// The facts `validate` and `plan` judge a revision with.
fn case<'a>(
    revision: &'a Revision,
    base: Option<&'a Base>,
    runtime: &'a dyn RuntimeFacts,
    now: DateTime<Utc>,
) -> Case<'a> {
    Case {
        entries: &revision.entries,
        rules: base.map(|b| &b.rules),
        base: base.map(|b| &b.rules),
        proof: base.map(|b| Proof::without_reviews(Some(&b.fork_point), &b.history)),
        runtime,
        now,
    }
}

/// The runtime facts of the daemon whose state directory is `state`, read
/// from its store without changing it; none without a state directory.
fn runtime_facts(state: Option<&Path>) -> anyhow::Result<Box<dyn RuntimeFacts>> {
    let Some(state) = state else {
        return Ok(Box::new(NoRuntime));
    };
    let location = super::store_location(state);
    let store = crate::store::Store::open_existing_location(&location).with_context(|| {
        format!(
            "--state {}: cannot open the daemon's store",
            state.display()
        )
    })?;
    Ok(Box::new(crate::daemon::process::StoreFacts::read(&store)?))
}

pub(super) fn run(
    args: &RepoArgs,
    format: Format,
    strict: bool,
    base: Option<&str>,
    state: Option<&Path>,
    wall_clock: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    // Transparent huge pages make the allocator's arenas resident 2 MiB at a
    // time: ~20 MiB more peak RSS on a 10,000-intent repository for no
    // measurable speed in a process this short. Off for this process (and
    // the policy workers it starts, which inherit it); best effort.
    let _ = rustix::thread::disable_transparent_huge_pages(true);
    // A spinner per stage on a terminal (reading thousands of files and
    // judging thousands of intents takes seconds); nothing otherwise.
    // `RINGMASTER_TIMINGS=1`: each stage's time and memory on stderr.
    let progress = Timed::new(super::progress::Reporter::on_stderr());
    let (revision, files, (own, diagnostics)) = if args.worktree {
        progress.stage(&format!("reading {}", args.repo.display()), None);
        let mut revision = read(args)?;
        // Each file's bytes become its document's text (kept for
        // positions): held once, never copied.
        let files = revision.entries.len();
        let loaded = judge::load_owned_observed(std::mem::take(&mut revision.entries), &progress);
        (revision, files, loaded)
    } else {
        // A revision is loaded as its blobs are read, and no file's text is
        // kept (`GovernedRepo::load_at`): the same snapshot and diagnostics
        // as reading every entry and then loading them.
        progress.stage(
            &format!("reading and loading {}", args.repo.display()),
            None,
        );
        let repo = GovernedRepo::open(&args.repo)?;
        let commit = repo.resolve(&args.rev)?;
        let (files, snapshot, diagnostics) = repo.load_at(commit)?;
        let short = &commit.to_string()[..10];
        let revision = Revision {
            entries: Vec::new(),
            label: format!("{} @ {short} ({})", args.repo.display(), args.rev),
            subdir: repo.subdir.clone(),
            repo: Some(repo),
            commit: Some(commit),
        };
        let loaded = judge::checks_observed((snapshot, diagnostics), &progress);
        (revision, files, loaded)
    };
    let base = base_revision(&revision, base)?;
    let now = args.now.unwrap_or(wall_clock);
    let runtime = runtime_facts(state)?;
    let judgement = judge::judge_snapshot_observed(
        case(&revision, base.as_ref(), runtime.as_ref(), now),
        own,
        diagnostics,
        &progress,
    );
    progress.stage("writing the report", None);
    // `--strict` also fails on a scope change no CAB scope approval covers
    // (it is pending, like an intent waiting for approval).
    let scopes_pending = judgement.unapproved_scope_changes().next().is_some();
    let evaluation = &judgement.evaluation;
    match format {
        Format::Human => output::print_validation(&revision.label, files, evaluation),
        Format::Json => {
            // Written as it is serialised, one entry at a time: never built
            // as one value (tens of MB for 10,000 intents) or one string.
            use std::io::Write as _;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            serde_json::to_writer_pretty(&mut out, &JsonReport(evaluation))?;
            writeln!(out)?;
            out.flush()?;
        }
        Format::Github => print_github(&revision.subdir, evaluation),
    }
    drop(progress);
    let code = exit_code(evaluation, strict, scopes_pending);
    // The process ends with this command: freeing tens of thousands of
    // parsed objects one by one would only delay the exit.
    std::mem::forget(judgement);
    std::mem::forget(revision);
    Ok(code)
}

/// Stages drawn by the CLI's reporter and, with `RINGMASTER_TIMINGS` set
/// (to anything but `0`), each stage's wall time, the resident memory at its
/// end and the peak so far, printed on stderr when the next stage starts:
/// `timing: <stage>: <ms> ms, rss <MiB> MiB, peak <MiB> MiB`.
struct Timed {
    inner: super::progress::Reporter,
    /// The stage running and when it started; `None` when timings are off.
    current: Option<std::sync::Mutex<(String, std::time::Instant)>>,
}

impl Timed {
    fn new(inner: super::progress::Reporter) -> Timed {
        let enabled = std::env::var_os("RINGMASTER_TIMINGS").is_some_and(|value| value != "0");
        Timed {
            inner,
            current: enabled
                .then(|| std::sync::Mutex::new((String::new(), std::time::Instant::now()))),
        }
    }

    fn finish_stage(&self, next: Option<&str>) {
        let Some(current) = &self.current else { return };
        let mut current = current.lock().unwrap_or_else(|e| e.into_inner());
        if !current.0.is_empty() {
            let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
            let field = |name: &str| {
                status
                    .lines()
                    .find_map(|line| line.strip_prefix(name))
                    .and_then(|rest| {
                        rest.trim()
                            .trim_end_matches("kB")
                            .trim()
                            .parse::<u64>()
                            .ok()
                    })
                    .map_or("n/a".to_owned(), |kib| {
                        format!("{:.0}", kib as f64 / 1024.0)
                    })
            };
            eprintln!(
                "timing: {}: {:.1} ms, rss {} MiB, peak {} MiB",
                current.0,
                current.1.elapsed().as_secs_f64() * 1000.0,
                field("VmRSS:"),
                field("VmHWM:"),
            );
        }
        *current = (
            next.unwrap_or_default().to_owned(),
            std::time::Instant::now(),
        );
    }
}

impl Progress for Timed {
    fn stage(&self, what: &str, total: Option<u64>) {
        self.finish_stage(Some(what));
        self.inner.stage(what, total);
    }

    fn advance(&self, count: u64) {
        self.inner.advance(count);
    }
}

impl Drop for Timed {
    fn drop(&mut self) {
        self.finish_stage(None);
    }
}

fn exit_code(evaluation: &Evaluation, strict: bool, scopes_pending: bool) -> ExitCode {
    let failing = evaluation.has_errors()
        || (strict && scopes_pending)
        || evaluation
            .intents
            .iter()
            .any(|intent| match intent.decision() {
                Decision::Deny => true,
                Decision::RequireApproval | Decision::RequireException => strict,
                Decision::Allow => false,
            });
    if failing {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// [`json_report`] as it is written: the same bytes, but each diagnostic
/// and intent is made a value (keys in the same order) only while it is
/// written.
struct JsonReport<'a>(&'a Evaluation);

impl serde::Serialize for JsonReport<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error as _, SerializeMap as _, SerializeSeq as _};
        let evaluation = self.0;
        // Keys in `serde_json::Map` order (sorted), as `json_report` has them.
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry(
            "diagnostics",
            &Each(evaluation.diagnostics.len(), || {
                evaluation
                    .diagnostics
                    .iter()
                    .map(|diagnostic| serde_json::to_value(diagnostic).map_err(S::Error::custom))
            }),
        )?;
        map.serialize_entry(
            "intents",
            &Each(evaluation.intents.len(), || {
                evaluation
                    .intents
                    .iter()
                    .map(|intent| Ok::<_, serde_json::Error>(intent_json(intent)))
            }),
        )?;
        return map.end();

        /// A sequence of `len` values made one at a time.
        struct Each<F>(usize, F);
        impl<F, I, E> serde::Serialize for Each<F>
        where
            F: Fn() -> I,
            I: Iterator<Item = Result<serde_json::Value, E>>,
            E: std::fmt::Display,
        {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut seq = serializer.serialize_seq(Some(self.0))?;
                for value in (self.1)() {
                    seq.serialize_element(&value.map_err(S::Error::custom)?)?;
                }
                seq.end()
            }
        }
    }
}

/// The documented JSON shape: diagnostics and one entry per intent, as one
/// value (what [`JsonReport`] writes, checked byte for byte by its test).
#[cfg(test)]
fn json_report(evaluation: &Evaluation) -> serde_json::Value {
    json!({
        "diagnostics": evaluation.diagnostics,
        "intents": evaluation.intents.iter().map(intent_json).collect::<Vec<_>>(),
    })
}

/// One intent's entry of the JSON report.
fn intent_json(intent: &crate::evaluation::IntentEvaluation) -> serde_json::Value {
    json!({
            "id": intent.intent_id,
            "file": intent.file,
            "decision": intent.decision(),
            "risk_score": intent.risk.as_ref().map(|r| r.risk_score),
            "approvals_required": intent.outcome.approvals_required,
            "counted_approvals": intent.outcome.counted_approvals,
            "supersedes": intent.supersedes,
            "reasons": intent.outcome.reasons.iter().map(|r| json!({"rule": r.rule, "kind": r.kind, "message": r.message})).collect::<Vec<_>>(),
            "notes": intent.outcome.notes.iter().map(|r| json!({"rule": r.rule, "message": r.message})).collect::<Vec<_>>(),
    })
}

/// GitHub workflow commands; values escaped as the runner requires, and
/// control characters shown, never sent (`crate::escape`).
fn print_github(subdir: &str, evaluation: &Evaluation) {
    use crate::escape::{workflow_data as escape_data, workflow_property as escape_property};
    let path = |file: &str| {
        if subdir.is_empty() {
            file.to_owned()
        } else {
            format!("{subdir}/{file}")
        }
    };
    for diagnostic in &evaluation.diagnostics {
        let level = match diagnostic.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut properties = format!("file={}", escape_property(&path(&diagnostic.file)));
        if diagnostic.line > 0 {
            properties.push_str(&format!(
                ",line={},col={}",
                diagnostic.line, diagnostic.column
            ));
        }
        println!(
            "::{level} {properties}::{}",
            escape_data(&diagnostic.message)
        );
    }
    for intent in &evaluation.intents {
        let level = match intent.decision() {
            Decision::Allow => "notice",
            Decision::Deny => "error",
            Decision::RequireApproval | Decision::RequireException => "warning",
        };
        let reasons: Vec<String> = intent
            .outcome
            .reasons
            .iter()
            .map(|r| format!("{}: {}", r.rule, r.message))
            .collect();
        let summary = if reasons.is_empty() {
            String::new()
        } else {
            format!(" — {}", reasons.join("; "))
        };
        println!(
            "::{level} file={},title={}::{} {}{}",
            escape_property(&path(&intent.file)),
            escape_property(&format!("ringmaster/policy {}", intent.intent_id)),
            escape_data(&intent.intent_id),
            intent.decision(),
            escape_data(&summary)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The streamed report is byte for byte the report built as one value,
    /// on a revision with diagnostics and decisions of every kind.
    #[test]
    fn streamed_report_is_the_built_report() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-repo");
        let mut entries = read_worktree(&root).expect("sample-repo reads");
        // A broken file, a duplicate id and an unknown kind add diagnostics.
        entries.push(Entry::file("intents/broken.yaml", "a: [1, 2\n"));
        entries.push(Entry::file(
            "principals/odd.yaml",
            "apiVersion: ringmaster.dev/v1\nkind: Nope\n",
        ));
        let now = "2026-12-06T08:00:00Z".parse().expect("instant");
        let judgement = judge::judge(Case {
            entries: &entries,
            rules: None,
            base: None,
            proof: None,
            runtime: &NoRuntime,
            now,
        });
        let evaluation = &judgement.evaluation;
        assert!(!evaluation.diagnostics.is_empty() && !evaluation.intents.is_empty());
        let built = serde_json::to_string_pretty(&json_report(evaluation)).expect("built");
        let streamed = serde_json::to_string_pretty(&JsonReport(evaluation)).expect("streamed");
        assert_eq!(streamed, built);
        let empty = Evaluation {
            diagnostics: Vec::new(),
            intents: Vec::new(),
        };
        assert_eq!(
            serde_json::to_string_pretty(&JsonReport(&empty)).expect("streamed"),
            serde_json::to_string_pretty(&json_report(&empty)).expect("built")
        );
    }
}
