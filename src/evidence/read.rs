//! Reading records back off the evidence branch, for the API: the list of
//! records (newest first, a page at a time) and one record's pack and
//! signature files as the exact bytes that were signed, so a client can
//! run `minisign -V` on them itself.

use super::branch::ChainTip;
use super::{EvidenceBranch, EvidencePack, Result, git_context};
use git2::Oid;

/// One record: where it sits in the chain and what it is about.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordSummary {
    pub tip: ChainTip,
    pub pack: EvidencePack,
}

/// A record's files, byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFiles {
    pub tip: ChainTip,
    pub pack: Vec<u8>,
    pub signature: Vec<u8>,
}

impl EvidenceBranch {
    /// Records with a sequence below `before` (all when `None`), newest
    /// first, at most `limit`. Walks the branch's first parents: one commit
    /// per record.
    pub fn records_before(&self, before: Option<u64>, limit: usize) -> Result<Vec<RecordSummary>> {
        let mut found = Vec::new();
        let mut cursor = self.tip_commit()?;
        while let Some(commit_id) = cursor {
            if found.len() >= limit {
                break;
            }
            let (tip, pack) = self.read_record_commit_with_pack(commit_id)?;
            let sequence = tip.sequence;
            if before.is_none_or(|before| sequence < before) {
                found.push(RecordSummary { tip, pack });
            }
            if sequence <= 1 {
                break;
            }
            cursor = self.parent_of(commit_id)?;
        }
        Ok(found)
    }

    /// The pack and signature of record `sequence`, if the branch has it.
    pub fn record_files(&self, sequence: u64) -> Result<Option<RecordFiles>> {
        let mut cursor = self.tip_commit()?;
        while let Some(commit_id) = cursor {
            let tip = self.read_record_commit(commit_id)?;
            if tip.sequence < sequence {
                return Ok(None);
            }
            if tip.sequence == sequence {
                let commit = self
                    .repository
                    .find_commit(commit_id)
                    .map_err(git_context(format!("cannot read commit {commit_id}")))?;
                let tree = commit
                    .tree()
                    .map_err(git_context(format!("cannot read the tree of {commit_id}")))?;
                let read = |path: &str| -> Result<Vec<u8>> {
                    let entry = tree
                        .get_path(std::path::Path::new(path))
                        .map_err(git_context(format!("{path} is missing from {commit_id}")))?;
                    let blob = self
                        .repository
                        .find_blob(entry.id())
                        .map_err(git_context(format!("cannot read {path}")))?;
                    Ok(blob.content().to_vec())
                };
                let pack = read(&tip.pack_path)?;
                let signature = read(&super::pack::signature_path_for(&tip.pack_path))?;
                return Ok(Some(RecordFiles {
                    tip,
                    pack,
                    signature,
                }));
            }
            cursor = self.parent_of(commit_id)?;
        }
        Ok(None)
    }

    fn parent_of(&self, commit_id: Oid) -> Result<Option<Oid>> {
        let commit = self
            .repository
            .find_commit(commit_id)
            .map_err(git_context(format!("cannot read commit {commit_id}")))?;
        Ok(commit.parent_id(0).ok())
    }
}
