//! `status`: a deployment's per-ring host counts and what the hosts hold,
//! from the host state directories and the per-host results of each ring's runs.

use super::deployment::Deployment;
use super::{AnsibleConnector, HostOutcome};
use crate::planes::{DeploymentStatus, ObservedState, RingStatus};
use std::collections::BTreeMap;

impl AnsibleConnector {
    pub(super) async fn status(&self, deployment: &Deployment) -> DeploymentStatus {
        let delivered = deployment.delivered_version().to_string();
        let mut rings = BTreeMap::new();
        for (index, record) in deployment.rings.iter().enumerate() {
            let mut ring = RingStatus::default();
            if deployment.ring_active(index) {
                let mut reports = Vec::new();
                for run in &record.runs {
                    if let Some(report) = self.report(&run.name).await {
                        reports.push((run.at, report));
                    }
                }
                for (at, report) in &reports {
                    if report
                        .hosts
                        .values()
                        .any(|outcome| matches!(outcome, HostOutcome::Ok { .. }))
                        && ring.first_install_at.is_none()
                    {
                        ring.first_install_at = Some(*at);
                    }
                    if !report.hosts.is_empty() {
                        ring.last_report_at = Some(*at);
                    }
                }
                for host in self.hosts(&record.groups, &deployment.exclusions) {
                    ring.targeted += 1;
                    let runs_version = self
                        .host_version(&host, &deployment.application_id)
                        .await
                        .is_some_and(|version| version == delivered);
                    let last = reports
                        .iter()
                        .rev()
                        .find_map(|(_, report)| report.hosts.get(&host));
                    match (runs_version, last) {
                        (true, _) => ring.installed += 1,
                        (false, Some(HostOutcome::Failed { reason })) => {
                            ring.failed += 1;
                            *ring.failure_reasons.entry(reason.clone()).or_default() += 1;
                        }
                        (false, Some(HostOutcome::Unreachable)) => {
                            ring.failed += 1;
                            *ring
                                .failure_reasons
                                .entry("unreachable".into())
                                .or_default() += 1;
                        }
                        _ => ring.pending += 1,
                    }
                }
                if ring.installed == 0 {
                    ring.first_install_at = None;
                }
            }
            rings.insert(record.ring.clone(), ring);
        }
        let assigned_groups = deployment.assigned_groups();
        let assigned_devices = self.hosts(&assigned_groups, &deployment.exclusions).len() as u32;
        let every_group: Vec<String> = deployment
            .rings
            .iter()
            .flat_map(|record| record.groups.iter().cloned())
            .collect();
        let mut installed_versions: BTreeMap<String, u32> = BTreeMap::new();
        for host in self.hosts(&every_group, &deployment.exclusions) {
            if let Some(version) = self.host_version(&host, &deployment.application_id).await {
                *installed_versions.entry(version).or_default() += 1;
            }
        }
        let version = installed_versions
            .iter()
            .max_by_key(|(version, count)| (**count, **version == delivered))
            .map(|(version, _)| version.clone());
        DeploymentStatus {
            correlation_id: deployment.correlation_id.clone(),
            rings,
            observed: ObservedState {
                version,
                assigned_groups,
                assigned_devices,
                installed_versions,
            },
        }
    }
}
