//! Sharing the evidence branch with a remote: fast-forward-only push,
//! fetch with a fast-forward of the local branch, and replaying local
//! records that lost a race onto the remote's records.
//!
//! Evidence is never force-pushed and the local branch is never moved
//! backwards: a rejected push is [`EvidenceError::PushRejected`]; the
//! caller fetches, and if the branches diverged, replays its local-only
//! records on top of the remote's ([`EvidenceBranch::replay_onto`]) and
//! pushes again.

use std::fmt;

use git2::{FetchOptions, Oid, PushOptions, Remote};

use super::branch::{AppendedRecord, EvidenceBranch, short};
use super::keys::SigningKey;
use super::pack::EvidencePackInput;
use super::{EvidenceError, Result, git_context};
use crate::source::credentials::redact_url;

/// A successful push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushReport {
    pub remote: String,
    pub branch: String,
    /// The commit the remote branch now points to.
    pub commit: String,
}

impl fmt::Display for PushReport {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "pushed {} to {} at {}",
            self.branch,
            self.remote,
            short(&self.commit)
        )
    }
}

/// What `fetch` found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchOutcome {
    /// The remote has no evidence branch (yet).
    RemoteHasNoBranch,
    /// Both point to the same commit.
    UpToDate { commit: String },
    /// The local branch was behind and now points to the remote's commit.
    FastForwarded { from: Option<String>, to: String },
    /// The local branch has records the remote does not: push them.
    LocalAhead { local: String, remote: String },
    /// Both have records the other does not. Nothing was changed; replay
    /// the local-only records onto `remote` with `replay_onto`.
    Diverged { local: String, remote: String },
}

impl fmt::Display for FetchOutcome {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchOutcome::RemoteHasNoBranch => {
                write!(formatter, "the remote has no evidence branch")
            }
            FetchOutcome::UpToDate { commit } => {
                write!(formatter, "up to date at {}", short(commit))
            }
            FetchOutcome::FastForwarded { from, to } => write!(
                formatter,
                "fast-forwarded from {} to {}",
                from.as_deref().map_or("nothing", short),
                short(to)
            ),
            FetchOutcome::LocalAhead { local, remote } => write!(
                formatter,
                "local {} is ahead of remote {}: push",
                short(local),
                short(remote)
            ),
            FetchOutcome::Diverged { local, remote } => write!(
                formatter,
                "local {} and remote {} diverged: replay the local records onto the remote",
                short(local),
                short(remote)
            ),
        }
    }
}

impl EvidenceBranch {
    /// The credentials pushes and fetches of a remote use (see
    /// [`crate::source::credentials`]); none by default.
    pub fn with_remote_credentials(
        mut self,
        credentials: crate::source::credentials::GitCredentials,
    ) -> Self {
        self.credentials = credentials;
        self
    }

    /// A configured remote by name, or else an anonymous remote for a URL
    /// or path.
    fn remote(&self, remote: &str) -> Result<Remote<'_>> {
        match self.repository.find_remote(remote) {
            Ok(found) => Ok(found),
            Err(_) => self
                .repository
                .remote_anonymous(remote)
                .map_err(git_context(format!(
                    "{} is neither a remote nor a URL",
                    redact_url(remote)
                ))),
        }
    }

    /// The local reference that remembers the last commit pushed to the
    /// remote at `url`: `refs/ringmaster/evidence-pushed/<branch>/<url digest>`.
    /// Only a successful push moves it; a fetch never does.
    fn pushed_reference(&self, url: &str) -> String {
        let digest = super::sha256_hex(url.as_bytes());
        format!(
            "refs/ringmaster/evidence-pushed/{}/{}",
            self.branch_name,
            &digest[..16]
        )
    }

    /// The last commit pushed to the remote at `url` (a remote name, URL or
    /// path), if this repository ever pushed evidence there.
    pub fn last_pushed(&self, remote: &str) -> Option<String> {
        let url = crate::source::credentials::remote_url(&self.repository, remote);
        self.pushed_commit(&url).map(|oid| oid.to_string())
    }

    fn pushed_commit(&self, url: &str) -> Option<Oid> {
        self.repository
            .find_reference(&self.pushed_reference(url))
            .ok()
            .and_then(|reference| reference.target())
    }

    /// `Some(what was found)` when the remote's tip `found` (`None`: no
    /// branch) does not hold `pushed`. A tip whose objects are not here is
    /// not judged (`unknown_is_forked` false: a push finds out by being
    /// rejected, and the fetch that follows brings the objects).
    fn forked_from(
        &self,
        pushed: Oid,
        found: Option<Oid>,
        unknown_is_forked: bool,
    ) -> Option<String> {
        let Some(found) = found.filter(|oid| !oid.is_zero()) else {
            return Some("the remote has no evidence branch any more".into());
        };
        if found == pushed {
            return None;
        }
        if self.repository.find_commit(found).is_err() {
            return unknown_is_forked
                .then(|| format!("its tip {} is unknown here", short(&found.to_string())));
        }
        match self.repository.graph_descendant_of(found, pushed) {
            Ok(true) => None,
            _ => Some(format!(
                "its tip {} does not descend from it",
                short(&found.to_string())
            )),
        }
    }

    /// Pushes the branch to the same branch of `remote` (a remote name, URL
    /// or path), fast-forward only. A non-fast-forward is
    /// [`EvidenceError::PushRejected`]; a remote that no longer holds what
    /// was last pushed to it is [`EvidenceError::RemoteForked`] and gets
    /// nothing.
    pub fn push(&self, remote: &str) -> Result<PushReport> {
        let local_tip = self
            .tip_commit()?
            .ok_or_else(|| EvidenceError::BranchNotFound {
                branch: self.branch_name.clone(),
                repository: self.repository_path.clone(),
            })?;
        let shown = redact_url(remote);
        let mut remote_handle = self.remote(remote)?;
        let url = remote_handle.url().unwrap_or(remote).to_owned();
        let pushed = self.pushed_commit(&url);
        let mut rejection: Option<String> = None;
        let mut forked: Option<String> = None;
        let push_result = {
            let mut callbacks = self.credentials.callbacks(&url);
            callbacks.push_update_reference(|_reference, status| {
                if let Some(status) = status {
                    rejection = Some(status.to_string());
                }
                Ok(())
            });
            // Before anything is sent: the remote's branch must still hold
            // what this daemon last pushed there.
            callbacks.push_negotiation(|updates| {
                let Some(pushed) = pushed else {
                    return Ok(());
                };
                for update in updates {
                    if update.dst_refname().ok() != Some(self.reference_name.as_str()) {
                        continue;
                    }
                    if let Some(found) = self.forked_from(pushed, Some(update.src()), false) {
                        forked = Some(found);
                        return Err(git2::Error::from_str(
                            "the evidence remote no longer holds the last commit pushed to it",
                        ));
                    }
                }
                Ok(())
            });
            let mut options = PushOptions::new();
            options.remote_callbacks(callbacks);
            // No leading `+`: the remote must fast-forward.
            let refspec = format!("{0}:{0}", self.reference_name);
            remote_handle.push(&[refspec], Some(&mut options))
        };
        if let (Some(found), Some(pushed)) = (forked, pushed) {
            return Err(EvidenceError::RemoteForked {
                remote: shown,
                branch: self.branch_name.clone(),
                pushed: pushed.to_string(),
                found,
            });
        }
        let rejected = |reason: String| EvidenceError::PushRejected {
            remote: shown.clone(),
            branch: self.branch_name.clone(),
            reason,
        };
        match push_result {
            Err(error)
                if matches!(
                    error.code(),
                    git2::ErrorCode::NotFastForward | git2::ErrorCode::Modified
                ) || error.message().contains("fast-forward") =>
            {
                return Err(rejected(error.message().to_string()));
            }
            Err(error) => {
                let error = self.credentials.explain(error);
                return Err(git_context(format!("cannot push to {shown}"))(error));
            }
            Ok(()) => {}
        }
        if let Some(reason) = rejection {
            return Err(rejected(reason));
        }
        self.repository
            .reference(
                &self.pushed_reference(&url),
                local_tip,
                true,
                &format!("ringmaster: evidence pushed to {shown}"),
            )
            .map_err(git_context("cannot record the commit pushed"))?;
        Ok(PushReport {
            remote: shown,
            branch: self.branch_name.clone(),
            commit: local_tip.to_string(),
        })
    }

    /// Fetches the branch from `remote` (a remote name, URL or path) and
    /// fast-forwards the local branch when it is behind. Never moves the
    /// local branch otherwise. A remote that no longer holds the last
    /// commit pushed to it is [`EvidenceError::RemoteForked`] (nothing is
    /// moved, so nothing is replayed onto it). Run `verify_branch`
    /// afterwards to check what arrived.
    pub fn fetch(&self, remote: &str) -> Result<FetchOutcome> {
        let shown = redact_url(remote);
        let mut remote_handle = self.remote(remote)?;
        let url = remote_handle.url().unwrap_or(remote).to_owned();
        let refspec = match remote_handle.name() {
            Ok(Some(name)) => format!(
                "+{}:refs/remotes/{name}/{}",
                self.reference_name, self.branch_name
            ),
            _ => self.reference_name.clone(),
        };
        let mut options = FetchOptions::new();
        options.remote_callbacks(self.credentials.callbacks(&url));
        remote_handle
            .fetch(&[refspec], Some(&mut options), None)
            .map_err(|error| self.credentials.explain(error))
            .map_err(git_context(format!("cannot fetch from {shown}")))?;
        let remote_tip = remote_handle
            .list()
            .map_err(git_context(format!(
                "cannot list the references of {shown}"
            )))?
            .iter()
            .find(|head| head.name() == self.reference_name)
            .map(|head| head.oid());
        if let Some(pushed) = self.pushed_commit(&url)
            && let Some(found) = self.forked_from(pushed, remote_tip, true)
        {
            return Err(EvidenceError::RemoteForked {
                remote: shown,
                branch: self.branch_name.clone(),
                pushed: pushed.to_string(),
                found,
            });
        }
        let Some(remote_tip) = remote_tip else {
            return Ok(FetchOutcome::RemoteHasNoBranch);
        };
        let local_tip = self.tip_commit()?;
        let Some(local) = local_tip else {
            self.move_branch(None, remote_tip, "ringmaster: fetch evidence")?;
            return Ok(FetchOutcome::FastForwarded {
                from: None,
                to: remote_tip.to_string(),
            });
        };
        if local == remote_tip {
            return Ok(FetchOutcome::UpToDate {
                commit: local.to_string(),
            });
        }
        let descends = |commit: Oid, ancestor: Oid| {
            self.repository
                .graph_descendant_of(commit, ancestor)
                .map_err(git_context("cannot compare local and remote histories"))
        };
        if descends(remote_tip, local)? {
            self.move_branch(
                Some(local),
                remote_tip,
                "ringmaster: fetch evidence (fast-forward)",
            )?;
            return Ok(FetchOutcome::FastForwarded {
                from: Some(local.to_string()),
                to: remote_tip.to_string(),
            });
        }
        if descends(local, remote_tip)? {
            return Ok(FetchOutcome::LocalAhead {
                local: local.to_string(),
                remote: remote_tip.to_string(),
            });
        }
        Ok(FetchOutcome::Diverged {
            local: local.to_string(),
            remote: remote_tip.to_string(),
        })
    }

    /// After a `Diverged` fetch: re-signs the local records the remote does
    /// not have, in order, as new records after `remote_tip` (a fetched
    /// commit, hex), then moves the local branch there in one
    /// compare-and-swap. Each replayed record keeps its content (intent,
    /// correlation id, source commit, times, body) and gets a new sequence,
    /// previous hash and pack id. Push again afterwards.
    pub fn replay_onto(
        &self,
        remote_tip: &str,
        signer: &SigningKey,
    ) -> Result<Vec<AppendedRecord>> {
        let remote_tip =
            Oid::from_str(remote_tip).map_err(git_context("invalid remote commit id"))?;
        let local_tip = self
            .tip_commit()?
            .ok_or_else(|| EvidenceError::BranchNotFound {
                branch: self.branch_name.clone(),
                repository: self.repository_path.clone(),
            })?;
        let base = self
            .repository
            .merge_base(local_tip, remote_tip)
            .map_err(git_context("local and remote evidence share no history"))?;
        let mut local_only = Vec::new();
        let mut cursor = local_tip;
        while cursor != base {
            local_only.push(cursor);
            let commit = self
                .repository
                .find_commit(cursor)
                .map_err(git_context(format!("cannot read commit {cursor}")))?;
            cursor = commit
                .parent_id(0)
                .map_err(git_context("local history does not reach the merge base"))?;
        }
        local_only.reverse();
        let mut parent = remote_tip;
        let mut replayed = Vec::with_capacity(local_only.len());
        for commit in local_only {
            // A batch commit is replayed as one batch commit.
            let mut inputs = Vec::new();
            let mut event_chain = None;
            for record in self.records_in_commit(commit)? {
                let pack = record.pack;
                event_chain = pack.event_chain;
                inputs.push(EvidencePackInput {
                    record_type: pack.record_type,
                    intent_id: pack.intent_id,
                    correlation_id: pack.correlation_id,
                    source_commit: pack.source_commit,
                    source_parent: pack.source_parent,
                    author: pack.author,
                    committer: pack.committer,
                    created_at: pack.created_at,
                    body: pack.body,
                });
            }
            let records = if inputs.len() == 1 {
                let input = inputs.pop().expect("one input");
                vec![self.write_record_commit(Some(parent), input, event_chain, signer)?]
            } else {
                self.write_batch_commit(Some(parent), inputs, event_chain, signer)?
            };
            if let Some(last) = records.last() {
                parent = Oid::from_str(&last.commit).map_err(git_context("invalid commit id"))?;
            }
            replayed.extend(records);
        }
        self.move_branch(
            Some(local_tip),
            parent,
            "ringmaster: replay evidence onto remote",
        )?;
        Ok(replayed)
    }
}
