//! `lookup`: what the Jamf Pro server holds for a deployment, and the writes
//! that change it: the package record (found by `notes=="corr:<id>"`, RSQL),
//! the deployment's policies (found by the correlation id at the end of their
//! unique names), computer groups and their members, policy logs per
//! computer, and the applications inventory reports.

use super::client::{Body, JamfClient, Refusal, is_duplicate_field, is_duplicate_name, unreadable};
use super::wire::{self, ComputerGroup, PackageInfo, Policy, PolicyRole};
use crate::planes::http::encode_query_value;
use crate::planes::ledger::{Ledger, package_marker};
use crate::planes::{ConnectorError, ErrorCode};
use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::Value;
use std::collections::HashMap;

/// A package record made by ringmaster.
#[derive(Debug, Clone)]
pub struct FoundPackage {
    pub id: u64,
    pub name: String,
    pub record: Value,
    pub info: PackageInfo,
}

impl FoundPackage {
    pub fn ledger(&self) -> Option<Ledger> {
        Ledger::parse(&self.info.ledger)
    }
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// Jamf Pro API ids are strings of digits.
fn id_of(value: &Value) -> Option<u64> {
    match value.get("id") {
        Some(Value::String(id)) => id.parse().ok(),
        Some(Value::Number(id)) => id.as_u64(),
        _ => None,
    }
}

fn package_of(record: Value) -> Option<FoundPackage> {
    Some(FoundPackage {
        id: id_of(&record)?,
        name: text(&record, "packageName").to_string(),
        info: PackageInfo::parse(text(&record, "info")),
        record,
    })
}

fn rsql_string(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

async fn packages_where(
    client: &JamfClient,
    filter: Option<String>,
) -> Result<Vec<Value>, ConnectorError> {
    let path = match filter {
        Some(filter) => format!(
            "/api/v1/packages?sort=id%3Aasc&filter={}",
            encode_query_value(&filter)
        ),
        None => "/api/v1/packages?sort=id%3Aasc".to_string(),
    };
    client.get_all(&path).await
}

/// The package whose `notes` are `corr:<correlation_id>`.
pub async fn find_package(
    client: &JamfClient,
    correlation_id: &str,
) -> Result<Option<FoundPackage>, ConnectorError> {
    let notes = wire::package_notes(correlation_id);
    let records = packages_where(client, Some(format!("notes=={}", rsql_string(&notes)))).await?;
    Ok(records
        .into_iter()
        .filter(|record| text(record, "notes") == notes)
        .find_map(package_of))
}

/// The package named `name`, whatever made it.
pub async fn package_named(
    client: &JamfClient,
    name: &str,
) -> Result<Option<FoundPackage>, ConnectorError> {
    let records =
        packages_where(client, Some(format!("packageName=={}", rsql_string(name)))).await?;
    Ok(records
        .into_iter()
        .filter(|record| text(record, "packageName") == name)
        .find_map(package_of))
}

/// A ringmaster package of `application_id` at `version` (any intent): every
/// package is listed, page by page, and its `info` read.
pub async fn find_version_package(
    client: &JamfClient,
    application_id: &str,
    version: &str,
    not: u64,
) -> Result<Option<FoundPackage>, ConnectorError> {
    let marker = package_marker(application_id, version);
    let records = packages_where(client, None).await?;
    Ok(records.into_iter().filter_map(package_of).find(|package| {
        package.id != not && package.info.ledger.split(';').any(|part| part == marker)
    }))
}

/// `POST /api/v1/packages`; a duplicate `packageName` is the refusal.
pub async fn create_package(
    client: &JamfClient,
    body: &Value,
) -> Result<Result<u64, Refusal>, ConnectorError> {
    let answer = client
        .exchange(
            Method::POST,
            "/api/v1/packages",
            Body::Json(body),
            &[400, 409],
        )
        .await?;
    match answer {
        Ok(text) => {
            let created: Value = serde_json::from_str(&text)
                .map_err(|_| unreadable(&Method::POST, "/api/v1/packages", "JSON"))?;
            id_of(&created)
                .map(Ok)
                .ok_or_else(|| unreadable(&Method::POST, "/api/v1/packages", "JSON"))
        }
        Err(refusal) if is_duplicate_field(&refusal, "packageName") => Ok(Err(refusal)),
        Err(refusal) => {
            Err(client.refused("POST /api/v1/packages", refusal.status, &refusal.text, None))
        }
    }
}

/// Writes `info` into the package record (PUT of the whole record), when it changed.
pub async fn save_info(
    client: &JamfClient,
    package: &mut FoundPackage,
    info: PackageInfo,
) -> Result<bool, ConnectorError> {
    if package.info == info {
        return Ok(false);
    }
    let mut record = package.record.clone();
    record["info"] = Value::String(info.render());
    let target = format!("/api/v1/packages/{}", package.id);
    client
        .send_json(Method::PUT, &target, Body::Json(&record))
        .await?;
    package.record = record;
    package.info = info;
    Ok(true)
}

/// A computer group with its members, or `None` when Jamf has no such id.
pub async fn group(
    client: &JamfClient,
    group_id: u64,
) -> Result<Option<ComputerGroup>, ConnectorError> {
    let target = format!("/JSSResource/computergroups/id/{group_id}");
    match client.send(Method::GET, &target, Body::None).await {
        Ok(text) => wire::from_xml(&text)
            .map(Some)
            .map_err(|_| unreadable(&Method::GET, &target, "computer group XML")),
        Err(error) if error.code == ErrorCode::ResourceNotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// Fails with `resource_not_found` naming the group when it does not exist.
pub async fn check_group(client: &JamfClient, group_id: u64) -> Result<(), ConnectorError> {
    match group(client, group_id).await? {
        Some(_) => Ok(()),
        None => Err(ConnectorError::new(
            ErrorCode::ResourceNotFound,
            format!("computer group {group_id} does not exist on jamf; check the entitlement"),
        )),
    }
}

/// Computer ids of a group's members, cached per call site in `members`.
pub async fn members(
    client: &JamfClient,
    group_id: u64,
    cache: &mut HashMap<u64, Vec<u64>>,
) -> Result<Vec<u64>, ConnectorError> {
    if let Some(found) = cache.get(&group_id) {
        return Ok(found.clone());
    }
    let computers: Vec<u64> = group(client, group_id)
        .await?
        .map(|group| {
            group
                .computers
                .computers
                .iter()
                .map(|computer| computer.id)
                .collect()
        })
        .unwrap_or_default();
    cache.insert(group_id, computers.clone());
    Ok(computers)
}

/// One policy of a deployment.
#[derive(Debug, Clone)]
pub struct DeploymentPolicy {
    pub id: u64,
    pub role: PolicyRole,
    pub policy: Policy,
}

/// Every policy whose name ends with the correlation id, with its details.
pub async fn policies_of(
    client: &JamfClient,
    correlation_id: &str,
) -> Result<Vec<DeploymentPolicy>, ConnectorError> {
    let target = "/JSSResource/policies";
    let text = client.send(Method::GET, target, Body::None).await?;
    let list: wire::PolicyList =
        wire::from_xml(&text).map_err(|_| unreadable(&Method::GET, target, "policy list XML"))?;
    let mut found = Vec::new();
    for entry in list.policies {
        let Some(role) = wire::policy_role(&entry.name, correlation_id) else {
            continue;
        };
        if let Some(policy) = policy(client, entry.id).await? {
            found.push(DeploymentPolicy {
                id: entry.id,
                role,
                policy,
            });
        }
    }
    Ok(found)
}

async fn policy_at(client: &JamfClient, target: &str) -> Result<Option<Policy>, ConnectorError> {
    match client.send(Method::GET, target, Body::None).await {
        Ok(text) => wire::from_xml(&text)
            .map(Some)
            .map_err(|_| unreadable(&Method::GET, target, "policy XML")),
        Err(error) if error.code == ErrorCode::ResourceNotFound => Ok(None),
        Err(error) => Err(error),
    }
}

pub async fn policy(client: &JamfClient, id: u64) -> Result<Option<Policy>, ConnectorError> {
    policy_at(client, &format!("/JSSResource/policies/id/{id}")).await
}

/// `GET /JSSResource/policies/name/{name}`.
pub async fn policy_named(
    client: &JamfClient,
    name: &str,
) -> Result<Option<Policy>, ConnectorError> {
    let target = format!("/JSSResource/policies/name/{}", encode_query_value(name));
    policy_at(client, &target).await
}

/// Creates a policy (`POST /JSSResource/policies/id/0`) and answers its id
/// and whether this call created it: Jamf's 409 "Duplicate name" means a
/// policy of that name exists, and it is looked up by name instead.
pub async fn create_policy(
    client: &JamfClient,
    policy: &Policy,
) -> Result<(u64, Policy, bool), ConnectorError> {
    let target = "/JSSResource/policies/id/0";
    let xml = wire::to_xml(policy).map_err(|error| {
        ConnectorError::new(
            ErrorCode::InvalidRequest,
            format!(
                "cannot write policy {} as XML: {error}",
                policy.general.name
            ),
        )
    })?;
    match client
        .exchange(Method::POST, target, Body::Xml(&xml), &[409])
        .await?
    {
        Ok(text) => {
            let created: wire::Created = wire::from_xml(&text)
                .map_err(|_| unreadable(&Method::POST, target, "policy id XML"))?;
            tracing::info!(policy_id = created.id, name = %policy.general.name, "jamf policy created");
            Ok((created.id, policy.clone(), true))
        }
        Err(refusal) if is_duplicate_name(&refusal) => {
            let existing = policy_named(client, &policy.general.name)
                .await?
                .ok_or_else(|| {
                    ConnectorError::new(
                        ErrorCode::ServiceUnavailable,
                        format!(
                            "jamf answered Duplicate name for policy {} but has none of that name; retry",
                            policy.general.name
                        ),
                    )
                })?;
            let id = existing.general.id.ok_or_else(|| {
                unreadable(&Method::GET, "/JSSResource/policies/name", "policy XML")
            })?;
            tracing::debug!(
                policy_id = id,
                "jamf policy exists already (409 Duplicate name)"
            );
            Ok((id, existing, false))
        }
        Err(refusal) => Err(client.refused(
            &format!("POST {target}"),
            refusal.status,
            &refusal.text,
            None,
        )),
    }
}

/// `PUT /JSSResource/policies/id/{id}` with the whole policy.
pub async fn update_policy(
    client: &JamfClient,
    id: u64,
    policy: &Policy,
) -> Result<(), ConnectorError> {
    let mut body = policy.clone();
    body.general.id = None;
    let xml = wire::to_xml(&body).map_err(|error| {
        ConnectorError::new(
            ErrorCode::InvalidRequest,
            format!("cannot write policy {id} as XML: {error}"),
        )
    })?;
    client
        .send(
            Method::PUT,
            &format!("/JSSResource/policies/id/{id}"),
            Body::Xml(&xml),
        )
        .await?;
    Ok(())
}

/// Deletes a policy; one already gone is fine.
pub async fn delete_policy(client: &JamfClient, id: u64) -> Result<(), ConnectorError> {
    match client
        .send(
            Method::DELETE,
            &format!("/JSSResource/policies/id/{id}"),
            Body::None,
        )
        .await
    {
        Err(error) if error.code == ErrorCode::ResourceNotFound => Ok(()),
        other => other.map(|_| ()),
    }
}

/// Flushes every log of a policy, so "Once per computer" runs again everywhere.
pub async fn flush_logs(client: &JamfClient, policy_id: u64) -> Result<(), ConnectorError> {
    client
        .send(
            Method::DELETE,
            &format!("/JSSResource/logflush/policy/id/{policy_id}/interval/Zero+Days"),
            Body::None,
        )
        .await?;
    Ok(())
}

/// A computer's policy logs (`computerhistory/.../subset/PolicyLogs`).
pub async fn policy_logs(
    client: &JamfClient,
    computer_id: u64,
) -> Result<Vec<wire::PolicyLog>, ConnectorError> {
    let target = format!("/JSSResource/computerhistory/id/{computer_id}/subset/PolicyLogs");
    match client.send(Method::GET, &target, Body::None).await {
        Ok(text) => wire::from_xml::<wire::ComputerHistory>(&text)
            .map(|history| history.policy_logs.logs)
            .map_err(|_| unreadable(&Method::GET, &target, "computer history XML")),
        Err(error) if error.code == ErrorCode::ResourceNotFound => Ok(Vec::new()),
        Err(error) => Err(error),
    }
}

/// One application in a computer's inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryApp {
    pub name: String,
    pub path: String,
    pub bundle_id: String,
    pub version: String,
}

/// One computer's inventory record: its applications and, from the
/// GENERAL section, when it last contacted Jamf and last reported inventory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InventoryRecord {
    pub apps: Vec<InventoryApp>,
    pub last_contact: Option<DateTime<Utc>>,
    pub report_date: Option<DateTime<Utc>>,
}

/// Ids per inventory request: a page's worth, so each filter is answered
/// by one page, and at most 500, so the filter stays a few kilobytes long.
pub const INVENTORY_IDS_PER_REQUEST: usize = 500;

fn general_time(record: &Value, key: &str) -> Option<DateTime<Utc>> {
    let text = record.get("general")?.get(key)?.as_str()?;
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|at| at.with_timezone(&Utc))
}

/// The inventory records of `computers` (Jamf Pro API
/// `v3/computers-inventory`, sections GENERAL and APPLICATIONS, filtered by
/// `id=in=(...)` a page of ids at a time, paged; v1 is deprecated in Jamf's
/// description): `ceil(computers / page size)` requests when every filter
/// fits a page.
pub async fn inventory(
    client: &JamfClient,
    computers: &[u64],
) -> Result<HashMap<u64, InventoryRecord>, ConnectorError> {
    let mut found = HashMap::new();
    let chunk = client.page_size().clamp(1, INVENTORY_IDS_PER_REQUEST);
    for chunk in computers.chunks(chunk) {
        let ids: Vec<String> = chunk.iter().map(u64::to_string).collect();
        let filter = format!("id=in=({})", ids.join(","));
        let path = format!(
            "/api/v3/computers-inventory?section=GENERAL&section=APPLICATIONS&sort=id%3Aasc&filter={}",
            encode_query_value(&filter)
        );
        for record in client.get_all(&path).await? {
            let Some(id) = id_of(&record) else {
                continue;
            };
            let apps = record
                .get("applications")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|app| InventoryApp {
                    name: text(app, "name").to_string(),
                    path: text(app, "path").to_string(),
                    bundle_id: text(app, "bundleId").to_string(),
                    version: text(app, "version").to_string(),
                })
                .collect();
            found.insert(
                id,
                InventoryRecord {
                    apps,
                    last_contact: general_time(&record, "lastContactTime"),
                    report_date: general_time(&record, "reportDate"),
                },
            );
        }
    }
    Ok(found)
}
