//! `routes`: the simulated legacy actions the connector uses —
//! `GetComputers`, `InstallPackages`, `RemovePackages`, `GetActivities`,
//! `CancelActivities`, `GetPackages` — with `limit`/`offset` paging on the
//! lists, and the REST login `POST /api/v2/login`.

use super::LandscapeSimulator;
use super::http::{legacy_error, parameter, parameters};
use super::state::{LandscapeState, time_text};
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};
use std::collections::BTreeMap;

fn invalid(message: &str) -> Response {
    legacy_error(StatusCode::BAD_REQUEST, "InvalidParameter", message)
}

fn invalid_query(message: &str) -> Response {
    legacy_error(StatusCode::BAD_REQUEST, "InvalidQuery", message)
}

/// `name.1`, `name.2`, ... in order.
fn list_parameter(parameters: &[(String, String)], name: &str) -> Vec<String> {
    (1..)
        .map_while(|index| parameter(parameters, &format!("{name}.{index}")).map(str::to_string))
        .collect()
}

/// One page of `items` as `limit` (at most the page size) and `offset` ask.
fn page(items: Vec<Value>, parameters: &[(String, String)], page_size: usize) -> Response {
    let count = items.len();
    page_of(
        count,
        |range| items.get(range).map(<[Value]>::to_vec).unwrap_or_default(),
        parameters,
        page_size,
    )
}

/// As [`page`], for `count` items of which only the page asked for is
/// built (a request costs its page, not every row the query selects).
fn page_of(
    count: usize,
    items_in: impl FnOnce(std::ops::Range<usize>) -> Vec<Value>,
    parameters: &[(String, String)],
    page_size: usize,
) -> Response {
    let number = |name: &str| parameter(parameters, name).map(str::parse::<usize>);
    let limit = match number("limit") {
        Some(Ok(limit)) => limit.min(page_size),
        Some(Err(_)) => return invalid("limit must be a number"),
        None => page_size,
    };
    let offset = match number("offset") {
        Some(Ok(offset)) => offset,
        Some(Err(_)) => return invalid("offset must be a number"),
        None => 0,
    };
    let end = offset.saturating_add(limit).min(count);
    Json(Value::Array(items_in(offset.min(end)..end))).into_response()
}

/// `GET|POST /api/?action=...`.
pub async fn legacy(
    State(simulator): State<LandscapeSimulator>,
    RawQuery(raw): RawQuery,
) -> Response {
    let parameters = parameters(raw.as_deref());
    let action = parameter(&parameters, "action").unwrap_or_default();
    let mut state = simulator.lock();
    let query = parameter(&parameters, "query")
        .unwrap_or_default()
        .to_string();
    let creator = state.email.clone();
    match action {
        "GetComputers" => match state.select_computers(&query) {
            Ok(ids) => page_of(
                ids.len(),
                |range| {
                    ids[range]
                        .iter()
                        .filter_map(|id| state.computers.get(id))
                        .map(|computer| {
                            json!({
                                "id": computer.id, "title": computer.title, "hostname": computer.hostname,
                                "tags": computer.tags, "access_group": "global", "comment": "",
                                "reboot_required_flag": false, "total_memory": 4096,
                            })
                        })
                        .collect()
                },
                &parameters,
                state.page_size,
            ),
            Err(message) => invalid_query(&message),
        },
        "InstallPackages" | "RemovePackages" => {
            let specs = list_parameter(&parameters, "packages");
            if query.is_empty() || specs.is_empty() {
                return invalid("query and packages.1 are required");
            }
            let kind = if action == "RemovePackages" {
                "remove"
            } else {
                "install"
            };
            match state.create_change(kind, &query, &specs, &creator, chrono::Utc::now()) {
                Ok(parent_id) => {
                    let parent = state.activities.get(&parent_id).cloned();
                    match parent {
                        Some(parent) => Json(state.activity_json(&parent)).into_response(),
                        None => invalid("the activity vanished"),
                    }
                }
                Err(message) => invalid_query(&message),
            }
        }
        "GetActivities" => match state.select_activities(&query) {
            Ok(ids) => page_of(
                ids.len(),
                |range| {
                    ids[range]
                        .iter()
                        .filter_map(|id| state.activities.get(id))
                        .map(|activity| state.activity_json(activity))
                        .collect()
                },
                &parameters,
                state.page_size,
            ),
            Err(message) => invalid_query(&message),
        },
        "CancelActivities" => {
            if query.is_empty() {
                return invalid("query is required");
            }
            match state.select_activities(&query) {
                Ok(ids) => Json(cancel(&mut state, &ids)).into_response(),
                Err(message) => invalid_query(&message),
            }
        }
        "GetPackages" => {
            let names = list_parameter(&parameters, "names");
            // Only installed packages are simulated, so `installed=true`
            // changes nothing.
            match state.select_computers(&query) {
                Ok(ids) => {
                    let mut by_version: BTreeMap<(String, String), Vec<i64>> = BTreeMap::new();
                    for id in &ids {
                        let Some(computer) = state.computers.get(id) else {
                            continue;
                        };
                        for (name, version) in &computer.packages {
                            if names.is_empty() || names.contains(name) {
                                by_version
                                    .entry((name.clone(), version.clone()))
                                    .or_default()
                                    .push(*id);
                            }
                        }
                    }
                    let items = by_version
                        .into_iter()
                        .map(|((name, version), installed)| {
                            json!({"name": name, "version": version, "summary": format!("{name} package"),
                                   "computers": {"available": [], "installed": installed, "upgrades": [], "held": []}})
                        })
                        .collect();
                    page(items, &parameters, state.page_size)
                }
                Err(message) => invalid_query(&message),
            }
        }
        "" => invalid("action is required"),
        other => legacy_error(
            StatusCode::BAD_REQUEST,
            "UnknownAction",
            &format!("Unknown action {other}"),
        ),
    }
}

/// Cancels the selected activities that are not delivered yet; answers their ids.
fn cancel(state: &mut LandscapeState, ids: &[i64]) -> Value {
    let now = chrono::Utc::now();
    let mut cancelled = Vec::new();
    for id in ids {
        if let Some(activity) = state.activities.get_mut(id)
            && activity.parent_id.is_some()
            && matches!(activity.status.as_str(), "undelivered" | "unapproved")
        {
            activity.status = "canceled".to_string();
            activity.modification_time = now;
            cancelled.push(*id);
        }
    }
    json!(cancelled)
}

/// `POST /api/v2/login {"email", "password", "account"}`.
pub async fn login(
    State(simulator): State<LandscapeSimulator>,
    Json(body): Json<Value>,
) -> Response {
    let mut state = simulator.lock();
    state.tokens.count_request();
    let text = |field: &str| body.get(field).and_then(Value::as_str).unwrap_or_default();
    let account_ok = body
        .get("account")
        .and_then(Value::as_str)
        .is_none_or(|account| account == state.account);
    if text("email") != state.email
        || text("password") != state.password.expose()
        || !account_ok
        || state.tokens.credentials_revoked()
    {
        return legacy_error(
            StatusCode::UNAUTHORIZED,
            "InvalidCredentials",
            "Invalid email or password.",
        );
    }
    let encode =
        |value: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string());
    let issued = chrono::Utc::now();
    let token = format!(
        "{}.{}.{}",
        encode(&json!({"alg": "HS256", "typ": "JWT"})),
        encode(
            &json!({"sub": state.email, "account": state.account, "iat": issued.timestamp(),
                       "jti": uuid::Uuid::new_v4().to_string()})
        ),
        uuid::Uuid::new_v4().simple()
    );
    state.tokens.issue(&token);
    let account = state.account.clone();
    Json(json!({
        "token": token,
        "email": state.email,
        "name": "API user",
        "accounts": [{"name": account, "title": account, "default": true}],
        "current_account": account,
        "issued_at": time_text(issued),
    }))
    .into_response()
}
