//! `operator_requests`: hold / resume / rollback asked for by a person.
//!
//! The CLI (or the API) queues a request; the daemon takes pending requests
//! in order, feeds each to the intent's state machine, and marks it handled.
//! The request itself stays, so the table is also a record of who asked what.
//!
//! A request from the API carries its `origin`: the authenticated caller
//! (principal, method, role) and the request's id, source address and user
//! agent. A request without one came from the local CLI, whose actor is
//! self-declared: whoever can write the state directory can queue anything,
//! and the daemon marks such actors as unauthenticated in events and evidence.
//!
//! `reconcile_requests` queues a drift reconciliation asked for through the
//! API; the daemon runs one at its next step and marks every pending request
//! handled.

use super::db::{TransactionBehavior, params};
use super::time::{format_timestamp, parse_timestamp};
use super::{Store, StoreError};
use chrono::{DateTime, Utc};
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
    /// The authenticated API caller and request metadata; `None`: the local
    /// CLI (a self-declared actor).
    pub origin: Option<serde_json::Value>,
}

/// A reconciliation asked for through the API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReconcileRequest {
    pub request_id: u64,
    pub actor: String,
    pub reason: String,
    pub origin: serde_json::Value,
    pub requested_at: DateTime<Utc>,
}

impl Store {
    /// Queues a request of the local CLI (self-declared actor) for the daemon.
    pub fn request_operator_action(
        &mut self,
        intent_id: &str,
        action: &str,
        reason: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        self.request_operator_action_from(intent_id, action, reason, actor, None, now)
    }

    /// Queues a request with its origin (an API caller; `None`: local).
    pub fn request_operator_action_from(
        &mut self,
        intent_id: &str,
        action: &str,
        reason: &str,
        actor: &str,
        origin: Option<&serde_json::Value>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let origin = origin.map(serde_json::to_string).transpose()?;
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let request_id: i64 = transaction.query_row(
            "INSERT INTO operator_requests (intent_id, action, reason, actor, requested_at, origin)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             RETURNING request_id",
            params![
                intent_id,
                action,
                reason,
                actor,
                format_timestamp(now),
                origin
            ],
            |row| row.get(0),
        )?;
        transaction.commit()?;
        Ok(u64::try_from(request_id).unwrap_or(0))
    }

    /// Queues a reconciliation for the daemon's next step.
    pub fn request_reconcile(
        &mut self,
        actor: &str,
        reason: &str,
        origin: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let request_id: i64 = transaction.query_row(
            "INSERT INTO reconcile_requests (actor, reason, origin, requested_at)
             VALUES (?1, ?2, ?3, ?4)
             RETURNING request_id",
            params![
                actor,
                reason,
                serde_json::to_string(origin)?,
                format_timestamp(now)
            ],
            |row| row.get(0),
        )?;
        transaction.commit()?;
        Ok(u64::try_from(request_id).unwrap_or(0))
    }

    /// Reconciliations asked for and not yet run, oldest first.
    pub fn pending_reconcile_requests(&self) -> Result<Vec<ReconcileRequest>, StoreError> {
        let mut statement = self.connection.prepare(
            "SELECT request_id, actor, reason, origin, requested_at
             FROM reconcile_requests WHERE handled_at IS NULL ORDER BY request_id",
        )?;
        let rows = statement.query_and_then(params![], |row| {
            let origin: String = row.get(3)?;
            Ok::<_, StoreError>(ReconcileRequest {
                request_id: u64::try_from(row.get::<_, i64>(0)?).unwrap_or(0),
                actor: row.get(1)?,
                reason: row.get(2)?,
                origin: serde_json::from_str(&origin).map_err(|_| {
                    StoreError::InvalidStoredValue {
                        table: "reconcile_requests",
                        column: "origin",
                        value: origin.clone(),
                    }
                })?,
                requested_at: parse_timestamp(
                    &row.get::<_, String>(4)?,
                    "reconcile_requests",
                    "requested_at",
                )?,
            })
        })?;
        rows.collect()
    }

    /// Marks every reconciliation asked for up to `last_request_id` as run.
    pub fn mark_reconcile_requests_handled(
        &mut self,
        last_request_id: u64,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.connection.execute(
            "UPDATE reconcile_requests SET handled_at = ?2
             WHERE handled_at IS NULL AND request_id <= ?1",
            params![
                i64::try_from(last_request_id).unwrap_or(i64::MAX),
                format_timestamp(now)
            ],
        )?;
        Ok(())
    }

    /// Requests not yet handled, oldest first.
    pub fn pending_operator_requests(&self) -> Result<Vec<OperatorRequest>, StoreError> {
        let mut statement = self.connection.prepare(
            "SELECT request_id, intent_id, action, reason, actor, requested_at, origin
             FROM operator_requests WHERE handled_at IS NULL ORDER BY request_id",
        )?;
        let rows = statement.query_and_then(params![], |row| {
            let origin: Option<String> = row.get(6)?;
            Ok::<_, StoreError>(OperatorRequest {
                origin: origin
                    .map(|text| {
                        serde_json::from_str(&text).map_err(|_| StoreError::InvalidStoredValue {
                            table: "operator_requests",
                            column: "origin",
                            value: text.clone(),
                        })
                    })
                    .transpose()?,
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
