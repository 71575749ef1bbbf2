//! `lookup`: finding what the plane holds: the app of a correlation id (or of an
//! application version), its assignments, groups and their device members;
//! and the two writes every operation shares, `/assign` and the ledger in
//! `notes`.

use super::client::{Call, GraphClient, Payload};
use super::wire::{AppKind, assign_body};
use crate::planes::http::encode_query_value;
use crate::planes::ledger::{Ledger, correlation_in, package_marker};
use crate::planes::{ConnectorError, ErrorCode};
use reqwest::Method;
use serde_json::{Value, json};

pub const APPS: &str = "/beta/deviceAppManagement/mobileApps";

/// The properties every app lookup reads. `committedContentVersion` is
/// declared on the derived type `mobileLobApp` (Graph's description), so it is
/// selected through that cast: OData answers 400 for an undeclared property.
pub const APP_SELECT: &str =
    "id,displayName,notes,publishingState,microsoft.graph.mobileLobApp/committedContentVersion";

/// A ringmaster app found on the plane.
#[derive(Debug, Clone)]
pub struct FoundApp {
    pub id: String,
    pub kind: AppKind,
    pub ledger: Ledger,
    /// Content committed: the app can be assigned.
    pub committed: bool,
}

fn found(app: &Value) -> Option<FoundApp> {
    let notes = app.get("notes").and_then(Value::as_str)?;
    let ledger = Ledger::parse(notes)?;
    let kind = match app.get("@odata.type").and_then(Value::as_str) {
        Some(kind) if kind.ends_with("macOSPkgApp") => AppKind::MacPkg,
        _ => AppKind::Win32,
    };
    let committed = app
        .get("committedContentVersion")
        .and_then(Value::as_str)
        .is_some_and(|version| !version.is_empty());
    Some(FoundApp {
        id: app.get("id")?.as_str()?.to_string(),
        kind,
        ledger,
        committed,
    })
}

async fn list_apps(
    client: &GraphClient,
    display_name: Option<&str>,
    correlation_id: &str,
) -> Result<Vec<Value>, ConnectorError> {
    let select = format!("$select={APP_SELECT}");
    let path = match display_name {
        // `$filter` on displayName is widely used; on `notes` it is not known
        // to work, so the notes are always matched here, page by page.
        Some(name) => {
            let filter = format!("displayName eq '{}'", name.replace('\'', "''"));
            format!("{APPS}?$filter={}&{select}", encode_query_value(&filter))
        }
        None => format!("{APPS}?{select}"),
    };
    client.get_all(&path, correlation_id).await
}

/// The app whose notes carry `correlation_id`: first among apps named
/// `display_name` (when known), then across every app. The oldest wins if an
/// earlier bug left two.
pub async fn find_app(
    client: &GraphClient,
    correlation_id: &str,
    display_name: Option<&str>,
) -> Result<Option<FoundApp>, ConnectorError> {
    let matches = |apps: &[Value]| -> Option<FoundApp> {
        apps.iter()
            .filter(|app| {
                app.get("notes")
                    .and_then(Value::as_str)
                    .and_then(correlation_in)
                    == Some(correlation_id)
            })
            .find_map(found)
    };
    if let Some(name) = display_name {
        let named = list_apps(client, Some(name), correlation_id).await?;
        if let Some(app) = matches(&named) {
            return Ok(Some(app));
        }
    }
    let all = list_apps(client, None, correlation_id).await?;
    Ok(matches(&all))
}

/// The app with `app_id`, if it still exists and still carries
/// `correlation_id` in its notes.
pub async fn get_app(
    client: &GraphClient,
    app_id: &str,
    correlation_id: &str,
) -> Result<Option<FoundApp>, ConnectorError> {
    let target = format!("{APPS}/{app_id}?$select={APP_SELECT}");
    let call = Call {
        method: Method::GET,
        target: &target,
        correlation_id,
    };
    match client.send(&call, Payload::Empty).await {
        Ok(app) => Ok(found(&app).filter(|app| app.ledger.correlation_id == correlation_id)),
        Err(error) if error.code == ErrorCode::ResourceNotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// A ringmaster app of `application_id` at `version` (made by any intent),
/// preferring one still active.
pub async fn find_package(
    client: &GraphClient,
    application_id: &str,
    version: &str,
    correlation_id: &str,
) -> Result<Option<FoundApp>, ConnectorError> {
    let marker = package_marker(application_id, version);
    let apps = list_apps(client, None, correlation_id).await?;
    let mut candidates: Vec<FoundApp> = apps
        .iter()
        .filter(|app| {
            app.get("notes")
                .and_then(Value::as_str)
                .is_some_and(|notes| notes.split(';').any(|part| part == marker))
        })
        .filter_map(found)
        .collect();
    candidates
        .sort_by_key(|app| app.ledger.state != crate::planes::ledger::DeploymentState::Active);
    Ok(candidates.into_iter().next())
}

pub async fn assignments(
    client: &GraphClient,
    app_id: &str,
    correlation_id: &str,
) -> Result<Vec<Value>, ConnectorError> {
    client
        .get_all(&format!("{APPS}/{app_id}/assignments"), correlation_id)
        .await
}

/// Replaces the app's whole assignment list (Graph `/assign`).
pub async fn assign(
    client: &GraphClient,
    app_id: &str,
    assignments: &[Value],
    correlation_id: &str,
) -> Result<(), ConnectorError> {
    let target = format!("{APPS}/{app_id}/assign");
    let call = Call {
        method: Method::POST,
        target: &target,
        correlation_id,
    };
    client
        .send(&call, Payload::Json(&assign_body(assignments)))
        .await?;
    Ok(())
}

/// Writes the ledger into the app's notes, when it changed.
pub async fn save_ledger(
    client: &GraphClient,
    app: &mut FoundApp,
    ledger: Ledger,
) -> Result<bool, ConnectorError> {
    if ledger == app.ledger {
        return Ok(false);
    }
    let target = format!("{APPS}/{}", app.id);
    let call = Call {
        method: Method::PATCH,
        target: &target,
        correlation_id: &ledger.correlation_id,
    };
    let body = json!({"@odata.type": app.kind.odata_type(), "notes": ledger.render()});
    client.send(&call, Payload::Json(&body)).await?;
    app.ledger = ledger;
    Ok(true)
}

/// Fails with `resource_not_found` naming the group when it does not exist.
pub async fn check_group(
    client: &GraphClient,
    group: &str,
    correlation_id: &str,
) -> Result<(), ConnectorError> {
    let target = format!("/v1.0/groups/{group}?$select=id");
    let call = Call {
        method: Method::GET,
        target: &target,
        correlation_id,
    };
    match client.send(&call, Payload::Empty).await {
        Err(error) if error.code == ErrorCode::ResourceNotFound => Err(ConnectorError::new(
            ErrorCode::ResourceNotFound,
            format!("group {group} does not exist on intune; check the entitlement"),
        )),
        other => other.map(|_| ()),
    }
}

/// The device ids of a group's members, nested groups included.
pub async fn group_devices(
    client: &GraphClient,
    group: &str,
    correlation_id: &str,
) -> Result<Vec<String>, ConnectorError> {
    let path = format!(
        "/v1.0/groups/{group}/transitiveMembers/microsoft.graph.device?$select=id,deviceId"
    );
    let members = match client.get_all(&path, correlation_id).await {
        Err(error) if error.code == ErrorCode::ResourceNotFound => return Ok(Vec::new()),
        other => other?,
    };
    Ok(members
        .iter()
        .filter_map(|member| member.get("deviceId").and_then(Value::as_str))
        .map(str::to_string)
        .collect())
}
