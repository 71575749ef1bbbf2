//! A small pool of store connections for readers: the API's requests (and
//! the few writes they queue) share up to `size` connections, opened when
//! first needed and kept.
//!
//! Why a pool of our own: the store is synchronous (`rusqlite` or the
//! synchronous `postgres` client, behind one [`Store`]), and the pool must
//! hand out whole [`Store`]s — with their schema checks done once — not raw
//! clients. It is a mutex, a condition variable and a list.
//!
//! **What it keeps:** a pooled connection never writes under a leadership
//! epoch. The daemon's writer is its own connection, never pooled, and it
//! alone declares `ringmaster.epoch`. A connection that comes back carrying
//! an epoch (someone took the lead on it), that is inside a transaction,
//! or whose PostgreSQL session is closed (server restarted) is dropped —
//! its session, and any setting on it, ends — and a fresh one is opened
//! the next time one is needed. A caller that finds every connection busy
//! waits for one to come back.

use super::{Store, StoreError, StoreLocation};
use std::sync::{Condvar, Mutex, MutexGuard};

/// Connections to one store, shared by readers.
#[derive(Debug)]
pub struct StorePool {
    location: StoreLocation,
    size: usize,
    state: Mutex<PoolState>,
    returned: Condvar,
}

#[derive(Debug, Default)]
struct PoolState {
    idle: Vec<Store>,
    /// Connections open, idle or lent.
    open: usize,
}

impl StorePool {
    /// A pool of at most `size` (at least 1) connections to `location`;
    /// opens the first one now, so a bad location fails here.
    pub fn new(location: StoreLocation, size: usize) -> Result<StorePool, StoreError> {
        let first = Store::open_location(&location)?;
        Ok(StorePool {
            location,
            size: size.max(1),
            state: Mutex::new(PoolState {
                idle: vec![first],
                open: 1,
            }),
            returned: Condvar::new(),
        })
    }

    /// The most connections this pool opens.
    pub fn size(&self) -> usize {
        self.size
    }

    /// How many connections are open now (idle or lent).
    pub fn open_connections(&self) -> usize {
        self.lock().open
    }

    /// A connection: an idle one, a new one while fewer than `size` are
    /// open, or else the first one returned (blocks the calling thread).
    pub fn get(&self) -> Result<PooledStore<'_>, StoreError> {
        let mut state = self.lock();
        loop {
            if let Some(store) = state.idle.pop() {
                if reusable(&store) {
                    return Ok(PooledStore {
                        pool: self,
                        store: Some(store),
                    });
                }
                state.open -= 1;
                continue;
            }
            if state.open < self.size {
                state.open += 1;
                drop(state);
                return match Store::open_location(&self.location) {
                    Ok(store) => Ok(PooledStore {
                        pool: self,
                        store: Some(store),
                    }),
                    Err(error) => {
                        self.lock().open -= 1;
                        self.returned.notify_one();
                        Err(error)
                    }
                };
            }
            state = self
                .returned
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // The state is a list and a count, consistent after every step.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn give_back(&self, store: Store) {
        let mut state = self.lock();
        if reusable(&store) {
            state.idle.push(store);
        } else {
            state.open -= 1;
            drop(state);
            // Closes the session outside the lock.
            drop(store);
        }
        self.returned.notify_one();
    }
}

/// Whether a returned connection may serve the next reader.
fn reusable(store: &Store) -> bool {
    store.epoch().is_none() && store.connection.is_usable()
}

/// A connection lent by a [`StorePool`]; goes back when dropped.
#[derive(Debug)]
pub struct PooledStore<'p> {
    pool: &'p StorePool,
    store: Option<Store>,
}

impl std::ops::Deref for PooledStore<'_> {
    type Target = Store;
    fn deref(&self) -> &Store {
        self.store
            .as_ref()
            .expect("a lent store is present until dropped")
    }
}

impl std::ops::DerefMut for PooledStore<'_> {
    fn deref_mut(&mut self) -> &mut Store {
        self.store
            .as_mut()
            .expect("a lent store is present until dropped")
    }
}

impl Drop for PooledStore<'_> {
    fn drop(&mut self) {
        if let Some(store) = self.store.take() {
            self.pool.give_back(store);
        }
    }
}
