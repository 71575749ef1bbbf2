//! The readers' pool of store connections (`store::StorePool`, issue 13),
//! on both backends: it opens at most its size, a reader finding every
//! connection busy waits for one to come back, and a connection that took
//! the lead (carries a fencing epoch) is never handed to a reader again.

mod support;

use chrono::{TimeZone, Utc};
use ringmaster::store::{StoreLocation, StorePool};
use std::sync::Arc;
use std::sync::mpsc;

fn sqlite() -> (tempfile::TempDir, StoreLocation) {
    let directory = tempfile::tempdir().unwrap();
    let location = StoreLocation::Sqlite(directory.path().join("ringmaster.db"));
    (directory, location)
}

fn postgres() -> StoreLocation {
    StoreLocation::Postgres(support::postgres::fresh_database())
}

fn opens_at_most_its_size_and_a_reader_waits_for_a_returned_one(location: StoreLocation) {
    let pool = Arc::new(StorePool::new(location, 2).unwrap());
    assert_eq!(pool.open_connections(), 1, "the first is opened at once");
    let first = pool.get().unwrap();
    let second = pool.get().unwrap();
    assert_eq!(pool.open_connections(), 2);
    let (got, receiver) = mpsc::channel();
    let waiter = {
        let pool = pool.clone();
        std::thread::spawn(move || {
            let store = pool.get().unwrap();
            got.send(()).unwrap();
            store.verify_event_chain().unwrap().events_checked
        })
    };
    // Both connections are lent: the third reader cannot have one.
    assert!(receiver.try_recv().is_err());
    assert_eq!(pool.open_connections(), 2);
    drop(first);
    receiver.recv().unwrap();
    assert_eq!(waiter.join().unwrap(), 0);
    drop(second);
    assert_eq!(pool.open_connections(), 2, "returned connections are kept");
}

fn a_connection_that_took_the_lead_is_never_lent_again(location: StoreLocation) {
    let pool = StorePool::new(location, 1).unwrap();
    {
        let mut store = pool.get().unwrap();
        let now = Utc.with_ymd_and_hms(2026, 12, 5, 23, 0, 0).unwrap();
        store
            .try_lead("replica-a", chrono::Duration::seconds(15), now)
            .unwrap();
        assert_eq!(store.epoch(), Some(1));
    }
    assert_eq!(pool.open_connections(), 0, "dropped, its session closed");
    let store = pool.get().unwrap();
    assert_eq!(
        store.epoch(),
        None,
        "a fresh connection writes under no epoch"
    );
    assert_eq!(store.leadership().unwrap().unwrap().epoch, 1);
}

#[test]
fn sqlite_pool_opens_at_most_its_size_and_a_reader_waits_for_a_returned_one() {
    let (_directory, location) = sqlite();
    opens_at_most_its_size_and_a_reader_waits_for_a_returned_one(location);
}

#[test]
fn postgres_pool_opens_at_most_its_size_and_a_reader_waits_for_a_returned_one() {
    opens_at_most_its_size_and_a_reader_waits_for_a_returned_one(postgres());
}

#[test]
fn sqlite_pool_never_lends_a_connection_that_took_the_lead() {
    let (_directory, location) = sqlite();
    a_connection_that_took_the_lead_is_never_lent_again(location);
}

#[test]
fn postgres_pool_never_lends_a_connection_that_took_the_lead() {
    a_connection_that_took_the_lead_is_never_lent_again(postgres());
}
