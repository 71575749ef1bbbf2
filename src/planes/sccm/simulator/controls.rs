//! `controls`: what a test (or a user of the standalone simulator) does to the
//! site behind the connector's back: collections of devices, faults, tokens,
//! device status rows, unrelated applications, and drift of deployments.

use super::SccmSimulator;
use super::state::{SimApplication, SimulatorFault};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

fn text_of(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn is_install(assignment: &Value) -> bool {
    assignment.get("DesiredConfigType").and_then(Value::as_i64) == Some(1)
}

impl SccmSimulator {
    /// A device collection of `device_count` new devices, built outside ringmaster.
    pub fn add_collection(&self, collection_id: &str, name: &str, device_count: u32) {
        self.lock()
            .add_collection(collection_id, name, device_count);
    }

    /// The resource ids of a collection's members, in order.
    pub fn members(&self, collection_id: &str) -> Vec<i64> {
        self.lock().members(collection_id).into_iter().collect()
    }

    /// `SMS_FullCollectionMembership` leaves out the last `hidden` members of
    /// the collection until told otherwise (evaluation still running).
    pub fn lag_membership(&self, collection_id: &str, hidden: usize) {
        self.lock()
            .membership_lag
            .insert(collection_id.to_string(), hidden);
    }

    /// The `SDMPackageXML` an application was created from.
    pub fn application_xml(&self, ci_id: i64) -> Option<String> {
        let state = self.lock();
        state
            .applications
            .iter()
            .find(|application| application.ci_id == ci_id)
            .map(|application| application.xml.clone())
    }

    /// Accepts `token` as a bearer token (the token-file auth mode).
    pub fn install_token(&self, token: &str) {
        self.lock().tokens.issue(token);
    }

    pub fn inject(&self, fault: SimulatorFault) {
        self.lock().faults.inject(fault);
    }

    pub fn expire_tokens(&self) {
        self.lock().tokens.expire_all();
    }

    pub fn revoke_credentials(&self) {
        self.lock().tokens.revoke_credentials();
    }

    pub fn api_requests(&self) -> u64 {
        self.lock().faults.requests()
    }

    pub fn token_requests(&self) -> u64 {
        self.lock().tokens.requests()
    }

    /// The client secret and every token issued or installed.
    pub fn credentials(&self) -> Vec<String> {
        let state = self.lock();
        let mut credentials = vec![state.client_secret.expose().to_string()];
        credentials.extend(state.tokens.issued().cloned());
        credentials
    }

    /// Latest applications whose description carries the correlation id.
    pub fn application_ids(&self, correlation_id: &str) -> Vec<i64> {
        self.lock()
            .applications_of(correlation_id)
            .iter()
            .map(|application| application.ci_id)
            .collect()
    }

    /// Every deployment of an application.
    pub fn assignments(&self, ci_id: i64) -> Vec<Value> {
        let state = self.lock();
        let Some(model_id) = state
            .applications
            .iter()
            .find(|application| application.ci_id == ci_id)
            .map(|application| application.model_id)
        else {
            return Vec::new();
        };
        state
            .assignments
            .iter()
            .filter(|assignment| {
                assignment.get("AppModelID").and_then(Value::as_i64) == Some(model_id)
            })
            .cloned()
            .collect()
    }

    /// A collection as a single-instance GET returns it (rules included).
    pub fn collection(&self, collection_id: &str) -> Option<(Value, Vec<Value>)> {
        let state = self.lock();
        state
            .collections
            .get(collection_id)
            .map(|collection| (collection.properties.clone(), collection.rules.clone()))
    }

    /// Install deployments of the correlation id's applications, each counted
    /// once per collection its target includes (a ring collection deploying to
    /// two entitlement collections counts two). A duplicate would show.
    pub fn install_assignment_count(&self, correlation_id: &str) -> usize {
        let state = self.lock();
        let models: Vec<i64> = state
            .applications_of(correlation_id)
            .iter()
            .map(|application| application.model_id)
            .collect();
        state
            .assignments
            .iter()
            .filter(|assignment| is_install(assignment))
            .filter(|assignment| {
                assignment
                    .get("AppModelID")
                    .and_then(Value::as_i64)
                    .is_some_and(|model| models.contains(&model))
            })
            .map(|assignment| {
                let target = assignment
                    .get("TargetCollectionID")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let includes = state
                    .collections
                    .get(target)
                    .map(|collection| {
                        collection
                            .rules
                            .iter()
                            .filter(|rule| rule.get("IncludeCollectionID").is_some())
                            .count()
                    })
                    .unwrap_or(0);
                includes.max(1)
            })
            .sum()
    }

    /// Sets one device's `SMS_AppDeploymentAssetDetails` row for a deployment.
    pub fn set_enforcement_state(
        &self,
        assignment_id: i64,
        resource_id: i64,
        enforcement_state: i64,
        at: DateTime<Utc>,
    ) {
        let mut state = self.lock();
        let Some(assignment) = state
            .assignments
            .iter()
            .find(|assignment| {
                assignment.get("AssignmentID").and_then(Value::as_i64) == Some(assignment_id)
            })
            .cloned()
        else {
            return;
        };
        let status_type = match enforcement_state {
            10 => 1,
            6 | 11 | 14 => 5,
            0 => 4,
            _ => 2,
        };
        let row = json!({
            "AssignmentID": assignment_id,
            "AssignmentUniqueID": assignment["AssignmentUniqueID"],
            "MachineID": resource_id,
            "MachineName": state.devices.get(&resource_id),
            "UserName": null,
            "AppStatusType": status_type,
            "StatusType": status_type,
            "EnforcementState": enforcement_state,
            "InstalledState": if enforcement_state == 10 { 2 } else { 3 },
            "ComplianceState": i64::from(enforcement_state == 10),
            "DeploymentIntent": 1,
            "DTName": assignment["ApplicationName"],
            "StartTime": text_of(at),
            "CollectionID": assignment["TargetCollectionID"],
        });
        state
            .asset_details
            .insert((assignment_id, resource_id), row);
    }

    /// The first `installed` devices targeted by the correlation id's install
    /// deployments report installed (10) at `at`, the next `failed` report
    /// failed to install (11); the rest stay silent.
    pub fn report(&self, correlation_id: &str, installed: u32, failed: u32, at: DateTime<Utc>) {
        let targets: Vec<(i64, Vec<i64>)> = {
            let state = self.lock();
            let models: Vec<i64> = state
                .applications_of(correlation_id)
                .iter()
                .map(|application| application.model_id)
                .collect();
            state
                .assignments
                .iter()
                .filter(|assignment| is_install(assignment))
                .filter(|assignment| {
                    assignment
                        .get("AppModelID")
                        .and_then(Value::as_i64)
                        .is_some_and(|model| models.contains(&model))
                })
                .map(|assignment| {
                    let id = assignment
                        .get("AssignmentID")
                        .and_then(Value::as_i64)
                        .unwrap_or_default();
                    let target = assignment
                        .get("TargetCollectionID")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    (id, state.members(target).into_iter().collect())
                })
                .collect()
        };
        let mut index = 0;
        for (assignment_id, devices) in targets {
            for device in devices {
                let state = if index < installed {
                    10
                } else if index < installed + failed {
                    11
                } else {
                    return;
                };
                self.set_enforcement_state(assignment_id, device, state, at);
                index += 1;
            }
        }
    }

    /// Deletes an application and its deployments. Answers whether it existed.
    pub fn delete_application(&self, ci_id: i64) -> bool {
        let mut state = self.lock();
        let Some(model_id) = state
            .applications
            .iter()
            .find(|application| application.ci_id == ci_id)
            .map(|application| application.model_id)
        else {
            return false;
        };
        state
            .applications
            .retain(|application| application.ci_id != ci_id);
        state.assignments.retain(|assignment| {
            assignment.get("AppModelID").and_then(Value::as_i64) != Some(model_id)
        });
        true
    }

    /// Every device an install deployment targets checks in at `at`: devices
    /// without a final row report installed (10), or failed to install (11)
    /// for the share `1 - success_rate` (drawn from the deployment and device,
    /// so a fleet is the same every time). For a demo driving the simulator on
    /// its own clock. Answers how many rows changed.
    pub fn check_in(&self, at: DateTime<Utc>, success_rate: f64) -> usize {
        let pending: Vec<(i64, i64, i64)> = {
            let state = self.lock();
            let mut pending = Vec::new();
            for assignment in state
                .assignments
                .iter()
                .filter(|assignment| is_install(assignment))
            {
                let id = assignment
                    .get("AssignmentID")
                    .and_then(Value::as_i64)
                    .unwrap_or_default();
                let target = assignment
                    .get("TargetCollectionID")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                for device in state.members(target) {
                    let final_row = state
                        .asset_details
                        .get(&(id, device))
                        .and_then(|row| row.get("EnforcementState"))
                        .and_then(Value::as_i64)
                        .is_some_and(|enforcement| matches!(enforcement, 10 | 6 | 11 | 14));
                    if final_row {
                        continue;
                    }
                    let draw = uuid::Uuid::new_v5(
                        &uuid::Uuid::NAMESPACE_OID,
                        format!("{id}/{device}").as_bytes(),
                    );
                    let fraction = (draw.as_u128() % 10_000) as f64 / 10_000.0;
                    pending.push((id, device, if fraction < success_rate { 10 } else { 11 }));
                }
            }
            pending
        };
        for (assignment_id, device, enforcement_state) in &pending {
            self.set_enforcement_state(*assignment_id, *device, *enforcement_state, at);
        }
        pending.len()
    }

    /// Adds `count` applications ringmaster did not make.
    pub fn add_unrelated_apps(&self, count: usize) {
        let mut state = self.lock();
        for _ in 0..count {
            let ci_id = state.next_ci_id();
            let properties = json!({
                "CI_ID": ci_id, "ModelID": ci_id + 1, "CI_UniqueID": format!("ScopeId_OTHER/Application_{ci_id}/1"),
                "ModelName": format!("ScopeId_OTHER/Application_{ci_id}"), "LocalizedDisplayName": format!("Unrelated App {ci_id}"),
                "LocalizedDescription": "packaged by another team", "SoftwareVersion": "1.0", "IsLatest": true,
            });
            state.applications.push(SimApplication {
                ci_id,
                model_id: ci_id + 1,
                properties,
                xml: String::new(),
            });
        }
    }

    /// Deletes the correlation id's install deployments that reach `collection`
    /// (directly or through an include rule). Answers how many went.
    pub fn remove_deployments(&self, correlation_id: &str, collection: &str) -> usize {
        let mut state = self.lock();
        let models: Vec<i64> = state
            .applications_of(correlation_id)
            .iter()
            .map(|application| application.model_id)
            .collect();
        let reaching: Vec<String> = state
            .collections
            .iter()
            .filter(|(id, found)| {
                *id == collection
                    || found.rules.iter().any(|rule| {
                        rule.get("IncludeCollectionID").and_then(Value::as_str) == Some(collection)
                    })
            })
            .map(|(id, _)| id.clone())
            .collect();
        let before = state.assignments.len();
        state.assignments.retain(|assignment| {
            let ours = assignment
                .get("AppModelID")
                .and_then(Value::as_i64)
                .is_some_and(|model| models.contains(&model));
            let target = assignment
                .get("TargetCollectionID")
                .and_then(Value::as_str)
                .unwrap_or_default();
            !(ours && is_install(assignment) && reaching.iter().any(|id| id == target))
        });
        before - state.assignments.len()
    }

    /// Deploys the correlation id's application to `collection` outside ringmaster.
    pub fn add_deployment(&self, correlation_id: &str, collection: &str) {
        let mut state = self.lock();
        let Some(application) = state
            .applications_of(correlation_id)
            .first()
            .map(|application| (*application).clone())
        else {
            return;
        };
        let id = state.next_assignment_id();
        state.assignments.push(json!({
            "AssignmentID": id,
            "AssignmentUniqueID": format!("{{{}}}", uuid::Uuid::new_v4()),
            "AssignmentName": format!("{}_manual", application.properties["LocalizedDisplayName"].as_str().unwrap_or_default()),
            "AssignmentDescription": "",
            "ApplicationName": application.properties["LocalizedDisplayName"],
            "AssignedCIs": [application.ci_id],
            "AppModelID": application.model_id,
            "TargetCollectionID": collection,
            "DesiredConfigType": 1,
            "OfferTypeID": 0,
        }));
    }
}
