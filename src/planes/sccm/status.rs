//! `status`: what a deployment's devices report on Configuration Manager, as
//! of `now`.
//!
//! A ring's devices are the members of its ring collection (the site resolves
//! the include and exclude rules) while the delivering application has a
//! required install deployment on it; each device's state is the
//! `EnforcementState` of its `SMS_AppDeploymentAssetDetails` row: 10 installed;
//! 6, 11, 14 failed; anything else, or no row, pending. When the deployment
//! summary targets more devices than the membership shows (membership is
//! evaluated asynchronously), the difference counts as pending.

use super::SccmConnector;
use super::lookup::{self, FoundApp, RingCollection};
use super::publish::install_assignment;
use super::wire::{self, integer, text};
use crate::planes::ledger::{DeploymentState, Ledger};
use crate::planes::{ConnectorError, DeploymentStatus, ErrorCode, ObservedState, RingStatus};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};

pub fn not_found(correlation_id: &str) -> ConnectorError {
    ConnectorError::new(
        ErrorCode::ResourceNotFound,
        format!("no application with correlation id {correlation_id} on sccm; publish it first"),
    )
}

/// Everything the site holds for one deployment.
pub struct Deployment {
    pub app: FoundApp,
    pub collections: Vec<RingCollection>,
    pub ledger: Ledger,
}

impl Deployment {
    pub fn collection_of(&self, ring: &str) -> Option<&RingCollection> {
        self.collections
            .iter()
            .find(|collection| collection.ring == ring)
    }

    pub fn anchor_mut(&mut self) -> Option<&mut RingCollection> {
        self.collections
            .iter_mut()
            .find(|collection| collection.ledger.is_some())
    }
}

/// The deployment of a correlation id, or `resource_not_found`.
pub async fn deployment(
    connector: &SccmConnector,
    correlation_id: &str,
) -> Result<Deployment, ConnectorError> {
    let client = connector.client();
    let app = connector
        .find_app(correlation_id, None)
        .await?
        .ok_or_else(|| not_found(correlation_id))?;
    let collections = lookup::ring_collections(client, correlation_id).await?;
    let ledger = collections
        .iter()
        .find_map(|collection| collection.ledger.clone())
        .or_else(|| {
            let (application_id, version) = app
                .description
                .split(';')
                .find_map(|part| part.strip_prefix("pkg:"))?
                .split_once('@')?;
            Some(Ledger::new(correlation_id, application_id, version))
        })
        .ok_or_else(|| not_found(correlation_id))?;
    Ok(Deployment {
        app,
        collections,
        ledger,
    })
}

/// The application delivering the deployment now: its own, the earlier
/// version's after a rollback, none after an uninstall.
pub async fn delivering_app(
    connector: &SccmConnector,
    deployment: &Deployment,
) -> Result<Option<FoundApp>, ConnectorError> {
    match &deployment.ledger.state {
        DeploymentState::Active => Ok(Some(deployment.app.clone())),
        DeploymentState::Uninstalled => Ok(None),
        DeploymentState::RolledBack { to_version } => {
            lookup::find_package(
                connector.client(),
                &deployment.ledger.application_id,
                to_version,
            )
            .await
        }
    }
}

struct DeviceRow {
    enforcement_state: i64,
    reported_at: Option<DateTime<Utc>>,
}

async fn rows_of(
    connector: &SccmConnector,
    assignment_id: i64,
    now: DateTime<Utc>,
) -> Result<HashMap<i64, DeviceRow>, ConnectorError> {
    let rows = lookup::asset_details(connector.client(), assignment_id).await?;
    let mut by_device = HashMap::new();
    for row in &rows {
        let Some(device) = integer(row, "MachineID") else {
            continue;
        };
        let reported_at = DateTime::parse_from_rfc3339(text(row, "StartTime"))
            .ok()
            .map(|at| at.with_timezone(&Utc));
        if reported_at.is_some_and(|at| at > now) {
            continue;
        }
        by_device.insert(
            device,
            DeviceRow {
                enforcement_state: integer(row, "EnforcementState").unwrap_or(0),
                reported_at,
            },
        );
    }
    Ok(by_device)
}

pub async fn query_status(
    connector: &SccmConnector,
    correlation_id: &str,
    now: DateTime<Utc>,
) -> Result<DeploymentStatus, ConnectorError> {
    let client = connector.client();
    let deployment = deployment(connector, correlation_id).await?;
    let ledger = &deployment.ledger;
    let delivered = ledger.delivered_version().map(str::to_string);
    let delivering = delivering_app(connector, &deployment).await?;
    let delivering_assignments = match &delivering {
        Some(app) => lookup::assignments(client, app).await?,
        None => Vec::new(),
    };
    let mut members: HashMap<String, Vec<i64>> = HashMap::new();
    let mut rings = BTreeMap::new();
    let mut installed_devices: BTreeSet<i64> = BTreeSet::new();
    for record in &ledger.rings {
        let mut status = RingStatus::default();
        let assignment = deployment
            .collection_of(&record.ring)
            .and_then(|collection| {
                install_assignment(&delivering_assignments, &collection.id)
                    .map(|found| (collection, found))
            });
        if let Some((collection, assignment)) = assignment {
            let ring_members = lookup::members(client, &collection.id).await?;
            let assignment_id = integer(assignment, "AssignmentID").unwrap_or_default();
            let rows = rows_of(connector, assignment_id, now).await?;
            for device in &ring_members {
                status.targeted += 1;
                let Some(row) = rows.get(device) else {
                    status.pending += 1;
                    continue;
                };
                status.last_report_at = status.last_report_at.max(row.reported_at);
                if row.enforcement_state == wire::ENFORCEMENT_INSTALLED {
                    status.installed += 1;
                    installed_devices.insert(*device);
                    if let Some(at) = row.reported_at {
                        status.first_install_at =
                            Some(status.first_install_at.map_or(at, |first| first.min(at)));
                    }
                } else if wire::is_failure(row.enforcement_state) {
                    status.failed += 1;
                    *status
                        .failure_reasons
                        .entry(wire::failure_reason(row.enforcement_state).to_string())
                        .or_default() += 1;
                } else {
                    status.pending += 1;
                }
            }
            if let Some(summarized) = lookup::summary_targeted(client, assignment_id).await?
                && summarized > status.targeted
            {
                status.pending += summarized - status.targeted;
                status.targeted = summarized;
            }
            members.insert(collection.id.clone(), ring_members);
        }
        rings.insert(record.ring.clone(), status);
    }

    let mut assigned_groups: BTreeSet<String> = BTreeSet::new();
    let mut assigned_devices: BTreeSet<i64> = BTreeSet::new();
    for assignment in delivering_assignments.iter().filter(|assignment| {
        integer(assignment, "DesiredConfigType") == Some(wire::DESIRED_INSTALL)
    }) {
        let target = text(assignment, "TargetCollectionID");
        match deployment
            .collections
            .iter()
            .find(|collection| collection.id == target)
        {
            Some(collection) => {
                let groups = ledger
                    .rings
                    .iter()
                    .filter(|record| record.ring == collection.ring)
                    .flat_map(|record| record.groups.iter());
                assigned_groups.extend(groups.cloned());
            }
            None => {
                assigned_groups.insert(target.to_string());
            }
        }
        if !members.contains_key(target) {
            members.insert(target.to_string(), lookup::members(client, target).await?);
        }
        assigned_devices.extend(members.get(target).into_iter().flatten().copied());
        if !deployment
            .collections
            .iter()
            .any(|collection| collection.id == target)
        {
            let assignment_id = integer(assignment, "AssignmentID").unwrap_or_default();
            let rows = rows_of(connector, assignment_id, now).await?;
            installed_devices.extend(
                rows.iter()
                    .filter(|(_, row)| row.enforcement_state == wire::ENFORCEMENT_INSTALLED)
                    .map(|(device, _)| *device),
            );
        }
    }
    let mut installed_versions = BTreeMap::new();
    if let (Some(version), false) = (&delivered, installed_devices.is_empty()) {
        installed_versions.insert(
            version.clone(),
            u32::try_from(installed_devices.len()).unwrap_or(u32::MAX),
        );
    }
    Ok(DeploymentStatus {
        correlation_id: correlation_id.to_string(),
        rings,
        observed: ObservedState {
            version: installed_versions.keys().next().cloned(),
            assigned_groups: assigned_groups.into_iter().collect(),
            assigned_devices: u32::try_from(assigned_devices.len()).unwrap_or(u32::MAX),
            installed_versions,
        },
    })
}

/// Whether a JSON assignment is a required install one.
pub fn is_install(assignment: &Value) -> bool {
    integer(assignment, "DesiredConfigType") == Some(wire::DESIRED_INSTALL)
}
