//! `contract`: the values that cross the connector boundary, the seed's
//! `ExecutionPlaneConnector` in Rust.
//!
//! A request carries everything a plane needs to publish one ring of one
//! deployment; the answers say what the plane holds and what its devices report.
//! All of them serialize, so the orchestrator can record them in events and
//! evidence as they were.

use crate::model::{Artifact, Plane};
use crate::planes::{ConnectorError, ErrorCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The artifact of one plane, as the connector needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRef {
    pub id: String,
    pub file: String,
    /// `sha256:` followed by 64 lowercase hex digits.
    pub sha256: String,
    pub install: String,
    pub uninstall: String,
    pub detection_type: String,
    pub detection_value: String,
}

impl ArtifactRef {
    /// Refuses (`invalid_request`) a hash that is not `sha256:` and 64
    /// lowercase hex digits: what every connector checks before any request.
    pub fn check_sha256(&self) -> Result<(), ConnectorError> {
        let well_formed = self.sha256.strip_prefix("sha256:").is_some_and(|hex| {
            hex.len() == 64
                && hex
                    .bytes()
                    .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
        });
        if well_formed {
            Ok(())
        } else {
            Err(ConnectorError::new(
                ErrorCode::InvalidRequest,
                format!(
                    "artifact {} has sha256 {:?}; expected sha256: and 64 lowercase hex digits",
                    self.id, self.sha256
                ),
            ))
        }
    }
}

impl From<&Artifact> for ArtifactRef {
    fn from(artifact: &Artifact) -> ArtifactRef {
        ArtifactRef {
            id: artifact.id.clone(),
            file: artifact.file.clone(),
            sha256: artifact.sha256.clone(),
            install: artifact.install.clone(),
            uninstall: artifact.uninstall.clone(),
            detection_type: artifact.detection.detection_type.clone(),
            detection_value: artifact.detection.value.clone(),
        }
    }
}

/// Publish one ring of one deployment: make the app exist on the plane and assign
/// it to the ring's groups. Idempotent on (`correlation_id`, `ring`, group).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishRequest {
    /// The intent's correlation id: the idempotency key on every plane.
    pub correlation_id: String,
    pub intent_id: String,
    pub application_id: String,
    pub application_name: String,
    pub version: String,
    pub plane: Plane,
    pub ring: String,
    pub artifact: ArtifactRef,
    /// Plane group ids from the ring's entitlement rule(s).
    pub groups: Vec<String>,
    /// Plane group ids excluded from the assignment.
    pub exclusions: Vec<String>,
    /// What the entitlement expects; the plane's own count is in the status.
    pub expected_devices: u32,
    /// The version this one replaces on the same devices, if any.
    pub supersedes_version: Option<String>,
    /// The intent's `target_scope.sites`: only devices of these sites. A
    /// connector that cannot narrow its assignment by site refuses the
    /// request (`targeting`); absent means every site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sites: Option<Vec<String>>,
}

/// What `publish` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishResult {
    /// The plane's id of the app (Intune mobileApp, Jamf policy, CM application, ...).
    pub external_id: String,
    /// True when this call created the app or any assignment; false when everything
    /// already existed (an idempotent replay).
    pub created: bool,
}

/// What the devices of one ring report, as of the time asked.
///
/// `installed + failed + pending == targeted`. A device counts as installed when it
/// runs the version the deployment currently delivers, failed when its last attempt
/// at that version failed, pending otherwise (not yet reported, in progress, or
/// found running another version).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RingStatus {
    /// Devices in the groups currently assigned for this ring.
    pub targeted: u32,
    pub installed: u32,
    pub failed: u32,
    pub pending: u32,
    /// Failed devices per reason (`exit_code_1603`, `disk_full`, ...).
    pub failure_reasons: BTreeMap<String, u32>,
    /// When the first device of the ring reported a successful install.
    pub first_install_at: Option<DateTime<Utc>>,
    /// When the last device of the ring reported anything.
    pub last_report_at: Option<DateTime<Utc>>,
}

/// What the plane actually holds for a deployment: what the reconciler compares
/// with the desired state.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ObservedState {
    /// The version most of the deployment's devices run (ties go to the version the
    /// deployment delivers); `None` when no device runs any version of the app.
    pub version: Option<String>,
    /// Group ids the app is assigned to for install right now, sorted, across rings.
    pub assigned_groups: Vec<String>,
    /// Devices in `assigned_groups`.
    pub assigned_devices: u32,
    /// Devices per version they run, over every device the deployment ever
    /// targeted. A minority of devices on another version shows only here.
    pub installed_versions: BTreeMap<String, u32>,
}

/// Everything `query_status` knows about one deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentStatus {
    pub correlation_id: String,
    /// Per ring id, every ring ever published for this correlation id.
    pub rings: BTreeMap<String, RingStatus>,
    pub observed: ObservedState,
}

/// A corrective action on a deployment. Every one is idempotent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Remediation {
    /// Remove every assignment and the app from every device.
    Uninstall,
    /// Roll back by the intent's `rollback_plan.strategy` (see
    /// [`rollback_method`]): deliver `to_version` instead on every device
    /// the deployment targets (`intune-supersedence`, `redeploy-previous`,
    /// and no strategy), or remove the version with the plane's own
    /// uninstall (`jamf-uninstall-policy`, `sccm-uninstall-deployment`,
    /// `landscape-remove-packages`, `ansible-uninstall`). A strategy of
    /// another plane is refused (`invalid_request`) and changes nothing.
    Rollback {
        to_version: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        strategy: Option<String>,
    },
    /// Make the plane match what was published: re-add missing assignments, drop
    /// unexpected ones, re-push the delivered version to devices that lack it.
    Redeploy,
    /// Stop at `ring`: rings published after it are unassigned and later rings
    /// are refused with `ring_pinned`.
    RingPin { ring: String },
    /// Stop every further install of the deployment on the plane, in every
    /// ring: withdraw (or disable) every install assignment and cancel what
    /// the plane has not delivered yet. Devices keep what they installed;
    /// nothing is uninstalled. Publishing any ring of the same correlation
    /// id afterwards is refused with `deployment_halted`.
    Halt,
}

impl Remediation {
    /// The action's name as it appears in events: `uninstall`, `rollback`, ...
    pub fn name(&self) -> &'static str {
        match self {
            Remediation::Uninstall => "uninstall",
            Remediation::Rollback { .. } => "rollback",
            Remediation::Redeploy => "redeploy",
            Remediation::RingPin { .. } => "ring_pin",
            Remediation::Halt => "halt",
        }
    }
}

/// What `remediate` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemediationResult {
    pub action: Remediation,
    /// False when the plane was already in the state asked for (a replay).
    pub applied: bool,
    /// One sentence on what changed (or why nothing did).
    pub detail: String,
}

/// What a rollback does on the plane, as its strategy says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RollbackMethod {
    /// Deliver the previous version over the deployment (supersedence,
    /// re-pointed policies, a deployment of the previous app, a pinned
    /// package version, the install playbook at that version).
    DeliverPrevious,
    /// Remove the deployment's version from its devices with the plane's
    /// uninstall (an uninstall policy, an uninstall deployment,
    /// `RemovePackages`, the uninstall playbook): what
    /// [`Remediation::Uninstall`] does.
    Remove,
}

/// The rollback method of an intent's `rollback_plan.strategy` on `plane`:
/// a plane-specific strategy only on its own plane, `redeploy-previous` on
/// any. `halt` is not a rollback (the orchestrator sends
/// [`Remediation::Halt`]) and, like an unknown strategy, is refused.
pub fn rollback_method(strategy: &str, plane: Plane) -> Result<RollbackMethod, ConnectorError> {
    let (own_plane, method) = match strategy {
        "redeploy-previous" => (None, RollbackMethod::DeliverPrevious),
        "intune-supersedence" => (Some(Plane::Intune), RollbackMethod::DeliverPrevious),
        "jamf-uninstall-policy" => (Some(Plane::Jamf), RollbackMethod::Remove),
        "sccm-uninstall-deployment" => (Some(Plane::Sccm), RollbackMethod::Remove),
        "landscape-remove-packages" => (Some(Plane::Landscape), RollbackMethod::Remove),
        "ansible-uninstall" => (Some(Plane::Ansible), RollbackMethod::Remove),
        other => {
            return Err(ConnectorError::new(
                ErrorCode::InvalidRequest,
                format!("rollback strategy {other:?} is not a rollback a plane carries out"),
            ));
        }
    };
    match own_plane {
        Some(own) if own != plane => Err(ConnectorError::new(
            ErrorCode::InvalidRequest,
            format!(
                "rollback strategy {strategy} is for {} deployments; this one is on {}",
                own.as_str(),
                plane.as_str()
            ),
        )),
        _ => Ok(method),
    }
}
