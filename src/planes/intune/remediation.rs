//! `remediation`: uninstall, rollback, redeploy and ring pin on Intune. Each
//! writes the new state into the ledger first and then brings the assignments
//! in line, comparing with what the plane holds, so a replay or a retry after a
//! lost answer changes nothing and answers `applied: false`.

use super::IntuneConnector;
use super::lookup::{self, APPS, FoundApp};
use super::publish::{supersedences, update_relationships};
use super::status::{delivering_app, not_found};
use super::wire::{self, AppKind};
use crate::planes::ledger::DeploymentState;
use crate::planes::{ConnectorError, ErrorCode, Remediation, RemediationResult};
use serde_json::Value;

fn invalid(message: String) -> ConnectorError {
    ConnectorError::new(ErrorCode::InvalidRequest, message)
}

/// Adds an assignment of `group` with `intent` unless one is there.
fn ensure(list: &mut Vec<Value>, kind: AppKind, intent: &str, group: &str, excluded: bool) -> bool {
    let present = list.iter().any(|assignment| {
        wire::target_group(assignment) == Some((group, excluded))
            && (excluded || wire::intent_of(assignment) == intent)
    });
    if !present {
        list.push(wire::assignment(kind, intent, group, excluded));
    }
    !present
}

/// Drops the install assignments whose group `drop` says; answers how many.
fn drop_install(list: &mut Vec<Value>, drop: impl Fn(&str) -> bool) -> usize {
    let before = list.len();
    list.retain(|assignment| !wire::install_group(assignment).is_some_and(&drop));
    before - list.len()
}

pub async fn remediate(
    connector: &IntuneConnector,
    correlation_id: &str,
    remediation: &Remediation,
) -> Result<RemediationResult, ConnectorError> {
    let app = connector
        .find_app(correlation_id, None)
        .await?
        .ok_or_else(|| not_found(correlation_id))?;
    let (applied, detail) = match remediation {
        Remediation::Uninstall => uninstall(connector, app).await?,
        Remediation::Rollback { to_version, .. } => rollback(connector, app, to_version).await?,
        Remediation::Redeploy => redeploy(connector, app).await?,
        Remediation::RingPin { ring } => pin(connector, app, ring).await?,
        Remediation::Halt => halt(connector, app).await?,
    };
    tracing::info!(
        correlation_id,
        action = remediation.name(),
        applied,
        "intune remediation"
    );
    Ok(RemediationResult {
        action: remediation.clone(),
        applied,
        detail,
    })
}

async fn uninstall(
    connector: &IntuneConnector,
    mut app: FoundApp,
) -> Result<(bool, String), ConnectorError> {
    let client = connector.client();
    let correlation_id = app.ledger.correlation_id.clone();
    let mut ledger = app.ledger.clone();
    ledger.state = DeploymentState::Uninstalled;
    let noted = lookup::save_ledger(client, &mut app, ledger).await?;
    let current = lookup::assignments(client, &app.id, &correlation_id).await?;
    let mut groups: Vec<String> = wire::install_groups(&current);
    for record in &app.ledger.rings {
        groups.extend(record.groups.iter().cloned());
    }
    groups.sort();
    groups.dedup();
    let mut list = current.clone();
    let removed = drop_install(&mut list, |_| true);
    let mut added = 0;
    for group in &groups {
        added += usize::from(ensure(&mut list, app.kind, "uninstall", group, false));
    }
    if removed + added > 0 {
        lookup::assign(client, &app.id, &list, &correlation_id).await?;
    }
    let applied = noted || removed + added > 0;
    let detail = if applied {
        format!(
            "removed {removed} install assignment(s); {added} group(s) now assigned with intent uninstall"
        )
    } else {
        "already uninstalled: every group is assigned with intent uninstall".to_string()
    };
    Ok((applied, detail))
}

async fn rollback(
    connector: &IntuneConnector,
    mut app: FoundApp,
    to_version: &str,
) -> Result<(bool, String), ConnectorError> {
    let client = connector.client();
    let correlation_id = app.ledger.correlation_id.clone();
    match &app.ledger.state {
        DeploymentState::Uninstalled => {
            return Err(invalid(format!(
                "app {} was uninstalled; there is nothing to roll back",
                app.id
            )));
        }
        DeploymentState::Active if app.ledger.version == to_version => {
            return Ok((false, format!("already delivers {to_version}")));
        }
        _ => {}
    }
    let application_id = app.ledger.application_id.clone();
    let previous = lookup::find_package(client, &application_id, to_version, &correlation_id)
        .await?
        .filter(|previous| previous.id != app.id)
        .ok_or_else(|| {
            ConnectorError::new(
                ErrorCode::ResourceNotFound,
                format!(
                    "no ringmaster app of {application_id} {to_version} on intune; a rollback re-assigns that version's app, publish it first"
                ),
            )
        })?;
    let mut ledger = app.ledger.clone();
    ledger.state = DeploymentState::RolledBack {
        to_version: to_version.to_string(),
    };
    let noted = lookup::save_ledger(client, &mut app, ledger).await?;
    let groups = app.ledger.allowed_groups();

    let previous_current = lookup::assignments(client, &previous.id, &correlation_id).await?;
    let mut previous_list = previous_current.clone();
    let mut reassigned = 0;
    for group in &groups {
        reassigned += usize::from(ensure(
            &mut previous_list,
            previous.kind,
            "required",
            group,
            false,
        ));
    }
    for group in &app.ledger.exclusions {
        ensure(&mut previous_list, previous.kind, "required", group, true);
    }
    if previous_list.len() != previous_current.len() {
        lookup::assign(client, &previous.id, &previous_list, &correlation_id).await?;
    }

    let current = lookup::assignments(client, &app.id, &correlation_id).await?;
    let mut list = current.clone();
    let unassigned = drop_install(&mut list, |_| true);
    if unassigned > 0 {
        lookup::assign(client, &app.id, &list, &correlation_id).await?;
    }

    let path = format!("{APPS}/{}/relationships", app.id);
    let relationships = supersedences(&client.get_all(&path, &correlation_id).await?);
    let kept: Vec<Value> = relationships
        .iter()
        .filter(|relationship| relationship["targetId"] != previous.id.as_str())
        .cloned()
        .collect();
    let unsuperseded = kept.len() != relationships.len();
    if unsuperseded {
        update_relationships(client, &app.id, kept, &correlation_id).await?;
    }
    let applied = noted || reassigned + unassigned > 0 || unsuperseded;
    let detail = if applied {
        format!(
            "delivers {to_version} (app {}) to {reassigned} more group(s); removed {unassigned} install assignment(s) of {}",
            previous.id, app.ledger.version
        )
    } else {
        format!(
            "already rolled back: app {} of {to_version} is assigned instead",
            previous.id
        )
    };
    Ok((applied, detail))
}

async fn redeploy(
    connector: &IntuneConnector,
    app: FoundApp,
) -> Result<(bool, String), ConnectorError> {
    let client = connector.client();
    let correlation_id = app.ledger.correlation_id.clone();
    if app.ledger.state == DeploymentState::Uninstalled {
        return Err(invalid(format!(
            "app {} was uninstalled; publish under a new correlation id instead",
            app.id
        )));
    }
    let delivering = delivering_app(connector, &app).await?.ok_or_else(|| {
        ConnectorError::new(
            ErrorCode::ResourceNotFound,
            format!(
                "the app the deployment was rolled back to is gone from intune (app {})",
                app.id
            ),
        )
    })?;
    let desired = app.ledger.allowed_groups();
    let current = lookup::assignments(client, &delivering.id, &correlation_id).await?;
    let mut list = current.clone();
    // Only the deployment's own app loses assignments it did not make; an earlier
    // version's app (after a rollback) also serves its own intent's groups.
    let removed = if delivering.id == app.id {
        drop_install(&mut list, |group| {
            !desired.iter().any(|wanted| wanted == group)
        })
    } else {
        0
    };
    let mut added = 0;
    for group in &desired {
        added += usize::from(ensure(&mut list, delivering.kind, "required", group, false));
    }
    for group in &app.ledger.exclusions {
        ensure(&mut list, delivering.kind, "required", group, true);
    }
    let changed = removed + added > 0 || list.len() != current.len();
    if changed {
        lookup::assign(client, &delivering.id, &list, &correlation_id).await?;
    }
    let detail = if changed {
        format!("re-added {added} assignment(s), removed {removed} unexpected one(s)")
    } else {
        "already as published: every group assigned, nothing unexpected; Graph has no action to re-run a failed Win32 install, so failed devices retry on their own schedule".to_string()
    };
    Ok((changed, detail))
}

/// Halt: the ledger says so first (so publish refuses every ring), then
/// every install assignment of the app is withdrawn in one `assign` call.
/// Devices that installed keep the app; the others never get it.
async fn halt(
    connector: &IntuneConnector,
    mut app: FoundApp,
) -> Result<(bool, String), ConnectorError> {
    let client = connector.client();
    let correlation_id = app.ledger.correlation_id.clone();
    let mut ledger = app.ledger.clone();
    ledger.halted = true;
    let noted = lookup::save_ledger(client, &mut app, ledger).await?;
    let current = lookup::assignments(client, &app.id, &correlation_id).await?;
    let mut list = current.clone();
    let removed = drop_install(&mut list, |_| true);
    if removed > 0 {
        lookup::assign(client, &app.id, &list, &correlation_id).await?;
    }
    let applied = noted || removed > 0;
    let detail = if applied {
        format!("halted; withdrew {removed} install assignment(s)")
    } else {
        "already halted: no install assignment left".to_string()
    };
    Ok((applied, detail))
}

async fn pin(
    connector: &IntuneConnector,
    mut app: FoundApp,
    ring: &str,
) -> Result<(bool, String), ConnectorError> {
    let client = connector.client();
    let correlation_id = app.ledger.correlation_id.clone();
    let mut ledger = app.ledger.clone();
    ledger.pinned_ring = Some(ring.to_string());
    let noted = lookup::save_ledger(client, &mut app, ledger).await?;
    let allowed = app.ledger.allowed_groups();
    let cut: Vec<String> = app
        .ledger
        .rings
        .iter()
        .filter(|record| !app.ledger.ring_allowed(&record.ring))
        .flat_map(|record| record.groups.iter().cloned())
        .filter(|group| !allowed.contains(group))
        .collect();
    let current = lookup::assignments(client, &app.id, &correlation_id).await?;
    let mut list = current.clone();
    let removed = drop_install(&mut list, |group| {
        cut.iter().any(|cut_group| cut_group == group)
    });
    if removed > 0 {
        lookup::assign(client, &app.id, &list, &correlation_id).await?;
    }
    let applied = noted || removed > 0;
    let detail = if applied {
        format!("pinned at {ring}; removed {removed} assignment(s) of later rings")
    } else {
        format!("already pinned at {ring}")
    };
    Ok((applied, detail))
}
