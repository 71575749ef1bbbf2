//! `wire`: the AdminService JSON and XML the Configuration Manager connector
//! sends: the application's `SDMPackageXML` (an `AppMgmtDigest` with one
//! script deployment type holding the install and uninstall command lines and
//! the detection method), ring collections with include and exclude
//! membership rules, and `SMS_ApplicationAssignment` with its documented enums.

use crate::planes::{ConnectorError, ErrorCode, PublishRequest};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

/// `SMS_ApplicationAssignment.DesiredConfigType`: 1 REQUIRED (install).
pub const DESIRED_INSTALL: i64 = 1;
/// `SMS_ApplicationAssignment.DesiredConfigType`: 2 NOT_ALLOWED (uninstall).
pub const DESIRED_UNINSTALL: i64 = 2;
/// `OfferTypeID`: 0 REQUIRED (2 would be AVAILABLE).
pub const OFFER_REQUIRED: i64 = 0;
/// `AssignmentAction`: 2 APPLY (1 would only DETECT).
pub const ACTION_APPLY: i64 = 2;
/// `AssignmentType`: 2 application.
pub const TYPE_APPLICATION: i64 = 2;
/// `Priority`: 1 MEDIUM.
pub const PRIORITY_MEDIUM: i64 = 1;
/// `CollectionType`: 2 device collection.
pub const DEVICE_COLLECTION: i64 = 2;

pub const INCLUDE_RULE: &str = "#AdminService.SMS_CollectionRuleIncludeCollection";
pub const EXCLUDE_RULE: &str = "#AdminService.SMS_CollectionRuleExcludeCollection";

/// `EnforcementState` 10: installed.
pub const ENFORCEMENT_INSTALLED: i64 = 10;

/// Whether an `EnforcementState` is a failure (6 general failure, 11 failed to
/// install, 14 download failed).
pub fn is_failure(enforcement_state: i64) -> bool {
    matches!(enforcement_state, 6 | 11 | 14)
}

/// The stable failure key of an `EnforcementState`.
pub fn failure_reason(enforcement_state: i64) -> &'static str {
    match enforcement_state {
        6 => "general_failure",
        11 => "install_failed",
        14 => "download_failed",
        _ => "unknown_failure",
    }
}

/// The display name of an application version; also its lookup filter.
pub fn display_name(request: &PublishRequest) -> String {
    format!("{} {}", request.application_name, request.version)
}

/// The name of a deployment's ring collection: unique per correlation id and ring.
pub fn collection_name(correlation_id: &str, ring: &str) -> String {
    format!("{} {ring}", collection_prefix(correlation_id))
}

/// What every ring collection of a deployment's name starts with.
pub fn collection_prefix(correlation_id: &str) -> String {
    format!("ringmaster {correlation_id}")
}

/// Escapes text for an XML element or attribute.
pub fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

fn detect_action(request: &PublishRequest) -> Result<String, ConnectorError> {
    let artifact = &request.artifact;
    let value = xml_escape(&artifact.detection_value);
    let script = |body: String| {
        format!(
            "<DetectAction><Provider>Script</Provider><Args><Arg Name=\"ExecutionContext\" Type=\"String\">System</Arg>\
             <Arg Name=\"ScriptType\" Type=\"Int32\">0</Arg><Arg Name=\"ScriptBody\" Type=\"String\">{}</Arg></Args></DetectAction>",
            xml_escape(&body)
        )
    };
    match artifact.detection_type.as_str() {
        "msi_product_code" => Ok(format!(
            "<DetectAction><Provider>MSI</Provider><Args><Arg Name=\"ProductCode\" Type=\"String\">{value}</Arg></Args></DetectAction>"
        )),
        "file" | "registry" => Ok(script(format!(
            "if (Test-Path -LiteralPath '{}') {{ Write-Output 'Installed' }}",
            artifact.detection_value.replace('\'', "''")
        ))),
        "script" => Ok(script(artifact.detection_value.clone())),
        other => Err(ConnectorError::new(
            ErrorCode::InvalidRequest,
            format!(
                "artifact {} has detection type {other:?}; a Configuration Manager deployment type detects by msi_product_code, file, registry or script",
                artifact.id
            ),
        )),
    }
}

/// The `SDMPackageXML` of a new application: its title and version, the
/// correlation note as its description, one script deployment type whose
/// content lies in `content_location`.
pub fn sdm_package_xml(
    request: &PublishRequest,
    description: &str,
    content_location: &str,
) -> Result<String, ConnectorError> {
    let artifact = &request.artifact;
    let scope = "ScopeId_RINGMASTER";
    let id = |kind: &str| {
        let key = format!("{kind}/{}/{}", request.correlation_id, request.version);
        format!(
            "{kind}_{}",
            uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, key.as_bytes())
        )
    };
    let (application, deployment_type, content) =
        (id("Application"), id("DeploymentType"), id("Content"));
    let title = xml_escape(&display_name(request));
    let publisher = xml_escape(&request.application_name);
    let version = xml_escape(&request.version);
    let description = xml_escape(description);
    let location = xml_escape(&format!(
        "{}\\{}\\{}\\",
        content_location.trim_end_matches('\\'),
        request.application_id,
        request.version
    ));
    let file = xml_escape(&artifact.file);
    let install = xml_escape(&artifact.install);
    let uninstall = xml_escape(&artifact.uninstall);
    let detect = detect_action(request)?;
    Ok(format!(
        "<?xml version=\"1.0\" encoding=\"utf-16\"?>\
<AppMgmtDigest xmlns=\"http://schemas.microsoft.com/SystemCenterConfigurationManager/2009/AppMgmtDigest\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\
<Application AuthoringScopeId=\"{scope}\" LogicalName=\"{application}\" Version=\"1\">\
<DisplayInfo DefaultLanguage=\"en-US\"><Info Language=\"en-US\"><Title>{title}</Title><Description>{description}</Description><Publisher>{publisher}</Publisher><Version>{version}</Version></Info></DisplayInfo>\
<DeploymentTypes><DeploymentType AuthoringScopeId=\"{scope}\" LogicalName=\"{deployment_type}\" Version=\"1\"/></DeploymentTypes>\
<Title ResourceId=\"Res_Title\">{title}</Title><Description ResourceId=\"Res_Description\">{description}</Description>\
<Publisher ResourceId=\"Res_Publisher\">{publisher}</Publisher><SoftwareVersion ResourceId=\"Res_Version\">{version}</SoftwareVersion>\
</Application>\
<DeploymentType AuthoringScopeId=\"{scope}\" LogicalName=\"{deployment_type}\" Version=\"1\">\
<Title ResourceId=\"Res_DT\">{title} (script)</Title><DeploymentTechnology>GLOBAL/ScriptDeploymentTechnology</DeploymentTechnology>\
<Technology>Script</Technology><Hosting>Native</Hosting>\
<Installer Technology=\"Script\"><ExecutionContext>System</ExecutionContext>\
<Contents><Content ContentId=\"{content}\" Version=\"1\"><File Name=\"{file}\"/><Location>{location}</Location><PeerCache>true</PeerCache><OnFastNetwork>Download</OnFastNetwork><OnSlowNetwork>DoNothing</OnSlowNetwork></Content></Contents>\
{detect}\
<InstallAction><Provider>Script</Provider><Args><Arg Name=\"InstallCommandLine\" Type=\"String\">{install}</Arg><Arg Name=\"ExecutionContext\" Type=\"String\">System</Arg><Arg Name=\"RequiresLogOn\" Type=\"String\"/><Arg Name=\"RequiresElevatedRights\" Type=\"Boolean\">false</Arg><Arg Name=\"RequiresUserInteraction\" Type=\"Boolean\">false</Arg><Arg Name=\"RequiresReboot\" Type=\"Boolean\">false</Arg><Arg Name=\"UserInteractionMode\" Type=\"String\">Hidden</Arg><Arg Name=\"PostInstallBehavior\" Type=\"String\">BasedOnExitCode</Arg><Arg Name=\"ExecuteTime\" Type=\"Int32\">0</Arg><Arg Name=\"MaxExecuteTime\" Type=\"Int32\">120</Arg><Arg Name=\"RunAs32Bit\" Type=\"Boolean\">false</Arg><Arg Name=\"SuccessExitCodes\" Type=\"Int32[]\"><Item>0</Item><Item>1707</Item></Arg><Arg Name=\"RebootExitCodes\" Type=\"Int32[]\"><Item>3010</Item></Arg><Arg Name=\"HardRebootExitCodes\" Type=\"Int32[]\"><Item>1641</Item></Arg><Arg Name=\"FastRetryExitCodes\" Type=\"Int32[]\"><Item>1618</Item></Arg></Args></InstallAction>\
<UninstallAction><Provider>Script</Provider><Args><Arg Name=\"InstallCommandLine\" Type=\"String\">{uninstall}</Arg><Arg Name=\"ExecutionContext\" Type=\"String\">System</Arg><Arg Name=\"UserInteractionMode\" Type=\"String\">Hidden</Arg><Arg Name=\"MaxExecuteTime\" Type=\"Int32\">120</Arg></Args></UninstallAction>\
</Installer></DeploymentType></AppMgmtDigest>"
    ))
}

/// `SMS_Collection.RefreshType` 6: incremental updates (the collection
/// follows changes of the collections it includes as they happen) and a
/// periodic full evaluation on `RefreshSchedule` (Microsoft's class docs:
/// 1 manual, 2 periodic, 4 incremental, 6 both; periodic needs a schedule).
pub const REFRESH_PERIODIC_AND_INCREMENTAL: i64 = 6;

/// A new ring collection limited to `limiting_collection_id`: refreshed
/// incrementally and evaluated in full once a day (an `SMS_ST_RecurInterval`
/// schedule token), so it follows its include and exclude rules.
pub fn collection_body(name: &str, comment: &str, limiting_collection_id: &str) -> Value {
    json!({
        "Name": name,
        "LimitToCollectionID": limiting_collection_id,
        "CollectionType": DEVICE_COLLECTION,
        "Comment": comment,
        "RefreshType": REFRESH_PERIODIC_AND_INCREMENTAL,
        "RefreshSchedule": [{
            "@odata.type": "#AdminService.SMS_ST_RecurInterval",
            "DayDuration": 0,
            "DaySpan": 1,
            "HourDuration": 0,
            "HourSpan": 0,
            "IsGMT": true,
            "MinuteDuration": 0,
            "MinuteSpan": 0,
            "StartTime": "2020-01-01T00:00:00Z",
        }],
    })
}

/// An include or exclude membership rule on another collection.
pub fn membership_rule(collection_id: &str, exclude: bool) -> Value {
    if exclude {
        json!({"collectionRule": {"@odata.type": EXCLUDE_RULE, "RuleName": collection_id, "ExcludeCollectionID": collection_id}})
    } else {
        json!({"collectionRule": {"@odata.type": INCLUDE_RULE, "RuleName": collection_id, "IncludeCollectionID": collection_id}})
    }
}

/// The application an assignment deploys, as the AdminService returned it.
pub struct AssignedApplication<'a> {
    pub ci_id: i64,
    pub model_id: i64,
    pub name: &'a str,
}

/// An `SMS_ApplicationAssignment` body: a required deployment that installs
/// (`DesiredConfigType` 1) or uninstalls (2) the application on a collection.
pub fn assignment_body(
    application: &AssignedApplication<'_>,
    collection_id: &str,
    collection_name: &str,
    description: &str,
    desired_config_type: i64,
    start: DateTime<Utc>,
) -> Value {
    let action = if desired_config_type == DESIRED_UNINSTALL {
        "Uninstall"
    } else {
        "Install"
    };
    let start = start.to_rfc3339_opts(SecondsFormat::Secs, true);
    json!({
        "ApplicationName": application.name,
        "AssignmentName": format!("{}_{collection_name}_{action}", application.name),
        "AssignmentDescription": description,
        "AssignedCIs": [application.ci_id],
        "AppModelID": application.model_id,
        "TargetCollectionID": collection_id,
        "CollectionName": collection_name,
        "AssignmentAction": ACTION_APPLY,
        "AssignmentType": TYPE_APPLICATION,
        "DesiredConfigType": desired_config_type,
        "OfferTypeID": OFFER_REQUIRED,
        "OfferFlags": 0,
        "Priority": PRIORITY_MEDIUM,
        "Enabled": true,
        "NotifyUser": false,
        "UserUIExperience": false,
        "StartTime": start,
        "EnforcementDeadline": start,
        "UseGMTTimes": true,
        "OverrideServiceWindows": false,
        "SuppressReboot": 0,
        "DPLocality": 80,
        "WoLEnabled": false,
        "LogComplianceToWinEvent": false,
        "DisableMomAlerts": true,
    })
}

/// The assignment's `AssignmentDescription`: whose it is and why.
pub fn assignment_description(correlation_id: &str, ring: &str, purpose: &str) -> String {
    format!("corr:{correlation_id};ring:{ring};{purpose}")
}

pub fn integer(value: &Value, field: &str) -> Option<i64> {
    value.get(field).and_then(Value::as_i64)
}

pub fn text<'a>(value: &'a Value, field: &str) -> &'a str {
    value.get(field).and_then(Value::as_str).unwrap_or_default()
}
