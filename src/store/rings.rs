//! `active_changes`: one active change per application and ring.
//!
//! The rule lives in the database: a partial unique index on (application,
//! acquisition boundary, business unit, ring) over the rows still active. A claim
//! checks the holder first to name it in [`StoreError::RingBusy`]; the index makes
//! the rule hold even against a racing writer or a bug in that check. Released
//! claims stay as history with their release time.

use super::db::{Connection, TransactionBehavior, params};
use super::time::{format_timestamp, parse_timestamp, serialize_timestamp};
use super::{OptionalStoreExtension, Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// A change currently holding a ring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActiveChange {
    pub intent_id: String,
    pub ring: String,
    #[serde(serialize_with = "serialize_timestamp")]
    pub claimed_at: DateTime<Utc>,
}

impl Store {
    /// Claims `ring` of the application in (boundary, business unit) for
    /// `intent_id`. Claiming again for the same intent is a no-op; a claim held by
    /// another intent is [`StoreError::RingBusy`]. The intent must exist.
    pub fn claim_ring(
        &mut self,
        intent_id: &str,
        application_id: &str,
        acquisition_boundary: &str,
        business_unit: &str,
        ring: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let holder = |connection: &Connection| {
            connection
                .query_row(
                    "SELECT intent_id FROM active_changes
                     WHERE application_id = ?1 AND acquisition_boundary = ?2
                       AND business_unit = ?3 AND ring = ?4 AND active = 1",
                    params![application_id, acquisition_boundary, business_unit, ring],
                    |row| row.get::<_, String>(0),
                )
                .optional()
        };
        let busy = |holder_intent_id: String| StoreError::RingBusy {
            holder_intent_id,
            application_id: application_id.to_string(),
            acquisition_boundary: acquisition_boundary.to_string(),
            business_unit: business_unit.to_string(),
            ring: ring.to_string(),
        };
        match holder(&transaction)? {
            Some(holder_intent_id) if holder_intent_id == intent_id => return Ok(()),
            Some(holder_intent_id) => return Err(busy(holder_intent_id)),
            None => {}
        }
        let inserted = transaction.execute(
            "INSERT INTO active_changes (intent_id, application_id, acquisition_boundary,
                 business_unit, ring, claimed_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                intent_id,
                application_id,
                acquisition_boundary,
                business_unit,
                ring,
                format_timestamp(now)
            ],
        );
        match inserted {
            Ok(_) => {}
            Err(error) if is_unique_violation(&error) => {
                let holder_intent_id = holder(&transaction)?.unwrap_or_default();
                return Err(busy(holder_intent_id));
            }
            Err(error) if is_foreign_key_violation(&error) => {
                return Err(StoreError::IntentNotFound {
                    intent_id: intent_id.to_string(),
                });
            }
            Err(error) => return Err(error),
        }
        transaction.commit()?;
        Ok(())
    }

    /// Releases `intent_id`'s claim on `ring`. Returns whether a claim was active;
    /// releasing twice is not an error.
    pub fn release_ring(
        &mut self,
        intent_id: &str,
        ring: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let released = self.connection.execute(
            "UPDATE active_changes SET active = 0, released_at = ?3
             WHERE intent_id = ?1 AND ring = ?2 AND active = 1",
            params![intent_id, ring, format_timestamp(now)],
        )?;
        Ok(released > 0)
    }

    /// The active changes of an application in (boundary, business unit), by ring.
    pub fn active_changes_for(
        &self,
        application_id: &str,
        acquisition_boundary: &str,
        business_unit: &str,
    ) -> Result<Vec<ActiveChange>, StoreError> {
        let mut statement = self.connection.prepare(
            "SELECT intent_id, ring, claimed_at FROM active_changes
             WHERE application_id = ?1 AND acquisition_boundary = ?2
               AND business_unit = ?3 AND active = 1
             ORDER BY ring, change_id",
        )?;
        let rows = statement.query_and_then(
            params![application_id, acquisition_boundary, business_unit],
            |row| -> Result<ActiveChange, StoreError> {
                Ok(ActiveChange {
                    intent_id: row.get(0)?,
                    ring: row.get(1)?,
                    claimed_at: parse_timestamp(
                        &row.get::<_, String>(2)?,
                        "active_changes",
                        "claimed_at",
                    )?,
                })
            },
        )?;
        rows.collect()
    }
}

use super::db::{is_foreign_key_violation, is_unique_violation};

#[cfg(test)]
mod tests {
    use super::super::IntentUpsert;
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 4, 10, minute, 0).unwrap()
    }

    fn store_with_intents(intent_ids: &[&str]) -> Store {
        let mut store = Store::open_in_memory().unwrap();
        for intent_id in intent_ids {
            let intent = IntentUpsert {
                intent_id: intent_id.to_string(),
                application_id: "vpn-client".to_string(),
                acquisition_boundary: "corp".to_string(),
                business_unit: "bu-finance".to_string(),
                version: "2.1.0".to_string(),
                content_sha256: "00".repeat(32),
                state: "pending".to_string(),
                state_json: json!({}),
                decision: None,
                risk_score: None,
            };
            store.upsert_intent(&intent, at(0)).unwrap();
        }
        store
    }

    #[test]
    fn a_second_intent_cannot_claim_a_held_ring_and_learns_the_holder() {
        let mut store = store_with_intents(&["vpn-2.1", "vpn-2.2"]);
        store
            .claim_ring(
                "vpn-2.1",
                "vpn-client",
                "corp",
                "bu-finance",
                "ring-1",
                at(1),
            )
            .unwrap();
        let error = store
            .claim_ring(
                "vpn-2.2",
                "vpn-client",
                "corp",
                "bu-finance",
                "ring-1",
                at(2),
            )
            .unwrap_err();
        match error {
            StoreError::RingBusy {
                holder_intent_id, ..
            } => assert_eq!(holder_intent_id, "vpn-2.1"),
            other => panic!("expected RingBusy, got {other}"),
        }
        // Another ring, or another business unit, is free.
        store
            .claim_ring(
                "vpn-2.2",
                "vpn-client",
                "corp",
                "bu-finance",
                "ring-2",
                at(2),
            )
            .unwrap();
        store
            .claim_ring("vpn-2.2", "vpn-client", "corp", "bu-hr", "ring-1", at(2))
            .unwrap();
    }

    #[test]
    fn reclaiming_by_the_holder_is_a_no_op() {
        let mut store = store_with_intents(&["vpn-2.1"]);
        store
            .claim_ring(
                "vpn-2.1",
                "vpn-client",
                "corp",
                "bu-finance",
                "ring-1",
                at(1),
            )
            .unwrap();
        store
            .claim_ring(
                "vpn-2.1",
                "vpn-client",
                "corp",
                "bu-finance",
                "ring-1",
                at(2),
            )
            .unwrap();
        let active = store
            .active_changes_for("vpn-client", "corp", "bu-finance")
            .unwrap();
        assert_eq!(active.len(), 1);
        assert_eq!(active[0].claimed_at, at(1));
    }

    #[test]
    fn release_frees_the_ring_for_the_next_intent() {
        let mut store = store_with_intents(&["vpn-2.1", "vpn-2.2"]);
        store
            .claim_ring(
                "vpn-2.1",
                "vpn-client",
                "corp",
                "bu-finance",
                "ring-1",
                at(1),
            )
            .unwrap();
        assert!(store.release_ring("vpn-2.1", "ring-1", at(2)).unwrap());
        assert!(!store.release_ring("vpn-2.1", "ring-1", at(3)).unwrap());
        store
            .claim_ring(
                "vpn-2.2",
                "vpn-client",
                "corp",
                "bu-finance",
                "ring-1",
                at(4),
            )
            .unwrap();
        let active = store
            .active_changes_for("vpn-client", "corp", "bu-finance")
            .unwrap();
        assert_eq!(
            active,
            vec![ActiveChange {
                intent_id: "vpn-2.2".to_string(),
                ring: "ring-1".to_string(),
                claimed_at: at(4)
            }]
        );
    }

    #[test]
    fn claiming_for_an_unknown_intent_is_refused() {
        let mut store = store_with_intents(&[]);
        let error = store
            .claim_ring("ghost", "vpn-client", "corp", "bu-finance", "ring-1", at(1))
            .unwrap_err();
        assert!(
            matches!(error, StoreError::IntentNotFound { .. }),
            "{error}"
        );
    }

    #[test]
    fn the_unique_index_refuses_a_second_active_row_written_directly() {
        let mut store = store_with_intents(&["vpn-2.1", "vpn-2.2"]);
        store
            .claim_ring(
                "vpn-2.1",
                "vpn-client",
                "corp",
                "bu-finance",
                "ring-1",
                at(1),
            )
            .unwrap();
        let direct = store.connection.execute(
            "INSERT INTO active_changes (intent_id, application_id, acquisition_boundary,
                 business_unit, ring, claimed_at)
             VALUES ('vpn-2.2', 'vpn-client', 'corp', 'bu-finance', 'ring-1', 'x')",
            params![],
        );
        assert!(is_unique_violation(&direct.unwrap_err()));
    }
}
