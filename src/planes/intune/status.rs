//! `status`: what a deployment's devices report on Intune, as of `now`.
//!
//! Ring membership comes from the ledger (which groups each ring published) and
//! the app's current assignments; devices from the groups' transitive device
//! members, minus the members of excluded groups; per-device results from
//! Intune's install-status report (`retrieveDeviceAppInstallationStatusReport`,
//! v1.0), whose rows name the Intune managed device id, joined to the
//! members' Entra device ids through `managedDevices` (`azureADDeviceId`),
//! which the connector remembers (`ManagedDeviceJoin`): a gate check costs
//! the report's pages and the groups' member pages, and the join only for
//! managed devices it has not seen yet. A device is `installed` when its row says
//! `installed` at the delivered version, `failed` when it says `failed`, and
//! `pending` otherwise: no row yet, `pendingInstall`, `notInstalled`, `unknown`,
//! `uninstallFailed`, or another version; a `notApplicable` device is not
//! targeted. Rows stamped after `now` are not seen.

use super::IntuneConnector;
use super::client::{Call, Payload};
use super::lookup::{self, FoundApp};
use super::wire;
use crate::planes::http::odata_string;
use crate::planes::ledger::DeploymentState;
use crate::planes::{ConnectorError, DeploymentStatus, ErrorCode, ObservedState, RingStatus};
use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One `mobileAppInstallStatus` row.
#[derive(Debug, Clone)]
pub struct DeviceRow {
    pub install_state: String,
    pub detail: Option<String>,
    pub error_code: Option<i64>,
    pub reported_at: DateTime<Utc>,
    pub display_version: Option<String>,
}

/// The stable key a failed row counts under: the plane's detail when it says
/// more than "see the error code", else the error code in hex.
pub fn failure_reason(row: &DeviceRow) -> String {
    match row.detail.as_deref() {
        Some(detail)
            if !matches!(
                detail,
                "noAdditionalDetails" | "seeInstallErrorCode" | "seeUninstallErrorCode"
            ) =>
        {
            detail.to_string()
        }
        _ => match row.error_code {
            Some(code) => format!("error_0x{:08x}", code as u32),
            None => "unknown_error".to_string(),
        },
    }
}

/// Intune's install-status report: per device, the app's install state.
/// (`mobileApps/{id}/deviceStatuses` is gone from Graph's description; the
/// reports under `deviceManagement/reports` replace it.)
const REPORT: &str = "/v1.0/deviceManagement/reports/retrieveDeviceAppInstallationStatusReport";
/// Managed devices: the join from a report's `DeviceId` (Intune's managed
/// device id) to a group member's `deviceId` (Entra's device id).
const MANAGED_DEVICES: &str = "/v1.0/deviceManagement/managedDevices?$select=id,azureADDeviceId";
const REPORT_COLUMNS: [&str; 7] = [
    "DeviceId",
    "AppVersion",
    "InstallState",
    "InstallStateDetail",
    "ErrorCode",
    "LastModifiedDateTime",
    "ApplicationId",
];
/// Rows asked for per report page.
const REPORT_PAGE: u64 = 50;
/// A report that needs more pages than this is a plane gone wrong.
const MAX_REPORT_PAGES: u64 = 10_000;

/// `resultantAppState` by its report number, or its name as is.
fn install_state_name(value: &Value) -> Option<String> {
    if let Some(number) = value.as_i64() {
        let name = match number {
            1 => "installed",
            2 => "failed",
            3 => "notInstalled",
            4 => "uninstallFailed",
            5 => "pendingInstall",
            -1 => "notApplicable",
            _ => "unknown",
        };
        return Some(name.to_string());
    }
    value.as_str().map(str::to_string)
}

/// A report timestamp: RFC 3339, or without an offset (UTC).
fn report_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc));
    }
    chrono::NaiveDateTime::parse_from_str(text.trim_end_matches('Z'), "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|naive| naive.and_utc())
}

/// One row of the report, by its column names: the managed device id and
/// what it says.
fn parse_report_row(columns: &HashMap<String, usize>, row: &Value) -> Option<(String, DeviceRow)> {
    let cell = |name: &str| columns.get(name).and_then(|index| row.get(*index));
    let device = cell("DeviceId")?.as_str()?.to_string();
    let reported_at = report_time(cell("LastModifiedDateTime")?.as_str()?)?;
    let text = |name: &str| {
        cell(name).and_then(|value| match value {
            Value::String(text) if !text.is_empty() => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        })
    };
    Some((
        device,
        DeviceRow {
            install_state: cell("InstallState")
                .and_then(install_state_name)
                .unwrap_or_default(),
            detail: text("InstallStateDetail"),
            error_code: cell("ErrorCode").and_then(Value::as_i64),
            reported_at,
            display_version: text("AppVersion"),
        },
    ))
}

/// Every row of the app's install-status report, page by page (`skip`/`top`).
async fn report_rows(
    connector: &IntuneConnector,
    app_id: &str,
    correlation_id: &str,
) -> Result<Vec<(String, DeviceRow)>, ConnectorError> {
    let mut rows = Vec::new();
    let mut skip = 0_u64;
    for _ in 0..MAX_REPORT_PAGES {
        let body = serde_json::json!({
            "filter": format!("(ApplicationId eq {})", odata_string(app_id)),
            "select": REPORT_COLUMNS,
            "skip": skip,
            "top": REPORT_PAGE,
            "orderBy": [],
        });
        let call = Call {
            method: Method::POST,
            target: REPORT,
            correlation_id,
        };
        let page = connector.client().send(&call, Payload::Json(&body)).await?;
        let columns: HashMap<String, usize> = page
            .get("Schema")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
            .filter_map(|(index, column)| {
                column
                    .get("Column")
                    .and_then(Value::as_str)
                    .map(|name| (name.to_string(), index))
            })
            .collect();
        let values = page
            .get("Values")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let total = page
            .get("TotalRowCount")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        skip += values.len() as u64;
        rows.extend(
            values
                .iter()
                .filter_map(|row| parse_report_row(&columns, row)),
        );
        if values.is_empty() || skip >= total {
            return Ok(rows);
        }
    }
    Err(ConnectorError::new(
        ErrorCode::ServiceUnavailable,
        format!(
            "the install-status report of app {app_id} on intune has more than {MAX_REPORT_PAGES} pages; refusing to go on"
        ),
    ))
}

/// What the connector remembers of `managedDevices`: Intune managed device
/// id → Entra device id. A managed device keeps both ids for as long as it
/// is enrolled (a re-enrolled device is a new managed device with a new id),
/// so an entry never goes stale; a report row naming a managed id the join
/// does not hold is looked up. Ids are GUIDs and kept as such (32 bytes an
/// entry, not two strings); an id that is not one is never cached.
#[derive(Debug, Default)]
pub struct ManagedDeviceJoin {
    entra_of: HashMap<uuid::Uuid, uuid::Uuid>,
}

/// Entries the join holds at most (a tenant larger than this pays lookups
/// again rather than growing the daemon without bound).
const JOIN_CAPACITY: usize = 2_000_000;
/// Managed ids asked for in one `$filter` (`id eq '…' or …`): Graph's URL
/// length, not its paging, bounds a filter.
const FILTER_IDS: usize = 15;
/// Unknown managed ids looked up by `$filter`, at most; more than this and
/// one paged listing of every managed device is cheaper.
const FILTER_LOOKUPS_MAX: usize = FILTER_IDS * 4;

impl ManagedDeviceJoin {
    fn remember(&mut self, managed: &str, entra: &str) {
        if let (Ok(managed), Ok(entra)) = (managed.parse(), entra.parse()) {
            if self.entra_of.len() >= JOIN_CAPACITY {
                self.entra_of.clear();
            }
            self.entra_of.insert(managed, entra);
        }
    }

    fn entra(&self, managed: &str) -> Option<String> {
        let managed: uuid::Uuid = managed.parse().ok()?;
        self.entra_of.get(&managed).map(uuid::Uuid::to_string)
    }
}

/// Managed devices as `managedDevices` lists them: (managed id, Entra id).
fn join_rows(devices: &[Value]) -> impl Iterator<Item = (&str, &str)> {
    devices.iter().filter_map(|device| {
        let managed = device.get("id")?.as_str()?;
        let entra = device.get("azureADDeviceId")?.as_str()?;
        (!entra.is_empty()).then_some((managed, entra))
    })
}

/// Intune managed device id → Entra device id, for the managed ids the
/// report rows name. Ids the connector's join already holds cost nothing;
/// a few unknown ones are asked for by `$filter` on `id` (pages of
/// [`FILTER_IDS`]); many (a first status query) by one paged listing of
/// the managed devices, which fills the join for every later query.
async fn entra_ids(
    connector: &IntuneConnector,
    managed_ids: &BTreeSet<&str>,
    correlation_id: &str,
) -> Result<HashMap<String, String>, ConnectorError> {
    let mut found = HashMap::new();
    let mut unknown: Vec<&str> = Vec::new();
    {
        let join = connector.managed_devices();
        for managed in managed_ids {
            match join.entra(managed) {
                Some(entra) => {
                    found.insert((*managed).to_string(), entra);
                }
                None => unknown.push(*managed),
            }
        }
    }
    if unknown.is_empty() {
        return Ok(found);
    }
    let listed: Vec<Value> = if unknown.len() <= FILTER_LOOKUPS_MAX {
        let mut listed = Vec::new();
        for chunk in unknown.chunks(FILTER_IDS) {
            let filter = chunk
                .iter()
                .map(|id| format!("id eq {}", odata_string(id)))
                .collect::<Vec<_>>()
                .join(" or ");
            let path = format!(
                "{MANAGED_DEVICES}&$filter={}",
                crate::planes::http::encode_query_value(&filter)
            );
            listed.extend(connector.client().get_all(&path, correlation_id).await?);
        }
        listed
    } else {
        connector
            .client()
            .get_all(MANAGED_DEVICES, correlation_id)
            .await?
    };
    let mut join = connector.managed_devices();
    for (managed, entra) in join_rows(&listed) {
        join.remember(managed, entra);
        if managed_ids.contains(managed) {
            found.insert(managed.to_string(), entra.to_string());
        }
    }
    Ok(found)
}

/// The rows of an app reported by `now`, per Entra device id (the latest row
/// wins; a managed device without an Entra identity cannot be a group member
/// and is left out).
async fn device_rows(
    connector: &IntuneConnector,
    app_id: &str,
    correlation_id: &str,
    now: DateTime<Utc>,
) -> Result<HashMap<String, DeviceRow>, ConnectorError> {
    let rows = report_rows(connector, app_id, correlation_id).await?;
    let managed_ids: BTreeSet<&str> = rows
        .iter()
        .filter(|(_, row)| row.reported_at <= now)
        .map(|(managed, _)| managed.as_str())
        .collect();
    let entra = entra_ids(connector, &managed_ids, correlation_id).await?;
    let mut latest: HashMap<String, DeviceRow> = HashMap::new();
    for (managed, row) in rows {
        if row.reported_at > now {
            continue;
        }
        let Some(device) = entra.get(&managed) else {
            continue;
        };
        match latest.get(device) {
            Some(seen) if seen.reported_at >= row.reported_at => {}
            _ => {
                latest.insert(device.clone(), row);
            }
        }
    }
    Ok(latest)
}

/// The version a device runs according to a row of an app of `app_version`.
fn running_version(row: &DeviceRow, app_version: &str) -> Option<String> {
    (row.install_state == "installed").then(|| {
        row.display_version
            .clone()
            .unwrap_or_else(|| app_version.to_string())
    })
}

pub fn not_found(correlation_id: &str) -> ConnectorError {
    ConnectorError::new(
        ErrorCode::ResourceNotFound,
        format!("no app with correlation id {correlation_id} on intune; publish it first"),
    )
}

/// The app delivering the deployment now: itself, the earlier version's app
/// after a rollback, none after an uninstall.
pub async fn delivering_app(
    connector: &IntuneConnector,
    app: &FoundApp,
) -> Result<Option<FoundApp>, ConnectorError> {
    match &app.ledger.state {
        DeploymentState::Active => Ok(Some(app.clone())),
        DeploymentState::Uninstalled => Ok(None),
        DeploymentState::RolledBack { to_version } => {
            lookup::find_package(
                connector.client(),
                &app.ledger.application_id,
                to_version,
                &app.ledger.correlation_id,
            )
            .await
        }
    }
}

pub async fn query_status(
    connector: &IntuneConnector,
    correlation_id: &str,
    now: DateTime<Utc>,
) -> Result<DeploymentStatus, ConnectorError> {
    let client = connector.client();
    let app = connector
        .find_app(correlation_id, None)
        .await?
        .ok_or_else(|| not_found(correlation_id))?;
    let ledger = &app.ledger;
    let delivered = ledger.delivered_version().map(str::to_string);
    let delivering = delivering_app(connector, &app).await?;
    let assignment_source = delivering.as_ref().unwrap_or(&app);
    let assignments = lookup::assignments(client, &assignment_source.id, correlation_id).await?;
    let assigned_groups = wire::install_groups(&assignments);
    let mut excluded_groups: BTreeSet<String> =
        wire::excluded_groups(&assignments).into_iter().collect();
    excluded_groups.extend(ledger.exclusions.iter().cloned());

    let mut members: HashMap<String, Vec<String>> = HashMap::new();
    let ring_groups = ledger.rings.iter().flat_map(|record| record.groups.iter());
    for group in ring_groups.chain(&assigned_groups).chain(&excluded_groups) {
        if !members.contains_key(group) {
            let devices = lookup::group_devices(client, group, correlation_id).await?;
            members.insert(group.clone(), devices);
        }
    }
    let excluded_devices: BTreeSet<&String> = excluded_groups
        .iter()
        .flat_map(|group| members.get(group).into_iter().flatten())
        .collect();
    let devices_of = |groups: &mut dyn Iterator<Item = &String>| -> BTreeSet<String> {
        groups
            .flat_map(|group| members.get(group).into_iter().flatten())
            .filter(|device| !excluded_devices.contains(device))
            .cloned()
            .collect()
    };

    let own_rows = device_rows(connector, &app.id, correlation_id, now).await?;
    let delivering_rows = match &delivering {
        Some(other) if other.id != app.id => {
            device_rows(connector, &other.id, correlation_id, now).await?
        }
        Some(_) => own_rows.clone(),
        None => HashMap::new(),
    };

    let mut rings = BTreeMap::new();
    for record in &ledger.rings {
        let targeted = devices_of(
            &mut record
                .groups
                .iter()
                .filter(|group| assigned_groups.contains(group)),
        );
        let mut status = RingStatus::default();
        for device in &targeted {
            let row = delivering_rows.get(device);
            // Intune says the app does not apply to this device: not targeted.
            if row.is_some_and(|row| row.install_state == "notApplicable") {
                continue;
            }
            status.targeted += 1;
            let Some(row) = row else {
                status.pending += 1;
                continue;
            };
            status.last_report_at = status.last_report_at.max(Some(row.reported_at));
            let runs = delivered
                .as_deref()
                .and_then(|version| running_version(row, version));
            if runs.is_some() && runs == delivered {
                status.installed += 1;
                status.first_install_at = Some(
                    status
                        .first_install_at
                        .map_or(row.reported_at, |first| first.min(row.reported_at)),
                );
            } else if row.install_state == "failed" {
                status.failed += 1;
                *status
                    .failure_reasons
                    .entry(failure_reason(row))
                    .or_default() += 1;
            } else {
                status.pending += 1;
            }
        }
        rings.insert(record.ring.clone(), status);
    }

    let assigned_devices = devices_of(&mut assigned_groups.iter());
    let ever_targeted = devices_of(
        &mut ledger
            .rings
            .iter()
            .flat_map(|record| record.groups.iter())
            .chain(&assigned_groups),
    );
    let mut installed_versions: BTreeMap<String, u32> = BTreeMap::new();
    for device in &ever_targeted {
        let own = own_rows.get(device).and_then(|row| {
            running_version(row, &ledger.version).map(|version| (row.reported_at, version))
        });
        let other = match (&delivering, delivered.as_deref()) {
            (Some(other), Some(version)) if other.id != app.id => {
                delivering_rows.get(device).and_then(|row| {
                    running_version(row, version).map(|found| (row.reported_at, found))
                })
            }
            _ => None,
        };
        if let Some((_, version)) = own.into_iter().chain(other).max_by_key(|(at, _)| *at) {
            *installed_versions.entry(version).or_default() += 1;
        }
    }
    let version = majority(&installed_versions, delivered.as_deref());
    Ok(DeploymentStatus {
        correlation_id: correlation_id.to_string(),
        rings,
        observed: ObservedState {
            version,
            assigned_groups,
            assigned_devices: u32::try_from(assigned_devices.len()).unwrap_or(u32::MAX),
            installed_versions,
        },
    })
}

/// The version most devices run; a tie goes to the delivered version.
pub fn majority(versions: &BTreeMap<String, u32>, delivered: Option<&str>) -> Option<String> {
    let most = versions.values().copied().max()?;
    if let Some(delivered) = delivered
        && versions.get(delivered) == Some(&most)
    {
        return Some(delivered.to_string());
    }
    versions
        .iter()
        .find(|(_, count)| **count == most)
        .map(|(version, _)| version.clone())
}
