//! `publish`: one ring of one deployment onto Jamf Pro, idempotent on the
//! correlation id. The package record is found by `notes == "corr:<id>"` or
//! created (its `info` keeps the deployment's ledger); the ring gets one
//! Classic policy, named after the correlation id and the ring (Jamf names are
//! unique), scoped to the ring's computer groups minus the exclusions,
//! installing the package once per computer.
//!
//! Every step looks before it writes, and the policy (the last write) is
//! created by `POST .../id/0`: Jamf's 409 "Duplicate name" answers that it
//! exists already, so a retry after a lost answer, or a second daemon, finds
//! it instead of making a second one.

use super::JamfConnector;
use super::lookup::{self, FoundPackage};
use super::wire::{self, PackageInfo};
use crate::model::Plane;
use crate::planes::ledger::{DeploymentState, Ledger, is_plain};
use crate::planes::{ConnectorError, ErrorCode, PublishRequest, PublishResult};
use chrono::{DateTime, Utc};

fn invalid(message: String) -> ConnectorError {
    ConnectorError::new(ErrorCode::InvalidRequest, message)
}

/// Jamf group ids are numbers.
pub fn group_ids(groups: &[String]) -> Vec<u64> {
    groups
        .iter()
        .filter_map(|group| group.parse().ok())
        .collect()
}

/// Refuses, before any request, what Jamf could never accept.
pub fn check_request(request: &PublishRequest) -> Result<(), ConnectorError> {
    if request.plane != Plane::Jamf {
        return Err(invalid(format!(
            "request for plane {} sent to the jamf connector",
            request.plane.as_str()
        )));
    }
    for (field, value) in [
        ("correlation_id", &request.correlation_id),
        ("application_id", &request.application_id),
        ("version", &request.version),
        ("ring", &request.ring),
    ] {
        if !is_plain(value) || value.contains([']', '[']) {
            return Err(invalid(format!(
                "publish request field {field} {value:?} is empty or holds brackets, ';', '=', ',', '@' or whitespace"
            )));
        }
    }
    if request.application_name.trim().is_empty() || request.application_name.contains('\n') {
        return Err(invalid(format!(
            "application name {:?} cannot name a Jamf package",
            request.application_name
        )));
    }
    if request.groups.is_empty() {
        return Err(invalid(format!(
            "publish of {} {} ring {} names no computer group; the entitlement must list Jamf group ids",
            request.application_id, request.version, request.ring
        )));
    }
    request.artifact.check_sha256()?;
    if request.artifact.uninstall.contains('\n') || request.artifact.detection_value.contains('\n')
    {
        return Err(invalid(format!(
            "artifact {} has a multi-line uninstall command or detection value",
            request.artifact.id
        )));
    }
    for group in request.groups.iter().chain(&request.exclusions) {
        if group.parse::<u64>().is_err() {
            return Err(invalid(format!(
                "computer group id {group:?} is not a Jamf group id (a number)"
            )));
        }
        if request.groups.contains(group) && request.exclusions.contains(group) {
            return Err(invalid(format!(
                "computer group {group} is both assigned and excluded"
            )));
        }
    }
    Ok(())
}

/// Refuses another application or version under the same correlation id, and
/// a deployment that was uninstalled or rolled back.
pub fn check_state(ledger: &Ledger, request: &PublishRequest) -> Result<(), ConnectorError> {
    if ledger.application_id != request.application_id || ledger.version != request.version {
        return Err(invalid(format!(
            "correlation id {} already names {} {} on jamf; a new version needs a new intent",
            request.correlation_id, ledger.application_id, ledger.version
        )));
    }
    match &ledger.state {
        DeploymentState::Active => Ok(()),
        DeploymentState::Uninstalled => Err(invalid(format!(
            "deployment {} was uninstalled; publish under a new correlation id",
            request.correlation_id
        ))),
        DeploymentState::RolledBack { to_version } => Err(invalid(format!(
            "deployment {} was rolled back to {to_version}; publish under a new correlation id",
            request.correlation_id
        ))),
    }
}

fn info_for(request: &PublishRequest, ledger: &Ledger, now: DateTime<Utc>) -> PackageInfo {
    PackageInfo {
        ledger: ledger.render(),
        detection_type: request.artifact.detection_type.clone(),
        detection_value: request.artifact.detection_value.clone(),
        version: request.version.clone(),
        uninstall: request.artifact.uninstall.clone(),
        live: [(request.ring.clone(), now.timestamp())].into(),
    }
}

async fn check_groups(
    connector: &JamfConnector,
    request: &PublishRequest,
) -> Result<(), ConnectorError> {
    for group in group_ids(&request.groups)
        .into_iter()
        .chain(group_ids(&request.exclusions))
    {
        lookup::check_group(connector.client(), group).await?;
    }
    Ok(())
}

/// Creates the package record; a duplicate name made by this deployment (a
/// lost answer) is found and reused, one made by anything else refused.
async fn create_package(
    connector: &JamfConnector,
    request: &PublishRequest,
    ledger: &Ledger,
    now: DateTime<Utc>,
) -> Result<(FoundPackage, bool), ConnectorError> {
    let client = connector.client();
    let name = wire::package_name(&wire::label(request), &request.correlation_id);
    let info = info_for(request, ledger, now);
    let body = wire::package_body(request, &name, &info);
    match lookup::create_package(client, &body).await? {
        Ok(id) => {
            tracing::info!(package_id = id, correlation_id = %request.correlation_id, "jamf package created");
            Ok((
                FoundPackage {
                    id,
                    name,
                    record: {
                        let mut record = body;
                        record["id"] = serde_json::json!(id.to_string());
                        record
                    },
                    info,
                },
                true,
            ))
        }
        Err(_duplicate) => {
            let existing = lookup::package_named(client, &name).await?;
            match existing {
                Some(package)
                    if package.record.get("notes").and_then(|notes| notes.as_str())
                        == Some(wire::package_notes(&request.correlation_id).as_str()) =>
                {
                    Ok((package, false))
                }
                _ => Err(invalid(format!(
                    "a Jamf package named {name:?} exists and was not made for correlation id {}; rename or delete it",
                    request.correlation_id
                ))),
            }
        }
    }
}

pub async fn publish(
    connector: &JamfConnector,
    request: &PublishRequest,
    now: DateTime<Utc>,
) -> Result<PublishResult, ConnectorError> {
    let client = connector.client();
    let correlation_id = &request.correlation_id;
    let mut created = false;
    let existing = lookup::find_package(client, correlation_id).await?;
    let mut ledger = existing
        .as_ref()
        .and_then(FoundPackage::ledger)
        .unwrap_or_else(|| Ledger::new(correlation_id, &request.application_id, &request.version));
    check_state(&ledger, request)?;
    let label = wire::label(request);
    let policy_name = wire::ring_policy_name(&label, &request.ring, correlation_id);
    if ledger.halted {
        return Err(ledger.ring_refusal("Jamf Pro", &request.ring));
    }
    if !ledger.ring_allowed(&request.ring) {
        if let Some(package) = &existing
            && lookup::policy_named(client, &policy_name).await?.is_some()
        {
            return Ok(PublishResult {
                external_id: package.id.to_string(),
                created: false,
            });
        }
        return Err(ConnectorError::new(
            ErrorCode::RingPinned,
            format!(
                "deployment {correlation_id} is pinned at ring {}; ring {} is not deployed",
                ledger.pinned_ring.as_deref().unwrap_or_default(),
                request.ring
            ),
        ));
    }
    let new_ring = !ledger
        .rings
        .iter()
        .any(|record| record.ring == request.ring);
    if existing.is_none() || new_ring {
        check_groups(connector, request).await?;
    }
    ledger.record_ring(&request.ring, &request.groups, &request.exclusions);
    let package = match existing {
        Some(mut package) => {
            let mut info = PackageInfo {
                ledger: ledger.render(),
                ..package.info.clone()
            };
            info.live
                .entry(request.ring.clone())
                .or_insert_with(|| now.timestamp());
            lookup::save_info(client, &mut package, info).await?;
            package
        }
        None => {
            let (package, made) = create_package(connector, request, &ledger, now).await?;
            created |= made;
            package
        }
    };

    let groups = group_ids(&request.groups);
    let exclusions = group_ids(&ledger.exclusions);
    let wanted = wire::install_policy(&policy_name, package.id, &groups, &exclusions);
    let (policy_id, mut policy, made) = lookup::create_policy(client, &wanted).await?;
    created |= made;
    if !made {
        let scoped = policy.scoped_groups();
        let excluded = policy.excluded_groups();
        let missing: Vec<u64> = groups
            .iter()
            .copied()
            .filter(|group| !scoped.contains(group))
            .collect();
        let missing_exclusions = exclusions.iter().any(|group| !excluded.contains(group));
        if !missing.is_empty() || missing_exclusions {
            let mut all_groups = scoped;
            all_groups.extend(missing.iter().copied());
            let mut all_exclusions = excluded;
            for group in &exclusions {
                if !all_exclusions.contains(group) {
                    all_exclusions.push(*group);
                }
            }
            policy.set_scope(&all_groups, &all_exclusions);
            lookup::update_policy(client, policy_id, &policy).await?;
            created |= !missing.is_empty();
        }
    }
    Ok(PublishResult {
        external_id: package.id.to_string(),
        created,
    })
}
