//! Group commit: many concurrent writers, one transaction, one fsync.
//!
//! A [`GroupCommitter`] owns one [`Store`] on a thread of its own. Callers
//! (the webhook receiver's handlers, any task appending events) put their
//! write on a bounded queue and wait for the answer; the committer takes
//! everything queued (at most [`GroupCommitOptions::max_batch`]), applies
//! it in ONE write transaction — SQLite's `BEGIN IMMEDIATE`, PostgreSQL's
//! writer lock, the fencing check when the store carries an epoch — and
//! commits once. On SQLite (WAL, `synchronous=FULL`) that commit is the one
//! fsync of the whole batch; on PostgreSQL the one WAL flush.
//!
//! The guarantees, in the order a batch runs:
//!
//! 1. **Nothing is answered before it is durable.** Every caller of a batch
//!    gets its answer only after `COMMIT` returned. A batch whose
//!    transaction cannot start (writer lock, fencing) or whose `COMMIT`
//!    fails answers *every* caller in it with the error
//!    ([`StoreError::GroupCommit`], or [`StoreError::Fenced`]), and nothing
//!    of it is stored.
//! 2. **One caller's bad write is its own.** Each write runs under a
//!    savepoint: if it fails, it alone is rolled back and answered with its
//!    error; the others commit.
//! 3. **The event chain keeps its order.** Events are appended in the order
//!    they were queued, each linked to the one before (`seq` contiguous,
//!    `prev_hash` the previous `hash`); a failed one takes no `seq`.
//! 4. **Back-pressure.** The queue holds [`GroupCommitOptions::queue`]
//!    writes; a caller that finds it full waits for room (async callers
//!    yield, they never spin).
//! 5. **Exactly once.** A delivery id recorded twice — in two batches or in
//!    the same one — is stored once; the second caller is told it is a
//!    duplicate.
//!
//! `max_batch: 1` is the former behaviour — one transaction and one fsync
//! per write, writers taking turns — which `benches/webhooks.rs` measures
//! beside the batched path.

use super::db::TransactionBehavior;
use super::events::{ChainHead, append_at, chain_head};
use super::time::format_timestamp;
use super::{Event, NewEvent, Store, StoreError};
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

/// How a committer queues and batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommitOptions {
    /// How many writes may wait; a caller finding the queue full waits.
    pub queue: usize,
    /// The most writes one transaction carries.
    pub max_batch: usize,
}

impl Default for GroupCommitOptions {
    fn default() -> Self {
        GroupCommitOptions {
            queue: 1024,
            max_batch: 256,
        }
    }
}

/// One write a caller asks for.
#[derive(Debug)]
enum Write {
    Delivery {
        delivery_id: String,
        event: String,
        payload: String,
        received_at: String,
    },
    Event(Box<NewEvent>),
}

/// What a write produced.
#[derive(Debug)]
enum Written {
    /// `true`: stored now; `false`: the delivery id was stored before.
    Delivery(bool),
    Event(Box<Event>),
}

struct Pending {
    write: Write,
    reply: oneshot::Sender<Result<Written, StoreError>>,
}

/// The handle callers share (`Sync`; clone it freely). The committer
/// thread ends when every handle is dropped, after its last batch.
#[derive(Clone)]
pub struct GroupCommitter {
    sender: mpsc::Sender<Pending>,
    /// Where the store lives, for messages (password redacted).
    store: String,
}

impl std::fmt::Debug for GroupCommitter {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("GroupCommitter")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl GroupCommitter {
    /// Starts the committer thread, which owns `store` from now on.
    pub fn start(store: Store, options: GroupCommitOptions) -> Result<GroupCommitter, StoreError> {
        let (sender, receiver) = mpsc::channel(options.queue.max(1));
        let description = store.describe();
        std::thread::Builder::new()
            .name("ringmaster-group-commit".to_string())
            .spawn(move || run(store, receiver, options.max_batch.max(1)))
            .map_err(|error| StoreError::GroupCommit {
                detail: format!("cannot start the committer thread: {error}"),
            })?;
        Ok(GroupCommitter {
            sender,
            store: description,
        })
    }

    /// Records a webhook delivery (see [`Store::record_delivery`]) and
    /// returns once it is committed: `true` if stored now, `false` if this
    /// delivery id was recorded before.
    pub async fn record_delivery(
        &self,
        delivery_id: &str,
        event: &str,
        payload: &Value,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let write = Write::Delivery {
            delivery_id: delivery_id.to_string(),
            event: event.to_string(),
            payload: serde_json::to_string(payload)?,
            received_at: format_timestamp(now),
        };
        match self.submit(write).await? {
            Written::Delivery(inserted) => Ok(inserted),
            Written::Event(_) => unreachable!("a delivery is answered as a delivery"),
        }
    }

    /// Appends `event` at the end of the chain and returns it as stored,
    /// once committed.
    pub async fn append_event(&self, event: NewEvent) -> Result<Event, StoreError> {
        match self.submit(Write::Event(Box::new(event))).await? {
            Written::Event(event) => Ok(*event),
            Written::Delivery(_) => unreachable!("an event is answered as an event"),
        }
    }

    /// [`GroupCommitter::append_event`] from a thread outside the async
    /// runtime (it blocks that thread; never call it on a runtime worker).
    pub fn blocking_append_event(&self, event: NewEvent) -> Result<Event, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .blocking_send(Pending {
                write: Write::Event(Box::new(event)),
                reply,
            })
            .map_err(|_| self.stopped())?;
        match answer.blocking_recv().map_err(|_| self.stopped())?? {
            Written::Event(event) => Ok(*event),
            Written::Delivery(_) => unreachable!("an event is answered as an event"),
        }
    }

    /// How many writes wait in the queue now (not counting the batch being
    /// committed).
    pub fn queued(&self) -> usize {
        self.sender.max_capacity() - self.sender.capacity()
    }

    async fn submit(&self, write: Write) -> Result<Written, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Pending { write, reply })
            .await
            .map_err(|_| self.stopped())?;
        answer.await.map_err(|_| self.stopped())?
    }

    fn stopped(&self) -> StoreError {
        StoreError::GroupCommit {
            detail: format!(
                "the committer of {} has stopped; nothing was written",
                self.store
            ),
        }
    }
}

/// The committer thread: one batch per turn until every handle is gone.
fn run(mut store: Store, mut receiver: mpsc::Receiver<Pending>, max_batch: usize) {
    while let Some(first) = receiver.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match receiver.try_recv() {
                Ok(pending) => batch.push(pending),
                Err(_) => break,
            }
        }
        commit_batch(&mut store, batch);
    }
}

/// Applies `batch` in one transaction, commits, then answers every caller.
fn commit_batch(store: &mut Store, batch: Vec<Pending>) {
    let (writes, replies): (Vec<Write>, Vec<_>) = batch
        .into_iter()
        .map(|pending| (pending.write, pending.reply))
        .unzip();
    match apply(store, writes) {
        Ok(outcomes) => {
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                // A caller that gave up waiting is not an error.
                let _ = reply.send(outcome);
            }
        }
        Err(error) => {
            tracing::error!(%error, writes = replies.len(), "group commit failed; nothing of the batch was stored");
            for reply in replies {
                let _ = reply.send(Err(shared_error(&error)));
            }
        }
    }
}

/// The batch's transaction: `Err` when it could not start or commit (then
/// nothing of it is stored); otherwise each write's own outcome.
fn apply(
    store: &mut Store,
    writes: Vec<Write>,
) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
    let transaction = store
        .connection
        .transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut head: Option<ChainHead> = None;
    let mut outcomes = Vec::with_capacity(writes.len());
    for write in writes {
        transaction.execute_batch("SAVEPOINT ringmaster_group_item")?;
        let outcome = apply_one(&transaction, &mut head, write);
        if outcome.is_ok() {
            transaction.execute_batch("RELEASE SAVEPOINT ringmaster_group_item")?;
        } else {
            transaction.execute_batch(
                "ROLLBACK TO SAVEPOINT ringmaster_group_item; \
                 RELEASE SAVEPOINT ringmaster_group_item",
            )?;
        }
        outcomes.push(outcome);
    }
    transaction.commit()?;
    Ok(outcomes)
}

fn apply_one(
    connection: &super::db::Connection,
    head: &mut Option<ChainHead>,
    write: Write,
) -> Result<Written, StoreError> {
    match write {
        Write::Delivery {
            delivery_id,
            event,
            payload,
            received_at,
        } => super::webhooks::insert_delivery(
            connection,
            &delivery_id,
            &event,
            &payload,
            &received_at,
        )
        .map(Written::Delivery),
        Write::Event(event) => {
            let mut current = match head.take() {
                Some(current) => current,
                None => chain_head(connection)?,
            };
            let outcome = append_at(connection, &mut current, *event);
            *head = Some(current);
            outcome.map(|event| Written::Event(Box::new(event)))
        }
    }
}

/// The batch's error, for each of its callers (store errors are not
/// `Clone`): fencing keeps its meaning, anything else is named.
fn shared_error(error: &StoreError) -> StoreError {
    match error {
        StoreError::Fenced { mine, current } => StoreError::Fenced {
            mine: *mine,
            current: *current,
        },
        other => StoreError::GroupCommit {
            detail: format!("the batch was not committed, nothing of it was stored: {other}"),
        },
    }
}
