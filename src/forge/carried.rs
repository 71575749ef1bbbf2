//! Review approvals that outlive their merge commit.
//!
//! A review lives on GitHub, not in Git: once its pull request is merged,
//! later commits on the tracked branch do not carry it. So the approvals a
//! decision counted are read back from the signed evidence: the latest
//! decision pack of each intent names the review approvals that counted
//! (`forge.review_approvals`) and the digest of the intent they approved
//! (`intent_sha256`, `model::digest`). A later commit re-applies them while
//! the intent still has that digest; editing what it deploys, where or how
//! it rolls back needs new approvals.
//! They expire like any review approval. [`CarriedIndex`] reads the evidence
//! branch once, then only the packs appended since.

use super::ForgeError;
use super::approvals::ReviewApproval;
use chrono::{DateTime, Utc};
use git2::{ObjectType, Oid, Repository, TreeWalkMode, TreeWalkResult};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;

/// A counted review approval of one exact intent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CarriedApproval {
    /// The digest of the intent it approved (`model::digest::intent_sha256`,
    /// as the decision pack records it).
    pub intent_sha256: String,
    pub approval: ReviewApproval,
}

/// The latest decision pack's counted review approvals, per intent.
#[derive(Debug, Default)]
pub struct CarriedIndex {
    /// The evidence commit read up to.
    scanned: Option<Oid>,
    /// Intent id → (pack sequence, approvals of that pack).
    latest: HashMap<String, (u64, Vec<CarriedApproval>)>,
}

impl CarriedIndex {
    /// Every carried approval.
    pub fn approvals(&self) -> Vec<CarriedApproval> {
        let mut all: Vec<CarriedApproval> = self
            .latest
            .values()
            .flat_map(|(_, approvals)| approvals.iter().cloned())
            .collect();
        all.sort_by(|a, b| {
            (&a.approval.intent_id, a.approval.review_id)
                .cmp(&(&b.approval.intent_id, b.approval.review_id))
        });
        all
    }

    /// Reads the packs appended to `branch` since the last refresh (all of
    /// them the first time, or when the branch was rewritten).
    pub fn refresh(&mut self, repository: &Repository, branch: &str) -> Result<(), ForgeError> {
        let Ok(reference) = repository.find_reference(&format!("refs/heads/{branch}")) else {
            return Ok(());
        };
        let tip = reference.peel_to_commit()?.id();
        if self.scanned == Some(tip) {
            return Ok(());
        }
        let incremental = match self.scanned {
            Some(previous) => repository.graph_descendant_of(tip, previous)?,
            None => false,
        };
        if incremental {
            let mut walk = repository.revwalk()?;
            walk.push(tip)?;
            if let Some(previous) = self.scanned {
                walk.hide(previous)?;
            }
            for commit in walk {
                let commit = repository.find_commit(commit?)?;
                let parent = commit.parents().next().map(|p| p.tree()).transpose()?;
                let diff =
                    repository.diff_tree_to_tree(parent.as_ref(), Some(&commit.tree()?), None)?;
                for delta in diff.deltas() {
                    let file = delta.new_file();
                    if file
                        .path()
                        .is_some_and(|p| p.extension().is_some_and(|e| e == "json"))
                    {
                        self.absorb(repository.find_blob(file.id())?.content());
                    }
                }
            }
        } else {
            self.latest.clear();
            let tree = repository.find_commit(tip)?.tree()?;
            let mut blobs = Vec::new();
            tree.walk(TreeWalkMode::PreOrder, |_, entry| {
                if entry.kind() == Some(ObjectType::Blob)
                    && entry.name().is_ok_and(|n| n.ends_with(".json"))
                {
                    blobs.push(entry.id());
                }
                TreeWalkResult::Ok
            })?;
            for blob in blobs {
                self.absorb(repository.find_blob(blob)?.content());
            }
        }
        self.scanned = Some(tip);
        Ok(())
    }

    /// Takes one pack into account if it is the latest decision of its intent.
    fn absorb(&mut self, bytes: &[u8]) {
        let Ok(pack) = serde_json::from_slice::<Value>(bytes) else {
            return;
        };
        let (Some("decision"), Some(intent_id), Some(sequence)) = (
            pack["record_type"].as_str(),
            pack["intent_id"].as_str(),
            pack["sequence"].as_u64(),
        ) else {
            return;
        };
        if self
            .latest
            .get(intent_id)
            .is_some_and(|(known, _)| *known >= sequence)
        {
            return;
        }
        let body = &pack["body"];
        // Packs written before approvals were bound to a digest carry none:
        // their approvals are not carried (the intent needs a new review).
        let Some(intent_sha256) = body["intent_sha256"].as_str().map(str::to_owned) else {
            self.latest
                .insert(intent_id.to_owned(), (sequence, Vec::new()));
            return;
        };
        let approvals = body["forge"]["review_approvals"]
            .as_array()
            .map(|all| {
                all.iter()
                    .filter(|a| a["counted"] == Value::Bool(true))
                    .filter_map(|a| {
                        Some(CarriedApproval {
                            intent_sha256: intent_sha256.clone(),
                            approval: ReviewApproval {
                                approval_id: a["approval_id"].as_str()?.to_owned(),
                                intent_id: intent_id.to_owned(),
                                review_id: a["review_id"].as_u64()?,
                                login: a["login"].as_str()?.to_owned(),
                                principal: a["principal"].as_str().map(str::to_owned),
                                submitted_at: a["submitted_at"]
                                    .as_str()
                                    .and_then(|t| t.parse::<DateTime<Utc>>().ok()),
                                commit_reviewed: a["commit_reviewed"].as_str()?.to_owned(),
                                pull_request: a["pull_request"].as_u64(),
                            },
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        self.latest
            .insert(intent_id.to_owned(), (sequence, approvals));
    }
}
