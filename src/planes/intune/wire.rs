//! `wire`: the Graph JSON the connector sends and reads: the `win32LobApp` and
//! `macOSPkgApp` bodies (fields from the Graph resource docs), assignments and
//! their targets, the supersedence relationship.
//!
//! Assignments are handled as the JSON Graph returns, so that `/assign`, which
//! replaces the whole list, sends back everything the app had (filters and
//! settings included) plus what ringmaster adds.

use crate::planes::ledger::Ledger;
use crate::planes::{ConnectorError, ErrorCode, PublishRequest};
use serde_json::{Value, json};

pub const GROUP_TARGET: &str = "#microsoft.graph.groupAssignmentTarget";
pub const EXCLUSION_TARGET: &str = "#microsoft.graph.exclusionGroupAssignmentTarget";
pub const ASSIGNMENT_TYPE: &str = "#microsoft.graph.mobileAppAssignment";
pub const SUPERSEDENCE_TYPE: &str = "#microsoft.graph.mobileAppSupersedence";

/// The mobileApp subtype an artifact becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppKind {
    /// Windows: the artifact is the content prepared for Intune (`.intunewin`).
    Win32,
    /// macOS: a flat `.pkg`.
    MacPkg,
}

impl AppKind {
    pub fn of_file(file: &str) -> AppKind {
        if file.to_ascii_lowercase().ends_with(".pkg") {
            AppKind::MacPkg
        } else {
            AppKind::Win32
        }
    }

    /// The Graph type name, also the cast segment of content upload paths.
    pub fn type_name(self) -> &'static str {
        match self {
            AppKind::Win32 => "microsoft.graph.win32LobApp",
            AppKind::MacPkg => "microsoft.graph.macOSPkgApp",
        }
    }

    pub fn odata_type(self) -> String {
        format!("#{}", self.type_name())
    }

    pub fn settings_type(self) -> Option<&'static str> {
        match self {
            AppKind::Win32 => Some("#microsoft.graph.win32LobAppAssignmentSettings"),
            AppKind::MacPkg => None,
        }
    }
}

fn invalid(message: String) -> ConnectorError {
    ConnectorError::new(ErrorCode::InvalidRequest, message)
}

/// The display name ringmaster gives an app version; also the lookup filter.
pub fn display_name(request: &PublishRequest) -> String {
    format!("{} {}", request.application_name, request.version)
}

/// The file inside the Win32 content that setup runs: the MSI after `/i`, else
/// the first word of the install command.
fn setup_file(install: &str) -> String {
    let words: Vec<&str> = install.split_whitespace().collect();
    let first = words.first().copied().unwrap_or_default();
    let chosen =
        if first.eq_ignore_ascii_case("msiexec") || first.eq_ignore_ascii_case("msiexec.exe") {
            words
                .iter()
                .position(|word| word.eq_ignore_ascii_case("/i"))
                .and_then(|index| words.get(index + 1))
                .copied()
                .unwrap_or(first)
        } else {
            first
        };
    chosen.trim_matches('"').to_string()
}

fn detection_rule(request: &PublishRequest) -> Result<Value, ConnectorError> {
    let artifact = &request.artifact;
    let value = artifact.detection_value.as_str();
    match artifact.detection_type.as_str() {
        "msi_product_code" => Ok(json!({
            "@odata.type": "#microsoft.graph.win32LobAppProductCodeRule",
            "ruleType": "detection",
            "productCode": value,
            "productVersionOperator": "notConfigured",
        })),
        "file" => {
            let (path, name) = value.rsplit_once(['\\', '/']).ok_or_else(|| {
                invalid(format!(
                    "artifact {} detection file {value:?} needs a folder and a file name",
                    artifact.id
                ))
            })?;
            Ok(json!({
                "@odata.type": "#microsoft.graph.win32LobAppFileSystemRule",
                "ruleType": "detection",
                "path": path,
                "fileOrFolderName": name,
                "check32BitOn64System": false,
                "operationType": "exists",
                "operator": "notConfigured",
            }))
        }
        "registry" => Ok(json!({
            "@odata.type": "#microsoft.graph.win32LobAppRegistryRule",
            "ruleType": "detection",
            "keyPath": value,
            "check32BitOn64System": false,
            "operationType": "exists",
            "operator": "notConfigured",
        })),
        "script" => Ok(json!({
            "@odata.type": "#microsoft.graph.win32LobAppPowerShellScriptRule",
            "ruleType": "detection",
            "scriptContent": super::upload::base64(value.as_bytes()),
            "enforceSignatureCheck": false,
            "runAs32Bit": false,
            "operationType": "notConfigured",
        })),
        other => Err(invalid(format!(
            "artifact {} has detection type {other:?}; a win32LobApp detects by msi_product_code, file, registry or script",
            artifact.id
        ))),
    }
}

/// The `POST mobileApps` body for a request, notes carrying its ledger.
pub fn app_body(request: &PublishRequest, ledger: &Ledger) -> Result<Value, ConnectorError> {
    let artifact = &request.artifact;
    let kind = AppKind::of_file(&artifact.file);
    let mut body = json!({
        "@odata.type": kind.odata_type(),
        "displayName": display_name(request),
        "publisher": request.application_name,
        "description": format!(
            "{} {} deployed by ringmaster for intent {}",
            request.application_name, request.version, request.intent_id
        ),
        "notes": ledger.render(),
        "fileName": artifact.file,
    });
    // `displayVersion` is declared on win32LobApp only; macOSPkgApp carries
    // its version in primaryBundleVersion and includedApps (Graph's
    // description), and OData refuses an undeclared property.
    let fields = match kind {
        AppKind::Win32 => json!({
            "displayVersion": request.version,
            "setupFilePath": setup_file(&artifact.install),
            "installCommandLine": artifact.install,
            "uninstallCommandLine": artifact.uninstall,
            "installExperience": {"runAsAccount": "system", "deviceRestartBehavior": "suppress"},
            "returnCodes": [
                {"returnCode": 0, "type": "success"},
                {"returnCode": 1707, "type": "success"},
                {"returnCode": 3010, "type": "softReboot"},
                {"returnCode": 1641, "type": "hardReboot"},
                {"returnCode": 1618, "type": "retry"},
            ],
            "rules": [detection_rule(request)?],
        }),
        AppKind::MacPkg => {
            if !matches!(artifact.detection_type.as_str(), "bundle_id" | "package") {
                return Err(invalid(format!(
                    "artifact {} is a .pkg detected by {:?}; a macOSPkgApp needs a bundle_id",
                    artifact.id, artifact.detection_type
                )));
            }
            json!({
                "primaryBundleId": artifact.detection_value,
                "primaryBundleVersion": request.version,
                "includedApps": [{"bundleId": artifact.detection_value, "bundleVersion": request.version}],
                "ignoreVersionDetection": false,
                "minimumSupportedOperatingSystem": {"v11_0": true},
            })
        }
    };
    if let (Value::Object(target), Value::Object(extra)) = (&mut body, fields) {
        target.extend(extra);
    }
    Ok(body)
}

/// The group an assignment targets and whether it is an exclusion.
pub fn target_group(assignment: &Value) -> Option<(&str, bool)> {
    let target = assignment.get("target")?;
    let group = target.get("groupId")?.as_str()?;
    match target.get("@odata.type")?.as_str()? {
        GROUP_TARGET => Some((group, false)),
        EXCLUSION_TARGET => Some((group, true)),
        _ => None,
    }
}

pub fn intent_of(assignment: &Value) -> &str {
    assignment
        .get("intent")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// An included group with an install intent (required or available).
pub fn install_group(assignment: &Value) -> Option<&str> {
    match target_group(assignment) {
        Some((group, false)) if matches!(intent_of(assignment), "required" | "available") => {
            Some(group)
        }
        _ => None,
    }
}

/// Every included group the app is assigned to for install, sorted, once each.
pub fn install_groups(assignments: &[Value]) -> Vec<String> {
    let mut groups: Vec<String> = assignments
        .iter()
        .filter_map(install_group)
        .map(str::to_string)
        .collect();
    groups.sort();
    groups.dedup();
    groups
}

/// Every group excluded from the app.
pub fn excluded_groups(assignments: &[Value]) -> Vec<String> {
    assignments
        .iter()
        .filter_map(target_group)
        .filter(|(_, excluded)| *excluded)
        .map(|(group, _)| group.to_string())
        .collect()
}

/// A new assignment of `group` with `intent` (an exclusion when `excluded`).
pub fn assignment(kind: AppKind, intent: &str, group: &str, excluded: bool) -> Value {
    let target_type = if excluded {
        EXCLUSION_TARGET
    } else {
        GROUP_TARGET
    };
    let mut assignment = json!({
        "@odata.type": ASSIGNMENT_TYPE,
        "intent": intent,
        "target": {"@odata.type": target_type, "groupId": group},
    });
    if let (Some(settings), false) = (kind.settings_type(), excluded) {
        assignment["settings"] = json!({"@odata.type": settings, "notifications": "showAll"});
    }
    assignment
}

/// An assignment as read, made fit to send back in an `/assign` body.
pub fn resendable(assignment: &Value) -> Value {
    let mut copy = assignment.clone();
    if let Value::Object(fields) = &mut copy {
        fields.remove("id");
        fields.insert("@odata.type".into(), Value::String(ASSIGNMENT_TYPE.into()));
    }
    copy
}

/// The `/assign` body for a full list.
pub fn assign_body(assignments: &[Value]) -> Value {
    json!({"mobileAppAssignments": assignments.iter().map(resendable).collect::<Vec<_>>()})
}
