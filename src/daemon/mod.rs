//! The daemon: one closed event loop around the processing of the tracked
//! branch (and, as ringmaster grows, the orchestrator's effects).
//!
//! `serve --once` processes everything pending and exits; the long-running
//! form waits for [`Event`]s — the repository changed (file watcher), the
//! poll timer fired (safety net, and fetch for remotes), shutdown — and
//! handles each in one place. Nothing here reads the wall clock: `main`
//! passes a clock in.

pub mod config;
pub mod github;
pub mod github_config;
pub mod performer;
pub mod planes;
pub mod process;
pub mod reconcile;
pub mod record;
pub mod rollout;
pub mod siem;

use crate::evidence::{EvidenceBranch, SigningKey};
use crate::model::Snapshot;
use crate::source::GovernedRepo;
use crate::source::watch;
use crate::store::Store;
use chrono::{DateTime, Utc};
use config::{DaemonConfig, RepoLocation};
use planes::{PlaneRegistry, Planes};
use process::{CommitReport, PausePoint, ProcessError, Processor};
use siem::Siem;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::mpsc;

/// The wall clock, injected (tests pass a fixed or stepping clock).
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// Everything that can wake the daemon.
#[derive(Debug)]
pub enum Event {
    /// The watcher saw the repository's refs move.
    RepoChanged,
    /// The poll interval elapsed.
    Tick,
    /// A forge webhook delivery was queued in the store (see `github`).
    Webhook,
    Shutdown,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("state directory {path}: {message}")]
    State { path: PathBuf, message: String },
    #[error("signing key {path}: {source}")]
    Key {
        path: PathBuf,
        source: crate::evidence::EvidenceError,
    },
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),
    #[error(transparent)]
    Store(Box<crate::store::StoreError>),
    #[error(transparent)]
    Evidence(#[from] crate::evidence::EvidenceError),
    #[error(transparent)]
    Process(Box<ProcessError>),
    #[error("watching the repository: {0}")]
    Watch(String),
    #[error("execution planes: {0}")]
    Planes(String),
    #[error(transparent)]
    Drive(#[from] rollout::DriveError),
    #[error(transparent)]
    Forge(Box<crate::forge::ForgeError>),
    #[error("HTTP server: {0}")]
    Api(String),
}

impl From<crate::store::StoreError> for DaemonError {
    fn from(error: crate::store::StoreError) -> Self {
        DaemonError::Store(Box::new(error))
    }
}

impl From<ProcessError> for DaemonError {
    fn from(error: ProcessError) -> Self {
        DaemonError::Process(Box::new(error))
    }
}

/// The daemon's long-lived state.
pub struct Daemon {
    pub config: DaemonConfig,
    repo: GovernedRepo,
    evidence: EvidenceBranch,
    signer: SigningKey,
    store: Store,
    siem: Siem,
    pause_at: Option<PausePoint>,
    /// The execution planes: the configured connectors, and the planes of
    /// the last good snapshot (rebuilt when either changes).
    planes: PlaneRegistry,
    /// The last known good snapshot and its commit.
    good: Option<(String, Snapshot)>,
    next_reconcile: Option<DateTime<Utc>>,
    /// Whether in-flight work of a previous process was re-sent.
    recovered: bool,
    /// GitHub, when configured (connected by `connect_forge`).
    forge: Option<crate::forge::Forge>,
    /// What the evidence remote is known to hold.
    push: performer::EvidencePush,
}

/// What one step of the daemon did.
#[derive(Debug, Clone, Default)]
pub struct StepReport {
    pub commits: Vec<CommitReport>,
    pub drive: rollout::DriveReport,
    pub reconcile: Option<reconcile::ReconcileReport>,
}

impl Daemon {
    /// Opens (or creates) the state directory, the store, the repository (a
    /// mirror of it for remotes) and the evidence branch, and loads the key.
    pub fn open(config: DaemonConfig) -> Result<Daemon, DaemonError> {
        std::fs::create_dir_all(&config.state_dir).map_err(|error| DaemonError::State {
            path: config.state_dir.clone(),
            message: error.to_string(),
        })?;
        let signer = SigningKey::load(
            &config.key,
            config.key_password.as_ref().map(|p| p.expose()),
        )
        .map_err(|source| DaemonError::Key {
            path: config.key.clone(),
            source,
        })?;
        let store = Store::open(&config.state_dir.join("ringmaster.db"))?;
        let repo = match &config.repo {
            RepoLocation::Local(path) => GovernedRepo::open(path)?,
            RepoLocation::Remote(url) => {
                let mirror = config.state_dir.join("mirror.git");
                crate::source::remote::open_mirror(url, &mirror, &config.branch)?;
                GovernedRepo::open(&mirror)?
            }
        };
        let evidence = EvidenceBranch::open(repo.repository.path(), &config.evidence_branch)?;
        let plane_registry = PlaneRegistry::open(
            config.planes.clone(),
            config.config_file.clone(),
            config.state_dir.clone(),
        )
        .map_err(|error| DaemonError::Planes(error.to_string()))?;
        check_planes_listed(&repo, &store, &config.branch, &plane_registry)?;
        let siem = Siem::new(config.siem.clone());
        let pause_at = std::env::var("RINGMASTER_TEST_PAUSE_AT")
            .ok()
            .as_deref()
            .and_then(PausePoint::named);
        Ok(Daemon {
            config,
            repo,
            evidence,
            signer,
            store,
            siem,
            pause_at,
            planes: plane_registry,
            good: None,
            next_reconcile: None,
            recovered: false,
            forge: None,
            push: performer::EvidencePush::default(),
        })
    }

    pub fn planes(&self) -> Option<&Planes> {
        self.planes.current()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn store_mut(&mut self) -> &mut Store {
        &mut self.store
    }

    /// The last known good snapshot, once a commit has loaded cleanly.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.good.as_ref().map(|(_, snapshot)| snapshot)
    }

    /// Loads the last good commit's snapshot if it changed, re-reads the
    /// config file's `planes:`, and rebuilds the planes when either changed.
    fn refresh_good_snapshot(&mut self, now: DateTime<Utc>) -> Result<(), DaemonError> {
        self.reload_planes(now)?;
        let Some(good) = self.store.last_good_commit(&self.config.branch)? else {
            return Ok(());
        };
        let known = self
            .good
            .as_ref()
            .is_some_and(|(commit, _)| *commit == good.commit_sha);
        if !known {
            let oid =
                git2::Oid::from_str(&good.commit_sha).map_err(crate::source::SourceError::from)?;
            let (snapshot, _) = crate::model::load(&self.repo.entries_at(oid)?);
            self.good = Some((good.commit_sha, snapshot));
        }
        if let Some((commit, snapshot)) = &self.good {
            self.planes
                .refresh(commit, snapshot)
                .map_err(|error| DaemonError::Planes(error.to_string()))?;
        }
        Ok(())
    }

    /// Picks up a changed `planes:` section of the config file, with an event
    /// either way: rebuilt, or refused (the previous connectors stay).
    fn reload_planes(&mut self, now: DateTime<Utc>) -> Result<(), DaemonError> {
        let (outcome, details) = match self.planes.reload() {
            planes::Reload::Unchanged => return Ok(()),
            planes::Reload::Rebuilt(changed) => {
                let names: Vec<&str> = changed.iter().map(|plane| plane.as_str()).collect();
                tracing::info!(planes = ?names, "plane connectors rebuilt from the config file");
                (
                    crate::store::EventOutcome::Success,
                    serde_json::json!({"kind": "planes_reconfigured", "planes": names}),
                )
            }
            planes::Reload::Refused(reason) => {
                tracing::error!(%reason, "the config file's planes: cannot be used; keeping the previous connectors");
                (
                    crate::store::EventOutcome::Failure,
                    serde_json::json!({"kind": "planes_config_refused", "reason": reason,
                                       "action": "kept the previous connectors"}),
                )
            }
        };
        self.store.append_event(crate::store::NewEvent {
            correlation_id: "planes:config".into(),
            intent_id: None,
            event_type: crate::store::EventType::OperatorAction,
            timestamp: now,
            actor: process::ACTOR.into(),
            actor_role: "control-plane".into(),
            execution_plane: None,
            ring: None,
            outcome,
            details,
        })?;
        Ok(())
    }

    /// One step: process new commits, drive every rollout, reconcile when due,
    /// push evidence. What `serve --once` runs and the loop runs per event.
    pub async fn step(&mut self, now: DateTime<Utc>) -> Result<StepReport, DaemonError> {
        let commits = self.process_pending(now)?;
        self.refresh_good_snapshot(now)?;
        let mut report = StepReport {
            commits,
            ..StepReport::default()
        };
        let (Some((commit, snapshot)), Some(planes)) = (&self.good, self.planes.current()) else {
            self.report_to_forge(&report.commits).await;
            return Ok(report);
        };
        let mut driver = rollout::Driver {
            performer: performer::Performer {
                store: &mut self.store,
                evidence: &self.evidence,
                signer: &self.signer,
                siem: &mut self.siem,
                planes,
                snapshot,
                source_commit: commit,
                pause_at: self.pause_at,
                evidence_remote: self.config.evidence_remote.as_deref(),
                push: &mut self.push,
            },
            recover: !self.recovered,
        };
        report.drive = driver.drive(now).await?;
        self.recovered = true;
        let due = self.next_reconcile.is_none_or(|at| now >= at);
        if due {
            report.reconcile = Some(reconcile::reconcile(&mut driver.performer, now).await?);
            let expression = snapshot
                .config
                .as_ref()
                .and_then(|c| c.reconcile_cron.clone())
                .unwrap_or_else(|| "0 0 * * * *".into());
            self.next_reconcile = std::str::FromStr::from_str(&expression)
                .ok()
                .and_then(|schedule: cron::Schedule| schedule.after(&now).next())
                .or(Some(now + chrono::Duration::hours(1)));
        }
        if let Some(remote) = self.config.evidence_remote.clone() {
            self.push_or_block(&remote, now)?;
        }
        // After the evidence is pushed: the status never runs ahead of the record.
        self.report_to_forge(&report.commits).await;
        Ok(report)
    }

    /// Fetches (remote mode) and processes every pending commit.
    pub fn process_pending(
        &mut self,
        now: DateTime<Utc>,
    ) -> Result<Vec<CommitReport>, DaemonError> {
        if let RepoLocation::Remote(_) = &self.config.repo {
            crate::source::remote::fetch(&self.repo.repository)?;
        }
        let plane_modes = self.planes.modes();
        let mut processor = Processor {
            repo: &self.repo,
            branch: &self.config.branch,
            evidence: &self.evidence,
            signer: &self.signer,
            store: &mut self.store,
            siem: &mut self.siem,
            pause_at: self.pause_at,
            forge: self
                .forge
                .as_ref()
                .map(|forge| forge as &dyn crate::forge::MergeFactsSource),
            plane_modes,
        };
        Ok(processor.process_pending(now)?)
    }

    /// Pushes evidence; if that fails, records that publishing is blocked.
    fn push_or_block(&mut self, remote: &str, now: DateTime<Utc>) -> Result<(), DaemonError> {
        if let Err(error) = self.push_evidence(remote, now) {
            self.store.append_event(crate::store::NewEvent {
                correlation_id: "evidence:push".into(),
                intent_id: None,
                event_type: crate::store::EventType::PublishBlocked,
                timestamp: now,
                actor: process::ACTOR.into(),
                actor_role: "control-plane".into(),
                execution_plane: None,
                ring: None,
                outcome: crate::store::EventOutcome::Failure,
                details: serde_json::json!({"reason": format!("evidence could not be pushed to {remote}: {error}")}),
            })?;
            return Err(error.into());
        }
        Ok(())
    }

    /// Pushes the evidence branch (see [`performer::push_evidence`]).
    fn push_evidence(
        &mut self,
        remote: &str,
        now: DateTime<Utc>,
    ) -> Result<(), crate::evidence::EvidenceError> {
        if self.evidence.tip()?.is_none() {
            return Ok(());
        }
        let pushed =
            performer::push_evidence(&self.evidence, &self.signer, &mut self.store, remote, now)?;
        self.push.pushed_tip = Some(pushed);
        Ok(())
    }

    /// The closed event loop. Returns when `shutdown` resolves.
    pub async fn run(
        mut self,
        clock: Clock,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), DaemonError> {
        let (sender, mut events) = mpsc::channel::<Event>(64);
        let _watcher = match &self.config.repo {
            RepoLocation::Local(_) => Some(
                watch::watch_refs(self.repo.repository.path(), sender.clone())
                    .map_err(|error| DaemonError::Watch(error.to_string()))?,
            ),
            RepoLocation::Remote(_) => None,
        };
        let poll = self.config.poll_interval;
        let ticker = sender.clone();
        let timer = tokio::spawn(async move {
            // The first tick comes at once (catch up on start); then every
            // interval, ±10% jitter so many daemons do not fetch in step.
            let mut delay = std::time::Duration::ZERO;
            loop {
                tokio::time::sleep(delay).await;
                if ticker.send(Event::Tick).await.is_err() {
                    break;
                }
                let jitter: f64 = rand::random_range(0.9..1.1);
                delay = poll.mul_f64(jitter);
            }
        });
        self.connect_forge(clock.clone())?;
        let api = self.start_api(sender.clone(), clock.clone()).await?;
        // Deliveries stored before a restart but never handled.
        let _ = sender.try_send(Event::Webhook);
        tokio::pin!(shutdown);
        tracing::info!(branch = %self.config.branch, "ringmaster daemon started");
        loop {
            let event = tokio::select! {
                () = &mut shutdown => Event::Shutdown,
                Some(event) = events.recv() => event,
            };
            let tick = matches!(event, Event::Tick);
            match event {
                Event::Shutdown => break,
                Event::Webhook => {
                    if let Err(error) = self.handle_webhooks(clock()).await {
                        tracing::error!(%error, "webhook queue failed; will retry");
                    }
                }
                Event::RepoChanged | Event::Tick => {
                    let now = clock();
                    match self.step(now).await {
                        Ok(step) => {
                            for report in step.commits {
                                tracing::info!(commit = %report.commit, outcome = report.outcome.as_str(), records = report.records.len(), "processed commit");
                            }
                            if let Some(at) = step.drive.next_wake {
                                let delay = (at - now).to_std().unwrap_or_default();
                                let waker = sender.clone();
                                tokio::spawn(async move {
                                    tokio::time::sleep(delay).await;
                                    let _ = waker.send(Event::Tick).await;
                                });
                            }
                        }
                        // Bad input and failing dependencies never stop the daemon:
                        // the commit stays pending and is retried on the next event.
                        Err(error) => tracing::error!(%error, "processing failed; will retry"),
                    }
                    if tick {
                        self.poll_forge(clock()).await;
                    }
                }
            }
        }
        timer.abort();
        if let Some(api) = api
            && let Err(error) = api.shutdown().await
        {
            tracing::warn!(%error, "HTTP server did not stop cleanly");
        }
        tracing::info!("ringmaster daemon stopped");
        Ok(())
    }
}

/// `serve` refuses to start when the tenant lists a plane with no connector:
/// checked against the tracked branch's tip and the last good commit (the
/// snapshots the daemon is about to run).
fn check_planes_listed(
    repo: &GovernedRepo,
    store: &Store,
    branch: &str,
    registry: &PlaneRegistry,
) -> Result<(), DaemonError> {
    let mut commits = Vec::new();
    if let Ok(reference) = repo
        .repository
        .find_reference(&format!("refs/heads/{branch}"))
        && let Ok(tip) = reference.peel_to_commit()
    {
        commits.push(tip.id());
    }
    if let Some(good) = store.last_good_commit(branch)?
        && let Ok(oid) = git2::Oid::from_str(&good.commit_sha)
    {
        commits.push(oid);
    }
    let mut missing = Vec::new();
    for commit in commits {
        let Ok(entries) = repo.entries_at(commit) else {
            continue;
        };
        let (snapshot, _) = crate::model::load(&entries);
        for plane in planes::unconfigured(&snapshot, registry.configured()) {
            if !missing.contains(&plane) {
                missing.push(plane);
            }
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(DaemonError::Planes(
            planes::unconfigured_error(&missing).to_string(),
        ))
    }
}
