//! Read-only queries the API answers from: intents a page at a time, and
//! each plane's figures from the idempotency journal.

use super::db::params;
use super::time::parse_optional_timestamp;
use super::{IntentRecord, Store, StoreError};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// What the journal says about one plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaneFigures {
    pub plane: String,
    /// The last time a call was confirmed.
    pub last_success: Option<DateTime<Utc>>,
    /// Failed calls by class (the first clause of the error).
    pub error_classes: BTreeMap<String, u64>,
    /// Failed calls with a retry planned.
    pub retrying: u64,
}

/// The class of an error message: its first clause, bounded.
fn error_class(message: &str) -> String {
    message
        .split([':', '(', '\n'])
        .next()
        .unwrap_or(message)
        .trim()
        .chars()
        .take(60)
        .collect()
}

impl Store {
    /// Intents with an id after `after` (all when `None`), by id, at most `limit`.
    pub fn list_intents_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<IntentRecord>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut statement = self.connection.prepare(&format!(
            "SELECT {} FROM intents WHERE intent_id > ?1 ORDER BY intent_id LIMIT ?2",
            super::intents::COLUMNS
        ))?;
        let rows = statement.query_and_then(
            params![after.unwrap_or(""), limit],
            super::intents::read_intent,
        )?;
        rows.collect()
    }

    /// Every plane's figures from the idempotency journal.
    pub fn plane_action_figures(&self) -> Result<Vec<PlaneFigures>, StoreError> {
        let mut figures: BTreeMap<String, PlaneFigures> = BTreeMap::new();
        let mut statement = self.connection.prepare(
            "SELECT plane, max(CASE WHEN state = 'confirmed' THEN updated_at END),
                    CAST(sum(CASE WHEN state = 'failed' AND next_attempt_at IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT)
             FROM idempotency GROUP BY plane",
        )?;
        let rows = statement.query_map(params![], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, Option<String>>(1)?,
                row.get::<_, i64>(2)?,
            ))
        })?;
        for row in rows {
            let (plane, last_success, retrying) = row?;
            figures.insert(
                plane.clone(),
                PlaneFigures {
                    plane,
                    last_success: parse_optional_timestamp(
                        last_success,
                        "idempotency",
                        "updated_at",
                    )?,
                    error_classes: BTreeMap::new(),
                    retrying: u64::try_from(retrying).unwrap_or(0),
                },
            );
        }
        let mut statement = self.connection.prepare(
            "SELECT plane, last_error FROM idempotency WHERE state = 'failed' AND last_error IS NOT NULL",
        )?;
        let rows = statement.query_map(params![], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })?;
        for row in rows {
            let (plane, error) = row?;
            if let Some(entry) = figures.get_mut(&plane) {
                *entry.error_classes.entry(error_class(&error)).or_default() += 1;
            }
        }
        Ok(figures.into_values().collect())
    }
}
