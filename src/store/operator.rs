//! `operator_requests`: hold / resume / rollback asked for by a person.
//!
//! The CLI (or the API) queues a request; the daemon takes pending requests
//! in order, feeds each to the intent's state machine, and marks it handled.
//! The request itself stays, so the table is also a record of who asked what.

use super::time::{format_timestamp, parse_timestamp};
use super::{Store, StoreError};
use chrono::{DateTime, Utc};
use rusqlite::params;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperatorRequest {
    pub request_id: u64,
    pub intent_id: String,
    /// `hold`, `resume` or `rollback`.
    pub action: String,
    pub reason: String,
    pub actor: String,
    pub requested_at: DateTime<Utc>,
}

impl Store {
    /// Queues a request for the daemon.
    pub fn request_operator_action(
        &mut self,
        intent_id: &str,
        action: &str,
        reason: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        self.connection.execute(
            "INSERT INTO operator_requests (intent_id, action, reason, actor, requested_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![intent_id, action, reason, actor, format_timestamp(now)],
        )?;
        Ok(u64::try_from(self.connection.last_insert_rowid()).unwrap_or(0))
    }

    /// Requests not yet handled, oldest first.
    pub fn pending_operator_requests(&self) -> Result<Vec<OperatorRequest>, StoreError> {
        let mut statement = self.connection.prepare(
            "SELECT request_id, intent_id, action, reason, actor, requested_at
             FROM operator_requests WHERE handled_at IS NULL ORDER BY request_id",
        )?;
        let rows = statement.query_and_then([], |row| {
            Ok::<_, StoreError>(OperatorRequest {
                request_id: u64::try_from(row.get::<_, i64>(0)?).unwrap_or(0),
                intent_id: row.get(1)?,
                action: row.get(2)?,
                reason: row.get(3)?,
                actor: row.get(4)?,
                requested_at: parse_timestamp(
                    &row.get::<_, String>(5)?,
                    "operator_requests",
                    "requested_at",
                )?,
            })
        })?;
        rows.collect()
    }

    pub fn mark_operator_request_handled(
        &mut self,
        request_id: u64,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.connection.execute(
            "UPDATE operator_requests SET handled_at = coalesce(handled_at, ?2) WHERE request_id = ?1",
            params![i64::try_from(request_id).unwrap_or(i64::MAX), format_timestamp(now)],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_handled_once_in_order() {
        let mut store = Store::open_in_memory().expect("store");
        let now = Utc::now();
        store
            .request_operator_action("a", "hold", "investigating", "olivia", now)
            .expect("queue");
        store
            .request_operator_action("b", "rollback", "bad build", "olivia", now)
            .expect("queue");
        let pending = store.pending_operator_requests().expect("pending");
        assert_eq!(
            pending
                .iter()
                .map(|r| r.intent_id.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
        store
            .mark_operator_request_handled(pending[0].request_id, now)
            .expect("handled");
        let pending = store.pending_operator_requests().expect("pending");
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].action, "rollback");
    }
}
