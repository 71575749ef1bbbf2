//! `controls`: what a test, the demo or a user of the standalone simulator
//! does to the server behind the connector's back: computer groups, faults,
//! tokens, computers checking in, device reports, unrelated objects, and
//! drift of a deployment's scope or of the versions computers run.

use super::JamfSimulator;
use super::state::SimulatorFault;
use crate::planes::jamf::wire::{self, GroupRef, Policy};
use chrono::{DateTime, Utc};
use serde_json::json;
use std::collections::BTreeSet;

fn draw(policy_id: u64, computer: u64) -> f64 {
    let draw = uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("jamf/{policy_id}/{computer}").as_bytes(),
    );
    (draw.as_u128() % 10_000) as f64 / 10_000.0
}

impl JamfSimulator {
    /// A static computer group `group_id` (a number, as Jamf ids are) of
    /// `device_count` new computers. Panics on a non-numeric id.
    pub fn add_group(&self, group_id: &str, name: &str, device_count: u32) {
        let id: u64 = group_id
            .parse()
            .unwrap_or_else(|_| panic!("Jamf computer group ids are numbers, not {group_id:?}"));
        self.lock().add_group(id, name, device_count);
    }

    /// The computer ids of a group's members, in order.
    pub fn members(&self, group_id: &str) -> Vec<u64> {
        group_id
            .parse()
            .map(|id| self.lock().members(id))
            .unwrap_or_default()
    }

    pub fn inject(&self, fault: SimulatorFault) {
        self.lock().faults.inject(fault);
    }

    /// Every token issued so far expires now.
    pub fn expire_tokens(&self) {
        self.lock().tokens.expire_all();
    }

    /// From now on the token endpoints refuse the credentials.
    pub fn revoke_credentials(&self) {
        self.lock().tokens.revoke_credentials();
    }

    /// Requests answered, token requests excluded.
    pub fn api_requests(&self) -> u64 {
        self.lock().faults.requests()
    }

    pub fn token_requests(&self) -> u64 {
        self.lock().tokens.requests()
    }

    /// The most requests that were in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.lock().max_in_flight
    }

    /// Every API request takes `latency` from now on.
    pub fn set_latency(&self, latency: std::time::Duration) {
        self.lock().latency = latency;
    }

    /// API requests that carried the load balancer's session cookie back.
    pub fn sticky_requests(&self) -> u64 {
        self.lock().sticky_requests
    }

    /// Requests refused with 503 because the connection cap was reached.
    pub fn refused_busy(&self) -> u64 {
        self.lock().refused_busy
    }

    /// The client secret and every token issued.
    pub fn credentials(&self) -> Vec<String> {
        let state = self.lock();
        let mut credentials = vec![state.client_secret.expose().to_string()];
        credentials.extend(state.tokens.issued().cloned());
        credentials
    }

    /// Package ids whose `notes` carry the correlation id.
    pub fn package_ids(&self, correlation_id: &str) -> Vec<u64> {
        self.lock().packages_of(correlation_id)
    }

    /// Policies of the correlation id (by name, or by the package they install).
    pub fn policy_ids(&self, correlation_id: &str) -> Vec<u64> {
        self.lock().policies_of(correlation_id)
    }

    /// A policy as the server holds it.
    pub fn policy(&self, policy_id: u64) -> Option<Policy> {
        self.lock().policies.get(&policy_id).cloned()
    }

    /// The policy's XML as `GET /JSSResource/policies/id/{id}` answers it.
    pub fn policy_xml(&self, policy_id: u64) -> Option<String> {
        let policy = self.policy(policy_id)?;
        wire::to_xml(&policy).ok()
    }

    /// (policy, computer group) pairs of enabled install policies of the
    /// correlation id: one per group a policy is scoped to. A duplicate would show.
    pub fn install_assignment_count(&self, correlation_id: &str) -> usize {
        let state = self.lock();
        state
            .policies_of(correlation_id)
            .iter()
            .filter_map(|id| state.policies.get(id))
            .filter(|policy| policy.general.enabled && policy.installed_package().is_some())
            .map(|policy| policy.scoped_groups().len())
            .sum()
    }

    /// Makes one deployment succeed with `success_rate` in `check_in`.
    pub fn set_success_rate(&self, correlation_id: &str, success_rate: f64) {
        self.lock()
            .success_rates
            .insert(correlation_id.to_string(), success_rate);
    }

    /// Every computer in scope of an enabled check-in policy without a final
    /// result for what the policy does now checks in at `at`: an install
    /// completes (its app lands in inventory) or fails for the share `1 -
    /// rate` (drawn from the policy and computer ids, so a fleet is the same
    /// every time), where rate is the deployment's own
    /// ([`JamfSimulator::set_success_rate`]) or `success_rate`; an uninstall
    /// policy completes and removes the app. Answers how many results changed.
    pub fn check_in(&self, at: DateTime<Utc>, success_rate: f64) -> usize {
        let mut state = self.lock();
        let mut runs: Vec<(u64, u64, bool)> = Vec::new();
        for (policy_id, policy) in &state.policies {
            if !policy.general.enabled || !policy.general.trigger_checkin {
                continue;
            }
            let installs = policy.installed_package();
            if installs.is_none() && policy.run_command().is_none() {
                continue;
            }
            let rate = installs
                .and_then(|package| state.package_correlation(package))
                .and_then(|correlation| state.success_rates.get(&correlation).copied())
                .unwrap_or(success_rate);
            for computer in state.reached(policy) {
                if state.has_final_result(computer, *policy_id) {
                    continue;
                }
                let completed = installs.is_none() || draw(*policy_id, computer) < rate;
                runs.push((computer, *policy_id, completed));
            }
        }
        for (computer, policy_id, completed) in &runs {
            state.run_policy(*computer, *policy_id, *completed, at);
        }
        runs.len()
    }

    /// The first `installed` computers reached by the correlation id's install
    /// policies complete their install at `at`, the next `failed` fail; the
    /// rest do not report.
    pub fn report(&self, correlation_id: &str, installed: u32, failed: u32, at: DateTime<Utc>) {
        let mut state = self.lock();
        let mut targets: Vec<(u64, u64)> = Vec::new();
        let mut seen: BTreeSet<u64> = BTreeSet::new();
        for policy_id in state.policies_of(correlation_id) {
            let Some(policy) = state.policies.get(&policy_id) else {
                continue;
            };
            if !policy.general.enabled || policy.installed_package().is_none() {
                continue;
            }
            for computer in state.reached(policy) {
                if seen.insert(computer) {
                    targets.push((computer, policy_id));
                }
            }
        }
        for (index, (computer, policy_id)) in targets.into_iter().enumerate() {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            if index >= installed + failed {
                break;
            }
            state.run_policy(computer, policy_id, index < installed, at);
        }
    }

    /// Adds `count` packages ringmaster did not make.
    pub fn add_unrelated_packages(&self, count: usize) {
        let mut state = self.lock();
        for _ in 0..count {
            let id = state.next_package_id();
            state.packages.insert(
                id,
                json!({
                    "id": id.to_string(), "packageName": format!("Unrelated Tool {id}"),
                    "fileName": format!("UnrelatedTool-{id}.pkg"), "categoryId": "-1", "priority": 10,
                    "fillUserTemplate": false, "rebootRequired": false, "osInstall": false,
                    "suppressUpdates": false, "suppressFromDock": false, "suppressEula": false,
                    "suppressRegistration": false, "notes": "packaged by another team", "info": "",
                }),
            );
        }
    }

    /// Adds `count` policies ringmaster did not make.
    pub fn add_unrelated_policies(&self, count: usize) {
        let mut state = self.lock();
        for _ in 0..count {
            let id = state.next_policy_id();
            let mut policy =
                wire::uninstall_policy(&format!("Inventory Update {id}"), "jamf recon", &[], &[]);
            policy.general.id = Some(id);
            policy.general.trigger_checkin = false;
            state.policies.insert(id, policy);
        }
    }

    /// Removes `group` from the scope of the correlation id's install
    /// policies. Answers how many policies changed.
    pub fn remove_scope(&self, correlation_id: &str, group: &str) -> usize {
        let Ok(group) = group.parse::<u64>() else {
            return 0;
        };
        let mut state = self.lock();
        let mut changed = 0;
        for policy_id in state.policies_of(correlation_id) {
            if let Some(policy) = state.policies.get_mut(&policy_id)
                && policy.installed_package().is_some()
            {
                let before = policy.scope.computer_groups.groups.len();
                policy
                    .scope
                    .computer_groups
                    .groups
                    .retain(|scoped| scoped.id != group);
                changed += usize::from(policy.scope.computer_groups.groups.len() != before);
            }
        }
        changed
    }

    /// Adds `group` to the scope of the correlation id's first install policy.
    pub fn add_scope(&self, correlation_id: &str, group: &str) {
        let Ok(group) = group.parse::<u64>() else {
            return;
        };
        let mut state = self.lock();
        let first = state.policies_of(correlation_id).into_iter().find(|id| {
            state
                .policies
                .get(id)
                .is_some_and(|policy| policy.installed_package().is_some())
        });
        if let Some(policy) = first.and_then(|id| state.policies.get_mut(&id)) {
            policy.scope.computer_groups.groups.push(GroupRef {
                id: group,
                name: None,
            });
        }
    }

    /// The first `devices` computers that run the correlation id's app now
    /// run `to_version` instead (someone reinstalled an older build); inventory
    /// shows it.
    pub fn revert_devices(&self, correlation_id: &str, to_version: &str, devices: u32) {
        let mut state = self.lock();
        let Some(package) = state.packages_of(correlation_id).first().copied() else {
            return;
        };
        let bundle = state.app_of_package(package).bundle_id;
        let mut left = devices;
        for computer in state.computers.values_mut() {
            if left == 0 {
                break;
            }
            if let Some(app) = computer.apps.get_mut(&bundle) {
                app.version = to_version.to_string();
                left -= 1;
            }
        }
    }
}
