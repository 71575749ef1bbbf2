//! The event hash chain: computing a link, and checking the whole chain.
//!
//! Verification reads the raw column text, not the decoded [`Event`](super::Event),
//! so it checks exactly what is on disk and never fails on a value it cannot decode:
//! that is a broken link, reported like any other.

use super::super::OptionalStoreExtension;
use super::super::canonical::canonical_json;
use super::super::db::{Connection, Dialect, Row, params};
use super::super::{Store, StoreError, from_sql_integer};
use super::GENESIS_PREV_HASH;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::fmt;

/// The names of the triggers that keep `events` append-only.
/// How many events `verify_event_chain` reads at a time.
const CHAIN_PAGE: usize = 5_000;

const POSTGRES_APPEND_ONLY_TRIGGERS: [&str; 4] = [
    "events_refuse_update",
    "events_refuse_delete",
    "events_refuse_truncate",
    "events_append_at_the_end",
];

const APPEND_ONLY_TRIGGERS: [&str; 3] = [
    "events_refuse_update",
    "events_refuse_delete",
    "events_append_at_the_end",
];

/// One `events` row exactly as stored.
#[derive(Debug, Clone)]
pub(super) struct StoredEvent {
    pub seq: i64,
    pub event_id: String,
    pub correlation_id: String,
    pub intent_id: Option<String>,
    pub event_type: String,
    pub timestamp: String,
    pub actor: String,
    pub actor_role: String,
    pub execution_plane: Option<String>,
    pub ring: Option<String>,
    pub outcome: String,
    /// Canonical JSON text.
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

impl StoredEvent {
    pub fn from_row(row: &Row<'_>) -> Result<StoredEvent, StoreError> {
        Ok(StoredEvent {
            seq: row.get("seq")?,
            event_id: row.get("event_id")?,
            correlation_id: row.get("correlation_id")?,
            intent_id: row.get("intent_id")?,
            event_type: row.get("event_type")?,
            timestamp: row.get("timestamp")?,
            actor: row.get("actor")?,
            actor_role: row.get("actor_role")?,
            execution_plane: row.get("execution_plane")?,
            ring: row.get("ring")?,
            outcome: row.get("outcome")?,
            details: row.get("details")?,
            prev_hash: row.get("prev_hash")?,
            hash: row.get("hash")?,
        })
    }
}

/// The hash of `event` (its `hash` field is ignored), `details` being its details
/// as a JSON value.
pub(super) fn event_hash(event: &StoredEvent, details: &Value) -> String {
    let hashed = json!({
        "seq": event.seq,
        "event_id": event.event_id,
        "correlation_id": event.correlation_id,
        "intent_id": event.intent_id,
        "event_type": event.event_type,
        "timestamp": event.timestamp,
        "actor": event.actor,
        "actor_role": event.actor_role,
        "execution_plane": event.execution_plane,
        "ring": event.ring,
        "outcome": event.outcome,
        "details": details,
        "prev_hash": event.prev_hash,
    });
    hex::encode(Sha256::digest(canonical_json(&hashed).as_bytes()))
}

/// What [`Store::verify_event_chain`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    /// Events whose link checked out, from seq 1 up to the first break.
    pub events_checked: u64,
    /// `seq` of the last event that checked out.
    pub last_verified_seq: Option<u64>,
    /// Its hash: compare it with an anchor kept elsewhere (an evidence pack) to
    /// detect a rewritten or truncated tail, which a chain alone cannot show.
    pub last_verified_hash: Option<String>,
    /// The first broken link, if any.
    pub first_break: Option<ChainBreak>,
    /// Whether the triggers that refuse UPDATE and DELETE are still in the schema.
    pub append_only_triggers_present: bool,
}

impl ChainReport {
    /// No broken link and the append-only triggers in place.
    pub fn is_intact(&self) -> bool {
        self.first_break.is_none() && self.append_only_triggers_present
    }
}

/// Where and how the chain broke.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainBreak {
    /// The first `seq` that does not check out (for a gap, the missing one).
    pub seq: u64,
    pub reason: ChainBreakReason,
}

/// Why a link does not check out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChainBreakReason {
    /// `seq` is not the previous one plus one: an event was removed or inserted.
    SequenceGap { expected: u64, found: i64 },
    /// `prev_hash` is not the previous event's hash: reordered or replaced.
    PrevHashMismatch { expected: String, found: String },
    /// The stored hash is not the hash of the stored fields: the event was edited.
    HashMismatch { stored: String, recomputed: String },
    /// `details` is not JSON, so its hash cannot be recomputed.
    UnreadableDetails,
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            ChainBreakReason::SequenceGap { expected, found } => write!(
                formatter,
                "event {expected} is missing: found seq {found} where {expected} was expected"
            ),
            ChainBreakReason::PrevHashMismatch { expected, found } => write!(
                formatter,
                "event {}: prev_hash {found} is not the previous event's hash {expected}",
                self.seq
            ),
            ChainBreakReason::HashMismatch { stored, recomputed } => write!(
                formatter,
                "event {}: stored hash {stored} but its fields hash to {recomputed}; it was edited",
                self.seq
            ),
            ChainBreakReason::UnreadableDetails => write!(
                formatter,
                "event {}: details are not JSON; it was edited",
                self.seq
            ),
        }
    }
}

impl Store {
    /// The stored hash of event `seq`, if the log has that event (for
    /// checking an anchor kept elsewhere, such as an evidence pack's).
    pub fn event_hash(&self, seq: u64) -> Result<Option<String>, StoreError> {
        let seq = super::super::to_sql_integer("seq", seq)?;
        self.connection
            .query_row("SELECT hash FROM events WHERE seq = ?1", [seq], |row| {
                row.get(0)
            })
            .optional()
    }

    /// Recomputes every event's hash in `seq` order and reports the first link that
    /// does not check out. A broken chain is a finding in the report, not an error;
    /// an error means the file could not be read.
    pub fn verify_event_chain(&self) -> Result<ChainReport, StoreError> {
        // One read transaction: a consistent snapshot even while the daemon appends.
        let snapshot = self.connection.unchecked_transaction()?;
        let mut report = ChainReport {
            events_checked: 0,
            last_verified_seq: None,
            last_verified_hash: None,
            first_break: None,
            append_only_triggers_present: append_only_triggers_present(&snapshot)?,
        };
        // Pages of events, so a long log is never held in memory at once.
        let mut statement = snapshot.prepare(&format!(
            "SELECT {} FROM events WHERE seq > ?1 ORDER BY seq LIMIT {CHAIN_PAGE}",
            super::COLUMNS
        ))?;
        let mut expected_seq: u64 = 1;
        let mut previous_hash = GENESIS_PREV_HASH.to_string();
        let mut after: i64 = 0;
        'pages: loop {
            let mut rows = statement.query(params![after])?;
            let mut read = 0;
            while let Some(row) = rows.next()? {
                read += 1;
                let event = StoredEvent::from_row(row)?;
                after = event.seq;
                if let Some(reason) = check_link(&event, expected_seq, &previous_hash) {
                    report.first_break = Some(ChainBreak {
                        seq: expected_seq,
                        reason,
                    });
                    break 'pages;
                }
                report.events_checked += 1;
                report.last_verified_seq = Some(from_sql_integer("events.seq", event.seq)?);
                previous_hash = event.hash;
                report.last_verified_hash = Some(previous_hash.clone());
                expected_seq += 1;
            }
            if read < CHAIN_PAGE {
                break;
            }
        }
        Ok(report)
    }
}

/// What is wrong with `event` as the link after `previous_hash`, if anything.
fn check_link(
    event: &StoredEvent,
    expected_seq: u64,
    previous_hash: &str,
) -> Option<ChainBreakReason> {
    if u64::try_from(event.seq).ok() != Some(expected_seq) {
        return Some(ChainBreakReason::SequenceGap {
            expected: expected_seq,
            found: event.seq,
        });
    }
    if event.prev_hash != previous_hash {
        return Some(ChainBreakReason::PrevHashMismatch {
            expected: previous_hash.to_string(),
            found: event.prev_hash.clone(),
        });
    }
    let Ok(details) = serde_json::from_str::<Value>(&event.details) else {
        return Some(ChainBreakReason::UnreadableDetails);
    };
    let recomputed = event_hash(event, &details);
    if recomputed != event.hash {
        return Some(ChainBreakReason::HashMismatch {
            stored: event.hash.clone(),
            recomputed,
        });
    }
    None
}

fn append_only_triggers_present(connection: &Connection) -> Result<bool, StoreError> {
    let mut present = 0;
    let (query, names): (&str, &[&str]) = match connection.dialect() {
        Dialect::Sqlite => (
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'events'
               AND name = ?1 AND sql LIKE '%RAISE(ABORT%'",
            &APPEND_ONLY_TRIGGERS,
        ),
        // Enabled (not 'D'isabled) triggers on `events` by name.
        Dialect::Postgres => (
            "SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
             WHERE c.relname = 'events' AND t.tgname = ?1 AND NOT t.tgisinternal
               AND t.tgenabled <> 'D'",
            &POSTGRES_APPEND_ONLY_TRIGGERS,
        ),
    };
    for name in names {
        present += connection.query_row(query, params![name], |row| row.get::<_, i64>(0))?;
    }
    Ok(present == names.len() as i64)
}
