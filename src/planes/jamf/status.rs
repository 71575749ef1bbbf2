//! `status`: what a deployment's computers report on Jamf Pro, as of `now`.
//!
//! A ring's computers are the members of the computer groups its policy is
//! scoped to, minus the members of its exclusion groups, while the policy
//! exists and is enabled. Each computer's state comes from the two sources the
//! reference names, read so that a status query costs pages, not computers:
//! the inventory (`v3/computers-inventory`, sections GENERAL and
//! APPLICATIONS, a page of computer ids per request; apps matched by bundle
//! id, or by app path or name for other detections) and, only for a computer
//! that contacted Jamf since its ring went live and still does not report the
//! delivered version, its policy logs (`computerhistory/.../subset/PolicyLogs`;
//! `Completed` or `Failed`, pending runs do not appear). Installed means the
//! delivered version in inventory, reported by `now`; failed means a
//! `Failed` latest log of the ring's policy; everything else is pending (no
//! check-in since the ring went live, no log yet, or a `Completed` log with
//! a version other than the one delivered, e.g. a device reverted since).

use super::JamfConnector;
use super::lookup::{self, DeploymentPolicy, FoundPackage, InventoryApp};
use super::wire::{self, PackageInfo, PolicyRole};
use crate::planes::ledger::{DeploymentState, Ledger};
use crate::planes::{ConnectorError, DeploymentStatus, ErrorCode, ObservedState, RingStatus};
use chrono::{DateTime, TimeZone, Utc};
use futures_util::StreamExt as _;
use std::collections::{BTreeMap, BTreeSet, HashMap};

pub fn not_found(correlation_id: &str) -> ConnectorError {
    ConnectorError::new(
        ErrorCode::ResourceNotFound,
        format!("no package with correlation id {correlation_id} on jamf; publish it first"),
    )
}

/// Everything Jamf holds for one deployment.
pub struct Deployment {
    pub package: FoundPackage,
    pub ledger: Ledger,
    pub policies: Vec<DeploymentPolicy>,
}

impl Deployment {
    /// `{application name} {version}`, read back from the package name.
    pub fn label(&self) -> String {
        let suffix = format!(" corr:{}", self.ledger.correlation_id);
        self.package
            .name
            .strip_suffix(&suffix)
            .unwrap_or(&self.package.name)
            .to_string()
    }

    pub fn ring_policy(&self, ring: &str) -> Option<&DeploymentPolicy> {
        self.policies
            .iter()
            .find(|policy| policy.role == PolicyRole::Ring(ring.to_string()))
    }
}

/// The deployment of a correlation id, or `resource_not_found`.
pub async fn deployment(
    connector: &JamfConnector,
    correlation_id: &str,
) -> Result<Deployment, ConnectorError> {
    let client = connector.client();
    let package = lookup::find_package(client, correlation_id)
        .await?
        .ok_or_else(|| not_found(correlation_id))?;
    let ledger = package.ledger().ok_or_else(|| not_found(correlation_id))?;
    let policies = lookup::policies_of(client, correlation_id).await?;
    Ok(Deployment {
        package,
        ledger,
        policies,
    })
}

/// The package delivering the deployment now: its own, the earlier version's
/// after a rollback, none after an uninstall.
pub async fn delivering_package(
    connector: &JamfConnector,
    deployment: &Deployment,
) -> Result<Option<FoundPackage>, ConnectorError> {
    match &deployment.ledger.state {
        DeploymentState::Active => Ok(Some(deployment.package.clone())),
        DeploymentState::Uninstalled => Ok(None),
        DeploymentState::RolledBack { to_version } => {
            lookup::find_version_package(
                connector.client(),
                &deployment.ledger.application_id,
                to_version,
                deployment.package.id,
            )
            .await
        }
    }
}

/// Whether an inventory app is the one the package's detection names.
pub fn detects(info: &PackageInfo, app: &InventoryApp) -> bool {
    let value = info.detection_value.as_str();
    if value.is_empty() {
        return false;
    }
    match info.detection_type.as_str() {
        "bundle_id" => app.bundle_id == value,
        "file" => app.path == value,
        _ => app.bundle_id == value || app.name == value || app.path == value,
    }
}

/// The computers a policy reaches: scope groups minus exclusion groups.
pub async fn reached(
    connector: &JamfConnector,
    policy: &wire::Policy,
    cache: &mut HashMap<u64, Vec<u64>>,
) -> Result<BTreeSet<u64>, ConnectorError> {
    let client = connector.client();
    let mut computers = BTreeSet::new();
    for group in policy.scoped_groups() {
        computers.extend(lookup::members(client, group, cache).await?);
    }
    for group in policy.excluded_groups() {
        for computer in lookup::members(client, group, cache).await? {
            computers.remove(&computer);
        }
    }
    Ok(computers)
}

fn log_time(log: &wire::PolicyLog) -> Option<DateTime<Utc>> {
    if log.date_time_epoch > 0 {
        return Utc.timestamp_millis_opt(log.date_time_epoch).single();
    }
    DateTime::parse_from_str(&log.date_time_utc, "%Y-%m-%dT%H:%M:%S%.3f%z")
        .ok()
        .map(|at| at.with_timezone(&Utc))
}

/// The latest log of `policy_id` on a computer, as of `now`.
fn latest_log(
    logs: &[wire::PolicyLog],
    policy_id: u64,
    now: DateTime<Utc>,
) -> Option<(String, Option<DateTime<Utc>>)> {
    logs.iter()
        .filter(|log| log.policy_id == policy_id)
        .map(|log| (log.status.clone(), log_time(log)))
        .filter(|(_, at)| at.is_none_or(|at| at <= now))
        .max_by_key(|(_, at)| *at)
}

/// A ring's live policy and the computers it reaches; `None` when the ring
/// has no live policy (pinned out, uninstalled, disabled).
type LiveRing = Option<(u64, BTreeSet<u64>)>;

/// A live ring's policy and what inventory says of each computer it reaches.
type JudgedRing = Option<(u64, Vec<(u64, Verdict)>)>;

/// What inventory says of one targeted computer.
enum Verdict {
    /// Runs the delivered version, reported at that time.
    Installed(Option<DateTime<Utc>>),
    /// Has not contacted Jamf since its ring went live.
    Pending,
    /// Contacted Jamf since, without the version: its policy log decides.
    ReadLogs,
}

fn count(value: usize) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

pub async fn query_status(
    connector: &JamfConnector,
    correlation_id: &str,
    now: DateTime<Utc>,
) -> Result<DeploymentStatus, ConnectorError> {
    let client = connector.client();
    let deployment = deployment(connector, correlation_id).await?;
    let ledger = &deployment.ledger;
    let delivering = delivering_package(connector, &deployment).await?;
    let delivered_version = ledger.delivered_version().map(str::to_string);
    let mut cache: HashMap<u64, Vec<u64>> = HashMap::new();

    // Rings whose policy is live, and the computers each reaches.
    let mut ring_computers: Vec<(String, LiveRing)> = Vec::new();
    let mut assigned_groups: BTreeSet<String> = BTreeSet::new();
    let mut assigned_devices: BTreeSet<u64> = BTreeSet::new();
    let mut ever_targeted: BTreeSet<u64> = BTreeSet::new();
    for record in &ledger.rings {
        let live = deployment.ring_policy(&record.ring).filter(|found| {
            found.policy.general.enabled
                && delivering
                    .as_ref()
                    .is_some_and(|package| found.policy.installed_package() == Some(package.id))
        });
        let reached_here = match live {
            Some(found) => {
                let computers = reached(connector, &found.policy, &mut cache).await?;
                assigned_groups.extend(found.policy.scoped_groups().iter().map(u64::to_string));
                assigned_devices.extend(computers.iter().copied());
                Some((found.id, computers))
            }
            None => None,
        };
        for group in super::publish::group_ids(&record.groups) {
            ever_targeted.extend(lookup::members(client, group, &mut cache).await?);
        }
        ring_computers.push((record.ring.clone(), reached_here));
    }
    ever_targeted.extend(assigned_devices.iter().copied());

    let computers: Vec<u64> = ever_targeted.iter().copied().collect();
    let inventory = lookup::inventory(client, &computers).await?;
    let detection = delivering
        .as_ref()
        .map(|package| package.info.clone())
        .unwrap_or_else(|| deployment.package.info.clone());
    let version_on = |computer: u64| -> Option<String> {
        inventory
            .get(&computer)?
            .apps
            .iter()
            .find(|app| detects(&detection, app))
            .map(|app| app.version.clone())
    };
    let runs_delivered = |computer: u64| -> bool {
        delivered_version.is_some() && version_on(computer) == delivered_version
    };

    // Installed is what inventory reports (the delivered version, reported
    // by `now`). A computer without it that contacted Jamf since its ring
    // went live may have run the policy and failed: only those computers'
    // policy logs are read, so a status query costs a page of inventory per
    // page of computers plus one request per computer still without the
    // version after a check-in (failures, and installs whose recon is not in
    // yet), never one per targeted computer.
    let mut verdicts: Vec<(String, JudgedRing)> = Vec::new();
    let mut wanted: BTreeSet<u64> = BTreeSet::new();
    for (ring, reached_here) in ring_computers {
        let since = deployment.package.info.live_since(&ring);
        let judged = reached_here.map(|(policy_id, computers)| {
            let judged: Vec<(u64, Verdict)> = computers
                .into_iter()
                .map(|computer| {
                    let record = inventory.get(&computer);
                    let reported = record.and_then(|record| record.report_date);
                    if runs_delivered(computer) && reported.is_none_or(|at| at <= now) {
                        return (computer, Verdict::Installed(reported));
                    }
                    let contacted = record.and_then(|record| record.last_contact);
                    let may_have_run = contacted
                        .is_some_and(|at| at <= now && since.is_none_or(|since| at >= since));
                    if may_have_run {
                        wanted.insert(computer);
                        (computer, Verdict::ReadLogs)
                    } else {
                        (computer, Verdict::Pending)
                    }
                })
                .collect();
            (policy_id, judged)
        });
        verdicts.push((ring, judged));
    }

    // One history request per computer that needs its reason; as many in
    // flight as the client's connection cap lets through.
    let fetched: Vec<(u64, Result<Vec<wire::PolicyLog>, ConnectorError>)> =
        futures_util::stream::iter(wanted)
            .map(|computer| async move { (computer, lookup::policy_logs(client, computer).await) })
            .buffer_unordered(super::MAX_CONNECTIONS)
            .collect()
            .await;
    let mut logs: HashMap<u64, Vec<wire::PolicyLog>> = HashMap::new();
    for (computer, result) in fetched {
        logs.insert(computer, result?);
    }
    let mut rings = BTreeMap::new();
    for (ring, judged) in verdicts {
        let mut status = RingStatus::default();
        if let Some((policy_id, computers)) = judged {
            for (computer, verdict) in computers {
                status.targeted += 1;
                match verdict {
                    Verdict::Installed(at) => {
                        status.installed += 1;
                        status.last_report_at = status.last_report_at.max(at);
                        if let Some(at) = at {
                            status.first_install_at =
                                Some(status.first_install_at.map_or(at, |first| first.min(at)));
                        }
                    }
                    Verdict::Pending => status.pending += 1,
                    Verdict::ReadLogs => {
                        let latest = logs
                            .get(&computer)
                            .and_then(|computer_logs| latest_log(computer_logs, policy_id, now));
                        match latest {
                            Some((log_status, at)) if log_status == wire::LOG_FAILED => {
                                status.last_report_at = status.last_report_at.max(at);
                                status.failed += 1;
                                *status
                                    .failure_reasons
                                    .entry("policy_failed".to_string())
                                    .or_default() += 1;
                            }
                            Some((_, at)) => {
                                status.last_report_at = status.last_report_at.max(at);
                                status.pending += 1;
                            }
                            None => status.pending += 1,
                        }
                    }
                }
            }
        }
        rings.insert(ring, status);
    }

    let mut installed_versions: BTreeMap<String, u32> = BTreeMap::new();
    for computer in &ever_targeted {
        if let Some(version) = version_on(*computer) {
            *installed_versions.entry(version).or_default() += 1;
        }
    }
    let version = installed_versions
        .iter()
        .max_by_key(|(version, devices)| {
            (
                **devices,
                Some(version.as_str()) == delivered_version.as_deref(),
            )
        })
        .map(|(version, _)| version.clone());
    Ok(DeploymentStatus {
        correlation_id: correlation_id.to_string(),
        rings,
        observed: ObservedState {
            version,
            assigned_groups: assigned_groups.into_iter().collect(),
            assigned_devices: count(assigned_devices.len()),
            installed_versions,
        },
    })
}
