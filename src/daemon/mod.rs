//! The daemon: one closed event loop around the processing of the tracked
//! branch (and, as ringmaster grows, the orchestrator's effects).
//!
//! `serve --once` processes everything pending and exits; the long-running
//! form waits for [`Event`]s — the repository changed (file watcher), the
//! poll timer fired (safety net, and fetch for remotes), shutdown — and
//! handles each in one place. Nothing here reads the wall clock: `main`
//! passes a clock in.

pub mod api_config;
pub mod config;
pub mod git_config;
pub mod github;
pub mod github_config;
pub mod lease;
pub mod locks;
pub mod performer;
pub mod plane_breakers;
pub mod planes;
pub mod process;
pub mod reconcile;
pub mod record;
pub mod rollout;
pub mod rules;
pub mod schedule;
pub mod siem;
mod views;

use crate::evidence::{AppendContext, EventChainAnchor, EvidenceBranch, ExpectedHead, SigningKey};
use crate::model::Snapshot;
use crate::orchestrator::{BreakerPolicy, CircuitBreaker};
use crate::source::GovernedRepo;
use crate::source::credentials::GitCredentials;
use crate::source::watch;
use crate::store::Store;
use chrono::{DateTime, Utc};
use config::{DaemonConfig, RepoLocation};
use planes::{PlaneRegistry, Planes};
use process::{CommitReport, PausePoint, ProcessError, Processor};
use schedule::Schedule;
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
    /// An operator request or a reconciliation was queued through the API.
    ApiRequest,
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
    #[error("evidence object store: {0}")]
    ObjectStore(String),
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

/// What an evidence append must agree with, and anchor: the branch must
/// still hold the store's evidence head (else nothing is signed: it was
/// rewound or forked), and the pack records the event log's head, so that
/// `verify --state` catches a truncated or rewritten log against the signed
/// branch. Every evidence append of the daemon passes this.
pub fn append_context(store: &Store) -> Result<AppendContext, crate::store::StoreError> {
    Ok(AppendContext {
        known_head: store.evidence_head()?.map(|head| ExpectedHead {
            sequence: head.sequence,
            pack_sha256: head.pack_sha256,
        }),
        event_chain: store.last_event()?.map(|event| EventChainAnchor {
            seq: event.seq,
            hash: event.hash,
        }),
    })
}

/// The WORM copy for `config`, refusing a bucket that is reachable but not
/// write-once (a configuration error). An unreachable store is not: the
/// daemon starts and blocks publishing until the store answers.
fn open_worm_copy(
    config: &crate::worm::ObjectStoreConfig,
) -> Result<crate::evidence::worm::WormCopy, DaemonError> {
    use crate::evidence::worm::{WormCopy, WormError};
    let worm =
        WormCopy::open(config).map_err(|error| DaemonError::ObjectStore(error.to_string()))?;
    match worm.check_bucket() {
        Ok(()) => {}
        Err(WormError::Store(error)) if error.is_unavailable() => {
            tracing::warn!(%error, "evidence object store unreachable at start; publishing waits for it");
        }
        Err(error) => return Err(DaemonError::ObjectStore(error.to_string())),
    }
    Ok(worm)
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
    /// This replica's lease on a shared store (see [`lease`]); unused on
    /// SQLite.
    lease: lease::Lease,
    /// GitHub, when configured (connected by `connect_forge`).
    forge: Option<crate::forge::Forge>,
    /// What the evidence remote is known to hold, and its breaker.
    push: performer::EvidencePush,
    /// The loop's timing (made at the first wake-up, which knows `now`).
    schedule: Option<Schedule>,
    /// Webhook deliveries may be waiting in the store.
    webhooks_pending: bool,
    /// The Git remote of the governed repository (remote mode: fetch).
    git_fetch: CircuitBreaker,
    /// Whether the last evidence push failed (a `publish_blocked` event is
    /// recorded when it starts failing, not at every retry).
    push_blocked: bool,
    /// The breakers as the API shows them (published after every wake-up).
    health: crate::api::health::HealthBoard,
    /// Lock files a stopped daemon left, removed at open; recorded as events
    /// at the first step (which knows the time).
    stale_locks: Vec<PathBuf>,
    /// The state directory's instance lock, held until the daemon drops.
    _instance: locks::InstanceLock,
    /// The notification targets of the config (see `notify`).
    notifier: crate::notify::deliver::Notifier,
    /// What the fetch and the evidence push authenticate with (shared with
    /// the evidence branch and the forge's fetches).
    git_credentials: GitCredentials,
    /// Each plane's circuit breaker (see [`plane_breakers`]).
    plane_breakers: plane_breakers::PlaneBreakers,
    /// Gate checks paced to what each plane's call budget serves, fairly
    /// between rollouts (`planes::budget::pacing`).
    gate_pacing: std::sync::Mutex<crate::planes::budget::pacing::GatePacing>,
}

/// What one step of the daemon did.
#[derive(Debug, Clone, Default)]
pub struct StepReport {
    pub commits: Vec<CommitReport>,
    pub drive: rollout::DriveReport,
    pub reconcile: Option<reconcile::ReconcileReport>,
    /// On a shared (PostgreSQL) store: whether this replica led the step
    /// (`false`: a standby, which did nothing) and the epoch seen.
    pub leadership: Option<(bool, u64)>,
}

/// How long a replica's leadership lasts without renewal by default, on a
/// shared store (`leader_lease_seconds` changes it); the leader renews it
/// at a third of that, and a standby takes over once it has expired.
pub const LEADER_LEASE_SECONDS: i64 = lease::DEFAULT_LEASE.as_secs() as i64;

/// `hostname:pid`: unique among the replicas sharing a store.
fn replica_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|text| text.trim().to_string())
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| "replica".to_string());
    format!("{host}:{}", std::process::id())
}

impl Daemon {
    /// Opens (or creates) the state directory, the store, the repository (a
    /// mirror of it for remotes) and the evidence branch, and loads the key.
    pub fn open(config: DaemonConfig) -> Result<Daemon, DaemonError> {
        std::fs::create_dir_all(&config.state_dir).map_err(|error| DaemonError::State {
            path: config.state_dir.clone(),
            message: error.to_string(),
        })?;
        // Held while the daemon runs: proves the lock files below are stale.
        let instance = locks::InstanceLock::acquire(&config.state_dir).map_err(|message| {
            DaemonError::State {
                path: config.state_dir.clone(),
                message,
            }
        })?;
        let signer = SigningKey::load(
            &config.key,
            config.key_password.as_ref().map(|p| p.expose()),
        )
        .map_err(|source| DaemonError::Key {
            path: config.key.clone(),
            source,
        })?;
        let store = Store::open_location(&config.store_location())?;
        let git_credentials = GitCredentials::new(config.git_credentials.clone());
        let repo = match &config.repo {
            RepoLocation::Local(path) => GovernedRepo::open(path)?,
            RepoLocation::Remote(url) => {
                let mirror = config.state_dir.join("mirror.git");
                crate::source::remote::open_mirror(url, &mirror, &config.branch)?;
                GovernedRepo::open(&mirror)?
            }
        };
        let stale_locks = locks::remove_stale(
            repo.repository.path(),
            &config.evidence_branch,
            matches!(config.repo, RepoLocation::Remote(_)),
        )
        .map_err(|message| DaemonError::State {
            path: repo.repository.path().to_path_buf(),
            message,
        })?;
        let mut evidence = EvidenceBranch::open(repo.repository.path(), &config.evidence_branch)?
            .with_remote_credentials(git_credentials.clone());
        if let Some(store_config) = &config.evidence_object_store {
            evidence = evidence.with_worm_copy(open_worm_copy(store_config)?);
            if config.evidence_remote.is_some() {
                // Committed, pushed, then copied (the performer's gate).
                evidence = evidence.copy_after_push();
            }
        }
        // A store behind the evidence branch (restored from a backup) or
        // empty beside a branch with records would do again what the
        // records say was done: `ringmaster rebuild` first.
        let standing = crate::recovery::standing::standing(&store, &evidence).map_err(|error| {
            DaemonError::State {
                path: config.state_dir.clone(),
                message: error.to_string(),
            }
        })?;
        if let Some(message) = standing.refusal() {
            return Err(DaemonError::State {
                path: config.state_dir.clone(),
                message,
            });
        }
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
            .and_then(process::pause_point_from_env);
        let config_notifications = config.notifications.clone();
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
            lease: lease::Lease::new(replica_name(), lease::DEFAULT_LEASE),
            forge: None,
            push: performer::EvidencePush::default(),
            schedule: None,
            webhooks_pending: true,
            git_fetch: CircuitBreaker::new("git remote (fetch)", BreakerPolicy::default()),
            push_blocked: false,
            health: crate::api::health::HealthBoard::default(),
            stale_locks,
            _instance: instance,
            notifier: crate::notify::deliver::Notifier::new(config_notifications),
            git_credentials,
            plane_breakers: Default::default(),
            gate_pacing: Default::default(),
        })
    }

    /// A copy of the gate-check pacing as it stands (the fleet benchmark
    /// reports its intervals and longest waits).
    pub fn gate_pacing(&self) -> crate::planes::budget::pacing::GatePacing {
        self.gate_pacing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn planes(&self) -> Option<&Planes> {
        self.planes.current()
    }

    /// The last evidence commit pushed to the evidence remote, as the
    /// repository remembers it (across restarts); what a rewound remote is
    /// detected against.
    pub fn evidence_last_pushed(&self) -> Option<String> {
        let remote = self.config.evidence_remote.as_deref()?;
        self.evidence.last_pushed(remote)
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
            // Loaded as `validate` loads a revision: no file's text is kept
            // (a position is found again from its blob when asked for), as
            // this snapshot is held through every step until the next good
            // commit.
            let (_, snapshot, _) = self.repo.load_at(oid)?;
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
    /// When processing fails (GitHub down, say), the rollouts are still
    /// driven with the last good snapshot, then the processing error is
    /// returned; the commit stays pending.
    pub async fn step(&mut self, now: DateTime<Utc>) -> Result<StepReport, DaemonError> {
        let (report, processing) = self.step_with(now, true).await?;
        match processing {
            Some(error) => Err(error),
            None => Ok(report),
        }
    }

    /// A step; `process` false skips new commits (processing is backing
    /// off). Returns the report and the processing error, if any; other
    /// failures (driving, pushing evidence) are the `Err`.
    async fn step_with(
        &mut self,
        now: DateTime<Utc>,
        process: bool,
    ) -> Result<(StepReport, Option<DaemonError>), DaemonError> {
        // On a shared store only the leader acts; a standby does nothing
        // (the HTTP server still stores webhooks for the leader).
        let leadership = self.lead(now)?;
        if let Some((false, _)) = leadership {
            return Ok((
                StepReport {
                    leadership,
                    ..StepReport::default()
                },
                None,
            ));
        }
        // New targets start at the log's head, before this step adds to it.
        if let Err(error) = self.notifier.prepare(&mut self.store) {
            tracing::warn!(%error, "notifications: cannot start the targets' cursors");
        }
        let result = self
            .step_inner(now, process)
            .await
            .map(|(report, processing)| {
                (
                    StepReport {
                        leadership,
                        ..report
                    },
                    processing,
                )
            });
        self.notify(now).await;
        result
    }

    /// Takes or renews the lead on a shared (PostgreSQL) store; `None` on
    /// SQLite (one machine, one daemon: the instance lock). A replica that
    /// takes over resumes the in-flight actions through the journal; one
    /// that lost the lead is fenced by the database until it stands by.
    fn lead(&mut self, now: DateTime<Utc>) -> Result<Option<(bool, u64)>, DaemonError> {
        use crate::api::health::{Role, RoleView};
        if self.store.dialect() != crate::store::db::Dialect::Postgres {
            self.health.publish_role(RoleView {
                role: Role::Single,
                epoch: None,
                leader: None,
                published_at: Some(now),
            });
            return Ok(None);
        }
        // Deposed while acting (`Lease::keep`) counts as leading until now.
        let stood_down = self.lease.take_stood_down();
        let was_leading = self.lease.leading() || stood_down;
        let outcome = match self
            .lease
            .lead(&mut self.store, now, std::time::Instant::now())
        {
            Ok(outcome) => outcome,
            Err(error) => {
                // Unknown: act as a standby until the database answers.
                self.health.publish_role(RoleView {
                    role: Role::Standby,
                    epoch: self.store.epoch(),
                    leader: None,
                    published_at: Some(now),
                });
                return Err(error.into());
            }
        };
        let leadership = outcome.leadership();
        match &outcome {
            crate::store::LeadershipOutcome::Acquired(_) => {
                tracing::info!(replica = %self.lease.replica(), epoch = leadership.epoch, "leading");
                eprintln!(
                    "ringmaster: leading (epoch {}) as {}",
                    leadership.epoch,
                    self.lease.replica()
                );
                // Resume what the last leader left in flight, through the
                // journal, with connectors built afresh (a sim plane
                // re-reads its fleet; tokens are fetched again).
                self.recovered = false;
                if let Err(error) = self.planes.rebuild_connectors() {
                    tracing::warn!(%error, "rebuilding the connectors on taking the lead failed; keeping the previous ones");
                }
                if let Some(schedule) = &mut self.schedule {
                    schedule.want_step();
                }
            }
            crate::store::LeadershipOutcome::Renewed(_) => {}
            crate::store::LeadershipOutcome::Standby(_) => {
                tracing::info!(
                    leader = %leadership.holder,
                    epoch = leadership.epoch,
                    "standby: another replica leads"
                );
                if was_leading {
                    eprintln!(
                        "ringmaster: standing by: {} leads (epoch {})",
                        leadership.holder, leadership.epoch
                    );
                }
            }
        }
        self.health.publish_role(RoleView {
            role: if outcome.is_leader() {
                Role::Leader
            } else {
                Role::Standby
            },
            epoch: Some(leadership.epoch),
            leader: Some(leadership.holder.clone()),
            published_at: Some(now),
        });
        Ok(Some((outcome.is_leader(), leadership.epoch)))
    }

    /// Sends the notifications owed; a failure is logged and retried later.
    async fn notify(&mut self, now: DateTime<Utc>) {
        if self.notifier.is_empty() {
            return;
        }
        match self.notifier.pass(&mut self.store, now).await {
            Ok(report) if report != Default::default() => {
                tracing::info!(?report, "notifications sent")
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "notifications: the store failed"),
        }
    }

    async fn step_inner(
        &mut self,
        now: DateTime<Utc>,
        process: bool,
    ) -> Result<(StepReport, Option<DaemonError>), DaemonError> {
        for path in std::mem::take(&mut self.stale_locks) {
            self.store.append_event(crate::store::NewEvent {
                correlation_id: "daemon:start".into(),
                intent_id: None,
                event_type: crate::store::EventType::OperatorAction,
                timestamp: now,
                actor: process::ACTOR.into(),
                actor_role: "control-plane".into(),
                execution_plane: None,
                ring: None,
                outcome: crate::store::EventOutcome::Info,
                details: serde_json::json!({"kind": "stale_lock_removed", "path": path.display().to_string(),
                    "why": "left by a daemon that stopped without cleaning up; this daemon holds the state directory's instance lock"}),
            })?;
        }
        // Catch up the WORM copy; while it fails, the performer refuses
        // every plane change and appends fail, so nothing is published.
        if let Err(error) = self.copy_evidence_or_block(now) {
            tracing::warn!(%error, "publishing is blocked");
        }
        // A replica stalled since the step began does not judge or record.
        if self.store.dialect() == crate::store::db::Dialect::Postgres {
            self.lease.keep(&mut self.store, now).map_err(|lost| {
                eprintln!("ringmaster: stops acting: {lost}");
                rollout::DriveError::from(lost)
            })?;
        }
        let (commits, processing) = if process {
            match self.process_pending(now) {
                Ok(commits) => (commits, None),
                Err(error) => (Vec::new(), Some(error)),
            }
        } else {
            (Vec::new(), None)
        };
        self.refresh_good_snapshot(now)?;
        let mut report = StepReport {
            commits,
            ..StepReport::default()
        };
        let (Some((commit, snapshot)), Some(planes)) = (&self.good, self.planes.current()) else {
            self.report_to_forge(&report.commits).await;
            return Ok((report, processing));
        };
        let intervals = crate::metrics::runtime::plane_budgets(snapshot, self.config.poll_interval);
        performer::plan_gate_pacing(&self.gate_pacing, planes, &intervals, now);
        let shared = self.store.dialect() == crate::store::db::Dialect::Postgres;
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
                plane_breakers: &self.plane_breakers,
                lease: shared.then_some(&mut self.lease),
                gate_pacing: &self.gate_pacing,
            },
            recover: !self.recovered,
        };
        report.drive = driver.drive(now).await?;
        performer::report_gate_pacing(&self.gate_pacing, &intervals);
        self.recovered = true;
        // A reconciliation asked for through the API runs now, whatever the cron says.
        let asked = driver.performer.store.pending_reconcile_requests()?;
        let due = self.next_reconcile.is_none_or(|at| now >= at) || !asked.is_empty();
        if due {
            report.reconcile = Some(reconcile::reconcile(&mut driver.performer, now).await?);
            if let Some(last) = asked.last() {
                for request in &asked {
                    driver.performer.store.append_event(crate::store::NewEvent {
                        correlation_id: request.origin["request_id"]
                            .as_str()
                            .unwrap_or("reconcile")
                            .to_owned(),
                        intent_id: None,
                        event_type: crate::store::EventType::OperatorAction,
                        timestamp: now,
                        actor: request.actor.clone(),
                        actor_role: request.origin["role"].as_str().unwrap_or("api").to_owned(),
                        execution_plane: None,
                        ring: None,
                        outcome: crate::store::EventOutcome::Success,
                        details: serde_json::json!({"action": "reconcile", "stage": "handled", "reason": request.reason, "request_id": request.request_id, "origin": request.origin}),
                    })?;
                }
                driver
                    .performer
                    .store
                    .mark_reconcile_requests_handled(last.request_id, now)?;
            }
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
            // Pushed, then copied: the records of this step reach the bucket.
            self.copy_evidence_or_block(now)?;
        }
        // After the evidence is pushed: the status never runs ahead of the record.
        self.report_to_forge(&report.commits).await;
        Ok((report, processing))
    }

    /// Fetches (remote mode) and processes every pending commit.
    pub fn process_pending(
        &mut self,
        now: DateTime<Utc>,
    ) -> Result<Vec<CommitReport>, DaemonError> {
        let fetch_error = match &self.config.repo {
            RepoLocation::Remote(_) => self.fetch_governed(now),
            RepoLocation::Local(_) => None,
        };
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
        let mut reports = processor.process_pending(now)?;
        // A DENY that waited on changes in flight is judged again once they end.
        if let Some(report) = processor.rejudge_if_cleared(now)? {
            reports.push(report);
        }
        match fetch_error {
            // Nothing new could be read: say why (`serve --once` fails with
            // it, the loop backs off); what was fetched before is processed.
            Some(error) if reports.is_empty() => Err(error.into()),
            _ => Ok(reports),
        }
    }

    /// The WORM copy's counters (`None` without an object store).
    pub fn evidence_copy_counts(&self) -> Option<crate::evidence::worm::WormCounts> {
        self.evidence.worm_copy().map(|worm| worm.counts())
    }

    /// Copies every committed record the WORM store lacks (records written
    /// while it was down; with a remote, records pushed since). While that
    /// fails a `publish_blocked` event says why — and a different body under
    /// one of our keys is also an alert on the SIEM sink — and nothing is
    /// published: the performer checks the copy before every plane change.
    fn copy_evidence_or_block(&mut self, now: DateTime<Utc>) -> Result<(), DaemonError> {
        let Err(error) = self.evidence.copy_to_worm(now) else {
            return Ok(());
        };
        let store = self
            .evidence
            .worm_copy()
            .map(|worm| worm.describe())
            .unwrap_or_default();
        let alarm = error.is_conflict();
        let reason = format!("evidence could not be copied to the WORM store: {error}");
        if alarm {
            tracing::error!(%error, "evidence WORM copy conflict");
            self.siem.emit(&serde_json::json!({
                "type": "alert",
                "alert": "evidence_worm_conflict",
                "object_store": store,
                "message": error.to_string(),
                "at": now,
            }));
        }
        self.store.append_event(crate::store::NewEvent {
            correlation_id: "evidence:worm".into(),
            intent_id: None,
            event_type: crate::store::EventType::PublishBlocked,
            timestamp: now,
            actor: process::ACTOR.into(),
            actor_role: "control-plane".into(),
            execution_plane: None,
            ring: None,
            outcome: crate::store::EventOutcome::Failure,
            details: serde_json::json!({"reason": reason, "object_store": store, "alarm": alarm}),
        })?;
        Err(DaemonError::ObjectStore(reason))
    }

    /// Fetches the tracked branch through its breaker, with the configured
    /// credentials. A failed fetch is returned (its message names the remote
    /// and never a secret) but does not stop the step: the mirror keeps what
    /// it has, the rollouts go on, and the next poll (or the breaker's probe)
    /// fetches again — reading a token file again, so a fixed or rotated
    /// token is used without a restart. A fetch the open breaker refuses
    /// sends nothing and is not an error.
    fn fetch_governed(&mut self, now: DateTime<Utc>) -> Option<crate::source::SourceError> {
        let failure = self.fetch_governed_once(now);
        crate::metrics::runtime::breaker("git_fetch", &self.git_fetch);
        failure
    }

    fn fetch_governed_once(&mut self, now: DateTime<Utc>) -> Option<crate::source::SourceError> {
        if self.git_fetch.admit(now).is_err() {
            return None;
        }
        match crate::source::remote::fetch(&self.repo.repository, &self.git_credentials) {
            Ok(()) => {
                self.git_fetch.record_success();
                None
            }
            Err(error) => {
                let opened = self.git_fetch.record_failure(
                    now,
                    error.to_string(),
                    None,
                    rand::random::<f64>(),
                );
                match opened {
                    Some(until) => {
                        tracing::warn!(%error, %until, "the governed repository's remote is unavailable: no fetch until the next probe")
                    }
                    None => {
                        tracing::warn!(%error, "fetching the governed repository failed; the next poll retries")
                    }
                }
                Some(error)
            }
        }
    }

    /// Mints the GitHub App's installation token for the Git calls that
    /// follow, when the Git credentials use it (the forge's client caches
    /// it, so this sends a request only when it is about to expire).
    async fn refresh_git_token(&mut self) {
        if !self.git_credentials.uses_github_app() {
            return;
        }
        let token = match &self.forge {
            Some(forge) => forge
                .client
                .installation_token()
                .await
                .map_err(|error| error.to_string()),
            None => Err("the GitHub forge is not connected".into()),
        };
        if let Err(reason) = &token {
            tracing::warn!(%reason, "no GitHub App installation token for Git");
        }
        self.git_credentials.set_app_token(token);
    }

    /// Pushes evidence through its breaker; if that fails, publishing is
    /// blocked (a `publish_blocked` event when it starts failing).
    fn push_or_block(&mut self, remote: &str, now: DateTime<Utc>) -> Result<(), DaemonError> {
        let result = self.push_evidence(remote, now);
        if result.is_ok() {
            if self.push_blocked {
                tracing::info!(%remote, "evidence pushed again; publishing unblocked");
            }
            self.push_blocked = false;
        }
        if let Err(error) = result {
            if self.push_blocked {
                return Err(error.into());
            }
            self.push_blocked = true;
            let remote = crate::source::credentials::redact_url(remote);
            let forked = matches!(error, crate::evidence::EvidenceError::RemoteForked { .. });
            if forked {
                tracing::error!(%error, "the evidence remote was rewound or forked; publishing stops");
                self.siem.emit(&serde_json::json!({
                    "type": "alert",
                    "alert": "evidence_remote_forked",
                    "remote": remote,
                    "message": error.to_string(),
                    "at": now,
                }));
            }
            let kind = if forked {
                "evidence_remote_forked"
            } else {
                "evidence_push_failed"
            };
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
                details: serde_json::json!({"kind": kind, "remote": remote, "reason": format!("evidence could not be pushed to {remote}: {error}")}),
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
        performer::push_evidence(
            &self.evidence,
            &self.signer,
            &mut self.store,
            &mut self.push,
            remote,
            now,
        )
    }

    /// The closed event loop. Returns when `shutdown` resolves.
    ///
    /// It sleeps until the next deadline of its [`Schedule`] or until an
    /// event (the repository changed, a webhook was queued) wakes it, then
    /// does what is due ([`Daemon::wake`]). It never retries in a loop: every
    /// failure moves a deadline (backoff, an open breaker), never the loop.
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
        self.connect_forge(clock.clone())?;
        let api = self.start_api(sender.clone(), clock.clone()).await?;
        // On a shared store the lease is renewed by its own timer thread
        // (see `lease`), whatever the loop is busy with.
        let renewal_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let renewal = if self.store.dialect() == crate::store::db::Dialect::Postgres {
            Some(
                self.lease
                    .spawn_renewal(
                        self.config.store_location(),
                        clock.clone(),
                        renewal_stop.clone(),
                    )
                    .map_err(|error| DaemonError::State {
                        path: self.config.state_dir.clone(),
                        message: format!("cannot start the lease renewal thread: {error}"),
                    })?,
            )
        } else {
            None
        };
        tokio::pin!(shutdown);
        tracing::info!(branch = %self.config.branch, "ringmaster daemon started");
        loop {
            self.wake(clock()).await;
            let now = clock();
            let sleep = (self.next_deadline(now) - now).to_std().unwrap_or_default();
            let event = tokio::select! {
                () = &mut shutdown => Event::Shutdown,
                Some(event) = events.recv() => event,
                () = tokio::time::sleep(sleep) => Event::Tick,
            };
            if matches!(event, Event::Shutdown) {
                break;
            }
            self.notice(&event);
            // Whatever else queued meanwhile is covered by this one wake-up.
            while let Ok(event) = events.try_recv() {
                self.notice(&event);
            }
        }
        renewal_stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(renewal) = renewal {
            renewal.thread().unpark();
            let _ = renewal.join();
        }
        // A clean stop hands the lead over at once, not at the lease's end.
        if self.lease.leading()
            && let Err(error) = self.store.resign(clock())
        {
            tracing::warn!(%error, "could not resign the lead");
        }
        for server in api {
            if let Err(error) = server.shutdown().await {
                tracing::warn!(%error, "HTTP server did not stop cleanly");
            }
        }
        tracing::info!("ringmaster daemon stopped");
        Ok(())
    }

    /// Takes note of an event; the work happens at the next [`Daemon::wake`].
    pub fn notice(&mut self, event: &Event) {
        match event {
            Event::RepoChanged => {
                if let Some(schedule) = &mut self.schedule {
                    schedule.want_step();
                }
            }
            Event::Webhook => self.webhooks_pending = true,
            Event::ApiRequest => {
                if let Some(schedule) = &mut self.schedule {
                    schedule.want_step();
                }
            }
            Event::Tick | Event::Shutdown => {}
        }
    }

    /// When the loop must wake up at the latest: the schedule's next
    /// deadline, or an open breaker's next probe.
    pub fn next_deadline(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let breakers = [
            self.git_fetch.retry_at(),
            self.push.breaker.retry_at(),
            self.plane_breakers.retry_at(),
        ];
        let deadline = match &self.schedule {
            Some(schedule) => schedule.next_deadline(now, breakers.into_iter().flatten()),
            None => now,
        };
        if self.store.dialect() != crate::store::db::Dialect::Postgres {
            return deadline;
        }
        // The lease: renewed at a third of it, whatever the poll interval.
        let at = std::time::Instant::now();
        let renew = self.lease.renew_in(at, now);
        let renew_at = now + chrono::Duration::from_std(renew).unwrap_or_default();
        if !self.lease.holds(at) {
            // A standby does nothing but look at the lease.
            return renew_at;
        }
        deadline.min(renew_at)
    }

    /// Sets how long this replica's lead lasts without renewal on a shared
    /// store (`leader_lease_seconds`; default [`lease::DEFAULT_LEASE`]).
    pub fn set_leader_lease(&mut self, lease: std::time::Duration) {
        self.lease.set_duration(lease);
    }

    /// Whether this replica acts at this wake-up: always on SQLite; on a
    /// shared store, when the database confirms its lead (taken or
    /// renewed). A standby's leader may have sent webhooks to the standby's
    /// server: the leader looks at the shared queue at every wake-up.
    fn leads_now(&mut self, now: DateTime<Utc>) -> bool {
        match self.lead(now) {
            Ok(None) => true,
            Ok(Some((leading, _))) => {
                if leading {
                    self.webhooks_pending = true;
                }
                leading
            }
            Err(error) => {
                tracing::error!(%error, "cannot confirm the lead on the shared store; not acting until it answers");
                eprintln!("ringmaster: not acting: cannot confirm the lead: {error}");
                // A restarted database closed this connection for good:
                // open a new one (under the same epoch), then ask again.
                if self.reconnect_store() {
                    return self
                        .lead(now)
                        .is_ok_and(|leading| leading.is_some_and(|(leading, _)| leading))
                        && {
                            self.webhooks_pending = true;
                            true
                        };
                }
                false
            }
        }
    }

    /// Opens the shared store again after its connection failed, keeping
    /// the epoch this replica writes under (the database still fences it
    /// if another replica led meanwhile). False while the database does
    /// not answer.
    fn reconnect_store(&mut self) -> bool {
        let epoch = self.store.epoch();
        let reopened = Store::open_location(&self.config.store_location())
            .and_then(|mut store| store.write_under_epoch(epoch).map(|()| store));
        match reopened {
            Ok(store) => {
                tracing::info!("reconnected to the shared store");
                let broken = std::mem::replace(&mut self.store, store);
                // The synchronous client blocks when dropped, which it may
                // not do on the runtime's thread.
                std::thread::spawn(move || drop(broken));
                true
            }
            Err(error) => {
                tracing::warn!(%error, "the shared store does not answer yet");
                false
            }
        }
    }

    /// Does what is due at `now`: queued webhooks, a step (processing new
    /// commits unless it is backing off), the poll. Failures are logged and
    /// move deadlines; bad input and failing dependencies never stop the
    /// daemon. `run` calls it after every event and deadline; a test can
    /// call it with simulated time.
    pub async fn wake(&mut self, now: DateTime<Utc>) {
        let poll_interval = self.config.poll_interval;
        self.schedule
            .get_or_insert_with(|| Schedule::new(poll_interval, now));
        // On a shared store only the leader acts: a standby serves HTTP
        // (its server stores webhook deliveries for the leader) and looks
        // at the lease again at its next deadline; nothing else.
        if !self.leads_now(now) {
            self.publish_health(now);
            return;
        }
        self.refresh_git_token().await;
        if self.webhooks_pending {
            self.webhooks_pending = false;
            if let Err(error) = self.handle_webhooks(now).await {
                tracing::error!(%error, "webhook queue failed; will retry");
                self.webhooks_pending = true;
            }
        }
        let due = self
            .schedule
            .as_ref()
            .map(|schedule| schedule.due(now))
            .unwrap_or_default();
        if due.step {
            match self.step_with(now, due.process).await {
                Ok((step, processing)) => {
                    for report in &step.commits {
                        tracing::info!(commit = %report.commit, outcome = report.outcome.as_str(), records = report.records.len(), "processed commit");
                    }
                    // The rollouts' next step, or the next expiry of an
                    // approval or exception the decisions read.
                    let rejudge_at = self
                        .store
                        .rules_state(&self.config.branch)
                        .ok()
                        .flatten()
                        .and_then(|state| state.rejudge_at);
                    let next_wake = match (step.drive.next_wake, rejudge_at) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    self.after_processing(now, due.process, processing);
                    if let Some(schedule) = &mut self.schedule {
                        schedule.stepped(now, next_wake);
                    }
                }
                Err(error) => {
                    tracing::error!(%error, "step failed; retrying after a backoff");
                    self.after_processing(now, due.process, Some(error));
                    if let Some(schedule) = &mut self.schedule {
                        schedule.stepped(now, None);
                    }
                }
            }
        }
        if due.poll {
            self.poll_forge(now).await;
            if let Some(schedule) = &mut self.schedule {
                schedule.polled(now, rand::random::<f64>());
            }
        }
        self.publish_health(now);
    }

    /// Moves the processing backoff after a step that processed (or failed).
    fn after_processing(
        &mut self,
        now: DateTime<Utc>,
        processed: bool,
        error: Option<DaemonError>,
    ) {
        let back_at = self
            .forge
            .as_ref()
            .and_then(|forge| forge.client.unavailable_until());
        let Some(schedule) = &mut self.schedule else {
            return;
        };
        match error {
            None if processed => schedule.processing_succeeded(),
            None => {}
            Some(error) => {
                let retry_at = schedule.processing_failed(now, back_at, rand::random::<f64>());
                tracing::error!(%error, %retry_at, failures = schedule.processing_failures(), "processing failed; the commit stays pending");
            }
        }
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
        let Ok((_, snapshot, _)) = repo.load_at(commit) else {
            continue;
        };
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
