//! `routes`: the simulated `/AdminService/wmi/` classes the connector uses:
//! `SMS_Application` (created from `SDMPackageXML`; `SDMPackageXML` is a lazy
//! property, only on a single instance), `SMS_Collection` (membership rules
//! lazy too; `AdminService.AddMembershipRule`), `SMS_FullCollectionMembership`,
//! `SMS_ApplicationAssignment`, `SMS_AppDeploymentAssetDetails` and
//! `SMS_DeploymentSummary`; and the Entra token endpoint of the CMG path.

use super::SccmSimulator;
use super::http::{bad_request, list, not_found, odata_error, wmi_error};
use super::state::{SimApplication, SimCollection};
use axum::Json;
use axum::extract::{Form, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;

/// `POST /{tenant}/oauth2/v2.0/token`, client-credentials grant.
pub async fn token(
    State(simulator): State<SccmSimulator>,
    Path(tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let mut state = simulator.lock();
    state.tokens.count_request();
    let matches = tenant == state.tenant_id
        && form.get("grant_type").map(String::as_str) == Some("client_credentials")
        && form.get("client_id") == Some(&state.client_id)
        && form.get("client_secret").map(String::as_str) == Some(state.client_secret.expose());
    if !matches || state.tokens.credentials_revoked() {
        let body = json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."});
        return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    }
    let token = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    state.tokens.issue(&token);
    Json(json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token})).into_response()
}

/// The element text of `<tag ...>text</tag>`, first occurrence.
fn element<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let start = xml.find(&format!("<{tag}"))?;
    let open_end = start + xml[start..].find('>')? + 1;
    let close = open_end + xml[open_end..].find(&format!("</{tag}>"))?;
    Some(&xml[open_end..close])
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// `Class(key)` → (`Class`, key without quotes).
fn instance_key(segment: &str) -> Option<(&str, String)> {
    let open = segment.find('(')?;
    let key = segment[open + 1..].strip_suffix(')')?;
    Some((&segment[..open], key.trim_matches('\'').to_string()))
}

fn application_json(application: &SimApplication, with_lazy: bool) -> Value {
    let mut value = application.properties.clone();
    if with_lazy {
        value["SDMPackageXML"] = json!(application.xml);
    }
    value
}

fn collection_json(collection: &SimCollection, member_count: usize, with_lazy: bool) -> Value {
    let mut value = collection.properties.clone();
    value["MemberCount"] = json!(member_count);
    if with_lazy {
        value["CollectionRules"] = json!(collection.rules);
    }
    value
}

/// `GET /AdminService/wmi/{Class}` or `.../{Class}({key})`.
pub async fn get(
    State(simulator): State<SccmSimulator>,
    Path(segment): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let state = simulator.lock();
    if let Some((class, key)) = instance_key(&segment) {
        let found = match class {
            "SMS_Application" => state
                .applications
                .iter()
                .find(|application| application.ci_id.to_string() == key)
                .map(|application| application_json(application, true)),
            "SMS_Collection" => state
                .collections
                .get(&key)
                .map(|collection| collection_json(collection, state.members(&key).len(), true)),
            "SMS_ApplicationAssignment" => state
                .assignments
                .iter()
                .find(|assignment| {
                    assignment.get("AssignmentID").map(Value::to_string) == Some(key.clone())
                })
                .cloned(),
            _ => {
                return bad_request(&format!(
                    "the simulator does not serve instances of {class}"
                ));
            }
        };
        return match found {
            Some(value) => Json(json!({"@odata.context": format!("/AdminService/wmi/$metadata#{class}"), "value": [value]})).into_response(),
            None => not_found(&format!("{class}({key})")),
        };
    }
    // Rows are narrowed before they are built (the filter is applied again
    // by `list`): a request costs its rows, not the site's.
    let filter = crate::planes::http::query_value(query.as_deref(), "$filter");
    let passes = |item: &Value| {
        filter
            .as_deref()
            .is_none_or(|filter| super::http::filter_matches(filter, item).unwrap_or(true))
    };
    let assignment = super::http::integer_eq(query.as_deref(), "AssignmentID");
    let items: Vec<Value> = match segment.as_str() {
        "SMS_Application" => state
            .applications
            .iter()
            .filter(|application| passes(&application.properties))
            .map(|application| application_json(application, false))
            .collect(),
        "SMS_Collection" => state
            .collections
            .iter()
            // Members are counted only for the collections the filter keeps
            // (a filter on the count itself is applied to the built rows).
            .filter(|(_, collection)| {
                filter.as_deref().is_some_and(|filter| filter.contains("MemberCount"))
                    || passes(&collection.properties)
            })
            .map(|(id, collection)| collection_json(collection, state.members(id).len(), false))
            .collect(),
        "SMS_FullCollectionMembership" => state
            .collections
            .keys()
            // Only the collection a `CollectionID eq '...'` clause names, so a
            // large site is not evaluated whole for every page.
            .filter(|id| {
                named_collection(query.as_deref()).is_none_or(|named| named == id.as_str())
            })
            .flat_map(|id| {
                let members = state.members(id);
                let shown = members.len().saturating_sub(state.membership_lag.get(id).copied().unwrap_or(0));
                members.into_iter().take(shown).map(move |resource| (id.clone(), resource))
            })
            .map(|(id, resource)| {
                json!({"CollectionID": id, "ResourceID": resource, "Name": state.devices.get(&resource), "SiteCode": state.site_code})
            })
            .collect(),
        "SMS_ApplicationAssignment" => state
            .assignments
            .iter()
            .filter(|assignment| passes(assignment))
            .cloned()
            .collect(),
        "SMS_AppDeploymentAssetDetails" => match assignment {
            Some(id) => state.asset_details_of(id).cloned().collect(),
            None => state.asset_details.values().cloned().collect(),
        },
        "SMS_DeploymentSummary" => state
            .assignments
            .iter()
            .filter(|row| {
                assignment.is_none_or(|id| row.get("AssignmentID").and_then(Value::as_i64) == Some(id))
            })
            .map(|row| state.summary(row))
            .collect(),
        other => return bad_request(&format!("the simulator does not serve class {other}")),
    };
    list(
        items,
        &headers,
        uri.path(),
        query.as_deref(),
        state.page_size,
        state.paging,
    )
}

fn create_application(simulator: &SccmSimulator, body: &Value) -> Response {
    let Some(xml) = body.get("SDMPackageXML").and_then(Value::as_str) else {
        return bad_request("SDMPackageXML is required");
    };
    let checks = [
        ("<AppMgmtDigest", "an AppMgmtDigest"),
        ("<Application ", "an Application"),
        ("<DeploymentType ", "a DeploymentType"),
        ("InstallCommandLine", "an install command line"),
        ("<DetectAction>", "a detection method"),
    ];
    if let Some((_, missing)) = checks.iter().find(|(needle, _)| !xml.contains(needle)) {
        return wmi_error(&format!("SDMPackageXML lacks {missing}"));
    }
    let title = element(xml, "Title").map(unescape).unwrap_or_default();
    let description = element(xml, "Description")
        .map(unescape)
        .unwrap_or_default();
    let version = element(xml, "SoftwareVersion")
        .map(unescape)
        .unwrap_or_default();
    if title.is_empty() {
        return wmi_error("SDMPackageXML has no Title");
    }
    let mut state = simulator.lock();
    if state
        .applications
        .iter()
        .any(|application| application.properties["LocalizedDisplayName"] == title.as_str())
    {
        return odata_error(
            StatusCode::CONFLICT,
            "Conflict",
            &format!("an application named {title} already exists"),
        );
    }
    let ci_id = state.next_ci_id();
    let model_id = ci_id + 1;
    let properties = json!({
        "CI_ID": ci_id,
        "ModelID": model_id,
        "CI_UniqueID": format!("ScopeId_RINGMASTER/Application_{ci_id}/1"),
        "ModelName": format!("ScopeId_RINGMASTER/Application_{ci_id}"),
        "LocalizedDisplayName": title,
        "LocalizedDescription": description,
        "SoftwareVersion": version,
        "IsLatest": true,
        "IsDeployed": false,
        "HasUninstallAction": xml.contains("<UninstallAction>"),
    });
    state.applications.push(SimApplication {
        ci_id,
        model_id,
        properties: properties.clone(),
        xml: xml.to_string(),
    });
    (StatusCode::CREATED, Json(properties)).into_response()
}

fn create_collection(simulator: &SccmSimulator, body: &Value) -> Response {
    let name = body.get("Name").and_then(Value::as_str).unwrap_or_default();
    let limit = body
        .get("LimitToCollectionID")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if name.is_empty() || limit.is_empty() {
        return bad_request("Name and LimitToCollectionID are required");
    }
    let mut state = simulator.lock();
    if !state.collections.contains_key(limit) {
        return not_found(&format!("limiting collection {limit}"));
    }
    if state
        .collections
        .values()
        .any(|collection| collection.properties["Name"] == name)
    {
        return odata_error(
            StatusCode::CONFLICT,
            "Conflict",
            &format!("a collection named {name} already exists"),
        );
    }
    let refresh_type = body.get("RefreshType").cloned().unwrap_or(json!(2));
    if !matches!(refresh_type.as_i64(), Some(1 | 2 | 4 | 6)) {
        return bad_request(&format!(
            "RefreshType {refresh_type} is not 1 (manual), 2 (periodic), 4 (incremental) or 6 (both)"
        ));
    }
    let id = state.next_collection_id();
    let properties = json!({
        "CollectionID": id,
        "Name": name,
        "Comment": body.get("Comment").cloned().unwrap_or(json!("")),
        "LimitToCollectionID": limit,
        "CollectionType": body.get("CollectionType").cloned().unwrap_or(json!(2)),
        "RefreshType": refresh_type,
        "RefreshSchedule": body.get("RefreshSchedule").cloned().unwrap_or(json!([])),
    });
    state.collections.insert(
        id,
        SimCollection {
            properties: properties.clone(),
            rules: Vec::new(),
            direct_members: None,
        },
    );
    (StatusCode::CREATED, Json(properties)).into_response()
}

fn create_assignment(simulator: &SccmSimulator, body: &Value) -> Response {
    let mut state = simulator.lock();
    let ci = body
        .get("AssignedCIs")
        .and_then(Value::as_array)
        .and_then(|cis| cis.first())
        .and_then(Value::as_i64);
    let Some(application) = ci
        .and_then(|ci| {
            state
                .applications
                .iter()
                .find(|application| application.ci_id == ci)
        })
        .cloned()
    else {
        return wmi_error("AssignedCIs names no application");
    };
    let target = body
        .get("TargetCollectionID")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let Some(collection) = state.collections.get(&target) else {
        return wmi_error(&format!("collection {target} does not exist"));
    };
    let desired = body.get("DesiredConfigType").and_then(Value::as_i64);
    if !matches!(desired, Some(1 | 2))
        || !matches!(body.get("OfferTypeID").and_then(Value::as_i64), Some(0 | 2))
    {
        return bad_request("DesiredConfigType must be 1 or 2 and OfferTypeID 0 or 2");
    }
    if desired == Some(2) && !application.xml.contains("<UninstallAction>") {
        return wmi_error("the deployment type has no uninstall command");
    }
    let collection_name = collection.properties["Name"].clone();
    let id = state.next_assignment_id();
    let mut assignment = body.clone();
    assignment["AssignmentID"] = json!(id);
    assignment["AssignmentUniqueID"] = json!(format!("{{{}}}", uuid::Uuid::new_v4()));
    assignment["ApplicationName"] = application.properties["LocalizedDisplayName"].clone();
    assignment["AppModelID"] = json!(application.model_id);
    assignment["CollectionName"] = collection_name;
    assignment["CreationTime"] =
        json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    state.assignments.push(assignment.clone());
    (StatusCode::CREATED, Json(assignment)).into_response()
}

/// `POST /AdminService/wmi/{Class}` (create) or `.../{Class}({key})` (update).
pub async fn post(
    State(simulator): State<SccmSimulator>,
    Path(segment): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    if let Some((class, key)) = instance_key(&segment) {
        let mut state = simulator.lock();
        return match (class, state.collections.get_mut(&key)) {
            ("SMS_Collection", Some(collection)) => {
                for field in ["Comment", "Name", "RefreshType"] {
                    if let Some(value) = body.get(field) {
                        collection.properties[field] = value.clone();
                    }
                }
                Json(json!({"value": [collection.properties.clone()]})).into_response()
            }
            ("SMS_Collection", None) => not_found(&format!("SMS_Collection({key})")),
            _ => bad_request(&format!("the simulator does not update {class}")),
        };
    }
    match segment.as_str() {
        "SMS_Application" => create_application(&simulator, &body),
        "SMS_Collection" => create_collection(&simulator, &body),
        "SMS_ApplicationAssignment" => create_assignment(&simulator, &body),
        other => bad_request(&format!("the simulator does not create {other}")),
    }
}

pub async fn delete(
    State(simulator): State<SccmSimulator>,
    Path(segment): Path<String>,
) -> Response {
    let Some(("SMS_ApplicationAssignment", key)) = instance_key(&segment) else {
        return bad_request("the simulator deletes SMS_ApplicationAssignment instances only");
    };
    let mut state = simulator.lock();
    let before = state.assignments.len();
    state.assignments.retain(|assignment| {
        assignment.get("AssignmentID").map(Value::to_string) != Some(key.clone())
    });
    if state.assignments.len() == before {
        return not_found(&format!("SMS_ApplicationAssignment({key})"));
    }
    let id: i64 = key.parse().unwrap_or_default();
    state
        .asset_details
        .retain(|(assignment_id, _), _| *assignment_id != id);
    StatusCode::OK.into_response()
}

/// `POST .../SMS_Collection('{id}')/AdminService.AddMembershipRule`.
pub async fn action(
    State(simulator): State<SccmSimulator>,
    Path((segment, action)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    let Some(("SMS_Collection", key)) = instance_key(&segment) else {
        return bad_request("the simulator serves actions on SMS_Collection only");
    };
    if action != "AdminService.AddMembershipRule" {
        return bad_request(&format!("the simulator does not serve {action}"));
    }
    let Some(rule) = body.get("collectionRule").cloned() else {
        return bad_request("collectionRule is required");
    };
    let mut state = simulator.lock();
    let referenced = ["IncludeCollectionID", "ExcludeCollectionID"]
        .iter()
        .find_map(|field| rule.get(*field).and_then(Value::as_str))
        .map(str::to_string);
    if let Some(referenced) = &referenced
        && !state.collections.contains_key(referenced)
    {
        return wmi_error(&format!("collection {referenced} does not exist"));
    }
    let Some(collection) = state.collections.get_mut(&key) else {
        return not_found(&format!("SMS_Collection({key})"));
    };
    if collection.direct_members.is_none() && !collection.rules.contains(&rule) {
        collection.rules.push(rule);
    }
    Json(json!({"ReturnValue": 0})).into_response()
}

/// The collection a list query's `$filter` pins with `CollectionID eq '...'`.
fn named_collection(raw_query: Option<&str>) -> Option<String> {
    let filter = crate::planes::http::query_value(raw_query, "$filter")?;
    filter.split(" and ").find_map(|clause| {
        let (left, right) = clause.trim().split_once(" eq ")?;
        (left.trim() == "CollectionID").then(|| right.trim().trim_matches('\'').to_owned())
    })
}
