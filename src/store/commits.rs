//! `processed_commits`: which commits of the governed repository the daemon has
//! evaluated, in the order it evaluated them.
//!
//! After a restart the daemon asks for the last commit it processed on a branch and
//! diffs from there, so nothing is evaluated twice and nothing is skipped.

use super::db::{Row, TransactionBehavior, params};
use super::time::{format_timestamp, parse_timestamp, serialize_timestamp};
use super::{OptionalStoreExtension, Store, StoreError, from_sql_integer};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What evaluating a commit concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommitOutcome {
    /// The snapshot loaded, validated and passed policy checks.
    Ok,
    /// The snapshot had error diagnostics; the previous good snapshot stays in force.
    Invalid,
}

impl CommitOutcome {
    /// The text stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            CommitOutcome::Ok => "ok",
            CommitOutcome::Invalid => "invalid",
        }
    }

    fn parse(text: &str) -> Result<CommitOutcome, StoreError> {
        match text {
            "ok" => Ok(CommitOutcome::Ok),
            "invalid" => Ok(CommitOutcome::Invalid),
            other => Err(StoreError::InvalidStoredValue {
                table: "processed_commits",
                column: "outcome",
                value: other.to_string(),
            }),
        }
    }
}

/// One processed commit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessedCommit {
    /// Order of processing across all branches, from 1.
    pub sequence: u64,
    pub branch: String,
    pub commit_sha: String,
    #[serde(serialize_with = "serialize_timestamp")]
    pub processed_at: DateTime<Utc>,
    pub outcome: CommitOutcome,
    /// The diagnostics found, as the validating module serialised them.
    pub diagnostics: Value,
}

const COLUMNS: &str = "sequence, branch, commit_sha, processed_at, outcome, diagnostics";

impl Store {
    /// Records that `commit_sha` on `branch` was evaluated. Idempotent: recording a
    /// commit already recorded on that branch returns the first record unchanged
    /// (the daemon may re-evaluate a commit after a crash before it recorded it).
    pub fn record_commit(
        &mut self,
        branch: &str,
        commit_sha: &str,
        outcome: CommitOutcome,
        diagnostics: &Value,
        now: DateTime<Utc>,
    ) -> Result<ProcessedCommit, StoreError> {
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        transaction.execute(
            "INSERT INTO processed_commits (branch, commit_sha, processed_at, outcome, diagnostics)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (branch, commit_sha) DO NOTHING",
            params![
                branch,
                commit_sha,
                format_timestamp(now),
                outcome.as_str(),
                serde_json::to_string(diagnostics)?
            ],
        )?;
        let record = transaction.query_row_and_then(
            &format!(
                "SELECT {COLUMNS} FROM processed_commits WHERE branch = ?1 AND commit_sha = ?2"
            ),
            params![branch, commit_sha],
            read_processed_commit,
        )?;
        transaction.commit()?;
        Ok(record)
    }

    /// The commit most recently recorded on `branch`, if any.
    pub fn last_processed_commit(
        &self,
        branch: &str,
    ) -> Result<Option<ProcessedCommit>, StoreError> {
        self.connection
            .query_row_and_then(
                &format!(
                    "SELECT {COLUMNS} FROM processed_commits WHERE branch = ?1
                     ORDER BY sequence DESC LIMIT 1"
                ),
                [branch],
                read_processed_commit,
            )
            .optional_store()
    }

    /// The most recent commit on `branch` that loaded without errors: the
    /// snapshot the daemon works from (the "last known good").
    pub fn last_good_commit(&self, branch: &str) -> Result<Option<ProcessedCommit>, StoreError> {
        self.connection
            .query_row_and_then(
                &format!(
                    "SELECT {COLUMNS} FROM processed_commits WHERE branch = ?1 AND outcome = 'ok'
                     ORDER BY sequence DESC LIMIT 1"
                ),
                [branch],
                read_processed_commit,
            )
            .optional_store()
    }

    /// Whether `commit_sha` was recorded on `branch`.
    pub fn is_commit_processed(&self, branch: &str, commit_sha: &str) -> Result<bool, StoreError> {
        Ok(self
            .connection
            .query_row(
                "SELECT 1 FROM processed_commits WHERE branch = ?1 AND commit_sha = ?2",
                params![branch, commit_sha],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }
}

fn read_processed_commit(row: &Row<'_>) -> Result<ProcessedCommit, StoreError> {
    let diagnostics: String = row.get("diagnostics")?;
    Ok(ProcessedCommit {
        sequence: from_sql_integer("processed_commits.sequence", row.get("sequence")?)?,
        branch: row.get("branch")?,
        commit_sha: row.get("commit_sha")?,
        processed_at: parse_timestamp(
            &row.get::<_, String>("processed_at")?,
            "processed_commits",
            "processed_at",
        )?,
        outcome: CommitOutcome::parse(&row.get::<_, String>("outcome")?)?,
        diagnostics: serde_json::from_str(&diagnostics).map_err(|_| {
            StoreError::InvalidStoredValue {
                table: "processed_commits",
                column: "diagnostics",
                value: diagnostics.clone(),
            }
        })?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 4, 10, minute, 0).unwrap()
    }

    #[test]
    fn last_processed_commit_is_per_branch_and_in_order() {
        let mut store = Store::open_in_memory().unwrap();
        assert!(store.last_processed_commit("main").unwrap().is_none());
        store
            .record_commit("main", "aaa", CommitOutcome::Ok, &json!([]), at(1))
            .unwrap();
        store
            .record_commit("release", "bbb", CommitOutcome::Ok, &json!([]), at(2))
            .unwrap();
        let invalid = json!([{"file": "intents/vpn.yaml", "line": 3}]);
        store
            .record_commit("main", "ccc", CommitOutcome::Invalid, &invalid, at(3))
            .unwrap();

        let last = store.last_processed_commit("main").unwrap().unwrap();
        assert_eq!(last.commit_sha, "ccc");
        assert_eq!(last.sequence, 3);
        assert_eq!(last.outcome, CommitOutcome::Invalid);
        assert_eq!(last.diagnostics, invalid);
        assert_eq!(last.processed_at, at(3));
        assert_eq!(
            store
                .last_processed_commit("release")
                .unwrap()
                .unwrap()
                .commit_sha,
            "bbb"
        );
    }

    #[test]
    fn recording_a_commit_twice_keeps_the_first_record() {
        let mut store = Store::open_in_memory().unwrap();
        let first = store
            .record_commit("main", "aaa", CommitOutcome::Ok, &json!([]), at(1))
            .unwrap();
        let again = store
            .record_commit("main", "aaa", CommitOutcome::Invalid, &json!(["x"]), at(2))
            .unwrap();
        assert_eq!(first, again);
        assert!(store.is_commit_processed("main", "aaa").unwrap());
        assert!(!store.is_commit_processed("main", "zzz").unwrap());
        assert!(!store.is_commit_processed("release", "aaa").unwrap());
    }

    #[test]
    fn commit_outcome_serialises_lowercase() {
        assert_eq!(
            serde_json::to_value(CommitOutcome::Invalid).unwrap(),
            json!("invalid")
        );
    }
}
