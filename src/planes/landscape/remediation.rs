//! `remediation`: uninstall, rollback, redeploy and ring pin on Landscape.
//! Each writes the new state into the journal's ledger first, then brings the
//! plane in line, looking (in the journal and on the plane) before every
//! change, so a replay or a retry after a lost answer answers `applied: false`.
//!
//! - Uninstall: cancel what the deployment's installs have not delivered yet,
//!   then `RemovePackages` on every tag of every ring, once each.
//! - Rollback: `InstallPackages` of `<package>=<to_version>` on every tag the
//!   pin allows (the legacy API downgrades only by naming the version), and
//!   cancel what the newer version's installs have not delivered yet.
//! - Redeploy: install again on a tag whose install no longer holds (removed,
//!   cancelled), push again to computers whose install failed, and cancel live
//!   installs of the version on tags ringmaster did not target.
//! - Ring pin: cancel what the installs of later rings have not delivered
//!   (computers keep what they installed).
//! - Halt: cancel what every install of the deployment has not delivered
//!   (`CancelActivities`); computers keep what they installed, and no ring is
//!   published again.

use super::LandscapeConnector;
use super::journal::{ChangeKind, JournalEntry, PendingChange};
use super::plane::{self, PlaneView};
use super::publish::send_change;
use super::status::{Inventory, live_installs, outcome_on};
use super::wire::{self, Outcome};
use crate::planes::ledger::{DeploymentState, Ledger};
use crate::planes::{ConnectorError, ErrorCode, Remediation, RemediationResult};
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;

fn invalid(message: String) -> ConnectorError {
    ConnectorError::new(ErrorCode::InvalidRequest, message)
}

pub async fn remediate(
    connector: &LandscapeConnector,
    entry: JournalEntry,
    remediation: &Remediation,
    now: DateTime<Utc>,
) -> Result<RemediationResult, ConnectorError> {
    let (applied, detail) = match remediation {
        Remediation::Uninstall => uninstall(connector, entry).await?,
        Remediation::Rollback { to_version, .. } => rollback(connector, entry, to_version).await?,
        Remediation::Redeploy => redeploy(connector, entry, now).await?,
        Remediation::RingPin { ring } => pin(connector, entry, ring).await?,
        Remediation::Halt => halt(connector, entry).await?,
    };
    tracing::info!(
        action = remediation.name(),
        applied,
        "landscape remediation"
    );
    Ok(RemediationResult {
        action: remediation.clone(),
        applied,
        detail,
    })
}

/// Every (ring, tag) of the deployment, once per tag, in publish order.
fn ring_groups(ledger: &Ledger, allowed_only: bool) -> Vec<(String, String)> {
    let mut seen = BTreeSet::new();
    let mut pairs = Vec::new();
    for record in &ledger.rings {
        if allowed_only && !ledger.ring_allowed(&record.ring) {
            continue;
        }
        for group in &record.groups {
            if seen.insert(group.clone()) {
                pairs.push((record.ring.clone(), group.clone()));
            }
        }
    }
    pairs
}

/// Cancels what the deployment's own installs matching `which` have not
/// delivered; answers how many child activities were cancelled.
async fn cancel_own_installs(
    connector: &LandscapeConnector,
    entry: &JournalEntry,
    which: impl Fn(&PendingChange) -> bool,
) -> Result<usize, ConnectorError> {
    let mut cancelled = 0;
    for activity in entry
        .activities
        .iter()
        .filter(|activity| activity.change.kind == ChangeKind::Install && which(&activity.change))
    {
        cancelled += plane::cancel(connector.client(), activity.activity_id).await?;
    }
    Ok(cancelled)
}

async fn uninstall(
    connector: &LandscapeConnector,
    entry: JournalEntry,
) -> Result<(bool, String), ConnectorError> {
    let mut ledger = entry.ledger.clone();
    ledger.state = DeploymentState::Uninstalled;
    let noted = connector.journal().save_ledger(&ledger)?;
    let cancelled = cancel_own_installs(connector, &entry, |_| true).await?;
    let mut removals = 0;
    for (ring, group) in ring_groups(&ledger, false) {
        if entry
            .activities_on(&group, ChangeKind::Remove, None)
            .next()
            .is_some()
        {
            continue;
        }
        let change = PendingChange {
            ring,
            query: wire::group_query(&group, &ledger.exclusions),
            group,
            kind: ChangeKind::Remove,
            package: ledger.application_id.clone(),
            version: None,
        };
        send_change(connector, &ledger, change).await?;
        removals += 1;
    }
    let applied = noted || cancelled + removals > 0;
    let detail = if applied {
        format!(
            "cancelled {cancelled} undelivered install(s); sent RemovePackages of {} to {removals} tag(s)",
            ledger.application_id
        )
    } else {
        "already uninstalled: every tag has a RemovePackages activity".to_string()
    };
    Ok((applied, detail))
}

async fn rollback(
    connector: &LandscapeConnector,
    entry: JournalEntry,
    to_version: &str,
) -> Result<(bool, String), ConnectorError> {
    if !wire::is_version(to_version) {
        return Err(invalid(format!(
            "rollback version {to_version:?} is not a Debian package version"
        )));
    }
    match &entry.ledger.state {
        DeploymentState::Uninstalled => {
            return Err(invalid(format!(
                "deployment {} was uninstalled; there is nothing to roll back",
                entry.ledger.correlation_id
            )));
        }
        DeploymentState::Active if entry.ledger.version == to_version => {
            return Ok((false, format!("already delivers {to_version}")));
        }
        DeploymentState::RolledBack {
            to_version: current,
        } if current != to_version => {
            return Err(invalid(format!(
                "deployment {} was rolled back to {current} already; publish a new intent instead",
                entry.ledger.correlation_id
            )));
        }
        _ => {}
    }
    let mut ledger = entry.ledger.clone();
    ledger.state = DeploymentState::RolledBack {
        to_version: to_version.to_string(),
    };
    let noted = connector.journal().save_ledger(&ledger)?;
    let mut installs = 0;
    for (ring, group) in ring_groups(&ledger, true) {
        if entry
            .activities_on(&group, ChangeKind::Install, Some(to_version))
            .next()
            .is_some()
        {
            continue;
        }
        let change = PendingChange {
            ring,
            query: wire::group_query(&group, &ledger.exclusions),
            group,
            kind: ChangeKind::Install,
            package: ledger.application_id.clone(),
            version: Some(to_version.to_string()),
        };
        send_change(connector, &ledger, change).await?;
        installs += 1;
    }
    let cancelled = cancel_own_installs(connector, &entry, |change| {
        change.version.as_deref() != Some(to_version)
    })
    .await?;
    let applied = noted || installs + cancelled > 0;
    let detail = if applied {
        format!(
            "sent InstallPackages of {}={to_version} to {installs} tag(s); cancelled {cancelled} undelivered install(s) of {}",
            ledger.application_id, ledger.version
        )
    } else {
        format!("already rolled back: every tag has an install of {to_version}")
    };
    Ok((applied, detail))
}

async fn redeploy(
    connector: &LandscapeConnector,
    entry: JournalEntry,
    now: DateTime<Utc>,
) -> Result<(bool, String), ConnectorError> {
    let ledger = entry.ledger.clone();
    let Some(version) = ledger.delivered_version().map(str::to_string) else {
        return Err(invalid(format!(
            "deployment {} was uninstalled; publish under a new correlation id instead",
            ledger.correlation_id
        )));
    };
    let view = PlaneView::load(connector.client(), &entry).await?;
    let live = live_installs(connector, &entry, &view, &version).await?;
    let inventory = Inventory::load(connector, &entry, &[]).await?;
    let wanted = ring_groups(&ledger, true);
    let mut reinstalled = 0;
    let mut repushed = 0;
    for (ring, group) in &wanted {
        let holds = live
            .iter()
            .any(|(_, groups)| groups.iter().any(|held| held == group));
        let query = if holds {
            let failed: Vec<i64> = inventory
                .of(group)
                .filter(|computer| {
                    let reported = inventory.versions.get(computer).map(String::as_str);
                    outcome_on(&view, *computer, &version, reported, now).0 == Outcome::Failed
                })
                .collect();
            if failed.is_empty() {
                continue;
            }
            repushed += failed.len();
            wire::ids_query(&failed)
        } else {
            reinstalled += 1;
            wire::group_query(group, &ledger.exclusions)
        };
        let change = PendingChange {
            ring: ring.clone(),
            group: group.clone(),
            kind: ChangeKind::Install,
            package: ledger.application_id.clone(),
            version: Some(version.clone()),
            query,
        };
        send_change(connector, &ledger, change).await?;
    }
    let mut cancelled = 0;
    for (delivery, groups) in &live {
        let unexpected = !groups.is_empty()
            && groups
                .iter()
                .all(|group| !wanted.iter().any(|(_, wanted)| wanted == group));
        if unexpected {
            cancelled += plane::cancel(connector.client(), delivery.parent_id).await?;
        }
    }
    let applied = reinstalled + repushed + cancelled > 0;
    let detail = if applied {
        format!(
            "installed {}={version} again on {reinstalled} tag(s) and {repushed} failed computer(s); cancelled {cancelled} undelivered install(s) on tags ringmaster did not target",
            ledger.application_id
        )
    } else {
        "already as published: every tag holds its install, nothing failed, nothing unexpected"
            .to_string()
    };
    Ok((applied, detail))
}

/// Halt: the journal's ledger says so first (publish then refuses every
/// ring), then every install activity of the deployment is cancelled where
/// Landscape still can (undelivered, unapproved children).
async fn halt(
    connector: &LandscapeConnector,
    entry: JournalEntry,
) -> Result<(bool, String), ConnectorError> {
    let mut ledger = entry.ledger.clone();
    ledger.halted = true;
    let noted = connector.journal().save_ledger(&ledger)?;
    let cancelled = cancel_own_installs(connector, &entry, |_| true).await?;
    let applied = noted || cancelled > 0;
    let detail = if applied {
        format!("halted; cancelled {cancelled} undelivered install(s)")
    } else {
        "already halted: nothing undelivered to cancel".to_string()
    };
    Ok((applied, detail))
}

async fn pin(
    connector: &LandscapeConnector,
    entry: JournalEntry,
    ring: &str,
) -> Result<(bool, String), ConnectorError> {
    let mut ledger = entry.ledger.clone();
    ledger.pinned_ring = Some(ring.to_string());
    let noted = connector.journal().save_ledger(&ledger)?;
    let cut: Vec<String> = ledger
        .rings
        .iter()
        .filter(|record| !ledger.ring_allowed(&record.ring))
        .map(|record| record.ring.clone())
        .collect();
    let cancelled =
        cancel_own_installs(connector, &entry, |change| cut.contains(&change.ring)).await?;
    let applied = noted || cancelled > 0;
    let detail = if applied {
        format!(
            "pinned at {ring}; cancelled {cancelled} undelivered install(s) of {} later ring(s)",
            cut.len()
        )
    } else {
        format!("already pinned at {ring}")
    };
    Ok((applied, detail))
}
