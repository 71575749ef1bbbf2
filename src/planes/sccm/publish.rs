//! `publish`: one ring of one deployment onto Configuration Manager,
//! idempotent on the correlation id. The application is found by name and the
//! correlation note in its description, or created from `SDMPackageXML`; the
//! ring gets its own device collection (include rules for the ring's
//! collections, exclude rules for the exclusions), and one required install
//! deployment (`SMS_ApplicationAssignment`, `DesiredConfigType` 1) targets it.
//! The first ring's collection keeps the deployment's ledger in its comment.
//!
//! Every step looks before it writes, and the deployment (the last write) is
//! created only when the ring collection has none, so a retry finishes what an
//! interrupted call began.

use super::SccmConnector;
use super::lookup::{self, FoundApp, RingCollection};
use super::wire::{self, integer, text};
use crate::model::Plane;
use crate::planes::ledger::{DeploymentState, Ledger, is_plain, package_marker};
use crate::planes::{ConnectorError, ErrorCode, PublishRequest, PublishResult};
use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{Value, json};

fn invalid(message: String) -> ConnectorError {
    ConnectorError::new(ErrorCode::InvalidRequest, message)
}

/// Refuses, before any request, what the site could never accept.
pub fn check_request(request: &PublishRequest) -> Result<(), ConnectorError> {
    if request.plane != Plane::Sccm {
        return Err(invalid(format!(
            "request for plane {} sent to the sccm connector",
            request.plane.as_str()
        )));
    }
    for (field, value) in [
        ("correlation_id", &request.correlation_id),
        ("application_id", &request.application_id),
        ("version", &request.version),
        ("ring", &request.ring),
    ] {
        if !is_plain(value) || value.contains('\'') {
            return Err(invalid(format!(
                "publish request field {field} {value:?} is empty or holds quotes, ';', '=', ',', '@' or whitespace"
            )));
        }
    }
    if request.groups.is_empty() {
        return Err(invalid(format!(
            "publish of {} {} ring {} names no collection; the entitlement must list collection ids",
            request.application_id, request.version, request.ring
        )));
    }
    request.artifact.check_sha256()?;
    for group in request.groups.iter().chain(&request.exclusions) {
        if !is_plain(group) || group.contains('\'') {
            return Err(invalid(format!(
                "collection id {group:?} is not a collection id"
            )));
        }
        if request.groups.contains(group) && request.exclusions.contains(group) {
            return Err(invalid(format!(
                "collection {group} is both assigned and excluded"
            )));
        }
    }
    Ok(())
}

/// The required install deployment of `collection_id`, if any.
pub fn install_assignment<'a>(assignments: &'a [Value], collection_id: &str) -> Option<&'a Value> {
    assignments.iter().find(|assignment| {
        text(assignment, "TargetCollectionID") == collection_id
            && integer(assignment, "DesiredConfigType") == Some(wire::DESIRED_INSTALL)
    })
}

/// The uninstall deployment of `collection_id`, if any.
pub fn uninstall_assignment<'a>(
    assignments: &'a [Value],
    collection_id: &str,
) -> Option<&'a Value> {
    assignments.iter().find(|assignment| {
        text(assignment, "TargetCollectionID") == collection_id
            && integer(assignment, "DesiredConfigType") == Some(wire::DESIRED_UNINSTALL)
    })
}

fn check_state(ledger: &Ledger, request: &PublishRequest) -> Result<(), ConnectorError> {
    if ledger.application_id != request.application_id || ledger.version != request.version {
        return Err(invalid(format!(
            "correlation id {} already names {} {} on sccm; a new version needs a new intent",
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

async fn create_app(
    connector: &SccmConnector,
    request: &PublishRequest,
) -> Result<FoundApp, ConnectorError> {
    let description = format!(
        "corr:{};{}",
        request.correlation_id,
        package_marker(&request.application_id, &request.version)
    );
    let xml = wire::sdm_package_xml(request, &description, &connector.shared.content_location)?;
    let created = connector
        .client()
        .send(
            Method::POST,
            "/wmi/SMS_Application",
            Some(&json!({"SDMPackageXML": xml})),
        )
        .await?;
    let instance = match created.get("value") {
        Some(Value::Array(values)) => values.first().cloned().unwrap_or(Value::Null),
        _ => created,
    };
    let app = lookup::app_of(&instance).ok_or_else(|| {
        ConnectorError::new(
            ErrorCode::ServiceUnavailable,
            "the AdminService created an application without CI_ID and ModelID; retry",
        )
    })?;
    tracing::info!(ci_id = app.ci_id, correlation_id = %request.correlation_id, "sccm application created");
    Ok(app)
}

pub async fn publish(
    connector: &SccmConnector,
    request: &PublishRequest,
    now: DateTime<Utc>,
) -> Result<PublishResult, ConnectorError> {
    let client = connector.client();
    let correlation_id = &request.correlation_id;
    let mut created = false;
    let mut collections = lookup::ring_collections(client, correlation_id).await?;
    let existing = connector
        .find_app(correlation_id, Some(&wire::display_name(request)))
        .await?;
    let mut ledger = collections
        .iter()
        .find_map(|collection| collection.ledger.clone())
        .unwrap_or_else(|| Ledger::new(correlation_id, &request.application_id, &request.version));
    check_state(&ledger, request)?;
    let app = match existing {
        Some(app) => {
            let marker = package_marker(&request.application_id, &request.version);
            if !app.description.split(';').any(|part| part == marker) {
                return Err(invalid(format!(
                    "correlation id {correlation_id} already names application {} ({}) on sccm; a new version needs a new intent",
                    app.ci_id, app.name
                )));
            }
            app
        }
        None => {
            for group in request.groups.iter().chain(&request.exclusions) {
                lookup::check_collection(client, group).await?;
            }
            created = true;
            let app = create_app(connector, request).await?;
            connector.remember_app(correlation_id, app.ci_id);
            app
        }
    };
    let app_assignments = lookup::assignments(client, &app).await?;
    let ring_collection = collections
        .iter()
        .find(|collection| collection.ring == request.ring)
        .cloned();
    if ledger.halted {
        return Err(ledger.ring_refusal("Configuration Manager", &request.ring));
    }
    if !ledger.ring_allowed(&request.ring) {
        let complete = ring_collection.as_ref().is_some_and(|collection| {
            install_assignment(&app_assignments, &collection.id).is_some()
        });
        if complete {
            return Ok(PublishResult {
                external_id: app.ci_id.to_string(),
                created,
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

    ledger.record_ring(&request.ring, &request.groups, &request.exclusions);
    let collection = match ring_collection {
        Some(collection) => collection,
        None => {
            if !created {
                for group in request.groups.iter().chain(&request.exclusions) {
                    lookup::check_collection(client, group).await?;
                }
            }
            let is_anchor = !collections
                .iter()
                .any(|collection| collection.ledger.is_some());
            let comment = if is_anchor {
                ledger.render()
            } else {
                format!("corr:{correlation_id};ring:{}", request.ring)
            };
            let name = wire::collection_name(correlation_id, &request.ring);
            let body =
                wire::collection_body(&name, &comment, &connector.shared.limiting_collection_id);
            let id = lookup::create_collection(client, &body).await?;
            created = true;
            let collection = RingCollection {
                id,
                name,
                ring: request.ring.clone(),
                ledger: is_anchor.then(|| ledger.clone()),
            };
            collections.push(collection.clone());
            collection
        }
    };
    let (included, excluded) = lookup::membership(client, &collection.id).await?;
    for group in request
        .groups
        .iter()
        .filter(|group| !included.contains(group))
    {
        lookup::add_rule(client, &collection.id, group, false).await?;
        created = true;
    }
    for group in request
        .exclusions
        .iter()
        .filter(|group| !excluded.contains(group))
    {
        lookup::add_rule(client, &collection.id, group, true).await?;
    }
    if let Some(anchor) = collections
        .iter_mut()
        .find(|collection| collection.ledger.is_some())
    {
        lookup::save_ledger(client, anchor, ledger).await?;
    }
    if install_assignment(&app_assignments, &collection.id).is_none() {
        let description = wire::assignment_description(correlation_id, &request.ring, "install");
        let body = wire::assignment_body(
            &app.assigned(),
            &collection.id,
            &collection.name,
            &description,
            wire::DESIRED_INSTALL,
            now,
        );
        lookup::create_assignment(client, &body).await?;
        created = true;
        tracing::info!(ci_id = app.ci_id, ring = %request.ring, collection = %collection.id, "sccm deployment created");
    }
    Ok(PublishResult {
        external_id: app.ci_id.to_string(),
        created,
    })
}
