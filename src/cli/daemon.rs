//! `serve`, `keygen`, `verify` and `events`: the daemon and the audit trail.

use super::Format;
use crate::daemon::config::{RawConfig, Secret};
use crate::daemon::{Clock, Daemon};
use crate::evidence::{ExpectedHead, VerifyReport, VerifyingKey, generate_keypair};
use crate::source::GovernedRepo;
use crate::store::{EventFilter, Store};
use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The HTTP server and GitHub flags of `serve`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ForgeArgs {
    /// Address the HTTP server (/healthz, /webhooks/github) listens on, e.g.
    /// 127.0.0.1:8080 (port 0 picks a free port; the address is printed).
    #[arg(long)]
    pub listen: Option<String>,
    /// GitHub repository (owner/name) whose pull requests ringmaster checks.
    #[arg(long)]
    pub github_repository: Option<String>,
    /// GitHub API base URL [default: https://api.github.com]; for GitHub
    /// Enterprise Server https://HOST/api/v3.
    #[arg(long)]
    pub github_api_url: Option<String>,
    /// GitHub App id (posts check runs).
    #[arg(long)]
    pub github_app_id: Option<u64>,
    /// The GitHub App's installation id.
    #[arg(long)]
    pub github_installation_id: Option<u64>,
    /// File holding the GitHub App's private key (PEM).
    #[arg(long)]
    pub github_app_key_file: Option<PathBuf>,
    /// File holding a GitHub token (posts commit statuses); or set $RINGMASTER_GITHUB_TOKEN.
    #[arg(long)]
    pub github_token_file: Option<PathBuf>,
    /// File holding the webhook secret; or set $RINGMASTER_GITHUB_WEBHOOK_SECRET.
    #[arg(long)]
    pub github_webhook_secret_file: Option<PathBuf>,
    /// Serve /api/v1 on this address [default: the --listen address]. The
    /// API needs --oidc-issuer/--oidc-audience and/or --api-client-ca
    /// (more settings: the config file's `api:` section, docs/api.md).
    #[arg(long)]
    pub api_listen: Option<String>,
    /// OIDC issuer of API bearer tokens, e.g.
    /// https://login.microsoftonline.com/<tenant>/v2.0.
    #[arg(long)]
    pub oidc_issuer: Option<String>,
    /// Accepted audience of API tokens (repeatable), e.g. api://ringmaster.
    #[arg(long)]
    pub oidc_audience: Vec<String>,
    /// PEM certificate chain: the API listener speaks TLS.
    #[arg(long)]
    pub api_tls_cert: Option<PathBuf>,
    /// PEM private key of --api-tls-cert.
    #[arg(long)]
    pub api_tls_key: Option<PathBuf>,
    /// PEM CA of the client certificates the API accepts (mutual TLS).
    #[arg(long)]
    pub api_client_ca: Option<PathBuf>,
    /// File holding a token (32+ characters) that may scrape /metrics
    /// without an OIDC token or certificate, when the API's authentication
    /// guards the status page and /metrics (docs/api.md).
    #[arg(long)]
    pub metrics_token_file: Option<PathBuf>,
    /// File holding the HTTPS token of the Git remotes (read at every fetch
    /// and push); or set $RINGMASTER_GIT_TOKEN.
    #[arg(long)]
    pub git_token_file: Option<PathBuf>,
    /// SSH private key of the Git remotes (with --git-known-hosts-file).
    #[arg(long)]
    pub git_ssh_key_file: Option<PathBuf>,
    /// OpenSSH known_hosts file the SSH remote's host key must be in.
    #[arg(long)]
    pub git_known_hosts_file: Option<PathBuf>,
}

impl ForgeArgs {
    /// These flags as a config layer (every other setting unset).
    pub fn into_raw_config(self) -> RawConfig {
        let api = self.api_flags();
        RawConfig {
            listen: self.listen,
            github_repository: self.github_repository,
            github_api_url: self.github_api_url,
            github_app_id: self.github_app_id,
            github_installation_id: self.github_installation_id,
            github_app_key_file: self.github_app_key_file,
            github_token_file: self.github_token_file,
            github_webhook_secret_file: self.github_webhook_secret_file,
            api,
            git_credentials: (self.git_token_file.is_some()
                || self.git_ssh_key_file.is_some()
                || self.git_known_hosts_file.is_some())
            .then(|| crate::daemon::config::RawGitCredentials {
                token_file: self.git_token_file,
                ssh_key_file: self.git_ssh_key_file,
                ssh_known_hosts_file: self.git_known_hosts_file,
                ..Default::default()
            }),
            ..RawConfig::default()
        }
    }
}

impl ForgeArgs {
    /// The API flags as a layer, when any is given.
    fn api_flags(&self) -> Option<crate::daemon::api_config::RawApi> {
        let any = self.api_listen.is_some()
            || self.oidc_issuer.is_some()
            || !self.oidc_audience.is_empty()
            || self.api_tls_cert.is_some()
            || self.api_tls_key.is_some()
            || self.api_client_ca.is_some()
            || self.metrics_token_file.is_some();
        any.then(|| crate::daemon::api_config::RawApi {
            listen: self.api_listen.clone(),
            oidc_issuer: self.oidc_issuer.clone(),
            oidc_audiences: (!self.oidc_audience.is_empty()).then(|| self.oidc_audience.clone()),
            tls_certificate: self.api_tls_cert.clone(),
            tls_key: self.api_tls_key.clone(),
            client_ca: self.api_client_ca.clone(),
            metrics_token_file: self.metrics_token_file.clone(),
            ..Default::default()
        })
    }
}

/// Where `verify` finds the WORM bucket to check.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ObjectStoreArgs {
    /// The bucket as ENDPOINT/BUCKET (path style), e.g.
    /// https://s3.eu-central-1.amazonaws.com/contoso-evidence.
    #[arg(long, value_name = "URL")]
    pub object_store: Option<String>,
    /// A daemon config file whose `evidence_object_store:` section names the
    /// bucket (the flags below override it).
    #[arg(long, value_name = "FILE")]
    pub object_store_config: Option<PathBuf>,
    /// The bucket's region [default: us-east-1].
    #[arg(long)]
    pub region: Option<String>,
    /// Days each record must stay locked from its creation.
    #[arg(long)]
    pub retention_days: Option<u32>,
    /// The lock mode required [default: compliance].
    #[arg(long, value_enum)]
    pub lock_mode: Option<crate::worm::LockMode>,
    /// AWS shared-credentials file [default: the AWS_* environment].
    #[arg(long, value_name = "FILE")]
    pub object_store_credentials: Option<PathBuf>,
    /// Key prefix inside the bucket.
    #[arg(long)]
    pub object_store_prefix: Option<String>,
}

impl ObjectStoreArgs {
    /// The configured store, if any was named.
    pub fn config(&self) -> anyhow::Result<Option<crate::worm::ObjectStoreConfig>> {
        let mut raw = match &self.object_store_config {
            Some(path) => match RawConfig::from_file(path)?.evidence_object_store {
                Some(section) => section,
                None => anyhow::bail!("{} has no evidence_object_store section", path.display()),
            },
            None if self.object_store.is_none() => return Ok(None),
            None => crate::worm::RawObjectStoreConfig::default(),
        };
        if let Some(url) = &self.object_store {
            let parsed = url::Url::parse(url)
                .with_context(|| format!("--object-store {url:?} is not a URL"))?;
            let mut segments: Vec<&str> = parsed
                .path_segments()
                .map(|segments| segments.filter(|s| !s.is_empty()).collect())
                .unwrap_or_default();
            if segments.is_empty() {
                anyhow::bail!("--object-store {url:?} names no bucket: use ENDPOINT/BUCKET");
            }
            let bucket = segments.remove(0).to_owned();
            let mut endpoint = parsed.clone();
            endpoint.set_path("");
            endpoint.set_query(None);
            raw.url = Some(endpoint.as_str().trim_end_matches('/').to_owned());
            raw.bucket = Some(bucket);
            if !segments.is_empty() && self.object_store_prefix.is_none() {
                raw.prefix = Some(format!("{}/", segments.join("/")));
            }
        }
        let flags = crate::worm::RawObjectStoreConfig {
            kind: raw.kind,
            region: self.region.clone(),
            retention_days: self.retention_days,
            mode: self.lock_mode,
            credentials_file: self.object_store_credentials.clone(),
            prefix: self.object_store_prefix.clone(),
            ..crate::worm::RawObjectStoreConfig::default()
        };
        let config = raw
            .layered(flags)
            .validate(|name| std::env::var(name).ok())
            .map_err(anyhow::Error::msg)?;
        Ok(Some(config))
    }
}

/// Environment variable holding the signing key's password, if it has one.
pub const KEY_PASSWORD_VARIABLE: &str = "RINGMASTER_KEY_PASSWORD";

fn key_password() -> Option<Secret> {
    std::env::var(KEY_PASSWORD_VARIABLE).ok().map(Secret::new)
}

pub(super) fn serve(
    flags: RawConfig,
    config_file: Option<&Path>,
    once: bool,
    clock: Clock,
) -> anyhow::Result<ExitCode> {
    // Transparent huge pages make the allocator's arenas resident 2 MiB at
    // a time. A first `serve --once` of a 10,000-intent tenant peaked at
    // 245 MiB with them and 212 MiB without, and ran no slower (22.4 s
    // against 24.2 s). Off for this process and the policy workers it
    // starts, as for `validate`; best effort.
    let _ = rustix::thread::disable_transparent_huge_pages(true);
    let file = match config_file {
        Some(path) => RawConfig::from_file(path)?,
        None => RawConfig::default(),
    };
    let environment = RawConfig::from_environment(|name| std::env::var(name).ok())?;
    let layered = file.layered(environment).layered(flags);
    let lease = crate::daemon::config::leader_lease(layered.leader_lease_seconds)?;
    let mut config = layered.validate(key_password())?;
    config.config_file = config_file.map(Path::to_path_buf);
    let mut daemon = Daemon::open(config)?;
    daemon.set_leader_lease(lease);
    // Multi-threaded: processing runs in blocking sections that may call GitHub.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    if once {
        let step = runtime.block_on(daemon.run_once(clock.clone()))?;
        match step.leadership {
            Some((true, epoch)) => println!("leader (epoch {epoch})"),
            Some((false, epoch)) => {
                println!("standby: another replica leads (epoch {epoch}); nothing done");
                return Ok(ExitCode::SUCCESS);
            }
            None => {}
        }
        if step.commits.is_empty() {
            println!("nothing to process: the tracked branch has no new commits");
        }
        for report in &step.commits {
            println!(
                "{} {}: {} evidence record(s), {} unchanged, {} error(s)",
                &report.commit[..10],
                report.outcome.as_str(),
                report.records.len(),
                report.unchanged,
                report.errors
            );
            for record in &report.records {
                println!(
                    "  #{} {} {}",
                    record.sequence,
                    crate::escape::terminal(record.intent_id.as_deref().unwrap_or("-")),
                    crate::escape::terminal(&record.pack_path)
                );
            }
        }
        println!(
            "rollout: {} effect(s) performed",
            step.drive.effects_performed
        );
        return Ok(ExitCode::SUCCESS);
    }
    runtime.block_on(async {
        let shutdown = shutdown_signal()?;
        daemon
            .run(clock, shutdown)
            .await
            .map_err(anyhow::Error::from)
    })?;
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM or Ctrl-C. Only the binary installs signal handlers. The handlers
/// are registered before this returns, so a signal that arrives while the
/// daemon starts up is not lost (nor handled by the default action).
pub(super) fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("install the SIGTERM handler")?;
    #[cfg(unix)]
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("install the SIGINT handler")?;
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = terminate.recv() => {},
            _ = interrupt.recv() => {},
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    })
}

pub(super) fn keygen(out: &Path, force: bool) -> anyhow::Result<ExitCode> {
    let password = key_password();
    let paths = generate_keypair(out, password.as_ref().map(Secret::expose), force)?;
    println!(
        "secret key: {} (mode 0600{})",
        paths.secret_key.display(),
        if password.is_some() {
            ", encrypted with $RINGMASTER_KEY_PASSWORD"
        } else {
            ", unencrypted"
        }
    );
    println!("public key: {}", paths.public_key.display());
    println!(
        "check a pack with: minisign -Vm PACK.json -x PACK.json.minisig -p {}",
        paths.public_key.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub(super) fn verify(
    repo: &Path,
    public_key: &Path,
    branch: &str,
    state: Option<&PathBuf>,
    object_store: &ObjectStoreArgs,
) -> anyhow::Result<ExitCode> {
    let object_store = object_store.config()?;
    let key = VerifyingKey::load(public_key)?;
    let governed = GovernedRepo::open(repo)?;
    // Never created: a missing or empty state database is an error.
    let store = match state {
        Some(dir) => Some(Store::open_existing_location(&super::store_location(dir))?),
        None => None,
    };
    let expected = match &store {
        Some(store) => store.evidence_head()?.map(|head| ExpectedHead {
            sequence: head.sequence,
            pack_sha256: head.pack_sha256,
        }),
        None => None,
    };
    let progress = super::progress::Reporter::on_stderr();
    let report = crate::evidence::verify_branch_with_progress(
        governed.repository.path(),
        branch,
        &key,
        expected,
        &progress,
    )?;
    drop(progress);
    if report.ok {
        println!(
            "{}: {} record(s) verified; signatures, hash chain, sequence and append-only history hold",
            report.branch, report.records_checked
        );
        if report.simulated_records > 0 {
            println!(
                "{}: {} of them from simulated planes (plane_mode: simulated): nothing was installed on a device for those",
                report.branch, report.simulated_records
            );
        } else {
            println!("{}: no record from a simulated plane", report.branch);
        }
    } else if let Some(failure) = &report.first_failure {
        println!(
            "{}: verification FAILED after {} good record(s)",
            report.branch, report.records_checked
        );
        // Paths and reasons come from the branch, which anyone who can
        // push may have written.
        println!("{}", crate::escape::terminal(&failure.to_string()));
    }
    let mut ok = report.ok;
    if let Some(store) = &store {
        let check = state_check(store, &report, governed.repository.path(), branch)?;
        for line in &check.lines {
            println!("{line}");
        }
        ok &= check.ok;
    }
    if let Some(config) = object_store {
        let worm = crate::evidence::worm::WormCopy::open(&config)?;
        let branch = crate::evidence::EvidenceBranch::open(governed.repository.path(), branch)?;
        let report = crate::evidence::verify_object_store(&branch, &worm)?;
        println!("{report}");
        ok &= report.ok();
    }
    Ok(ExitCode::from(if ok { 0 } else { 1 }))
}

/// What `verify --state` found in the state store's event log.
struct StateCheck {
    ok: bool,
    lines: Vec<String>,
}

/// The event log checked like the evidence branch: the whole hash chain,
/// the append-only triggers, and the anchor of the last record that has
/// one (the log must still hold that event with that hash: a truncated,
/// emptied or rewritten log fails, whatever was done to its hashes).
fn state_check(
    store: &Store,
    report: &VerifyReport,
    repository: &Path,
    branch: &str,
) -> anyhow::Result<StateCheck> {
    let chain = store.verify_event_chain()?;
    let mut lines = Vec::new();
    let mut ok = true;
    if let Some(broken) = &chain.first_break {
        ok = false;
        lines.push(format!(
            "event log: verification FAILED after {} good event(s): {broken}",
            chain.events_checked
        ));
    }
    if !chain.append_only_triggers_present {
        ok = false;
        lines.push(
            "event log: the triggers that keep events append-only were dropped: the database was tampered with"
                .to_owned(),
        );
    }
    // A store behind the branch (restored from a backup) is named as such
    // first: its log lacks the events the newer records anchor.
    let mut behind = false;
    if report.ok {
        let evidence = crate::evidence::EvidenceBranch::open(repository, branch)?;
        use crate::recovery::standing::Standing;
        match crate::recovery::standing::standing(store, &evidence)? {
            standing @ (Standing::Behind { .. } | Standing::Empty { .. }) => {
                ok = false;
                behind = true;
                if let Some(message) = standing.refusal() {
                    lines.push(format!("state store: {message}"));
                }
            }
            Standing::Lagging {
                store_sequence,
                branch_sequence,
            } => lines.push(format!(
                "state store: evidence head #{store_sequence}, the branch's #{branch_sequence}: \
                 records written by this store's daemon that it has not noted yet (it does at its next step)"
            )),
            Standing::Current { .. } | Standing::Ahead { .. } => {}
        }
    }
    // After a rebuild the event log starts again; the rebuild's signed
    // record anchors it like any other.
    let rebuilt = crate::recovery::standing::last_rebuild(store)?;
    if let Some(rebuilt) = &rebuilt {
        lines.push(format!(
            "state store: rebuilt from the evidence branch up to record #{} on {} (event #{}); \
             the events of records #{}..#{} are anchored on the evidence branch only",
            rebuilt.evidence_sequence,
            rebuilt.at.to_rfc3339(),
            rebuilt.event_seq,
            rebuilt.from_sequence + 1,
            rebuilt.evidence_sequence
        ));
    }
    match &report.event_chain_anchor {
        _ if behind => {}
        Some((record, anchor)) => match store.event_hash(anchor.seq)? {
            None => {
                ok = false;
                lines.push(format!(
                    "event log: evidence record #{record} anchors event #{} (hash {}), but the log ends at #{}: events were removed (truncated or emptied)",
                    anchor.seq,
                    anchor.hash,
                    store.last_event()?.map_or(0, |event| event.seq)
                ));
            }
            Some(hash) if hash != anchor.hash => {
                ok = false;
                lines.push(format!(
                    "event log: event #{} has hash {hash}, but evidence record #{record} anchored it as {}: the log was rewritten",
                    anchor.seq, anchor.hash
                ));
            }
            Some(_) if ok => lines.push(format!(
                "event log: {} event(s), hash chain intact, anchored by evidence record #{record} at event #{}",
                chain.events_checked, anchor.seq
            )),
            Some(_) => {}
        },
        None if report.records_checked > 0 && chain.events_checked == 0 && ok => {
            ok = false;
            lines.push(format!(
                "event log: empty, but the evidence branch holds {} record(s): the log was emptied",
                report.records_checked
            ));
        }
        None if ok => lines.push(format!(
            "event log: {} event(s), hash chain intact (no evidence record anchors it yet)",
            chain.events_checked
        )),
        None => {}
    }
    Ok(StateCheck { ok, lines })
}

pub(super) fn events(
    state: &Path,
    intent: Option<String>,
    correlation_id: Option<String>,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let store = Store::open_existing_location(&super::store_location(state))?;
    let events = store.events(&EventFilter {
        intent_id: intent,
        correlation_id,
        since_seq: None,
        limit: None,
    })?;
    match format {
        Format::Json | Format::Github => println!("{}", serde_json::to_string_pretty(&events)?),
        Format::Human => {
            let values: Vec<serde_json::Value> = events
                .iter()
                .map(serde_json::to_value)
                .collect::<Result<_, _>>()?;
            print!("{}", events_table(&values));
        }
    }
    // The chain is checked whatever the format; a broken one fails the command.
    let chain = store.verify_event_chain()?;
    let intact = chain.is_intact();
    match (&chain.first_break, format) {
        (None, Format::Human) if intact => {
            println!("\nevent chain: {} event(s), intact", chain.events_checked)
        }
        (Some(broken), _) => eprintln!(
            "event chain BROKEN after {} good event(s): {broken}",
            chain.events_checked
        ),
        (None, _) if !intact => eprintln!(
            "event chain: the triggers that keep events append-only were dropped: the database was tampered with"
        ),
        (None, _) => {}
    }
    Ok(if intact {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The human table of events (local, or from `/api/v1/events`).
pub(super) fn events_table(events: &[serde_json::Value]) -> String {
    let text = |value: &serde_json::Value| value.as_str().unwrap_or_default().to_owned();
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|event| {
            let time = event["timestamp"]
                .as_str()
                .and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok())
                .map(|at| at.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default();
            vec![
                event["seq"].as_u64().unwrap_or(0).to_string(),
                time,
                text(&event["event_type"]),
                event["intent_id"].as_str().unwrap_or("-").to_owned(),
                text(&event["outcome"]),
                summary(&event["details"]),
            ]
        })
        .collect();
    super::output::table(
        &["SEQ", "TIME", "EVENT", "INTENT", "OUTCOME", "DETAILS"],
        &rows,
    )
}

fn summary(details: &serde_json::Value) -> String {
    let pick = [
        "decision",
        "risk_score",
        "evidence_sequence",
        "commit",
        "reason",
        "errors",
    ];
    pick.iter()
        .filter_map(|key| {
            details.get(key).map(|value| match value {
                serde_json::Value::String(text) if text.len() > 12 && *key == "commit" => {
                    format!("{key}={}", &text[..10])
                }
                serde_json::Value::String(text) => format!("{key}={text}"),
                other => format!("{key}={other}"),
            })
        })
        .collect::<Vec<_>>()
        .join(" ")
}
