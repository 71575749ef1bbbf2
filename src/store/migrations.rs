//! Numbered schema migrations.
//!
//! [`MIGRATIONS`] is an ordered list; migration `n` takes the schema from version
//! `n - 1` to `n`. `PRAGMA user_version` holds the version a file is at, and the
//! `schema_migrations` table records every migration applied with the SHA-256 of its
//! text. At open, the pending migrations run in one `BEGIN IMMEDIATE` transaction
//! (all or none), so reopening an up-to-date file changes nothing and two processes
//! opening the same new file do not both migrate it.
//!
//! A released migration is never edited: a changed text is refused at open
//! ([`StoreError::MigrationChanged`]). A file whose version is above the last
//! migration here came from a newer ringmaster and is refused
//! ([`StoreError::NewerSchema`]) before anything is written to it.

use super::{StoreError, classify_open_error};
use rusqlite::{Connection, TransactionBehavior, params};
use sha2::{Digest, Sha256};
use std::path::Path;

/// One step of the schema.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// 1-based, contiguous; the `user_version` after this migration.
    pub version: i64,
    /// What it does, for error messages and `schema_migrations`.
    pub name: &'static str,
    /// The statements, run with `execute_batch`.
    pub sql: &'static str,
}

/// The schema version this build writes: the last migration's version.
pub const SUPPORTED_SCHEMA_VERSION: i64 = 7;

/// Every migration, in order. Append; never edit or reorder.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial schema",
        sql: INITIAL_SCHEMA,
    },
    Migration {
        version: 2,
        name: "operator requests",
        sql: OPERATOR_REQUESTS,
    },
    Migration {
        version: 3,
        name: "incidents",
        sql: INCIDENTS,
    },
    Migration {
        version: 4,
        name: "notifications",
        sql: NOTIFICATIONS,
    },
    Migration {
        version: 5,
        name: "rules in force",
        sql: RULES_IN_FORCE,
    },
    Migration {
        version: 6,
        name: "api requests",
        sql: API_REQUESTS,
    },
    Migration {
        version: 7,
        name: "leadership",
        sql: LEADERSHIP,
    },
];

/// The leadership lease and its fencing epoch (see `store::leadership`):
/// one row, whose epoch only grows.
const LEADERSHIP: &str = r#"
CREATE TABLE leadership (
    singleton        INTEGER PRIMARY KEY CHECK (singleton = 1),
    epoch            INTEGER NOT NULL CHECK (epoch >= 1),
    holder           TEXT NOT NULL,
    lease_expires_at TEXT NOT NULL,
    acquired_at      TEXT NOT NULL
);
CREATE TRIGGER leadership_epoch_grows BEFORE UPDATE ON leadership
WHEN NEW.epoch < OLD.epoch
BEGIN
    SELECT RAISE(ABORT, 'leadership epoch cannot go back');
END;
CREATE TRIGGER leadership_refuse_delete BEFORE DELETE ON leadership
BEGIN
    SELECT RAISE(ABORT, 'leadership cannot be deleted');
END;
"#;

/// The rules each tracked branch is judged by (see `store::rules`).
const RULES_IN_FORCE: &str = r#"
CREATE TABLE rules_in_force (
    branch        TEXT PRIMARY KEY NOT NULL,
    root_commit   TEXT NOT NULL,
    rules_commit  TEXT NOT NULL,
    app_scopes    TEXT NOT NULL CHECK (json_valid(app_scopes)),
    unauthorised  TEXT CHECK (unauthorised IS NULL OR json_valid(unauthorised)),
    judged_commit TEXT NOT NULL,
    rejudge_at    TEXT,
    updated_at    TEXT NOT NULL
);
"#;

/// Where an operator request came from (`origin`: the authenticated API
/// caller and the request's metadata, as JSON; NULL for the local CLI,
/// whose actor is self-declared), and reconciliations asked for through
/// the API, which the daemon runs at its next step.
const API_REQUESTS: &str = r#"
ALTER TABLE operator_requests ADD COLUMN origin TEXT CHECK (origin IS NULL OR json_valid(origin));
CREATE TABLE reconcile_requests (
    request_id   INTEGER PRIMARY KEY,
    actor        TEXT NOT NULL,
    reason       TEXT NOT NULL,
    origin       TEXT NOT NULL CHECK (json_valid(origin)),
    requested_at TEXT NOT NULL,
    handled_at   TEXT
);
CREATE INDEX reconcile_requests_pending ON reconcile_requests (handled_at, request_id);
"#;

/// Incidents from the incident sources (see `store::incidents`), one row per
/// (source, the source's incident id): repeated reports update it.
const INCIDENTS: &str = r#"
CREATE TABLE incidents (
    incident_id    INTEGER PRIMARY KEY,
    source         TEXT NOT NULL,
    external_id    TEXT NOT NULL,
    application_id TEXT NOT NULL,
    ring           TEXT,
    business_unit  TEXT,
    severity       TEXT NOT NULL,
    summary        TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('open', 'resolved')),
    started_at     TEXT NOT NULL,
    resolved_at    TEXT,
    updated_at     TEXT NOT NULL,
    details        TEXT NOT NULL CHECK (json_valid(details)),
    UNIQUE (source, external_id),
    CHECK ((status = 'resolved') = (resolved_at IS NOT NULL))
);
CREATE INDEX incidents_open_by_application ON incidents (application_id, status);
"#;

/// Operator actions (`hold`, `resume`, `rollback`) queued by the CLI for the
/// daemon, which feeds them to the intent's state machine in order.
const OPERATOR_REQUESTS: &str = r#"
CREATE TABLE operator_requests (
    request_id   INTEGER PRIMARY KEY,
    intent_id    TEXT NOT NULL,
    action       TEXT NOT NULL CHECK (action IN ('hold', 'resume', 'rollback')),
    reason       TEXT NOT NULL,
    actor        TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    handled_at   TEXT
);
CREATE INDEX operator_requests_pending ON operator_requests (handled_at, request_id);
"#;

/// Notification targets' cursors in the event log and the messages owed
/// to them (see `store::notifications`).
const NOTIFICATIONS: &str = r#"
CREATE TABLE notification_cursors (
    target   TEXT PRIMARY KEY NOT NULL,
    last_seq INTEGER NOT NULL CHECK (last_seq >= 0)
);
CREATE TABLE notification_deliveries (
    target          TEXT NOT NULL,
    event_seq       INTEGER NOT NULL,
    trigger         TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT,
    delivered_at    TEXT,
    PRIMARY KEY (target, event_seq)
);
CREATE INDEX notification_deliveries_due ON notification_deliveries (target, next_attempt_at)
    WHERE state = 'pending';
"#;

const INITIAL_SCHEMA: &str = r#"
CREATE TABLE processed_commits (
    sequence     INTEGER PRIMARY KEY,
    branch       TEXT NOT NULL,
    commit_sha   TEXT NOT NULL,
    processed_at TEXT NOT NULL,
    outcome      TEXT NOT NULL CHECK (outcome IN ('ok', 'invalid')),
    diagnostics  TEXT NOT NULL CHECK (json_valid(diagnostics)),
    UNIQUE (branch, commit_sha)
);
CREATE INDEX processed_commits_by_branch ON processed_commits (branch, sequence);

CREATE TABLE intents (
    intent_id            TEXT PRIMARY KEY NOT NULL,
    correlation_id       TEXT NOT NULL UNIQUE,
    application_id       TEXT NOT NULL,
    acquisition_boundary TEXT NOT NULL,
    business_unit        TEXT NOT NULL,
    version              TEXT NOT NULL,
    content_sha256       TEXT NOT NULL,
    state                TEXT NOT NULL,
    state_json           TEXT NOT NULL CHECK (json_valid(state_json)),
    decision             TEXT,
    risk_score           INTEGER CHECK (risk_score BETWEEN 0 AND 100),
    updated_at           TEXT NOT NULL
);

CREATE TABLE active_changes (
    change_id            INTEGER PRIMARY KEY,
    intent_id            TEXT NOT NULL REFERENCES intents (intent_id),
    application_id       TEXT NOT NULL,
    acquisition_boundary TEXT NOT NULL,
    business_unit        TEXT NOT NULL,
    ring                 TEXT NOT NULL,
    active               INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    claimed_at           TEXT NOT NULL,
    released_at          TEXT,
    CHECK ((active = 1) = (released_at IS NULL))
);
-- One active change per application and ring: the invariant lives here, not in Rust.
CREATE UNIQUE INDEX active_changes_one_per_application_ring
    ON active_changes (application_id, acquisition_boundary, business_unit, ring)
    WHERE active = 1;
CREATE INDEX active_changes_by_intent ON active_changes (intent_id, ring) WHERE active = 1;

CREATE TABLE events (
    seq             INTEGER PRIMARY KEY,
    event_id        TEXT NOT NULL UNIQUE,
    correlation_id  TEXT NOT NULL,
    intent_id       TEXT,
    event_type      TEXT NOT NULL,
    timestamp       TEXT NOT NULL,
    actor           TEXT NOT NULL,
    actor_role      TEXT NOT NULL,
    execution_plane TEXT,
    ring            TEXT,
    outcome         TEXT NOT NULL CHECK (outcome IN ('success', 'failure', 'pending', 'info')),
    details         TEXT NOT NULL CHECK (json_valid(details)),
    prev_hash       TEXT NOT NULL CHECK (length(prev_hash) = 64),
    hash            TEXT NOT NULL CHECK (length(hash) = 64)
);
CREATE INDEX events_by_correlation_id ON events (correlation_id, seq);
CREATE INDEX events_by_intent_id ON events (intent_id, seq);
CREATE TRIGGER events_refuse_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;
CREATE TRIGGER events_refuse_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;
-- Even a raw connection can only add the next link of the chain.
CREATE TRIGGER events_append_at_the_end BEFORE INSERT ON events
WHEN NEW.seq IS NOT (SELECT coalesce(max(seq), 0) + 1 FROM events)
  OR NEW.prev_hash IS NOT coalesce(
        (SELECT hash FROM events ORDER BY seq DESC LIMIT 1),
        '0000000000000000000000000000000000000000000000000000000000000000')
BEGIN
    SELECT RAISE(ABORT, 'events must be appended at the end of the chain');
END;

CREATE TABLE idempotency (
    action_seq      INTEGER PRIMARY KEY,
    key             TEXT NOT NULL UNIQUE,
    intent_id       TEXT NOT NULL REFERENCES intents (intent_id),
    plane           TEXT NOT NULL,
    ring            TEXT NOT NULL,
    action          TEXT NOT NULL,
    request         TEXT NOT NULL CHECK (json_valid(request)),
    state           TEXT NOT NULL CHECK (state IN ('planned', 'sent', 'confirmed', 'failed')),
    external_id     TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error      TEXT,
    next_attempt_at TEXT,
    planned_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX idempotency_unfinished ON idempotency (state, next_attempt_at)
    WHERE state IN ('planned', 'sent', 'failed');
CREATE INDEX idempotency_by_intent ON idempotency (intent_id);

CREATE TABLE webhook_deliveries (
    delivery_id  TEXT PRIMARY KEY NOT NULL,
    event        TEXT NOT NULL,
    received_at  TEXT NOT NULL,
    payload      TEXT NOT NULL CHECK (json_valid(payload)),
    processed    INTEGER NOT NULL DEFAULT 0 CHECK (processed IN (0, 1)),
    processed_at TEXT
);
CREATE INDEX webhook_deliveries_unprocessed ON webhook_deliveries (received_at)
    WHERE processed = 0;

CREATE TABLE evidence_head (
    singleton           INTEGER PRIMARY KEY CHECK (singleton = 1),
    sequence            INTEGER NOT NULL CHECK (sequence >= 0),
    pack_sha256         TEXT NOT NULL,
    evidence_commit_sha TEXT NOT NULL,
    updated_at          TEXT NOT NULL
);
"#;

const BOOKKEEPING_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    sql_sha256 TEXT NOT NULL
)";

/// Refuses a file written by a newer ringmaster, before anything writes to it.
pub(super) fn refuse_newer_schema(connection: &Connection, path: &Path) -> Result<(), StoreError> {
    let found: i64 = connection
        .pragma_query_one(None, "user_version")
        .map_err(|source| classify_open_error(path, source))?;
    let supported = MIGRATIONS.last().map_or(0, |migration| migration.version);
    if found > supported {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found,
            supported,
        });
    }
    Ok(())
}

/// Applies the migrations of `migrations` above the file's version, in one
/// transaction, after checking that the ones already applied are unchanged.
pub(super) fn apply(
    connection: &mut Connection,
    migrations: &[Migration],
    path: &Path,
) -> Result<(), StoreError> {
    let migration_error = |migration: &Migration, source| StoreError::Migration {
        path: path.to_path_buf(),
        version: migration.version,
        name: migration.name.to_string(),
        source,
    };
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    transaction.execute_batch(BOOKKEEPING_TABLE)?;
    // Read inside the write lock: another process may have migrated meanwhile.
    let current: i64 = transaction.pragma_query_one(None, "user_version")?;
    let supported = migrations.last().map_or(0, |migration| migration.version);
    if current > supported {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found: current,
            supported,
        });
    }

    let applied: Vec<(i64, String)> = transaction
        .prepare("SELECT version, sql_sha256 FROM schema_migrations ORDER BY version")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (version, recorded_sha256) in applied {
        match migrations
            .iter()
            .find(|migration| migration.version == version)
        {
            None => {
                return Err(StoreError::NewerSchema {
                    path: path.to_path_buf(),
                    found: version,
                    supported,
                });
            }
            Some(migration) if sql_sha256(migration) != recorded_sha256 => {
                return Err(StoreError::MigrationChanged {
                    path: path.to_path_buf(),
                    version,
                    name: migration.name.to_string(),
                });
            }
            Some(_) => {}
        }
    }

    for migration in migrations
        .iter()
        .filter(|migration| migration.version > current)
    {
        transaction
            .execute_batch(migration.sql)
            .map_err(|source| migration_error(migration, source))?;
        transaction
            .execute(
                "INSERT INTO schema_migrations (version, name, sql_sha256) VALUES (?1, ?2, ?3)",
                params![migration.version, migration.name, sql_sha256(migration)],
            )
            .map_err(|source| migration_error(migration, source))?;
        transaction
            .pragma_update(None, "user_version", migration.version)
            .map_err(|source| migration_error(migration, source))?;
    }
    transaction.commit()?;
    Ok(())
}

fn sql_sha256(migration: &Migration) -> String {
    hex::encode(Sha256::digest(migration.sql.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_version(connection: &Connection) -> i64 {
        connection.pragma_query_one(None, "user_version").unwrap()
    }

    fn table_exists(connection: &Connection, name: &str) -> bool {
        connection
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [name],
                |row| row.get::<_, i64>(0),
            )
            .unwrap()
            == 1
    }

    #[test]
    fn migration_versions_are_contiguous_from_one_and_end_at_the_supported_version() {
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version, index as i64 + 1, "{}", migration.name);
        }
        assert_eq!(MIGRATIONS.last().unwrap().version, SUPPORTED_SCHEMA_VERSION);
    }

    #[test]
    fn migrations_apply_in_order_and_reapplying_is_a_no_op() {
        let mut connection = Connection::open_in_memory().unwrap();
        let steps = [
            Migration {
                version: 1,
                name: "one",
                sql: "CREATE TABLE first (x INTEGER);",
            },
            Migration {
                version: 2,
                name: "two",
                sql: "ALTER TABLE first ADD COLUMN y TEXT;",
            },
        ];
        apply(&mut connection, &steps[..1], Path::new(":memory:")).unwrap();
        assert_eq!(user_version(&connection), 1);
        apply(&mut connection, &steps, Path::new(":memory:")).unwrap();
        assert_eq!(user_version(&connection), 2);
        apply(&mut connection, &steps, Path::new(":memory:")).unwrap();
        assert_eq!(user_version(&connection), 2);
        connection
            .execute("INSERT INTO first (x, y) VALUES (1, 'a')", [])
            .unwrap();
    }

    #[test]
    fn a_store_at_rules_in_force_upgrades_to_api_requests_keeping_its_rows() {
        // A store made before the API (version 5: rules in force) takes
        // migration 6; a pending operator request keeps its place and gets
        // no origin (it came from the local CLI).
        let mut connection = Connection::open_in_memory().unwrap();
        apply(&mut connection, &MIGRATIONS[..5], Path::new(":memory:")).unwrap();
        assert_eq!(user_version(&connection), 5);
        connection
            .execute(
                "INSERT INTO operator_requests (intent_id, action, reason, actor, requested_at) \
                 VALUES ('app@1', 'hold', 'why', 'alice', '2026-01-01T00:00:00Z')",
                [],
            )
            .unwrap();
        apply(&mut connection, &MIGRATIONS[..6], Path::new(":memory:")).unwrap();
        assert_eq!(user_version(&connection), 6);
        assert!(table_exists(&connection, "reconcile_requests"));
        assert!(table_exists(&connection, "rules_in_force"));
        let (actor, origin): (String, Option<String>) = connection
            .query_row(
                "SELECT actor, origin FROM operator_requests WHERE intent_id = 'app@1'",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        assert_eq!((actor.as_str(), origin), ("alice", None));
    }

    #[test]
    fn a_failing_migration_rolls_back_the_whole_batch() {
        let mut connection = Connection::open_in_memory().unwrap();
        let steps = [
            Migration {
                version: 1,
                name: "good",
                sql: "CREATE TABLE good (x INTEGER);",
            },
            Migration {
                version: 2,
                name: "bad",
                sql: "CREATE TABLE oops (;",
            },
        ];
        let error = apply(&mut connection, &steps, Path::new(":memory:")).unwrap_err();
        assert!(
            matches!(error, StoreError::Migration { version: 2, .. }),
            "{error}"
        );
        assert_eq!(user_version(&connection), 0);
        assert!(!table_exists(&connection, "good"));
    }

    #[test]
    fn an_edited_released_migration_is_refused() {
        let mut connection = Connection::open_in_memory().unwrap();
        let original = [Migration {
            version: 1,
            name: "one",
            sql: "CREATE TABLE t (x);",
        }];
        let edited = [Migration {
            version: 1,
            name: "one",
            sql: "CREATE TABLE t (x, y);",
        }];
        apply(&mut connection, &original, Path::new(":memory:")).unwrap();
        let error = apply(&mut connection, &edited, Path::new(":memory:")).unwrap_err();
        assert!(
            matches!(error, StoreError::MigrationChanged { version: 1, .. }),
            "{error}"
        );
    }

    #[test]
    fn a_file_ahead_of_the_migration_list_is_refused() {
        let mut connection = Connection::open_in_memory().unwrap();
        connection
            .pragma_update(None, "user_version", 1000)
            .unwrap();
        let error = apply(&mut connection, MIGRATIONS, Path::new(":memory:")).unwrap_err();
        assert!(
            matches!(error, StoreError::NewerSchema { found: 1000, .. }),
            "{error}"
        );
        let error = refuse_newer_schema(&connection, Path::new(":memory:")).unwrap_err();
        assert!(
            matches!(error, StoreError::NewerSchema { found: 1000, .. }),
            "{error}"
        );
    }
}
