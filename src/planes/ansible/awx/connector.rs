//! `connector`: the Ansible plane through AWX / Automation Controller.
//!
//! A ring is published by launching the install template with `limit` set to
//! the ring's inventory groups less the excluded ones, and the deployment in
//! `extra_vars` (see [`history`](super::history)). Before any launch the
//! connector lists the deployment's jobs (`GET jobs/?job_template__in=..`,
//! matched on `extra_vars` here: AWX refuses filters on `extra_vars`) and
//! launches only what is missing, so a retry after a lost launch answer finds
//! the job instead of launching twice. Calls for one correlation id take turns
//! in this process; two processes could still race (AWX cannot make
//! find-then-launch atomic).
//!
//! The connector never waits for a job: a job not finished as of `now` leaves
//! its hosts pending, and the next `query_status` reads it again. Remediations
//! launch the uninstall template (uninstall, pin), the install template with
//! the earlier version (rollback) or for the hosts lacking the version
//! (redeploy), and the verify template in check mode to look for drift.

use super::history::{self, Action, Evidence, Launch, TaggedJob};
use super::{AwxClient, AwxConfig, AwxConfigError, HostSummary, JobType, LaunchRequest};
use crate::model::Plane;
use crate::planes::ansible::deployment::{Deployment, DeploymentState};
use crate::planes::{
    ConnectorError, DeploymentStatus, ErrorCode, ExecutionPlaneConnector, PublishRequest,
    PublishResult, Remediation, RemediationResult,
};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

/// A handle to one controller. Clones share the client (its token and
/// request cap) and the per-deployment locks.
#[derive(Clone)]
pub struct AwxConnector {
    pub(super) shared: Arc<Shared>,
}

pub(super) struct Shared {
    client: AwxClient,
    base_url: String,
    inventory_id: u64,
    pub(super) install_template: u64,
    pub(super) uninstall_template: u64,
    pub(super) verify_template: u64,
    /// One lock per correlation id: calls for one deployment take turns.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl fmt::Debug for AwxConnector {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("AwxConnector")
            .field("base_url", &self.shared.base_url)
            .field("inventory_id", &self.shared.inventory_id)
            .finish_non_exhaustive()
    }
}

pub(super) fn invalid(message: String) -> ConnectorError {
    ConnectorError::new(ErrorCode::InvalidRequest, message)
}

/// A name that can stand in a host pattern: letters, digits, `-`, `_`, `.`.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|character| character.is_ascii_alphanumeric() || "-_.".contains(character))
}

impl AwxConnector {
    /// A connector as configured; reads the token from its source.
    pub fn new(config: &AwxConfig) -> Result<AwxConnector, AwxConfigError> {
        let token = config.resolve()?;
        let mut client = AwxClient::new(&config.base_url, token, config.request_timeout)
            .map_err(|error| AwxConfigError::Http {
                reason: error.message,
            })?
            .with_limits(config.call_budget(), config.page_size);
        if let Some(path) = &config.token_file {
            client = client.with_token_file(path.clone());
        }
        Ok(AwxConnector {
            shared: Arc::new(Shared {
                client,
                base_url: config.base_url.clone(),
                inventory_id: config.inventory_id,
                install_template: config.install_template_id,
                uninstall_template: config.uninstall_template_id,
                verify_template: config.verify_template_id,
                locks: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The shared send loop (`planes::http_send`): the plane's call budget
    /// and its coalesced reads, shared by every clone.
    pub fn transport(&self) -> &crate::planes::http_send::Transport {
        self.client().transport()
    }

    pub(super) fn client(&self) -> &AwxClient {
        &self.shared.client
    }

    fn lock_for(&self, correlation_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .shared
            .locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(locks.entry(correlation_id.to_string()).or_default())
    }

    /// The deployment's jobs on the controller, oldest first.
    async fn jobs_of(&self, correlation_id: &str) -> Result<Vec<TaggedJob>, ConnectorError> {
        let shared = &self.shared;
        // AWX refuses filters on extra_vars (403): list the templates' jobs
        // and match the correlation id here (see `CorrelationLookup`).
        let filters = format!(
            "job_template__in={},{},{}&order_by=id",
            shared.install_template, shared.uninstall_template, shared.verify_template
        );
        let mut jobs: Vec<TaggedJob> = self
            .client()
            .jobs(&filters)
            .await?
            .iter()
            .filter_map(|summary| TaggedJob::of(summary, correlation_id))
            .collect();
        jobs.sort_by_key(|job| job.id);
        Ok(jobs)
    }

    pub(super) async fn existing(
        &self,
        correlation_id: &str,
    ) -> Result<(Vec<TaggedJob>, Deployment), ConnectorError> {
        let jobs = self.jobs_of(correlation_id).await?;
        match history::deployment(correlation_id, &jobs) {
            Some(deployment) => Ok((jobs, deployment)),
            None => Err(ConnectorError::new(
                ErrorCode::ResourceNotFound,
                format!(
                    "awx holds no job launched for correlation id {correlation_id}; publish it first"
                ),
            )),
        }
    }

    /// Inventory group → its hosts now; a group the inventory lacks has none.
    pub(super) async fn inventory(
        &self,
        groups: impl IntoIterator<Item = &String>,
    ) -> Result<BTreeMap<String, Vec<String>>, ConnectorError> {
        let mut inventory = BTreeMap::new();
        for group in groups {
            if inventory.contains_key(group) {
                continue;
            }
            let hosts = match self
                .client()
                .group_id(self.shared.inventory_id, group)
                .await?
            {
                Some(id) => self.client().group_hosts(id).await?,
                None => Vec::new(),
            };
            inventory.insert(group.clone(), hosts);
        }
        Ok(inventory)
    }

    /// Host summaries of every job finished as of `now`.
    pub(super) async fn results(
        &self,
        jobs: &[TaggedJob],
        now: DateTime<Utc>,
    ) -> Result<BTreeMap<u64, Vec<HostSummary>>, ConnectorError> {
        let mut results = BTreeMap::new();
        for job in jobs.iter().filter(|job| job.finished_by(now)) {
            results.insert(job.id, self.client().host_summaries(job.id).await?);
        }
        Ok(results)
    }

    pub(super) async fn launch(
        &self,
        template: u64,
        launch: &Launch,
        limit: String,
        check: bool,
    ) -> Result<u64, ConnectorError> {
        let request = LaunchRequest {
            extra_vars: launch.extra_vars(),
            limit,
            job_type: check.then_some(JobType::Check),
            diff_mode: check.then_some(true),
        };
        let job = self.client().launch(template, &request).await?;
        tracing::info!(
            correlation_id = %launch.correlation_id,
            action = launch.action.as_str(),
            ring = %launch.ring,
            template,
            job,
            "awx job launched"
        );
        Ok(job)
    }

    pub(super) fn launch_of(
        &self,
        deployment: &Deployment,
        action: Action,
        version: &str,
    ) -> Launch {
        Launch {
            correlation_id: deployment.correlation_id.clone(),
            application_id: deployment.application_id.clone(),
            version: version.to_string(),
            action,
            ring: String::new(),
            groups: Vec::new(),
            exclusions: deployment.exclusions.clone(),
        }
    }

    fn check_request(request: &PublishRequest) -> Result<(), ConnectorError> {
        if request.plane != Plane::Ansible {
            return Err(invalid(format!(
                "request for plane {} sent to the awx connector",
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
        for group in request.groups.iter().chain(&request.exclusions) {
            if !plain_name(group) {
                return Err(invalid(format!(
                    "inventory group {group:?} may hold only letters, digits, '-', '_' and '.' (it goes into a host pattern)"
                )));
            }
        }
        for (what, value) in [
            ("ring", &request.ring),
            ("application id", &request.application_id),
            ("correlation id", &request.correlation_id),
            ("version", &request.version),
        ] {
            if value.trim().is_empty() {
                return Err(invalid(format!("{what} is empty")));
            }
        }
        Ok(())
    }

    async fn publish_locked(
        &self,
        request: &PublishRequest,
    ) -> Result<PublishResult, ConnectorError> {
        let correlation_id = &request.correlation_id;
        let jobs = self.jobs_of(correlation_id).await?;
        let first_publish = jobs
            .iter()
            .find(|job| job.launch.action == Action::Publish)
            .map(|job| job.id);
        if let Some(deployment) = history::deployment(correlation_id, &jobs) {
            if deployment.application_id != request.application_id
                || deployment.version != request.version
            {
                return Err(invalid(format!(
                    "correlation id {correlation_id} delivers {} {} on awx, not {} {}; a new version is a new intent",
                    deployment.application_id,
                    deployment.version,
                    request.application_id,
                    request.version
                )));
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
                            "deployment {correlation_id} was halted on awx; ring {} is not launched",
                            request.ring
                        ),
                    ));
                }
                DeploymentState::Pinned { ring } => {
                    let pinned_at = deployment.rings.iter().position(|r| &r.ring == ring);
                    if known.is_none() || known > pinned_at {
                        return Err(ConnectorError::new(
                            ErrorCode::RingPinned,
                            format!(
                                "deployment {correlation_id} is pinned at {ring}; ring {} is refused",
                                request.ring
                            ),
                        ));
                    }
                }
                DeploymentState::RolledBack { .. } | DeploymentState::Uninstalled => {
                    return Err(invalid(format!(
                        "deployment {correlation_id} was {} on awx; publish a new intent instead",
                        if deployment.state == DeploymentState::Uninstalled {
                            "uninstalled"
                        } else {
                            "rolled back"
                        }
                    )));
                }
            }
            if let Some(index) = known {
                let mut wanted = request.groups.clone();
                wanted.sort();
                let mut recorded = deployment.rings[index].groups.clone();
                recorded.sort();
                if wanted != recorded {
                    return Err(invalid(format!(
                        "ring {} of {correlation_id} was published to {recorded:?}, not {wanted:?}",
                        request.ring
                    )));
                }
                return Ok(PublishResult {
                    external_id: format!("awx-job-{}", first_publish.unwrap_or_default()),
                    created: false,
                });
            }
        }
        for group in request.groups.iter().chain(&request.exclusions) {
            if self
                .client()
                .group_id(self.shared.inventory_id, group)
                .await?
                .is_none()
            {
                return Err(ConnectorError::new(
                    ErrorCode::ResourceNotFound,
                    format!(
                        "inventory group {group} does not exist in awx inventory {}; check the entitlement",
                        self.shared.inventory_id
                    ),
                ));
            }
        }
        let launch = Launch {
            correlation_id: correlation_id.clone(),
            application_id: request.application_id.clone(),
            version: request.version.clone(),
            action: Action::Publish,
            ring: request.ring.clone(),
            groups: request.groups.clone(),
            exclusions: request.exclusions.clone(),
        };
        let limit = history::limit_of(&request.groups, &request.exclusions);
        let job = self
            .launch(self.shared.install_template, &launch, limit, false)
            .await?;
        Ok(PublishResult {
            external_id: format!("awx-job-{}", first_publish.unwrap_or(job)),
            created: true,
        })
    }

    async fn status(
        &self,
        correlation_id: &str,
        now: DateTime<Utc>,
    ) -> Result<DeploymentStatus, ConnectorError> {
        let (jobs, deployment) = self.existing(correlation_id).await?;
        let groups: Vec<String> = deployment
            .rings
            .iter()
            .flat_map(|record| record.groups.iter().cloned())
            .chain(deployment.exclusions.iter().cloned())
            .collect();
        let inventory = self.inventory(&groups).await?;
        let results = self.results(&jobs, now).await?;
        let evidence = Evidence::new(&jobs, &results, &inventory, now);
        Ok(evidence.status(&deployment))
    }
}

impl ExecutionPlaneConnector for AwxConnector {
    /// Idempotent: launches the install template only for a ring no job of
    /// the correlation id was launched for yet.
    async fn publish(
        &self,
        request: &PublishRequest,
        _now: DateTime<Utc>,
    ) -> Result<PublishResult, ConnectorError> {
        Self::check_request(request)?;
        let lock = self.lock_for(&request.correlation_id);
        let _turn = lock.lock().await;
        self.publish_locked(request).await
    }

    async fn query_status(
        &self,
        correlation_id: &str,
        now: DateTime<Utc>,
    ) -> Result<DeploymentStatus, ConnectorError> {
        self.status(correlation_id, now).await
    }

    /// Idempotent: each action is decided from the jobs already launched.
    async fn remediate(
        &self,
        correlation_id: &str,
        remediation: &Remediation,
        now: DateTime<Utc>,
    ) -> Result<RemediationResult, ConnectorError> {
        let lock = self.lock_for(correlation_id);
        let _turn = lock.lock().await;
        self.remediate_locked(correlation_id, remediation, now)
            .await
    }

    async fn verify_idempotency(
        &self,
        correlation_id: &str,
        _now: DateTime<Utc>,
    ) -> Result<bool, ConnectorError> {
        let jobs = self.jobs_of(correlation_id).await?;
        Ok(history::deployment(correlation_id, &jobs).is_some())
    }
}
