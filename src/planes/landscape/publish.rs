//! `publish`: one ring of one deployment onto Landscape, idempotent on the
//! correlation id through the journal. Each of the ring's tags gets one
//! `InstallPackages` of `<package>=<version>` on `tag:<group> NOT tag:<excluded>`,
//! unless the journal already holds one. Every change is written as pending
//! before it is sent, so a retry after a lost answer finds the activity it
//! made instead of sending a second one.

use super::LandscapeConnector;
use super::journal::{ChangeKind, JournalActivity, PendingChange};
use super::plane;
use super::wire;
use crate::model::Plane;
use crate::planes::ledger::{DeploymentState, Ledger, is_plain};
use crate::planes::{ConnectorError, ErrorCode, PublishRequest, PublishResult};
use chrono::{DateTime, Utc};

fn invalid(message: String) -> ConnectorError {
    ConnectorError::new(ErrorCode::InvalidRequest, message)
}

/// Refuses, before any request, what Landscape could never accept.
pub fn check_request(request: &PublishRequest) -> Result<(), ConnectorError> {
    if request.plane != Plane::Landscape {
        return Err(invalid(format!(
            "request for plane {} sent to the landscape connector",
            request.plane.as_str()
        )));
    }
    for (field, value) in [
        ("correlation_id", &request.correlation_id),
        ("application_id", &request.application_id),
        ("version", &request.version),
        ("ring", &request.ring),
    ] {
        if !is_plain(value) {
            return Err(invalid(format!(
                "publish request field {field} {value:?} is empty or holds ';', '=', ',', '@' or whitespace"
            )));
        }
    }
    if !wire::is_package_name(&request.application_id) {
        return Err(invalid(format!(
            "application id {:?} is not a Debian package name; Landscape installs APT packages by name",
            request.application_id
        )));
    }
    if !wire::is_version(&request.version) {
        return Err(invalid(format!(
            "version {:?} is not a Debian package version",
            request.version
        )));
    }
    if request.groups.is_empty() {
        return Err(invalid(format!(
            "publish of {} {} ring {} names no tag; the entitlement must list Landscape tags",
            request.application_id, request.version, request.ring
        )));
    }
    request.artifact.check_sha256()?;
    for group in request.groups.iter().chain(&request.exclusions) {
        if !wire::is_tag(group) {
            return Err(invalid(format!("{group:?} is not a Landscape tag")));
        }
        if request.groups.contains(group) && request.exclusions.contains(group) {
            return Err(invalid(format!(
                "tag {group} is both assigned and excluded"
            )));
        }
    }
    Ok(())
}

fn check_state(ledger: &Ledger, request: &PublishRequest) -> Result<(), ConnectorError> {
    if ledger.application_id != request.application_id || ledger.version != request.version {
        return Err(invalid(format!(
            "correlation id {} already names {} {} on landscape; a new version needs a new intent",
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

/// Sends one package change: pending in the journal first, then the request,
/// then the activity id (with the ledger) in one transaction. A transient
/// failure keeps the pending row, for the retry to settle.
pub async fn send_change(
    connector: &LandscapeConnector,
    ledger: &Ledger,
    change: PendingChange,
) -> Result<JournalActivity, ConnectorError> {
    let journal = connector.journal();
    journal.add_pending(ledger, &change)?;
    match plane::request_change(connector.client(), &change).await {
        Ok(parent) => {
            let activity = JournalActivity {
                activity_id: parent.id,
                change,
                created_at: parent.creation_time,
            };
            journal.record(ledger, &activity)?;
            tracing::info!(
                activity_id = activity.activity_id,
                group = %activity.change.group,
                kind = activity.change.kind.as_str(),
                "landscape activity created"
            );
            Ok(activity)
        }
        Err(error) => {
            if !error.is_retryable() {
                journal.clear_pending(&ledger.correlation_id, &change)?;
            }
            Err(error)
        }
    }
}

pub async fn publish(
    connector: &LandscapeConnector,
    request: &PublishRequest,
    _now: DateTime<Utc>,
) -> Result<PublishResult, ConnectorError> {
    let client = connector.client();
    let correlation_id = &request.correlation_id;
    let entry = connector.entry(correlation_id).await?;
    let mut ledger = match &entry {
        Some(entry) => entry.ledger.clone(),
        None => Ledger::new(correlation_id, &request.application_id, &request.version),
    };
    check_state(&ledger, request)?;
    if entry.is_none() {
        // The journal knows the deployment from its first valid request on,
        // before anything reaches the plane.
        connector.journal().save_ledger(&ledger)?;
    }
    let external_id = wire::package_spec(&request.application_id, Some(&request.version));
    if ledger.halted {
        return Err(ledger.ring_refusal("Landscape", &request.ring));
    }
    if !ledger.ring_allowed(&request.ring) {
        return Err(ConnectorError::new(
            ErrorCode::RingPinned,
            format!(
                "deployment {correlation_id} is pinned at ring {}; ring {} is not deployed",
                ledger.pinned_ring.as_deref().unwrap_or_default(),
                request.ring
            ),
        ));
    }
    let missing: Vec<&String> = request
        .groups
        .iter()
        .filter(|group| {
            entry.as_ref().is_none_or(|entry| {
                entry
                    .activities_on(group, ChangeKind::Install, Some(&request.version))
                    .next()
                    .is_none()
            })
        })
        .collect();
    let mut queries = Vec::new();
    for group in &missing {
        let query = wire::group_query(group, &request.exclusions);
        if plane::computers(client, &query).await?.is_empty() {
            return Err(ConnectorError::new(
                ErrorCode::ResourceNotFound,
                format!(
                    "no computer on landscape matches {query:?}: tag {group} is on no computer (or all are excluded); check the entitlement"
                ),
            ));
        }
        queries.push(query);
    }
    ledger.record_ring(&request.ring, &request.groups, &request.exclusions);
    let mut created = false;
    for (group, query) in missing.into_iter().zip(queries) {
        let change = PendingChange {
            ring: request.ring.clone(),
            group: group.clone(),
            kind: ChangeKind::Install,
            package: request.application_id.clone(),
            version: Some(request.version.clone()),
            query,
        };
        send_change(connector, &ledger, change).await?;
        created = true;
    }
    connector.journal().save_ledger(&ledger)?;
    Ok(PublishResult {
        external_id,
        created,
    })
}
