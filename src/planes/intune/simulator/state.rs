//! `state`: what the simulated tenant holds (apps with their content, assignments,
//! relationships and device rows; groups of devices; tokens) and the faults
//! waiting for the next requests. Plain data behind one mutex; the routes and
//! the test controls both change it.

use crate::planes::Secret;
use crate::planes::simulators::kit::{Fault, Faults, Tokens};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Names the simulator's generated ids (apps, files, devices, tokens).
const SIMULATOR_NAMESPACE: Uuid = Uuid::from_u128(0x6f1d_2c3b_4a59_4e8f_9b7a_1c2d_3e4f_5a6b);

/// Which request loses its answer after it was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LostRequest {
    /// `POST mobileApps`.
    AppCreation,
    /// `POST mobileApps/{id}/assign`.
    Assign,
}

/// A failure of the next Graph request(s), as a test or a user asks for it.
/// (Graph answers a 429 `TooManyRequests` in its error body; a rejection
/// carries Graph's error body.)
pub type SimulatorFault = Fault<LostRequest>;

/// One content file of a content version, and its upload state machine.
#[derive(Debug, Clone)]
pub struct ContentFile {
    pub id: String,
    pub name: String,
    pub size: u64,
    pub size_encrypted: u64,
    pub upload_state: String,
    /// The SAS signature of its upload URL: the only credential blob PUTs carry.
    pub signature: String,
    pub blocks: BTreeMap<String, Vec<u8>>,
    pub content: Option<Vec<u8>>,
    pub encryption_info: Option<Value>,
}

#[derive(Debug, Clone)]
pub struct ContentVersion {
    pub id: String,
    pub files: Vec<ContentFile>,
}

/// One mobileApp.
#[derive(Debug, Clone)]
pub struct SimApp {
    pub id: String,
    /// Every property as Graph would return it (`@odata.type`, `notes`, ...).
    pub properties: Map<String, Value>,
    pub content_versions: Vec<ContentVersion>,
    pub assignments: Vec<Value>,
    /// Apps this one supersedes: (target app id, `update` or `replace`).
    pub supersedes: Vec<(String, String)>,
    /// `mobileAppInstallStatus` rows per device id.
    pub device_statuses: BTreeMap<String, Value>,
}

impl SimApp {
    pub fn text(&self, property: &str) -> &str {
        self.properties
            .get(property)
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// Whether the notes carry `corr:<correlation_id>`.
    pub fn has_correlation(&self, correlation_id: &str) -> bool {
        self.text("notes")
            .split(';')
            .any(|part| part.strip_prefix("corr:") == Some(correlation_id))
    }

    pub fn is_published(&self) -> bool {
        self.text("publishingState") == "published"
    }

    pub fn display_version(&self) -> String {
        self.text("displayVersion").to_string()
    }

    /// The Graph representation.
    pub fn to_json(&self) -> Value {
        Value::Object(self.properties.clone())
    }
}

/// A device in a group.
///
/// A real device has three ids: its Entra directory object id (a group
/// member's `id`), its Entra device id (the member's `deviceId`, the
/// managed device's `azureADDeviceId`) and its Intune managed device id (the
/// managed device's `id`, the `DeviceId` column of Intune's reports). `id` is
/// the Entra device id; the other two derive from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimDevice {
    pub id: String,
    pub name: String,
    /// Derived from `id` once, when the device is made: every list of
    /// members or managed devices names them.
    object_id: String,
    managed_id: String,
}

impl SimDevice {
    pub fn new(id: String, name: String) -> SimDevice {
        SimDevice {
            object_id: Uuid::new_v5(&SIMULATOR_NAMESPACE, format!("object/{id}").as_bytes())
                .to_string(),
            managed_id: managed_id_of(&id),
            id,
            name,
        }
    }

    /// The Entra directory object id (a group member's `id`).
    pub fn object_id(&self) -> String {
        self.object_id.clone()
    }

    /// The Intune managed device id (`managedDevice.id`, a report's `DeviceId`).
    pub fn managed_id(&self) -> String {
        self.managed_id.clone()
    }
}

/// The Intune managed device id of the device whose Entra device id is `id`.
pub fn managed_id_of(id: &str) -> String {
    Uuid::new_v5(&SIMULATOR_NAMESPACE, format!("managed/{id}").as_bytes()).to_string()
}

/// The whole simulated tenant.
pub struct GraphState {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub page_size: usize,
    pub token_lifetime_seconds: u64,
    pub apps: Vec<SimApp>,
    pub groups: BTreeMap<String, Vec<SimDevice>>,
    /// Every device of every group once, indexed by its ids; built when a
    /// request first needs it after the groups changed (`device_index`).
    index: Option<DeviceIndex>,
    /// Issued bearer tokens, revoked credentials, token requests.
    pub tokens: Tokens,
    /// The faults waiting for the next requests, and the request count.
    pub faults: Faults<LostRequest>,
    next_id: u64,
}

impl GraphState {
    pub fn new(
        tenant_id: &str,
        client_id: &str,
        client_secret: Secret,
        page_size: usize,
    ) -> GraphState {
        GraphState {
            tenant_id: tenant_id.into(),
            client_id: client_id.into(),
            client_secret,
            page_size: page_size.max(1),
            token_lifetime_seconds: 3599,
            apps: Vec::new(),
            groups: BTreeMap::new(),
            index: None,
            tokens: Tokens::default(),
            faults: Faults::default(),
            next_id: 0,
        }
    }

    /// A fresh GUID, deterministic in the order ids are asked for.
    pub fn new_id(&mut self, kind: &str) -> String {
        self.next_id += 1;
        Uuid::new_v5(
            &SIMULATOR_NAMESPACE,
            format!("{kind}/{}", self.next_id).as_bytes(),
        )
        .to_string()
    }

    /// A fresh opaque secret-like string (tokens, SAS signatures).
    pub fn new_opaque(&mut self, kind: &str) -> String {
        let first = self.new_id(kind);
        let second = Uuid::new_v4();
        format!("{}{}", first.replace('-', ""), second.simple())
    }

    pub fn add_group(&mut self, group_id: &str, device_count: u32) {
        let prefix: String = group_id.chars().take(8).collect();
        let devices = (0..device_count)
            .map(|number| {
                SimDevice::new(
                    Uuid::new_v5(
                        &SIMULATOR_NAMESPACE,
                        format!("device/{group_id}/{number}").as_bytes(),
                    )
                    .to_string(),
                    format!("DEV-{prefix}-{number:04}"),
                )
            })
            .collect();
        self.groups.insert(group_id.to_string(), devices);
        self.index = None;
    }

    /// Every device once (the managed devices of the tenant), with lookups
    /// by managed id and by Entra device id: a request pays its page, not
    /// the fleet.
    pub fn device_index(&mut self) -> &DeviceIndex {
        let groups = &self.groups;
        self.index.get_or_insert_with(|| {
            let mut index = DeviceIndex::default();
            for device in groups.values().flatten() {
                if index.by_entra.contains_key(&device.id) {
                    continue;
                }
                let position = index.devices.len();
                index.by_entra.insert(device.id.clone(), position);
                index.by_managed.insert(device.managed_id.clone(), position);
                index.devices.push(device.clone());
            }
            index
        })
    }

    pub fn app(&self, id: &str) -> Option<&SimApp> {
        self.apps.iter().find(|app| app.id == id)
    }

    pub fn app_mut(&mut self, id: &str) -> Option<&mut SimApp> {
        self.apps.iter_mut().find(|app| app.id == id)
    }

    pub fn apps_of(&self, correlation_id: &str) -> impl Iterator<Item = &SimApp> {
        self.apps
            .iter()
            .filter(move |app| app.has_correlation(correlation_id))
    }

    /// Creates an app from a `POST mobileApps` body: server-set fields added.
    pub fn create_app(&mut self, body: Map<String, Value>, now_text: &str) -> &SimApp {
        let id = self.new_id("app");
        let mut properties = body;
        properties.insert("id".into(), json!(id));
        properties.insert("createdDateTime".into(), json!(now_text));
        properties.insert("lastModifiedDateTime".into(), json!(now_text));
        properties.insert("uploadState".into(), json!(0));
        properties.insert("publishingState".into(), json!("notPublished"));
        properties.insert("isAssigned".into(), json!(false));
        properties.insert("committedContentVersion".into(), Value::Null);
        properties.entry("notes").or_insert(Value::Null);
        self.apps.push(SimApp {
            id,
            properties,
            content_versions: Vec::new(),
            assignments: Vec::new(),
            supersedes: Vec::new(),
            device_statuses: BTreeMap::new(),
        });
        self.apps.last().expect("just pushed")
    }

    /// The devices an app's assignments install to: included groups with an
    /// install intent, minus the members of excluded groups.
    pub fn targeted_devices(&self, app: &SimApp) -> Vec<SimDevice> {
        let excluded: std::collections::HashSet<&str> = app
            .assignments
            .iter()
            .filter_map(|assignment| group_target(assignment).filter(|(_, excluded)| *excluded))
            .flat_map(|(group, _)| self.groups.get(group).into_iter().flatten())
            .map(|device| device.id.as_str())
            .collect();
        let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
        let mut devices: Vec<SimDevice> = Vec::new();
        for assignment in &app.assignments {
            let intent = assignment
                .get("intent")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let Some((group, false)) = group_target(assignment) else {
                continue;
            };
            if !matches!(intent, "required" | "available") {
                continue;
            }
            for device in self.groups.get(group).into_iter().flatten() {
                if !excluded.contains(device.id.as_str()) && seen.insert(device.id.as_str()) {
                    devices.push(device.clone());
                }
            }
        }
        devices
    }
}

/// Every device of the tenant once, in a stable order, by its ids.
#[derive(Debug, Default)]
pub struct DeviceIndex {
    pub devices: Vec<SimDevice>,
    by_managed: std::collections::HashMap<String, usize>,
    by_entra: std::collections::HashMap<String, usize>,
}

impl DeviceIndex {
    pub fn by_managed_id(&self, id: &str) -> Option<&SimDevice> {
        self.by_managed
            .get(id)
            .map(|position| &self.devices[*position])
    }

    pub fn by_entra_id(&self, id: &str) -> Option<&SimDevice> {
        self.by_entra
            .get(id)
            .map(|position| &self.devices[*position])
    }
}

/// The group an assignment targets, and whether it is an exclusion.
pub fn group_target(assignment: &Value) -> Option<(&str, bool)> {
    let target = assignment.get("target")?;
    let group = target.get("groupId")?.as_str()?;
    match target.get("@odata.type")?.as_str()? {
        "#microsoft.graph.groupAssignmentTarget" => Some((group, false)),
        "#microsoft.graph.exclusionGroupAssignmentTarget" => Some((group, true)),
        _ => None,
    }
}

/// A `mobileAppInstallStatus` row.
pub fn status_row(
    device: &SimDevice,
    install_state: &str,
    detail: &str,
    error_code: i64,
    display_version: &str,
    at_text: &str,
) -> Value {
    json!({
        "id": format!("{}_status", device.id),
        "deviceId": device.id,
        "deviceName": device.name,
        "lastSyncDateTime": at_text,
        "installState": install_state,
        "mobileAppInstallStatusValue": install_state,
        "installStateDetail": detail,
        "errorCode": error_code,
        "osVersion": "10.0.22631.4460",
        "osDescription": "Windows 11 Enterprise",
        "userName": null,
        "userPrincipalName": null,
        "displayVersion": display_version,
    })
}
