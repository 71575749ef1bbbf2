//! `remediation`: uninstall, rollback, ring pin and redeploy as job launches,
//! each decided from the jobs already launched for the correlation id, so a
//! replay (or a retry after a lost launch answer) answers `applied: false`.

use super::AwxConnector;
use super::connector::invalid;
use super::history::{self, Action, Evidence, HostState, TaggedJob};
use crate::planes::ansible::deployment::{Deployment, DeploymentState};
use crate::planes::{ConnectorError, Remediation, RemediationResult};
use chrono::{DateTime, Utc};

impl AwxConnector {
    pub(super) async fn remediate_locked(
        &self,
        correlation_id: &str,
        remediation: &Remediation,
        now: DateTime<Utc>,
    ) -> Result<RemediationResult, ConnectorError> {
        let (jobs, deployment) = self.existing(correlation_id).await?;
        let done = |applied: bool, detail: String| RemediationResult {
            action: remediation.clone(),
            applied,
            detail,
        };
        let every_group: Vec<String> = deployment
            .rings
            .iter()
            .flat_map(|record| record.groups.iter().cloned())
            .collect();
        let shared = &self.shared;
        match remediation {
            Remediation::Uninstall => {
                if deployment.state == DeploymentState::Uninstalled {
                    return Ok(done(false, "already uninstalled".into()));
                }
                let version = deployment.delivered_version().to_string();
                let mut launch = self.launch_of(&deployment, Action::Uninstall, &version);
                launch.groups = every_group.clone();
                let limit = history::limit_of(&every_group, &deployment.exclusions);
                let job = self
                    .launch(shared.uninstall_template, &launch, limit, false)
                    .await?;
                Ok(done(
                    true,
                    format!("uninstall job {job} launched on every host of the deployment"),
                ))
            }
            Remediation::Rollback { to_version, .. } => {
                if deployment.state
                    == (DeploymentState::RolledBack {
                        to_version: to_version.clone(),
                    })
                {
                    return Ok(done(false, format!("already rolled back to {to_version}")));
                }
                if deployment.state == DeploymentState::Uninstalled {
                    return Err(invalid(format!(
                        "deployment {correlation_id} was uninstalled; nothing to roll back"
                    )));
                }
                let assigned = deployment.assigned_groups();
                let mut launch = self.launch_of(&deployment, Action::Rollback, to_version);
                launch.groups = assigned.clone();
                let limit = history::limit_of(&assigned, &deployment.exclusions);
                let job = self
                    .launch(shared.install_template, &launch, limit, false)
                    .await?;
                Ok(done(
                    true,
                    format!("install job {job} delivers {to_version} on every assigned host"),
                ))
            }
            Remediation::RingPin { ring } => {
                let Some(pinned) = deployment.rings.iter().position(|r| &r.ring == ring) else {
                    return Err(invalid(format!(
                        "deployment {correlation_id} has no ring {ring} to pin at"
                    )));
                };
                if deployment.state == (DeploymentState::Pinned { ring: ring.clone() }) {
                    return Ok(done(false, format!("already pinned at {ring}")));
                }
                if matches!(
                    deployment.state,
                    DeploymentState::Uninstalled | DeploymentState::RolledBack { .. }
                ) {
                    return Err(invalid(format!(
                        "deployment {correlation_id} is no longer active; nothing to pin"
                    )));
                }
                let kept: Vec<String> = deployment.rings[..=pinned]
                    .iter()
                    .flat_map(|record| record.groups.iter().cloned())
                    .collect();
                let later: Vec<String> = deployment.rings[pinned + 1..]
                    .iter()
                    .flat_map(|record| record.groups.iter().cloned())
                    .filter(|group| !kept.contains(group))
                    .collect();
                let version = deployment.version.clone();
                let mut launch = self.launch_of(&deployment, Action::Pin, &version);
                launch.ring = ring.clone();
                let job = if later.is_empty() {
                    // Nothing to remove: a check-mode run records the pin.
                    launch.groups = kept.clone();
                    let limit = history::limit_of(&kept, &deployment.exclusions);
                    self.launch(shared.verify_template, &launch, limit, true)
                        .await?
                } else {
                    launch.groups = later.clone();
                    let excluded: Vec<String> =
                        kept.iter().chain(&deployment.exclusions).cloned().collect();
                    let limit = history::limit_of(&later, &excluded);
                    self.launch(shared.uninstall_template, &launch, limit, false)
                        .await?
                };
                Ok(done(
                    true,
                    format!(
                        "pinned at {ring}; job {job} removes the app from {} later groups",
                        later.len()
                    ),
                ))
            }
            Remediation::Halt => {
                // Cancel every install job AWX has not finished (POST
                // jobs/{id}/cancel/), then record the halt with a check-mode
                // run that changes nothing; a replay finds the record.
                let mut canceled = 0;
                for job in jobs
                    .iter()
                    .filter(|job| job.launch.action.installs() && !job.status.is_final())
                {
                    if self.client().cancel(job.id).await? {
                        canceled += 1;
                    }
                }
                if deployment.state == DeploymentState::Halted {
                    return Ok(done(
                        canceled > 0,
                        format!("already halted; canceled {canceled} unfinished install job(s)"),
                    ));
                }
                if deployment.state == DeploymentState::Uninstalled {
                    return Ok(done(false, "uninstalled: nothing left to halt".into()));
                }
                let version = deployment.version.clone();
                let mut launch = self.launch_of(&deployment, Action::Halt, &version);
                launch.groups = every_group.clone();
                let limit = history::limit_of(&every_group, &deployment.exclusions);
                let job = self
                    .launch(shared.verify_template, &launch, limit, true)
                    .await?;
                Ok(done(
                    true,
                    format!(
                        "halted; canceled {canceled} unfinished install job(s), recorded by job {job}"
                    ),
                ))
            }
            Remediation::Redeploy => {
                if matches!(
                    deployment.state,
                    DeploymentState::Uninstalled | DeploymentState::Halted
                ) {
                    return Err(invalid(format!(
                        "deployment {correlation_id} was uninstalled; publish a new intent"
                    )));
                }
                self.redeploy(&jobs, &deployment, now)
                    .await
                    .map(|(applied, detail)| done(applied, detail))
            }
        }
    }

    /// Installs the delivered version again on every assigned host whose
    /// last attempt failed or that no finished job reached; when none lacks
    /// it and nothing runs, launches the verify template in check mode once,
    /// so that the next redeploy repairs the hosts it finds changed.
    async fn redeploy(
        &self,
        jobs: &[TaggedJob],
        deployment: &Deployment,
        now: DateTime<Utc>,
    ) -> Result<(bool, String), ConnectorError> {
        let assigned = deployment.assigned_groups();
        let mut groups = assigned.clone();
        groups.extend(deployment.exclusions.iter().cloned());
        let inventory = self.inventory(&groups).await?;
        let results = self.results(jobs, now).await?;
        let evidence = Evidence::new(jobs, &results, &inventory, now);
        let delivered = deployment.delivered_version().to_string();
        let hosts = history::hosts_of(&assigned, &deployment.exclusions, &inventory);
        let lacking: Vec<String> = hosts
            .iter()
            .filter(|host| !evidence.in_flight(host))
            .filter(|host| {
                matches!(
                    evidence.state_of(host, &delivered),
                    HostState::Failed(_) | HostState::NotReported
                )
            })
            .cloned()
            .collect();
        if !lacking.is_empty() {
            let mut launch = self.launch_of(deployment, Action::Redeploy, &delivered);
            launch.groups = assigned;
            let job = self
                .launch(
                    self.shared.install_template,
                    &launch,
                    lacking.join(":"),
                    false,
                )
                .await?;
            return Ok((
                true,
                format!(
                    "install job {job} delivers {delivered} again on {} hosts lacking it",
                    lacking.len()
                ),
            ));
        }
        if hosts.iter().any(|host| evidence.in_flight(host)) {
            return Ok((
                false,
                "no host lacks the version; jobs are still running".into(),
            ));
        }
        let last_change = jobs
            .iter()
            .filter(|job| job.launch.action != Action::Verify)
            .map(|job| job.id)
            .max();
        let verified = jobs
            .iter()
            .any(|job| job.launch.action == Action::Verify && Some(job.id) > last_change);
        if verified || hosts.is_empty() {
            return Ok((false, "no host lacks the version (verified)".into()));
        }
        let mut launch = self.launch_of(deployment, Action::Verify, &delivered);
        launch.groups = assigned.clone();
        let limit = history::limit_of(&assigned, &deployment.exclusions);
        let job = self
            .launch(self.shared.verify_template, &launch, limit, true)
            .await?;
        Ok((
            false,
            format!(
                "no host lacks the version; verify job {job} checks for drift in check mode, redeploy again once it finished"
            ),
        ))
    }
}
