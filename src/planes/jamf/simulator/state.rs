//! `state`: what the simulated Jamf Pro server holds (computers with their
//! inventoried applications, computer groups, package records, policies,
//! policy logs), the tokens it issued, the faults waiting for the next
//! requests and the counters tests read, behind one mutex.

use crate::planes::Secret;
use crate::planes::jamf::wire::{PackageInfo, Policy};
use crate::planes::simulators::kit::{Fault, Faults, Tokens};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

/// Which request loses its answer after it was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LostRequest {
    /// `POST /api/v1/packages`.
    PackageCreation,
    /// `POST /JSSResource/policies/id/0`.
    PolicyCreation,
}

/// A failure of the next request(s) (token requests excluded).
/// Token requests are never faulted. (Jamf documents no rate limit; Jamf
/// Cloud's load balancers may throttle. A rejection carries Jamf's error
/// body for its API.)
pub type SimulatorFault = Fault<LostRequest>;

/// One application in a computer's inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimApp {
    pub name: String,
    pub path: String,
    pub bundle_id: String,
    pub version: String,
}

#[derive(Debug, Clone)]
pub struct SimComputer {
    pub id: u64,
    pub name: String,
    pub udid: String,
    /// Inventory as of the last recon, by bundle id.
    pub apps: BTreeMap<String, SimApp>,
    /// The last check-in (`general.lastContactTime`): when it last ran a policy.
    pub last_contact: Option<DateTime<Utc>>,
    /// The last inventory report (`general.reportDate`): the recon after a
    /// policy run that completed.
    pub report_date: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct SimGroup {
    pub id: u64,
    pub name: String,
    pub is_smart: bool,
    pub computers: Vec<u64>,
}

/// One policy run on one computer.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub policy_id: u64,
    pub policy_name: String,
    /// The package the policy installed on that run, if any: a later run is
    /// due when the policy installs another package.
    pub package_id: Option<u64>,
    pub status: String,
    pub at: DateTime<Utc>,
}

/// The whole simulated server.
pub struct JamfState {
    pub client_id: String,
    pub client_secret: Secret,
    /// Tokens issued; false once expired.
    /// Issued bearer tokens, revoked credentials, token requests.
    pub tokens: Tokens,
    pub page_size: usize,
    /// HTTP status of a `DUPLICATE_FIELD` answer ([U]: 400 or 409).
    pub duplicate_field_status: u16,
    pub max_connections: usize,
    pub latency: Duration,
    pub computers: BTreeMap<u64, SimComputer>,
    pub groups: BTreeMap<u64, SimGroup>,
    pub packages: BTreeMap<u64, Value>,
    pub policies: BTreeMap<u64, Policy>,
    /// Policy logs per computer, oldest first.
    pub logs: BTreeMap<u64, Vec<LogEntry>>,
    /// Success rate per correlation id (`set_success_rate`).
    pub success_rates: HashMap<String, f64>,
    /// The faults waiting for the next requests, and the request count.
    pub faults: Faults<LostRequest>,
    pub in_flight: usize,
    pub max_in_flight: usize,
    pub refused_busy: u64,
    /// API requests that carried the session cookie the simulator set.
    pub sticky_requests: u64,
    /// The value of the `APBALANCEID` cookie this node hands out.
    pub balance_id: String,
    next_computer: u64,
    next_package: u64,
    next_policy: u64,
}

impl JamfState {
    pub fn new(
        client_id: &str,
        client_secret: Secret,
        page_size: usize,
        duplicate_field_status: u16,
        max_connections: usize,
        latency: Duration,
    ) -> JamfState {
        JamfState {
            client_id: client_id.into(),
            client_secret,
            tokens: Tokens::default(),
            page_size: page_size.max(1),
            duplicate_field_status,
            max_connections: max_connections.max(1),
            latency,
            computers: BTreeMap::new(),
            groups: BTreeMap::new(),
            packages: BTreeMap::new(),
            policies: BTreeMap::new(),
            logs: BTreeMap::new(),
            success_rates: HashMap::new(),
            faults: Faults::default(),
            in_flight: 0,
            max_in_flight: 0,
            refused_busy: 0,
            sticky_requests: 0,
            balance_id: format!("aws.sim.jamfcloud.{}", uuid::Uuid::new_v4().simple()),
            next_computer: 0,
            next_package: 0,
            next_policy: 0,
        }
    }

    pub fn next_package_id(&mut self) -> u64 {
        self.next_package += 1;
        self.next_package
    }

    pub fn next_policy_id(&mut self) -> u64 {
        self.next_policy += 1;
        self.next_policy
    }

    /// A static group of `device_count` new computers.
    pub fn add_group(&mut self, group_id: u64, name: &str, device_count: u32) {
        let mut computers = Vec::new();
        for number in 0..device_count {
            self.next_computer += 1;
            let id = self.next_computer;
            let udid = uuid::Uuid::new_v5(
                &uuid::Uuid::NAMESPACE_OID,
                format!("jamf-computer-{id}").as_bytes(),
            );
            self.computers.insert(
                id,
                SimComputer {
                    id,
                    name: format!("MAC-{group_id}-{number:04}"),
                    udid: udid.to_string().to_uppercase(),
                    apps: BTreeMap::new(),
                    last_contact: None,
                    report_date: None,
                },
            );
            computers.push(id);
        }
        self.groups.insert(
            group_id,
            SimGroup {
                id: group_id,
                name: name.into(),
                is_smart: false,
                computers,
            },
        );
    }

    pub fn members(&self, group_id: u64) -> Vec<u64> {
        self.groups
            .get(&group_id)
            .map(|group| group.computers.clone())
            .unwrap_or_default()
    }

    /// The computers a policy reaches: its scope minus its exclusions.
    pub fn reached(&self, policy: &Policy) -> BTreeSet<u64> {
        let mut computers: BTreeSet<u64> = if policy.scope.all_computers {
            self.computers.keys().copied().collect()
        } else {
            policy
                .scoped_groups()
                .iter()
                .flat_map(|group| self.members(*group))
                .collect()
        };
        for group in policy.excluded_groups() {
            for computer in self.members(group) {
                computers.remove(&computer);
            }
        }
        computers
    }

    pub fn package_text(&self, package_id: u64, field: &str) -> String {
        self.packages
            .get(&package_id)
            .and_then(|package| package.get(field))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }

    /// The correlation id in a package's `notes` (`corr:<id>`), if any.
    pub fn package_correlation(&self, package_id: u64) -> Option<String> {
        self.package_text(package_id, "notes")
            .strip_prefix("corr:")
            .map(str::to_string)
    }

    /// Packages whose `notes` carry the correlation id.
    pub fn packages_of(&self, correlation_id: &str) -> Vec<u64> {
        self.packages
            .keys()
            .copied()
            .filter(|id| self.package_correlation(*id).as_deref() == Some(correlation_id))
            .collect()
    }

    /// Policies whose name ends with `corr:<id>`, or that install one of its packages.
    pub fn policies_of(&self, correlation_id: &str) -> Vec<u64> {
        let packages = self.packages_of(correlation_id);
        let suffix = format!("corr:{correlation_id}");
        self.policies
            .iter()
            .filter(|(_, policy)| {
                policy.general.name.ends_with(&suffix)
                    || policy
                        .installed_package()
                        .is_some_and(|package| packages.contains(&package))
            })
            .map(|(id, _)| *id)
            .collect()
    }

    /// What a package puts in inventory: the app its record's `info` names
    /// (detection and version; the real server reads the pkg's payload), or
    /// an app named after the file.
    pub fn app_of_package(&self, package_id: u64) -> SimApp {
        let info = PackageInfo::parse(&self.package_text(package_id, "info"));
        let file = self.package_text(package_id, "fileName");
        let stem = file.split(['-', '.']).next().unwrap_or("App").to_string();
        let bundle_id = if info.detection_type == "bundle_id" && !info.detection_value.is_empty() {
            info.detection_value.clone()
        } else {
            format!("com.jamf.simulated.package{package_id}")
        };
        let path = if info.detection_type == "file" && !info.detection_value.is_empty() {
            info.detection_value.clone()
        } else {
            format!("/Applications/{stem}.app")
        };
        let version = if info.version.is_empty() {
            "1.0".to_string()
        } else {
            info.version
        };
        SimApp {
            name: format!("{stem}.app"),
            path,
            bundle_id,
            version,
        }
    }

    /// The bundle ids an uninstall command removes: the apps of every
    /// package whose `info` records that command.
    pub fn removed_by(&self, command: &str) -> Vec<String> {
        self.packages
            .keys()
            .filter(|id| PackageInfo::parse(&self.package_text(**id, "info")).uninstall == command)
            .map(|id| self.app_of_package(*id).bundle_id)
            .collect()
    }

    /// The latest log of `policy_id` on a computer.
    pub fn latest_log(&self, computer: u64, policy_id: u64) -> Option<&LogEntry> {
        self.logs
            .get(&computer)?
            .iter()
            .rev()
            .find(|entry| entry.policy_id == policy_id)
    }

    /// Records one run of a policy on a computer and applies it: an install
    /// that completed puts the package's app in inventory (recon), an
    /// uninstall command removes the apps it uninstalls.
    pub fn run_policy(
        &mut self,
        computer: u64,
        policy_id: u64,
        completed: bool,
        at: DateTime<Utc>,
    ) {
        let Some(policy) = self.policies.get(&policy_id).cloned() else {
            return;
        };
        let package = policy.installed_package();
        if let Some(found) = self.computers.get_mut(&computer) {
            found.last_contact = found.last_contact.max(Some(at));
            if completed {
                found.report_date = found.report_date.max(Some(at));
            }
        }
        if completed {
            if let Some(package) = package {
                let app = self.app_of_package(package);
                if let Some(found) = self.computers.get_mut(&computer) {
                    found.apps.insert(app.bundle_id.clone(), app);
                }
            }
            if let Some(command) = policy.run_command() {
                let removed = self.removed_by(command);
                if let Some(found) = self.computers.get_mut(&computer) {
                    for bundle in removed {
                        found.apps.remove(&bundle);
                    }
                }
            }
        }
        self.logs.entry(computer).or_default().push(LogEntry {
            policy_id,
            policy_name: policy.general.name.clone(),
            package_id: package,
            status: if completed { "Completed" } else { "Failed" }.to_string(),
            at,
        });
    }

    /// Whether a computer's last run of the policy is final for what the
    /// policy does now (same package; any run for a command policy).
    pub fn has_final_result(&self, computer: u64, policy_id: u64) -> bool {
        let Some(policy) = self.policies.get(&policy_id) else {
            return true;
        };
        match self.latest_log(computer, policy_id) {
            Some(entry) => entry.package_id == policy.installed_package(),
            None => false,
        }
    }
}
