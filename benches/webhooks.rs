//! Webhook acknowledgement latency (a plain `harness = false` binary that
//! prints figures): the real `/webhooks/github` receiver on 127.0.0.1 with a
//! real SQLite state store (WAL, `synchronous=FULL`), hit by N concurrent
//! signed deliveries of the recorded `pull_request` payload, each with its
//! own delivery id. Reports the latency of each 202 (p50, p95, p99, max) and
//! the wall time of the burst, per round; then a burst of replays (every
//! delivery id already seen).
//!
//! `cargo bench --bench webhooks`; environment:
//! `RINGMASTER_BENCH_CONCURRENCY` (N, default 100),
//! `RINGMASTER_BENCH_ROUNDS` (default 5).

use ringmaster::api::{self, ApiServer, WebhookState};
use ringmaster::forge::{WebhookSecret, signature};
use ringmaster::store::Store;
use std::sync::{Arc, Mutex};
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

fn main() {
    let concurrency = environment_number("RINGMASTER_BENCH_CONCURRENCY", 100);
    let rounds = environment_number("RINGMASTER_BENCH_ROUNDS", 5);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let state = tempfile::tempdir().expect("state dir");
        let store = Store::open(&state.path().join("ringmaster.db")).expect("store");
        let webhooks = Arc::new(WebhookState {
            secret: WebhookSecret::new(SECRET),
            repository: "Codertocat/Hello-World".into(),
            store: Mutex::new(store),
            clock: Arc::new(chrono::Utc::now),
            on_enqueued: Box::new(|| {}),
        });
        let server = ApiServer::start("127.0.0.1:0", api::router(Some(webhooks)))
            .await
            .expect("server");
        let url = format!("http://{}/webhooks/github", server.local_addr);
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
            "webhook acknowledgement: {concurrency} concurrent deliveries of {} bytes, {} core(s)",
            payload.len(),
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        );
        let mut all = Vec::new();
        for round in 0..rounds {
            let bodies: Vec<(String, Vec<u8>, String)> = (0..concurrency)
                .map(|i| {
                    let delivery = format!("round-{round}-delivery-{i}");
                    (
                        delivery,
                        payload.clone(),
                        signature::sign(&secret, &payload),
                    )
                })
                .collect();
            let started = Instant::now();
            let latencies = burst(&client, &url, bodies).await;
            let wall = started.elapsed();
            report(&format!("round {round} (new)"), &latencies, wall);
            all.extend(latencies);
        }
        all.sort();
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
        let latencies = burst(&client, &url, replays).await;
        report("replays (duplicates)", &latencies, started.elapsed());
        let total: Duration = all.iter().sum();
        println!(
            "all new deliveries: n={} p50 {:.2} ms p99 {:.2} ms max {:.2} ms mean {:.2} ms",
            all.len(),
            milliseconds(percentile(&all, 0.50)),
            milliseconds(percentile(&all, 0.99)),
            milliseconds(*all.last().expect("latencies")),
            milliseconds(total / all.len() as u32),
        );
        server.shutdown().await.expect("server stops");
    });
}
