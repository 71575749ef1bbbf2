//! `leadership`: which replica leads, until when, and under which fencing
//! epoch.
//!
//! One row: `epoch` (only grows: a trigger refuses going back), `holder`
//! (the replica's name), `lease_expires_at`. A replica calls
//! [`Store::try_lead`] at every step: the holder renews its lease; another
//! replica takes over only once the lease has expired, with `epoch + 1`.
//! From then on this store's connection writes under that epoch, and every
//! write transaction is refused by the database ([`StoreError::Fenced`]) as
//! soon as a newer epoch exists (see `db`): a paused or partitioned
//! ex-leader cannot write anything, whatever it believes.
//!
//! A store that never called [`Store::try_lead`] (a single daemon, the CLI,
//! the API's own connections) writes unfenced.

use super::db::{TransactionBehavior, params};
use super::time::{format_timestamp, parse_timestamp, serialize_timestamp};
use super::{OptionalStoreExtension, Store, StoreError, from_sql_integer, to_sql_integer};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// The leadership row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Leadership {
    pub epoch: u64,
    pub holder: String,
    #[serde(serialize_with = "serialize_timestamp")]
    pub lease_expires_at: DateTime<Utc>,
    #[serde(serialize_with = "serialize_timestamp")]
    pub acquired_at: DateTime<Utc>,
}

/// What [`Store::try_lead`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeadershipOutcome {
    /// This store took the lead under a new epoch.
    Acquired(Leadership),
    /// This store led already; its lease is extended.
    Renewed(Leadership),
    /// Another replica holds an unexpired lease.
    Standby(Leadership),
}

impl LeadershipOutcome {
    pub fn leadership(&self) -> &Leadership {
        match self {
            LeadershipOutcome::Acquired(leadership)
            | LeadershipOutcome::Renewed(leadership)
            | LeadershipOutcome::Standby(leadership) => leadership,
        }
    }

    pub fn is_leader(&self) -> bool {
        !matches!(self, LeadershipOutcome::Standby(_))
    }
}

impl Store {
    /// Leads, renews the lease, or learns who leads. `lease` is how long
    /// the lease lasts from `now`.
    pub fn try_lead(
        &mut self,
        holder: &str,
        lease: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<LeadershipOutcome, StoreError> {
        let expires = format_timestamp(now + lease);
        let mine = self.connection.epoch();
        // The writer lock without the fence: a deposed leader may ask again.
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Unfenced)?;
        let current = read_leadership(&transaction).optional_store()?;
        let outcome = match current {
            Some(current)
                if mine.is_some_and(|mine| mine as u64 == current.epoch)
                    && current.holder == holder =>
            {
                transaction.execute(
                    "UPDATE leadership SET lease_expires_at = ?1 WHERE singleton = 1",
                    params![expires],
                )?;
                LeadershipOutcome::Renewed(read_leadership(&transaction)?)
            }
            Some(current) if current.lease_expires_at > now => LeadershipOutcome::Standby(current),
            Some(current) => {
                transaction.execute(
                    "UPDATE leadership SET epoch = ?1, holder = ?2, lease_expires_at = ?3,
                         acquired_at = ?4
                     WHERE singleton = 1",
                    params![
                        to_sql_integer("epoch", current.epoch + 1)?,
                        holder,
                        expires,
                        format_timestamp(now)
                    ],
                )?;
                LeadershipOutcome::Acquired(read_leadership(&transaction)?)
            }
            None => {
                transaction.execute(
                    "INSERT INTO leadership (singleton, epoch, holder, lease_expires_at,
                         acquired_at)
                     VALUES (1, 1, ?1, ?2, ?3)",
                    params![holder, expires, format_timestamp(now)],
                )?;
                LeadershipOutcome::Acquired(read_leadership(&transaction)?)
            }
        };
        transaction.commit()?;
        if let LeadershipOutcome::Acquired(leadership) = &outcome {
            self.connection
                .set_epoch(Some(to_sql_integer("epoch", leadership.epoch)?))?;
        }
        Ok(outcome)
    }

    /// On PostgreSQL: the server ends this session when one of its
    /// transactions stays idle longer than `limit` (a replica stopped in
    /// the middle of a transaction would otherwise hold the writer lock,
    /// and so every other replica's takeover, for as long as it is stopped).
    /// Nothing on SQLite.
    pub fn bound_idle_transactions(&self, limit: std::time::Duration) -> Result<(), StoreError> {
        if self.connection.dialect() != super::db::Dialect::Postgres {
            return Ok(());
        }
        let milliseconds = limit.as_millis().max(1).to_string();
        self.connection.query_row(
            "SELECT set_config('idle_in_transaction_session_timeout', ?1, false)",
            params![milliseconds],
            |_| Ok(()),
        )
    }

    /// Extends the lease of `epoch` held by `holder` to `now + lease`, and
    /// nothing else: false when that epoch is no longer the current one or
    /// another replica holds it (what a renewal timer may do; it never takes
    /// the lead). Under the writer lock, so it never interleaves with a
    /// replica taking over.
    pub fn renew_lead(
        &mut self,
        holder: &str,
        epoch: u64,
        lease: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Unfenced)?;
        let changed = transaction.execute(
            "UPDATE leadership SET lease_expires_at = ?1
             WHERE singleton = 1 AND epoch = ?2 AND holder = ?3",
            params![
                format_timestamp(now + lease),
                to_sql_integer("epoch", epoch)?,
                holder
            ],
        )?;
        transaction.commit()?;
        Ok(changed == 1)
    }

    /// Ends this store's lease now (a clean shutdown), so a standby takes
    /// over at its next step. Nothing if another replica leads.
    pub fn resign(&mut self, now: DateTime<Utc>) -> Result<(), StoreError> {
        let Some(mine) = self.connection.epoch() else {
            return Ok(());
        };
        self.connection.execute(
            "UPDATE leadership SET lease_expires_at = ?2 WHERE singleton = 1 AND epoch = ?1",
            params![mine, format_timestamp(now)],
        )?;
        Ok(())
    }

    /// The leadership row, if any replica ever led.
    pub fn leadership(&self) -> Result<Option<Leadership>, StoreError> {
        read_leadership(&self.connection).optional_store()
    }

    /// The epoch this store writes under (`None`: unfenced).
    pub fn epoch(&self) -> Option<u64> {
        self.connection.epoch().map(|epoch| epoch as u64)
    }

    /// Declares the epoch this store writes under, without taking the
    /// lead (what a replica that led before a restart, or a test, does);
    /// `None` writes unfenced.
    pub fn write_under_epoch(&mut self, epoch: Option<u64>) -> Result<(), StoreError> {
        let epoch = epoch
            .map(|epoch| to_sql_integer("epoch", epoch))
            .transpose()?;
        self.connection.set_epoch(epoch)
    }
}

fn read_leadership(connection: &super::db::Connection) -> Result<Leadership, StoreError> {
    connection.query_row(
        "SELECT epoch, holder, lease_expires_at, acquired_at FROM leadership WHERE singleton = 1",
        params![],
        |row| {
            Ok(Leadership {
                epoch: from_sql_integer("leadership.epoch", row.get(0)?)?,
                holder: row.get(1)?,
                lease_expires_at: parse_timestamp(
                    &row.get::<_, String>(2)?,
                    "leadership",
                    "lease_expires_at",
                )?,
                acquired_at: parse_timestamp(
                    &row.get::<_, String>(3)?,
                    "leadership",
                    "acquired_at",
                )?,
            })
        },
    )
}
