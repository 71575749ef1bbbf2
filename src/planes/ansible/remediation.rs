//! `remediation`: uninstall, rollback, ring pin and redeploy as playbook runs,
//! each idempotent on the deployment record's state (a replay answers
//! `applied: false`). Redeploy runs `verify.yml --check --diff` per ring and
//! installs again only where a host would change.

use super::client::Playbook;
use super::deployment::{DeploymentState, RunRecord};
use super::{AnsibleConnector, HostOutcome, identifier};
use crate::planes::{ConnectorError, ErrorCode, Remediation, RemediationResult};
use chrono::{DateTime, Utc};

impl AnsibleConnector {
    pub(super) async fn remediate_locked(
        &self,
        correlation_id: &str,
        remediation: &Remediation,
        now: DateTime<Utc>,
    ) -> Result<RemediationResult, ConnectorError> {
        let mut deployment = self.load_existing(correlation_id).await?;
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
        match remediation {
            Remediation::Uninstall => {
                if deployment.state == DeploymentState::Uninstalled {
                    return Ok(done(false, "already uninstalled".into()));
                }
                let name = format!("{correlation_id}--all--uninstall");
                let version = deployment.delivered_version().to_string();
                self.run(
                    &deployment,
                    name,
                    Playbook::Uninstall,
                    &every_group,
                    &version,
                    false,
                )
                .await?;
                deployment.state = DeploymentState::Uninstalled;
                self.save(&deployment).await?;
                Ok(done(true, "removed from every targeted host".into()))
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
                    return Err(ConnectorError::new(
                        ErrorCode::InvalidRequest,
                        format!(
                            "deployment {correlation_id} was uninstalled; nothing to roll back"
                        ),
                    ));
                }
                let assigned = deployment.assigned_groups();
                let name = format!("{correlation_id}--all--rollback-{}", identifier(to_version));
                self.run(
                    &deployment,
                    name,
                    Playbook::Install,
                    &assigned,
                    to_version,
                    false,
                )
                .await?;
                deployment.state = DeploymentState::RolledBack {
                    to_version: to_version.clone(),
                };
                self.save(&deployment).await?;
                Ok(done(
                    true,
                    format!("{to_version} installed on every assigned host"),
                ))
            }
            Remediation::RingPin { ring } => {
                let Some(pinned) = deployment.rings.iter().position(|r| &r.ring == ring) else {
                    return Err(ConnectorError::new(
                        ErrorCode::InvalidRequest,
                        format!("deployment {correlation_id} has no ring {ring} to pin at"),
                    ));
                };
                if deployment.state == (DeploymentState::Pinned { ring: ring.clone() }) {
                    return Ok(done(false, format!("already pinned at {ring}")));
                }
                if deployment.state != DeploymentState::Active {
                    return Err(ConnectorError::new(
                        ErrorCode::InvalidRequest,
                        format!("deployment {correlation_id} is no longer active"),
                    ));
                }
                let kept: Vec<String> = deployment.rings[..=pinned]
                    .iter()
                    .flat_map(|record| record.groups.iter().cloned())
                    .collect();
                let kept_hosts = self.hosts(&kept, &deployment.exclusions);
                let later: Vec<String> = deployment.rings[pinned + 1..]
                    .iter()
                    .flat_map(|record| record.groups.iter().cloned())
                    .filter(|group| !kept.contains(group))
                    .collect();
                let removed = self
                    .hosts(&later, &deployment.exclusions)
                    .difference(&kept_hosts)
                    .count();
                if !later.is_empty() {
                    let name = format!("{correlation_id}--{ring}--pin");
                    let version = deployment.version.clone();
                    self.run(
                        &deployment,
                        name,
                        Playbook::Uninstall,
                        &later,
                        &version,
                        false,
                    )
                    .await?;
                }
                deployment.state = DeploymentState::Pinned { ring: ring.clone() };
                self.save(&deployment).await?;
                Ok(done(
                    true,
                    format!("pinned at {ring}; {removed} hosts of later rings unassigned"),
                ))
            }
            Remediation::Halt => {
                // Every run of this connector finishes inside the call that
                // started it: nothing is in flight to cancel. Halting
                // records that no ring is run again.
                if deployment.state == DeploymentState::Halted {
                    return Ok(done(false, "already halted".into()));
                }
                if deployment.state == DeploymentState::Uninstalled {
                    return Ok(done(false, "uninstalled: nothing left to halt".into()));
                }
                deployment.state = DeploymentState::Halted;
                self.save(&deployment).await?;
                Ok(done(true, "halted; no ring is run again".into()))
            }
            Remediation::Redeploy => {
                if matches!(
                    deployment.state,
                    DeploymentState::Uninstalled | DeploymentState::Halted
                ) {
                    return Err(ConnectorError::new(
                        ErrorCode::InvalidRequest,
                        format!("deployment {correlation_id} was uninstalled; publish again"),
                    ));
                }
                let version = deployment.delivered_version().to_string();
                let mut repaired = Vec::new();
                for index in 0..deployment.rings.len() {
                    if !deployment.ring_active(index) {
                        continue;
                    }
                    let record = deployment.rings[index].clone();
                    let check = self
                        .run(
                            &deployment,
                            format!("{correlation_id}--{}--verify", record.ring),
                            Playbook::Verify,
                            &record.groups,
                            &version,
                            true,
                        )
                        .await?;
                    let drifted = check
                        .hosts
                        .values()
                        .any(|outcome| outcome != &HostOutcome::Ok { changed: false });
                    if drifted {
                        let name = format!(
                            "{correlation_id}--{}--redeploy-{}",
                            record.ring,
                            record.runs.len()
                        );
                        deployment.rings[index].runs.push(RunRecord {
                            name: name.clone(),
                            at: now,
                        });
                        self.save(&deployment).await?;
                        self.run(
                            &deployment,
                            name,
                            Playbook::Install,
                            &record.groups,
                            &version,
                            false,
                        )
                        .await?;
                        repaired.push(record.ring.clone());
                    }
                }
                if repaired.is_empty() {
                    Ok(done(
                        false,
                        "no host drifted (verify --check --diff)".into(),
                    ))
                } else {
                    Ok(done(
                        true,
                        format!("repaired rings {}", repaired.join(", ")),
                    ))
                }
            }
        }
    }
}
