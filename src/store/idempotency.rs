//! `idempotency`: the journal of outbound calls to the execution planes.
//!
//! Before calling a plane the daemon plans the action under a key derived from the
//! intent's correlation id (`<correlation_id>:<plane>:<ring>:<action>`), marks it
//! sent just before the call, and confirmed (with the plane's id) or failed after.
//! After a crash, [`Store::pending_actions`] lists what was planned or sent but never
//! confirmed: the daemon asks the plane about each (by correlation id) instead of
//! calling again, so nothing is assigned twice.
//!
//! ```text
//! planned ──► sent ──► confirmed (final)
//!              ▲  │
//!              │  ▼
//!              failed   (retried at next_attempt_at, or never when it is None)
//! ```

use super::canonical::canonical_json;
use super::db::{Connection, Row, TransactionBehavior, params};
use super::intents::correlation_id_for;
use super::time::{
    format_timestamp, parse_optional_timestamp, parse_timestamp, serialize_optional_timestamp,
    serialize_timestamp,
};
use super::{OptionalStoreExtension, Store, StoreError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// Where an outbound action stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionState {
    /// Recorded, not yet sent.
    Planned,
    /// Sent (or about to be); the plane's answer is not recorded yet.
    Sent,
    /// The plane accepted it. Final.
    Confirmed,
    /// The plane refused it or the call failed; may be sent again.
    Failed,
}

impl ActionState {
    /// The text stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionState::Planned => "planned",
            ActionState::Sent => "sent",
            ActionState::Confirmed => "confirmed",
            ActionState::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Result<ActionState, StoreError> {
        match text {
            "planned" => Ok(ActionState::Planned),
            "sent" => Ok(ActionState::Sent),
            "confirmed" => Ok(ActionState::Confirmed),
            "failed" => Ok(ActionState::Failed),
            other => Err(StoreError::InvalidStoredValue {
                table: "idempotency",
                column: "state",
                value: other.to_string(),
            }),
        }
    }

    /// Whether the journal allows going from `self` to `next`.
    pub fn can_transition_to(self, next: ActionState) -> bool {
        use ActionState::{Confirmed, Failed, Planned, Sent};
        matches!(
            (self, next),
            (Planned, Sent) | (Sent, Confirmed) | (Sent, Failed) | (Failed, Sent)
        )
    }
}

impl fmt::Display for ActionState {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// The key of an outbound action: `<correlation_id>:<plane>:<ring>:<action>`.
pub fn action_key(intent_id: &str, plane: &str, ring: &str, action: &str) -> String {
    format!("{}:{plane}:{ring}:{action}", correlation_id_for(intent_id))
}

/// An outbound action to plan.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAction {
    pub intent_id: String,
    pub plane: String,
    pub ring: String,
    /// Names one effect (`publish`, `assign`, `rollback`); a different request for the
    /// same intent, plane and ring needs a different name.
    pub action: String,
    /// What will be sent, so a recovery can resend exactly the same thing.
    pub request: Value,
}

/// An outbound action as journaled.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Action {
    pub key: String,
    pub intent_id: String,
    pub plane: String,
    pub ring: String,
    pub action: String,
    pub request: Value,
    pub state: ActionState,
    /// The plane's id for what it created (app, assignment, job), once confirmed.
    pub external_id: Option<String>,
    /// How many times it was sent.
    pub attempts: u32,
    pub last_error: Option<String>,
    #[serde(serialize_with = "serialize_optional_timestamp")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "serialize_timestamp")]
    pub planned_at: DateTime<Utc>,
    #[serde(serialize_with = "serialize_timestamp")]
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "key, intent_id, plane, ring, action, request, state, external_id, \
     attempts, last_error, next_attempt_at, planned_at, updated_at";

impl Store {
    /// Plans an action. Idempotent: if its key is already journaled with the same
    /// request, returns that row unchanged (whatever its state); with a different
    /// request, [`StoreError::ActionRequestMismatch`]. The intent must exist.
    pub fn plan_action(
        &mut self,
        action: &NewAction,
        now: DateTime<Utc>,
    ) -> Result<Action, StoreError> {
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let planned = plan_in(&transaction, action, now)?;
        transaction.commit()?;
        Ok(planned)
    }

    /// [`Store::plan_action`] for every action, in ONE write transaction
    /// (one fsync): how the daemon journals the records one step produces
    /// across many rollouts. Either every action is planned or none.
    pub fn plan_actions(
        &mut self,
        actions: &[NewAction],
        now: DateTime<Utc>,
    ) -> Result<Vec<Action>, StoreError> {
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let planned = actions
            .iter()
            .map(|action| plan_in(&transaction, action, now))
            .collect::<Result<Vec<_>, _>>()?;
        transaction.commit()?;
        Ok(planned)
    }

    /// [`Store::mark_sent`] for every key, in ONE write transaction: each
    /// edge is checked as `mark_sent` checks it, and either every entry is
    /// marked or none.
    pub fn mark_sent_all(&mut self, keys: &[String], now: DateTime<Utc>) -> Result<(), StoreError> {
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for key in keys {
            transition_in(&transaction, key, ActionState::Sent, |connection| {
                connection.execute(
                    "UPDATE idempotency SET state = 'sent', attempts = attempts + 1,
                         next_attempt_at = NULL, updated_at = ?2
                     WHERE key = ?1",
                    params![key, format_timestamp(now)],
                )
            })?;
        }
        transaction.commit()
    }

    /// Confirms evidence entries (`sent → confirmed`, each with its pack's
    /// hash; an entry still `planned` or `failed` is marked sent first, as
    /// after a crash that found its record on the branch) and moves the
    /// evidence head to `head`, in ONE write transaction: the store hears
    /// of a whole evidence batch at once, or not at all.
    pub fn confirm_evidence_batch(
        &mut self,
        confirmed: &[(String, String)],
        head: &super::HeadWrite,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for (key, pack_sha256) in confirmed {
            let current = select_action(&transaction, key)
                .optional_store()?
                .ok_or_else(|| StoreError::ActionNotFound { key: key.clone() })?;
            if current.state == ActionState::Confirmed {
                continue;
            }
            if matches!(current.state, ActionState::Planned | ActionState::Failed) {
                transaction.execute(
                    "UPDATE idempotency SET state = 'sent', attempts = attempts + 1,
                         next_attempt_at = NULL, updated_at = ?2
                     WHERE key = ?1",
                    params![key, format_timestamp(now)],
                )?;
            }
            transaction.execute(
                "UPDATE idempotency SET state = 'confirmed', external_id = ?2,
                     next_attempt_at = NULL, updated_at = ?3
                 WHERE key = ?1",
                params![key, pack_sha256, format_timestamp(now)],
            )?;
        }
        super::evidence_head::write_head(
            &transaction,
            head.sequence,
            &head.pack_sha256,
            &head.evidence_commit_sha,
            now,
        )?;
        transaction.commit()
    }

    /// `planned → sent` or `failed → sent`: the call is about to go out. Counts an attempt.
    pub fn mark_sent(&mut self, key: &str, now: DateTime<Utc>) -> Result<Action, StoreError> {
        self.transition_action(key, ActionState::Sent, |connection| {
            connection.execute(
                "UPDATE idempotency SET state = 'sent', attempts = attempts + 1,
                     next_attempt_at = NULL, updated_at = ?2
                 WHERE key = ?1",
                params![key, format_timestamp(now)],
            )
        })
    }

    /// A call that was never sent (its plane's circuit breaker refused it
    /// before anything went out): the entry keeps its state — `planned`,
    /// or `failed` from an earlier attempt — and its attempt count, so it
    /// never reads as sent; `last_error` says why and `next_attempt_at`
    /// when it may go. Refused for an entry `sent` or `confirmed`.
    pub fn mark_not_sent(
        &mut self,
        key: &str,
        reason: &str,
        next_attempt_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Action, StoreError> {
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current = select_action(&transaction, key)
            .optional_store()?
            .ok_or_else(|| StoreError::ActionNotFound {
                key: key.to_string(),
            })?;
        if !matches!(current.state, ActionState::Planned | ActionState::Failed) {
            return Err(StoreError::IllegalActionTransition {
                key: key.to_string(),
                from: current.state,
                to: current.state,
            });
        }
        transaction.execute(
            "UPDATE idempotency SET last_error = ?2, next_attempt_at = ?3, updated_at = ?4
             WHERE key = ?1",
            params![
                key,
                reason,
                next_attempt_at.map(format_timestamp),
                format_timestamp(now)
            ],
        )?;
        let updated = select_action(&transaction, key)?;
        transaction.commit()?;
        Ok(updated)
    }

    /// An entry marked `sent` whose call did not go out after all (the
    /// daemon marks a chunk of publishes sent in one commit, then calls
    /// them one by one; a plane's circuit breaker that opens meanwhile
    /// refuses the rest): back to `before` (`planned`, or `failed` from an
    /// earlier attempt) with the attempt given back, `last_error` saying
    /// why and `next_attempt_at` when it may go, as
    /// [`Store::mark_not_sent`]. Refused unless the entry is `sent` and
    /// `before` is `planned` or `failed`.
    pub fn mark_unsent(
        &mut self,
        key: &str,
        before: ActionState,
        reason: &str,
        next_attempt_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Action, StoreError> {
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current = select_action(&transaction, key)
            .optional_store()?
            .ok_or_else(|| StoreError::ActionNotFound {
                key: key.to_string(),
            })?;
        if current.state != ActionState::Sent
            || !matches!(before, ActionState::Planned | ActionState::Failed)
        {
            return Err(StoreError::IllegalActionTransition {
                key: key.to_string(),
                from: current.state,
                to: before,
            });
        }
        transaction.execute(
            "UPDATE idempotency SET state = ?2, attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END,
                 last_error = ?3,
                 next_attempt_at = ?4, updated_at = ?5
             WHERE key = ?1",
            params![
                key,
                before.as_str(),
                reason,
                next_attempt_at.map(format_timestamp),
                format_timestamp(now)
            ],
        )?;
        let updated = select_action(&transaction, key)?;
        transaction.commit()?;
        Ok(updated)
    }

    /// `sent → confirmed`, with the plane's id for what it created. Final.
    pub fn mark_confirmed(
        &mut self,
        key: &str,
        external_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Action, StoreError> {
        self.transition_action(key, ActionState::Confirmed, |connection| {
            connection.execute(
                "UPDATE idempotency SET state = 'confirmed', external_id = ?2,
                     next_attempt_at = NULL, updated_at = ?3
                 WHERE key = ?1",
                params![key, external_id, format_timestamp(now)],
            )
        })
    }

    /// `sent → failed`; retry at `next_attempt_at`, or never if it is `None`.
    pub fn mark_failed(
        &mut self,
        key: &str,
        error: &str,
        next_attempt_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Action, StoreError> {
        self.transition_action(key, ActionState::Failed, |connection| {
            connection.execute(
                "UPDATE idempotency SET state = 'failed', last_error = ?2,
                     next_attempt_at = ?3, updated_at = ?4
                 WHERE key = ?1",
                params![
                    key,
                    error,
                    next_attempt_at.map(format_timestamp),
                    format_timestamp(now)
                ],
            )
        })
    }

    /// The journaled action with this key, if any.
    pub fn get_action(&self, key: &str) -> Result<Option<Action>, StoreError> {
        select_action(&self.connection, key).optional_store()
    }

    /// Actions planned or sent but not confirmed, oldest first: what a restarting
    /// daemon must resolve with the planes before doing anything new.
    pub fn pending_actions(&self) -> Result<Vec<Action>, StoreError> {
        self.select_actions(
            "WHERE state IN ('planned', 'sent') ORDER BY action_seq",
            params![],
        )
    }

    /// Every action of the journal, in the order they were planned (for
    /// `status`, audits and tests).
    pub fn actions(&self) -> Result<Vec<Action>, StoreError> {
        self.select_actions("ORDER BY action_seq", params![])
    }

    /// Failed actions whose retry time has come, soonest first.
    pub fn actions_due_for_retry(&self, now: DateTime<Utc>) -> Result<Vec<Action>, StoreError> {
        self.select_actions(
            "WHERE state = 'failed' AND next_attempt_at IS NOT NULL AND next_attempt_at <= ?1
             ORDER BY next_attempt_at, action_seq",
            params![format_timestamp(now)],
        )
    }

    fn select_actions(
        &self,
        condition: &str,
        parameters: &[super::db::Value],
    ) -> Result<Vec<Action>, StoreError> {
        let mut statement = self
            .connection
            .prepare(&format!("SELECT {COLUMNS} FROM idempotency {condition}"))?;
        let rows = statement.query_and_then(parameters, read_action)?;
        rows.collect()
    }

    /// Checks the edge `current → to` and applies `update`, in one transaction.
    fn transition_action(
        &mut self,
        key: &str,
        to: ActionState,
        update: impl FnOnce(&Connection) -> Result<usize, StoreError>,
    ) -> Result<Action, StoreError> {
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let updated = transition_in(&transaction, key, to, update)?;
        transaction.commit()?;
        Ok(updated)
    }
}

/// Plans `action` inside the caller's write transaction (see
/// [`Store::plan_action`]).
fn plan_in(
    transaction: &Connection,
    action: &NewAction,
    now: DateTime<Utc>,
) -> Result<Action, StoreError> {
    let key = action_key(
        &action.intent_id,
        &action.plane,
        &action.ring,
        &action.action,
    );
    let request = canonical_json(&action.request);
    if let Some(existing) = select_action(transaction, &key).optional_store()? {
        if canonical_json(&existing.request) != request {
            return Err(StoreError::ActionRequestMismatch { key });
        }
        return Ok(existing);
    }
    let inserted = transaction.execute(
        "INSERT INTO idempotency (key, intent_id, plane, ring, action, request, state,
             attempts, planned_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'planned', 0, ?7, ?7)",
        params![
            key,
            action.intent_id,
            action.plane,
            action.ring,
            action.action,
            request,
            format_timestamp(now)
        ],
    );
    if let Err(error) = &inserted
        && super::db::is_foreign_key_violation(error)
    {
        return Err(StoreError::IntentNotFound {
            intent_id: action.intent_id.clone(),
        });
    }
    inserted?;
    select_action(transaction, &key)
}

/// Checks the edge `current → to` and applies `update` inside the caller's
/// write transaction.
fn transition_in(
    transaction: &Connection,
    key: &str,
    to: ActionState,
    update: impl FnOnce(&Connection) -> Result<usize, StoreError>,
) -> Result<Action, StoreError> {
    let current = select_action(transaction, key)
        .optional_store()?
        .ok_or_else(|| StoreError::ActionNotFound {
            key: key.to_string(),
        })?;
    if !current.state.can_transition_to(to) {
        return Err(StoreError::IllegalActionTransition {
            key: key.to_string(),
            from: current.state,
            to,
        });
    }
    update(transaction)?;
    select_action(transaction, key)
}

fn select_action(connection: &Connection, key: &str) -> Result<Action, StoreError> {
    connection.query_row_and_then(
        &format!("SELECT {COLUMNS} FROM idempotency WHERE key = ?1"),
        [key],
        read_action,
    )
}

fn read_action(row: &Row<'_>) -> Result<Action, StoreError> {
    let request: String = row.get("request")?;
    let attempts: i64 = row.get("attempts")?;
    Ok(Action {
        key: row.get("key")?,
        intent_id: row.get("intent_id")?,
        plane: row.get("plane")?,
        ring: row.get("ring")?,
        action: row.get("action")?,
        request: serde_json::from_str(&request).map_err(|_| StoreError::InvalidStoredValue {
            table: "idempotency",
            column: "request",
            value: request.clone(),
        })?,
        state: ActionState::parse(&row.get::<_, String>("state")?)?,
        external_id: row.get("external_id")?,
        attempts: u32::try_from(attempts).map_err(|_| StoreError::IntegerOutOfRange {
            what: "idempotency.attempts",
            value: attempts.to_string(),
        })?,
        last_error: row.get("last_error")?,
        next_attempt_at: parse_optional_timestamp(
            row.get("next_attempt_at")?,
            "idempotency",
            "next_attempt_at",
        )?,
        planned_at: parse_timestamp(
            &row.get::<_, String>("planned_at")?,
            "idempotency",
            "planned_at",
        )?,
        updated_at: parse_timestamp(
            &row.get::<_, String>("updated_at")?,
            "idempotency",
            "updated_at",
        )?,
    })
}

#[cfg(test)]
mod tests;
