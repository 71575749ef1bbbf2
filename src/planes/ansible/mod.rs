//! `ansible`: the Ansible connector, driving the real `ansible-playbook`.
//!
//! The plane is an inventory: plane groups are inventory groups (from the
//! connector's config), hosts are `ansible_connection=local` hosts whose
//! "installed software" is a state directory, `<work dir>/hosts/<host>/installed/
//! <application>.json`. A publish generates an inventory from the ring's groups
//! (less the excluded ones) and runs the shipped `install.yml` with the JSON
//! callback in a run folder named `<correlation id>--<ring>--install`; a retried
//! publish finds the finished run there and does not run again (see [`client`]).
//! Status reads each host's state and the per-host results of the ring's runs:
//! the delivered version on the host → installed, failed or unreachable in the
//! last run that reached it → failed, never run → pending. Redeploy runs
//! `verify.yml` with `--check --diff` and repairs the rings that would change.
//!
//! The playbooks (`playbooks/`) are embedded and written into each run folder;
//! `playbook_dir` in the config overrides them. The plane's behaviour as the
//! connector uses it is in `../shared/reference/execution-planes.md` section 5.
//! [`awx`] drives the same plane through AWX / Automation Controller, the
//! second way to run it (`Connector::Awx`: job templates launched per ring,
//! host summaries read back).

pub mod awx;
mod client;
mod deployment;
mod remediation;
mod status;
#[cfg(test)]
mod tests;

pub use client::{HostOutcome, Playbook, RunReport, identifier, parse_report};

use crate::model::Plane;
use crate::planes::{
    ConnectorError, DeploymentStatus, ErrorCode, ExecutionPlaneConnector, PublishRequest,
    PublishResult, Remediation, RemediationResult,
};
use chrono::{DateTime, Utc};
use client::{PlaybookRunner, RunSpec};
use deployment::{Deployment, DeploymentState, DeploymentStore, RingRecord, RunRecord};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// How the Ansible connector runs: `{"type": "ansible", "work_dir": "/var/lib/
/// ringmaster/ansible", "inventory": {"ring-canary": ["host-1", "host-2"]}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnsibleConfig {
    /// Holds `deployments/`, `runs/` and `hosts/`.
    pub work_dir: PathBuf,
    /// Inventory group → hosts: the plane groups entitlements name.
    pub inventory: BTreeMap<String, Vec<String>>,
    /// A directory with `install.yml`, `uninstall.yml`, `verify.yml` that
    /// replace the shipped playbooks (e.g. from the governed repo).
    #[serde(default)]
    pub playbook_dir: Option<PathBuf>,
    /// The `ansible-playbook` to run.
    #[serde(default = "default_program")]
    pub ansible_playbook: PathBuf,
    /// A run taking longer is stopped and reported as a timeout.
    #[serde(default = "default_run_timeout")]
    pub run_timeout_seconds: u64,
}

fn default_program() -> PathBuf {
    PathBuf::from("ansible-playbook")
}

fn default_run_timeout() -> u64 {
    600
}

impl AnsibleConfig {
    pub fn new(work_dir: impl Into<PathBuf>, inventory: BTreeMap<String, Vec<String>>) -> Self {
        AnsibleConfig {
            work_dir: work_dir.into(),
            inventory,
            playbook_dir: None,
            ansible_playbook: default_program(),
            run_timeout_seconds: default_run_timeout(),
        }
    }
}

/// An Ansible configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AnsibleConfigError {
    /// No inventory group: nothing could ever be targeted.
    #[error("ansible: the inventory is empty; list the plane groups and their hosts")]
    EmptyInventory,
    /// Group and host names become inventory entries and directory names.
    #[error("ansible: {what} {name:?} may hold only letters, digits, '-', '_' and '.'")]
    BadName { what: &'static str, name: String },
    /// The override directory lacks a playbook.
    #[error("ansible: playbook_dir {} has no {file}", dir.display())]
    MissingPlaybook { dir: PathBuf, file: &'static str },
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|character| character.is_ascii_alphanumeric() || "-_.".contains(character))
}

/// A handle to one Ansible work directory. Clones share the per-deployment
/// locks and the run counter.
#[derive(Debug, Clone)]
pub struct AnsibleConnector {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    runner: PlaybookRunner,
    store: DeploymentStore,
    inventory: BTreeMap<String, Vec<String>>,
    /// One lock per correlation id: calls for one deployment take turns.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// `ansible-playbook` processes started by this connector.
    runs_started: AtomicU64,
}

fn io_error(what: &str, error: std::io::Error) -> ConnectorError {
    ConnectorError::new(
        ErrorCode::InvalidRequest,
        format!("ansible work directory: {what}: {error}"),
    )
}

impl AnsibleConnector {
    pub fn new(config: &AnsibleConfig) -> Result<AnsibleConnector, AnsibleConfigError> {
        if config.inventory.is_empty() {
            return Err(AnsibleConfigError::EmptyInventory);
        }
        for (group, hosts) in &config.inventory {
            if !valid_name(group) {
                return Err(AnsibleConfigError::BadName {
                    what: "group",
                    name: group.clone(),
                });
            }
            if let Some(host) = hosts.iter().find(|host| !valid_name(host)) {
                return Err(AnsibleConfigError::BadName {
                    what: "host",
                    name: host.clone(),
                });
            }
        }
        if let Some(dir) = &config.playbook_dir {
            for playbook in [Playbook::Install, Playbook::Uninstall, Playbook::Verify] {
                if !dir.join(playbook.file_name()).is_file() {
                    return Err(AnsibleConfigError::MissingPlaybook {
                        dir: dir.clone(),
                        file: playbook.file_name(),
                    });
                }
            }
        }
        let runner = PlaybookRunner {
            program: config.ansible_playbook.clone(),
            playbook_dir: config.playbook_dir.clone(),
            runs_dir: config.work_dir.join("runs"),
            hosts_dir: config.work_dir.join("hosts"),
            timeout: Duration::from_secs(config.run_timeout_seconds.max(1)),
        };
        Ok(AnsibleConnector {
            shared: Arc::new(Shared {
                runner,
                store: DeploymentStore {
                    dir: config.work_dir.join("deployments"),
                },
                inventory: config.inventory.clone(),
                locks: Mutex::new(HashMap::new()),
                runs_started: AtomicU64::new(0),
            }),
        })
    }

    /// `ansible-playbook` processes this connector (and its clones) started.
    pub fn runs_started(&self) -> u64 {
        self.shared.runs_started.load(Ordering::Relaxed)
    }

    /// The state directory of a host.
    pub fn host_dir(&self, host: &str) -> PathBuf {
        self.shared.runner.host_dir(host)
    }

    fn lock(&self, correlation_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .shared
            .locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        locks.entry(correlation_id.to_string()).or_default().clone()
    }

    async fn load(&self, correlation_id: &str) -> Result<Option<Deployment>, ConnectorError> {
        if !valid_name(correlation_id) {
            return Err(ConnectorError::new(
                ErrorCode::InvalidRequest,
                format!("correlation id {correlation_id:?} is not a valid run folder name"),
            ));
        }
        self.shared
            .store
            .load(correlation_id)
            .await
            .map_err(|error| io_error(&format!("reading deployment {correlation_id}"), error))
    }

    async fn load_existing(&self, correlation_id: &str) -> Result<Deployment, ConnectorError> {
        self.load(correlation_id).await?.ok_or_else(|| {
            ConnectorError::new(
                ErrorCode::ResourceNotFound,
                format!("ansible holds no deployment with correlation id {correlation_id}"),
            )
        })
    }

    async fn save(&self, deployment: &Deployment) -> Result<(), ConnectorError> {
        self.shared.store.save(deployment).await.map_err(|error| {
            io_error(
                &format!("writing deployment {}", deployment.correlation_id),
                error,
            )
        })
    }

    /// The hosts of `groups`, less the hosts of `exclusions`, sorted and distinct.
    fn hosts(&self, groups: &[String], exclusions: &[String]) -> BTreeSet<String> {
        let excluded: BTreeSet<&String> = exclusions
            .iter()
            .filter_map(|group| self.shared.inventory.get(group))
            .flatten()
            .collect();
        groups
            .iter()
            .filter_map(|group| self.shared.inventory.get(group))
            .flatten()
            .filter(|host| !excluded.contains(host))
            .cloned()
            .collect()
    }

    /// The inventory of a run over `groups`, excluded hosts left out.
    fn run_groups(
        &self,
        groups: &[String],
        exclusions: &[String],
    ) -> BTreeMap<String, Vec<String>> {
        let allowed = self.hosts(groups, exclusions);
        groups
            .iter()
            .map(|group| {
                let hosts = self
                    .shared
                    .inventory
                    .get(group)
                    .into_iter()
                    .flatten()
                    .filter(|host| allowed.contains(*host))
                    .cloned()
                    .collect();
                (group.clone(), hosts)
            })
            .collect()
    }

    async fn run(
        &self,
        deployment: &Deployment,
        name: String,
        playbook: Playbook,
        groups: &[String],
        version: &str,
        check: bool,
    ) -> Result<RunReport, ConnectorError> {
        let variables = BTreeMap::from([
            (
                "ringmaster_app".to_string(),
                deployment.application_id.clone(),
            ),
            ("ringmaster_version".to_string(), version.to_string()),
            (
                "ringmaster_correlation_id".to_string(),
                deployment.correlation_id.clone(),
            ),
        ]);
        let spec = RunSpec {
            name,
            playbook,
            groups: self.run_groups(groups, &deployment.exclusions),
            variables,
            check,
        };
        let report = self.shared.runner.run(&spec).await?;
        if report.ran {
            self.shared.runs_started.fetch_add(1, Ordering::Relaxed);
        }
        Ok(report)
    }

    /// The version a host runs, from its state directory.
    async fn host_version(&self, host: &str, application_id: &str) -> Option<String> {
        let path = self
            .host_dir(host)
            .join("installed")
            .join(format!("{application_id}.json"));
        let text = tokio::fs::read_to_string(path).await.ok()?;
        let value: serde_json::Value = serde_json::from_str(&text).ok()?;
        value.get("version")?.as_str().map(str::to_string)
    }

    async fn report(&self, run: &str) -> Option<RunReport> {
        let path = self.shared.runner.runs_dir.join(run).join("result.json");
        let text = tokio::fs::read_to_string(path).await.ok()?;
        parse_report(&text).ok()
    }

    fn validate(&self, request: &PublishRequest) -> Result<(), ConnectorError> {
        let invalid = |message: String| ConnectorError::new(ErrorCode::InvalidRequest, message);
        if request.plane != Plane::Ansible {
            return Err(invalid(format!(
                "request for plane {} sent to the ansible connector",
                request.plane.as_str()
            )));
        }
        if request.groups.is_empty() {
            return Err(invalid(format!(
                "ring {} of {} names no inventory group",
                request.ring, request.correlation_id
            )));
        }
        request.artifact.check_sha256()?;
        for (what, name) in [
            ("ring", &request.ring),
            ("application id", &request.application_id),
            ("correlation id", &request.correlation_id),
        ] {
            if !valid_name(name) {
                return Err(invalid(format!(
                    "{what} {name:?} may hold only letters, digits, '-', '_' and '.'"
                )));
            }
        }
        if let Some(unknown) = request
            .groups
            .iter()
            .chain(&request.exclusions)
            .find(|group| !self.shared.inventory.contains_key(*group))
        {
            return Err(ConnectorError::new(
                ErrorCode::ResourceNotFound,
                format!(
                    "inventory group {unknown} does not exist; add it to the ansible inventory"
                ),
            ));
        }
        Ok(())
    }

    async fn publish_locked(
        &self,
        request: &PublishRequest,
        now: DateTime<Utc>,
    ) -> Result<PublishResult, ConnectorError> {
        self.validate(request)?;
        let external_id = format!("{}@{}", request.application_id, request.correlation_id);
        let mut deployment = match self.load(&request.correlation_id).await? {
            Some(deployment) => deployment,
            None => Deployment {
                correlation_id: request.correlation_id.clone(),
                application_id: request.application_id.clone(),
                version: request.version.clone(),
                exclusions: request.exclusions.clone(),
                rings: Vec::new(),
                state: DeploymentState::Active,
            },
        };
        if deployment.version != request.version
            || deployment.application_id != request.application_id
        {
            return Err(ConnectorError::new(
                ErrorCode::InvalidRequest,
                format!(
                    "correlation id {} delivers {} {}, not {} {}",
                    request.correlation_id,
                    deployment.application_id,
                    deployment.version,
                    request.application_id,
                    request.version
                ),
            ));
        }
        let known = deployment
            .rings
            .iter()
            .position(|record| record.ring == request.ring);
        match &deployment.state {
            DeploymentState::Active => {}
            DeploymentState::Halted => {
                return Err(ConnectorError::new(
                    ErrorCode::DeploymentHalted,
                    format!(
                        "deployment {} was halted; ring {} is not run",
                        request.correlation_id, request.ring
                    ),
                ));
            }
            DeploymentState::Pinned { ring } => {
                let pinned_at = deployment.rings.iter().position(|r| &r.ring == ring);
                if known.is_none() || known > pinned_at {
                    return Err(ConnectorError::new(
                        ErrorCode::RingPinned,
                        format!(
                            "deployment {} is pinned at {ring}; ring {} is refused",
                            request.correlation_id, request.ring
                        ),
                    ));
                }
            }
            DeploymentState::RolledBack { .. } | DeploymentState::Uninstalled => {
                return Err(ConnectorError::new(
                    ErrorCode::InvalidRequest,
                    format!(
                        "deployment {} was {}; publish a new intent instead",
                        request.correlation_id,
                        match deployment.state {
                            DeploymentState::Uninstalled => "uninstalled",
                            _ => "rolled back",
                        }
                    ),
                ));
            }
        }
        let run_name = format!("{}--{}--install", request.correlation_id, request.ring);
        let created = match known {
            Some(index) => {
                let mut groups = request.groups.clone();
                groups.sort();
                let mut recorded = deployment.rings[index].groups.clone();
                recorded.sort();
                if groups != recorded {
                    return Err(ConnectorError::new(
                        ErrorCode::InvalidRequest,
                        format!(
                            "ring {} of {} was published to {recorded:?}, not {groups:?}",
                            request.ring, request.correlation_id
                        ),
                    ));
                }
                false
            }
            None => {
                deployment.rings.push(RingRecord {
                    ring: request.ring.clone(),
                    groups: request.groups.clone(),
                    runs: vec![RunRecord {
                        name: run_name.clone(),
                        at: now,
                    }],
                });
                // Recorded before the run: a crash mid-run leaves a record whose
                // run a retry completes.
                self.save(&deployment).await?;
                true
            }
        };
        let report = self
            .run(
                &deployment,
                run_name,
                Playbook::Install,
                &request.groups,
                &request.version,
                false,
            )
            .await?;
        tracing::info!(
            correlation_id = %request.correlation_id,
            ring = %request.ring,
            hosts = report.hosts.len(),
            ran = report.ran,
            "ansible install"
        );
        Ok(PublishResult {
            external_id,
            created,
        })
    }
}

impl ExecutionPlaneConnector for AnsibleConnector {
    /// Idempotent: a ring already recorded is not recorded again, and its
    /// install run is read from its folder when it finished before.
    async fn publish(
        &self,
        request: &PublishRequest,
        now: DateTime<Utc>,
    ) -> Result<PublishResult, ConnectorError> {
        let lock = self.lock(&request.correlation_id);
        let _guard = lock.lock().await;
        self.publish_locked(request, now).await
    }

    async fn query_status(
        &self,
        correlation_id: &str,
        _now: DateTime<Utc>,
    ) -> Result<DeploymentStatus, ConnectorError> {
        let deployment = self.load_existing(correlation_id).await?;
        Ok(self.status(&deployment).await)
    }

    async fn remediate(
        &self,
        correlation_id: &str,
        remediation: &Remediation,
        now: DateTime<Utc>,
    ) -> Result<RemediationResult, ConnectorError> {
        let lock = self.lock(correlation_id);
        let _guard = lock.lock().await;
        self.remediate_locked(correlation_id, remediation, now)
            .await
    }

    async fn verify_idempotency(
        &self,
        correlation_id: &str,
        _now: DateTime<Utc>,
    ) -> Result<bool, ConnectorError> {
        Ok(self.load(correlation_id).await?.is_some())
    }
}
