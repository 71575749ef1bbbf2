//! `evidence_head`: the last evidence record the store knows about.
//!
//! The evidence branch only grows. Remembering its head (sequence, pack hash,
//! commit) here lets `verify --state` notice a branch rewritten shorter or
//! differently, which the branch alone cannot show. The head only moves forward.

use super::db::{Connection, TransactionBehavior, params};
use super::time::{format_timestamp, parse_timestamp, serialize_timestamp};
use super::{OptionalStoreExtension, Store, StoreError, from_sql_integer, to_sql_integer};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// The newest evidence record committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EvidenceHead {
    /// The record's sequence number on the evidence branch.
    pub sequence: u64,
    /// SHA-256 (hex) of the evidence pack.
    pub pack_sha256: String,
    /// The commit on the evidence branch that added it.
    pub evidence_commit_sha: String,
    #[serde(serialize_with = "serialize_timestamp")]
    pub updated_at: DateTime<Utc>,
}

impl Store {
    /// Records a newer evidence head. Setting the current head again is a no-op;
    /// a lower sequence is [`StoreError::EvidenceHeadRegression`]; the current
    /// sequence with another pack or commit is [`StoreError::EvidenceHeadConflict`].
    pub fn set_evidence_head(
        &mut self,
        sequence: u64,
        pack_sha256: &str,
        evidence_commit_sha: &str,
        now: DateTime<Utc>,
    ) -> Result<EvidenceHead, StoreError> {
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let head = write_head(
            &transaction,
            sequence,
            pack_sha256,
            evidence_commit_sha,
            now,
        )?;
        transaction.commit()?;
        Ok(head)
    }
}

/// Moves the evidence head inside the caller's write transaction (see
/// [`Store::set_evidence_head`] for what it refuses).
pub(super) fn write_head(
    transaction: &Connection,
    sequence: u64,
    pack_sha256: &str,
    evidence_commit_sha: &str,
    now: DateTime<Utc>,
) -> Result<EvidenceHead, StoreError> {
    if let Some(current) = read_head(transaction).optional_store()? {
        if sequence < current.sequence {
            return Err(StoreError::EvidenceHeadRegression {
                current_sequence: current.sequence,
                proposed_sequence: sequence,
            });
        }
        if sequence == current.sequence {
            if current.pack_sha256 == pack_sha256
                && current.evidence_commit_sha == evidence_commit_sha
            {
                return Ok(current);
            }
            return Err(StoreError::EvidenceHeadConflict {
                sequence,
                recorded_pack_sha256: current.pack_sha256,
                recorded_commit_sha: current.evidence_commit_sha,
            });
        }
    }
    transaction.execute(
        "INSERT INTO evidence_head (singleton, sequence, pack_sha256, evidence_commit_sha,
                 updated_at)
             VALUES (1, ?1, ?2, ?3, ?4)
             ON CONFLICT (singleton) DO UPDATE SET
                 sequence = excluded.sequence,
                 pack_sha256 = excluded.pack_sha256,
                 evidence_commit_sha = excluded.evidence_commit_sha,
                 updated_at = excluded.updated_at",
        params![
            to_sql_integer("evidence sequence", sequence)?,
            pack_sha256,
            evidence_commit_sha,
            format_timestamp(now)
        ],
    )?;
    read_head(transaction)
}

impl Store {
    /// The evidence head, if any evidence was recorded.
    pub fn evidence_head(&self) -> Result<Option<EvidenceHead>, StoreError> {
        read_head(&self.connection).optional_store()
    }
}

fn read_head(connection: &Connection) -> Result<EvidenceHead, StoreError> {
    connection.query_row_and_then(
        "SELECT sequence, pack_sha256, evidence_commit_sha, updated_at
         FROM evidence_head WHERE singleton = 1",
        params![],
        |row| {
            Ok(EvidenceHead {
                sequence: from_sql_integer("evidence_head.sequence", row.get(0)?)?,
                pack_sha256: row.get(1)?,
                evidence_commit_sha: row.get(2)?,
                updated_at: parse_timestamp(
                    &row.get::<_, String>(3)?,
                    "evidence_head",
                    "updated_at",
                )?,
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 4, 10, minute, 0).unwrap()
    }

    #[test]
    fn evidence_head_moves_forward_only() {
        let mut store = Store::open_in_memory().unwrap();
        assert_eq!(store.evidence_head().unwrap(), None);
        store.set_evidence_head(1, "p1", "c1", at(1)).unwrap();
        let head = store.set_evidence_head(2, "p2", "c2", at(2)).unwrap();
        assert_eq!((head.sequence, head.pack_sha256.as_str()), (2, "p2"));
        assert_eq!(store.set_evidence_head(2, "p2", "c2", at(3)).unwrap(), head);
        let error = store.set_evidence_head(1, "p1", "c1", at(4)).unwrap_err();
        assert!(
            matches!(
                error,
                StoreError::EvidenceHeadRegression {
                    current_sequence: 2,
                    ..
                }
            ),
            "{error}"
        );
        let error = store
            .set_evidence_head(2, "p2-rewritten", "c2", at(4))
            .unwrap_err();
        assert!(
            matches!(error, StoreError::EvidenceHeadConflict { sequence: 2, .. }),
            "{error}"
        );
        assert_eq!(store.evidence_head().unwrap(), Some(head));
    }
}
