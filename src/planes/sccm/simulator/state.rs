//! `state`: what the simulated site holds (applications, collections with
//! their rules and members, deployments, per-device deployment status,
//! devices) and the faults waiting for the next requests, behind one mutex.

use crate::planes::Secret;
use crate::planes::simulators::kit::{Fault, Faults, Tokens};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// How lists are paged ([U] in the reference: server-driven nextLink on the
/// WMI route is unconfirmed, so both are simulated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paging {
    /// Pages of at most `page_size`, each with an `@odata.nextLink` to the rest.
    NextLink,
    /// `$top` (capped at `page_size`) and `$skip` only, never a nextLink.
    SkipTop,
}

/// Which request loses its answer after it was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LostRequest {
    /// `POST wmi/SMS_Application`.
    ApplicationCreation,
    /// `POST wmi/SMS_ApplicationAssignment`.
    AssignmentCreation,
}

/// A failure of the next request(s).
/// (No throttling is documented for the AdminService; a proxy or gateway in
/// front of it may throttle. A 500 of a storm carries a WMI error text.)
pub type SimulatorFault = Fault<LostRequest>;

#[derive(Debug, Clone)]
pub struct SimApplication {
    pub ci_id: i64,
    pub model_id: i64,
    pub properties: Value,
    pub xml: String,
}

#[derive(Debug, Clone)]
pub struct SimCollection {
    pub properties: Value,
    /// Membership rules (`CollectionRules`, a lazy property).
    pub rules: Vec<Value>,
    /// Members of a collection the site built otherwise (the entitlement's
    /// collections): resource ids.
    pub direct_members: Option<Vec<i64>>,
}

/// Whether a collection re-evaluates its rules (SMS_Collection.RefreshType:
/// 1 manual, 2 periodic, 4 incremental, 6 periodic and incremental; periodic
/// needs a RefreshSchedule).
pub fn refreshes(properties: &Value) -> bool {
    let scheduled = properties
        .get("RefreshSchedule")
        .and_then(Value::as_array)
        .is_some_and(|schedule| !schedule.is_empty());
    match properties.get("RefreshType").and_then(Value::as_i64) {
        Some(4 | 6) => true,
        Some(2) => scheduled,
        _ => false,
    }
}

/// The whole simulated site.
pub struct SiteState {
    pub site_code: String,
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// Tokens issued by the token endpoint or installed by a test; false once expired.
    /// Issued bearer tokens, revoked credentials, token requests.
    pub tokens: Tokens,
    pub page_size: usize,
    pub paging: Paging,
    pub applications: Vec<SimApplication>,
    pub collections: BTreeMap<String, SimCollection>,
    pub devices: BTreeMap<i64, String>,
    pub assignments: Vec<Value>,
    /// `SMS_AppDeploymentAssetDetails` rows per (assignment id, resource id).
    pub asset_details: BTreeMap<(i64, i64), Value>,
    /// Members `SMS_FullCollectionMembership` does not show yet, per
    /// collection (membership evaluation is asynchronous on a real site).
    pub membership_lag: HashMap<String, usize>,
    /// The faults waiting for the next requests, and the request count.
    pub faults: Faults<LostRequest>,
    next_ci: i64,
    next_collection: u32,
    next_assignment: i64,
    next_resource: i64,
}

impl SiteState {
    pub fn new(
        site_code: &str,
        tenant_id: &str,
        client_id: &str,
        client_secret: Secret,
        page_size: usize,
        paging: Paging,
    ) -> SiteState {
        let mut state = SiteState {
            site_code: site_code.into(),
            tenant_id: tenant_id.into(),
            client_id: client_id.into(),
            client_secret,
            tokens: Tokens::default(),
            page_size: page_size.max(1),
            paging,
            applications: Vec::new(),
            collections: BTreeMap::new(),
            devices: BTreeMap::new(),
            assignments: Vec::new(),
            asset_details: BTreeMap::new(),
            membership_lag: HashMap::new(),
            faults: Faults::default(),
            next_ci: 16_777_500,
            next_collection: 0x100,
            next_assignment: 16_777_300,
            next_resource: 16_777_220,
        };
        state.collections.insert(
            "SMS00001".into(),
            SimCollection {
                properties: json!({"CollectionID": "SMS00001", "Name": "All Systems", "CollectionType": 2, "Comment": "All Systems", "LimitToCollectionID": ""}),
                rules: Vec::new(),
                direct_members: None,
            },
        );
        state
    }

    pub fn next_ci_id(&mut self) -> i64 {
        self.next_ci += 2;
        self.next_ci
    }

    pub fn next_collection_id(&mut self) -> String {
        self.next_collection += 1;
        format!("{}{:05X}", self.site_code, self.next_collection)
    }

    pub fn next_assignment_id(&mut self) -> i64 {
        self.next_assignment += 1;
        self.next_assignment
    }

    /// A base collection of `device_count` new devices.
    pub fn add_collection(&mut self, id: &str, name: &str, device_count: u32) {
        let mut members = Vec::new();
        for number in 0..device_count {
            self.next_resource += 1;
            self.devices
                .insert(self.next_resource, format!("{}-WS-{number:04}", id));
            members.push(self.next_resource);
        }
        self.collections.insert(
            id.to_string(),
            SimCollection {
                properties: json!({"CollectionID": id, "Name": name, "CollectionType": 2, "Comment": "", "LimitToCollectionID": "SMS00001"}),
                rules: Vec::new(),
                direct_members: Some(members),
            },
        );
    }

    /// A collection's members as the site evaluates them: direct members, or
    /// included minus excluded collections, within the limiting collection.
    pub fn members(&self, collection_id: &str) -> BTreeSet<i64> {
        self.members_at(collection_id, 0)
    }

    fn members_at(&self, collection_id: &str, depth: u32) -> BTreeSet<i64> {
        if collection_id == "SMS00001" {
            return self.devices.keys().copied().collect();
        }
        let Some(collection) = self.collections.get(collection_id).filter(|_| depth < 16) else {
            return BTreeSet::new();
        };
        if let Some(direct) = &collection.direct_members {
            return direct.iter().copied().collect();
        }
        // A rule-based collection is evaluated when it refreshes: on every
        // change (incremental, RefreshType 4 or 6) or on its schedule
        // (RefreshType 2 or 6 with a RefreshSchedule). Rules added to one that
        // does neither are never evaluated: it stays empty.
        if !refreshes(&collection.properties) {
            return BTreeSet::new();
        }
        let mut members = BTreeSet::new();
        for rule in &collection.rules {
            if let Some(included) = rule.get("IncludeCollectionID").and_then(Value::as_str) {
                members.extend(self.members_at(included, depth + 1));
            }
        }
        for rule in &collection.rules {
            if let Some(excluded) = rule.get("ExcludeCollectionID").and_then(Value::as_str) {
                for device in self.members_at(excluded, depth + 1) {
                    members.remove(&device);
                }
            }
        }
        let limit = collection
            .properties
            .get("LimitToCollectionID")
            .and_then(Value::as_str)
            .unwrap_or("SMS00001");
        // All Systems holds every device: nothing to take away.
        if limit != "SMS00001" {
            let limited = self.members_at(limit, depth + 1);
            members.retain(|device| limited.contains(device));
        }
        members
    }

    /// Applications whose description carries `corr:<correlation_id>`.
    pub fn applications_of(&self, correlation_id: &str) -> Vec<&SimApplication> {
        self.applications
            .iter()
            .filter(|application| {
                application
                    .properties
                    .get("LocalizedDescription")
                    .and_then(Value::as_str)
                    .is_some_and(|description| {
                        description
                            .split(';')
                            .any(|part| part.strip_prefix("corr:") == Some(correlation_id))
                    })
            })
            .collect()
    }

    /// The per-device rows of one assignment (a range of the map, not a scan).
    pub fn asset_details_of(&self, assignment_id: i64) -> impl Iterator<Item = &Value> {
        self.asset_details
            .range((assignment_id, i64::MIN)..=(assignment_id, i64::MAX))
            .map(|(_, row)| row)
    }

    /// The `SMS_DeploymentSummary` of an assignment, summarized now.
    pub fn summary(&self, assignment: &Value) -> Value {
        let id = assignment
            .get("AssignmentID")
            .and_then(Value::as_i64)
            .unwrap_or_default();
        let target = assignment
            .get("TargetCollectionID")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let targeted = self.members(target).len() as i64;
        let mut counts = [0i64; 3];
        for row in self.asset_details_of(id) {
            match row
                .get("EnforcementState")
                .and_then(Value::as_i64)
                .unwrap_or(0)
            {
                10 => counts[0] += 1,
                6 | 11 | 14 => counts[1] += 1,
                _ => counts[2] += 1,
            }
        }
        json!({
            "AssignmentID": id,
            "CollectionID": target,
            "FeatureType": 1,
            "DesiredConfigType": assignment.get("DesiredConfigType").cloned().unwrap_or(Value::Null),
            "NumberTargeted": targeted,
            "NumberSuccess": counts[0],
            "NumberErrors": counts[1],
            "NumberInProgress": counts[2],
            "NumberOther": 0,
            "NumberUnknown": targeted - counts.iter().sum::<i64>(),
            "SummarizationTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        })
    }
}
