//! `publish`: one ring of one deployment onto Intune, idempotent on the
//! correlation id: find the app by its notes (or create it and upload its
//! content), record the ring in the ledger, set supersedence over the version it
//! replaces, and assign the groups it is not assigned to yet by sending the
//! merged list back to `/assign`.
//!
//! The steps run in an order that a retry can always finish: the app is created
//! with its ledger in one call, the content is uploaded while the app has no
//! committed version, the ledger is written before the assignment, and the
//! assignment (the last write) is skipped when every group is there.

use super::IntuneConnector;
use super::client::{Call, GraphClient, Payload};
use super::lookup::{self, APPS, FoundApp};
use super::upload::upload_content;
use super::wire::{self, AppKind, SUPERSEDENCE_TYPE};
use crate::model::Plane;
use crate::planes::ledger::{DeploymentState, Ledger, is_plain};
use crate::planes::{ConnectorError, ErrorCode, PublishRequest, PublishResult};
use reqwest::Method;
use serde_json::{Value, json};

fn invalid(message: String) -> ConnectorError {
    ConnectorError::new(ErrorCode::InvalidRequest, message)
}

/// Refuses, before any request, what Intune could never accept.
pub fn check_request(request: &PublishRequest) -> Result<(), ConnectorError> {
    if request.plane != Plane::Intune {
        return Err(invalid(format!(
            "request for plane {} sent to the intune connector",
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
    if request.groups.is_empty() {
        return Err(invalid(format!(
            "publish of {} {} ring {} names no group; the entitlement must list Entra group ids",
            request.application_id, request.version, request.ring
        )));
    }
    request.artifact.check_sha256()?;
    for group in request.groups.iter().chain(&request.exclusions) {
        if !is_plain(group) {
            return Err(invalid(format!(
                "group id {group:?} is not an Entra group id"
            )));
        }
        if request.groups.contains(group) && request.exclusions.contains(group) {
            return Err(invalid(format!(
                "group {group} is both assigned and excluded"
            )));
        }
    }
    Ok(())
}

/// Refuses a request that contradicts the deployment the plane holds.
fn check_matches(app: &FoundApp, request: &PublishRequest) -> Result<(), ConnectorError> {
    let ledger = &app.ledger;
    if ledger.application_id != request.application_id || ledger.version != request.version {
        return Err(invalid(format!(
            "correlation id {} already names {} {} on intune (app {}); a new version needs a new intent",
            request.correlation_id, ledger.application_id, ledger.version, app.id
        )));
    }
    match &ledger.state {
        DeploymentState::Active => Ok(()),
        DeploymentState::Uninstalled => Err(invalid(format!(
            "app {} was uninstalled; publish under a new correlation id",
            app.id
        ))),
        DeploymentState::RolledBack { to_version } => Err(invalid(format!(
            "app {} was rolled back to {to_version}; publish under a new correlation id",
            app.id
        ))),
    }
}

async fn create_app(
    client: &GraphClient,
    request: &PublishRequest,
) -> Result<FoundApp, ConnectorError> {
    let mut ledger = Ledger::new(
        &request.correlation_id,
        &request.application_id,
        &request.version,
    );
    ledger.record_ring(&request.ring, &request.groups, &request.exclusions);
    let body = wire::app_body(request, &ledger)?;
    let call = Call {
        method: Method::POST,
        target: APPS,
        correlation_id: &request.correlation_id,
    };
    let created = client.send(&call, Payload::Json(&body)).await?;
    let id = created
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ConnectorError::new(
                ErrorCode::ServiceUnavailable,
                "Graph created a mobileApp without an id; retry",
            )
        })?
        .to_string();
    tracing::info!(app_id = %id, correlation_id = %request.correlation_id, "intune app created");
    Ok(FoundApp {
        id,
        kind: AppKind::of_file(&request.artifact.file),
        ledger,
        committed: false,
    })
}

/// Makes the new app supersede (update) the app of the version it replaces,
/// when ringmaster published that one too.
async fn supersede(
    client: &GraphClient,
    app: &FoundApp,
    request: &PublishRequest,
    previous_version: &str,
) -> Result<(), ConnectorError> {
    let correlation_id = &request.correlation_id;
    let Some(previous) = lookup::find_package(
        client,
        &request.application_id,
        previous_version,
        correlation_id,
    )
    .await?
    else {
        tracing::debug!(
            previous_version,
            "no ringmaster app of the superseded version on intune"
        );
        return Ok(());
    };
    if previous.id == app.id {
        return Ok(());
    }
    let path = format!("{APPS}/{}/relationships", app.id);
    let current = client.get_all(&path, correlation_id).await?;
    let mut relationships = supersedences(&current);
    if relationships
        .iter()
        .any(|relationship| relationship["targetId"] == previous.id.as_str())
    {
        return Ok(());
    }
    relationships.push(json!({
        "@odata.type": SUPERSEDENCE_TYPE,
        "targetId": previous.id,
        "supersedenceType": "update",
    }));
    update_relationships(client, &app.id, relationships, correlation_id).await
}

/// The app's own supersedence relationships (it supersedes their targets), as
/// `updateRelationships` takes them.
pub fn supersedences(relationships: &[Value]) -> Vec<Value> {
    relationships
        .iter()
        .filter(|relationship| {
            relationship.get("@odata.type").and_then(Value::as_str) == Some(SUPERSEDENCE_TYPE)
                && relationship.get("targetType").and_then(Value::as_str) != Some("parent")
        })
        .map(|relationship| {
            json!({
                "@odata.type": SUPERSEDENCE_TYPE,
                "targetId": relationship.get("targetId").cloned().unwrap_or(Value::Null),
                "supersedenceType": relationship
                    .get("supersedenceType")
                    .cloned()
                    .unwrap_or_else(|| json!("update")),
            })
        })
        .collect()
}

/// Replaces the app's relationship set (`updateRelationships`).
pub async fn update_relationships(
    client: &GraphClient,
    app_id: &str,
    relationships: Vec<Value>,
    correlation_id: &str,
) -> Result<(), ConnectorError> {
    let target = format!("{APPS}/{app_id}/updateRelationships");
    let call = Call {
        method: Method::POST,
        target: &target,
        correlation_id,
    };
    let body = json!({"relationships": relationships});
    client.send(&call, Payload::Json(&body)).await?;
    Ok(())
}

pub async fn publish(
    connector: &IntuneConnector,
    request: &PublishRequest,
) -> Result<PublishResult, ConnectorError> {
    let client = connector.client();
    let correlation_id = &request.correlation_id;
    let display_name = wire::display_name(request);
    let existing = connector
        .find_app(correlation_id, Some(&display_name))
        .await?;
    let mut created = false;
    let mut app = match existing {
        Some(app) => {
            check_matches(&app, request)?;
            app
        }
        None => {
            connector.shared.content.load(request)?;
            for group in &request.groups {
                lookup::check_group(client, group, correlation_id).await?;
            }
            created = true;
            let app = create_app(client, request).await?;
            connector.remember_app(correlation_id, &app.id);
            app
        }
    };
    if !app.committed {
        let content = connector.shared.content.load(request)?;
        upload_content(
            client,
            &app.id,
            app.kind,
            &content,
            &request.artifact.file,
            connector.shared.polling,
            correlation_id,
        )
        .await?;
        app.committed = true;
    }
    if let Some(previous_version) = &request.supersedes_version {
        supersede(client, &app, request, previous_version).await?;
    }

    let current = lookup::assignments(client, &app.id, correlation_id).await?;
    let assigned = wire::install_groups(&current);
    let missing: Vec<&String> = request
        .groups
        .iter()
        .filter(|group| !assigned.contains(group))
        .collect();
    if app.ledger.halted {
        return Err(app.ledger.ring_refusal(&app.id, &request.ring));
    }
    if !app.ledger.ring_allowed(&request.ring) {
        if missing.is_empty() {
            return Ok(PublishResult {
                external_id: app.id,
                created,
            });
        }
        return Err(ConnectorError::new(
            ErrorCode::RingPinned,
            format!(
                "app {} is pinned at ring {}; ring {} is not assigned",
                app.id,
                app.ledger.pinned_ring.as_deref().unwrap_or_default(),
                request.ring
            ),
        ));
    }
    if !created {
        for group in &missing {
            lookup::check_group(client, group, correlation_id).await?;
        }
    }
    let mut ledger = app.ledger.clone();
    ledger.record_ring(&request.ring, &request.groups, &request.exclusions);
    lookup::save_ledger(client, &mut app, ledger).await?;

    let excluded = wire::excluded_groups(&current);
    let missing_exclusions: Vec<&String> = request
        .exclusions
        .iter()
        .filter(|group| !excluded.contains(group))
        .collect();
    if !missing.is_empty() || !missing_exclusions.is_empty() {
        let mut list = current.clone();
        for group in &missing {
            list.push(wire::assignment(app.kind, "required", group, false));
        }
        for group in &missing_exclusions {
            list.push(wire::assignment(app.kind, "required", group, true));
        }
        lookup::assign(client, &app.id, &list, correlation_id).await?;
        created |= !missing.is_empty();
        tracing::info!(app_id = %app.id, ring = %request.ring, added = missing.len(), "intune groups assigned");
    }
    Ok(PublishResult {
        external_id: app.id,
        created,
    })
}
