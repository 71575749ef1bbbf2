//! Watching a local repository's refs so a new commit is seen at once.
//!
//! Git moves a branch by writing `refs/heads/<name>.lock` and renaming it, or
//! by rewriting `packed-refs`; either shows up as a file event below the Git
//! directory. Every event becomes one `RepoChanged` hint; processing re-reads
//! the branch, so spurious or coalesced events are harmless (our own evidence
//! commits also wake the loop, and find nothing new on the tracked branch).
//!
//! Only changes count: inotify also reports every *open* and *read* of a
//! file, and processing reads the refs — counting those made each step wake
//! the next one, a loop of ~35 steps a second whenever a step did anything
//! (with GitHub down: that many API calls). See [`is_change`].

use crate::daemon::Event;
use notify::{RecursiveMode, Watcher as _};
use std::path::Path;
use tokio::sync::mpsc::Sender;

/// Starts watching; keep the returned watcher alive for as long as events are wanted.
pub fn watch_refs(
    git_dir: &Path,
    sender: Sender<Event>,
) -> notify::Result<notify::RecommendedWatcher> {
    let mut watcher = notify::recommended_watcher(move |result: notify::Result<notify::Event>| {
        if let Ok(event) = result {
            if !is_change(&event.kind) {
                return;
            }
            let relevant = event.paths.iter().any(|path| {
                let text = path.to_string_lossy();
                text.contains("refs") || text.ends_with("packed-refs")
            });
            if relevant {
                // A full channel already holds a wake-up; dropping this one is fine.
                let _ = sender.try_send(Event::RepoChanged);
            }
        }
    })?;
    let refs = git_dir.join("refs");
    watcher.watch(&refs, RecursiveMode::Recursive)?;
    watcher.watch(git_dir, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

/// Whether a file event is a change (created, written, renamed, removed),
/// not merely an access: reading a ref must never wake the daemon.
pub fn is_change(kind: &notify::EventKind) -> bool {
    use notify::EventKind;
    use notify::event::{AccessKind, AccessMode};
    match kind {
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) => true,
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) | EventKind::Any | EventKind::Other => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::EventKind;
    use notify::event::{
        AccessKind, AccessMode, CreateKind, DataChange, ModifyKind, RemoveKind, RenameMode,
    };

    #[test]
    fn reads_are_not_changes_and_writes_are() {
        let reads = [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Open(AccessMode::Read)),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Access(AccessKind::Read),
            EventKind::Any,
            EventKind::Other,
        ];
        for kind in reads {
            assert!(!is_change(&kind), "{kind:?}");
        }
        let writes = [
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Remove(RemoveKind::File),
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
        ];
        for kind in writes {
            assert!(is_change(&kind), "{kind:?}");
        }
    }
}
