//! Lock files after a crash.
//!
//! A daemon killed with `kill -9` while Git held a ref lock leaves the
//! `.lock` file behind (`refs/heads/evidence.lock`), and every later start
//! failed with "evidence branch cannot be written" until a human deleted it.
//!
//! The daemon first takes an exclusive OS lock on `<state>/daemon.lock` (held
//! while it runs, released by the kernel when the process dies, however it
//! dies). Holding it proves no other ringmaster daemon uses this state
//! directory, so lock files only this daemon writes are stale and are
//! removed: the evidence branch's ref lock in the governed repository (the
//! daemon is that branch's only writer), and in a remote's mirror (which only
//! the daemon touches) every ref lock, `packed-refs.lock` and `HEAD.lock`.
//! The tracked branch of a local repository belongs to its users: its locks
//! are never touched. Each removal is logged and recorded as an event at the
//! first step. The SQLite store needs nothing: its journal recovers by itself.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

/// The exclusive lock on a state directory, held while the daemon runs.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
    pub path: PathBuf,
}

impl InstanceLock {
    /// Takes the lock, or says which state directory is in use.
    pub fn acquire(state_dir: &Path) -> Result<InstanceLock, String> {
        let path = state_dir.join("daemon.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|error| format!("cannot open {}: {error}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(InstanceLock { _file: file, path }),
            Err(TryLockError::WouldBlock) => Err(format!(
                "another ringmaster daemon is running on this state directory (it holds {}); \
                 stop it first, or give this one its own --state",
                path.display()
            )),
            Err(TryLockError::Error(error)) => {
                Err(format!("cannot lock {}: {error}", path.display()))
            }
        }
    }
}

impl Drop for InstanceLock {
    /// Releases the lock explicitly: a child process forked meanwhile (a
    /// plane's tool, `git`) shares the open file and would otherwise keep
    /// the lock until it execs or exits.
    fn drop(&mut self) {
        let _ = self._file.unlock();
    }
}

/// The full ref name of a branch name (`evidence` → `refs/heads/evidence`).
fn full_ref(branch: &str) -> String {
    if branch.starts_with("refs/") {
        branch.to_owned()
    } else {
        format!("refs/heads/{branch}")
    }
}

/// Removes the lock files this daemon alone writes in `git_dir` (see the
/// module documentation); call only while holding the [`InstanceLock`].
/// Returns the files removed; a file that cannot be removed is an error
/// naming the command that removes it.
pub fn remove_stale(
    git_dir: &Path,
    evidence_branch: &str,
    mirror: bool,
) -> Result<Vec<PathBuf>, String> {
    let mut candidates = vec![git_dir.join(format!("{}.lock", full_ref(evidence_branch)))];
    if mirror {
        candidates.push(git_dir.join("packed-refs.lock"));
        candidates.push(git_dir.join("HEAD.lock"));
        collect_ref_locks(&git_dir.join("refs"), &mut candidates);
    }
    candidates.sort();
    candidates.dedup();
    let mut removed = Vec::new();
    for path in candidates {
        if !path.is_file() {
            continue;
        }
        std::fs::remove_file(&path).map_err(|error| {
            format!(
                "stale lock file {} left by a stopped daemon cannot be removed ({error}); \
                 remove it with: rm '{}'",
                path.display(),
                path.display()
            )
        })?;
        tracing::warn!(path = %path.display(), "removed a stale lock file left by a daemon that stopped without cleaning up");
        removed.push(path);
    }
    Ok(removed)
}

fn collect_ref_locks(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        if kind.is_dir() {
            collect_ref_locks(&path, found);
        } else if kind.is_file() && path.extension().is_some_and(|ext| ext == "lock") {
            found.push(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_instance_on_the_same_state_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = InstanceLock::acquire(dir.path()).expect("first");
        let second = InstanceLock::acquire(dir.path()).expect_err("second");
        assert!(second.contains("another ringmaster daemon"), "{second}");
        drop(first);
        InstanceLock::acquire(dir.path()).expect("free again once the first is gone");
    }

    #[test]
    fn only_the_daemons_own_locks_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let git = dir.path();
        std::fs::create_dir_all(git.join("refs/heads/team")).unwrap();
        for file in [
            "refs/heads/evidence.lock",
            "refs/heads/main.lock",
            "refs/heads/team/x.lock",
            "packed-refs.lock",
        ] {
            std::fs::write(git.join(file), "").unwrap();
        }
        // A governed repository: only the evidence branch's lock.
        let removed = remove_stale(git, "evidence", false).unwrap();
        assert_eq!(removed, [git.join("refs/heads/evidence.lock")]);
        assert!(git.join("refs/heads/main.lock").exists());
        assert!(git.join("packed-refs.lock").exists());
        // The daemon's own mirror: every ref lock.
        let removed = remove_stale(git, "evidence", true).unwrap();
        assert_eq!(removed.len(), 3, "{removed:?}");
        assert!(!git.join("refs/heads/team/x.lock").exists());
    }
}
