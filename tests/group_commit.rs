//! Group commit of webhook deliveries and events (issue 17): concurrent
//! writers share one transaction and one commit, and each is answered only
//! after its commit is durable.
//!
//! Real parts: the `/webhooks/github` receiver over real HTTP on 127.0.0.1
//! with deliveries signed as GitHub signs them, real SQLite files, and a
//! real PostgreSQL (`support/postgres.rs`) where a batch must be made to
//! fail at `COMMIT` — a deferred constraint trigger, which the database
//! runs only when the transaction commits.

mod support;

use chrono::{DateTime, TimeZone, Utc};
use ringmaster::api::{self, ApiServer, WebhookState};
use ringmaster::forge::{WebhookSecret, signature};
use ringmaster::store::{
    EventOutcome, EventType, GroupCommitOptions, GroupCommitter, NewEvent, Store, StoreError,
    StoreLocation,
};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const SECRET: &str = "group commit secret";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 5, 23, 30, 0).unwrap()
}

fn payload() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/github/pull_request.opened.0.json"
    ))
    .expect("the recorded pull_request payload")
}

/// A receiver on a store of its own; keeps a handle on its committer.
struct Receiver {
    server: ApiServer,
    url: String,
    committer: GroupCommitter,
    wakeups: Arc<AtomicUsize>,
}

async fn receiver(store: Store) -> Receiver {
    let committer = GroupCommitter::start(store, GroupCommitOptions::default()).unwrap();
    let wakeups = Arc::new(AtomicUsize::new(0));
    let counter = wakeups.clone();
    let state = Arc::new(WebhookState {
        secret: WebhookSecret::new(SECRET),
        repository: "Codertocat/Hello-World".into(),
        deliveries: committer.clone(),
        clock: Arc::new(now),
        on_enqueued: Box::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        }),
    });
    let server = ApiServer::start("127.0.0.1:0", api::router(Some(state)))
        .await
        .unwrap();
    let url = format!("http://{}/webhooks/github", server.local_addr);
    Receiver {
        server,
        url,
        committer,
        wakeups,
    }
}

/// Sends one signed delivery; its status and the answer's `status` field.
async fn deliver(client: &reqwest::Client, url: &str, id: &str) -> (u16, String) {
    let body = payload();
    let response = client
        .post(url)
        .header("x-github-event", "pull_request")
        .header("x-github-delivery", id)
        .header(
            "x-hub-signature-256",
            signature::sign(&WebhookSecret::new(SECRET), &body),
        )
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let answer: serde_json::Value = response.json().await.unwrap();
    (
        status,
        answer["status"].as_str().unwrap_or_default().to_string(),
    )
}

fn event(number: usize) -> NewEvent {
    NewEvent {
        correlation_id: format!("correlation-{number}"),
        intent_id: Some(format!("intent-{number}")),
        event_type: EventType::OperatorAction,
        timestamp: now(),
        actor: "ringmaster".to_string(),
        actor_role: "control-plane".to_string(),
        execution_plane: None,
        ring: None,
        outcome: EventOutcome::Info,
        details: json!({"number": number}),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_deliveries_over_http_are_all_acknowledged_and_stored_exactly_once() {
    let directory = tempfile::tempdir().unwrap();
    let database = directory.path().join("ringmaster.db");
    let receiver = receiver(Store::open(&database).unwrap()).await;
    let client = reqwest::Client::new();
    // 100 new delivery ids, and 30 of them sent a second time in the same
    // burst (GitHub redelivers; an operator presses "redeliver").
    let ids: Vec<String> = (0..100)
        .map(|index| format!("delivery-{index}"))
        .chain((0..30).map(|index| format!("delivery-{}", index * 3)))
        .collect();
    let sends = ids.iter().map(|id| {
        let client = client.clone();
        let url = receiver.url.clone();
        let id = id.clone();
        tokio::spawn(async move { (id.clone(), deliver(&client, &url, &id).await) })
    });
    let mut answers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for send in sends.collect::<Vec<_>>() {
        let (id, (status, outcome)) = send.await.unwrap();
        assert_eq!(status, 202, "{id}: {outcome}");
        answers.entry(id).or_default().push(outcome);
    }
    assert_eq!(answers.len(), 100);
    for (id, outcomes) in &answers {
        let queued = outcomes.iter().filter(|o| *o == "queued").count();
        let duplicate = outcomes.iter().filter(|o| *o == "duplicate").count();
        assert_eq!(queued, 1, "{id} is queued exactly once: {outcomes:?}");
        assert_eq!(duplicate, outcomes.len() - 1, "{id}: {outcomes:?}");
    }
    assert_eq!(receiver.wakeups.load(Ordering::SeqCst), 100);
    // Read back through another connection: what was acknowledged is there.
    let stored = Store::open_existing(&database)
        .unwrap()
        .unprocessed_deliveries()
        .unwrap();
    let mut stored_ids: Vec<String> = stored.into_iter().map(|d| d.delivery_id).collect();
    stored_ids.sort();
    let mut expected: Vec<String> = answers.keys().cloned().collect();
    expected.sort();
    assert_eq!(stored_ids, expected, "every delivery stored exactly once");
    receiver.server.shutdown().await.unwrap();
}

/// Holds PostgreSQL's writer lock (the advisory lock every write
/// transaction of the store takes) on a connection of its own.
struct WriterLock {
    client: postgres::Client,
}

const WRITER_LOCK_KEY: i64 = 0x7269_6e67_6d61_7374;

impl WriterLock {
    fn take(url: &str) -> WriterLock {
        sync(|| {
            let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
            client
                .execute("SELECT pg_advisory_lock($1)", &[&WRITER_LOCK_KEY])
                .unwrap();
            WriterLock { client }
        })
    }

    /// Waits until another session waits for the lock on this test's
    /// database (advisory locks are per database; the other tests of this
    /// binary share the server): the committer has formed its batch and is
    /// inside its transaction.
    async fn until_a_writer_waits(&mut self) {
        loop {
            let waiting: i64 = sync(|| {
                self.client
                    .query_one(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
                         AND NOT granted AND database = (SELECT oid FROM pg_database \
                         WHERE datname = current_database())",
                        &[],
                    )
                    .unwrap()
                    .get(0)
            });
            if waiting > 0 {
                return;
            }
            tokio::task::yield_now().await;
        }
    }

    fn release(mut self) {
        sync(move || {
            self.client
                .execute("SELECT pg_advisory_unlock($1)", &[&WRITER_LOCK_KEY])
                .unwrap();
            drop(self);
        });
    }
}

async fn until_queued(committer: &GroupCommitter, count: usize) {
    while committer.queued() < count {
        tokio::task::yield_now().await;
    }
}

fn raw(url: &str, sql: &str) {
    sync(|| {
        postgres::Client::connect(url, postgres::NoTls)
            .unwrap()
            .batch_execute(sql)
            .unwrap()
    });
}

/// The synchronous PostgreSQL client starts a runtime of its own: off the
/// async worker, as the store does.
fn sync<T>(call: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(call)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_commit_answers_every_caller_of_its_batch_with_an_error_and_acknowledges_none() {
    let url = sync(support::postgres::fresh_database);
    let store = Store::open_location(&StoreLocation::Postgres(url.clone())).unwrap();
    // A deferred constraint trigger: PostgreSQL runs it at COMMIT, so the
    // batch holding the poisoned delivery fails there, after every insert
    // of the batch succeeded.
    raw(
        &url,
        "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.delivery_id = 'poison' THEN
             RAISE EXCEPTION 'delivery poison refused at commit';
           END IF;
           RETURN NULL;
         END $$;
         CREATE CONSTRAINT TRIGGER refuse_poison AFTER INSERT ON webhook_deliveries
           DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_poison();",
    );
    let receiver = receiver(store).await;
    let client = reqwest::Client::new();
    let mut lock = WriterLock::take(&url);
    // Batch 1: one delivery, stuck on the writer lock inside its transaction.
    let first = {
        let (client, url) = (client.clone(), receiver.url.clone());
        tokio::spawn(async move { deliver(&client, &url, "first").await })
    };
    lock.until_a_writer_waits().await;
    // Batch 2: 24 good deliveries and the poisoned one, all queued behind it.
    let mut second = Vec::new();
    for index in 0..25 {
        let id = if index == 12 {
            "poison".to_string()
        } else {
            format!("batch-2-{index}")
        };
        let (client, url) = (client.clone(), receiver.url.clone());
        second.push(tokio::spawn(async move {
            (id.clone(), deliver(&client, &url, &id).await)
        }));
    }
    until_queued(&receiver.committer, 25).await;
    lock.release();
    assert_eq!(first.await.unwrap(), (202, "queued".to_string()));
    for send in second {
        let (id, (status, outcome)) = send.await.unwrap();
        assert_eq!(
            (status, outcome.as_str()),
            (503, "error"),
            "{id} was in the failed batch: no acknowledgement"
        );
    }
    assert_eq!(receiver.wakeups.load(Ordering::SeqCst), 1);
    let stored: Vec<String> = sync(|| {
        Store::open_location(&StoreLocation::Postgres(url.clone()))
            .unwrap()
            .unprocessed_deliveries()
            .unwrap()
            .into_iter()
            .map(|delivery| delivery.delivery_id)
            .collect()
    });
    assert_eq!(
        stored,
        vec!["first"],
        "nothing of the failed batch is stored"
    );
    // The committer goes on: the good ones are accepted when sent again.
    assert_eq!(
        deliver(&client, &receiver.url, "batch-2-0").await,
        (202, "queued".to_string())
    );
    receiver.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_write_fails_alone_and_the_rest_of_its_batch_commits() {
    let url = sync(support::postgres::fresh_database);
    let store = Store::open_location(&StoreLocation::Postgres(url.clone())).unwrap();
    // An immediate trigger: the insert itself fails, inside its savepoint.
    raw(
        &url,
        "CREATE FUNCTION refuse_bad() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.delivery_id = 'bad' THEN RAISE EXCEPTION 'delivery bad refused'; END IF;
           RETURN NEW;
         END $$;
         CREATE TRIGGER refuse_bad BEFORE INSERT ON webhook_deliveries
           FOR EACH ROW EXECUTE FUNCTION refuse_bad();",
    );
    let committer = GroupCommitter::start(store, GroupCommitOptions::default()).unwrap();
    let mut lock = WriterLock::take(&url);
    let first = {
        let committer = committer.clone();
        tokio::spawn(async move { committer.append_event(event(0)).await })
    };
    lock.until_a_writer_waits().await;
    let mut batch = Vec::new();
    for index in 1..=9 {
        let writer = committer.clone();
        batch.push(tokio::spawn(async move {
            let committer = writer;
            if index == 5 {
                committer
                    .record_delivery("bad", "push", &json!({}), now())
                    .await
                    .map(|_| None)
            } else if index % 2 == 0 {
                committer
                    .record_delivery(&format!("good-{index}"), "push", &json!({}), now())
                    .await
                    .map(|inserted| {
                        assert!(inserted);
                        None
                    })
            } else {
                committer
                    .append_event(event(index))
                    .await
                    .map(|event| Some(event.seq))
            }
        }));
        // Queued in this order: the chain must follow it.
        until_queued(&committer, index).await;
    }
    lock.release();
    assert_eq!(first.await.unwrap().unwrap().seq, 1);
    let mut sequences = Vec::new();
    for (position, outcome) in batch.into_iter().enumerate() {
        let index = position + 1;
        match (index, outcome.await.unwrap()) {
            (5, Err(error)) => {
                assert!(
                    error.to_string().contains("delivery bad refused"),
                    "{error}"
                )
            }
            (5, Ok(_)) => panic!("the refused delivery was acknowledged"),
            (_, Ok(Some(seq))) => sequences.push(seq),
            (_, Ok(None)) => {}
            (_, Err(error)) => panic!("write {index} failed: {error}"),
        }
    }
    assert_eq!(
        sequences,
        vec![2, 3, 4, 5],
        "events 1, 3, 7, 9 chained in queue order after the first"
    );
    sync(move || {
        let store = Store::open_location(&StoreLocation::Postgres(url)).unwrap();
        let mut stored: Vec<String> = store
            .unprocessed_deliveries()
            .unwrap()
            .into_iter()
            .map(|delivery| delivery.delivery_id)
            .collect();
        stored.sort();
        assert_eq!(stored, vec!["good-2", "good-4", "good-6", "good-8"]);
        let report = store.verify_event_chain().unwrap();
        assert_eq!(report.events_checked, 5);
        assert!(report.first_break.is_none(), "{report:?}");
    });
}

/// Many tasks append events through the committer while another
/// connection appends on its own: one chain, gap-free, verified.
fn event_chain_stays_gap_free(location: StoreLocation) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let committer =
        GroupCommitter::start(Store::open_location(&location).unwrap(), Default::default())
            .unwrap();
    let appended = runtime.block_on(async {
        let tasks: Vec<_> = (0..200)
            .map(|number| {
                let committer = committer.clone();
                tokio::spawn(async move { committer.append_event(event(number)).await })
            })
            .collect();
        // A writer that does not go through the committer, meanwhile.
        let direct = {
            let location = location.clone();
            std::thread::spawn(move || {
                let mut store = Store::open_location(&location).unwrap();
                (1000..1020)
                    .map(|number| store.append_event(event(number)).unwrap().seq)
                    .collect::<Vec<_>>()
            })
        };
        let mut sequences = Vec::new();
        for task in tasks {
            sequences.push(task.await.unwrap().unwrap().seq);
        }
        sequences.extend(direct.join().unwrap());
        sequences
    });
    // From a plain thread too.
    let last = committer.blocking_append_event(event(9999)).unwrap();
    let mut sequences = appended;
    sequences.push(last.seq);
    sequences.sort();
    assert_eq!(
        sequences,
        (1..=221).collect::<Vec<u64>>(),
        "each caller got its own seq, none missing"
    );
    let store = Store::open_location(&location).unwrap();
    let report = store.verify_event_chain().unwrap();
    assert_eq!(report.events_checked, 221);
    assert!(report.first_break.is_none(), "{report:?}");
    assert_eq!(store.last_event().unwrap().unwrap().hash, last.hash);
}

#[test]
fn the_event_chain_stays_gap_free_and_verifies_under_concurrent_appends_on_sqlite() {
    let directory = tempfile::tempdir().unwrap();
    event_chain_stays_gap_free(StoreLocation::Sqlite(
        directory.path().join("ringmaster.db"),
    ));
}

#[test]
fn the_event_chain_stays_gap_free_and_verifies_under_concurrent_appends_on_postgres() {
    event_chain_stays_gap_free(StoreLocation::Postgres(support::postgres::fresh_database()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_committer_answers_every_caller_fenced_and_stores_nothing() {
    let directory = tempfile::tempdir().unwrap();
    let database = directory.path().join("ringmaster.db");
    let mut leader = Store::open(&database).unwrap();
    let mut rival = Store::open(&database).unwrap();
    let lease = chrono::Duration::seconds(15);
    leader.try_lead("replica-a", lease, now()).unwrap();
    // The lease lapses, another replica takes over: epoch 2 exists.
    rival
        .try_lead("replica-b", lease, now() + chrono::Duration::seconds(60))
        .unwrap();
    let committer = GroupCommitter::start(leader, GroupCommitOptions::default()).unwrap();
    let tasks: Vec<_> = (0..10)
        .map(|number| {
            let committer = committer.clone();
            tokio::spawn(async move { committer.append_event(event(number)).await })
        })
        .collect();
    for task in tasks {
        let error = task.await.unwrap().unwrap_err();
        assert!(
            matches!(
                error,
                StoreError::Fenced {
                    mine: 1,
                    current: 2
                }
            ),
            "{error}"
        );
    }
    assert!(rival.last_event().unwrap().is_none(), "nothing stored");
}
