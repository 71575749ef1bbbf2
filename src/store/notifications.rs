//! `notification_cursors` and `notification_deliveries`: what each
//! notification target has looked at in the event log, and every message
//! owed to it (pending, delivered, or failed for good), keyed by
//! (target, event seq) so a restart never sends a delivered one again.

use super::db::{TransactionBehavior, params};
use super::time::{format_timestamp, parse_optional_timestamp};
use super::{OptionalStoreExtension, Store, StoreError};
use chrono::{DateTime, Utc};

/// A message still owed to a target.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingNotification {
    pub target: String,
    pub event_seq: u64,
    pub trigger: String,
    /// Failed attempts so far.
    pub attempts: u32,
}

/// One delivery row, as `ringmaster` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationDelivery {
    pub target: String,
    pub event_seq: u64,
    pub trigger: String,
    pub state: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
}

fn seq(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Store {
    /// The last event seq the target has looked at; `None` for a new target.
    pub fn notification_cursor(&self, target: &str) -> Result<Option<u64>, StoreError> {
        Ok(self
            .connection
            .query_row(
                "SELECT last_seq FROM notification_cursors WHERE target = ?1",
                [target],
                |row| row.get::<_, i64>(0),
            )
            .optional()?
            .map(|value| value.max(0) as u64))
    }

    /// Starts a new target's cursor at `at_seq` (nothing if it has one).
    pub fn start_notification_cursor(
        &mut self,
        target: &str,
        at_seq: u64,
    ) -> Result<(), StoreError> {
        self.connection.execute(
            "INSERT INTO notification_cursors (target, last_seq) VALUES (?1, ?2)
             ON CONFLICT (target) DO NOTHING",
            params![target, seq(at_seq)],
        )?;
        Ok(())
    }

    /// Records the messages owed for events up to `through_seq` and moves the
    /// cursor there, in one transaction.
    pub fn enqueue_notifications(
        &mut self,
        target: &str,
        through_seq: u64,
        owed: &[(u64, &str)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for (event_seq, trigger) in owed {
            transaction.execute(
                "INSERT INTO notification_deliveries
                   (target, event_seq, trigger, state, attempts, next_attempt_at)
                 VALUES (?1, ?2, ?3, 'pending', 0, ?4)
                 ON CONFLICT (target, event_seq) DO NOTHING",
                params![target, seq(*event_seq), trigger, format_timestamp(now)],
            )?;
        }
        transaction.execute(
            "UPDATE notification_cursors
             SET last_seq = CASE WHEN last_seq > ?2 THEN last_seq ELSE ?2 END WHERE target = ?1",
            params![target, seq(through_seq)],
        )?;
        transaction.commit()?;
        Ok(())
    }

    /// The target's messages due at `now`, oldest event first.
    pub fn due_notifications(
        &self,
        target: &str,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<PendingNotification>, StoreError> {
        let mut statement = self.connection.prepare_cached(
            "SELECT event_seq, trigger, attempts FROM notification_deliveries
             WHERE target = ?1 AND state = 'pending' AND next_attempt_at <= ?2
             ORDER BY event_seq LIMIT ?3",
        )?;
        let rows = statement.query_map(
            params![target, format_timestamp(now), limit as i64],
            |row| {
                Ok(PendingNotification {
                    target: target.to_owned(),
                    event_seq: row.get::<_, i64>(0)?.max(0) as u64,
                    trigger: row.get(1)?,
                    attempts: row.get::<_, i64>(2)?.clamp(0, i64::from(u32::MAX)) as u32,
                })
            },
        )?;
        rows.collect::<Result<_, _>>()
    }

    /// The earliest time a pending message of any target is due.
    pub fn next_notification_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let text: Option<String> = self.connection.query_row(
            "SELECT min(next_attempt_at) FROM notification_deliveries WHERE state = 'pending'",
            params![],
            |row| row.get(0),
        )?;
        parse_optional_timestamp(text, "notification_deliveries", "next_attempt_at")
    }

    /// The receiver took the message.
    pub fn notification_delivered(
        &mut self,
        target: &str,
        event_seq: u64,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.connection.execute(
            "UPDATE notification_deliveries
             SET state = 'delivered', attempts = attempts + 1, delivered_at = ?3, last_error = NULL
             WHERE target = ?1 AND event_seq = ?2",
            params![target, seq(event_seq), format_timestamp(now)],
        )?;
        Ok(())
    }

    /// An attempt failed: try again at `retry_at`, or give up (`None`).
    pub fn notification_attempt_failed(
        &mut self,
        target: &str,
        event_seq: u64,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        match retry_at {
            Some(at) => self.connection.execute(
                "UPDATE notification_deliveries
                 SET attempts = attempts + 1, last_error = ?3, next_attempt_at = ?4
                 WHERE target = ?1 AND event_seq = ?2",
                params![target, seq(event_seq), error, format_timestamp(at)],
            )?,
            None => self.connection.execute(
                "UPDATE notification_deliveries
                 SET state = 'failed', attempts = attempts + 1, last_error = ?3
                 WHERE target = ?1 AND event_seq = ?2",
                params![target, seq(event_seq), error],
            )?,
        };
        Ok(())
    }

    /// Every delivery row of `target`, by event.
    pub fn notification_deliveries(
        &self,
        target: &str,
    ) -> Result<Vec<NotificationDelivery>, StoreError> {
        let mut statement = self.connection.prepare_cached(
            "SELECT event_seq, trigger, state, attempts, last_error, delivered_at
             FROM notification_deliveries WHERE target = ?1 ORDER BY event_seq",
        )?;
        let mut query = statement.query([target])?;
        let mut rows = Vec::new();
        while let Some(row) = query.next()? {
            rows.push(NotificationDelivery {
                target: target.to_owned(),
                event_seq: row.get::<_, i64>(0)?.max(0) as u64,
                trigger: row.get(1)?,
                state: row.get(2)?,
                attempts: row.get::<_, i64>(3)?.clamp(0, i64::from(u32::MAX)) as u32,
                last_error: row.get(4)?,
                delivered_at: parse_optional_timestamp(
                    row.get(5)?,
                    "notification_deliveries",
                    "delivered_at",
                )?,
            });
        }
        Ok(rows)
    }
}
