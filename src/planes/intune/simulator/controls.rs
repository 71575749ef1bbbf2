//! `controls`: what a test (or a user of the standalone simulator) does to the
//! tenant behind the connector's back: register groups of devices, queue
//! faults, expire tokens, revoke the client secret, make devices report, add
//! unrelated apps, and drift assignments or versions.

use super::IntuneSimulator;
use super::state::{SimulatorFault, status_row};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

fn text_of(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// What one device reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceReport {
    /// Graph `installState`: `installed`, `failed`, `notInstalled`,
    /// `uninstallFailed`, `pendingInstall`, `unknown`, `notApplicable`.
    pub install_state: String,
    pub detail: String,
    pub error_code: i64,
    pub display_version: String,
}

impl IntuneSimulator {
    /// Registers (or replaces) a group of `device_count` devices.
    pub fn add_group(&self, group_id: &str, device_count: u32) {
        self.lock().add_group(group_id, device_count);
    }

    /// The device ids of a group, in order.
    pub fn group_devices(&self, group_id: &str) -> Vec<String> {
        let state = self.lock();
        state
            .groups
            .get(group_id)
            .map(|devices| devices.iter().map(|device| device.id.clone()).collect())
            .unwrap_or_default()
    }

    /// Queues a fault for the next Graph request(s) (or the next request of
    /// its kind, for a lost answer).
    pub fn inject(&self, fault: SimulatorFault) {
        self.lock().faults.inject(fault);
    }

    /// Every token issued so far expires now.
    pub fn expire_tokens(&self) {
        self.lock().tokens.expire_all();
    }

    /// From now on the token endpoint refuses the client (`invalid_client`).
    pub fn revoke_credentials(&self) {
        self.lock().tokens.revoke_credentials();
    }

    /// Graph and storage requests answered so far (token requests excluded).
    pub fn api_requests(&self) -> u64 {
        self.lock().faults.requests()
    }

    pub fn token_requests(&self) -> u64 {
        self.lock().tokens.requests()
    }

    /// Every credential the simulator knows: the client secret, the tokens it
    /// issued and the SAS signatures it handed out.
    pub fn credentials(&self) -> Vec<String> {
        let state = self.lock();
        let mut credentials = vec![state.client_secret.expose().to_string()];
        credentials.extend(state.tokens.issued().cloned());
        for app in &state.apps {
            for content in &app.content_versions {
                credentials.extend(content.files.iter().map(|file| file.signature.clone()));
            }
        }
        credentials
    }

    /// Ids of the apps whose notes carry the correlation id.
    pub fn app_ids(&self, correlation_id: &str) -> Vec<String> {
        self.lock()
            .apps_of(correlation_id)
            .map(|app| app.id.clone())
            .collect()
    }

    /// The app with `id`, as Graph returns it.
    pub fn app_json(&self, app_id: &str) -> Option<Value> {
        self.lock().app(app_id).map(|app| app.to_json())
    }

    /// The app's assignments, as Graph returns them.
    pub fn assignments(&self, app_id: &str) -> Vec<Value> {
        self.lock()
            .app(app_id)
            .map(|app| app.assignments.clone())
            .unwrap_or_default()
    }

    /// Install assignments (required or available, to an included group) of
    /// the correlation id's apps. A duplicate would show as one more.
    pub fn install_assignment_count(&self, correlation_id: &str) -> usize {
        self.lock()
            .apps_of(correlation_id)
            .flat_map(|app| app.assignments.iter())
            .filter(|assignment| {
                let intent = assignment.get("intent").and_then(Value::as_str);
                let included =
                    super::state::group_target(assignment).is_some_and(|(_, excluded)| !excluded);
                included && matches!(intent, Some("required" | "available"))
            })
            .count()
    }

    /// The apps an app supersedes.
    pub fn superseded_by(&self, app_id: &str) -> Vec<String> {
        self.lock()
            .app(app_id)
            .map(|app| {
                app.supersedes
                    .iter()
                    .map(|(target, _)| target.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Sets one device's row on one app.
    pub fn set_device_status(
        &self,
        app_id: &str,
        device_id: &str,
        report: &DeviceReport,
        at: DateTime<Utc>,
    ) -> bool {
        let mut state = self.lock();
        let device = state.device_index().by_entra_id(device_id).cloned();
        let (Some(device), Some(app)) = (device, state.app_mut(app_id)) else {
            return false;
        };
        let row = status_row(
            &device,
            &report.install_state,
            &report.detail,
            report.error_code,
            &report.display_version,
            &text_of(at),
        );
        app.device_statuses.insert(device.id.clone(), row);
        true
    }

    /// The first `installed` targeted devices of the correlation id's app
    /// report the app's version installed at `at`, the next `failed` report a
    /// failed install (exit code 1603); the rest stay silent.
    pub fn report(&self, correlation_id: &str, installed: u32, failed: u32, at: DateTime<Utc>) {
        let mut state = self.lock();
        let Some(app_id) = state
            .apps_of(correlation_id)
            .next()
            .map(|app| app.id.clone())
        else {
            return;
        };
        let app = state.app(&app_id).expect("found above");
        let version = app.display_version();
        let devices = state.targeted_devices(app);
        let at_text = text_of(at);
        let app = state.app_mut(&app_id).expect("found above");
        for (index, device) in (0u32..).zip(&devices) {
            let row = if index < installed {
                status_row(
                    device,
                    "installed",
                    "noAdditionalDetails",
                    0,
                    &version,
                    &at_text,
                )
            } else if index < installed + failed {
                status_row(
                    device,
                    "failed",
                    "seeInstallErrorCode",
                    1603,
                    &version,
                    &at_text,
                )
            } else {
                continue;
            };
            app.device_statuses.insert(device.id.clone(), row);
        }
    }

    /// Deletes an app (an admin in the console). Answers whether it existed.
    pub fn delete_app(&self, app_id: &str) -> bool {
        let mut state = self.lock();
        let before = state.apps.len();
        state.apps.retain(|app| app.id != app_id);
        state.apps.len() != before
    }

    /// Every device an app targets checks in at `at`: devices with no final
    /// row report the app's version installed, or failed (error 1603) for the
    /// share `1 - success_rate` (drawn from the device and app ids, so a fleet
    /// is the same every time); devices of an `uninstall` assignment report
    /// `notInstalled`. For a demo driving the simulator on its own clock.
    /// Answers how many rows changed.
    pub fn check_in(&self, at: DateTime<Utc>, success_rate: f64) -> usize {
        let mut state = self.lock();
        let at_text = text_of(at);
        let mut changes: Vec<(String, Value)> = Vec::new();
        for app in &state.apps {
            let version = app.display_version();
            for device in state.targeted_devices(app) {
                let final_row = app.device_statuses.get(&device.id).is_some_and(|row| {
                    matches!(
                        row.get("installState").and_then(Value::as_str),
                        Some("installed" | "failed")
                    ) && row.get("displayVersion").and_then(Value::as_str) == Some(version.as_str())
                });
                if final_row {
                    continue;
                }
                let draw = uuid::Uuid::new_v5(
                    &uuid::Uuid::NAMESPACE_OID,
                    format!("{}/{}", app.id, device.id).as_bytes(),
                );
                let fraction = (draw.as_u128() % 10_000) as f64 / 10_000.0;
                let row = if fraction < success_rate {
                    status_row(
                        &device,
                        "installed",
                        "noAdditionalDetails",
                        0,
                        &version,
                        &at_text,
                    )
                } else {
                    status_row(
                        &device,
                        "failed",
                        "seeInstallErrorCode",
                        1603,
                        &version,
                        &at_text,
                    )
                };
                changes.push((app.id.clone(), row));
            }
            for assignment in &app.assignments {
                let uninstall =
                    assignment.get("intent").and_then(Value::as_str) == Some("uninstall");
                let Some((group, false)) = super::state::group_target(assignment) else {
                    continue;
                };
                if !uninstall {
                    continue;
                }
                for device in state.groups.get(group).into_iter().flatten() {
                    let already = app
                        .device_statuses
                        .get(&device.id)
                        .and_then(|row| row.get("installState"))
                        .and_then(Value::as_str)
                        == Some("notInstalled");
                    if !already {
                        changes.push((
                            app.id.clone(),
                            status_row(
                                device,
                                "notInstalled",
                                "noAdditionalDetails",
                                0,
                                &version,
                                &at_text,
                            ),
                        ));
                    }
                }
            }
        }
        let changed = changes.len();
        for (app_id, row) in changes {
            let device = row
                .get("deviceId")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if let Some(app) = state.app_mut(&app_id) {
                app.device_statuses.insert(device, row);
            }
        }
        changed
    }

    /// Adds `count` published apps ringmaster did not make.
    pub fn add_unrelated_apps(&self, count: usize) {
        let mut state = self.lock();
        let now = text_of(Utc::now());
        for _ in 0..count {
            let number = state.apps.len();
            let body = json!({
                "@odata.type": "#microsoft.graph.win32LobApp",
                "displayName": format!("Unrelated App {number}"),
                "publisher": "Someone Else",
                "notes": format!("owner:team-{number}"),
                "fileName": "other.intunewin",
            });
            let Value::Object(body) = body else { continue };
            let id = state.create_app(body, &now).id.clone();
            if let Some(app) = state.app_mut(&id) {
                app.properties
                    .insert("publishingState".into(), json!("published"));
                app.properties
                    .insert("committedContentVersion".into(), json!("1"));
            }
        }
    }

    /// Deletes the correlation id's assignments of `group` (an admin in the
    /// console). Answers how many went.
    pub fn remove_assignments(&self, correlation_id: &str, group: &str) -> usize {
        let mut state = self.lock();
        let ids: Vec<String> = state
            .apps_of(correlation_id)
            .map(|app| app.id.clone())
            .collect();
        let mut removed = 0;
        for id in ids {
            if let Some(app) = state.app_mut(&id) {
                let before = app.assignments.len();
                app.assignments.retain(|assignment| {
                    super::state::group_target(assignment).map(|(target, _)| target) != Some(group)
                });
                removed += before - app.assignments.len();
            }
        }
        removed
    }

    /// Assigns `group` with `intent` to the correlation id's app outside ringmaster.
    pub fn add_assignment(&self, correlation_id: &str, group: &str, intent: &str) {
        let mut state = self.lock();
        let Some(id) = state
            .apps_of(correlation_id)
            .next()
            .map(|app| app.id.clone())
        else {
            return;
        };
        if let Some(app) = state.app_mut(&id) {
            let number = app.assignments.len();
            app.assignments.push(json!({
                "id": format!("{group}_{intent}_{number}"),
                "intent": intent,
                "target": {"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": group},
            }));
        }
    }

    /// Up to `devices` devices that report the app installed now report
    /// `to_version` (someone reinstalled the old one).
    pub fn revert_devices(
        &self,
        correlation_id: &str,
        to_version: &str,
        devices: u32,
        at: DateTime<Utc>,
    ) {
        let mut state = self.lock();
        let Some(id) = state
            .apps_of(correlation_id)
            .next()
            .map(|app| app.id.clone())
        else {
            return;
        };
        let Some(app) = state.app_mut(&id) else {
            return;
        };
        let mut remaining = devices;
        for row in app.device_statuses.values_mut() {
            if remaining == 0 {
                break;
            }
            if row.get("installState").and_then(Value::as_str) == Some("installed") {
                row["displayVersion"] = json!(to_version);
                row["lastSyncDateTime"] = json!(text_of(at));
                remaining -= 1;
            }
        }
    }
}
