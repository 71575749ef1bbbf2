//! `routes`: the simulated Graph endpoints for tokens, apps, assignments,
//! relationships, install status and groups, with Graph's status codes: 201 on
//! create, 204 on `/assign` and PATCH, 400 `BadRequest` on bodies Graph would
//! refuse, 404 `ResourceNotFound` on unknown ids.

use super::IntuneSimulator;
use super::http::{bad_request, graph_error, not_found, page};
use super::state::group_target;
use crate::planes::http::query_value;
use axum::Json;
use axum::extract::{Form, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;

fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `POST /{tenant}/oauth2/v2.0/token`, client-credentials grant.
pub async fn token(
    State(simulator): State<IntuneSimulator>,
    Path(tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let mut state = simulator.lock();
    state.tokens.count_request();
    let refuse = |error: &str, description: &str| {
        let body =
            json!({"error": error, "error_description": description, "error_codes": [7000215]});
        (StatusCode::UNAUTHORIZED, Json(body)).into_response()
    };
    if tenant != state.tenant_id {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_request", "error_description": "AADSTS90002: Tenant not found."})),
        )
            .into_response();
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unsupported_grant_type", "error_description": "AADSTS70003: grant type not supported."})),
        )
            .into_response();
    }
    let client_matches = form.get("client_id") == Some(&state.client_id);
    let secret_matches =
        form.get("client_secret").map(String::as_str) == Some(state.client_secret.expose());
    if !client_matches || !secret_matches || state.tokens.credentials_revoked() {
        return refuse(
            "invalid_client",
            "AADSTS7000215: Invalid client secret provided.",
        );
    }
    let access_token = state.new_opaque("token");
    state.tokens.issue(&access_token);
    let lifetime = state.token_lifetime_seconds;
    Json(json!({"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": access_token}))
        .into_response()
}

/// Whether an app passes a `$filter` of `displayName eq '...'` and
/// `isof('...')` clauses joined by `and`; other clauses are refused.
fn filter_matches(filter: &str, app: &serde_json::Map<String, Value>) -> Result<bool, String> {
    let mut matches = true;
    for clause in filter.split(" and ") {
        let clause = clause.trim();
        if let Some(name) = clause
            .strip_prefix("displayName eq '")
            .and_then(|rest| rest.strip_suffix('\''))
        {
            let wanted = name.replace("''", "'");
            matches &= app.get("displayName").and_then(Value::as_str) == Some(wanted.as_str());
        } else if let Some(kind) = clause
            .strip_prefix("isof('")
            .and_then(|rest| rest.strip_suffix("')"))
        {
            let odata_type = format!("#{kind}");
            matches &= app.get("@odata.type").and_then(Value::as_str) == Some(odata_type.as_str());
        } else {
            return Err(format!(
                "Invalid filter clause: the simulator supports displayName eq and isof, not {clause:?}"
            ));
        }
    }
    Ok(matches)
}

pub async fn list_apps(
    State(simulator): State<IntuneSimulator>,
    uri: Uri,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let state = simulator.lock();
    let filter = query_value(query.as_deref(), "$filter");
    let mut items = Vec::new();
    for app in &state.apps {
        // The filter reads the app's properties as they are (its JSON is
        // those properties): only the apps it keeps are copied.
        match filter
            .as_deref()
            .map(|filter| filter_matches(filter, &app.properties))
        {
            Some(Err(message)) => return bad_request(&message),
            Some(Ok(false)) => continue,
            _ => items.push(app.to_json()),
        }
    }
    page(
        items,
        &headers,
        uri.path(),
        query.as_deref(),
        state.page_size,
    )
}

pub async fn create_app(
    State(simulator): State<IntuneSimulator>,
    Json(body): Json<Value>,
) -> Response {
    let Value::Object(body) = body else {
        return bad_request("The request body must be a JSON object.");
    };
    let odata_type = body
        .get("@odata.type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let required: &[&str] = match odata_type {
        "#microsoft.graph.win32LobApp" => &[
            "displayName",
            "publisher",
            "fileName",
            "setupFilePath",
            "installCommandLine",
            "uninstallCommandLine",
            "installExperience",
        ],
        "#microsoft.graph.macOSPkgApp" => &[
            "displayName",
            "publisher",
            "fileName",
            "primaryBundleId",
            "primaryBundleVersion",
        ],
        other => {
            return bad_request(&format!(
                "The simulator creates win32LobApp and macOSPkgApp, not {other:?}."
            ));
        }
    };
    if let Some(missing) = required
        .iter()
        .find(|field| body.get(**field).is_none_or(Value::is_null))
    {
        return bad_request(&format!("Required property {missing} is missing."));
    }
    if odata_type == "#microsoft.graph.win32LobApp" {
        let rules = body
            .get("rules")
            .or_else(|| body.get("detectionRules"))
            .and_then(Value::as_array);
        if rules.is_none_or(|rules| rules.is_empty()) {
            return bad_request(
                "A win32LobApp needs at least one detection rule (rules or detectionRules).",
            );
        }
    }
    let mut state = simulator.lock();
    let app = state.create_app(body, &now_text());
    (StatusCode::CREATED, Json(app.to_json())).into_response()
}

pub async fn get_app(
    State(simulator): State<IntuneSimulator>,
    Path((_version, app_id)): Path<(String, String)>,
) -> Response {
    match simulator.lock().app(&app_id) {
        Some(app) => Json(app.to_json()).into_response(),
        None => not_found(&format!("mobileApp {app_id}")),
    }
}

pub async fn patch_app(
    State(simulator): State<IntuneSimulator>,
    Path((_version, app_id)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    let Value::Object(changes) = body else {
        return bad_request("The request body must be a JSON object.");
    };
    let mut state = simulator.lock();
    let Some(app) = state.app_mut(&app_id) else {
        return not_found(&format!("mobileApp {app_id}"));
    };
    for read_only in [
        "id",
        "createdDateTime",
        "uploadState",
        "publishingState",
        "isAssigned",
    ] {
        if changes.contains_key(read_only) {
            return bad_request(&format!("Property {read_only} is read-only."));
        }
    }
    if let Some(version) = changes
        .get("committedContentVersion")
        .and_then(Value::as_str)
    {
        let committed = app
            .content_versions
            .iter()
            .find(|content| content.id == version)
            .is_some_and(|content| {
                !content.files.is_empty()
                    && content
                        .files
                        .iter()
                        .all(|file| file.upload_state == "commitFileSuccess")
            });
        if !committed {
            return bad_request(&format!(
                "Content version {version} has no committed file; commit the file first."
            ));
        }
        app.properties
            .insert("publishingState".into(), json!("published"));
        app.properties.insert("uploadState".into(), json!(1));
    }
    for (key, value) in changes {
        if key != "@odata.type" {
            app.properties.insert(key, value);
        }
    }
    app.properties
        .insert("lastModifiedDateTime".into(), json!(now_text()));
    StatusCode::NO_CONTENT.into_response()
}

pub async fn delete_app(
    State(simulator): State<IntuneSimulator>,
    Path((_version, app_id)): Path<(String, String)>,
) -> Response {
    let mut state = simulator.lock();
    let before = state.apps.len();
    state.apps.retain(|app| app.id != app_id);
    if state.apps.len() == before {
        return not_found(&format!("mobileApp {app_id}"));
    }
    StatusCode::NO_CONTENT.into_response()
}

pub async fn list_assignments(
    State(simulator): State<IntuneSimulator>,
    Path((_version, app_id)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let state = simulator.lock();
    match state.app(&app_id) {
        Some(app) => page(
            app.assignments.clone(),
            &headers,
            uri.path(),
            query.as_deref(),
            state.page_size,
        ),
        None => not_found(&format!("mobileApp {app_id}")),
    }
}

/// `POST mobileApps/{id}/assign`: replaces the whole assignment set.
pub async fn assign(
    State(simulator): State<IntuneSimulator>,
    Path((_version, app_id)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    let Some(list) = body
        .get("mobileAppAssignments")
        .and_then(Value::as_array)
        .cloned()
    else {
        return bad_request("The body needs mobileAppAssignments.");
    };
    let mut state = simulator.lock();
    let Some(app) = state.app(&app_id) else {
        return not_found(&format!("mobileApp {app_id}"));
    };
    if !app.is_published() {
        return bad_request(
            "The app is not published yet; commit its content before assigning it.",
        );
    }
    let mut assignments = Vec::new();
    for assignment in list {
        let intent = assignment
            .get("intent")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !matches!(
            intent,
            "available" | "required" | "uninstall" | "availableWithoutEnrollment"
        ) {
            return bad_request(&format!("Invalid intent {intent:?}."));
        }
        let Some((group, _)) = group_target(&assignment) else {
            return bad_request("The simulator assigns group and exclusion group targets only.");
        };
        if !state.groups.contains_key(group) {
            return bad_request(&format!("Group {group} does not exist in the directory."));
        }
        let mut stored = assignment.clone();
        stored["id"] = json!(format!("{group}_{intent}_{}", assignments.len()));
        assignments.push(stored);
    }
    let app = state.app_mut(&app_id).expect("checked above");
    app.properties
        .insert("isAssigned".into(), json!(!assignments.is_empty()));
    app.assignments = assignments;
    StatusCode::NO_CONTENT.into_response()
}

pub async fn list_relationships(
    State(simulator): State<IntuneSimulator>,
    Path((_version, app_id)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let state = simulator.lock();
    let Some(app) = state.app(&app_id) else {
        return not_found(&format!("mobileApp {app_id}"));
    };
    let relationship = |source: &str, target: &str, kind: &str, target_type: &str| {
        json!({
            "@odata.type": "#microsoft.graph.mobileAppSupersedence",
            "id": format!("{source}_{target}"),
            "targetId": target,
            "targetType": target_type,
            "supersedenceType": kind,
        })
    };
    let mut items: Vec<Value> = app
        .supersedes
        .iter()
        .map(|(target, kind)| relationship(&app.id, target, kind, "child"))
        .collect();
    for other in &state.apps {
        for (_, kind) in other
            .supersedes
            .iter()
            .filter(|(target, _)| *target == app.id)
        {
            items.push(relationship(&app.id, &other.id, kind, "parent"));
        }
    }
    page(
        items,
        &headers,
        uri.path(),
        query.as_deref(),
        state.page_size,
    )
}

/// `POST mobileApps/{id}/updateRelationships`: replaces the app's own
/// supersedence set (replace semantics are unconfirmed for Graph; the simulator
/// implements them as for `/assign`).
pub async fn update_relationships(
    State(simulator): State<IntuneSimulator>,
    Path((_version, app_id)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    let Some(list) = body.get("relationships").and_then(Value::as_array) else {
        return bad_request("The body needs relationships.");
    };
    let mut state = simulator.lock();
    let mut supersedes = Vec::new();
    for relationship in list {
        let target = relationship
            .get("targetId")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let kind = relationship
            .get("supersedenceType")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !matches!(kind, "update" | "replace") {
            return bad_request(&format!("Invalid supersedenceType {kind:?}."));
        }
        if target == app_id || state.app(target).is_none() {
            return bad_request(&format!(
                "Relationship target {target} is not another app of this tenant."
            ));
        }
        supersedes.push((target.to_string(), kind.to_string()));
    }
    match state.app_mut(&app_id) {
        Some(app) => {
            app.supersedes = supersedes;
            StatusCode::NO_CONTENT.into_response()
        }
        None => not_found(&format!("mobileApp {app_id}")),
    }
}

pub async fn get_group(
    State(simulator): State<IntuneSimulator>,
    Path((_version, group)): Path<(String, String)>,
) -> Response {
    if simulator.lock().groups.contains_key(&group) {
        Json(json!({"id": group})).into_response()
    } else {
        not_found(&format!("Resource '{group}'"))
    }
}

pub async fn group_devices(
    State(simulator): State<IntuneSimulator>,
    Path((_version, group)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let state = simulator.lock();
    let Some(devices) = state.groups.get(&group) else {
        return not_found(&format!("Resource '{group}'"));
    };
    // Only the page asked for is turned into JSON.
    super::http::page_of(
        devices.len(),
        |range| {
            devices
                .get(range)
                .unwrap_or_default()
                .iter()
                .map(|device| json!({"@odata.type": "#microsoft.graph.device", "id": device.object_id(), "deviceId": device.id, "displayName": device.name}))
                .collect()
        },
        &headers,
        uri.path(),
        query.as_deref(),
        state.page_size,
    )
}

/// Any other path: Graph's 400 for an unknown segment.
pub async fn unknown_route(uri: Uri) -> Response {
    graph_error(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        &format!(
            "Resource not found for the segment '{}'.",
            uri.path().rsplit('/').next().unwrap_or_default()
        ),
    )
}
