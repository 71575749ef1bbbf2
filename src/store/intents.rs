//! `intents`: the runtime state of every deployment intent, and its correlation id.
//!
//! The correlation id is a UUID v5 of [`RINGMASTER_NAMESPACE`] and the intent id, so
//! it is the same across retries, restarts and rebuilt databases: the execution
//! planes see one id per intent, which is what makes connector calls idempotent.
//! The store computes it; callers cannot supply another.
//!
//! `state` and `state_json` belong to the orchestrator's state machine; the store
//! keeps them verbatim and gives them no meaning.

use super::db::{Connection, Row, TransactionBehavior, params};
use super::time::{format_timestamp, parse_timestamp, serialize_timestamp};
use super::{OptionalStoreExtension, Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

/// The namespace of correlation ids: UUID v5 of the URL namespace and
/// `https://ringmaster.dev/ns/correlation-id`. Never change it: every correlation
/// id already sent to a plane depends on it.
pub const RINGMASTER_NAMESPACE: Uuid = Uuid::from_u128(0xb7becba8_93e4_5257_abef_bc942dfa9883);

/// The correlation id of an intent: stable for the intent's whole life.
pub fn correlation_id_for(intent_id: &str) -> String {
    Uuid::new_v5(&RINGMASTER_NAMESPACE, intent_id.as_bytes()).to_string()
}

/// What the caller writes about an intent; the store adds the correlation id and
/// the update time.
#[derive(Debug, Clone, PartialEq)]
pub struct IntentUpsert {
    pub intent_id: String,
    pub application_id: String,
    pub acquisition_boundary: String,
    pub business_unit: String,
    pub version: String,
    /// SHA-256 of the intent file as last evaluated: tells a changed intent from a replay.
    pub content_sha256: String,
    pub state: String,
    pub state_json: Value,
    /// The policy decision (`ALLOW`, `DENY`, ...), once evaluated.
    pub decision: Option<String>,
    /// 0–100, once assessed.
    pub risk_score: Option<u8>,
}

/// An intent as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntentRecord {
    pub intent_id: String,
    pub correlation_id: String,
    pub application_id: String,
    pub acquisition_boundary: String,
    pub business_unit: String,
    pub version: String,
    pub content_sha256: String,
    pub state: String,
    pub state_json: Value,
    pub decision: Option<String>,
    pub risk_score: Option<u8>,
    #[serde(serialize_with = "serialize_timestamp")]
    pub updated_at: DateTime<Utc>,
}

pub(super) const COLUMNS: &str = "intent_id, correlation_id, application_id, acquisition_boundary, \
     business_unit, version, content_sha256, state, state_json, decision, risk_score, updated_at";

impl Store {
    /// Inserts the intent, or replaces every field of the stored one (including
    /// `state`; use [`Store::set_intent_state`] to change only the state).
    pub fn upsert_intent(
        &mut self,
        intent: &IntentUpsert,
        now: DateTime<Utc>,
    ) -> Result<IntentRecord, StoreError> {
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        write_intent(&transaction, intent, now)?;
        let record = select_intent(&transaction, &intent.intent_id)?;
        transaction.commit()?;
        Ok(record)
    }
}

/// Inserts or replaces `intent` inside the caller's write transaction.
pub(super) fn write_intent(
    transaction: &Connection,
    intent: &IntentUpsert,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    transaction.execute(
        "INSERT INTO intents (intent_id, correlation_id, application_id, acquisition_boundary,
                 business_unit, version, content_sha256, state, state_json, decision, risk_score,
                 updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
             ON CONFLICT (intent_id) DO UPDATE SET
                 application_id = excluded.application_id,
                 acquisition_boundary = excluded.acquisition_boundary,
                 business_unit = excluded.business_unit,
                 version = excluded.version,
                 content_sha256 = excluded.content_sha256,
                 state = excluded.state,
                 state_json = excluded.state_json,
                 decision = excluded.decision,
                 risk_score = excluded.risk_score,
                 updated_at = excluded.updated_at",
        params![
            intent.intent_id,
            correlation_id_for(&intent.intent_id),
            intent.application_id,
            intent.acquisition_boundary,
            intent.business_unit,
            intent.version,
            intent.content_sha256,
            intent.state,
            serde_json::to_string(&intent.state_json)?,
            intent.decision,
            intent.risk_score,
            format_timestamp(now),
        ],
    )?;
    Ok(())
}

impl Store {
    /// The stored intent, if any.
    pub fn get_intent(&self, intent_id: &str) -> Result<Option<IntentRecord>, StoreError> {
        select_intent(&self.connection, intent_id).optional_store()
    }

    /// Every stored intent, by intent id.
    pub fn list_intents(&self) -> Result<Vec<IntentRecord>, StoreError> {
        let mut statement = self
            .connection
            .prepare(&format!("SELECT {COLUMNS} FROM intents ORDER BY intent_id"))?;
        let rows = statement.query_and_then(params![], read_intent)?;
        rows.collect()
    }

    /// The stored intents after `after` (by intent id), at most `limit`:
    /// a page of [`Store::list_intents`], so a pass over every intent holds
    /// one page of stored states at a time, not all of them (issue 17).
    pub fn list_intents_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<IntentRecord>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut statement = self.connection.prepare(&format!(
            "SELECT {COLUMNS} FROM intents WHERE intent_id > ?1 ORDER BY intent_id LIMIT ?2"
        ))?;
        let rows = statement.query_and_then(params![after.unwrap_or(""), limit], read_intent)?;
        rows.collect()
    }

    /// Every stored intent, by intent id, `page` records at a time
    /// ([`Store::list_intents_page`]): a pass over every intent that needs
    /// no more than one record at once holds one page of stored states, not
    /// the whole table as JSON trees (issue 17: at 10,000 intents those
    /// were 170 MiB of the daemon's peak RSS).
    pub fn intent_pages(&self, page: usize) -> IntentPages<'_> {
        IntentPages {
            store: self,
            after: None,
            page: page.max(1),
            done: false,
        }
    }

    /// Changes only the state-machine fields of an existing intent.
    pub fn set_intent_state(
        &mut self,
        intent_id: &str,
        state: &str,
        state_json: &Value,
        now: DateTime<Utc>,
    ) -> Result<IntentRecord, StoreError> {
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let changed = transaction.execute(
            "UPDATE intents SET state = ?2, state_json = ?3, updated_at = ?4 WHERE intent_id = ?1",
            params![
                intent_id,
                state,
                serde_json::to_string(state_json)?,
                format_timestamp(now)
            ],
        )?;
        if changed == 0 {
            return Err(StoreError::IntentNotFound {
                intent_id: intent_id.to_string(),
            });
        }
        let record = select_intent(&transaction, intent_id)?;
        transaction.commit()?;
        Ok(record)
    }
}

impl Store {
    /// [`Store::set_intent_state`] for many intents, in ONE write
    /// transaction: what the daemon saves of every run a step changed.
    /// Either every state is saved or none; an intent that is not stored
    /// is [`StoreError::IntentNotFound`].
    ///
    /// Each state is `(intent id, state, state_json)` with `state_json`
    /// already serialized (`serde_json::to_string` of the value): a batch
    /// holds hundreds of them, and the text is a fraction of the value's
    /// size in memory.
    pub fn set_intent_states(
        &mut self,
        states: &[(String, String, String)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if states.is_empty() {
            return Ok(());
        }
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let updated_at = format_timestamp(now);
        for (intent_id, state, state_json) in states {
            let changed = transaction.execute(
                "UPDATE intents SET state = ?2, state_json = ?3, updated_at = ?4 WHERE intent_id = ?1",
                params![intent_id, state, state_json, updated_at],
            )?;
            if changed == 0 {
                return Err(StoreError::IntentNotFound {
                    intent_id: intent_id.clone(),
                });
            }
        }
        transaction.commit()
    }
}

fn select_intent(connection: &Connection, intent_id: &str) -> Result<IntentRecord, StoreError> {
    connection.query_row_and_then(
        &format!("SELECT {COLUMNS} FROM intents WHERE intent_id = ?1"),
        [intent_id],
        read_intent,
    )
}

/// The pages of [`Store::intent_pages`]: each item is the next page of
/// stored intents in intent id order (never empty), or the error reading it,
/// after which there is none.
pub struct IntentPages<'store> {
    store: &'store Store,
    /// The last intent id of the previous page.
    after: Option<String>,
    page: usize,
    done: bool,
}

impl Iterator for IntentPages<'_> {
    type Item = Result<Vec<IntentRecord>, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let records = match self
            .store
            .list_intents_page(self.after.as_deref(), self.page)
        {
            Ok(records) => records,
            Err(error) => {
                self.done = true;
                return Some(Err(error));
            }
        };
        // A short page is the last one.
        self.done = records.len() < self.page;
        let last = records.last()?;
        self.after = Some(last.intent_id.clone());
        Some(Ok(records))
    }
}

pub(super) fn read_intent(row: &Row<'_>) -> Result<IntentRecord, StoreError> {
    let state_json: String = row.get("state_json")?;
    Ok(IntentRecord {
        intent_id: row.get("intent_id")?,
        correlation_id: row.get("correlation_id")?,
        application_id: row.get("application_id")?,
        acquisition_boundary: row.get("acquisition_boundary")?,
        business_unit: row.get("business_unit")?,
        version: row.get("version")?,
        content_sha256: row.get("content_sha256")?,
        state: row.get("state")?,
        state_json: serde_json::from_str(&state_json).map_err(|_| {
            StoreError::InvalidStoredValue {
                table: "intents",
                column: "state_json",
                value: state_json.clone(),
            }
        })?,
        decision: row.get("decision")?,
        risk_score: row.get("risk_score")?,
        updated_at: parse_timestamp(
            &row.get::<_, String>("updated_at")?,
            "intents",
            "updated_at",
        )?,
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

    fn vpn_intent() -> IntentUpsert {
        IntentUpsert {
            intent_id: "vpn-client-2.1-ring-rollout".to_string(),
            application_id: "vpn-client".to_string(),
            acquisition_boundary: "corp".to_string(),
            business_unit: "bu-finance".to_string(),
            version: "2.1.0".to_string(),
            content_sha256: "ab".repeat(32),
            state: "pending".to_string(),
            state_json: json!({"ring": null}),
            decision: None,
            risk_score: None,
        }
    }

    #[test]
    fn namespace_is_the_documented_derivation() {
        let derived = Uuid::new_v5(
            &Uuid::NAMESPACE_URL,
            b"https://ringmaster.dev/ns/correlation-id",
        );
        assert_eq!(RINGMASTER_NAMESPACE, derived);
    }

    #[test]
    fn correlation_id_is_pinned_for_a_known_intent() {
        // Changing this value would orphan every assignment already made on the planes.
        assert_eq!(
            correlation_id_for("vpn-client-2.1-ring-rollout"),
            "7419eb1b-412a-5962-9ddc-522ca5b7fb30"
        );
        assert_ne!(correlation_id_for("a"), correlation_id_for("b"));
    }

    #[test]
    fn upsert_inserts_then_replaces_and_keeps_the_correlation_id() {
        let mut store = Store::open_in_memory().unwrap();
        let inserted = store.upsert_intent(&vpn_intent(), at(1)).unwrap();
        assert_eq!(
            inserted.correlation_id,
            correlation_id_for(&inserted.intent_id)
        );
        assert_eq!(inserted.updated_at, at(1));

        let mut evaluated = vpn_intent();
        evaluated.state = "risk_assessed".to_string();
        evaluated.decision = Some("REQUIRE_APPROVAL".to_string());
        evaluated.risk_score = Some(62);
        let updated = store.upsert_intent(&evaluated, at(2)).unwrap();
        assert_eq!(updated.correlation_id, inserted.correlation_id);
        assert_eq!(updated.risk_score, Some(62));
        assert_eq!(updated.decision.as_deref(), Some("REQUIRE_APPROVAL"));
        assert_eq!(
            store.get_intent(&evaluated.intent_id).unwrap(),
            Some(updated)
        );
        assert_eq!(store.list_intents().unwrap().len(), 1);
    }

    /// Paged reads give exactly what one read of the whole table gives,
    /// in the same order, whatever the page size (a full last page, a
    /// short one, one record a page, more than there are).
    #[test]
    fn intent_pages_hold_every_intent_in_order_once() {
        let mut store = Store::open_in_memory().unwrap();
        assert_eq!(store.intent_pages(3).count(), 0);
        for number in [7, 1, 4, 10, 2, 9] {
            let mut intent = vpn_intent();
            intent.intent_id = format!("intent-{number:02}");
            store.upsert_intent(&intent, at(number)).unwrap();
        }
        let whole = store.list_intents().unwrap();
        for page in [1, 2, 3, 4, 6, 7, 500] {
            let pages: Vec<Vec<IntentRecord>> =
                store.intent_pages(page).collect::<Result<_, _>>().unwrap();
            assert!(
                pages
                    .iter()
                    .all(|records| !records.is_empty() && records.len() <= page)
            );
            assert_eq!(pages.concat(), whole, "page size {page}");
        }
    }

    #[test]
    fn set_intent_state_changes_only_the_state() {
        let mut store = Store::open_in_memory().unwrap();
        let inserted = store.upsert_intent(&vpn_intent(), at(1)).unwrap();
        let moved = store
            .set_intent_state(
                &inserted.intent_id,
                "ring_1_in_progress",
                &json!({"ring": 1}),
                at(5),
            )
            .unwrap();
        assert_eq!(moved.state, "ring_1_in_progress");
        assert_eq!(moved.state_json, json!({"ring": 1}));
        assert_eq!(moved.updated_at, at(5));
        assert_eq!(moved.version, inserted.version);
    }

    #[test]
    fn set_intent_state_of_an_unknown_intent_is_an_error() {
        let mut store = Store::open_in_memory().unwrap();
        let error = store
            .set_intent_state("ghost", "pending", &json!({}), at(1))
            .unwrap_err();
        assert!(
            matches!(error, StoreError::IntentNotFound { .. }),
            "{error}"
        );
        assert!(store.get_intent("ghost").unwrap().is_none());
    }

    #[test]
    fn risk_score_above_one_hundred_is_refused_by_the_schema() {
        let mut store = Store::open_in_memory().unwrap();
        let mut intent = vpn_intent();
        intent.risk_score = Some(101);
        assert!(store.upsert_intent(&intent, at(1)).is_err());
    }
}
