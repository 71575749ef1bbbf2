//! Where a state store stands against the evidence branch: current,
//! behind (restored from a backup, or a stale copy), or only lagging by a
//! write in flight.
//!
//! The store's evidence head is the last record it knows of. When the
//! branch holds more, the records after that head tell why: each anchors
//! the event log as it was when the record was signed. If the store holds
//! every one of those events with the same hash, the records were written
//! by this store's daemon, which stopped before noting the newest (a crash
//! between the append and the store's update: the daemon catches up by
//! itself). If not, the store was not there when they were written: it is
//! behind, and running the daemon on it would do again what they record.

use super::REBUILD_CORRELATION_ID;
use crate::evidence::EvidenceBranch;
use crate::store::{EventFilter, Store};
use chrono::{DateTime, Utc};
use serde_json::Value;

/// More records than this after the store's head is never a write in flight.
const MOST_IN_FLIGHT: u64 = 64;

/// How the store's evidence head compares with the branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// The store knows the branch's newest record (or both are empty).
    Current { sequence: u64 },
    /// The store knows no record, but the branch holds some.
    Empty { branch_sequence: u64 },
    /// The branch holds records the store never saw.
    Behind {
        store_sequence: u64,
        branch_sequence: u64,
        /// Why: the first record after the store's head whose anchored
        /// event the store lacks.
        reason: String,
    },
    /// Records after the store's head were written by this store's daemon,
    /// which had not noted them yet.
    Lagging {
        store_sequence: u64,
        branch_sequence: u64,
    },
    /// The store knows a record beyond the branch's end: the branch lost
    /// records (`verify` names them).
    Ahead {
        store_sequence: u64,
        branch_sequence: u64,
    },
}

impl Standing {
    /// The message for an operator when the daemon must not run on it.
    pub fn refusal(&self) -> Option<String> {
        match self {
            Standing::Behind {
                store_sequence,
                branch_sequence,
                reason,
            } => Some(format!(
                "the state store is BEHIND the evidence branch: its evidence head is record \
                 #{store_sequence}, the branch's is #{branch_sequence} ({} record(s) it never saw; \
                 {reason}). It was restored from a backup or is a stale copy: running the daemon \
                 on it would do again what those records say was done. Bring it forward with \
                 `ringmaster rebuild --catch-up --state DIR ...` (or rebuild it: `ringmaster \
                 rebuild --force ...`), see docs/operations.md",
                branch_sequence - store_sequence
            )),
            Standing::Empty { branch_sequence } => Some(format!(
                "the state store is empty but the evidence branch holds {branch_sequence} \
                 record(s): a new store would do again what they record (re-run completed \
                 rollouts, re-publish rolled-back versions). Rebuild the state from the branch \
                 and the planes first: `ringmaster rebuild --state DIR ...` (docs/operations.md)"
            )),
            _ => None,
        }
    }
}

/// Where `store` stands against `branch` (reads only the records after the
/// store's head, at most [`MOST_IN_FLIGHT`]).
pub fn standing(store: &Store, branch: &EvidenceBranch) -> Result<Standing, super::RecoveryError> {
    let branch_sequence = branch.tip()?.map_or(0, |tip| tip.sequence);
    let store_sequence = store.evidence_head()?.map_or(0, |head| head.sequence);
    if store_sequence == branch_sequence {
        return Ok(Standing::Current {
            sequence: store_sequence,
        });
    }
    if store_sequence > branch_sequence {
        return Ok(Standing::Ahead {
            store_sequence,
            branch_sequence,
        });
    }
    if store_sequence == 0 && store.evidence_head()?.is_none() && store.last_event()?.is_none() {
        return Ok(Standing::Empty { branch_sequence });
    }
    let behind = |reason: String| Standing::Behind {
        store_sequence,
        branch_sequence,
        reason,
    };
    let missing = branch_sequence - store_sequence;
    if missing > MOST_IN_FLIGHT {
        return Ok(behind(format!(
            "more than {MOST_IN_FLIGHT} records cannot be writes in flight"
        )));
    }
    let records = branch.records_before(None, usize::try_from(missing).unwrap_or(usize::MAX))?;
    for record in records.iter().rev() {
        let Some(anchor) = &record.pack.event_chain else {
            continue;
        };
        match store.event_hash(anchor.seq)? {
            Some(hash) if hash == anchor.hash => {}
            Some(_) => {
                return Ok(behind(format!(
                    "record #{} anchors event #{} with another hash than this store's",
                    record.pack.sequence, anchor.seq
                )));
            }
            None => {
                return Ok(behind(format!(
                    "record #{} anchors event #{}, which this store never had",
                    record.pack.sequence, anchor.seq
                )));
            }
        }
    }
    Ok(Standing::Lagging {
        store_sequence,
        branch_sequence,
    })
}

/// A rebuild the store records (its `store_rebuilt` event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebuilt {
    /// The store's evidence head before (0 for a fresh rebuild).
    pub from_sequence: u64,
    /// The record it was rebuilt to.
    pub evidence_sequence: u64,
    /// The event's seq in the log.
    pub event_seq: u64,
    pub at: DateTime<Utc>,
}

/// The last rebuild of this store, if any (for `verify --state` to say
/// so). What vouches for it is the signed record of the rebuild, which
/// anchors its event; this only reads the event.
pub fn last_rebuild(store: &Store) -> Result<Option<Rebuilt>, crate::store::StoreError> {
    let events = store.events(&EventFilter {
        correlation_id: Some(REBUILD_CORRELATION_ID.into()),
        ..EventFilter::default()
    })?;
    Ok(events.iter().rev().find_map(|event| {
        let details = &event.details;
        if details.get("kind").and_then(Value::as_str) != Some(super::REBUILD_EVENT_KIND) {
            return None;
        }
        let evidence_sequence = details.get("evidence_sequence").and_then(Value::as_u64)?;
        let from_sequence = details.get("from_sequence").and_then(Value::as_u64)?;
        let fresh = details.get("mode").and_then(Value::as_str) == Some("rebuild");
        if fresh && (event.seq != 1 || from_sequence != 0) {
            return None;
        }
        Some(Rebuilt {
            from_sequence,
            evidence_sequence,
            event_seq: event.seq,
            at: event.timestamp,
        })
    }))
}
