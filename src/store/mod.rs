//! The daemon's local state: one SQLite file.
//!
//! Git is the system of record for what *should* happen; this store records what
//! the daemon has *done* and must not forget across a crash or a restart:
//!
//! - `processed_commits`: which commits of the governed repository were evaluated;
//! - `intents`: the runtime state of every deployment intent;
//! - `active_changes`: one active change per application and ring, enforced by a
//!   unique index in the database itself;
//! - `events`: the append-only, hash-chained audit log (triggers refuse UPDATE and
//!   DELETE; [`Store::verify_event_chain`] recomputes every hash);
//! - `idempotency`: the journal of outbound calls to the execution planes, so a
//!   retry, a crash or a restart never duplicates an assignment;
//! - `webhook_deliveries`: forge deliveries, deduplicated by delivery id;
//! - `incidents`: open and resolved incidents from the incident sources, which
//!   the promotion gates read ([`Store::open_incidents_matching`]);
//! - `evidence_head`: the last evidence record known, so `verify --state` can tell
//!   when the evidence branch was rewritten shorter;
//! - `rules_in_force`: per tracked branch, the last authorised rules and
//!   application scopes, the unauthorised change to them, the root of
//!   authority and when decisions must be judged again.
//!
//! The store is synchronous (rusqlite) and `Send`: the daemon owns one [`Store`] and
//! calls it from a blocking context. It never reads the wall clock: every write that
//! records a time takes `now` from the caller. Every multi-step write runs in one
//! `BEGIN IMMEDIATE` transaction.
//!
//! Opening a file sets `busy_timeout`, runs `PRAGMA quick_check` (a corrupt file is
//! [`StoreError::Corrupt`] naming the path), refuses a schema newer than this build
//! ([`StoreError::NewerSchema`]), switches to WAL with `synchronous=FULL` and
//! `foreign_keys=ON`, and applies the pending numbered migrations in one transaction.
//!
//! This module refers to its siblings only through `super::`, never `crate::`, so it
//! stays a leaf of the crate's dependency graph.

mod canonical;
mod commits;
pub(crate) mod db;
mod decisions;
mod events;
mod evidence_head;
mod figures;
mod group_commit;
mod idempotency;
mod incidents;
mod intents;
mod leadership;
mod location;
mod migrations;
mod notifications;
mod operator;
mod pool;
mod postgres_schema;
mod postgres_tls;
mod recovery;
mod rings;
mod rules;
mod telemetry;
mod time;
mod webhooks;

pub use canonical::canonical_json;
pub use commits::{CommitOutcome, ProcessedCommit};
pub use db::{BATCH_MAX_OPEN, BATCH_MAX_WRITES};
pub use decisions::{DecisionWrite, HeadWrite};
pub use events::{
    ChainBreak, ChainBreakReason, ChainReport, Event, EventFilter, EventOutcome, EventType,
    GENESIS_PREV_HASH, NewEvent,
};
pub use evidence_head::EvidenceHead;
pub use figures::PlaneFigures;
pub use group_commit::{GroupCommitOptions, GroupCommitter};
pub use idempotency::{Action, ActionState, NewAction, action_key};
pub use incidents::{Incident, IncidentChange, IncidentReport, IncidentStatus};
pub use intents::{
    IntentPages, IntentRecord, IntentUpsert, RINGMASTER_NAMESPACE, correlation_id_for,
};
pub use leadership::{Leadership, LeadershipOutcome};
pub use location::{STORE_URL_ENV, StoreLocation, redact_url};
pub use migrations::{MIGRATIONS, Migration, SUPPORTED_SCHEMA_VERSION};
pub use notifications::{NotificationDelivery, PendingNotification};
pub use operator::{OperatorRequest, ReconcileRequest};
pub use pool::{PooledStore, StorePool};
pub use recovery::BackupReport;
pub use rings::ActiveChange;
pub use rules::RulesState;
pub use telemetry::{
    ComplianceObservation, EventCount, LatestRing, PlaneActionCount, RecentEvent, RolloutRows,
    RolloutStateCount, TelemetryRows,
};
pub use webhooks::WebhookDelivery;

use db::Connection;
use rusqlite::{ErrorCode, OpenFlags};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a statement waits for another connection's lock before failing with
/// `SQLITE_BUSY`. The CLI (`ringmaster events`, `verify --state`) may read the file
/// while the daemon writes it.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How many `quick_check` findings an error message quotes at most.
const QUICK_CHECK_FINDINGS_QUOTED: usize = 5;

/// Everything that can go wrong in the state store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `open_existing` found no database file: it never creates one.
    #[error(
        "state database {path} does not exist; pass the --state directory the daemon uses \
         (a missing database is never created for verification)"
    )]
    Missing { path: PathBuf },

    /// `open_existing` found a file that holds no ringmaster state (empty,
    /// or without the schema): nothing to verify, and nothing is created.
    #[error(
        "state database {path} is empty: it holds no ringmaster state (was it emptied or \
         replaced?); pass the --state directory the daemon uses"
    )]
    Empty { path: PathBuf },

    /// The file could not be opened or configured (permissions, missing directory, ...).
    #[error("cannot open state database {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },

    /// The file is not a SQLite database, or `PRAGMA quick_check` found damage.
    #[error(
        "state database {path} is corrupt: {detail}; restore it from a backup, or move it \
         aside and let ringmaster rebuild its state from Git and the planes"
    )]
    Corrupt { path: PathBuf, detail: String },

    /// The file was written by a newer ringmaster, whose schema this build does not know.
    #[error(
        "state database {path} has schema version {found}, but this ringmaster supports at \
         most version {supported}; upgrade ringmaster, or point it at another database"
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        supported: i64,
    },

    /// A migration already applied to the file differs from the one compiled in:
    /// released migrations must never be edited, only followed by new ones.
    #[error(
        "state database {path}: migration {version} ({name}) was applied with a different \
         text than this build's; released migrations must not be edited"
    )]
    MigrationChanged {
        path: PathBuf,
        version: i64,
        name: String,
    },

    /// A migration failed; the whole batch was rolled back.
    #[error("state database {path}: migration {version} ({name}) failed: {source}")]
    Migration {
        path: PathBuf,
        version: i64,
        name: String,
        #[source]
        source: rusqlite::Error,
    },

    /// SQLite refused to switch the file to WAL (e.g. a filesystem without shared memory).
    #[error("state database {path}: journal mode is {mode:?}, expected \"wal\"")]
    JournalMode { path: PathBuf, mode: String },

    /// Any other SQLite failure.
    #[error("state database error: {0}")]
    Sqlite(#[from] rusqlite::Error),

    /// Any other PostgreSQL failure (never carries the connection URL).
    #[error("state database error (PostgreSQL): {}", postgres_error_text(.0))]
    Postgres(postgres::Error),

    /// The PostgreSQL server could not be reached or refused the login.
    /// `url` has its password redacted.
    #[error("cannot connect to the state database {url}: {detail}")]
    PostgresConnect { url: String, detail: String },

    /// `--store` (or its file, or `RINGMASTER_STORE_URL`) is not a store
    /// location this build understands. `location` is redacted.
    #[error(
        "store location {location:?} is not understood: {reason}; use sqlite:PATH or \
         postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
    )]
    InvalidLocation { location: String, reason: String },

    /// A group-committed write was not stored: its batch could not start
    /// or commit (every caller in the batch gets this), or the committer
    /// has stopped.
    #[error("state database: {detail}")]
    GroupCommit { detail: String },

    /// A query that must return a row returned none.
    #[error("state database: the query returned no rows")]
    NoRows,

    /// A column did not decode to the type the store reads it as.
    #[error("state database: {column} cannot be read: {detail}")]
    Decode { column: String, detail: String },

    /// A transaction was started inside another (a bug in the store).
    #[error("state database: a transaction was started inside another")]
    NestedTransaction,

    /// The write was refused by the database: this process writes under
    /// leadership epoch `mine`, but epoch `current` exists — another
    /// replica leads now, and a deposed leader must not act.
    #[error(
        "state database refused the write: this process holds leadership epoch {mine}, \
         but epoch {current} exists (another replica leads); it is fenced and must stop acting"
    )]
    Fenced { mine: u64, current: u64 },

    /// Another replica holds an unexpired leadership lease.
    #[error("leadership is held by {holder} (epoch {epoch}) until {lease_expires_at}")]
    LeadershipHeld {
        holder: String,
        epoch: u64,
        lease_expires_at: String,
    },

    /// A JSON value could not be serialised for storage.
    #[error("state database: cannot serialise JSON: {0}")]
    Json(#[from] serde_json::Error),

    /// A stored value does not decode (unknown enum text, bad timestamp, bad JSON).
    #[error("state database: {table}.{column} holds {value:?}, which this build cannot read")]
    InvalidStoredValue {
        table: &'static str,
        column: &'static str,
        value: String,
    },

    /// A number does not fit the range SQLite (i64) or the API (u64/u32) allows.
    #[error("state database: {what} = {value} is out of range")]
    IntegerOutOfRange { what: &'static str, value: String },

    /// No intent with this id has been upserted.
    #[error("intent {intent_id:?} is not in the state database")]
    IntentNotFound { intent_id: String },

    /// Another intent holds the (application, boundary, business unit, ring) slot.
    #[error(
        "ring {ring} of application {application_id} ({acquisition_boundary}/{business_unit}) \
         is busy: intent {holder_intent_id} holds it; wait for it to finish or release it"
    )]
    RingBusy {
        holder_intent_id: String,
        application_id: String,
        acquisition_boundary: String,
        business_unit: String,
        ring: String,
    },

    /// No outbound action with this key has been planned.
    #[error("outbound action {key:?} is not in the idempotency journal")]
    ActionNotFound { key: String },

    /// An outbound action was asked to move along an edge the state machine lacks.
    #[error("outbound action {key:?} cannot go from {from} to {to}")]
    IllegalActionTransition {
        key: String,
        from: ActionState,
        to: ActionState,
    },

    /// `plan_action` was called again for a key with a different request: the key
    /// must name one outbound effect, so a changed request needs a new action name.
    #[error(
        "outbound action {key:?} is already planned with a different request; \
         give the new request its own action name"
    )]
    ActionRequestMismatch { key: String },

    /// No webhook delivery with this id was recorded.
    #[error("webhook delivery {delivery_id:?} was never recorded")]
    DeliveryNotFound { delivery_id: String },

    /// The evidence head may only move forward (the evidence branch only grows).
    #[error(
        "evidence head cannot move from sequence {current_sequence} back to {proposed_sequence}"
    )]
    EvidenceHeadRegression {
        current_sequence: u64,
        proposed_sequence: u64,
    },

    /// The same evidence sequence was recorded before with another pack or commit.
    #[error(
        "evidence sequence {sequence} is already recorded with pack {recorded_pack_sha256} \
         at commit {recorded_commit_sha}; a different record for it means the branch was rewritten"
    )]
    EvidenceHeadConflict {
        sequence: u64,
        recorded_pack_sha256: String,
        recorded_commit_sha: String,
    },
}

/// The daemon's state database: one SQLite connection or one PostgreSQL
/// client (see `db`). `Send`, not `Sync`.
#[derive(Debug)]
pub struct Store {
    connection: Connection,
    /// Where the file lives; `None` for an in-memory store or PostgreSQL.
    path: Option<PathBuf>,
    /// PostgreSQL: the URL with its password redacted, for messages.
    url: Option<String>,
}

impl Store {
    /// Opens (creating if needed) the store at `location` and brings its
    /// schema up to date: a SQLite file, or a PostgreSQL database (whose
    /// tables are created by the first open).
    pub fn open_location(location: &StoreLocation) -> Result<Store, StoreError> {
        match location {
            StoreLocation::Sqlite(path) => Store::open(path),
            StoreLocation::Postgres(url) => Store::open_postgres(url, false),
        }
    }

    /// Opens an existing store to read or verify it: never creates a file
    /// or a schema (see [`Store::open_existing`]).
    pub fn open_existing_location(location: &StoreLocation) -> Result<Store, StoreError> {
        match location {
            StoreLocation::Sqlite(path) => Store::open_existing(path),
            StoreLocation::Postgres(url) => Store::open_postgres(url, true),
        }
    }

    /// Opens (creating if needed) the state database at `path`, checks it, and brings
    /// its schema up to date.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let open_error = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection = rusqlite::Connection::open_with_flags(path, flags).map_err(open_error)?;
        connection.busy_timeout(BUSY_TIMEOUT).map_err(open_error)?;
        Store::prepare(connection, Some(path.to_path_buf()))
    }

    /// Opens an existing state database to read or verify it: never creates
    /// a file or a directory. A missing file is [`StoreError::Missing`]; an
    /// empty file, or a database without ringmaster's schema, is
    /// [`StoreError::Empty`] — `verify --state` and `events` on a wrong or
    /// emptied directory fail instead of passing on a fresh database.
    pub fn open_existing(path: &Path) -> Result<Store, StoreError> {
        let missing = || StoreError::Missing {
            path: path.to_path_buf(),
        };
        let metadata = std::fs::metadata(path).map_err(|_| missing())?;
        if !metadata.is_file() {
            return Err(missing());
        }
        if metadata.len() == 0 {
            return Err(StoreError::Empty {
                path: path.to_path_buf(),
            });
        }
        let open_error = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection = rusqlite::Connection::open_with_flags(path, flags).map_err(open_error)?;
        connection.busy_timeout(BUSY_TIMEOUT).map_err(open_error)?;
        let version: i64 = connection
            .pragma_query_one(None, "user_version")
            .map_err(|source| classify_open_error(path, source))?;
        if version == 0 {
            return Err(StoreError::Empty {
                path: path.to_path_buf(),
            });
        }
        Store::prepare(connection, Some(path.to_path_buf()))
    }

    /// An empty store in memory, for tests: same schema, no WAL, nothing on disk.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        let connection = rusqlite::Connection::open_in_memory()?;
        Store::prepare(connection, None)
    }

    /// Connects to PostgreSQL and applies the pending migrations under a
    /// session advisory lock. `existing`: refuse a database without
    /// ringmaster's schema instead of creating it.
    fn open_postgres(url: &str, existing: bool) -> Result<Store, StoreError> {
        let redacted = redact_url(url);
        let client = location::connect_postgres(url)?;
        let mut store = Store {
            connection: Connection::postgres(client),
            path: None,
            url: Some(redacted.clone()),
        };
        if existing && postgres_schema::schema_version(&store.connection)? == 0 {
            return Err(StoreError::Empty {
                path: PathBuf::from(redacted),
            });
        }
        postgres_schema::apply(&mut store.connection, &PathBuf::from(&redacted))?;
        Ok(store)
    }

    /// Checks, configures and migrates a freshly opened connection.
    fn prepare(
        connection: rusqlite::Connection,
        path: Option<PathBuf>,
    ) -> Result<Store, StoreError> {
        let mut store = Store {
            connection: Connection::sqlite(connection),
            path,
            url: None,
        };
        store.quick_check()?;
        let display = store.display_path();
        let sqlite = store.sqlite_mut();
        migrations::refuse_newer_schema(sqlite, &display)?;
        store.configure()?;
        let path = store.display_path();
        migrations::apply(store.sqlite_mut(), MIGRATIONS, &path)?;
        Ok(store)
    }

    fn sqlite_mut(&mut self) -> &mut rusqlite::Connection {
        self.connection
            .as_sqlite_mut()
            .expect("a SQLite store has a SQLite connection")
    }

    /// Opens a write batch (issue 17): until [`Store::end_batch`], this
    /// store's write transactions are savepoints of one outer transaction
    /// and share its commit — one fsync for many writes, committed again
    /// every [`BATCH_MAX_WRITES`] writes or [`BATCH_MAX_OPEN`].
    /// The caller calls [`Store::flush_batch`] wherever the writes so far
    /// must be durable: before a plane call, an evidence append, a message
    /// out. A crash then loses only writes after the last commit, which
    /// leaves the state the store had at that commit, as a crash there
    /// did with one commit per write.
    pub fn begin_batch(&mut self) -> Result<(), StoreError> {
        self.connection.begin_batch()
    }

    /// Makes the open batch's writes durable (one commit) and goes on
    /// batching. No-op without a batch or without a write since.
    pub fn flush_batch(&mut self) -> Result<(), StoreError> {
        self.connection.flush_batch()
    }

    /// Closes the open batch: commits it, or (`commit: false`) rolls back
    /// to its last commit. No-op without one.
    pub fn end_batch(&mut self, commit: bool) -> Result<(), StoreError> {
        self.connection.end_batch(commit)
    }

    /// Whether a write batch is open.
    pub fn in_batch(&self) -> bool {
        self.connection.in_batch()
    }

    /// Which engine this store runs on.
    pub fn dialect(&self) -> db::Dialect {
        self.connection.dialect()
    }

    /// WAL, `synchronous=FULL`, `foreign_keys=ON`, `recursive_triggers=ON`.
    fn configure(&self) -> Result<(), StoreError> {
        let Some(connection) = self.connection.as_sqlite() else {
            return Ok(());
        };
        let path = self.display_path();
        let with_path = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        let mode: String = connection
            .pragma_update_and_check(None, "journal_mode", "wal", |row| row.get(0))
            .map_err(|source| classify_open_error(&path, source))?;
        if self.path.is_some() && !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::JournalMode { path, mode });
        }
        connection
            .pragma_update(None, "synchronous", "FULL")
            .map_err(with_path)?;
        connection
            .pragma_update(None, "foreign_keys", "ON")
            .map_err(with_path)?;
        // So that `INSERT OR REPLACE` cannot delete an event behind the DELETE trigger.
        connection
            .pragma_update(None, "recursive_triggers", "ON")
            .map_err(with_path)?;
        Ok(())
    }

    /// Runs `PRAGMA quick_check`; any finding, or a file that is not a database at
    /// all, is [`StoreError::Corrupt`] naming the path. PostgreSQL checks its
    /// own pages: nothing to do.
    pub fn quick_check(&self) -> Result<(), StoreError> {
        let Some(connection) = self.connection.as_sqlite() else {
            return Ok(());
        };
        let path = self.display_path();
        let mut findings = Vec::new();
        connection
            .pragma_query(None, "quick_check", |row| {
                // One row may hold several findings, one a line, under a
                // "*** in database main ***" banner.
                let text: String = row.get(0)?;
                findings.extend(
                    text.lines()
                        .filter(|line| !line.starts_with("*** in database"))
                        .map(str::to_string),
                );
                Ok(())
            })
            .map_err(|source| classify_open_error(&path, source))?;
        if findings.len() == 1 && findings[0] == "ok" {
            return Ok(());
        }
        let total = findings.len();
        findings.truncate(QUICK_CHECK_FINDINGS_QUOTED);
        let mut detail = format!(
            "quick_check found {total} problem(s): {}",
            findings.join("; ")
        );
        if total > QUICK_CHECK_FINDINGS_QUOTED {
            detail.push_str("; ...");
        }
        Err(StoreError::Corrupt { path, detail })
    }

    /// The schema version of the store (`PRAGMA user_version` on SQLite,
    /// the last migration applied on PostgreSQL).
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        match self.connection.as_sqlite() {
            Some(connection) => Ok(connection.pragma_query_one::<i64>(None, "user_version")?),
            None => postgres_schema::schema_version(&self.connection),
        }
    }

    /// The file's path, or `None` (in memory, PostgreSQL).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Where the store lives, for messages: the file, `:memory:`, or the
    /// PostgreSQL URL with its password redacted.
    pub fn describe(&self) -> String {
        self.display_path().display().to_string()
    }

    fn display_path(&self) -> PathBuf {
        if let Some(url) = &self.url {
            return PathBuf::from(url);
        }
        self.path
            .clone()
            .unwrap_or_else(|| PathBuf::from(":memory:"))
    }
}

impl StoreError {
    /// Maps a PostgreSQL error: the fencing function's refusal becomes
    /// [`StoreError::Fenced`].
    pub(crate) fn from_postgres(error: postgres::Error) -> StoreError {
        if let Some(db_error) = error.as_db_error()
            && let Some(rest) = db_error.message().strip_prefix("ringmaster fenced: ")
        {
            let mut numbers = rest
                .split(|character: char| !character.is_ascii_digit())
                .filter(|part| !part.is_empty())
                .map(|part| part.parse::<u64>().unwrap_or(0));
            let mine = numbers.next().unwrap_or(0);
            let current = numbers.next().unwrap_or(0);
            return StoreError::Fenced { mine, current };
        }
        StoreError::Postgres(error)
    }
}

/// A PostgreSQL error as text: the server's message, detail and hint, or
/// the client's own (which never quote the connection URL).
fn postgres_error_text(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db_error) => {
            let mut text = format!("{}: {}", db_error.code().code(), db_error.message());
            if let Some(detail) = db_error.detail() {
                text.push_str(&format!(" ({detail})"));
            }
            text
        }
        None => error.to_string(),
    }
}

/// Maps an error met while first reading a file: "not a database" and "corrupt"
/// become [`StoreError::Corrupt`], anything else (busy, I/O) stays an open error.
fn classify_open_error(path: &Path, source: rusqlite::Error) -> StoreError {
    match source.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) | Some(ErrorCode::DatabaseCorrupt) => StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: source.to_string(),
        },
        _ => StoreError::Open {
            path: path.to_path_buf(),
            source,
        },
    }
}

/// Converts an API integer to SQLite's i64.
fn to_sql_integer(what: &'static str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::IntegerOutOfRange {
        what,
        value: value.to_string(),
    })
}

/// Converts a stored i64 back to the API's u64.
fn from_sql_integer(what: &'static str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::IntegerOutOfRange {
        what,
        value: value.to_string(),
    })
}

/// `.optional()` for queries whose row mapper returns [`StoreError`].
trait OptionalStoreExtension<T> {
    fn optional_store(self) -> Result<Option<T>, StoreError>;
    fn optional(self) -> Result<Option<T>, StoreError>
    where
        Self: Sized,
    {
        self.optional_store()
    }
}

impl<T> OptionalStoreExtension<T> for Result<T, StoreError> {
    fn optional_store(self) -> Result<Option<T>, StoreError> {
        match self {
            Ok(value) => Ok(Some(value)),
            Err(StoreError::Sqlite(rusqlite::Error::QueryReturnedNoRows)) => Ok(None),
            Err(StoreError::NoRows) => Ok(None),
            Err(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>() {}

    #[test]
    fn store_is_send_so_it_can_move_into_spawn_blocking() {
        assert_send::<Store>();
    }

    #[test]
    fn in_memory_store_is_migrated_and_passes_quick_check() {
        let store = Store::open_in_memory().unwrap();
        assert_eq!(store.schema_version().unwrap(), SUPPORTED_SCHEMA_VERSION);
        store.quick_check().unwrap();
        assert!(store.path().is_none());
    }

    #[test]
    fn file_store_runs_in_wal_with_synchronous_full_and_recursive_triggers() {
        let directory = tempfile::TempDir::new().unwrap();
        let store = Store::open(&directory.path().join("state.db")).unwrap();
        let pragma = |name: &str| -> String {
            store
                .connection
                .as_sqlite()
                .unwrap()
                .query_row(&format!("PRAGMA {name}"), [], |row| {
                    row.get::<_, rusqlite::types::Value>(0)
                })
                .map(|value| match value {
                    rusqlite::types::Value::Integer(number) => number.to_string(),
                    rusqlite::types::Value::Text(text) => text,
                    other => format!("{other:?}"),
                })
                .unwrap()
        };
        assert_eq!(pragma("journal_mode"), "wal");
        assert_eq!(pragma("synchronous"), "2", "2 is FULL");
        assert_eq!(pragma("foreign_keys"), "1");
        assert_eq!(pragma("recursive_triggers"), "1");
        assert_eq!(pragma("busy_timeout"), BUSY_TIMEOUT.as_millis().to_string());
    }

    #[test]
    fn integer_conversions_refuse_out_of_range_values() {
        assert!(to_sql_integer("n", u64::MAX).is_err());
        assert_eq!(to_sql_integer("n", 7).unwrap(), 7);
        assert!(from_sql_integer("n", -1).is_err());
        assert_eq!(from_sql_integer("n", 7).unwrap(), 7);
    }
}
