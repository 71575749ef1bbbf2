//! `events`: the append-only, hash-chained audit log.
//!
//! Every event carries `seq` (contiguous from 1), the hash of the event before it
//! (`prev_hash`; [`GENESIS_PREV_HASH`] for the first) and its own `hash`: the
//! SHA-256, in lowercase hex, of the canonical JSON (see [`canonical_json`]) of the
//! object
//!
//! ```text
//! { "actor", "actor_role", "correlation_id", "details", "event_id", "event_type",
//!   "execution_plane", "intent_id", "outcome", "prev_hash", "ring", "seq", "timestamp" }
//! ```
//!
//! where `seq` is a number, absent optional fields are `null`, `details` is the JSON
//! value itself and every other field is the exact text stored in the column. An
//! auditor can recompute it from `ringmaster events` output alone.
//!
//! Triggers refuse UPDATE and DELETE and refuse an INSERT that is not the next link
//! of the chain; [`Store::verify_event_chain`] (in `chain`) recomputes every hash and
//! names the first broken `seq`, for whatever got past the triggers.
//!
//! [`canonical_json`]: super::canonical_json

use super::canonical::canonical_json;
use super::db::{
    Connection, Row, TransactionBehavior, Value as SqlValue, params, params_from_iter,
};
use super::time::{format_timestamp, parse_timestamp, serialize_timestamp};
use super::{OptionalStoreExtension, Store, StoreError, from_sql_integer, to_sql_integer};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

mod chain;

pub use chain::{ChainBreak, ChainBreakReason, ChainReport};

/// `prev_hash` of the first event.
pub const GENESIS_PREV_HASH: &str =
    "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened. The store gives the types no meaning beyond their names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    CommitProcessed,
    PolicyEvaluated,
    EvidenceCommitted,
    RingStarted,
    RingCompleted,
    GateEvaluated,
    RollbackExecuted,
    DriftDetected,
    RemediationResult,
    CabApproved,
    ExceptionGranted,
    OperatorAction,
    PublishBlocked,
    /// Someone exported an audit bundle of the evidence (who, what filter).
    EvidenceExported,
    /// An incident source reported an incident (or one fired again).
    IncidentOpened,
    /// An incident source resolved an incident.
    IncidentResolved,
    /// A change to the rules the daemon did not put in force (no admin
    /// authorised it).
    GovernanceChangeUnauthorised,
    /// The rules in force changed: the root of authority, an authorised
    /// change, or an unauthorised change reverted.
    RulesInForce,
}

impl EventType {
    /// Every event type, in declaration order.
    pub const ALL: [EventType; 18] = [
        EventType::CommitProcessed,
        EventType::PolicyEvaluated,
        EventType::EvidenceCommitted,
        EventType::RingStarted,
        EventType::RingCompleted,
        EventType::GateEvaluated,
        EventType::RollbackExecuted,
        EventType::DriftDetected,
        EventType::RemediationResult,
        EventType::CabApproved,
        EventType::ExceptionGranted,
        EventType::OperatorAction,
        EventType::PublishBlocked,
        EventType::EvidenceExported,
        EventType::IncidentOpened,
        EventType::IncidentResolved,
        EventType::GovernanceChangeUnauthorised,
        EventType::RulesInForce,
    ];

    /// The text stored in the database and covered by the hash.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::CommitProcessed => "commit_processed",
            EventType::PolicyEvaluated => "policy_evaluated",
            EventType::EvidenceCommitted => "evidence_committed",
            EventType::RingStarted => "ring_started",
            EventType::RingCompleted => "ring_completed",
            EventType::GateEvaluated => "gate_evaluated",
            EventType::RollbackExecuted => "rollback_executed",
            EventType::DriftDetected => "drift_detected",
            EventType::RemediationResult => "remediation_result",
            EventType::CabApproved => "cab_approved",
            EventType::ExceptionGranted => "exception_granted",
            EventType::OperatorAction => "operator_action",
            EventType::PublishBlocked => "publish_blocked",
            EventType::EvidenceExported => "evidence_exported",
            EventType::IncidentOpened => "incident_opened",
            EventType::IncidentResolved => "incident_resolved",
            EventType::GovernanceChangeUnauthorised => "governance_change_unauthorised",
            EventType::RulesInForce => "rules_in_force",
        }
    }

    /// The event type stored as `text`, if this build knows it.
    pub fn from_stored(text: &str) -> Option<EventType> {
        EventType::ALL
            .into_iter()
            .find(|event_type| event_type.as_str() == text)
    }
}

/// How it turned out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventOutcome {
    Success,
    Failure,
    Pending,
    /// Nothing succeeded or failed: a record of a fact.
    Info,
}

impl EventOutcome {
    /// The text stored in the database and covered by the hash.
    pub fn as_str(self) -> &'static str {
        match self {
            EventOutcome::Success => "success",
            EventOutcome::Failure => "failure",
            EventOutcome::Pending => "pending",
            EventOutcome::Info => "info",
        }
    }

    /// The outcome stored as `text`, if valid.
    pub fn from_stored(text: &str) -> Option<EventOutcome> {
        [
            EventOutcome::Success,
            EventOutcome::Failure,
            EventOutcome::Pending,
            EventOutcome::Info,
        ]
        .into_iter()
        .find(|outcome| outcome.as_str() == text)
    }
}

/// An event to append; the store assigns `seq`, `event_id` and the hashes.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub correlation_id: String,
    pub intent_id: Option<String>,
    pub event_type: EventType,
    /// When it happened, from the caller's clock (stored to the microsecond).
    pub timestamp: DateTime<Utc>,
    /// Who did it: a principal's email, or `ringmaster` for the daemon itself.
    pub actor: String,
    pub actor_role: String,
    pub execution_plane: Option<String>,
    pub ring: Option<String>,
    pub outcome: EventOutcome,
    pub details: Value,
}

/// A stored event, as `ringmaster events` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub seq: u64,
    pub event_id: String,
    pub correlation_id: String,
    pub intent_id: Option<String>,
    pub event_type: EventType,
    /// Serialised as the exact text the hash covers.
    #[serde(serialize_with = "serialize_timestamp")]
    pub timestamp: DateTime<Utc>,
    pub actor: String,
    pub actor_role: String,
    pub execution_plane: Option<String>,
    pub ring: Option<String>,
    pub outcome: EventOutcome,
    pub details: Value,
    pub prev_hash: String,
    pub hash: String,
}

/// Which events to read. Every field narrows; the default reads them all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventFilter {
    pub intent_id: Option<String>,
    pub correlation_id: Option<String>,
    /// Only events *after* this `seq` (for tailing: pass the last one seen).
    pub since_seq: Option<u64>,
    /// At most this many, oldest first.
    pub limit: Option<usize>,
}

const COLUMNS: &str = "seq, event_id, correlation_id, intent_id, event_type, timestamp, actor, \
     actor_role, execution_plane, ring, outcome, details, prev_hash, hash";

impl Store {
    /// Appends `event` at the end of the chain, in one IMMEDIATE transaction, and
    /// returns it as stored.
    pub fn append_event(&mut self, event: NewEvent) -> Result<Event, StoreError> {
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let head = chain_head(&transaction)?;
        let stored = insert_event(&transaction, &head, event)?;
        transaction.commit()?;
        decode_event(stored)
    }

    /// Appends `events` at the end of the chain, in order, in ONE IMMEDIATE
    /// transaction (one commit, one fsync): all of them or none.
    pub fn append_events(&mut self, events: Vec<NewEvent>) -> Result<Vec<Event>, StoreError> {
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut head = chain_head(&transaction)?;
        let mut stored = Vec::with_capacity(events.len());
        for event in events {
            let event = insert_event(&transaction, &head, event)?;
            head = ChainHead::after(&event);
            stored.push(event);
        }
        transaction.commit()?;
        stored.into_iter().map(decode_event).collect()
    }

    /// The events matching `filter`, oldest first.
    pub fn events(&self, filter: &EventFilter) -> Result<Vec<Event>, StoreError> {
        let mut conditions = vec!["seq > ?".to_string()];
        let mut values: Vec<SqlValue> = vec![SqlValue::Integer(to_sql_integer(
            "since_seq",
            filter.since_seq.unwrap_or(0),
        )?)];
        if let Some(intent_id) = &filter.intent_id {
            conditions.push("intent_id = ?".to_string());
            values.push(SqlValue::Text(intent_id.clone()));
        }
        if let Some(correlation_id) = &filter.correlation_id {
            conditions.push("correlation_id = ?".to_string());
            values.push(SqlValue::Text(correlation_id.clone()));
        }
        let mut sql = format!(
            "SELECT {COLUMNS} FROM events WHERE {} ORDER BY seq",
            conditions.join(" AND ")
        );
        if let Some(limit) = filter.limit {
            let limit = i64::try_from(limit).map_err(|_| StoreError::IntegerOutOfRange {
                what: "limit",
                value: limit.to_string(),
            })?;
            values.push(SqlValue::Integer(limit));
            sql.push_str(" LIMIT ?");
        }
        let mut statement = self.connection.prepare(&sql)?;
        let rows = statement.query_and_then(params_from_iter(values), read_event)?;
        rows.collect()
    }

    /// The last event appended, if any: the head of the chain.
    pub fn last_event(&self) -> Result<Option<Event>, StoreError> {
        self.connection
            .query_row_and_then(
                &format!("SELECT {COLUMNS} FROM events ORDER BY seq DESC LIMIT 1"),
                params![],
                read_event,
            )
            .optional_store()
    }
}

/// Where the next event goes: its `seq` and `prev_hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ChainHead {
    pub seq: i64,
    pub prev_hash: String,
}

impl ChainHead {
    /// The head right after `event`.
    fn after(event: &chain::StoredEvent) -> ChainHead {
        ChainHead {
            seq: event.seq + 1,
            prev_hash: event.hash.clone(),
        }
    }
}

/// The head of the chain as the connection sees it (inside a write
/// transaction: as it will stay until commit).
pub(super) fn chain_head(connection: &Connection) -> Result<ChainHead, StoreError> {
    let last: Option<(i64, String)> = connection
        .query_row(
            "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1",
            params![],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    Ok(match last {
        Some((last_seq, last_hash)) => ChainHead {
            seq: last_seq + 1,
            prev_hash: last_hash,
        },
        None => ChainHead {
            seq: 1,
            prev_hash: GENESIS_PREV_HASH.to_string(),
        },
    })
}

/// Inserts `event` at `head` inside the caller's write transaction, moves
/// `head` past it, and returns it as stored. On error `head` is unchanged.
pub(super) fn append_at(
    connection: &Connection,
    head: &mut ChainHead,
    event: NewEvent,
) -> Result<Event, StoreError> {
    let stored = insert_event(connection, head, event)?;
    let next = ChainHead::after(&stored);
    let event = decode_event(stored)?;
    *head = next;
    Ok(event)
}

/// Inserts `event` at `head` (inside the caller's write transaction) and
/// returns the row as stored.
fn insert_event(
    connection: &Connection,
    head: &ChainHead,
    event: NewEvent,
) -> Result<chain::StoredEvent, StoreError> {
    let stored = chain::StoredEvent {
        seq: head.seq,
        event_id: Uuid::new_v4().to_string(),
        correlation_id: event.correlation_id,
        intent_id: event.intent_id,
        event_type: event.event_type.as_str().to_string(),
        timestamp: format_timestamp(event.timestamp),
        actor: event.actor,
        actor_role: event.actor_role,
        execution_plane: event.execution_plane,
        ring: event.ring,
        outcome: event.outcome.as_str().to_string(),
        details: canonical_json(&event.details),
        prev_hash: head.prev_hash.clone(),
        hash: String::new(),
    };
    let hash = chain::event_hash(&stored, &event.details);
    let stored = chain::StoredEvent { hash, ..stored };
    connection.execute(
        &format!(
            "INSERT INTO events ({COLUMNS})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
        ),
        params![
            stored.seq,
            stored.event_id,
            stored.correlation_id,
            stored.intent_id,
            stored.event_type,
            stored.timestamp,
            stored.actor,
            stored.actor_role,
            stored.execution_plane,
            stored.ring,
            stored.outcome,
            stored.details,
            stored.prev_hash,
            stored.hash,
        ],
    )?;
    Ok(stored)
}

fn read_event(row: &Row<'_>) -> Result<Event, StoreError> {
    decode_event(chain::StoredEvent::from_row(row)?)
}

/// Turns the stored text into typed fields.
fn decode_event(stored: chain::StoredEvent) -> Result<Event, StoreError> {
    let invalid = |column: &'static str, value: &str| StoreError::InvalidStoredValue {
        table: "events",
        column,
        value: value.to_string(),
    };
    Ok(Event {
        seq: from_sql_integer("events.seq", stored.seq)?,
        event_type: EventType::from_stored(&stored.event_type)
            .ok_or_else(|| invalid("event_type", &stored.event_type))?,
        timestamp: parse_timestamp(&stored.timestamp, "events", "timestamp")?,
        outcome: EventOutcome::from_stored(&stored.outcome)
            .ok_or_else(|| invalid("outcome", &stored.outcome))?,
        details: serde_json::from_str(&stored.details)
            .map_err(|_| invalid("details", &stored.details))?,
        event_id: stored.event_id,
        correlation_id: stored.correlation_id,
        intent_id: stored.intent_id,
        actor: stored.actor,
        actor_role: stored.actor_role,
        execution_plane: stored.execution_plane,
        ring: stored.ring,
        prev_hash: stored.prev_hash,
        hash: stored.hash,
    })
}

#[cfg(test)]
mod tests;
