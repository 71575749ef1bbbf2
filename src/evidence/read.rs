//! Reading records back off the evidence branch, for the API: the list of
//! records (newest first, a page at a time) and one record's pack and
//! signature files as the exact bytes that were signed, so a client can
//! run `minisign -V` on them itself. Both layouts are read: one record per
//! commit, and batch commits (see `batch`).

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
    /// per record, or many for a batch commit (both layouts are read).
    pub fn records_before(&self, before: Option<u64>, limit: usize) -> Result<Vec<RecordSummary>> {
        let mut found = Vec::new();
        let mut cursor = self.tip_commit()?;
        while let Some(commit_id) = cursor {
            if found.len() >= limit {
                break;
            }
            let (first, last) = self.commit_record_range(commit_id)?;
            if before.is_none_or(|before| first < before) {
                if first == last.sequence {
                    let (tip, pack) = self.read_record_commit_with_pack(commit_id)?;
                    found.push(RecordSummary { tip, pack });
                } else {
                    for record in self.records_in_commit(commit_id)?.into_iter().rev() {
                        if found.len() >= limit {
                            break;
                        }
                        if before.is_none_or(|before| record.tip.sequence < before) {
                            found.push(RecordSummary {
                                tip: record.tip,
                                pack: record.pack,
                            });
                        }
                    }
                }
            }
            if first <= 1 {
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
            let (first, last) = self.commit_record_range(commit_id)?;
            if last.sequence < sequence {
                return Ok(None);
            }
            if first <= sequence {
                let Some(record) = self
                    .records_in_commit(commit_id)?
                    .into_iter()
                    .find(|record| record.tip.sequence == sequence)
                else {
                    return Ok(None);
                };
                let read = |blob: Oid| -> Result<Vec<u8>> {
                    let blob = self
                        .repository
                        .find_blob(blob)
                        .map_err(git_context(format!("cannot read blob {blob}")))?;
                    Ok(blob.content().to_vec())
                };
                return Ok(Some(RecordFiles {
                    pack: read(record.pack_blob)?,
                    signature: read(record.signature_blob)?,
                    tip: record.tip,
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
