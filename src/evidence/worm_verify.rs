//! `verify --object-store`: the WORM bucket checked against the evidence
//! branch, both ways.
//!
//! Every record on the branch must be in the bucket under its two keys with
//! the same bytes and a lock at least as strong as required (the configured
//! mode, until its creation plus the retention); and every object under
//! `<prefix>packs/` must be one of those keys: the bucket holds nothing the
//! branch lacks. The bucket itself must have Object Lock and versioning on.

use std::collections::BTreeSet;
use std::fmt;

use git2::Oid;

use super::branch::EvidenceBranch;
use super::worm::{
    WormCopy, WormError, pack_object_key, read_branch_records, required_retention,
    signature_object_key,
};
use super::{EvidenceError, git_context};

/// One disagreement between bucket and branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectFinding {
    /// The record's sequence, when the object belongs to one.
    pub sequence: Option<u64>,
    pub key: String,
    pub problem: String,
}

impl fmt::Display for ObjectFinding {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.sequence {
            Some(sequence) => write!(
                formatter,
                "record #{sequence} {}: {}",
                self.key, self.problem
            ),
            None => write!(formatter, "{}: {}", self.key, self.problem),
        }
    }
}

/// The outcome of [`verify_object_store`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectStoreReport {
    pub store: String,
    /// Records on the branch.
    pub records: u64,
    /// Objects under the prefix.
    pub objects_listed: usize,
    pub findings: Vec<ObjectFinding>,
}

impl ObjectStoreReport {
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }
}

impl fmt::Display for ObjectStoreReport {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ok() {
            return write!(
                formatter,
                "{}: {} record(s) in the object store with the branch's bytes and the required lock; nothing the branch lacks",
                self.store, self.records
            );
        }
        write!(
            formatter,
            "{}: object store verification FAILED ({} finding(s) over {} record(s))",
            self.store,
            self.findings.len(),
            self.records
        )?;
        for finding in &self.findings {
            write!(formatter, "\n  {finding}")?;
        }
        Ok(())
    }
}

/// Checks the bucket of `worm` against `branch` (see the module
/// documentation). `Err` means the check could not run (store down, branch
/// unreadable); disagreements are findings.
pub fn verify_object_store(
    branch: &EvidenceBranch,
    worm: &WormCopy,
) -> Result<ObjectStoreReport, WormError> {
    let store = worm.store();
    let mut findings = Vec::new();
    let lock = store.bucket_lock()?;
    if !lock.object_lock_enabled || !lock.versioning_enabled {
        findings.push(ObjectFinding {
            sequence: None,
            key: String::new(),
            problem: format!(
                "the bucket is not write-once (Object Lock {}, versioning {})",
                if lock.object_lock_enabled {
                    "on"
                } else {
                    "off"
                },
                if lock.versioning_enabled { "on" } else { "off" }
            ),
        });
    }
    let listed: BTreeSet<String> = store
        .list(&format!("{}packs/", worm.prefix()))?
        .into_iter()
        .collect();
    let mut expected = BTreeSet::new();
    let commits = record_commits(branch)?;
    let mut record_count = 0u64;
    for commit_id in &commits {
        for record in read_branch_records(branch, *commit_id)? {
            record_count += 1;
            let required =
                required_retention(worm.mode(), worm.retention_days(), record.created_at);
            let objects = [
                (
                    pack_object_key(worm.prefix(), record.sequence, &record.pack_sha256),
                    &record.pack,
                ),
                (
                    signature_object_key(worm.prefix(), record.sequence, &record.pack_sha256),
                    &record.signature,
                ),
            ];
            for (key, bytes) in objects {
                expected.insert(key.clone());
                let finding = |problem: String| ObjectFinding {
                    sequence: Some(record.sequence),
                    key: key.clone(),
                    problem,
                };
                match store.get_with_retention(&key)? {
                    None => findings.push(finding(if listed.contains(&key) {
                        "listed but cannot be read".into()
                    } else {
                        "missing from the bucket (never copied, or hidden by a delete marker)"
                            .into()
                    })),
                    Some((found, _)) if found != *bytes => findings.push(finding(format!(
                        "holds different bytes (sha256 {}) than the branch (sha256 {})",
                        super::sha256_hex(&found),
                        super::sha256_hex(bytes)
                    ))),
                    Some((_, None)) => {
                        findings.push(finding(format!("has no lock; {required} is required")))
                    }
                    Some((_, Some(lock))) if !lock.covers(&required) => {
                        findings.push(finding(format!("is locked {lock}; {required} is required")));
                    }
                    Some(_) => {}
                }
            }
        }
    }
    for key in listed.difference(&expected) {
        let sequence =
            super::worm::parse_object_key(worm.prefix(), key).map(|(sequence, _, _)| sequence);
        findings.push(ObjectFinding {
            sequence,
            key: key.clone(),
            problem: "is in the bucket but not on the branch".into(),
        });
    }
    Ok(ObjectStoreReport {
        store: store.describe(),
        records: record_count,
        objects_listed: listed.len(),
        findings,
    })
}

/// The branch's record commits, root first.
fn record_commits(branch: &EvidenceBranch) -> Result<Vec<Oid>, EvidenceError> {
    let mut commits = Vec::new();
    let Some(tip) = branch.tip()? else {
        return Ok(commits);
    };
    let mut cursor = Some(Oid::from_str(&tip.commit).map_err(git_context("invalid tip commit"))?);
    while let Some(commit_id) = cursor {
        commits.push(commit_id);
        cursor = branch
            .repository
            .find_commit(commit_id)
            .map_err(git_context(format!("cannot read commit {commit_id}")))?
            .parent_id(0)
            .ok();
    }
    commits.reverse();
    Ok(commits)
}
