//! `operations`: the connector's side of the sim: publish, remediate and drift,
//! each written the way a real connector has to work against a plane without
//! idempotency keys: find the app by its correlation note, compare the assignments
//! the plane holds with the ones wanted, and create only what is missing.

use super::SimError;
use super::device::{Action, TextId};
use super::fleet::{
    CORRELATION_NOTE_PREFIX, PublishedRing, SimApp, SimArtifact, SimFleet, correlation_of,
    push_version,
};
use super::injection::Drift;
use super::shared::{Shared, SharedTexts};
use crate::planes::{
    ConnectorError, ErrorCode, PublishRequest, PublishResult, Remediation, RemediationResult,
};
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;

fn invalid(message: String) -> ConnectorError {
    ConnectorError::new(ErrorCode::InvalidRequest, message)
}

pub(super) fn not_found(correlation_id: &str, plane: &str) -> ConnectorError {
    ConnectorError::new(
        ErrorCode::ResourceNotFound,
        format!(
            "no app with correlation id {correlation_id} on sim plane {plane}; publish it first"
        ),
    )
}

/// Whether the app's pin lets `ring` be assigned.
fn ring_allowed(app: &SimApp, ring: &str) -> bool {
    if app.halted {
        return false;
    }
    let Some(pinned) = &app.pinned_ring else {
        return true;
    };
    let position = |wanted: &str| {
        app.rings
            .iter()
            .position(|published| *published.ring == *wanted)
    };
    match (position(pinned), position(ring)) {
        _ if ring == pinned.as_str() => true,
        (Some(pinned_at), Some(ring_at)) => ring_at <= pinned_at,
        (None, Some(_)) => true,
        (_, None) => false,
    }
}

impl SimFleet {
    fn check_request(&self, request: &PublishRequest) -> Result<(), ConnectorError> {
        let plane = self.plane.as_str();
        if request.plane != self.plane {
            return Err(invalid(format!(
                "request for plane {} sent to the sim connector of plane {plane}",
                request.plane.as_str()
            )));
        }
        for (field, value) in [
            ("correlation_id", &request.correlation_id),
            ("application_id", &request.application_id),
            ("version", &request.version),
            ("ring", &request.ring),
        ] {
            if value.trim().is_empty() {
                return Err(invalid(format!("publish request has an empty {field}")));
            }
        }
        if request.groups.is_empty() {
            return Err(invalid(format!(
                "publish of {} {} ring {} names no group; the entitlement must list plane groups",
                request.application_id, request.version, request.ring
            )));
        }
        request.artifact.check_sha256()?;
        for group in &request.groups {
            if request.exclusions.contains(group) {
                return Err(invalid(format!(
                    "group {group} is both assigned and excluded"
                )));
            }
            if !self.groups.contains_key(group) {
                return Err(ConnectorError::new(
                    ErrorCode::ResourceNotFound,
                    format!("group {group} does not exist on sim plane {plane}"),
                ));
            }
        }
        Ok(())
    }

    /// Finds or creates the app, then assigns the groups it is not assigned to yet.
    pub fn publish(
        &mut self,
        request: &PublishRequest,
        now: DateTime<Utc>,
    ) -> Result<PublishResult, ConnectorError> {
        self.check_request(request)?;
        let mut created = false;
        let app_index = match self.app_index(&request.correlation_id) {
            Some(index) => index,
            None => {
                created = true;
                self.create_app(request, now)
            }
        };
        let app = &self.apps[app_index];
        if *app.application_id != *request.application_id
            || *app.published_version != *request.version
        {
            return Err(invalid(format!(
                "correlation id {} already names {} {} on sim plane {}; a new version needs a new intent",
                request.correlation_id,
                app.application_id,
                app.published_version,
                self.plane.as_str()
            )));
        }
        let assigned: BTreeSet<&str> = self
            .assignments_of(&app.id)
            .map(|assignment| assignment.group.as_str())
            .collect();
        let mut missing: Vec<String> = Vec::new();
        for group in &request.groups {
            if !assigned.contains(group.as_str()) && !missing.contains(group) {
                missing.push(group.clone());
            }
        }
        if !missing.is_empty() {
            check_can_widen(app, &request.ring)?;
        }
        record_ring(&mut self.apps[app_index], &mut self.shared, request, now);
        for group in &missing {
            self.assign_group(app_index, group, &request.ring, now);
            created = true;
        }
        Ok(PublishResult {
            external_id: self.apps[app_index].id.to_string(),
            created,
        })
    }

    fn create_app(&mut self, request: &PublishRequest, now: DateTime<Utc>) -> usize {
        let id = self.new_object_id("app");
        let version = self.shared.share(&request.version);
        self.apps.push(Box::new(SimApp {
            id: Shared::new(&id),
            notes: format!("{CORRELATION_NOTE_PREFIX}{}", request.correlation_id).into(),
            intent_id: request.intent_id.as_str().into(),
            application_id: request.application_id.as_str().into(),
            application_name: request.application_name.as_str().into(),
            published_version: version.clone(),
            delivered_version: Some(version),
            supersedes_version: request
                .supersedes_version
                .as_deref()
                .map(|version| self.shared.share(version)),
            artifact: SimArtifact::new(&request.artifact),
            rings: Vec::new(),
            pinned_ring: None,
            halted: false,
            created_at: now,
            devices: Default::default(),
        }));
        self.apps.len() - 1
    }

    pub fn remediate(
        &mut self,
        correlation_id: &str,
        remediation: &Remediation,
        now: DateTime<Utc>,
    ) -> Result<RemediationResult, ConnectorError> {
        let index = self
            .app_index(correlation_id)
            .ok_or_else(|| not_found(correlation_id, self.plane.as_str()))?;
        let (applied, detail) = match remediation {
            Remediation::Uninstall => self.uninstall(index, now),
            Remediation::Rollback { to_version, .. } => self.rollback(index, to_version, now)?,
            Remediation::Redeploy => self.redeploy(index, now)?,
            Remediation::RingPin { ring } => self.pin(index, ring),
            Remediation::Halt => self.halt(index, now),
        };
        Ok(RemediationResult {
            action: remediation.clone(),
            applied,
            detail,
        })
    }

    fn remove_assignments(&mut self, app_id: &str, keep: impl Fn(&str) -> bool) -> usize {
        let before = self.assignments.len();
        self.assignments
            .retain(|assignment| *assignment.app_id != *app_id || keep(&assignment.group));
        before - self.assignments.len()
    }

    fn uninstall(&mut self, index: usize, now: DateTime<Utc>) -> (bool, String) {
        if self.apps[index].delivered_version.is_none() {
            return (
                false,
                "already uninstalled: no assignment, nothing delivered".into(),
            );
        }
        let app_id = self.apps[index].id.clone();
        let removed_assignments = self.remove_assignments(&app_id, |_| false);
        let correlation_id = correlation_of(&self.apps[index]).to_string();
        let draw = self.draw(&correlation_id, "", None);
        let app = &mut self.apps[index];
        app.delivered_version = None;
        let mut removing = 0;
        let (texts, devices) = app.devices.entries_mut();
        let mut id = String::new();
        for (key, device) in devices {
            let view = device.view(now, None);
            let installing = matches!(view.in_flight, Some(Action::Install(_)));
            if view.installed_version.is_some() || installing {
                key.write_id(texts, &mut id);
                device.start(&id, Action::Remove, now, &draw);
                removing += 1;
            }
        }
        (
            true,
            format!(
                "removed {removed_assignments} assignment(s); {removing} device(s) uninstalling"
            ),
        )
    }

    fn rollback(
        &mut self,
        index: usize,
        to_version: &str,
        now: DateTime<Utc>,
    ) -> Result<(bool, String), ConnectorError> {
        let Some(previous) = self.apps[index].delivered_version.clone() else {
            return Err(invalid(format!(
                "app {} was uninstalled; there is nothing to roll back",
                self.apps[index].id
            )));
        };
        if to_version.trim().is_empty() {
            return Err(invalid("rollback names no version".into()));
        }
        if *previous == *to_version {
            return Ok((false, format!("already delivers {to_version}")));
        }
        let assigned: BTreeSet<Shared> = self
            .assignments_of(&self.apps[index].id)
            .map(|assignment| assignment.group.clone())
            .collect();
        let correlation_id = correlation_of(&self.apps[index]).to_string();
        let application_id = self.apps[index].application_id.clone();
        let draw = self.draw(&correlation_id, &application_id, Some(to_version));
        let delivered = self.shared.share(to_version);
        let app = &mut self.apps[index];
        app.delivered_version = Some(delivered.clone());
        let assigned = text_ids(app, &assigned);
        // No device holds a previous version that is not among its texts.
        let previous_id = app.devices.find(&previous);
        let to_version_id = app.devices.intern(&delivered);
        let mut moving = 0;
        let (texts, devices) = app.devices.entries_mut();
        let mut id = String::new();
        for (key, device) in devices {
            let view = device.view(now, previous_id);
            let touched_by_previous = previous_id.is_some_and(|previous| {
                view.installed_version == Some(previous)
                    || view.in_flight == Some(Action::Install(previous))
            });
            if (assigned.contains(&device.group) || touched_by_previous) && {
                key.write_id(texts, &mut id);
                push_version(device, &id, to_version_id, now, &draw)
            } {
                moving += 1;
            }
        }
        Ok((
            true,
            format!("delivers {to_version} instead of {previous}; {moving} device(s) moving"),
        ))
    }

    fn redeploy(
        &mut self,
        index: usize,
        now: DateTime<Utc>,
    ) -> Result<(bool, String), ConnectorError> {
        let app = &self.apps[index];
        let Some(version) = app.delivered_version.clone() else {
            return Err(invalid(format!(
                "app {} was uninstalled; publish under a new correlation id instead",
                app.id
            )));
        };
        let mut desired: Vec<(Shared, Shared)> = Vec::new();
        for published in app
            .rings
            .iter()
            .filter(|published| ring_allowed(app, &published.ring))
        {
            for group in &published.groups {
                if !desired.iter().any(|(wanted, _)| wanted == group) {
                    desired.push((group.clone(), published.ring.clone()));
                }
            }
        }
        let app_id = app.id.clone();
        let assigned: BTreeSet<Shared> = self
            .assignments_of(&app_id)
            .map(|assignment| assignment.group.clone())
            .collect();
        let removed = self.remove_assignments(&app_id, |group| {
            desired.iter().any(|(wanted, _)| **wanted == *group)
        });
        let mut added = 0;
        for (group, ring) in &desired {
            if !assigned.contains(group) && self.groups.contains_key(group.as_str()) {
                self.assign_group(index, group, ring, now);
                added += 1;
            }
        }
        let correlation_id = correlation_of(&self.apps[index]).to_string();
        let application_id = self.apps[index].application_id.clone();
        let draw = self.draw(&correlation_id, &application_id, Some(&version));
        let app = &mut self.apps[index];
        let desired: BTreeSet<Shared> = desired.into_iter().map(|(group, _)| group).collect();
        let desired = text_ids(app, &desired);
        let version_id = app.devices.intern(&version);
        let mut pushed = 0;
        let (texts, devices) = app.devices.entries_mut();
        let mut id = String::new();
        for (key, device) in devices {
            if desired.contains(&device.group) && {
                key.write_id(texts, &mut id);
                push_version(device, &id, version_id, now, &draw)
            } {
                pushed += 1;
            }
        }
        let applied = removed + added + pushed > 0;
        let detail = if applied {
            format!(
                "re-added {added} assignment(s), removed {removed} unexpected one(s), \
                 re-pushed {version} to {pushed} device(s)"
            )
        } else {
            format!(
                "already as published: every group assigned, {version} on or going to every device"
            )
        };
        Ok((applied, detail))
    }

    /// Withdraws every assignment of the app; devices that had not installed
    /// yet never do (their pending install is cancelled), the others keep it.
    fn halt(&mut self, index: usize, now: DateTime<Utc>) -> (bool, String) {
        let changed = !self.apps[index].halted;
        self.apps[index].halted = true;
        let app_id = self.apps[index].id.clone();
        let removed = self.remove_assignments(&app_id, |_| false);
        let cancelled = self.apps[index]
            .devices
            .devices_mut()
            .map(|device| device.cancel_pending_install(now))
            .filter(|cancelled| *cancelled)
            .count();
        let applied = changed || removed > 0 || cancelled > 0;
        let detail = if applied {
            format!(
                "halted; withdrew {removed} assignment(s), cancelled {cancelled} pending install(s)"
            )
        } else {
            "already halted".to_string()
        };
        (applied, detail)
    }

    fn pin(&mut self, index: usize, ring: &str) -> (bool, String) {
        let pinned = self.shared.share(ring);
        let app = &mut self.apps[index];
        let changed = app.pinned_ring.as_deref() != Some(ring);
        app.pinned_ring = Some(pinned);
        let cut: BTreeSet<Shared> = app
            .rings
            .iter()
            .filter(|published| !ring_allowed(app, &published.ring))
            .flat_map(|published| published.groups.iter().cloned())
            .collect();
        let app_id = app.id.clone();
        let removed = self.remove_assignments(&app_id, |group| !cut.contains(group));
        let applied = changed || removed > 0;
        let detail = if applied {
            format!("pinned at {ring}; removed {removed} assignment(s) of later rings")
        } else {
            format!("already pinned at {ring}")
        };
        (applied, detail)
    }

    /// Changes the plane behind the connector's back.
    pub fn apply_drift(
        &mut self,
        correlation_id: &str,
        drift: &Drift,
        now: DateTime<Utc>,
    ) -> Result<(), SimError> {
        let index = self
            .app_index(correlation_id)
            .ok_or_else(|| SimError::UnknownDeployment {
                correlation_id: correlation_id.to_string(),
            })?;
        let app_id = self.apps[index].id.clone();
        match drift {
            Drift::AssignmentMissing { group } => {
                if self.remove_assignments(&app_id, |assigned| assigned != group) == 0 {
                    return Err(SimError::NoSuchAssignment {
                        correlation_id: correlation_id.to_string(),
                        group: group.clone(),
                    });
                }
            }
            Drift::VersionReverted {
                to_version,
                devices,
            } => {
                let assigned: BTreeSet<Shared> = self
                    .assignments_of(&app_id)
                    .map(|assignment| assignment.group.clone())
                    .collect();
                let to_version = self.shared.share(to_version);
                let app = &mut self.apps[index];
                let assigned = text_ids(app, &assigned);
                let delivered = app.delivered_version.as_deref();
                // `None` when nothing is delivered, or no device holds it.
                let delivered_id = delivered.and_then(|version| app.devices.find(version));
                let runs_delivered = |installed: Option<TextId>| match delivered {
                    None => installed.is_none(),
                    Some(_) => delivered_id.is_some() && installed == delivered_id,
                };
                let action = Action::Install(app.devices.intern(&to_version));
                let mut remaining = *devices;
                for device in app.devices.devices_mut() {
                    if remaining == 0 {
                        break;
                    }
                    let view = device.view(now, delivered_id);
                    if assigned.contains(&device.group) && runs_delivered(view.installed_version) {
                        device.record_external(action, now);
                        remaining -= 1;
                    }
                }
            }
            Drift::ScopeWidened { extra_group } => {
                if !self.groups.contains_key(extra_group) {
                    return Err(SimError::UnknownGroup {
                        group: extra_group.clone(),
                    });
                }
                if self
                    .assignments_of(&app_id)
                    .any(|assignment| *assignment.group == **extra_group)
                {
                    return Err(SimError::AlreadyAssigned {
                        correlation_id: correlation_id.to_string(),
                        group: extra_group.clone(),
                    });
                }
                let ring = self.apps[index]
                    .rings
                    .last()
                    .map(|published| published.ring.clone());
                let ring = ring.as_deref().unwrap_or_default();
                self.assign_group(index, extra_group, ring, now);
            }
        }
        Ok(())
    }
}

/// The text ids of `groups` among the app's device texts (a group no
/// device holds has none: no device is of it).
fn text_ids(app: &SimApp, groups: &BTreeSet<Shared>) -> BTreeSet<TextId> {
    groups
        .iter()
        .filter_map(|group| app.devices.find(group))
        .collect()
}

/// Refuses to add assignments to an app that was uninstalled, rolled back, or
/// pinned before `ring`.
fn check_can_widen(app: &SimApp, ring: &str) -> Result<(), ConnectorError> {
    match &app.delivered_version {
        None => Err(invalid(format!(
            "app {} was uninstalled; publish under a new correlation id",
            app.id
        ))),
        Some(delivered) if *delivered != app.published_version => Err(invalid(format!(
            "app {} was rolled back to {delivered}; publish under a new correlation id",
            app.id
        ))),
        Some(_) if app.halted => Err(ConnectorError::new(
            ErrorCode::DeploymentHalted,
            format!("app {} was halted; ring {ring} is not assigned", app.id),
        )),
        Some(_) if !ring_allowed(app, ring) => Err(ConnectorError::new(
            ErrorCode::RingPinned,
            format!(
                "app {} is pinned at ring {}; ring {ring} is not assigned",
                app.id,
                app.pinned_ring.as_deref().unwrap_or_default()
            ),
        )),
        Some(_) => Ok(()),
    }
}

/// Records the ring as published, merging groups into an earlier record of it.
/// Lists grow by what is added only (most apps publish few rings of few
/// groups, and keep them).
fn record_ring(
    app: &mut SimApp,
    shared: &mut SharedTexts,
    request: &PublishRequest,
    now: DateTime<Utc>,
) {
    let index = match app
        .rings
        .iter()
        .position(|published| *published.ring == *request.ring)
    {
        Some(index) => index,
        None => {
            app.rings.reserve_exact(1);
            app.rings.push(PublishedRing {
                ring: shared.share(&request.ring),
                groups: Vec::new(),
                exclusions: Vec::new(),
                expected_devices: request.expected_devices,
                published_at: now,
            });
            app.rings.len() - 1
        }
    };
    let published = &mut app.rings[index];
    add_new(&mut published.groups, &request.groups, shared);
    add_new(&mut published.exclusions, &request.exclusions, shared);
    published.expected_devices = request.expected_devices;
}

/// Appends the `texts` that `list` does not hold yet, in order.
fn add_new(list: &mut Vec<Shared>, texts: &[String], shared: &mut SharedTexts) {
    for text in texts {
        if !list.iter().any(|held| held.as_str() == text) {
            list.reserve_exact(1);
            list.push(shared.share(text));
        }
    }
}
