//! `wire`: the bodies the Jamf Pro connector sends and reads, as the
//! reference (`../shared/reference/execution-planes.md` section 2) shows
//! them: Classic API XML (policies, computer groups, computer history) through
//! `quick-xml`'s serde support, and the Jamf Pro API's JSON package record.
//!
//! Every Classic struct ignores elements it does not name (a real server sends
//! many more, and `<size>` in front of every list), and every list defaults to
//! empty, so a sparse answer still reads.

use crate::planes::PublishRequest;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// `package_configuration` action that installs a package.
pub const ACTION_INSTALL: &str = "Install";
/// The frequency of every ringmaster policy: Jamf runs it once on each
/// computer in scope; a log flush makes it run again.
pub const FREQUENCY: &str = "Once per computer";
/// Policy log status of a failed run (observed value, [U] enum; a successful
/// run logs `Completed`).
pub const LOG_FAILED: &str = "Failed";

/// A Classic API policy (`/JSSResource/policies`), the parts ringmaster uses.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename = "policy")]
pub struct Policy {
    pub general: General,
    #[serde(default)]
    pub scope: Scope,
    #[serde(default)]
    pub package_configuration: PackageConfiguration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files_processes: Option<FilesProcesses>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<Maintenance>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct General {
    /// Present in answers; never sent (the id is in the URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    pub name: String,
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub trigger_checkin: bool,
    #[serde(default)]
    pub frequency: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Scope {
    #[serde(default)]
    pub all_computers: bool,
    #[serde(default)]
    pub computer_groups: GroupList,
    #[serde(default)]
    pub exclusions: Exclusions,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Exclusions {
    #[serde(default)]
    pub computer_groups: GroupList,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GroupList {
    #[serde(rename = "computer_group", default)]
    pub groups: Vec<GroupRef>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GroupRef {
    pub id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PackageConfiguration {
    #[serde(default)]
    pub packages: PackageList,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PackageList {
    #[serde(rename = "package", default)]
    pub packages: Vec<PackageAction>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PackageAction {
    pub id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub action: String,
    #[serde(default)]
    pub fut: bool,
    #[serde(default)]
    pub feu: bool,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FilesProcesses {
    #[serde(default)]
    pub run_command: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Maintenance {
    #[serde(default)]
    pub recon: bool,
}

impl Policy {
    /// Group ids in scope, in order.
    pub fn scoped_groups(&self) -> Vec<u64> {
        self.scope
            .computer_groups
            .groups
            .iter()
            .map(|group| group.id)
            .collect()
    }

    pub fn excluded_groups(&self) -> Vec<u64> {
        self.scope
            .exclusions
            .computer_groups
            .groups
            .iter()
            .map(|group| group.id)
            .collect()
    }

    /// The package the policy installs, if it installs one.
    pub fn installed_package(&self) -> Option<u64> {
        self.package_configuration
            .packages
            .packages
            .iter()
            .find(|package| package.action == ACTION_INSTALL)
            .map(|package| package.id)
    }

    /// Whether the policy runs a command (ringmaster's uninstall policies).
    pub fn run_command(&self) -> Option<&str> {
        self.files_processes
            .as_ref()
            .map(|files| files.run_command.as_str())
            .filter(|command| !command.is_empty())
    }

    pub fn set_scope(&mut self, groups: &[u64], exclusions: &[u64]) {
        self.scope.computer_groups.groups = group_refs(groups);
        self.scope.exclusions.computer_groups.groups = group_refs(exclusions);
    }
}

fn group_refs(ids: &[u64]) -> Vec<GroupRef> {
    ids.iter()
        .map(|id| GroupRef {
            id: *id,
            name: None,
        })
        .collect()
}

/// An enabled, once-per-computer, check-in policy scoped to `groups` minus
/// `exclusions`, with inventory update after it runs.
fn policy(name: &str, groups: &[u64], exclusions: &[u64]) -> Policy {
    let mut policy = Policy {
        general: General {
            id: None,
            name: name.to_string(),
            enabled: true,
            trigger_checkin: true,
            frequency: FREQUENCY.to_string(),
        },
        maintenance: Some(Maintenance { recon: true }),
        ..Policy::default()
    };
    policy.set_scope(groups, exclusions);
    policy
}

/// A package configuration installing `package_id` and nothing else.
pub fn installing(package_id: u64) -> PackageConfiguration {
    PackageConfiguration {
        packages: PackageList {
            packages: vec![PackageAction {
                id: package_id,
                name: None,
                action: ACTION_INSTALL.to_string(),
                fut: false,
                feu: false,
            }],
        },
    }
}

/// The install policy of one ring: package `package_id`, action Install.
pub fn install_policy(name: &str, package_id: u64, groups: &[u64], exclusions: &[u64]) -> Policy {
    let mut policy = policy(name, groups, exclusions);
    policy.package_configuration = installing(package_id);
    policy
}

/// The uninstall policy: the artifact's uninstall command through
/// `files_processes/run_command` (the `Uninstall` package action is [U] for
/// modern packages, so it is not used).
pub fn uninstall_policy(name: &str, command: &str, groups: &[u64], exclusions: &[u64]) -> Policy {
    let mut policy = policy(name, groups, exclusions);
    policy.files_processes = Some(FilesProcesses {
        run_command: command.to_string(),
    });
    policy
}

pub fn to_xml<T: Serialize>(value: &T) -> Result<String, quick_xml::SeError> {
    quick_xml::se::to_string(value)
}

pub fn from_xml<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T, quick_xml::DeError> {
    quick_xml::de::from_str(text)
}

/// `GET /JSSResource/policies`: every policy's id and name (unpaged).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename = "policies")]
pub struct PolicyList {
    #[serde(default)]
    pub size: u32,
    #[serde(rename = "policy", default)]
    pub policies: Vec<PolicyRef>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PolicyRef {
    pub id: u64,
    pub name: String,
}

/// The answer to a Classic create: `<policy><id>123</id></policy>`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename = "policy")]
pub struct Created {
    pub id: u64,
}

/// `GET /JSSResource/computergroups/id/{id}`: static or smart, with the
/// members as Jamf evaluates them.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename = "computer_group")]
pub struct ComputerGroup {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub is_smart: bool,
    #[serde(default)]
    pub computers: ComputerList,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ComputerList {
    #[serde(default)]
    pub size: u32,
    #[serde(rename = "computer", default)]
    pub computers: Vec<ComputerRef>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ComputerRef {
    pub id: u64,
    #[serde(default)]
    pub name: String,
}

/// `GET /JSSResource/computerhistory/id/{id}/subset/PolicyLogs`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename = "computer_history")]
pub struct ComputerHistory {
    #[serde(default)]
    pub policy_logs: PolicyLogs,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PolicyLogs {
    #[serde(rename = "policy_log", default)]
    pub logs: Vec<PolicyLog>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PolicyLog {
    pub policy_id: u64,
    #[serde(default)]
    pub policy_name: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub date_time: String,
    /// Milliseconds since the epoch.
    #[serde(default)]
    pub date_time_epoch: i64,
    #[serde(default)]
    pub date_time_utc: String,
    pub status: String,
}

/// What ringmaster keeps in a package record's `info`, one `key: value` per
/// line: the deployment's ledger (`crate::planes::ledger`), how to detect the
/// installed app in inventory, the version it installs and the uninstall
/// command an uninstall policy runs. `notes` holds `corr:<id>` alone, so the
/// record is found with an exact RSQL filter.
///
/// `live: <ring>=<epoch seconds>,...` is when each ring's install policy was
/// first published: a computer that has not contacted Jamf since then cannot
/// have run it, so status reads no policy log for it (absent on packages made
/// before it existed: every computer that contacted Jamf is then read).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PackageInfo {
    pub ledger: String,
    pub detection_type: String,
    pub detection_value: String,
    pub version: String,
    pub uninstall: String,
    pub live: std::collections::BTreeMap<String, i64>,
}

impl PackageInfo {
    pub fn render(&self) -> String {
        let mut text = format!(
            "ledger: {}\ndetection: {} {}\nversion: {}\nuninstall: {}",
            self.ledger, self.detection_type, self.detection_value, self.version, self.uninstall
        );
        if !self.live.is_empty() {
            let rings: Vec<String> = self
                .live
                .iter()
                .map(|(ring, since)| format!("{ring}={since}"))
                .collect();
            text.push_str(&format!("\nlive: {}", rings.join(",")));
        }
        text
    }

    /// When `ring`'s install policy went live, if recorded.
    pub fn live_since(&self, ring: &str) -> Option<chrono::DateTime<chrono::Utc>> {
        let seconds = *self.live.get(ring)?;
        chrono::DateTime::from_timestamp(seconds, 0)
    }

    pub fn parse(info: &str) -> PackageInfo {
        let mut parsed = PackageInfo::default();
        for line in info.lines() {
            let Some((key, value)) = line.split_once(": ") else {
                continue;
            };
            match key {
                "ledger" => parsed.ledger = value.to_string(),
                "detection" => {
                    let (kind, what) = value.split_once(' ').unwrap_or((value, ""));
                    parsed.detection_type = kind.to_string();
                    parsed.detection_value = what.to_string();
                }
                "version" => parsed.version = value.to_string(),
                "uninstall" => parsed.uninstall = value.to_string(),
                "live" => {
                    for ring in value.split(',') {
                        if let Some((name, since)) = ring.split_once('=')
                            && let Ok(since) = since.parse::<i64>()
                        {
                            parsed.live.insert(name.to_string(), since);
                        }
                    }
                }
                _ => {}
            }
        }
        parsed
    }
}

/// The `notes` of a ringmaster package.
pub fn package_notes(correlation_id: &str) -> String {
    format!("corr:{correlation_id}")
}

/// `{application name} {version}`: the label every object of a deployment
/// starts with.
pub fn label(request: &PublishRequest) -> String {
    format!("{} {}", request.application_name, request.version)
}

/// The package name: unique per correlation id (Jamf refuses duplicates).
pub fn package_name(label: &str, correlation_id: &str) -> String {
    format!("{label} corr:{correlation_id}")
}

/// The install policy name of a ring.
pub fn ring_policy_name(label: &str, ring: &str, correlation_id: &str) -> String {
    format!("{label} [ring {ring}] corr:{correlation_id}")
}

/// The uninstall policy name.
pub fn uninstall_policy_name(label: &str, correlation_id: &str) -> String {
    format!("{label} [uninstall] corr:{correlation_id}")
}

/// What a policy of the deployment is for, read from its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyRole {
    Ring(String),
    Uninstall,
}

/// The role of a policy named by ringmaster for `correlation_id`.
pub fn policy_role(name: &str, correlation_id: &str) -> Option<PolicyRole> {
    let rest = name.strip_suffix(&format!("] corr:{correlation_id}"))?;
    let open = rest.rfind(" [")?;
    let marker = &rest[open + 2..];
    if marker == "uninstall" {
        return Some(PolicyRole::Uninstall);
    }
    marker
        .strip_prefix("ring ")
        .map(|ring| PolicyRole::Ring(ring.to_string()))
}

/// `POST /api/v1/packages` body: the fields Jamf's package record requires,
/// the artifact's SHA-256 in `sha256` (the record's `hashType` knows only MD5
/// and SHA_512), the correlation note and the info lines.
pub fn package_body(request: &PublishRequest, name: &str, info: &PackageInfo) -> Value {
    let hash = request
        .artifact
        .sha256
        .strip_prefix("sha256:")
        .unwrap_or_default();
    json!({
        "packageName": name,
        "fileName": request.artifact.file,
        "categoryId": "-1",
        "priority": 10,
        "fillUserTemplate": false,
        "rebootRequired": false,
        "osInstall": false,
        "suppressUpdates": false,
        "suppressFromDock": false,
        "suppressEula": false,
        "suppressRegistration": false,
        "sha256": hash,
        "notes": package_notes(&request.correlation_id),
        "info": info.render(),
    })
}
