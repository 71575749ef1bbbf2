//! `journal`: what the connector remembers because Landscape cannot: per
//! correlation id, the deployment's ledger (package, version, state, ring tags
//! in publish order, exclusions, pin) and every activity it created (id, ring,
//! tag, install or remove, version, the computer query), in a SQLite file.
//!
//! A package change is written as *pending* before its request is sent and
//! replaced by the activity id once the answer is in, in one transaction, both
//! with `synchronous = FULL`. So a crash or a lost answer between the two
//! leaves a pending row: the next call for the correlation id searches the
//! plane for the activity that call may have made (`plane::recover`) before it
//! sends anything again. A restarted daemon opens the same file.

use crate::planes::ledger::Ledger;
use crate::planes::{ConnectorError, ErrorCode};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Whether an activity installs or removes the package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Install,
    Remove,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Install => "install",
            ChangeKind::Remove => "remove",
        }
    }

    fn parse(text: &str) -> ChangeKind {
        if text == "remove" {
            ChangeKind::Remove
        } else {
            ChangeKind::Install
        }
    }
}

/// A package change about to be requested: what the retry looks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingChange {
    pub ring: String,
    /// The tag (entitlement group) the change targets.
    pub group: String,
    pub kind: ChangeKind,
    pub package: String,
    /// The version installed (`None` for a removal).
    pub version: Option<String>,
    /// The computer query sent (`tag:<group> NOT tag:<excluded>`, or ids).
    pub query: String,
}

/// An activity the connector created (or found after a lost answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalActivity {
    /// The parent activity's id.
    pub activity_id: i64,
    pub change: PendingChange,
    /// The activity's `creation_time` as the server wrote it.
    pub created_at: Option<String>,
}

/// Everything the journal holds for one correlation id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    pub ledger: Ledger,
    pub activities: Vec<JournalActivity>,
    pub pending: Vec<PendingChange>,
}

impl JournalEntry {
    /// The activities of `kind` on `group` (of `version`, when given).
    pub fn activities_on<'a>(
        &'a self,
        group: &'a str,
        kind: ChangeKind,
        version: Option<&'a str>,
    ) -> impl Iterator<Item = &'a JournalActivity> + 'a {
        self.activities.iter().filter(move |activity| {
            activity.change.group == group
                && activity.change.kind == kind
                && (version.is_none() || activity.change.version.as_deref() == version)
        })
    }

    /// The earliest server `creation_time` of the deployment's activities.
    pub fn first_created(&self) -> Option<&str> {
        self.activities
            .iter()
            .filter_map(|activity| activity.created_at.as_deref())
            .min()
    }
}

/// The journal file, shared by every clone of a connector.
pub struct Journal {
    path: PathBuf,
    connection: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS deployments (
    correlation_id TEXT PRIMARY KEY,
    ledger TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS activities (
    activity_id INTEGER PRIMARY KEY,
    correlation_id TEXT NOT NULL,
    ring TEXT NOT NULL,
    group_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    package TEXT NOT NULL,
    version TEXT,
    query TEXT NOT NULL,
    created_at TEXT
);
CREATE INDEX IF NOT EXISTS activities_by_correlation ON activities (correlation_id);
CREATE TABLE IF NOT EXISTS pending (
    correlation_id TEXT NOT NULL,
    ring TEXT NOT NULL,
    group_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    package TEXT NOT NULL,
    version TEXT NOT NULL,
    query TEXT NOT NULL,
    PRIMARY KEY (correlation_id, group_id, kind, version)
);
";

impl Journal {
    /// Opens (or creates) the journal at `path`.
    pub fn open(path: &Path) -> Result<Journal, String> {
        let connection = Connection::open(path).map_err(|error| error.to_string())?;
        connection
            .busy_timeout(Duration::from_secs(5))
            .map_err(|error| error.to_string())?;
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(|error| error.to_string())?;
        connection
            .pragma_update(None, "synchronous", "FULL")
            .map_err(|error| error.to_string())?;
        connection
            .execute_batch(SCHEMA)
            .map_err(|error| error.to_string())?;
        Ok(Journal {
            path: path.to_path_buf(),
            connection: Mutex::new(connection),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn failed(&self, error: rusqlite::Error) -> ConnectorError {
        ConnectorError::new(
            ErrorCode::ServiceUnavailable,
            format!(
                "the landscape journal {} failed ({error}); check the disk, nothing was sent",
                self.path.display()
            ),
        )
    }

    /// The deployment of `correlation_id`, if the journal knows it.
    pub fn load(&self, correlation_id: &str) -> Result<Option<JournalEntry>, ConnectorError> {
        let connection = self.lock();
        let read = || -> rusqlite::Result<Option<JournalEntry>> {
            let Some(text) = connection
                .query_row(
                    "SELECT ledger FROM deployments WHERE correlation_id = ?1",
                    [correlation_id],
                    |row| row.get::<_, String>(0),
                )
                .optional()?
            else {
                return Ok(None);
            };
            let Some(ledger) = Ledger::parse(&text) else {
                return Ok(None);
            };
            let mut statement = connection.prepare(
                "SELECT activity_id, ring, group_id, kind, package, version, query, created_at
                 FROM activities WHERE correlation_id = ?1 ORDER BY activity_id",
            )?;
            let activities = statement
                .query_map([correlation_id], |row| {
                    Ok(JournalActivity {
                        activity_id: row.get(0)?,
                        change: PendingChange {
                            ring: row.get(1)?,
                            group: row.get(2)?,
                            kind: ChangeKind::parse(&row.get::<_, String>(3)?),
                            package: row.get(4)?,
                            version: row.get(5)?,
                            query: row.get(6)?,
                        },
                        created_at: row.get(7)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut statement = connection.prepare(
                "SELECT ring, group_id, kind, package, version, query FROM pending
                 WHERE correlation_id = ?1 ORDER BY rowid",
            )?;
            let pending = statement
                .query_map([correlation_id], |row| {
                    let version: String = row.get(4)?;
                    Ok(PendingChange {
                        ring: row.get(0)?,
                        group: row.get(1)?,
                        kind: ChangeKind::parse(&row.get::<_, String>(2)?),
                        package: row.get(3)?,
                        version: (!version.is_empty()).then_some(version),
                        query: row.get(5)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Some(JournalEntry {
                ledger,
                activities,
                pending,
            }))
        };
        read().map_err(|error| self.failed(error))
    }

    /// Writes the ledger; answers whether it changed.
    pub fn save_ledger(&self, ledger: &Ledger) -> Result<bool, ConnectorError> {
        let connection = self.lock();
        let rendered = ledger.render();
        let write = || -> rusqlite::Result<bool> {
            let current: Option<String> = connection
                .query_row(
                    "SELECT ledger FROM deployments WHERE correlation_id = ?1",
                    [&ledger.correlation_id],
                    |row| row.get(0),
                )
                .optional()?;
            if current.as_deref() == Some(rendered.as_str()) {
                return Ok(false);
            }
            connection.execute(
                "INSERT INTO deployments (correlation_id, ledger) VALUES (?1, ?2)
                 ON CONFLICT (correlation_id) DO UPDATE SET ledger = excluded.ledger",
                params![ledger.correlation_id, rendered],
            )?;
            Ok(true)
        };
        write().map_err(|error| self.failed(error))
    }

    /// Notes a change about to be requested, with the ledger it belongs to.
    pub fn add_pending(
        &self,
        ledger: &Ledger,
        change: &PendingChange,
    ) -> Result<(), ConnectorError> {
        self.save_ledger(ledger)?;
        let connection = self.lock();
        connection
            .execute(
                "INSERT OR REPLACE INTO pending (correlation_id, ring, group_id, kind, package, version, query)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    ledger.correlation_id,
                    change.ring,
                    change.group,
                    change.kind.as_str(),
                    change.package,
                    change.version.clone().unwrap_or_default(),
                    change.query
                ],
            )
            .map(|_| ())
            .map_err(|error| self.failed(error))
    }

    /// Forgets a pending change that was certainly not applied (or not found).
    pub fn clear_pending(
        &self,
        correlation_id: &str,
        change: &PendingChange,
    ) -> Result<(), ConnectorError> {
        let connection = self.lock();
        connection
            .execute(
                "DELETE FROM pending WHERE correlation_id = ?1 AND group_id = ?2 AND kind = ?3 AND version = ?4",
                params![
                    correlation_id,
                    change.group,
                    change.kind.as_str(),
                    change.version.clone().unwrap_or_default()
                ],
            )
            .map(|_| ())
            .map_err(|error| self.failed(error))
    }

    /// Records an activity and the ledger, and drops its pending row, at once.
    pub fn record(
        &self,
        ledger: &Ledger,
        activity: &JournalActivity,
    ) -> Result<(), ConnectorError> {
        let mut connection = self.lock();
        let write = |connection: &mut Connection| -> rusqlite::Result<()> {
            let transaction = connection.transaction()?;
            transaction.execute(
                "INSERT INTO deployments (correlation_id, ledger) VALUES (?1, ?2)
                 ON CONFLICT (correlation_id) DO UPDATE SET ledger = excluded.ledger",
                params![ledger.correlation_id, ledger.render()],
            )?;
            let change = &activity.change;
            transaction.execute(
                "INSERT OR IGNORE INTO activities
                 (activity_id, correlation_id, ring, group_id, kind, package, version, query, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    activity.activity_id,
                    ledger.correlation_id,
                    change.ring,
                    change.group,
                    change.kind.as_str(),
                    change.package,
                    change.version,
                    change.query,
                    activity.created_at
                ],
            )?;
            transaction.execute(
                "DELETE FROM pending WHERE correlation_id = ?1 AND group_id = ?2 AND kind = ?3 AND version = ?4",
                params![
                    ledger.correlation_id,
                    change.group,
                    change.kind.as_str(),
                    change.version.clone().unwrap_or_default()
                ],
            )?;
            transaction.commit()
        };
        write(&mut connection).map_err(|error| self.failed(error))
    }

    /// Whether any deployment already owns the activity.
    pub fn is_claimed(&self, activity_id: i64) -> Result<bool, ConnectorError> {
        let connection = self.lock();
        connection
            .query_row(
                "SELECT 1 FROM activities WHERE activity_id = ?1",
                [activity_id],
                |_| Ok(()),
            )
            .optional()
            .map(|found| found.is_some())
            .map_err(|error| self.failed(error))
    }
}
