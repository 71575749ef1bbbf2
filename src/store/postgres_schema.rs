//! The PostgreSQL schema: its own numbered migrations (the SQLite ones
//! carry SQLite's history; PostgreSQL starts at today's schema), recorded in
//! `schema_migrations` with the SHA-256 of their text like SQLite's, and
//! applied at open in one transaction under a session advisory lock, so
//! replicas starting together migrate once.
//!
//! Every integer is BIGINT; every text column is `COLLATE "C"` so that
//! comparisons and `ORDER BY` agree with SQLite's byte order whatever the
//! database's locale. JSON stays text (the store writes canonical JSON and
//! hashes that exact text); a CHECK casts it to `jsonb` to refuse anything
//! that is not JSON.
//!
//! What the database itself enforces, as on SQLite: events are append-only
//! (triggers refuse UPDATE, DELETE and TRUNCATE, and an INSERT that is not
//! the next link of the chain), one active change per application, boundary,
//! business unit and ring (a partial unique index), unique idempotency keys,
//! and the fencing epoch (`ringmaster_fence`, called by every write
//! transaction and by a statement trigger on every table the leader writes).

use super::StoreError;
use super::db::params;
use super::db::{Connection, MIGRATION_LOCK_KEY};
use super::migrations::Migration;
use sha2::{Digest, Sha256};
use std::path::Path;

/// Every PostgreSQL migration, in order. Append; never edit or reorder.
pub const POSTGRES_MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "initial schema (SQLite schema 7: through api requests and leadership)",
    sql: INITIAL_SCHEMA,
}];

const INITIAL_SCHEMA: &str = r#"
CREATE TABLE processed_commits (
    sequence     BIGSERIAL PRIMARY KEY,
    branch       TEXT COLLATE "C" NOT NULL,
    commit_sha   TEXT COLLATE "C" NOT NULL,
    processed_at TEXT COLLATE "C" NOT NULL,
    outcome      TEXT COLLATE "C" NOT NULL CHECK (outcome IN ('ok', 'invalid')),
    diagnostics  TEXT COLLATE "C" NOT NULL CHECK (diagnostics::jsonb IS NOT NULL),
    UNIQUE (branch, commit_sha)
);
CREATE INDEX processed_commits_by_branch ON processed_commits (branch, sequence);

CREATE TABLE intents (
    intent_id            TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    correlation_id       TEXT COLLATE "C" NOT NULL UNIQUE,
    application_id       TEXT COLLATE "C" NOT NULL,
    acquisition_boundary TEXT COLLATE "C" NOT NULL,
    business_unit        TEXT COLLATE "C" NOT NULL,
    version              TEXT COLLATE "C" NOT NULL,
    content_sha256       TEXT COLLATE "C" NOT NULL,
    state                TEXT COLLATE "C" NOT NULL,
    state_json           TEXT COLLATE "C" NOT NULL CHECK (state_json::jsonb IS NOT NULL),
    decision             TEXT COLLATE "C",
    risk_score           BIGINT CHECK (risk_score BETWEEN 0 AND 100),
    updated_at           TEXT COLLATE "C" NOT NULL
);

CREATE TABLE active_changes (
    change_id            BIGSERIAL PRIMARY KEY,
    intent_id            TEXT COLLATE "C" NOT NULL REFERENCES intents (intent_id),
    application_id       TEXT COLLATE "C" NOT NULL,
    acquisition_boundary TEXT COLLATE "C" NOT NULL,
    business_unit        TEXT COLLATE "C" NOT NULL,
    ring                 TEXT COLLATE "C" NOT NULL,
    active               BIGINT NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    claimed_at           TEXT COLLATE "C" NOT NULL,
    released_at          TEXT COLLATE "C",
    CHECK ((active = 1) = (released_at IS NULL))
);
CREATE UNIQUE INDEX active_changes_one_per_application_ring
    ON active_changes (application_id, acquisition_boundary, business_unit, ring)
    WHERE active = 1;
CREATE INDEX active_changes_by_intent ON active_changes (intent_id, ring) WHERE active = 1;

CREATE TABLE events (
    seq             BIGINT PRIMARY KEY,
    event_id        TEXT COLLATE "C" NOT NULL UNIQUE,
    correlation_id  TEXT COLLATE "C" NOT NULL,
    intent_id       TEXT COLLATE "C",
    event_type      TEXT COLLATE "C" NOT NULL,
    timestamp       TEXT COLLATE "C" NOT NULL,
    actor           TEXT COLLATE "C" NOT NULL,
    actor_role      TEXT COLLATE "C" NOT NULL,
    execution_plane TEXT COLLATE "C",
    ring            TEXT COLLATE "C",
    outcome         TEXT COLLATE "C" NOT NULL CHECK (outcome IN ('success', 'failure', 'pending', 'info')),
    details         TEXT COLLATE "C" NOT NULL CHECK (details::jsonb IS NOT NULL),
    prev_hash       TEXT COLLATE "C" NOT NULL CHECK (length(prev_hash) = 64),
    hash            TEXT COLLATE "C" NOT NULL CHECK (length(hash) = 64)
);
CREATE INDEX events_by_correlation_id ON events (correlation_id, seq);
CREATE INDEX events_by_intent_id ON events (intent_id, seq);

CREATE FUNCTION ringmaster_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only';
END
$$;
CREATE TRIGGER events_refuse_update BEFORE UPDATE ON events
    FOR EACH ROW EXECUTE FUNCTION ringmaster_events_append_only();
CREATE TRIGGER events_refuse_delete BEFORE DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION ringmaster_events_append_only();
CREATE TRIGGER events_refuse_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION ringmaster_events_append_only();

-- Even a raw connection can only add the next link of the chain.
CREATE FUNCTION ringmaster_events_append_at_the_end() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.seq IS DISTINCT FROM (SELECT coalesce(max(seq), 0) + 1 FROM events)
       OR NEW.prev_hash IS DISTINCT FROM coalesce(
            (SELECT hash FROM events ORDER BY seq DESC LIMIT 1),
            '0000000000000000000000000000000000000000000000000000000000000000') THEN
        RAISE EXCEPTION 'events must be appended at the end of the chain';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER events_append_at_the_end BEFORE INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION ringmaster_events_append_at_the_end();

CREATE TABLE idempotency (
    action_seq      BIGSERIAL PRIMARY KEY,
    key             TEXT COLLATE "C" NOT NULL UNIQUE,
    intent_id       TEXT COLLATE "C" NOT NULL REFERENCES intents (intent_id),
    plane           TEXT COLLATE "C" NOT NULL,
    ring            TEXT COLLATE "C" NOT NULL,
    action          TEXT COLLATE "C" NOT NULL,
    request         TEXT COLLATE "C" NOT NULL CHECK (request::jsonb IS NOT NULL),
    state           TEXT COLLATE "C" NOT NULL CHECK (state IN ('planned', 'sent', 'confirmed', 'failed')),
    external_id     TEXT COLLATE "C",
    attempts        BIGINT NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error      TEXT COLLATE "C",
    next_attempt_at TEXT COLLATE "C",
    planned_at      TEXT COLLATE "C" NOT NULL,
    updated_at      TEXT COLLATE "C" NOT NULL
);
CREATE INDEX idempotency_unfinished ON idempotency (state, next_attempt_at)
    WHERE state IN ('planned', 'sent', 'failed');
CREATE INDEX idempotency_by_intent ON idempotency (intent_id);

CREATE TABLE webhook_deliveries (
    delivery_id  TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    event        TEXT COLLATE "C" NOT NULL,
    received_at  TEXT COLLATE "C" NOT NULL,
    payload      TEXT COLLATE "C" NOT NULL CHECK (payload::jsonb IS NOT NULL),
    processed    BIGINT NOT NULL DEFAULT 0 CHECK (processed IN (0, 1)),
    processed_at TEXT COLLATE "C"
);
CREATE INDEX webhook_deliveries_unprocessed ON webhook_deliveries (received_at)
    WHERE processed = 0;

CREATE TABLE evidence_head (
    singleton           BIGINT PRIMARY KEY CHECK (singleton = 1),
    sequence            BIGINT NOT NULL CHECK (sequence >= 0),
    pack_sha256         TEXT COLLATE "C" NOT NULL,
    evidence_commit_sha TEXT COLLATE "C" NOT NULL,
    updated_at          TEXT COLLATE "C" NOT NULL
);

CREATE TABLE operator_requests (
    request_id   BIGSERIAL PRIMARY KEY,
    intent_id    TEXT COLLATE "C" NOT NULL,
    action       TEXT COLLATE "C" NOT NULL CHECK (action IN ('hold', 'resume', 'rollback')),
    reason       TEXT COLLATE "C" NOT NULL,
    actor        TEXT COLLATE "C" NOT NULL,
    requested_at TEXT COLLATE "C" NOT NULL,
    handled_at   TEXT COLLATE "C",
    origin       TEXT COLLATE "C" CHECK (origin IS NULL OR origin::jsonb IS NOT NULL)
);
CREATE INDEX operator_requests_pending ON operator_requests (handled_at, request_id);

CREATE TABLE incidents (
    incident_id    BIGSERIAL PRIMARY KEY,
    source         TEXT COLLATE "C" NOT NULL,
    external_id    TEXT COLLATE "C" NOT NULL,
    application_id TEXT COLLATE "C" NOT NULL,
    ring           TEXT COLLATE "C",
    business_unit  TEXT COLLATE "C",
    severity       TEXT COLLATE "C" NOT NULL,
    summary        TEXT COLLATE "C" NOT NULL,
    status         TEXT COLLATE "C" NOT NULL CHECK (status IN ('open', 'resolved')),
    started_at     TEXT COLLATE "C" NOT NULL,
    resolved_at    TEXT COLLATE "C",
    updated_at     TEXT COLLATE "C" NOT NULL,
    details        TEXT COLLATE "C" NOT NULL CHECK (details::jsonb IS NOT NULL),
    UNIQUE (source, external_id),
    CHECK ((status = 'resolved') = (resolved_at IS NOT NULL))
);
CREATE INDEX incidents_open_by_application ON incidents (application_id, status);

CREATE TABLE notification_cursors (
    target   TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    last_seq BIGINT NOT NULL CHECK (last_seq >= 0)
);
CREATE TABLE notification_deliveries (
    target          TEXT COLLATE "C" NOT NULL,
    event_seq       BIGINT NOT NULL,
    trigger         TEXT COLLATE "C" NOT NULL,
    state           TEXT COLLATE "C" NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        BIGINT NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at TEXT COLLATE "C" NOT NULL,
    last_error      TEXT COLLATE "C",
    delivered_at    TEXT COLLATE "C",
    PRIMARY KEY (target, event_seq)
);
CREATE INDEX notification_deliveries_due ON notification_deliveries (target, next_attempt_at)
    WHERE state = 'pending';

CREATE TABLE rules_in_force (
    branch        TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    root_commit   TEXT COLLATE "C" NOT NULL,
    rules_commit  TEXT COLLATE "C" NOT NULL,
    app_scopes    TEXT COLLATE "C" NOT NULL CHECK (app_scopes::jsonb IS NOT NULL),
    unauthorised  TEXT COLLATE "C" CHECK (unauthorised IS NULL OR unauthorised::jsonb IS NOT NULL),
    judged_commit TEXT COLLATE "C" NOT NULL,
    rejudge_at    TEXT COLLATE "C",
    updated_at    TEXT COLLATE "C" NOT NULL
);

CREATE TABLE reconcile_requests (
    request_id   BIGSERIAL PRIMARY KEY,
    actor        TEXT COLLATE "C" NOT NULL,
    reason       TEXT COLLATE "C" NOT NULL,
    origin       TEXT COLLATE "C" NOT NULL CHECK (origin::jsonb IS NOT NULL),
    requested_at TEXT COLLATE "C" NOT NULL,
    handled_at   TEXT COLLATE "C"
);
CREATE INDEX reconcile_requests_pending ON reconcile_requests (handled_at, request_id);

-- SQLite's functions the store's queries use, so they are written once:
-- json_extract (as text), json_type (SQLite's type names), instr.
CREATE FUNCTION json_extract(document TEXT, path TEXT) RETURNS TEXT
LANGUAGE sql IMMUTABLE AS $$
    SELECT document::jsonb #>> string_to_array(substr(path, 3), '.')
$$;
CREATE FUNCTION json_type(document TEXT, path TEXT) RETURNS TEXT
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE jsonb_typeof(value)
        WHEN 'string' THEN 'text'
        WHEN 'number' THEN CASE WHEN value::text ~ '^-?[0-9]+$' THEN 'integer' ELSE 'real' END
        WHEN 'boolean' THEN value::text
        ELSE jsonb_typeof(value) END
    FROM (SELECT document::jsonb #> string_to_array(substr(path, 3), '.') AS value) AS extracted
$$;
CREATE FUNCTION instr(haystack TEXT, needle TEXT) RETURNS INTEGER
LANGUAGE sql IMMUTABLE AS $$ SELECT strpos(haystack, needle) $$;

-- Leadership: one row; the epoch only grows.
CREATE TABLE leadership (
    singleton        BIGINT PRIMARY KEY CHECK (singleton = 1),
    epoch            BIGINT NOT NULL CHECK (epoch >= 1),
    holder           TEXT COLLATE "C" NOT NULL,
    lease_expires_at TEXT COLLATE "C" NOT NULL,
    acquired_at      TEXT COLLATE "C" NOT NULL
);
CREATE FUNCTION ringmaster_leadership_epoch_grows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.epoch < OLD.epoch THEN
        RAISE EXCEPTION 'leadership epoch cannot go back from % to %', OLD.epoch, NEW.epoch;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER leadership_epoch_grows BEFORE UPDATE ON leadership
    FOR EACH ROW EXECUTE FUNCTION ringmaster_leadership_epoch_grows();
CREATE TRIGGER leadership_refuse_delete BEFORE DELETE OR TRUNCATE ON leadership
    FOR EACH STATEMENT EXECUTE FUNCTION ringmaster_events_append_only();

-- The fence: locks the leadership row (an epoch bump waits for the writers
-- already past it, and writers after it see the new epoch) and refuses a
-- writer whose epoch is older than the current one.
CREATE FUNCTION ringmaster_fence(mine BIGINT) RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE
    current_epoch BIGINT;
BEGIN
    SELECT epoch INTO current_epoch FROM leadership WHERE singleton = 1 FOR SHARE;
    IF current_epoch IS NOT NULL AND current_epoch > mine THEN
        RAISE EXCEPTION 'ringmaster fenced: epoch % is older than epoch %', mine, current_epoch
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN current_epoch;
END
$$;
-- Any write by a session that declared an epoch (`ringmaster.epoch`) to a
-- table the leader writes goes through the fence, even one that bypasses
-- ringmaster's own write transactions.
CREATE FUNCTION ringmaster_fence_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    declared TEXT := current_setting('ringmaster.epoch', true);
BEGIN
    IF declared IS NOT NULL AND declared <> '' THEN
        PERFORM ringmaster_fence(declared::BIGINT);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER fence_processed_commits BEFORE INSERT OR UPDATE OR DELETE ON processed_commits
    FOR EACH STATEMENT EXECUTE FUNCTION ringmaster_fence_trigger();
CREATE TRIGGER fence_intents BEFORE INSERT OR UPDATE OR DELETE ON intents
    FOR EACH STATEMENT EXECUTE FUNCTION ringmaster_fence_trigger();
CREATE TRIGGER fence_active_changes BEFORE INSERT OR UPDATE OR DELETE ON active_changes
    FOR EACH STATEMENT EXECUTE FUNCTION ringmaster_fence_trigger();
CREATE TRIGGER fence_events BEFORE INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION ringmaster_fence_trigger();
CREATE TRIGGER fence_idempotency BEFORE INSERT OR UPDATE OR DELETE ON idempotency
    FOR EACH STATEMENT EXECUTE FUNCTION ringmaster_fence_trigger();
CREATE TRIGGER fence_evidence_head BEFORE INSERT OR UPDATE OR DELETE ON evidence_head
    FOR EACH STATEMENT EXECUTE FUNCTION ringmaster_fence_trigger();
CREATE TRIGGER fence_rules_in_force BEFORE INSERT OR UPDATE OR DELETE ON rules_in_force
    FOR EACH STATEMENT EXECUTE FUNCTION ringmaster_fence_trigger();
CREATE TRIGGER fence_notification_cursors BEFORE INSERT OR UPDATE OR DELETE ON notification_cursors
    FOR EACH STATEMENT EXECUTE FUNCTION ringmaster_fence_trigger();
CREATE TRIGGER fence_notification_deliveries BEFORE INSERT OR UPDATE OR DELETE ON notification_deliveries
    FOR EACH STATEMENT EXECUTE FUNCTION ringmaster_fence_trigger();
"#;

const BOOKKEEPING_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version    BIGINT PRIMARY KEY,
    name       TEXT NOT NULL,
    sql_sha256 TEXT NOT NULL
)";

/// The last migration applied (0 for a database without ringmaster's schema).
pub(super) fn schema_version(connection: &Connection) -> Result<i64, StoreError> {
    let exists: bool = connection.query_row(
        "SELECT to_regclass('schema_migrations') IS NOT NULL",
        params![],
        |row| row.get(0),
    )?;
    if !exists {
        return Ok(0);
    }
    connection.query_row(
        "SELECT coalesce(max(version), 0) FROM schema_migrations",
        params![],
        |row| row.get(0),
    )
}

/// Applies the pending migrations in one transaction, under a session
/// advisory lock held until they are committed.
pub(super) fn apply(connection: &mut Connection, path: &Path) -> Result<(), StoreError> {
    connection.query_row(
        "SELECT pg_advisory_lock(?1)",
        params![MIGRATION_LOCK_KEY],
        |_| Ok(()),
    )?;
    let result = apply_locked(connection, path);
    let unlocked = connection.query_row(
        "SELECT pg_advisory_unlock(?1)",
        params![MIGRATION_LOCK_KEY],
        |_| Ok(()),
    );
    result.and(unlocked)
}

fn apply_locked(connection: &Connection, path: &Path) -> Result<(), StoreError> {
    let migrations = POSTGRES_MIGRATIONS;
    let supported = migrations.last().map_or(0, |migration| migration.version);
    connection.execute_batch("BEGIN")?;
    let result = (|| {
        connection.execute_batch(BOOKKEEPING_TABLE)?;
        let mut statement = connection
            .prepare("SELECT version, sql_sha256 FROM schema_migrations ORDER BY version")?;
        let applied: Vec<(i64, String)> = statement
            .query_map(params![], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let current = applied.last().map_or(0, |(version, _)| *version);
        for (version, recorded_sha256) in &applied {
            match migrations
                .iter()
                .find(|migration| migration.version == *version)
            {
                None => {
                    return Err(StoreError::NewerSchema {
                        path: path.to_path_buf(),
                        found: *version,
                        supported,
                    });
                }
                Some(migration) if sql_sha256(migration) != *recorded_sha256 => {
                    return Err(StoreError::MigrationChanged {
                        path: path.to_path_buf(),
                        version: *version,
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
            connection.execute_batch(migration.sql)?;
            connection.query_row(
                "INSERT INTO schema_migrations (version, name, sql_sha256) VALUES (?1, ?2, ?3)
                 RETURNING version",
                params![migration.version, migration.name, sql_sha256(migration)],
                |_| Ok(()),
            )?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => connection.execute_batch("COMMIT"),
        Err(error) => {
            let _ = connection.execute_batch("ROLLBACK");
            Err(error)
        }
    }
}

fn sql_sha256(migration: &Migration) -> String {
    hex::encode(Sha256::digest(migration.sql.as_bytes()))
}
