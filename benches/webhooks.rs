//! Webhook acknowledgement latency (a plain `harness = false` binary that
//! prints figures): the real `/webhooks/github` receiver on 127.0.0.1 with a
//! real SQLite state store (WAL, `synchronous=FULL`), hit by N concurrent
//! deliveries of the recorded `pull_request` payload, each signed with
//! HMAC-SHA256 as GitHub signs them (`X-Hub-Signature-256`) and carrying
//! its own delivery id. Two receivers run in the same process, rounds
//! alternating between them:
//!
//! - `old`: one transaction and one fsync per delivery, writers taking
//!   turns (the receiver before group commit: its committer with
//!   `max_batch: 1` does exactly that);
//! - `new`: group commit (`GroupCommitOptions::default()`): every delivery
//!   waiting shares one transaction and one fsync.
//!
//! Each answer is a `202` only after the delivery's commit returned. A cold
//! round per path comes first and is printed apart (first connections,
//! cold caches); per warm round it prints p50, p95, p99, max and the
//! burst's wall time; then all warm rounds of each path together, a burst of replays (every id seen before),
//! and checks that each path stored every delivery exactly once.
//!
//! `cargo bench --bench webhooks`; environment:
//! `RINGMASTER_BENCH_CONCURRENCY` (N, default 100),
//! `RINGMASTER_BENCH_ROUNDS` (warm rounds, default 5).

use ringmaster::api::{self, ApiServer, WebhookState};
use ringmaster::forge::{WebhookSecret, signature};
use ringmaster::store::{GroupCommitOptions, GroupCommitter, Store};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECRET: &str = "bench secret";

fn environment_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn milliseconds(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Sends `bodies` at once; returns each acknowledgement's latency.
async fn burst(
    client: &reqwest::Client,
    url: &str,
    bodies: Vec<(String, Vec<u8>, String)>,
) -> Vec<Duration> {
    let requests = bodies.into_iter().map(|(delivery, body, signature)| {
        let client = client.clone();
        let url = url.to_owned();
        tokio::spawn(async move {
            let started = Instant::now();
            let response = client
                .post(&url)
                .header("x-github-event", "pull_request")
                .header("x-github-delivery", delivery)
                .header("x-hub-signature-256", signature)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("delivery sent");
            assert_eq!(response.status().as_u16(), 202);
            response.bytes().await.expect("answer");
            started.elapsed()
        })
    });
    let mut latencies = Vec::new();
    for request in requests.collect::<Vec<_>>() {
        latencies.push(request.await.expect("request task"));
    }
    latencies.sort();
    latencies
}

fn report(label: &str, latencies: &[Duration], wall: Duration) {
    println!(
        "{label:<22} n={:<4} p50 {:>7.2} ms  p95 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  burst {:>8.2} ms  ({:.0} deliveries/s)",
        latencies.len(),
        milliseconds(percentile(latencies, 0.50)),
        milliseconds(percentile(latencies, 0.95)),
        milliseconds(percentile(latencies, 0.99)),
        milliseconds(*latencies.last().expect("latencies")),
        milliseconds(wall),
        latencies.len() as f64 / wall.as_secs_f64(),
    );
}

/// One receiver under test: its server, URL and state file.
struct Receiver {
    label: &'static str,
    server: ApiServer,
    url: String,
    database: std::path::PathBuf,
    _state: tempfile::TempDir,
}

async fn receiver(label: &'static str, options: GroupCommitOptions) -> Receiver {
    let state = tempfile::tempdir().expect("state dir");
    let database = state.path().join("ringmaster.db");
    let store = Store::open(&database).expect("store");
    let webhooks = Arc::new(WebhookState {
        secret: WebhookSecret::new(SECRET),
        repository: "Codertocat/Hello-World".into(),
        deliveries: GroupCommitter::start(store, options).expect("committer"),
        clock: Arc::new(chrono::Utc::now),
        on_enqueued: Box::new(|| {}),
    });
    let server = ApiServer::start("127.0.0.1:0", api::router(Some(webhooks)))
        .await
        .expect("server");
    let url = format!("http://{}/webhooks/github", server.local_addr);
    Receiver {
        label,
        server,
        url,
        database,
        _state: state,
    }
}

fn main() {
    let concurrency = environment_number("RINGMASTER_BENCH_CONCURRENCY", 100);
    let rounds = environment_number("RINGMASTER_BENCH_ROUNDS", 5);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let receivers = [
            receiver(
                "old",
                GroupCommitOptions {
                    max_batch: 1,
                    ..GroupCommitOptions::default()
                },
            )
            .await,
            receiver("new", GroupCommitOptions::default()).await,
        ];
        let payload = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/github/pull_request.opened.0.json"
        ))
        .expect("the recorded pull_request payload");
        let secret = WebhookSecret::new(SECRET);
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(concurrency)
            .build()
            .expect("client");
        println!(
            "webhook acknowledgement: {concurrency} concurrent signed deliveries of {} bytes, \
             {rounds} rounds per path, {} core(s)",
            payload.len(),
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        );
        // A cold round first (connections opened, pages of the database
        // and code paths warmed): printed on its own, left out of the
        // percentiles below, which are of warm rounds only.
        for receiver in &receivers {
            let bodies: Vec<(String, Vec<u8>, String)> = (0..concurrency)
                .map(|i| {
                    (
                        format!("cold-delivery-{i}"),
                        payload.clone(),
                        signature::sign(&secret, &payload),
                    )
                })
                .collect();
            let started = Instant::now();
            let latencies = burst(&client, &receiver.url, bodies).await;
            report(
                &format!("{} cold round", receiver.label),
                &latencies,
                started.elapsed(),
            );
        }
        let mut all: Vec<Vec<Duration>> = vec![Vec::new(), Vec::new()];
        for round in 0..rounds {
            for (index, receiver) in receivers.iter().enumerate() {
                let bodies: Vec<(String, Vec<u8>, String)> = (0..concurrency)
                    .map(|i| {
                        (
                            format!("round-{round}-delivery-{i}"),
                            payload.clone(),
                            signature::sign(&secret, &payload),
                        )
                    })
                    .collect();
                let started = Instant::now();
                let latencies = burst(&client, &receiver.url, bodies).await;
                let wall = started.elapsed();
                report(
                    &format!("{} round {round}", receiver.label),
                    &latencies,
                    wall,
                );
                all[index].extend(latencies);
            }
        }
        for (index, receiver) in receivers.iter().enumerate() {
            let replays: Vec<(String, Vec<u8>, String)> = (0..concurrency)
                .map(|i| {
                    (
                        format!("round-0-delivery-{i}"),
                        payload.clone(),
                        signature::sign(&secret, &payload),
                    )
                })
                .collect();
            let started = Instant::now();
            let latencies = burst(&client, &receiver.url, replays).await;
            report(
                &format!("{} replays", receiver.label),
                &latencies,
                started.elapsed(),
            );
            let latencies = &mut all[index];
            latencies.sort();
            let total: Duration = latencies.iter().sum();
            println!(
                "{} path, all new deliveries of the warm rounds: n={} p50 {:.2} ms p99 {:.2} ms max {:.2} ms mean {:.2} ms",
                receiver.label,
                latencies.len(),
                milliseconds(percentile(latencies, 0.50)),
                milliseconds(percentile(latencies, 0.99)),
                milliseconds(*latencies.last().expect("latencies")),
                milliseconds(total / latencies.len() as u32),
            );
            let stored = Store::open_existing(&receiver.database)
                .expect("reopen")
                .unprocessed_deliveries()
                .expect("deliveries");
            let mut ids: Vec<&str> = stored.iter().map(|d| d.delivery_id.as_str()).collect();
            ids.sort();
            ids.dedup();
            assert_eq!(
                (stored.len(), ids.len()),
                ((rounds + 1) * concurrency, (rounds + 1) * concurrency),
                "{}: every delivery (the cold round's too) stored exactly once",
                receiver.label
            );
        }
        let p99 = |index: usize| milliseconds(percentile(&all[index], 0.99));
        println!(
            "p99 of the warm rounds: old {:.2} ms -> new {:.2} ms ({:.1}x)",
            p99(0),
            p99(1),
            p99(0) / p99(1)
        );
        for receiver in receivers {
            receiver.server.shutdown().await.expect("server stops");
        }
    });
}
