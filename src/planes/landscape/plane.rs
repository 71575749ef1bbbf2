//! `plane`: what Landscape holds for a deployment, read through the legacy
//! API: computers of a query (`GetComputers`), the package changes made on
//! them (`GetActivities`, children grouped by parent), installed versions
//! (`GetPackages`), and the requests that change something
//! (`InstallPackages`, `RemovePackages`, `CancelActivities`). Also the search
//! that finds the activity of a change whose answer was lost.

use super::client::LandscapeClient;
use super::journal::{ChangeKind, Journal, JournalActivity, JournalEntry, PendingChange};
use super::signature::TIMESTAMP_FORMAT;
use super::wire::{self, Activity, CHANGE_PACKAGES_REQUEST, id_of, text};
use crate::planes::{ConnectorError, ErrorCode};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A computer and its tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Computer {
    pub id: i64,
    pub tags: BTreeSet<String>,
}

/// Every computer `query` selects.
pub async fn computers(
    client: &LandscapeClient,
    query: &str,
) -> Result<Vec<Computer>, ConnectorError> {
    let answer = client
        .list("GetComputers", &[("query", query.to_string())])
        .await?;
    Ok(answer
        .iter()
        .filter_map(|computer| {
            Some(Computer {
                id: id_of(computer.get("id"))?,
                tags: computer
                    .get("tags")
                    .and_then(Value::as_array)
                    .map(|tags| {
                        tags.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect())
}

/// The ids of the computers `query` selects.
pub async fn computer_ids(
    client: &LandscapeClient,
    query: &str,
) -> Result<BTreeSet<i64>, ConnectorError> {
    Ok(computers(client, query)
        .await?
        .iter()
        .map(|computer| computer.id)
        .collect())
}

/// Installed version of `package` per computer of `query` (the last package
/// report of each computer, not a live answer).
pub async fn installed_versions(
    client: &LandscapeClient,
    query: &str,
    package: &str,
) -> Result<BTreeMap<i64, String>, ConnectorError> {
    let answer = client
        .list(
            "GetPackages",
            &[
                ("query", query.to_string()),
                ("names.1", package.to_string()),
                ("installed", "true".to_string()),
            ],
        )
        .await?;
    let mut versions = BTreeMap::new();
    for entry in answer.iter().filter(|entry| text(entry, "name") == package) {
        let installed = entry
            .get("computers")
            .and_then(|computers| computers.get("installed"))
            .and_then(Value::as_array);
        for computer in installed.into_iter().flatten() {
            if let Some(id) = id_of(Some(computer)) {
                versions.insert(id, text(entry, "version").to_string());
            }
        }
    }
    Ok(versions)
}

/// Sends `InstallPackages` or `RemovePackages` for the change; answers the
/// parent activity.
pub async fn request_change(
    client: &LandscapeClient,
    change: &PendingChange,
) -> Result<Activity, ConnectorError> {
    let action = match change.kind {
        ChangeKind::Install => "InstallPackages",
        ChangeKind::Remove => "RemovePackages",
    };
    let spec = wire::package_spec(&change.package, change.version.as_deref());
    let answer = client
        .call(
            action,
            &[("query", change.query.clone()), ("packages.1", spec)],
        )
        .await?;
    wire::activity_of(&answer).ok_or_else(|| {
        ConnectorError::new(
            ErrorCode::ServiceUnavailable,
            format!("{action} on landscape answered without an activity id; retry"),
        )
    })
}

/// `CancelActivities` for the undelivered children of a parent activity;
/// answers how many were cancelled.
pub async fn cancel(client: &LandscapeClient, parent_id: i64) -> Result<usize, ConnectorError> {
    let answer = client
        .call(
            "CancelActivities",
            &[("query", format!("parent-id:{parent_id}"))],
        )
        .await?;
    Ok(answer.as_array().map_or(0, Vec::len))
}

/// One package change on the plane: a parent activity and its per-computer
/// children.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub parent_id: i64,
    pub kind: ChangeKind,
    pub version: Option<String>,
    pub children: Vec<Activity>,
}

fn change_of<'a>(activity: &'a Activity, package: &str) -> Option<&'a wire::Change> {
    activity
        .changes
        .iter()
        .find(|change| change.package == package)
}

/// The package changes of `package` among the children `query` selects,
/// grouped by parent, in parent id order.
pub async fn deliveries(
    client: &LandscapeClient,
    query: &str,
    package: &str,
) -> Result<Vec<Delivery>, ConnectorError> {
    let answer = client
        .list("GetActivities", &[("query", query.to_string())])
        .await?;
    let mut by_parent: BTreeMap<i64, Delivery> = BTreeMap::new();
    for activity in answer.iter().filter_map(wire::activity_of) {
        let (Some(parent_id), true) =
            (activity.parent_id, activity.kind == CHANGE_PACKAGES_REQUEST)
        else {
            continue;
        };
        let Some(change) = change_of(&activity, package).cloned() else {
            continue;
        };
        let kind = if change.kind == "remove" {
            ChangeKind::Remove
        } else {
            ChangeKind::Install
        };
        let delivery = by_parent.entry(parent_id).or_insert_with(|| Delivery {
            parent_id,
            kind,
            version: change.version.clone(),
            children: Vec::new(),
        });
        delivery.children.push(activity);
    }
    Ok(by_parent.into_values().collect())
}

/// `created-after:` one second before `created` (a server time).
pub fn created_after(created: &str) -> Option<String> {
    let at = DateTime::parse_from_rfc3339(created)
        .ok()?
        .with_timezone(&Utc);
    Some(
        (at - chrono::Duration::seconds(1))
            .format(TIMESTAMP_FORMAT)
            .to_string(),
    )
}

/// Finds the activity a change whose answer was lost made: the newest parent
/// activity on the group's computers that makes exactly that change and no
/// deployment in the journal owns. Matching by content is the reference's
/// suggestion (4.6, [U]): activities carry no client-supplied id.
pub async fn recover(
    client: &LandscapeClient,
    journal: &Journal,
    change: &PendingChange,
) -> Result<Option<JournalActivity>, ConnectorError> {
    let query = format!(
        "computer:tag:{} type:{CHANGE_PACKAGES_REQUEST}",
        change.group
    );
    let found = deliveries(client, &query, &change.package).await?;
    for delivery in found.iter().rev() {
        let same = delivery.kind == change.kind
            && (change.kind == ChangeKind::Remove || delivery.version == change.version);
        if !same || journal.is_claimed(delivery.parent_id)? {
            continue;
        }
        let created_at = delivery
            .children
            .iter()
            .filter_map(|child| child.creation_time.clone())
            .min();
        tracing::info!(
            activity_id = delivery.parent_id,
            group = %change.group,
            "landscape activity of a lost answer found"
        );
        return Ok(Some(JournalActivity {
            activity_id: delivery.parent_id,
            change: change.clone(),
            created_at,
        }));
    }
    Ok(None)
}

/// Settles every pending change of the entry: records the activity the plane
/// shows for it, or forgets it when there is none. Answers the entry as the
/// journal now holds it.
pub async fn settle_pending(
    client: &LandscapeClient,
    journal: &Journal,
    entry: JournalEntry,
) -> Result<JournalEntry, ConnectorError> {
    if entry.pending.is_empty() {
        return Ok(entry);
    }
    let correlation_id = entry.ledger.correlation_id.clone();
    for change in &entry.pending {
        match recover(client, journal, change).await? {
            Some(activity) => journal.record(&entry.ledger, &activity)?,
            None => journal.clear_pending(&correlation_id, change)?,
        }
    }
    journal.load(&correlation_id)?.ok_or_else(|| {
        ConnectorError::new(
            ErrorCode::ServiceUnavailable,
            format!("the landscape journal lost deployment {correlation_id}; retry"),
        )
    })
}

/// Every package change of a deployment's package since its first activity,
/// and the latest change on each computer.
pub struct PlaneView {
    pub deliveries: Vec<Delivery>,
    /// Per computer: (index in `deliveries`, index in its children) of the
    /// newest child activity.
    latest: HashMap<i64, (usize, usize)>,
}

impl PlaneView {
    pub async fn load(
        client: &LandscapeClient,
        entry: &JournalEntry,
    ) -> Result<PlaneView, ConnectorError> {
        let package = &entry.ledger.application_id;
        let mut query = format!("type:{CHANGE_PACKAGES_REQUEST}");
        if let Some(after) = entry.first_created().and_then(created_after) {
            query.push_str(&format!(" created-after:{after}"));
        }
        let deliveries = deliveries(client, &query, package).await?;
        Ok(PlaneView::new(deliveries))
    }

    pub fn new(deliveries: Vec<Delivery>) -> PlaneView {
        let mut latest: HashMap<i64, (usize, usize, i64)> = HashMap::new();
        for (delivery_index, delivery) in deliveries.iter().enumerate() {
            for (child_index, child) in delivery.children.iter().enumerate() {
                let Some(computer) = child.computer_id else {
                    continue;
                };
                let newer = latest
                    .get(&computer)
                    .is_none_or(|(_, _, id)| child.id > *id);
                if newer {
                    latest.insert(computer, (delivery_index, child_index, child.id));
                }
            }
        }
        PlaneView {
            deliveries,
            latest: latest
                .into_iter()
                .map(|(computer, (delivery, child, _))| (computer, (delivery, child)))
                .collect(),
        }
    }

    /// The newest package change on a computer.
    pub fn latest_on(&self, computer: i64) -> Option<(&Delivery, &Activity)> {
        let (delivery, child) = self.latest.get(&computer)?;
        let delivery = self.deliveries.get(*delivery)?;
        Some((delivery, delivery.children.get(*child)?))
    }

    /// Whether an install delivery still holds: one of its computers has not
    /// cancelled it and has no newer change than an install of that version.
    pub fn is_live(&self, delivery: &Delivery) -> bool {
        delivery.kind == ChangeKind::Install
            && delivery.children.iter().any(|child| {
                child.status != "canceled"
                    && child.computer_id.is_some_and(|computer| {
                        self.latest_on(computer)
                            .is_some_and(|(latest, latest_child)| {
                                latest.kind == ChangeKind::Install
                                    && latest.version == delivery.version
                                    && latest_child.status != "canceled"
                            })
                    })
            })
    }
}
