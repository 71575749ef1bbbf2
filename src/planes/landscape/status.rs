//! `status`: what a deployment's computers report on Landscape, as of `now`.
//!
//! A ring's computers are those its tags select now (`tag:<group> NOT
//! tag:<excluded>`), for each tag that still holds a live install of the
//! delivered version (a tag whose install was removed or cancelled is no
//! longer assigned, so its computers are not targeted). Each counts by the newest package change of the package
//! on it: a child of an install of the delivered version that `succeeded` is
//! installed (unless the computer's last package report shows another
//! version: then pending), `failed` or `canceled` is failed, anything else —
//! not delivered yet, no child at all, a removal, another version — pending.
//!
//! `observed` comes from the plane too: the tags that still hold a live install
//! of the deployment's version (the connector's own activities, and those made
//! outside ringmaster, whose tag is the one every computer of theirs carries),
//! and the installed versions the computers last reported.

use super::LandscapeConnector;
use super::journal::{ChangeKind, JournalEntry};
use super::plane::{self, Delivery, PlaneView};
use super::wire::{self, Outcome};
use crate::planes::{ConnectorError, DeploymentStatus, ErrorCode, ObservedState, RingStatus};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap};

pub fn not_found(correlation_id: &str) -> ConnectorError {
    ConnectorError::new(
        ErrorCode::ResourceNotFound,
        format!(
            "no deployment with correlation id {correlation_id} in the landscape journal; publish it first"
        ),
    )
}

/// The tags a delivery targets: the journal's for the connector's own, else
/// the tags every one of its computers carries.
pub async fn groups_of(
    connector: &LandscapeConnector,
    entry: &JournalEntry,
    delivery: &Delivery,
) -> Result<Vec<String>, ConnectorError> {
    if let Some(own) = entry
        .activities
        .iter()
        .find(|activity| activity.activity_id == delivery.parent_id)
    {
        return Ok(vec![own.change.group.clone()]);
    }
    let ids: Vec<i64> = delivery
        .children
        .iter()
        .filter_map(|child| child.computer_id)
        .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let computers = plane::computers(connector.client(), &wire::ids_query(&ids)).await?;
    let mut common: Option<BTreeSet<String>> = None;
    for computer in &computers {
        common = Some(match common {
            None => computer.tags.clone(),
            Some(tags) => tags.intersection(&computer.tags).cloned().collect(),
        });
    }
    Ok(common.unwrap_or_default().into_iter().collect())
}

/// The query of a tag: with the deployment's exclusions for its own tags.
pub fn query_for(entry: &JournalEntry, group: &str) -> String {
    let own = entry
        .ledger
        .rings
        .iter()
        .any(|record| record.groups.iter().any(|known| known == group));
    if own {
        wire::group_query(group, &entry.ledger.exclusions)
    } else {
        wire::group_query(group, &[])
    }
}

/// The computers of each of the deployment's tags, and their installed
/// version of the package.
pub struct Inventory {
    pub computers: HashMap<String, BTreeSet<i64>>,
    pub versions: BTreeMap<i64, String>,
}

impl Inventory {
    pub async fn load(
        connector: &LandscapeConnector,
        entry: &JournalEntry,
        extra_groups: &[String],
    ) -> Result<Inventory, ConnectorError> {
        let client = connector.client();
        let package = &entry.ledger.application_id;
        let mut inventory = Inventory {
            computers: HashMap::new(),
            versions: BTreeMap::new(),
        };
        let groups = entry
            .ledger
            .rings
            .iter()
            .flat_map(|record| record.groups.iter())
            .chain(extra_groups);
        for group in groups {
            if inventory.computers.contains_key(group) {
                continue;
            }
            let query = query_for(entry, group);
            let ids = plane::computer_ids(client, &query).await?;
            inventory
                .versions
                .extend(plane::installed_versions(client, &query, package).await?);
            inventory.computers.insert(group.clone(), ids);
        }
        Ok(inventory)
    }

    pub fn of(&self, group: &str) -> impl Iterator<Item = i64> + '_ {
        self.computers.get(group).into_iter().flatten().copied()
    }
}

/// Live install deliveries of `version` and the tags each targets.
pub async fn live_installs<'a>(
    connector: &LandscapeConnector,
    entry: &JournalEntry,
    view: &'a PlaneView,
    version: &str,
) -> Result<Vec<(&'a Delivery, Vec<String>)>, ConnectorError> {
    let mut live = Vec::new();
    for delivery in view.deliveries.iter().filter(|delivery| {
        delivery.kind == ChangeKind::Install
            && delivery.version.as_deref() == Some(version)
            && view.is_live(delivery)
    }) {
        live.push((delivery, groups_of(connector, entry, delivery).await?));
    }
    Ok(live)
}

/// How one computer stands with `version`, as of `now`.
pub fn outcome_on<'a>(
    view: &'a PlaneView,
    computer: i64,
    version: &str,
    reported_version: Option<&str>,
    now: DateTime<Utc>,
) -> (Outcome, Option<&'a wire::Activity>) {
    let Some((delivery, child)) = view.latest_on(computer) else {
        return (Outcome::Pending, None);
    };
    if delivery.kind != ChangeKind::Install || delivery.version.as_deref() != Some(version) {
        return (Outcome::Pending, None);
    }
    let reported = child.completion_time.is_some_and(|at| at <= now);
    match wire::outcome_of(&child.status) {
        Outcome::Succeeded if !reported => (Outcome::Pending, None),
        Outcome::Succeeded if reported_version.is_some_and(|found| found != version) => {
            (Outcome::Pending, Some(child))
        }
        Outcome::Failed if child.status != "canceled" && !reported => (Outcome::Pending, None),
        outcome => (outcome, Some(child)),
    }
}

pub async fn query_status(
    connector: &LandscapeConnector,
    entry: &JournalEntry,
    now: DateTime<Utc>,
) -> Result<DeploymentStatus, ConnectorError> {
    let ledger = &entry.ledger;
    let delivered = ledger.delivered_version();
    let view = PlaneView::load(connector.client(), entry).await?;
    let live = live_installs(
        connector,
        entry,
        &view,
        delivered.unwrap_or(&ledger.version),
    )
    .await?;
    let assigned_groups: BTreeSet<String> = if delivered.is_some() {
        live.iter().flat_map(|(_, groups)| groups.clone()).collect()
    } else {
        BTreeSet::new()
    };
    let extra: Vec<String> = assigned_groups.iter().cloned().collect();
    let inventory = Inventory::load(connector, entry, &extra).await?;

    let mut rings = BTreeMap::new();
    for record in &ledger.rings {
        let mut status = RingStatus::default();
        if let (Some(version), true) = (delivered, ledger.ring_allowed(&record.ring)) {
            let targeted: BTreeSet<i64> = record
                .groups
                .iter()
                .filter(|group| assigned_groups.contains(*group))
                .flat_map(|group| inventory.of(group))
                .collect();
            for computer in targeted {
                status.targeted += 1;
                let reported_version = inventory.versions.get(&computer).map(String::as_str);
                let (outcome, child) = outcome_on(&view, computer, version, reported_version, now);
                let reported_at = child.and_then(|child| child.completion_time);
                status.last_report_at = status.last_report_at.max(reported_at);
                match outcome {
                    Outcome::Succeeded => {
                        status.installed += 1;
                        if let Some(at) = reported_at {
                            status.first_install_at =
                                Some(status.first_install_at.map_or(at, |first| first.min(at)));
                        }
                    }
                    Outcome::Failed => {
                        status.failed += 1;
                        let reason =
                            child.map_or_else(|| "failed".to_string(), wire::failure_reason);
                        *status.failure_reasons.entry(reason).or_default() += 1;
                    }
                    Outcome::Pending => status.pending += 1,
                }
            }
        }
        rings.insert(record.ring.clone(), status);
    }

    let assigned_devices: BTreeSet<i64> = assigned_groups
        .iter()
        .flat_map(|group| inventory.of(group))
        .collect();
    let ever_targeted: BTreeSet<i64> = ledger
        .rings
        .iter()
        .flat_map(|record| record.groups.iter())
        .flat_map(|group| inventory.of(group))
        .collect();
    let mut installed_versions: BTreeMap<String, u32> = BTreeMap::new();
    for computer in &ever_targeted {
        if let Some(version) = inventory.versions.get(computer) {
            *installed_versions.entry(version.clone()).or_default() += 1;
        }
    }
    let version = installed_versions
        .iter()
        .max_by_key(|(version, count)| (**count, Some(version.as_str()) == delivered))
        .map(|(version, _)| version.clone());
    Ok(DeploymentStatus {
        correlation_id: ledger.correlation_id.clone(),
        rings,
        observed: ObservedState {
            version,
            assigned_groups: assigned_groups.into_iter().collect(),
            assigned_devices: u32::try_from(assigned_devices.len()).unwrap_or(u32::MAX),
            installed_versions,
        },
    })
}
