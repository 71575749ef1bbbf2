//! `webhook_deliveries`: forge webhook deliveries, deduplicated by delivery id.
//!
//! GitHub redelivers on timeouts and operators redeliver by hand; the delivery id
//! (`X-GitHub-Delivery`) is recorded before processing so a repeat is recognised,
//! even after a restart, and a delivery received but not processed before a crash
//! is found again by [`Store::unprocessed_deliveries`].

use super::db::{Connection, Row, params};
use super::time::{
    format_timestamp, parse_optional_timestamp, parse_timestamp, serialize_optional_timestamp,
    serialize_timestamp,
};
use super::{Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

/// One recorded delivery.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookDelivery {
    pub delivery_id: String,
    /// The forge's event name (`pull_request`, `pull_request_review`, `push`).
    pub event: String,
    #[serde(serialize_with = "serialize_timestamp")]
    pub received_at: DateTime<Utc>,
    pub payload: Value,
    pub processed: bool,
    #[serde(serialize_with = "serialize_optional_timestamp")]
    pub processed_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Records a delivery. Returns `false`, and changes nothing, if this delivery id
    /// was recorded before: the caller should not process it again.
    pub fn record_delivery(
        &mut self,
        delivery_id: &str,
        event: &str,
        payload: &Value,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        insert_delivery(
            &self.connection,
            delivery_id,
            event,
            &serde_json::to_string(payload)?,
            &format_timestamp(now),
        )
    }

    /// Deliveries recorded but not yet processed, in order of receipt.
    pub fn unprocessed_deliveries(&self) -> Result<Vec<WebhookDelivery>, StoreError> {
        // Ties in `received_at`: SQLite's insertion order (rowid);
        // PostgreSQL has none, so the delivery id decides.
        let tie = match self.connection.dialect() {
            super::db::Dialect::Sqlite => "rowid",
            super::db::Dialect::Postgres => "delivery_id",
        };
        let mut statement = self.connection.prepare(&format!(
            "SELECT delivery_id, event, received_at, payload, processed, processed_at
             FROM webhook_deliveries WHERE processed = 0 ORDER BY received_at, {tie}"
        ))?;
        let rows = statement.query_and_then(params![], read_delivery)?;
        rows.collect()
    }

    /// Marks a delivery processed. Marking it twice keeps the first time.
    pub fn mark_delivery_processed(
        &mut self,
        delivery_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let found = self.connection.execute(
            "UPDATE webhook_deliveries
             SET processed = 1, processed_at = coalesce(processed_at, ?2)
             WHERE delivery_id = ?1",
            params![delivery_id, format_timestamp(now)],
        )?;
        if found == 0 {
            return Err(StoreError::DeliveryNotFound {
                delivery_id: delivery_id.to_string(),
            });
        }
        Ok(())
    }
}

/// Inserts a delivery unless its id is stored already (`false` then); in
/// the caller's transaction, or in one of its own.
pub(super) fn insert_delivery(
    connection: &Connection,
    delivery_id: &str,
    event: &str,
    payload: &str,
    received_at: &str,
) -> Result<bool, StoreError> {
    let inserted = connection.execute(
        "INSERT INTO webhook_deliveries (delivery_id, event, received_at, payload)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (delivery_id) DO NOTHING",
        params![delivery_id, event, received_at, payload],
    )?;
    Ok(inserted == 1)
}

fn read_delivery(row: &Row<'_>) -> Result<WebhookDelivery, StoreError> {
    let payload: String = row.get("payload")?;
    Ok(WebhookDelivery {
        delivery_id: row.get("delivery_id")?,
        event: row.get("event")?,
        received_at: parse_timestamp(
            &row.get::<_, String>("received_at")?,
            "webhook_deliveries",
            "received_at",
        )?,
        payload: serde_json::from_str(&payload).map_err(|_| StoreError::InvalidStoredValue {
            table: "webhook_deliveries",
            column: "payload",
            value: payload.clone(),
        })?,
        processed: row.get("processed")?,
        processed_at: parse_optional_timestamp(
            row.get("processed_at")?,
            "webhook_deliveries",
            "processed_at",
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

    #[test]
    fn a_repeated_delivery_id_is_reported_as_duplicate() {
        let mut store = Store::open_in_memory().unwrap();
        let payload = json!({"action": "opened", "number": 7});
        assert!(
            store
                .record_delivery("d-1", "pull_request", &payload, at(1))
                .unwrap()
        );
        assert!(
            !store
                .record_delivery("d-1", "pull_request", &json!({}), at(2))
                .unwrap()
        );
        let unprocessed = store.unprocessed_deliveries().unwrap();
        assert_eq!(unprocessed.len(), 1);
        assert_eq!(unprocessed[0].payload, payload);
        assert_eq!(unprocessed[0].received_at, at(1));
    }

    #[test]
    fn processed_deliveries_leave_the_unprocessed_list() {
        let mut store = Store::open_in_memory().unwrap();
        store
            .record_delivery("d-2", "push", &json!({}), at(2))
            .unwrap();
        store
            .record_delivery("d-1", "push", &json!({}), at(1))
            .unwrap();
        let order: Vec<String> = store
            .unprocessed_deliveries()
            .unwrap()
            .into_iter()
            .map(|delivery| delivery.delivery_id)
            .collect();
        assert_eq!(order, vec!["d-1", "d-2"]);
        store.mark_delivery_processed("d-1", at(3)).unwrap();
        store.mark_delivery_processed("d-1", at(4)).unwrap();
        let left = store.unprocessed_deliveries().unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].delivery_id, "d-2");
        let error = store.mark_delivery_processed("d-9", at(5)).unwrap_err();
        assert!(
            matches!(error, StoreError::DeliveryNotFound { .. }),
            "{error}"
        );
    }
}
