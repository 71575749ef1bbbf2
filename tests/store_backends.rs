//! The store's shared suite: one set of test bodies (`store_backends/suite.rs`),
//! run against every backend — the embedded SQLite file and a real
//! PostgreSQL server (`support/postgres.rs`: initdb + postgres on a unix
//! socket, a fresh database per test).

mod support;

#[path = "store_backends/suite.rs"]
mod suite;

use ringmaster::store::{Store, StoreLocation};
use support::postgres;
use tempfile::TempDir;

/// Which engine a test body runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One empty store location of a backend, and ways to reach it raw.
pub struct Fixture {
    pub backend: Backend,
    pub location: StoreLocation,
    _directory: Option<TempDir>,
}

impl Fixture {
    pub fn new(backend: Backend) -> Fixture {
        match backend {
            Backend::Sqlite => {
                let directory = TempDir::new().unwrap();
                let path = directory.path().join("ringmaster.db");
                Fixture {
                    backend,
                    location: StoreLocation::Sqlite(path),
                    _directory: Some(directory),
                }
            }
            Backend::Postgres => Fixture {
                backend,
                location: StoreLocation::Postgres(postgres::fresh_database()),
                _directory: None,
            },
        }
    }

    /// Opens (creating) the store.
    pub fn open(&self) -> Store {
        Store::open_location(&self.location).unwrap()
    }

    /// Runs SQL on a connection of its own that bypasses the store, as an
    /// operator with `sqlite3` or `psql` would; the database's error text.
    pub fn raw(&self, sql: &str) -> Result<(), String> {
        match &self.location {
            StoreLocation::Sqlite(path) => rusqlite::Connection::open(path)
                .unwrap()
                .execute_batch(sql)
                .map_err(|error| error.to_string()),
            StoreLocation::Postgres(url) => {
                let mut client = ::postgres::Client::connect(url, ::postgres::NoTls).unwrap();
                client
                    .batch_execute(sql)
                    .map_err(|error| match error.as_db_error() {
                        Some(db_error) => db_error.message().to_string(),
                        None => error.to_string(),
                    })
            }
        }
    }
}

impl Fixture {
    /// The number a query (`SELECT COUNT(*) …`) answers on a connection of
    /// its own: what another process sees committed.
    pub fn count(&self, sql: &str) -> i64 {
        match &self.location {
            StoreLocation::Sqlite(path) => rusqlite::Connection::open(path)
                .unwrap()
                .query_row(sql, [], |row| row.get(0))
                .unwrap(),
            StoreLocation::Postgres(url) => {
                let mut client = ::postgres::Client::connect(url, ::postgres::NoTls).unwrap();
                client.query_one(sql, &[]).unwrap().get(0)
            }
        }
    }
}

macro_rules! shared_suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    crate::suite::$name(&crate::Fixture::new(crate::Backend::Sqlite));
                }
            )*
        }
        mod postgresql {
            $(
                #[test]
                fn $name() {
                    crate::suite::$name(&crate::Fixture::new(crate::Backend::Postgres));
                }
            )*
        }
    };
}

shared_suite!(
    migrations_apply_once_and_reopen_cleanly,
    open_existing_refuses_a_location_without_ringmaster_state,
    event_chain_is_contiguous_and_verifiable_across_reopen,
    two_stores_append_to_one_contiguous_chain,
    events_refuse_update_delete_and_out_of_order_inserts,
    tampering_behind_disabled_triggers_is_caught_by_verify,
    event_filters_narrow_and_limit,
    intents_upsert_and_keep_their_correlation_id,
    one_active_change_per_application_boundary_unit_and_ring,
    the_unique_index_refuses_a_second_active_change_written_raw,
    idempotency_claims_are_unique_and_follow_the_state_machine,
    webhook_deliveries_are_deduplicated,
    processed_commits_and_evidence_head_only_move_forward,
    operator_and_reconcile_requests_are_queued_in_order,
    incidents_notifications_rules_and_telemetry_round_trip,
    leadership_is_leased_and_a_new_leader_gets_a_new_epoch,
    a_deposed_leader_is_fenced_on_every_write,
    a_writer_racing_an_epoch_bump_never_lands_after_it,
    a_raw_session_under_a_stale_epoch_is_refused_by_the_database,
    a_write_batch_commits_at_flushes_and_a_crash_keeps_its_last_commit,
);

/// The password of a PostgreSQL URL never appears in an error.
#[test]
fn postgresql_connection_errors_never_show_the_password() {
    let server = postgres::server();
    let url = server
        .url("no_such_database")
        .replace("postgres@", "postgres:hunter2-secret@");
    let error = Store::open_location(&StoreLocation::parse(&url).unwrap()).unwrap_err();
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains("hunter2-secret"), "{shown}");
    assert!(shown.contains("no_such_database"), "{shown}");
    assert!(shown.contains("***"), "{shown}");
}
