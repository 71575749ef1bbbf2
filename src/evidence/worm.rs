//! The WORM copy of the evidence branch: every record's pack and signature
//! written to an [`ImmutableStore`] with a retention lock, under
//! content-addressed keys.
//!
//! Keys: `<prefix>packs/<SSSSSSSS>-<sha256>.json` and the same with
//! `.minisig`, where `SSSSSSSS` is the sequence padded to 8 digits and
//! `sha256` the pack's hash (so one key can only ever hold one pack).
//!
//! [`WormCopy::copy_through`] is a catch-up, like a push: it copies, in
//! order, every record of the branch the store does not have yet, the
//! signature before the pack (so a pack present means its signature is
//! too). It is idempotent: an object already there with the same bytes is
//! fine (its lock is raised if it is shorter than required); a different
//! body under one of our keys is [`WormError::Conflict`] — an alarm, never
//! overwritten. Only committed records are copied, so the bucket never
//! holds a record the branch did not have.
//!
//! Each record's lock runs `retention_days` from its creation (or from the
//! copy, when it is copied later than that): [`required_retention`] is what
//! `verify --object-store` demands.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use git2::Oid;

use super::branch::EvidenceBranch;
use super::canonical::sha256_hex;
use super::{EvidenceError, git_context};
use crate::worm::config::retention_from;
use crate::worm::{ImmutableStore, LockMode, PutOutcome, Retention, StoreError};

/// The key of record `sequence`'s pack.
pub fn pack_object_key(prefix: &str, sequence: u64, pack_sha256: &str) -> String {
    format!("{prefix}packs/{sequence:08}-{pack_sha256}.json")
}

/// The key of record `sequence`'s signature.
pub fn signature_object_key(prefix: &str, sequence: u64, pack_sha256: &str) -> String {
    format!("{}.minisig", pack_object_key(prefix, sequence, pack_sha256))
}

/// Parses a pack or signature key back into (sequence, sha256, is_signature).
pub fn parse_object_key(prefix: &str, key: &str) -> Option<(u64, String, bool)> {
    let rest = key.strip_prefix(prefix)?.strip_prefix("packs/")?;
    let (rest, is_signature) = match rest.strip_suffix(".json.minisig") {
        Some(rest) => (rest, true),
        None => (rest.strip_suffix(".json")?, false),
    };
    let (sequence, sha256) = rest.split_once('-')?;
    let valid_sha = sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if sequence.len() < 8 || !sequence.bytes().all(|b| b.is_ascii_digit()) || !valid_sha {
        return None;
    }
    Some((sequence.parse().ok()?, sha256.to_owned(), is_signature))
}

/// The lock a record created at `created_at` must carry at least.
pub fn required_retention(
    mode: LockMode,
    retention_days: u32,
    created_at: DateTime<Utc>,
) -> Retention {
    retention_from(mode, retention_days, created_at)
}

/// Why the copy did not complete. Any of these blocks publishing.
#[derive(Debug, thiserror::Error)]
pub enum WormError {
    /// The store is down or refused a request.
    #[error(transparent)]
    Store(Box<StoreError>),
    /// ALARM: one of our keys holds different bytes. Nothing was written.
    #[error(
        "ALARM: {store} holds different bytes under {key} (sha256 {found_sha256}, the record's is {expected_sha256}); it was not overwritten"
    )]
    Conflict {
        store: String,
        key: String,
        expected_sha256: String,
        found_sha256: String,
    },
    /// The bucket does not have Object Lock (or versioning) enabled, so a
    /// copy there would not be write-once.
    #[error("{store}: {reason}; evidence copies need a bucket created with Object Lock enabled")]
    NotLocked { store: String, reason: String },
    /// The branch could not be read.
    #[error("reading the evidence branch for the WORM copy: {0}")]
    Branch(Box<EvidenceError>),
}

impl From<StoreError> for WormError {
    fn from(error: StoreError) -> Self {
        WormError::Store(Box::new(error))
    }
}

impl From<EvidenceError> for WormError {
    fn from(error: EvidenceError) -> Self {
        WormError::Branch(Box::new(error))
    }
}

impl WormError {
    /// Whether this is the different-body alarm.
    pub fn is_conflict(&self) -> bool {
        matches!(self, WormError::Conflict { .. })
    }
}

/// Counts since start, for metrics (`/metrics` can expose them).
#[derive(Debug, Default)]
pub struct WormCounters {
    /// Objects written (packs and signatures).
    pub objects_written: AtomicU64,
    /// Objects found already there with the same bytes.
    pub objects_already_present: AtomicU64,
    /// Copies that failed (store unavailable or refusing).
    pub failures: AtomicU64,
    /// Different-body alarms.
    pub conflicts: AtomicU64,
}

/// A snapshot of [`WormCounters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct WormCounts {
    pub objects_written: u64,
    pub objects_already_present: u64,
    pub failures: u64,
    pub conflicts: u64,
}

/// The last record known to be in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CopiedHead {
    sequence: u64,
    pack_sha256: String,
}

/// What one `copy_through` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// Sequences of the records copied now (both objects written or found).
    pub records: Vec<u64>,
    /// Objects that were already there with the same bytes.
    pub already_present: u64,
    /// The last record now in the store.
    pub head: Option<u64>,
}

/// The WORM copy of one evidence branch.
pub struct WormCopy {
    store: Box<dyn ImmutableStore>,
    prefix: String,
    mode: LockMode,
    retention_days: u32,
    copied: Mutex<Option<CopiedHead>>,
    counters: WormCounters,
}

impl std::fmt::Debug for WormCopy {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("WormCopy")
            .field("store", &self.store.describe())
            .field("mode", &self.mode)
            .field("retention_days", &self.retention_days)
            .finish()
    }
}

/// One record read from the branch, ready to copy.
pub(crate) struct BranchRecord {
    pub sequence: u64,
    pub pack_sha256: String,
    pub created_at: DateTime<Utc>,
    pub pack: Vec<u8>,
    pub signature: Vec<u8>,
}

impl WormCopy {
    pub fn new(
        store: Box<dyn ImmutableStore>,
        prefix: &str,
        mode: LockMode,
        retention_days: u32,
    ) -> WormCopy {
        WormCopy {
            store,
            prefix: prefix.to_owned(),
            mode,
            retention_days,
            copied: Mutex::new(None),
            counters: WormCounters::default(),
        }
    }

    /// From a validated `evidence_object_store` config.
    pub fn open(config: &crate::worm::ObjectStoreConfig) -> Result<WormCopy, WormError> {
        let store = crate::worm::open(config)?;
        Ok(WormCopy::new(
            store,
            &config.prefix,
            config.mode,
            config.retention_days,
        ))
    }

    pub fn store(&self) -> &dyn ImmutableStore {
        self.store.as_ref()
    }

    pub fn describe(&self) -> String {
        self.store.describe()
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn mode(&self) -> LockMode {
        self.mode
    }

    pub fn retention_days(&self) -> u32 {
        self.retention_days
    }

    pub fn counts(&self) -> WormCounts {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        WormCounts {
            objects_written: read(&self.counters.objects_written),
            objects_already_present: read(&self.counters.objects_already_present),
            failures: read(&self.counters.failures),
            conflicts: read(&self.counters.conflicts),
        }
    }

    /// Checks that the bucket is write-once: Object Lock and versioning on.
    pub fn check_bucket(&self) -> Result<(), WormError> {
        let lock = self.store.bucket_lock()?;
        if !lock.object_lock_enabled {
            return Err(WormError::NotLocked {
                store: self.store.describe(),
                reason: "Object Lock is not enabled on the bucket".into(),
            });
        }
        if !lock.versioning_enabled {
            return Err(WormError::NotLocked {
                store: self.store.describe(),
                reason: "versioning is not enabled on the bucket".into(),
            });
        }
        Ok(())
    }

    /// Copies every record of `branch` the store does not have yet, oldest
    /// first (see the module documentation). `now` starts the lock of a
    /// record copied later than it was created.
    pub fn copy_through(
        &self,
        branch: &EvidenceBranch,
        now: DateTime<Utc>,
    ) -> Result<CopyReport, WormError> {
        let result = self.copy_pending(branch, now);
        if let Err(error) = &result {
            self.counters.failures.fetch_add(1, Ordering::Relaxed);
            if error.is_conflict() {
                self.counters.conflicts.fetch_add(1, Ordering::Relaxed);
            }
        }
        result
    }

    fn copy_pending(
        &self,
        branch: &EvidenceBranch,
        now: DateTime<Utc>,
    ) -> Result<CopyReport, WormError> {
        let Some(tip) = branch.tip()? else {
            return Ok(CopyReport::default());
        };
        let known = self
            .copied
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if known.as_ref().is_some_and(|head| {
            head.sequence == tip.sequence && head.pack_sha256 == tip.pack_sha256
        }) {
            return Ok(CopyReport {
                head: Some(tip.sequence),
                ..CopyReport::default()
            });
        }
        // Walk back from the tip to the last record the store has.
        let mut pending = Vec::new();
        let mut cursor =
            Some(Oid::from_str(&tip.commit).map_err(git_context("invalid tip commit"))?);
        while let Some(commit_id) = cursor {
            let (record_tip, _) = branch.read_record_commit_with_pack(commit_id)?;
            let known_here = known.as_ref().is_some_and(|head| {
                head.sequence == record_tip.sequence && head.pack_sha256 == record_tip.pack_sha256
            });
            if known_here {
                break;
            }
            let key = pack_object_key(&self.prefix, record_tip.sequence, &record_tip.pack_sha256);
            if self.store.exists(&key)? {
                // Where the copy resumes: check that it is ours (the last
                // record of the commit; records are copied oldest first).
                let record = read_branch_records(branch, commit_id)?
                    .pop()
                    .ok_or_else(|| {
                        WormError::from(EvidenceError::CorruptTip {
                            branch: branch.branch_name().to_string(),
                            commit: commit_id.to_string(),
                            reason: "the commit holds no record".to_string(),
                        })
                    })?;
                let found = self.store.get(&key)?.unwrap_or_default();
                if found != record.pack {
                    return Err(WormError::Conflict {
                        store: self.store.describe(),
                        key,
                        expected_sha256: record.pack_sha256,
                        found_sha256: sha256_hex(&found),
                    });
                }
                break;
            }
            pending.push(commit_id);
            cursor = branch
                .repository
                .find_commit(commit_id)
                .map_err(git_context(format!("cannot read commit {commit_id}")))?
                .parent_id(0)
                .ok();
        }
        let mut report = CopyReport::default();
        for commit_id in pending.into_iter().rev() {
            for record in read_branch_records(branch, commit_id)? {
                let from = record.created_at.max(now);
                let retention = retention_from(self.mode, self.retention_days, from);
                let keys = [
                    (
                        signature_object_key(&self.prefix, record.sequence, &record.pack_sha256),
                        &record.signature,
                    ),
                    (
                        pack_object_key(&self.prefix, record.sequence, &record.pack_sha256),
                        &record.pack,
                    ),
                ];
                for (key, bytes) in keys {
                    if self.put_object(&key, bytes, &retention)? {
                        report.already_present += 1;
                    }
                }
                *self
                    .copied
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(CopiedHead {
                    sequence: record.sequence,
                    pack_sha256: record.pack_sha256.clone(),
                });
                report.records.push(record.sequence);
            }
        }
        *self
            .copied
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(CopiedHead {
            sequence: tip.sequence,
            pack_sha256: tip.pack_sha256.clone(),
        });
        report.head = Some(tip.sequence);
        Ok(report)
    }

    /// Writes one object if its key is free; returns whether it was already
    /// there (same bytes). A different body is the alarm.
    fn put_object(
        &self,
        key: &str,
        bytes: &[u8],
        retention: &Retention,
    ) -> Result<bool, WormError> {
        match self.store.put_if_absent(key, bytes, retention)? {
            PutOutcome::Created => {
                self.counters
                    .objects_written
                    .fetch_add(1, Ordering::Relaxed);
                Ok(false)
            }
            PutOutcome::AlreadyPresent => {
                let found = self.store.get(key)?.unwrap_or_default();
                if found != bytes {
                    return Err(WormError::Conflict {
                        store: self.store.describe(),
                        key: key.to_owned(),
                        expected_sha256: sha256_hex(bytes),
                        found_sha256: sha256_hex(&found),
                    });
                }
                let lock = self.store.retention(key)?;
                if !lock.is_some_and(|lock| lock.covers(retention)) {
                    self.store.extend_retention(key, retention)?;
                }
                self.counters
                    .objects_already_present
                    .fetch_add(1, Ordering::Relaxed);
                Ok(true)
            }
        }
    }
}

impl EvidenceBranch {
    /// Every append also writes the record to `worm` (see the module
    /// documentation); publishing waits for both.
    pub fn with_worm_copy(mut self, worm: WormCopy) -> Self {
        self.worm = Some(worm);
        self
    }

    /// Appends no longer copy at once: the caller copies with
    /// [`Self::copy_to_worm`] after pushing to its remote, so the bucket
    /// only ever receives records the remote accepted (a record replayed
    /// after a lost push race gets a new sequence and hash; copying before
    /// the push would leave the first version in the bucket).
    pub fn copy_after_push(mut self) -> Self {
        self.copy_on_append = false;
        self
    }

    /// The WORM copy, when configured.
    pub fn worm_copy(&self) -> Option<&WormCopy> {
        self.worm.as_ref()
    }

    /// Copies every committed record the WORM store lacks (nothing to do
    /// without a WORM copy). What `append` runs after committing, and what
    /// the daemon runs to catch up after an outage.
    pub fn copy_to_worm(&self, now: DateTime<Utc>) -> Result<Option<CopyReport>, WormError> {
        match &self.worm {
            Some(worm) => worm.copy_through(self, now).map(Some),
            None => Ok(None),
        }
    }
}

/// Reads the pack and signature bytes of every record a record commit
/// adds (one, or a batch's), in sequence order.
pub(crate) fn read_branch_records(
    branch: &EvidenceBranch,
    commit_id: Oid,
) -> Result<Vec<BranchRecord>, EvidenceError> {
    let repository = &branch.repository;
    let read = |blob: Oid| -> Result<Vec<u8>, EvidenceError> {
        let blob = repository.find_blob(blob).map_err(git_context(format!(
            "cannot read blob {blob} of {commit_id}"
        )))?;
        Ok(blob.content().to_vec())
    };
    branch
        .records_in_commit(commit_id)?
        .into_iter()
        .map(|record| {
            Ok(BranchRecord {
                sequence: record.tip.sequence,
                pack_sha256: record.tip.pack_sha256,
                created_at: record.pack.created_at,
                pack: read(record.pack_blob)?,
                signature: read(record.signature_blob)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_keys_round_trip() {
        let sha = "ab".repeat(32);
        let key = pack_object_key("tenant/", 7, &sha);
        assert_eq!(key, format!("tenant/packs/00000007-{sha}.json"));
        assert_eq!(
            parse_object_key("tenant/", &key),
            Some((7, sha.clone(), false))
        );
        let signature = signature_object_key("", 123_456_789, &sha);
        assert_eq!(signature, format!("packs/123456789-{sha}.json.minisig"));
        assert_eq!(
            parse_object_key("", &signature),
            Some((123_456_789, sha.clone(), true))
        );
        for foreign in [
            "packs/7-x.json".to_string(),
            format!("packs/0000007-{sha}.json"),
            format!("other/packs/00000007-{sha}.json"),
            format!("packs/00000007-{}.json", "AB".repeat(32)),
            "README".to_string(),
        ] {
            assert_eq!(parse_object_key("", &foreign), None, "{foreign}");
        }
    }
}
