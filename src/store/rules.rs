//! `rules_in_force`: the rules the daemon judges each tracked branch by.
//!
//! A commit on the tracked branch is judged by the last *authorised* rules
//! (DESIGN §4.1), not by its own: this table remembers, per branch, the
//! commit whose config, principals and policies are in force, the last
//! authorised allowed scope of every application, the governance change
//! that is not in force (reported by `status` until a later authorised
//! commit), the root of authority (the first commit the daemon trusted),
//! and when the decisions must be judged again because an approval or an
//! exception expires. The daemon (`daemon::rules`) decides; this module
//! only stores.

use super::db::{Row, params};
use super::time::{
    format_timestamp, parse_optional_timestamp, parse_timestamp, serialize_optional_timestamp,
    serialize_timestamp,
};
use super::{OptionalStoreExtension, Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

/// The rules in force on one tracked branch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RulesState {
    pub branch: String,
    /// The first commit the daemon judged, authorised by definition.
    pub root_commit: String,
    /// The commit whose config, principals and policies are in force.
    pub rules_commit: String,
    /// Application id → the last authorised `allowed_scope` (JSON).
    pub app_scopes: Value,
    /// The change to the rules that is not in force, while there is one.
    pub unauthorised: Option<Value>,
    /// The commit the decisions in the store were last judged at.
    pub judged_commit: String,
    /// When they must be judged again: the earliest expiry after that.
    #[serde(serialize_with = "serialize_optional_timestamp")]
    pub rejudge_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "serialize_timestamp")]
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "branch, root_commit, rules_commit, app_scopes, unauthorised, judged_commit, rejudge_at, updated_at";

fn read(row: &Row<'_>) -> Result<RulesState, StoreError> {
    let unauthorised: Option<String> = row.get(4)?;
    Ok(RulesState {
        branch: row.get(0)?,
        root_commit: row.get(1)?,
        rules_commit: row.get(2)?,
        app_scopes: serde_json::from_str(&row.get::<_, String>(3)?)?,
        unauthorised: unauthorised
            .map(|text| serde_json::from_str(&text))
            .transpose()?,
        judged_commit: row.get(5)?,
        rejudge_at: parse_optional_timestamp(row.get(6)?, "rules_in_force", "rejudge_at")?,
        updated_at: parse_timestamp(&row.get::<_, String>(7)?, "rules_in_force", "updated_at")?,
    })
}

impl Store {
    /// The rules in force on `branch`, once the daemon has judged a commit.
    pub fn rules_state(&self, branch: &str) -> Result<Option<RulesState>, StoreError> {
        self.connection
            .query_row_and_then(
                &format!("SELECT {COLUMNS} FROM rules_in_force WHERE branch = ?1"),
                [branch],
                read,
            )
            .optional_store()
    }

    /// The rules in force on every tracked branch the daemon has judged.
    pub fn rules_states(&self) -> Result<Vec<RulesState>, StoreError> {
        let mut statement = self.connection.prepare(&format!(
            "SELECT {COLUMNS} FROM rules_in_force ORDER BY branch"
        ))?;
        let rows = statement.query_and_then(params![], read)?;
        rows.collect()
    }

    /// Writes the rules in force on `state.branch` (`updated_at` is `now`).
    pub fn save_rules_state(
        &mut self,
        state: &RulesState,
        now: DateTime<Utc>,
    ) -> Result<RulesState, StoreError> {
        self.connection.execute(
            "INSERT INTO rules_in_force (branch, root_commit, rules_commit, app_scopes,
                 unauthorised, judged_commit, rejudge_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (branch) DO UPDATE SET
                 root_commit = excluded.root_commit,
                 rules_commit = excluded.rules_commit,
                 app_scopes = excluded.app_scopes,
                 unauthorised = excluded.unauthorised,
                 judged_commit = excluded.judged_commit,
                 rejudge_at = excluded.rejudge_at,
                 updated_at = excluded.updated_at",
            params![
                state.branch,
                state.root_commit,
                state.rules_commit,
                serde_json::to_string(&state.app_scopes)?,
                state
                    .unauthorised
                    .as_ref()
                    .map(serde_json::to_string)
                    .transpose()?,
                state.judged_commit,
                state.rejudge_at.map(format_timestamp),
                format_timestamp(now),
            ],
        )?;
        self.rules_state(&state.branch)?
            .ok_or(StoreError::Sqlite(rusqlite::Error::QueryReturnedNoRows))
    }
}
