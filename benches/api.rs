//! `/api/v1` latency (a plain `harness = false` binary that prints figures).
//!
//! The tenant is the repository `ringmaster generate --intents N` writes
//! (default N = 10,000; `ringmaster::synthetic`, four business units), with
//! OIDC subjects for two of its principals. The real daemon judges the
//! tenant's first commit (config, principals, policies, applications,
//! entitlements: the rules in force); the N intents are committed next and
//! written to the daemon's SQLite store, each with a completed five-ring
//! rollout state (`benches/data/completed_intent_state.json`, one the daemon
//! made). Then `/api/v1` is served over real HTTP on 127.0.0.1 with real
//! RS256 tokens from a local OIDC issuer (JWKS fetched once, then cached),
//! with the default limits except the rate limits (raised so the benchmark
//! measures latency, not refusals), and R rounds (default 300) of:
//!
//! - `GET /api/v1/intents` (first page, 100 items) as the admin (reads all)
//!   and as the Finance publisher (a quarter of the intents in scope);
//! - walking every page of `GET /api/v1/intents?limit=1000` as the admin;
//! - an authenticated write: `POST /api/v1/intents/{id}/hold` by the Finance
//!   publisher (token validated, principal looked up in the rules in force,
//!   authorised, queued in the store, recorded as an event and a SIEM line).
//!
//! Requests are sequential (one client): the figures are per-request
//! latency, not throughput. `cargo bench --bench api`; environment:
//! `RINGMASTER_BENCH_INTENTS`, `RINGMASTER_BENCH_ROUNDS`.

#[path = "../tests/api/issuer.rs"]
#[allow(dead_code)]
mod issuer;

use chrono::{TimeZone as _, Utc};
use issuer::{AUDIENCE, Issuer, rsa_key};
use ringmaster::api::ApiServer;
use ringmaster::api::auth::oidc::{OidcSettings, OidcValidator};
use ringmaster::api::auth::{Authenticator, RoleSource};
use ringmaster::api::context::{ApiContext, ApiContextParts};
use ringmaster::api::governed::GovernedSource;
use ringmaster::api::health::HealthBoard;
use ringmaster::api::protect::{LimitSettings, Limits};
use ringmaster::daemon::Daemon;
use ringmaster::daemon::config::{DaemonConfig, RepoLocation, SiemSink};
use ringmaster::daemon::planes::SimSettings;
use ringmaster::model::Plane;
use ringmaster::store::{IntentUpsert, Store};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn environment_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn git(cwd: &std::path::Path, args: &[&str]) {
    let status = Command::new("git")
        .args([
            "-c",
            "user.name=Bench",
            "-c",
            "user.email=bench@example.invalid",
        ])
        .args(args)
        .current_dir(cwd)
        .status()
        .expect("git");
    assert!(status.success(), "git {args:?}");
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{what:<60} n={:<4} p50={:>8.2} ms  p99={:>8.2} ms  max={:>8.2} ms",
        samples.len(),
        ms(percentile(&samples, 0.50)),
        ms(percentile(&samples, 0.99)),
        ms(*samples.last().expect("samples")),
    );
}

const ADMIN: &str = "olivia";
const FINANCE_PUBLISHER: &str = "synthetic-publisher-finance";

fn main() {
    let intents = environment_number("RINGMASTER_BENCH_INTENTS", 10_000);
    let rounds = environment_number("RINGMASTER_BENCH_ROUNDS", 300);
    let dir = tempfile::tempdir().expect("dir");
    let root = dir.path();
    let governed = root.join("governed");
    // What `ringmaster generate` writes, rules first.
    let files = ringmaster::synthetic::files(intents);
    let (intent_files, rules_files): (Vec<_>, Vec<_>) = files
        .into_iter()
        .partition(|(path, _)| path.starts_with("intents/"));
    for (relative, text) in &rules_files {
        let path = governed.join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        let text = if *relative == format!("principals/{ADMIN}.yaml")
            || *relative == format!("principals/{FINANCE_PUBLISHER}.yaml")
        {
            let id = relative
                .trim_start_matches("principals/")
                .trim_end_matches(".yaml");
            format!("{text}oidc_subjects: [oid-{id}]\n")
        } else {
            text.clone()
        };
        std::fs::write(path, text).expect("write");
    }
    git(&governed, &["init", "-q", "-b", "main"]);
    git(&governed, &["add", "-A"]);
    git(&governed, &["commit", "-q", "-m", "bench tenant: rules"]);
    ringmaster::evidence::generate_keypair(&root.join("keys"), None, false).expect("keygen");
    let config = DaemonConfig {
        repo: RepoLocation::Local(governed.clone()),
        store: None,
        state_dir: root.join("state"),
        key: root.join("keys/ringmaster.key"),
        key_password: None,
        branch: "main".into(),
        evidence_branch: "evidence".into(),
        poll_interval: Duration::from_secs(30),
        siem: SiemSink::Off,
        evidence_remote: None,
        listen: None,
        github: None,
        planes: SimSettings {
            seed: 1,
            install_delay: (Duration::from_secs(300), Duration::from_secs(3600)),
            default_success_rate: 1.0,
        }
        .configs(&Plane::ALL),
        config_file: None,
        evidence_object_store: None,
        incidents: Default::default(),
        api: None,
        notifications: Vec::new(),
        git_credentials: Default::default(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let now = Utc
        .with_ymd_and_hms(2026, 11, 30, 8, 0, 0)
        .single()
        .expect("date");
    runtime.block_on(async {
        let mut daemon = Daemon::open(config).expect("daemon");
        daemon.step(now).await.expect("step");
    });
    // The intents: in the repository, and in the store with a rollout state.
    for (relative, text) in &intent_files {
        let path = governed.join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
    git(&governed, &["add", "-A"]);
    git(&governed, &["commit", "-q", "-m", "bench tenant: intents"]);
    let template: serde_json::Value =
        serde_json::from_str(include_str!("data/completed_intent_state.json")).expect("template");
    let database = root.join("state/ringmaster.db");
    let started = Instant::now();
    let mut finance = Vec::new();
    {
        let mut store = Store::open(&database).expect("store");
        for (_, text) in &intent_files {
            let intent: serde_yaml::Value = serde_yaml::from_str(text).expect("intent yaml");
            let field = |name: &str| intent[name].as_str().expect(name).to_owned();
            let scope = |name: &str| {
                intent["target_scope"][name]
                    .as_str()
                    .expect(name)
                    .to_owned()
            };
            let intent_id = field("intent_id");
            if scope("business_unit") == "bu-finance" {
                finance.push(intent_id.clone());
            }
            store
                .upsert_intent(
                    &IntentUpsert {
                        intent_id: intent_id.clone(),
                        application_id: field("application_id"),
                        acquisition_boundary: scope("acquisition_boundary"),
                        business_unit: scope("business_unit"),
                        version: field("version"),
                        content_sha256: ringmaster::evidence::sha256_hex(text.as_bytes()),
                        state: "completed".into(),
                        state_json: template.clone(),
                        decision: Some("ALLOW".into()),
                        risk_score: Some(41),
                    },
                    now,
                )
                .expect("upsert");
        }
    }
    println!(
        "tenant: `ringmaster generate --intents {intents}` ({} files); store: {} intents written in {:.1} s",
        rules_files.len() + intent_files.len(),
        intent_files.len(),
        started.elapsed().as_secs_f64()
    );
    println!("limits (the defaults): {:?}", LimitSettings::default());
    let limits = LimitSettings {
        per_address_per_minute: 1_000_000,
        per_principal_per_minute: 1_000_000,
        burst: 100_000,
        ..LimitSettings::default()
    };
    let total = intent_files.len();
    runtime.block_on(async move {
        let key = rsa_key("bench");
        let issuer = Issuer::start(&[&key]).await;
        let settings = OidcSettings::new(issuer.url.clone(), vec![AUDIENCE.into()]);
        let context = ApiContext::new(ApiContextParts {
            database: ringmaster::store::StoreLocation::Sqlite(database),
            connections: 4,
            governed: GovernedSource::new(governed.clone(), "main".into()),
            evidence_repository: governed.clone(),
            evidence_branch: "evidence".into(),
            authenticator: Authenticator {
                oidc: Some(OidcValidator::new(settings).expect("validator")),
                role_source: RoleSource::Repository,
            },
            limits: Limits::new(limits),
            clock: Arc::new(Utc::now),
            siem: ringmaster::daemon::siem::Siem::new(SiemSink::File(root.join("siem.jsonl"))),
            on_request: Box::new(|| {}),
            health: HealthBoard::default(),
        })
        .expect("context");
        let server = ApiServer::start(
            "127.0.0.1:0",
            ringmaster::api::v1::routes(Arc::new(context)),
        )
        .await
        .expect("serve");
        let base = format!("http://{}", server.local_addr);
        let http = reqwest::Client::new();
        let admin = issuer.token(&key, &format!("oid-{ADMIN}"));
        let publisher = issuer.token(&key, &format!("oid-{FINANCE_PUBLISHER}"));
        let get = |url: String, token: String| {
            let http = http.clone();
            async move {
                let started = Instant::now();
                let response = http
                    .get(url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .expect("answer");
                let status = response.status().as_u16();
                let body: serde_json::Value = response.json().await.expect("json");
                assert_eq!(status, 200, "{body}");
                (started.elapsed(), body)
            }
        };
        // Warm up (the JWKS fetch, the governed snapshot, SQLite's cache).
        for _ in 0..5 {
            get(format!("{base}/api/v1/intents"), admin.clone()).await;
        }
        let mut samples = Vec::new();
        for _ in 0..rounds {
            let (elapsed, body) = get(format!("{base}/api/v1/intents"), admin.clone()).await;
            assert_eq!(body["items"].as_array().map(Vec::len), Some(100));
            samples.push(elapsed);
        }
        report(
            &format!("GET /api/v1/intents (admin, {total} intents, 100/page)"),
            samples,
        );
        let mut samples = Vec::new();
        for _ in 0..rounds {
            let (elapsed, body) = get(format!("{base}/api/v1/intents"), publisher.clone()).await;
            assert!(
                body["items"]
                    .as_array()
                    .is_some_and(|items| items.len() == 100)
            );
            samples.push(elapsed);
        }
        report(
            "GET /api/v1/intents (Finance publisher, 1/4 in scope)",
            samples,
        );
        let mut samples = Vec::new();
        for _ in 0..(rounds / 30).max(3) {
            let started = Instant::now();
            let mut cursor: Option<String> = None;
            let mut count = 0;
            loop {
                let url = match &cursor {
                    Some(cursor) => format!("{base}/api/v1/intents?limit=1000&cursor={cursor}"),
                    None => format!("{base}/api/v1/intents?limit=1000"),
                };
                let (_, body) = get(url, admin.clone()).await;
                count += body["items"].as_array().map(Vec::len).unwrap_or(0);
                match body["next_cursor"].as_str() {
                    Some(next) => cursor = Some(next.to_owned()),
                    None => break,
                }
            }
            assert_eq!(count, total);
            samples.push(started.elapsed());
        }
        report("every page of /api/v1/intents?limit=1000 (admin)", samples);
        let mut samples = Vec::new();
        for index in 0..rounds {
            let intent = &finance[index % finance.len()];
            let started = Instant::now();
            let response = http
                .post(format!("{base}/api/v1/intents/{intent}/hold"))
                .bearer_auth(&publisher)
                .json(&serde_json::json!({"reason": "benchmark hold"}))
                .send()
                .await
                .expect("answer");
            let status = response.status().as_u16();
            let body = response.text().await.expect("body");
            samples.push(started.elapsed());
            assert_eq!(
                status, 202,
                "a Finance intent, held by the Finance publisher: {body}"
            );
        }
        report(
            "POST /api/v1/intents/{id}/hold (authenticated write)",
            samples,
        );
        server.shutdown().await.expect("shutdown");
    });
}
