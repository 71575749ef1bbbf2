//! A control plane to call: the sample tenant in a real Git repository,
//! whose principals carry API identities, processed by the real daemon
//! (in-process, injected clock, simulated fleet) until Finance's Chrome
//! rollout has left its first ring; then `/api/v1` served over real HTTP
//! (or TLS) on 127.0.0.1:0 against a copy of that state, with the local
//! OIDC issuer of `issuer.rs`.

use crate::issuer::{AUDIENCE, Issuer};
use chrono::{DateTime, Duration, TimeZone as _, Utc};
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
use ringmaster::daemon::rollout::IntentState;
use ringmaster::model::Plane;
use ringmaster::store::Store;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

/// Finance's Chrome rollout: past its first ring in the fixture.
pub const CHROME: &str = "chrome-131-finance";
/// HR's benefits app rollout (Contoso HR).
pub const BENEFITS: &str = "benefits-3.4.2-hr";
/// Fabrikam's build agent: awaiting its exception, no ring started (staging).
pub const BUILD_AGENT: &str = "build-agent-2.8.0-engineering";

/// The principals of the sample tenant and their single role.
pub const PRINCIPALS: [(&str, &str); 12] = [
    ("alice", "publisher"),
    ("bob", "publisher"),
    ("carol", "cab-approver"),
    ("dave", "cab-approver"),
    ("erin", "publisher"),
    ("frank", "cab-approver"),
    ("grace", "security-reviewer"),
    ("heidi", "endpoint-ops"),
    ("ivan", "auditor"),
    ("judy", "packaging"),
    ("kenji", "endpoint-ops"),
    ("olivia", "admin"),
];

/// The OIDC subject (`oid`) of a sample principal.
pub fn oid(principal: &str) -> String {
    format!("oid-{principal}")
}

/// The certificate name of a sample principal (a service identity).
pub fn certificate_name(principal: &str) -> String {
    format!("{principal}.svc.contoso.test")
}

/// The prepared tenant: repository and daemon state, never changed.
struct Prepared {
    dir: tempfile::TempDir,
    /// The instant the daemon stopped at.
    now: DateTime<Utc>,
}

pub fn git(cwd: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args([
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.invalid",
        ])
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn daemon_config(root: &Path) -> DaemonConfig {
    DaemonConfig {
        repo: RepoLocation::Local(root.join("governed")),
        store: None,
        state_dir: root.join("state"),
        key: root.join("keys/ringmaster.key"),
        key_password: None,
        branch: "main".into(),
        evidence_branch: "evidence".into(),
        poll_interval: std::time::Duration::from_secs(30),
        siem: SiemSink::File(root.join("siem.jsonl")),
        evidence_remote: None,
        listen: None,
        github: None,
        planes: sim_settings().configs(&Plane::ALL),
        config_file: None,
        evidence_object_store: None,
        incidents: Default::default(),
        api: None,
        notifications: Vec::new(),
        git_credentials: Default::default(),
    }
}

fn sim_settings() -> SimSettings {
    SimSettings {
        seed: 11,
        install_delay: (
            std::time::Duration::from_secs(300),
            std::time::Duration::from_secs(3600),
        ),
        default_success_rate: 1.0,
    }
}

fn prepare() -> Prepared {
    let dir = tempfile::tempdir().expect("dir");
    let root = dir.path();
    let governed = root.join("governed");
    ringmaster::sample::write_to(&governed).expect("sample");
    for (principal, _) in PRINCIPALS {
        let path = governed.join(format!("principals/{principal}.yaml"));
        let mut text = std::fs::read_to_string(&path).expect("principal");
        text.push_str(&format!(
            "oidc_subjects: [{}]\ncertificate_subjects: [{}]\n",
            oid(principal),
            certificate_name(principal)
        ));
        std::fs::write(&path, text).expect("write principal");
    }
    git(&governed, &["init", "-q", "-b", "main"]);
    git(&governed, &["add", "-A"]);
    git(
        &governed,
        &["commit", "-q", "-m", "sample tenant with API identities"],
    );
    ringmaster::evidence::generate_keypair(&root.join("keys"), None, false).expect("keygen");
    let mut now = Utc
        .with_ymd_and_hms(2026, 11, 30, 8, 0, 0)
        .single()
        .expect("date");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut daemon = Daemon::open(daemon_config(root)).expect("daemon");
        for _ in 0..200 {
            daemon.step(now).await.expect("step");
            let record = daemon.store().get_intent(CHROME).expect("store");
            let left_first_ring = record
                .map(|record| IntentState::from_record(&record))
                .and_then(|state| state.run)
                .is_some_and(|run| run.rings.iter().skip(1).any(|r| r.started_at().is_some()));
            if left_first_ring {
                return;
            }
            now += Duration::hours(1);
        }
        panic!("{CHROME} never left its first ring");
    });
    Prepared { dir, now }
}

fn prepared() -> &'static Prepared {
    static PREPARED: OnceLock<Prepared> = OnceLock::new();
    // Built on its own thread: a tokio test's runtime cannot block on another.
    PREPARED.get_or_init(|| std::thread::spawn(prepare).join().expect("prepare"))
}

/// A private copy of the prepared tenant.
pub struct Tenant {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    /// The instant the daemon stopped at.
    pub now: DateTime<Utc>,
}

impl Tenant {
    pub fn new() -> Tenant {
        let prepared = prepared();
        let dir = tempfile::tempdir().expect("dir");
        let status = Command::new("cp")
            .arg("-a")
            .arg(prepared.dir.path().join("."))
            .arg(dir.path())
            .status()
            .expect("cp");
        assert!(status.success(), "copying the prepared tenant");
        Tenant {
            root: dir.path().to_path_buf(),
            _dir: dir,
            now: prepared.now,
        }
    }

    pub fn governed(&self) -> PathBuf {
        self.root.join("governed")
    }

    pub fn state(&self) -> PathBuf {
        self.root.join("state")
    }

    pub fn store(&self) -> Store {
        Store::open_existing(&self.state().join("ringmaster.db")).expect("store")
    }

    pub fn siem_lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.root.join("siem.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).expect("SIEM line is JSON"))
            .collect()
    }

    /// The daemon on this copy (to carry out what the API queued).
    pub fn daemon(&self) -> Daemon {
        Daemon::open(daemon_config(&self.root)).expect("daemon")
    }

    /// Counts that a refused request must leave as they were.
    pub fn footprint(&self) -> Footprint {
        let connection = rusqlite::Connection::open_with_flags(
            self.state().join("ringmaster.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("database");
        let count = |sql: &str| -> i64 {
            connection
                .query_row(sql, [], |row| row.get(0))
                .expect("count")
        };
        Footprint {
            events: count("SELECT COUNT(*) FROM events"),
            operator_requests: count("SELECT COUNT(*) FROM operator_requests"),
            reconcile_requests: count("SELECT COUNT(*) FROM reconcile_requests"),
            incidents: count("SELECT COUNT(*) FROM incidents"),
            siem_lines: self.siem_lines().len(),
        }
    }
}

/// What a write leaves behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    pub events: i64,
    pub operator_requests: i64,
    pub reconcile_requests: i64,
    pub incidents: i64,
    pub siem_lines: usize,
}

/// How the API is served in a test.
pub struct ApiOptions {
    pub role_source: RoleSource,
    pub limits: LimitSettings,
    /// The OIDC issuer; `None`: certificates only.
    pub oidc: Option<OidcSettings>,
    pub tls: Option<ringmaster::api::tls::TlsSettings>,
}

impl ApiOptions {
    pub fn for_issuer(issuer: &Issuer) -> ApiOptions {
        let mut settings = OidcSettings::new(issuer.url.clone(), vec![AUDIENCE.into()]);
        // Tests rotate keys at once; the refetch floor is tested on its own.
        settings.jwks_min_refresh = std::time::Duration::ZERO;
        ApiOptions {
            role_source: RoleSource::Repository,
            limits: LimitSettings::default(),
            oidc: Some(settings),
            tls: None,
        }
    }
}

/// `/api/v1` on 127.0.0.1:0 against `tenant`.
pub struct Api {
    pub _server: ApiServer,
    pub base: String,
    pub http: reqwest::Client,
}

pub async fn serve(tenant: &Tenant, options: ApiOptions) -> Api {
    let oidc = options
        .oidc
        .map(|settings| OidcValidator::new(settings).expect("validator"));
    let context = ApiContext::new(ApiContextParts {
        database: ringmaster::store::StoreLocation::Sqlite(tenant.state().join("ringmaster.db")),
        connections: 2,
        governed: GovernedSource::new(tenant.governed(), "main".into()),
        evidence_repository: tenant.governed(),
        evidence_branch: "evidence".into(),
        authenticator: Authenticator {
            oidc,
            role_source: options.role_source,
        },
        limits: Limits::new(options.limits),
        clock: Arc::new(Utc::now),
        siem: ringmaster::daemon::siem::Siem::new(SiemSink::File(tenant.root.join("siem.jsonl"))),
        on_request: Box::new(|| {}),
        health: HealthBoard::default(),
    })
    .expect("context");
    let router = ringmaster::api::v1::routes(Arc::new(context));
    let (server, scheme) = match &options.tls {
        Some(tls) => (
            ApiServer::start_tls(
                "127.0.0.1:0",
                router,
                ringmaster::api::tls::server_config(tls).expect("tls config"),
            )
            .await
            .expect("serve"),
            "https",
        ),
        None => (
            ApiServer::start("127.0.0.1:0", router)
                .await
                .expect("serve"),
            "http",
        ),
    };
    Api {
        base: format!("{scheme}://{}", server.local_addr),
        _server: server,
        http: reqwest::Client::new(),
    }
}

/// An answer: status, headers we look at, JSON body (or Null).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: serde_json::Value,
    pub bytes: Vec<u8>,
    pub request_id: Option<String>,
    pub retry_after: Option<String>,
}

impl Api {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> Answer {
        send(&self.http, method, &self.url(path), token, body).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.call(reqwest::Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: serde_json::Value) -> Answer {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
    }
}

pub async fn send(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> Answer {
    let mut request = http.request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the API answers");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let request_id = header("x-request-id");
    let retry_after = header("retry-after");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("body").to_vec();
    Answer {
        status,
        body: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        bytes,
        request_id,
        retry_after,
    }
}
