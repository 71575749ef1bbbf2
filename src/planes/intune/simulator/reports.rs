//! `reports`: Intune's install-status report (`POST
//! deviceManagement/reports/retrieveDeviceAppInstallationStatusReport`) and
//! the managed devices it names (`GET deviceManagement/managedDevices`).
//!
//! The report answers a stream (`application/octet-stream`) holding one JSON
//! document: `TotalRowCount`, `Schema` (`Column`, `PropertyType`), `Values`
//! (rows as positional arrays in the schema's order) and `SessionId`; pages
//! are asked for with `skip` and `top`. Rows name devices by their Intune
//! managed device id (`DeviceId`), never by the Entra device id a group
//! member carries: a client joins the two through `managedDevice.azureADDeviceId`.
//! `InstallState` is the `resultantAppState` number (1 installed, 2 failed,
//! 3 notInstalled, 4 uninstallFailed, 5 pendingInstall, 99 unknown, -1
//! notApplicable), with its name in `InstallState_loc`.

use super::IntuneSimulator;
use super::http::{bad_request, page_of};
use super::state::managed_id_of;
use crate::planes::http::query_value;
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The columns the simulator answers, in order, with their report types.
const COLUMNS: [(&str, &str); 13] = [
    ("DeviceId", "String"),
    ("DeviceName", "String"),
    ("UserPrincipalName", "String"),
    ("Platform", "String"),
    ("AppVersion", "String"),
    ("InstallState", "Int32"),
    ("InstallState_loc", "String"),
    ("InstallStateDetail", "String"),
    ("ErrorCode", "Int32"),
    ("HexErrorCode", "String"),
    ("LastModifiedDateTime", "DateTime"),
    ("ApplicationId", "String"),
    ("UserId", "String"),
];

/// `resultantAppState` names and their numbers.
pub fn install_state_number(name: &str) -> i64 {
    match name {
        "installed" => 1,
        "failed" => 2,
        "notInstalled" => 3,
        "uninstallFailed" => 4,
        "pendingInstall" => 5,
        "notApplicable" => -1,
        _ => 99,
    }
}

/// The application id of a filter `(ApplicationId eq '<id>')`.
fn application_of(filter: &str) -> Option<String> {
    let inner = filter.trim().strip_prefix('(')?.strip_suffix(')')?.trim();
    let quoted = inner
        .strip_prefix("ApplicationId eq '")?
        .strip_suffix('\'')?;
    Some(quoted.replace("''", "'"))
}

fn row_of(row: &Value, application_id: &str) -> Value {
    let text = |field: &str| row.get(field).cloned().unwrap_or(Value::Null);
    let state = row
        .get("installState")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    let error = row.get("errorCode").and_then(Value::as_i64).unwrap_or(0);
    let device = row
        .get("deviceId")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let cells = [
        json!(managed_id_of(device)),
        text("deviceName"),
        text("userPrincipalName"),
        json!("Windows"),
        text("displayVersion"),
        json!(install_state_number(state)),
        json!(state),
        text("installStateDetail"),
        json!(error),
        json!(format!("0x{:08X}", error as u32)),
        text("lastSyncDateTime"),
        json!(application_id),
        Value::Null,
    ];
    Value::Array(cells.to_vec())
}

/// `POST .../retrieveDeviceAppInstallationStatusReport`.
pub async fn install_status_report(
    State(simulator): State<IntuneSimulator>,
    Json(body): Json<Value>,
) -> Response {
    let Some(filter) = body.get("filter").and_then(Value::as_str) else {
        return bad_request("The report needs a filter naming the ApplicationId.");
    };
    let Some(application_id) = application_of(filter) else {
        return bad_request(&format!(
            "The simulator's report filters only by (ApplicationId eq '<id>'), not {filter:?}."
        ));
    };
    let select: Vec<String> = body
        .get("select")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    if let Some(unknown) = select
        .iter()
        .find(|column| !COLUMNS.iter().any(|(name, _)| name == column))
    {
        return bad_request(&format!("Column {unknown} is not a column of this report."));
    }
    let skip = body.get("skip").and_then(Value::as_u64).unwrap_or(0) as usize;
    let state = simulator.lock();
    let top = body
        .get("top")
        .and_then(Value::as_u64)
        .map_or(state.page_size, |top| (top as usize).min(state.page_size))
        .max(1);
    // Only the rows of the page asked for are built: a report read in pages
    // costs each request its page, not the whole report.
    let total = state
        .app(&application_id)
        .map_or(0, |app| app.device_statuses.len());
    let rows: Vec<Value> = state
        .app(&application_id)
        .map(|app| {
            app.device_statuses
                .values()
                .skip(skip)
                .take(top)
                .map(|row| row_of(row, &application_id))
                .collect()
        })
        .unwrap_or_default();
    let chosen: Vec<usize> = if select.is_empty() {
        (0..COLUMNS.len()).collect()
    } else {
        select
            .iter()
            .filter_map(|column| COLUMNS.iter().position(|(name, _)| name == column))
            .collect()
    };
    let schema: Vec<Value> = chosen
        .iter()
        .map(|index| json!({"Column": COLUMNS[*index].0, "PropertyType": COLUMNS[*index].1}))
        .collect();
    let values: Vec<Value> = rows
        .iter()
        .map(|row| Value::Array(chosen.iter().map(|index| row[*index].clone()).collect()))
        .collect();
    let document = json!({
        "TotalRowCount": total,
        "Schema": schema,
        "Values": values,
        "SessionId": "",
    });
    let mut response = document.to_string().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    response
}

/// `GET deviceManagement/managedDevices` (`$select`, `$filter` of
/// `azureADDeviceId eq '...'` or `id eq '...'` clauses joined by `or`),
/// paged. Only the page asked for is built, and a filter looks its devices
/// up by id: a request costs its page, not the tenant's fleet.
pub async fn managed_devices(
    State(simulator): State<IntuneSimulator>,
    uri: Uri,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let mut state = simulator.lock();
    let page_size = state.page_size;
    let filter = query_value(query.as_deref(), "$filter");
    let mut wanted: Option<Vec<(bool, String)>> = None;
    if let Some(filter) = filter.as_deref() {
        let mut ids = Vec::new();
        for clause in filter.split(" or ") {
            let clause = clause.trim();
            let by_entra = clause
                .strip_prefix("azureADDeviceId eq '")
                .and_then(|rest| rest.strip_suffix('\''));
            let by_managed = clause
                .strip_prefix("id eq '")
                .and_then(|rest| rest.strip_suffix('\''));
            match (by_entra, by_managed) {
                (Some(id), _) => ids.push((true, id.replace("''", "'"))),
                (None, Some(id)) => ids.push((false, id.replace("''", "'"))),
                (None, None) => {
                    return bad_request(&format!(
                        "The simulator filters managed devices only by azureADDeviceId or id, not {clause:?}."
                    ));
                }
            }
        }
        wanted = Some(ids);
    }
    let index = state.device_index();
    let row = |device: &super::state::SimDevice| {
        json!({
            "@odata.type": "#microsoft.graph.managedDevice",
            "id": device.managed_id(),
            "azureADDeviceId": device.id,
            "deviceName": device.name,
            "operatingSystem": "Windows",
        })
    };
    match wanted {
        Some(ids) => {
            let mut seen = std::collections::HashSet::new();
            let found: Vec<Value> = ids
                .iter()
                .filter_map(|(by_entra, id)| {
                    if *by_entra {
                        index.by_entra_id(id)
                    } else {
                        index.by_managed_id(id)
                    }
                })
                .filter(|device| seen.insert(device.id.clone()))
                .map(row)
                .collect();
            super::http::page(found, &headers, uri.path(), query.as_deref(), page_size)
        }
        None => page_of(
            index.devices.len(),
            |range| {
                index
                    .devices
                    .get(range)
                    .unwrap_or_default()
                    .iter()
                    .map(row)
                    .collect()
            },
            &headers,
            uri.path(),
            query.as_deref(),
            page_size,
        ),
    }
}
