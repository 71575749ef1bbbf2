//! `lookup`: what the site holds for a deployment: the application (found by
//! its display name and the correlation note in its description), the ring
//! collections (named after the correlation id; the first one's `Comment` holds
//! the ledger), their membership rules and members, the application's
//! assignments, and the per-device and summary status of an assignment.

use super::client::AdminClient;
use super::wire::{self, integer, text};
use crate::planes::http::{encode_query_value, odata_string};
use crate::planes::ledger::{Ledger, correlation_in, package_marker};
use crate::planes::{ConnectorError, ErrorCode};
use reqwest::Method;
use serde_json::{Value, json};

/// An application (its latest revision) made by ringmaster.
#[derive(Debug, Clone)]
pub struct FoundApp {
    pub ci_id: i64,
    pub model_id: i64,
    pub name: String,
    pub description: String,
}

impl FoundApp {
    pub fn assigned(&self) -> wire::AssignedApplication<'_> {
        wire::AssignedApplication {
            ci_id: self.ci_id,
            model_id: self.model_id,
            name: &self.name,
        }
    }
}

pub fn app_of(value: &Value) -> Option<FoundApp> {
    Some(FoundApp {
        ci_id: integer(value, "CI_ID")?,
        model_id: integer(value, "ModelID")?,
        name: text(value, "LocalizedDisplayName").to_string(),
        description: text(value, "LocalizedDescription").to_string(),
    })
}

fn filtered(class: &str, filter: &str) -> String {
    format!("/wmi/{class}?$filter={}", encode_query_value(filter))
}

async fn latest_apps(
    client: &AdminClient,
    display_name: Option<&str>,
) -> Result<Vec<Value>, ConnectorError> {
    let filter = match display_name {
        Some(name) => format!(
            "LocalizedDisplayName eq {} and IsLatest eq true",
            odata_string(name)
        ),
        None => "IsLatest eq true".to_string(),
    };
    client.get_all(&filtered("SMS_Application", &filter)).await
}

/// The application whose description carries `correlation_id`: first among
/// those named `display_name`, then among all.
pub async fn find_app(
    client: &AdminClient,
    correlation_id: &str,
    display_name: Option<&str>,
) -> Result<Option<FoundApp>, ConnectorError> {
    let matching = |apps: &[Value]| {
        apps.iter()
            .filter(|app| correlation_in(text(app, "LocalizedDescription")) == Some(correlation_id))
            .find_map(app_of)
    };
    if let Some(name) = display_name
        && let Some(app) = matching(&latest_apps(client, Some(name)).await?)
    {
        return Ok(Some(app));
    }
    Ok(matching(&latest_apps(client, None).await?))
}

/// The application with `ci_id`, if it is still the latest revision and still
/// carries `correlation_id` in its description.
pub async fn get_app(
    client: &AdminClient,
    ci_id: i64,
    correlation_id: &str,
) -> Result<Option<FoundApp>, ConnectorError> {
    match client
        .send(Method::GET, &format!("/wmi/SMS_Application({ci_id})"), None)
        .await
    {
        Ok(answer) => Ok(instance(answer)
            .filter(|app| app.get("IsLatest") == Some(&Value::Bool(true)))
            .filter(|app| correlation_in(text(app, "LocalizedDescription")) == Some(correlation_id))
            .as_ref()
            .and_then(app_of)),
        Err(error) if error.code == ErrorCode::ResourceNotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// A ringmaster application of `application_id` at `version` (any intent).
pub async fn find_package(
    client: &AdminClient,
    application_id: &str,
    version: &str,
) -> Result<Option<FoundApp>, ConnectorError> {
    let marker = package_marker(application_id, version);
    let apps = latest_apps(client, None).await?;
    Ok(apps
        .iter()
        .filter(|app| {
            text(app, "LocalizedDescription")
                .split(';')
                .any(|part| part == marker)
        })
        .find_map(app_of))
}

/// One ring collection of a deployment.
#[derive(Debug, Clone)]
pub struct RingCollection {
    pub id: String,
    pub name: String,
    pub ring: String,
    /// The deployment's ledger, on the first ring's collection only.
    pub ledger: Option<Ledger>,
}

/// The deployment's ring collections, by name prefix, whose comment names it.
pub async fn ring_collections(
    client: &AdminClient,
    correlation_id: &str,
) -> Result<Vec<RingCollection>, ConnectorError> {
    let prefix = format!("{} ", wire::collection_prefix(correlation_id));
    let filter = format!("startswith(Name,{}) eq true", odata_string(&prefix));
    let collections = client.get_all(&filtered("SMS_Collection", &filter)).await?;
    Ok(collections
        .iter()
        .filter(|collection| correlation_in(text(collection, "Comment")) == Some(correlation_id))
        .filter_map(|collection| {
            let name = text(collection, "Name");
            Some(RingCollection {
                id: text(collection, "CollectionID").to_string(),
                name: name.to_string(),
                ring: name.strip_prefix(&prefix)?.to_string(),
                ledger: Ledger::parse(text(collection, "Comment")),
            })
        })
        .collect())
}

fn instance(answer: Value) -> Option<Value> {
    match answer.get("value") {
        Some(Value::Array(values)) => values.first().cloned(),
        _ if answer.is_object() => Some(answer),
        _ => None,
    }
}

/// One collection with its lazy properties (`CollectionRules`), or `None`.
pub async fn collection(
    client: &AdminClient,
    collection_id: &str,
) -> Result<Option<Value>, ConnectorError> {
    let target = format!("/wmi/SMS_Collection({})", odata_string(collection_id));
    match client.send(Method::GET, &target, None).await {
        Ok(answer) => Ok(instance(answer)),
        Err(error) if error.code == ErrorCode::ResourceNotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// Fails with `resource_not_found` naming the collection when it does not exist.
pub async fn check_collection(
    client: &AdminClient,
    collection_id: &str,
) -> Result<(), ConnectorError> {
    match collection(client, collection_id).await? {
        Some(_) => Ok(()),
        None => Err(ConnectorError::new(
            ErrorCode::ResourceNotFound,
            format!("collection {collection_id} does not exist on sccm; check the entitlement"),
        )),
    }
}

/// The collections a ring collection includes and excludes.
pub async fn membership(
    client: &AdminClient,
    collection_id: &str,
) -> Result<(Vec<String>, Vec<String>), ConnectorError> {
    let rules = collection(client, collection_id)
        .await?
        .and_then(|found| found.get("CollectionRules").cloned())
        .unwrap_or(Value::Null);
    let mut included = Vec::new();
    let mut excluded = Vec::new();
    for rule in rules.as_array().into_iter().flatten() {
        match text(rule, "@odata.type") {
            wire::INCLUDE_RULE => included.push(text(rule, "IncludeCollectionID").to_string()),
            wire::EXCLUDE_RULE => excluded.push(text(rule, "ExcludeCollectionID").to_string()),
            _ => {}
        }
    }
    Ok((included, excluded))
}

pub async fn add_rule(
    client: &AdminClient,
    collection_id: &str,
    rule_collection: &str,
    exclude: bool,
) -> Result<(), ConnectorError> {
    let target = format!(
        "/wmi/SMS_Collection({})/AdminService.AddMembershipRule",
        odata_string(collection_id)
    );
    client
        .send(
            Method::POST,
            &target,
            Some(&wire::membership_rule(rule_collection, exclude)),
        )
        .await?;
    Ok(())
}

/// Creates a collection and answers its id.
pub async fn create_collection(
    client: &AdminClient,
    body: &Value,
) -> Result<String, ConnectorError> {
    let created = client
        .send(Method::POST, "/wmi/SMS_Collection", Some(body))
        .await?;
    instance(created)
        .map(|collection| text(&collection, "CollectionID").to_string())
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            ConnectorError::new(
                ErrorCode::ServiceUnavailable,
                "the AdminService created a collection without a CollectionID; retry",
            )
        })
}

/// Writes the ledger into the anchor collection's comment, when it changed.
pub async fn save_ledger(
    client: &AdminClient,
    anchor: &mut RingCollection,
    ledger: Ledger,
) -> Result<bool, ConnectorError> {
    if anchor.ledger.as_ref() == Some(&ledger) {
        return Ok(false);
    }
    let target = format!("/wmi/SMS_Collection({})", odata_string(&anchor.id));
    client
        .send(
            Method::POST,
            &target,
            Some(&json!({"Comment": ledger.render()})),
        )
        .await?;
    anchor.ledger = Some(ledger);
    Ok(true)
}

/// Resource ids of a collection's members.
pub async fn members(
    client: &AdminClient,
    collection_id: &str,
) -> Result<Vec<i64>, ConnectorError> {
    let filter = format!("CollectionID eq {}", odata_string(collection_id));
    let rows = client
        .get_all(&filtered("SMS_FullCollectionMembership", &filter))
        .await?;
    Ok(rows
        .iter()
        .filter_map(|row| integer(row, "ResourceID"))
        .collect())
}

/// Every assignment (deployment) of an application.
pub async fn assignments(
    client: &AdminClient,
    app: &FoundApp,
) -> Result<Vec<Value>, ConnectorError> {
    let filter = format!("AppModelID eq {}", app.model_id);
    client
        .get_all(&filtered("SMS_ApplicationAssignment", &filter))
        .await
}

pub async fn create_assignment(client: &AdminClient, body: &Value) -> Result<(), ConnectorError> {
    client
        .send(Method::POST, "/wmi/SMS_ApplicationAssignment", Some(body))
        .await?;
    Ok(())
}

pub async fn delete_assignment(
    client: &AdminClient,
    assignment: &Value,
) -> Result<(), ConnectorError> {
    let Some(id) = integer(assignment, "AssignmentID") else {
        return Ok(());
    };
    match client
        .send(
            Method::DELETE,
            &format!("/wmi/SMS_ApplicationAssignment({id})"),
            None,
        )
        .await
    {
        Err(error) if error.code == ErrorCode::ResourceNotFound => Ok(()),
        other => other.map(|_| ()),
    }
}

/// Per-device rows of an assignment (`SMS_AppDeploymentAssetDetails`).
pub async fn asset_details(
    client: &AdminClient,
    assignment_id: i64,
) -> Result<Vec<Value>, ConnectorError> {
    let filter = format!("AssignmentID eq {assignment_id}");
    client
        .get_all(&filtered("SMS_AppDeploymentAssetDetails", &filter))
        .await
}

/// `NumberTargeted` of an assignment's summary (`SMS_DeploymentSummary`), when
/// the site has summarized it.
pub async fn summary_targeted(
    client: &AdminClient,
    assignment_id: i64,
) -> Result<Option<u32>, ConnectorError> {
    let filter = format!("AssignmentID eq {assignment_id}");
    let rows = client
        .get_all(&filtered("SMS_DeploymentSummary", &filter))
        .await?;
    Ok(rows
        .first()
        .and_then(|row| integer(row, "NumberTargeted"))
        .and_then(|count| u32::try_from(count).ok()))
}
