//! `remediation`: uninstall, rollback, redeploy and ring pin on Jamf Pro.
//! Each writes the new state into the package's ledger first, then brings
//! the policies in line with it, looking before every write, so a replay or a
//! retry after a lost answer answers `applied: false`.
//!
//! - Uninstall: the install policies are deleted, then one uninstall policy
//!   (the artifact's uninstall command as `files_processes/run_command`) is
//!   scoped to every ring's groups. It is the last write, and its name is
//!   unique, so a lost answer is found by the retry's 409.
//! - Rollback: every ring policy is re-pointed (PUT) at the earlier version's
//!   package, and its logs flushed so "Once per computer" runs again.
//! - Redeploy: every allowed ring policy exists, is enabled, installs the
//!   delivered package and is scoped exactly as published; when a computer's
//!   last run failed, the policy's logs are flushed so it runs again.
//! - Ring pin: the policies of rings after the pin are deleted.

use super::JamfConnector;
use super::lookup;
use super::publish::group_ids;
use super::status::{Deployment, deployment};
use super::wire;
use crate::planes::ledger::{DeploymentState, Ledger};
use crate::planes::{ConnectorError, ErrorCode, Remediation, RemediationResult};
use chrono::{DateTime, Utc};
use std::collections::HashMap;

fn invalid(message: String) -> ConnectorError {
    ConnectorError::new(ErrorCode::InvalidRequest, message)
}

pub async fn remediate(
    connector: &JamfConnector,
    correlation_id: &str,
    remediation: &Remediation,
    _now: DateTime<Utc>,
) -> Result<RemediationResult, ConnectorError> {
    let found = deployment(connector, correlation_id).await?;
    let (applied, detail) = match remediation {
        Remediation::Uninstall => uninstall(connector, found).await?,
        Remediation::Rollback { to_version, .. } => rollback(connector, found, to_version).await?,
        Remediation::Redeploy => redeploy(connector, found).await?,
        Remediation::RingPin { ring } => pin(connector, found, ring).await?,
        Remediation::Halt => halt(connector, found).await?,
    };
    tracing::info!(
        correlation_id,
        action = remediation.name(),
        applied,
        "jamf remediation"
    );
    Ok(RemediationResult {
        action: remediation.clone(),
        applied,
        detail,
    })
}

async fn save(
    connector: &JamfConnector,
    deployment: &mut Deployment,
    ledger: Ledger,
) -> Result<bool, ConnectorError> {
    let info = wire::PackageInfo {
        ledger: ledger.render(),
        ..deployment.package.info.clone()
    };
    let saved = lookup::save_info(connector.client(), &mut deployment.package, info).await?;
    deployment.ledger = ledger;
    Ok(saved)
}

/// Deletes the ring policies `drop` names; answers how many.
async fn drop_ring_policies(
    connector: &JamfConnector,
    deployment: &Deployment,
    drop: impl Fn(&str) -> bool,
) -> Result<usize, ConnectorError> {
    let mut deleted = 0;
    for found in &deployment.policies {
        if let wire::PolicyRole::Ring(ring) = &found.role
            && drop(ring)
        {
            lookup::delete_policy(connector.client(), found.id).await?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

fn allowed_rings(ledger: &Ledger) -> Vec<String> {
    ledger
        .rings
        .iter()
        .filter(|record| ledger.ring_allowed(&record.ring))
        .map(|record| record.ring.clone())
        .collect()
}

async fn uninstall(
    connector: &JamfConnector,
    mut deployment: Deployment,
) -> Result<(bool, String), ConnectorError> {
    let mut ledger = deployment.ledger.clone();
    ledger.state = DeploymentState::Uninstalled;
    let noted = save(connector, &mut deployment, ledger).await?;
    let removed = drop_ring_policies(connector, &deployment, |_| true).await?;
    let groups = group_ids(&deployment.ledger.allowed_groups());
    let exclusions = group_ids(&deployment.ledger.exclusions);
    let command = deployment.package.info.uninstall.clone();
    if command.trim().is_empty() {
        return Err(invalid(format!(
            "package {} records no uninstall command; Jamf cannot uninstall it",
            deployment.package.id
        )));
    }
    let name = wire::uninstall_policy_name(&deployment.label(), &deployment.ledger.correlation_id);
    let wanted = wire::uninstall_policy(&name, &command, &groups, &exclusions);
    let (policy_id, existing, made) = lookup::create_policy(connector.client(), &wanted).await?;
    let mut rescoped = false;
    if !made && (existing.scoped_groups() != groups || !existing.general.enabled) {
        let mut policy = existing;
        policy.set_scope(&groups, &exclusions);
        policy.general.enabled = true;
        lookup::update_policy(connector.client(), policy_id, &policy).await?;
        rescoped = true;
    }
    let applied = noted || removed > 0 || made || rescoped;
    let detail = if applied {
        format!(
            "deleted {removed} install polic(ies); uninstall policy {policy_id} runs the uninstall command on {} group(s)",
            groups.len()
        )
    } else {
        format!("already uninstalled: no install policy, uninstall policy {policy_id} in place")
    };
    Ok((applied, detail))
}

async fn rollback(
    connector: &JamfConnector,
    mut deployment: Deployment,
    to_version: &str,
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
    let previous = lookup::find_version_package(
        connector.client(),
        &application_id,
        to_version,
        deployment.package.id,
    )
    .await?
    .ok_or_else(|| {
        ConnectorError::new(
            ErrorCode::ResourceNotFound,
            format!("no ringmaster package of {application_id} {to_version} on jamf; a rollback installs that version's package, publish it first"),
        )
    })?;
    let mut ledger = deployment.ledger.clone();
    ledger.state = DeploymentState::RolledBack {
        to_version: to_version.to_string(),
    };
    let noted = save(connector, &mut deployment, ledger).await?;
    let allowed = allowed_rings(&deployment.ledger);
    let mut repointed = 0;
    for found in &deployment.policies {
        let wire::PolicyRole::Ring(ring) = &found.role else {
            continue;
        };
        if !allowed.contains(ring) || found.policy.installed_package() == Some(previous.id) {
            continue;
        }
        let mut policy = found.policy.clone();
        policy.package_configuration = wire::installing(previous.id);
        lookup::update_policy(connector.client(), found.id, &policy).await?;
        lookup::flush_logs(connector.client(), found.id).await?;
        repointed += 1;
    }
    let applied = noted || repointed > 0;
    let detail = if applied {
        format!(
            "{repointed} ring polic(ies) now install package {} ({to_version}), their logs flushed",
            previous.id
        )
    } else {
        format!(
            "already rolled back: the ring policies install package {} ({to_version})",
            previous.id
        )
    };
    Ok((applied, detail))
}

async fn redeploy(
    connector: &JamfConnector,
    deployment: Deployment,
) -> Result<(bool, String), ConnectorError> {
    let client = connector.client();
    if deployment.ledger.state == DeploymentState::Uninstalled {
        return Err(invalid(format!(
            "deployment {} was uninstalled; publish under a new correlation id instead",
            deployment.ledger.correlation_id
        )));
    }
    let delivering = super::status::delivering_package(connector, &deployment)
        .await?
        .ok_or_else(|| {
            ConnectorError::new(
                ErrorCode::ResourceNotFound,
                "the package the deployment was rolled back to is gone from jamf",
            )
        })?;
    let allowed = allowed_rings(&deployment.ledger);
    let exclusions = group_ids(&deployment.ledger.exclusions);
    let label = deployment.label();
    let correlation_id = deployment.ledger.correlation_id.clone();
    let (mut fixed, mut flushed) = (0, 0);
    let mut cache: HashMap<u64, Vec<u64>> = HashMap::new();
    for record in deployment
        .ledger
        .rings
        .iter()
        .filter(|record| allowed.contains(&record.ring))
    {
        let groups = group_ids(&record.groups);
        let name = wire::ring_policy_name(&label, &record.ring, &correlation_id);
        let wanted = wire::install_policy(&name, delivering.id, &groups, &exclusions);
        let (policy_id, policy) = match deployment.ring_policy(&record.ring) {
            Some(found) => (found.id, found.policy.clone()),
            None => {
                let (id, policy, made) = lookup::create_policy(client, &wanted).await?;
                fixed += usize::from(made);
                (id, policy)
            }
        };
        let as_published = policy.scoped_groups() == groups
            && policy.excluded_groups() == exclusions
            && policy.general.enabled
            && policy.installed_package() == Some(delivering.id);
        if !as_published {
            let mut repaired = policy.clone();
            repaired.set_scope(&groups, &exclusions);
            repaired.general.enabled = true;
            repaired.package_configuration = wanted.package_configuration.clone();
            lookup::update_policy(client, policy_id, &repaired).await?;
            fixed += 1;
        }
        let mut failed_somewhere = false;
        for computer in super::status::reached(connector, &wanted, &mut cache).await? {
            let logs = lookup::policy_logs(client, computer).await?;
            let last = logs
                .iter()
                .filter(|log| log.policy_id == policy_id)
                .max_by_key(|log| log.date_time_epoch);
            if last.is_some_and(|log| log.status == wire::LOG_FAILED) {
                failed_somewhere = true;
                break;
            }
        }
        if failed_somewhere {
            lookup::flush_logs(client, policy_id).await?;
            flushed += 1;
        }
    }
    let removed = drop_ring_policies(connector, &deployment, |ring| {
        !allowed.iter().any(|wanted| wanted == ring)
    })
    .await?;
    let applied = fixed + flushed + removed > 0;
    let detail = if applied {
        format!(
            "repaired {fixed} ring polic(ies), flushed the logs of {flushed} so failed computers run again, removed {removed} of pinned-out rings"
        )
    } else {
        "already as published: every ring policy scoped and installing the delivered package"
            .to_string()
    };
    Ok((applied, detail))
}

/// Halt: the package's ledger says so first (publish then refuses every
/// ring), then every ring policy is disabled (`PUT` with `enabled` false),
/// keeping its scope and logs: a disabled policy runs on no computer at its
/// next check-in, and what already ran stays installed and reported.
async fn halt(
    connector: &JamfConnector,
    mut deployment: Deployment,
) -> Result<(bool, String), ConnectorError> {
    let mut ledger = deployment.ledger.clone();
    ledger.halted = true;
    let noted = save(connector, &mut deployment, ledger).await?;
    let mut disabled = 0;
    for found in &deployment.policies {
        if let wire::PolicyRole::Ring(_) = &found.role
            && found.policy.general.enabled
        {
            let mut policy = found.policy.clone();
            policy.general.enabled = false;
            lookup::update_policy(connector.client(), found.id, &policy).await?;
            disabled += 1;
        }
    }
    let applied = noted || disabled > 0;
    let detail = if applied {
        format!("halted; disabled {disabled} ring polic(ies)")
    } else {
        "already halted: every ring policy is disabled".to_string()
    };
    Ok((applied, detail))
}

async fn pin(
    connector: &JamfConnector,
    mut deployment: Deployment,
    ring: &str,
) -> Result<(bool, String), ConnectorError> {
    let mut ledger = deployment.ledger.clone();
    ledger.pinned_ring = Some(ring.to_string());
    let noted = save(connector, &mut deployment, ledger).await?;
    let pinned = deployment.ledger.clone();
    let removed =
        drop_ring_policies(connector, &deployment, |name| !pinned.ring_allowed(name)).await?;
    let applied = noted || removed > 0;
    let detail = if applied {
        format!("pinned at {ring}; deleted {removed} polic(ies) of later rings")
    } else {
        format!("already pinned at {ring}")
    };
    Ok((applied, detail))
}
