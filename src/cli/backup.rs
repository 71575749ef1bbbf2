//! `backup` and `restore`: the SQLite state store copied while the daemon
//! runs, and put back while it does not (`docs/operations.md`).

use crate::store::Store;
use anyhow::Context as _;
use chrono::{DateTime, Utc};
use std::path::Path;
use std::process::ExitCode;

/// The state database's file name inside a state directory.
const DATABASE: &str = "ringmaster.db";

/// `ringmaster backup --state DIR --out FILE`.
pub(super) fn backup(state: &Path, out: &Path) -> anyhow::Result<ExitCode> {
    let source = state.join(DATABASE);
    if !source.is_file() {
        anyhow::bail!(
            "{} does not exist; pass the --state directory the daemon uses",
            source.display()
        );
    }
    if out.exists() {
        anyhow::bail!(
            "{} already exists; a backup never overwrites a file (choose another --out)",
            out.display()
        );
    }
    let partial = out.with_extension("partial");
    let _ = std::fs::remove_file(&partial);
    let report = Store::backup_file(&source, &partial, |_, _| {}).with_context(|| {
        format!(
            "online backup of {} (nothing was written to {})",
            source.display(),
            out.display()
        )
    });
    let report = match report {
        Ok(report) => report,
        Err(error) => {
            let _ = std::fs::remove_file(&partial);
            return Err(error);
        }
    };
    std::fs::File::open(&partial)
        .and_then(|file| file.sync_all())
        .with_context(|| format!("sync {}", partial.display()))?;
    std::fs::rename(&partial, out)
        .with_context(|| format!("move the backup to {}", out.display()))?;
    println!(
        "backup of {} written to {}: {} page(s), schema version {}, evidence head #{}",
        source.display(),
        out.display(),
        report.pages,
        report.schema_version,
        report.evidence_sequence.unwrap_or(0)
    );
    println!(
        "restore with: ringmaster restore --from {} --state DIR, then ringmaster rebuild --catch-up \
         (the evidence branch is ahead of any backup once the daemon goes on)",
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `ringmaster restore --from FILE --state DIR [--force]`.
pub(super) fn restore(
    from: &Path,
    state: &Path,
    force: bool,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    if !from.is_file() {
        anyhow::bail!("backup {} does not exist", from.display());
    }
    std::fs::create_dir_all(state).with_context(|| format!("create {}", state.display()))?;
    // Held until the restore is done: no daemon runs on this directory.
    let _instance = crate::daemon::locks::InstanceLock::acquire(state).map_err(|message| {
        anyhow::anyhow!(
            "{message}; stop the daemon using {} before restoring its store",
            state.display()
        )
    })?;
    let database = state.join(DATABASE);
    if database.exists() && !force {
        anyhow::bail!(
            "{} already holds a state store; pass --force to move it aside (it is kept as \
             {DATABASE}.before-restore-TIME) and restore the backup in its place",
            database.display()
        );
    }
    // The backup is checked (quick_check, schema) on a copy before the
    // store is touched.
    let staged = state.join(format!("{DATABASE}.restoring"));
    let _ = std::fs::remove_file(&staged);
    std::fs::copy(from, &staged)
        .with_context(|| format!("copy {} to {}", from.display(), staged.display()))?;
    let head = {
        let store = Store::open_existing(&staged)
            .with_context(|| format!("the backup {} cannot be restored", from.display()));
        let store = match store {
            Ok(store) => store,
            Err(error) => {
                let _ = std::fs::remove_file(&staged);
                return Err(error);
            }
        };
        store.evidence_head()?
    };
    if database.exists() {
        let stamp = now.format("%Y%m%dT%H%M%SZ");
        for suffix in ["", "-wal", "-shm"] {
            let file = state.join(format!("{DATABASE}{suffix}"));
            if file.exists() {
                let aside = state.join(format!("{DATABASE}.before-restore-{stamp}{suffix}"));
                std::fs::rename(&file, &aside)
                    .with_context(|| format!("move {} aside", file.display()))?;
            }
        }
    }
    std::fs::rename(&staged, &database)
        .with_context(|| format!("move the restored store to {}", database.display()))?;
    println!(
        "restored {} into {} (evidence head #{})",
        from.display(),
        database.display(),
        head.map_or(0, |head| head.sequence)
    );
    println!(
        "next: ringmaster verify REPO --public-key KEY --state {} tells whether the evidence \
         branch went on since the backup; if it did, ringmaster rebuild --catch-up brings the \
         store forward before serve",
        state.display()
    );
    Ok(ExitCode::SUCCESS)
}
