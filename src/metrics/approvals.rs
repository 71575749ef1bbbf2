//! CAB decision times come from the approval records in force: those of the
//! last good commit of the tracked branch (the snapshot the daemon works
//! from). Only the `approvals/` folder is loaded, and only when that commit
//! changes.

use super::ApprovalTiming;
use crate::source::GovernedRepo;
use crate::store::Store;
use std::path::PathBuf;
use std::sync::Mutex;

/// Where the approval records are read, with the last answer cached by commit.
pub struct ApprovalSource {
    /// The governed folder (a work tree path or the remote's mirror).
    pub repo: PathBuf,
    pub branch: String,
    cache: Mutex<Option<(String, Vec<ApprovalTiming>)>>,
}

impl ApprovalSource {
    pub fn new(repo: PathBuf, branch: String) -> ApprovalSource {
        ApprovalSource {
            repo,
            branch,
            cache: Mutex::new(None),
        }
    }

    /// The timings of the approvals at the last good commit; empty before
    /// one, or when the repository cannot be read (logged).
    pub fn timings(&self, store: &Store) -> Vec<ApprovalTiming> {
        let commit = match store.last_good_commit(&self.branch) {
            Ok(Some(commit)) => commit.commit_sha,
            Ok(None) => return Vec::new(),
            Err(error) => {
                tracing::warn!(%error, "metrics: cannot read the last good commit");
                return Vec::new();
            }
        };
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some((cached, timings)) = cache.as_ref()
            && *cached == commit
        {
            return timings.clone();
        }
        match self.load(&commit) {
            Ok(timings) => {
                *cache = Some((commit, timings.clone()));
                timings
            }
            Err(error) => {
                tracing::warn!(%error, %commit, "metrics: cannot read the approval records");
                Vec::new()
            }
        }
    }

    fn load(&self, commit: &str) -> Result<Vec<ApprovalTiming>, crate::source::SourceError> {
        let repo = GovernedRepo::open(&self.repo)?;
        let oid = repo.resolve(commit)?;
        let entries: Vec<_> = repo
            .entries_at(oid)?
            .into_iter()
            .filter(|entry| entry.path.starts_with("approvals/"))
            .collect();
        let (snapshot, _) = crate::model::load(&entries);
        Ok(snapshot
            .approvals
            .values()
            .filter_map(|record| ApprovalTiming::of(&record.value))
            .collect())
    }
}
