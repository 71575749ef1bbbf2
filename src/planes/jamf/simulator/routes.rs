//! `routes`: the simulated endpoints. Jamf Pro API (JSON): the OAuth token
//! (`/api/v1/oauth/token`, the path of Jamf's current description), the user
//! bearer token (`/api/v1/auth/token`), packages and `v3/computers-inventory`
//! (v1 is deprecated). Classic API (XML): computer groups, policies (create
//! with `/id/0`, by id, by name, list), computer history policy logs and the
//! policy log flush.

use super::JamfSimulator;
use super::http::{api_error, classic_error, classic_not_found, page, query_values, xml};
use super::state::JamfState;
use crate::planes::http::percent_decode;
use crate::planes::jamf::wire::{self, ComputerGroup, ComputerHistory, Policy, PolicyList};
use axum::Json;
use axum::extract::{Form, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use std::collections::HashMap;

/// Token lifetime the simulator hands out (Jamf's API client default).
const TOKEN_SECONDS: i64 = 599;

fn new_token(state: &mut JamfState) -> String {
    let token = format!(
        "eyJ{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    state.tokens.issue(&token);
    token
}

/// `POST /api/v1/oauth/token`, client-credentials grant.
pub async fn oauth_token(
    State(simulator): State<JamfSimulator>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let mut state = simulator.lock();
    state.tokens.count_request();
    let matches = form.get("grant_type").map(String::as_str) == Some("client_credentials")
        && form.get("client_id") == Some(&state.client_id)
        && form.get("client_secret").map(String::as_str) == Some(state.client_secret.expose());
    if !matches || state.tokens.credentials_revoked() {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let token = new_token(&mut state);
    Json(json!({"access_token": token, "scope": "api-role:1", "token_type": "Bearer", "expires_in": TOKEN_SECONDS})).into_response()
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64_decode(encoded)?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// A small standard base64 decoder (the only use of base64 in the crate).
fn base64_decode(text: &str) -> Option<String> {
    let mut bits: u32 = 0;
    let mut count = 0;
    let mut bytes = Vec::new();
    for character in text.trim().bytes() {
        let value = match character {
            b'A'..=b'Z' => character - b'A',
            b'a'..=b'z' => character - b'a' + 26,
            b'0'..=b'9' => character - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(value);
        count += 6;
        if count >= 8 {
            count -= 8;
            bytes.push(((bits >> count) & 0xFF) as u8);
        }
    }
    String::from_utf8(bytes).ok()
}

/// `POST /api/v1/auth/token` with HTTP Basic: a user bearer token. The
/// simulator's one user is the client id with the client secret as password.
pub async fn user_token(State(simulator): State<JamfSimulator>, headers: HeaderMap) -> Response {
    let mut state = simulator.lock();
    state.tokens.count_request();
    let matches = basic_credentials(&headers).is_some_and(|(user, password)| {
        user == state.client_id && password == state.client_secret.expose()
    });
    if !matches || state.tokens.credentials_revoked() {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"httpStatus": 401, "errors": []})),
        )
            .into_response();
    }
    let token = new_token(&mut state);
    let expires = (Utc::now() + chrono::Duration::seconds(TOKEN_SECONDS))
        .to_rfc3339_opts(SecondsFormat::Millis, true);
    Json(json!({"token": token, "expires": expires})).into_response()
}

const REQUIRED_PACKAGE_FIELDS: [&str; 11] = [
    "packageName",
    "fileName",
    "categoryId",
    "priority",
    "fillUserTemplate",
    "rebootRequired",
    "osInstall",
    "suppressUpdates",
    "suppressFromDock",
    "suppressEula",
    "suppressRegistration",
];

pub async fn list_packages(
    State(simulator): State<JamfSimulator>,
    RawQuery(query): RawQuery,
) -> Response {
    let state = simulator.lock();
    let items: Vec<Value> = state.packages.values().cloned().collect();
    page(items, query.as_deref(), state.page_size)
}

fn check_package(state: &JamfState, body: &Value, own_id: Option<u64>) -> Option<Response> {
    for field in REQUIRED_PACKAGE_FIELDS {
        if body.get(field).is_none_or(Value::is_null) {
            return Some(api_error(
                StatusCode::BAD_REQUEST,
                "INVALID_FIELD",
                Some(field),
                &format!("{field} is required"),
            ));
        }
    }
    let name = body
        .get("packageName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let duplicate = state.packages.iter().any(|(id, package)| {
        Some(*id) != own_id && package.get("packageName").and_then(Value::as_str) == Some(name)
    });
    if duplicate {
        let status =
            StatusCode::from_u16(state.duplicate_field_status).unwrap_or(StatusCode::BAD_REQUEST);
        return Some(api_error(
            status,
            "DUPLICATE_FIELD",
            Some("packageName"),
            "Package name must be unique",
        ));
    }
    None
}

pub async fn create_package(
    State(simulator): State<JamfSimulator>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut state = simulator.lock();
    if let Some(refused) = check_package(&state, &body, None) {
        return refused;
    }
    let id = state.next_package_id();
    let mut record = body;
    record["id"] = json!(id.to_string());
    record["size"] = json!(null);
    record["cloudTransferStatus"] = json!("NOT_STARTED");
    state.packages.insert(id, record);
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .unwrap_or("127.0.0.1");
    (
        StatusCode::CREATED,
        Json(json!({"id": id.to_string(), "href": format!("http://{host}/api/v1/packages/{id}")})),
    )
        .into_response()
}

fn package_not_found(id: &str) -> Response {
    api_error(
        StatusCode::NOT_FOUND,
        "INVALID_ID",
        Some("id"),
        &format!("Package with id {id} does not exist"),
    )
}

pub async fn get_package(
    State(simulator): State<JamfSimulator>,
    Path(id): Path<String>,
) -> Response {
    let state = simulator.lock();
    match id
        .parse::<u64>()
        .ok()
        .and_then(|key| state.packages.get(&key))
    {
        Some(record) => Json(record.clone()).into_response(),
        None => package_not_found(&id),
    }
}

pub async fn put_package(
    State(simulator): State<JamfSimulator>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let mut state = simulator.lock();
    let Some(key) = id
        .parse::<u64>()
        .ok()
        .filter(|key| state.packages.contains_key(key))
    else {
        return package_not_found(&id);
    };
    if let Some(refused) = check_package(&state, &body, Some(key)) {
        return refused;
    }
    let mut record = body;
    record["id"] = json!(key.to_string());
    state.packages.insert(key, record.clone());
    Json(record).into_response()
}

pub async fn delete_package(
    State(simulator): State<JamfSimulator>,
    Path(id): Path<String>,
) -> Response {
    let mut state = simulator.lock();
    match id
        .parse::<u64>()
        .ok()
        .and_then(|key| state.packages.remove(&key))
    {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => package_not_found(&id),
    }
}

/// `GET /api/v3/computers-inventory`: `section`s GENERAL and APPLICATIONS.
pub async fn computers_inventory(
    State(simulator): State<JamfSimulator>,
    RawQuery(query): RawQuery,
) -> Response {
    let state = simulator.lock();
    let sections = query_values(query.as_deref(), "section");
    let wants = |section: &str| sections.iter().any(|wanted| wanted == section);
    // A filter of ids (`id=in=(1,2,3)`, what the connector sends) picks the
    // records before they are rendered; `page` still applies every filter.
    let picked: Option<std::collections::BTreeSet<u64>> =
        crate::planes::http::query_value(query.as_deref(), "filter").and_then(|filter| {
            let ids = filter.strip_prefix("id=in=(")?.strip_suffix(')')?;
            ids.split(',').map(|id| id.trim().parse().ok()).collect()
        });
    let computers: Vec<&super::state::SimComputer> = match &picked {
        Some(ids) => ids
            .iter()
            .filter_map(|id| state.computers.get(id))
            .collect(),
        None => state.computers.values().collect(),
    };
    let items: Vec<Value> = computers
        .into_iter()
        .map(|computer| {
            let mut record = json!({"id": computer.id.to_string(), "udid": computer.udid});
            record["general"] = json!({"name": computer.name, "platform": "Mac"});
            if wants("GENERAL") {
                let time = |at: Option<DateTime<Utc>>| {
                    at.map(|at| at.to_rfc3339_opts(SecondsFormat::Millis, true))
                };
                record["general"]["lastContactTime"] = json!(time(computer.last_contact));
                record["general"]["reportDate"] = json!(time(computer.report_date));
            }
            if wants("APPLICATIONS") {
                record["applications"] = json!(computer
                    .apps
                    .values()
                    .map(|app| json!({"name": app.name, "path": app.path, "version": app.version, "bundleId": app.bundle_id, "macAppStore": false, "sizeMegabytes": 120, "updateAvailable": false}))
                    .collect::<Vec<Value>>());
            }
            record
        })
        .collect();
    page(items, query.as_deref(), state.page_size)
}

fn to_xml_or_500<T: serde::Serialize>(value: &T) -> Response {
    match wire::to_xml(value) {
        Ok(body) => xml(StatusCode::OK, body),
        Err(_) => classic_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Error: cannot render XML",
        ),
    }
}

pub async fn computer_group(
    State(simulator): State<JamfSimulator>,
    Path(id): Path<String>,
) -> Response {
    let state = simulator.lock();
    let Some(group) = id
        .parse::<u64>()
        .ok()
        .and_then(|key| state.groups.get(&key))
    else {
        return classic_not_found();
    };
    let computers: Vec<wire::ComputerRef> = group
        .computers
        .iter()
        .filter_map(|computer| state.computers.get(computer))
        .map(|computer| wire::ComputerRef {
            id: computer.id,
            name: computer.name.clone(),
        })
        .collect();
    to_xml_or_500(&ComputerGroup {
        id: group.id,
        name: group.name.clone(),
        is_smart: group.is_smart,
        computers: wire::ComputerList {
            size: u32::try_from(computers.len()).unwrap_or(u32::MAX),
            computers,
        },
    })
}

pub async fn list_policies(State(simulator): State<JamfSimulator>) -> Response {
    let state = simulator.lock();
    let policies: Vec<wire::PolicyRef> = state
        .policies
        .iter()
        .map(|(id, policy)| wire::PolicyRef {
            id: *id,
            name: policy.general.name.clone(),
        })
        .collect();
    to_xml_or_500(&PolicyList {
        size: u32::try_from(policies.len()).unwrap_or(u32::MAX),
        policies,
    })
}

fn policy_xml(id: u64, policy: &Policy) -> Response {
    let mut answer = policy.clone();
    answer.general.id = Some(id);
    to_xml_or_500(&answer)
}

pub async fn get_policy(
    State(simulator): State<JamfSimulator>,
    Path(id): Path<String>,
) -> Response {
    let state = simulator.lock();
    match id
        .parse::<u64>()
        .ok()
        .and_then(|key| state.policies.get(&key).map(|policy| (key, policy)))
    {
        Some((key, policy)) => policy_xml(key, policy),
        None => classic_not_found(),
    }
}

pub async fn policy_by_name(State(simulator): State<JamfSimulator>, uri: Uri) -> Response {
    let state = simulator.lock();
    let raw = uri
        .path()
        .strip_prefix("/JSSResource/policies/name/")
        .unwrap_or_default();
    let name = percent_decode(&raw.replace('+', "%2B"));
    match state
        .policies
        .iter()
        .find(|(_, policy)| policy.general.name == name)
    {
        Some((id, policy)) => policy_xml(*id, policy),
        None => classic_not_found(),
    }
}

/// Checks a policy body: parses, has a name, unique, groups and packages exist.
fn parse_policy(
    state: &JamfState,
    body: &str,
    own_id: Option<u64>,
) -> Result<Policy, (StatusCode, String)> {
    let policy: Policy = wire::from_xml(body).map_err(|_| {
        (
            StatusCode::BAD_REQUEST,
            "Error: the XML of the request body could not be read".to_string(),
        )
    })?;
    if policy.general.name.trim().is_empty() {
        return Err((
            StatusCode::CONFLICT,
            "Error: Policy name is required".to_string(),
        ));
    }
    let duplicate = state
        .policies
        .iter()
        .any(|(id, existing)| Some(*id) != own_id && existing.general.name == policy.general.name);
    if duplicate {
        return Err((StatusCode::CONFLICT, "Error: Duplicate name".to_string()));
    }
    for group in policy
        .scoped_groups()
        .into_iter()
        .chain(policy.excluded_groups())
    {
        if !state.groups.contains_key(&group) {
            return Err((
                StatusCode::CONFLICT,
                format!("Error: Problem with computer group {group} in scope"),
            ));
        }
    }
    for package in &policy.package_configuration.packages.packages {
        if !state.packages.contains_key(&package.id) {
            return Err((
                StatusCode::CONFLICT,
                format!("Error: Problem with package {}", package.id),
            ));
        }
    }
    Ok(policy)
}

/// `POST /JSSResource/policies/id/0` creates; `POST .../id/{n}` with n > 0
/// is refused as Jamf does for an id in use or unknown.
pub async fn create_policy(
    State(simulator): State<JamfSimulator>,
    Path(id): Path<String>,
    body: String,
) -> Response {
    let mut state = simulator.lock();
    if id != "0" {
        return classic_error(StatusCode::CONFLICT, "Error: Use id 0 to create a policy");
    }
    let mut policy = match parse_policy(&state, &body, None) {
        Ok(policy) => policy,
        Err((status, message)) => return classic_error(status, &message),
    };
    let new_id = state.next_policy_id();
    policy.general.id = Some(new_id);
    state.policies.insert(new_id, policy);
    xml(
        StatusCode::CREATED,
        format!("<policy><id>{new_id}</id></policy>"),
    )
}

pub async fn update_policy(
    State(simulator): State<JamfSimulator>,
    Path(id): Path<String>,
    body: String,
) -> Response {
    let mut state = simulator.lock();
    let Some(key) = id
        .parse::<u64>()
        .ok()
        .filter(|key| state.policies.contains_key(key))
    else {
        return classic_not_found();
    };
    let mut policy = match parse_policy(&state, &body, Some(key)) {
        Ok(policy) => policy,
        Err((status, message)) => return classic_error(status, &message),
    };
    policy.general.id = Some(key);
    state.policies.insert(key, policy);
    xml(
        StatusCode::CREATED,
        format!("<policy><id>{key}</id></policy>"),
    )
}

pub async fn delete_policy(
    State(simulator): State<JamfSimulator>,
    Path(id): Path<String>,
) -> Response {
    let mut state = simulator.lock();
    match id
        .parse::<u64>()
        .ok()
        .and_then(|key| state.policies.remove(&key).map(|_| key))
    {
        Some(key) => xml(StatusCode::OK, format!("<policy><id>{key}</id></policy>")),
        None => classic_not_found(),
    }
}

/// `GET /JSSResource/computerhistory/id/{id}/subset/PolicyLogs`.
pub async fn computer_history(
    State(simulator): State<JamfSimulator>,
    Path((id, subset)): Path<(String, String)>,
) -> Response {
    let state = simulator.lock();
    let Some(computer) = id
        .parse::<u64>()
        .ok()
        .and_then(|key| state.computers.get(&key))
    else {
        return classic_not_found();
    };
    let mut history = ComputerHistory::default();
    if subset.eq_ignore_ascii_case("PolicyLogs") {
        history.policy_logs.logs = state
            .logs
            .get(&computer.id)
            .into_iter()
            .flatten()
            .map(|entry| wire::PolicyLog {
                policy_id: entry.policy_id,
                policy_name: entry.policy_name.clone(),
                username: String::new(),
                date_time: entry.at.format("%Y/%m/%d at %-I:%M %p").to_string(),
                date_time_epoch: entry.at.timestamp_millis(),
                date_time_utc: entry.at.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string(),
                status: entry.status.clone(),
            })
            .collect();
    }
    to_xml_or_500(&history)
}

/// `DELETE /JSSResource/logflush/policy/id/{id}/interval/{interval}`: with
/// `Zero+Days` every log of the policy goes.
pub async fn flush_policy_logs(
    State(simulator): State<JamfSimulator>,
    Path((id, interval)): Path<(String, String)>,
) -> Response {
    let mut state = simulator.lock();
    let Some(key) = id
        .parse::<u64>()
        .ok()
        .filter(|key| state.policies.contains_key(key))
    else {
        return classic_not_found();
    };
    if !matches!(interval.as_str(), "Zero+Days" | "Zero Days") {
        return classic_error(
            StatusCode::BAD_REQUEST,
            "Error: only the Zero+Days interval is simulated",
        );
    }
    for logs in state.logs.values_mut() {
        logs.retain(|entry| entry.policy_id != key);
    }
    StatusCode::OK.into_response()
}

pub async fn unknown_route(uri: Uri) -> Response {
    if uri.path().starts_with("/JSSResource/") {
        classic_not_found()
    } else {
        api_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            None,
            &format!("{} is not a simulated endpoint", uri.path()),
        )
    }
}
