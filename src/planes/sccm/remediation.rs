//! `remediation`: uninstall, rollback, redeploy and ring pin on
//! Configuration Manager. Each writes the new state into the ledger first,
//! then brings the deployments in line with it, looking before every write, so
//! a replay or a retry after a lost answer answers `applied: false`.

use super::SccmConnector;
use super::lookup::{self, FoundApp};
use super::publish::{install_assignment, uninstall_assignment};
use super::status::{Deployment, delivering_app, deployment, is_install};
use super::wire::{self, text};
use crate::planes::ledger::{DeploymentState, Ledger};
use crate::planes::{ConnectorError, ErrorCode, Remediation, RemediationResult};
use chrono::{DateTime, Utc};

fn invalid(message: String) -> ConnectorError {
    ConnectorError::new(ErrorCode::InvalidRequest, message)
}

pub async fn remediate(
    connector: &SccmConnector,
    correlation_id: &str,
    remediation: &Remediation,
    now: DateTime<Utc>,
) -> Result<RemediationResult, ConnectorError> {
    let found = deployment(connector, correlation_id).await?;
    let (applied, detail) = match remediation {
        Remediation::Uninstall => uninstall(connector, found, now).await?,
        Remediation::Rollback { to_version, .. } => {
            rollback(connector, found, to_version, now).await?
        }
        Remediation::Redeploy => redeploy(connector, found, now).await?,
        Remediation::RingPin { ring } => pin(connector, found, ring).await?,
        Remediation::Halt => halt(connector, found).await?,
    };
    tracing::info!(
        correlation_id,
        action = remediation.name(),
        applied,
        "sccm remediation"
    );
    Ok(RemediationResult {
        action: remediation.clone(),
        applied,
        detail,
    })
}

async fn save(
    connector: &SccmConnector,
    deployment: &mut Deployment,
    ledger: Ledger,
) -> Result<bool, ConnectorError> {
    let saved = match deployment.anchor_mut() {
        Some(anchor) => lookup::save_ledger(connector.client(), anchor, ledger.clone()).await?,
        None => false,
    };
    deployment.ledger = ledger;
    Ok(saved)
}

/// Makes `app` hold exactly the wanted kind of deployment on each of the
/// deployment's ring collections in `rings`; answers (created, deleted).
async fn deploy_on(
    connector: &SccmConnector,
    deployment: &Deployment,
    app: &FoundApp,
    rings: &[String],
    desired_config_type: i64,
    purpose: &str,
    now: DateTime<Utc>,
) -> Result<usize, ConnectorError> {
    let client = connector.client();
    let current = lookup::assignments(client, app).await?;
    let mut created = 0;
    for collection in deployment
        .collections
        .iter()
        .filter(|collection| rings.contains(&collection.ring))
    {
        let present = match desired_config_type {
            wire::DESIRED_UNINSTALL => uninstall_assignment(&current, &collection.id).is_some(),
            _ => install_assignment(&current, &collection.id).is_some(),
        };
        if !present {
            let description = wire::assignment_description(
                &deployment.ledger.correlation_id,
                &collection.ring,
                purpose,
            );
            let body = wire::assignment_body(
                &app.assigned(),
                &collection.id,
                &collection.name,
                &description,
                desired_config_type,
                now,
            );
            lookup::create_assignment(client, &body).await?;
            created += 1;
        }
    }
    Ok(created)
}

/// Deletes `app`'s install deployments whose target `drop` says; answers how many.
async fn drop_installs(
    connector: &SccmConnector,
    app: &FoundApp,
    drop: impl Fn(&str) -> bool,
) -> Result<usize, ConnectorError> {
    let client = connector.client();
    let mut deleted = 0;
    for assignment in lookup::assignments(client, app)
        .await?
        .iter()
        .filter(|assignment| is_install(assignment))
    {
        if drop(text(assignment, "TargetCollectionID")) {
            lookup::delete_assignment(client, assignment).await?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

fn all_rings(deployment: &Deployment) -> Vec<String> {
    deployment
        .ledger
        .rings
        .iter()
        .map(|record| record.ring.clone())
        .collect()
}

async fn uninstall(
    connector: &SccmConnector,
    mut deployment: Deployment,
    now: DateTime<Utc>,
) -> Result<(bool, String), ConnectorError> {
    let mut ledger = deployment.ledger.clone();
    ledger.state = DeploymentState::Uninstalled;
    let noted = save(connector, &mut deployment, ledger).await?;
    let app = deployment.app.clone();
    let removed = drop_installs(connector, &app, |_| true).await?;
    let rings = all_rings(&deployment);
    let added = deploy_on(
        connector,
        &deployment,
        &app,
        &rings,
        wire::DESIRED_UNINSTALL,
        "uninstall",
        now,
    )
    .await?;
    let applied = noted || removed + added > 0;
    let detail = if applied {
        format!(
            "removed {removed} install deployment(s); {added} ring collection(s) now get an uninstall deployment"
        )
    } else {
        "already uninstalled: every ring collection has an uninstall deployment and none installs"
            .to_string()
    };
    Ok((applied, detail))
}

async fn rollback(
    connector: &SccmConnector,
    mut deployment: Deployment,
    to_version: &str,
    now: DateTime<Utc>,
) -> Result<(bool, String), ConnectorError> {
    match &deployment.ledger.state {
        DeploymentState::Uninstalled => {
            return Err(invalid(format!(
                "deployment {} was uninstalled; there is nothing to roll back",
                deployment.ledger.correlation_id
            )));
        }
        DeploymentState::Active if deployment.ledger.version == to_version => {
            return Ok((false, format!("already delivers {to_version}")));
        }
        _ => {}
    }
    let application_id = deployment.ledger.application_id.clone();
    let previous = lookup::find_package(connector.client(), &application_id, to_version)
        .await?
        .filter(|previous| previous.ci_id != deployment.app.ci_id)
        .ok_or_else(|| {
            ConnectorError::new(
                ErrorCode::ResourceNotFound,
                format!("no ringmaster application of {application_id} {to_version} on sccm; a rollback deploys that version's application, publish it first"),
            )
        })?;
    let mut ledger = deployment.ledger.clone();
    ledger.state = DeploymentState::RolledBack {
        to_version: to_version.to_string(),
    };
    let noted = save(connector, &mut deployment, ledger).await?;
    let allowed: Vec<String> = deployment
        .ledger
        .rings
        .iter()
        .filter(|record| deployment.ledger.ring_allowed(&record.ring))
        .map(|record| record.ring.clone())
        .collect();
    let deployed = deploy_on(
        connector,
        &deployment,
        &previous,
        &allowed,
        wire::DESIRED_INSTALL,
        "rollback",
        now,
    )
    .await?;
    let app = deployment.app.clone();
    let ring_collections: Vec<String> = deployment
        .collections
        .iter()
        .map(|collection| collection.id.clone())
        .collect();
    let removed = drop_installs(connector, &app, |target| {
        ring_collections.iter().any(|id| id == target)
    })
    .await?;
    let uninstalls = deploy_on(
        connector,
        &deployment,
        &app,
        &allowed,
        wire::DESIRED_UNINSTALL,
        "rollback",
        now,
    )
    .await?;
    let applied = noted || deployed + removed + uninstalls > 0;
    let detail = if applied {
        format!(
            "deploys {to_version} (application {}) to {deployed} ring collection(s); {} {}: {removed} install deployment(s) removed, {uninstalls} uninstall deployment(s) added",
            previous.ci_id, app.name, deployment.ledger.version
        )
    } else {
        format!(
            "already rolled back: application {} of {to_version} is deployed instead",
            previous.ci_id
        )
    };
    Ok((applied, detail))
}

async fn redeploy(
    connector: &SccmConnector,
    deployment: Deployment,
    now: DateTime<Utc>,
) -> Result<(bool, String), ConnectorError> {
    let client = connector.client();
    if deployment.ledger.state == DeploymentState::Uninstalled {
        return Err(invalid(format!(
            "deployment {} was uninstalled; publish under a new correlation id instead",
            deployment.ledger.correlation_id
        )));
    }
    let delivering = delivering_app(connector, &deployment)
        .await?
        .ok_or_else(|| {
            ConnectorError::new(
                ErrorCode::ResourceNotFound,
                "the application the deployment was rolled back to is gone from sccm",
            )
        })?;
    let allowed: Vec<String> = deployment
        .ledger
        .rings
        .iter()
        .filter(|record| deployment.ledger.ring_allowed(&record.ring))
        .map(|record| record.ring.clone())
        .collect();
    let mut rules = 0;
    for record in deployment
        .ledger
        .rings
        .iter()
        .filter(|record| allowed.contains(&record.ring))
    {
        let Some(collection) = deployment.collection_of(&record.ring) else {
            continue;
        };
        let (included, excluded) = lookup::membership(client, &collection.id).await?;
        for group in record
            .groups
            .iter()
            .filter(|group| !included.contains(group))
        {
            lookup::add_rule(client, &collection.id, group, false).await?;
            rules += 1;
        }
        for group in deployment
            .ledger
            .exclusions
            .iter()
            .filter(|group| !excluded.contains(group))
        {
            lookup::add_rule(client, &collection.id, group, true).await?;
            rules += 1;
        }
    }
    let wanted: Vec<String> = deployment
        .collections
        .iter()
        .filter(|collection| allowed.contains(&collection.ring))
        .map(|collection| collection.id.clone())
        .collect();
    // Only the deployment's own application loses deployments it did not
    // make; an earlier version's (after a rollback) also serves its own intent.
    let removed = if delivering.ci_id == deployment.app.ci_id {
        drop_installs(connector, &delivering, |target| {
            !wanted.iter().any(|id| id == target)
        })
        .await?
    } else {
        0
    };
    let purpose = if delivering.ci_id == deployment.app.ci_id {
        "install"
    } else {
        "rollback"
    };
    let added = deploy_on(
        connector,
        &deployment,
        &delivering,
        &allowed,
        wire::DESIRED_INSTALL,
        purpose,
        now,
    )
    .await?;
    let applied = rules + removed + added > 0;
    let detail = if applied {
        format!(
            "re-added {added} deployment(s) and {rules} membership rule(s), removed {removed} unexpected deployment(s)"
        )
    } else {
        "already as published: every ring collection deployed, nothing unexpected".to_string()
    };
    Ok((applied, detail))
}

/// Halt: the ledger says so first (publish then refuses every ring), then
/// the app's install deployment (`SMS_ApplicationAssignment`) to every ring
/// collection is deleted, so no client evaluates it again; devices keep
/// what they installed.
async fn halt(
    connector: &SccmConnector,
    mut deployment: Deployment,
) -> Result<(bool, String), ConnectorError> {
    let mut ledger = deployment.ledger.clone();
    ledger.halted = true;
    let noted = save(connector, &mut deployment, ledger).await?;
    let collections: Vec<String> = deployment
        .collections
        .iter()
        .map(|collection| collection.id.clone())
        .collect();
    let app = deployment.app.clone();
    let removed = drop_installs(connector, &app, |target| {
        collections.iter().any(|id| id == target)
    })
    .await?;
    let applied = noted || removed > 0;
    let detail = if applied {
        format!("halted; deleted {removed} install deployment(s)")
    } else {
        "already halted: no install deployment left".to_string()
    };
    Ok((applied, detail))
}

async fn pin(
    connector: &SccmConnector,
    mut deployment: Deployment,
    ring: &str,
) -> Result<(bool, String), ConnectorError> {
    let mut ledger = deployment.ledger.clone();
    ledger.pinned_ring = Some(ring.to_string());
    let noted = save(connector, &mut deployment, ledger).await?;
    let cut: Vec<String> = deployment
        .collections
        .iter()
        .filter(|collection| !deployment.ledger.ring_allowed(&collection.ring))
        .map(|collection| collection.id.clone())
        .collect();
    let app = deployment.app.clone();
    let removed =
        drop_installs(connector, &app, |target| cut.iter().any(|id| id == target)).await?;
    let applied = noted || removed > 0;
    let detail = if applied {
        format!("pinned at {ring}; removed {removed} deployment(s) of later rings")
    } else {
        format!("already pinned at {ring}")
    };
    Ok((applied, detail))
}
