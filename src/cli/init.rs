//! `ringmaster init`: a new governed repository from the embedded sample.

use anyhow::{Context as _, bail};
use std::path::Path;
use std::process::ExitCode;

fn ensure_empty(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!(
            "{} exists and is not empty; choose a new directory",
            dir.display()
        );
    }
    Ok(())
}

pub(super) fn run(dir: &Path) -> anyhow::Result<ExitCode> {
    ensure_empty(dir)?;
    let count =
        crate::sample::write_to(dir).with_context(|| format!("write into {}", dir.display()))?;
    let commit = initial_commit(dir)?;
    println!(
        "initialised {} with {count} files from the sample tenant (commit {})",
        dir.display(),
        &commit[..10]
    );
    println!("next: ringmaster validate {}", dir.display());
    Ok(ExitCode::SUCCESS)
}

pub(super) fn generate(dir: &Path, intents: usize) -> anyhow::Result<ExitCode> {
    ensure_empty(dir)?;
    let progress = super::progress::Reporter::on_stderr();
    let count = crate::synthetic::write_with_progress(dir, intents, &progress)
        .with_context(|| format!("write into {}", dir.display()))?;
    crate::progress::Progress::stage(&progress, &format!("committing {count} files"), None);
    let commit = initial_commit(dir)?;
    drop(progress);
    println!(
        "generated {intents} intents ({count} files) in {} (commit {})",
        dir.display(),
        &commit[..10]
    );
    Ok(ExitCode::SUCCESS)
}

/// `git init -b main`, add everything, commit — with git2, so no git binary is needed.
fn initial_commit(dir: &Path) -> anyhow::Result<String> {
    let commit = crate::source::commit::init_and_commit_all(
        dir,
        "Governed repository from the ringmaster sample tenant",
    )
    .with_context(|| format!("git init {}", dir.display()))?;
    Ok(commit.to_string())
}
