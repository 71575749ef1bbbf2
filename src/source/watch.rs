//! Watching a local repository's refs so a new commit is seen at once.
//!
//! Git moves a branch by writing `refs/heads/<name>.lock` and renaming it, or
//! by rewriting `packed-refs`; either shows up as a file event below the Git
//! directory. Every event becomes one `RepoChanged` hint; processing re-reads
//! the branch, so spurious or coalesced events are harmless (our own evidence
//! commits also wake the loop, and find nothing new on the tracked branch).

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
