//! The typed kinds of a governed repository (`apiVersion: ringmaster.dev/v1`).
//!
//! Field names follow the seed design (`intent_id`, `target_scope`, ...). These
//! types are only ever built from documents that already passed their JSON
//! Schema (see `schemas/`), so they can be strict without a second layer of
//! hand-written checks. Runtime facts (status, created_at, risk score, evidence
//! pack id) are never part of an authored document: they are computed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const API_VERSION: &str = "ringmaster.dev/v1";

/// The seven roles of the seed's RBAC model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Admin,
    Packaging,
    Publisher,
    CabApprover,
    SecurityReviewer,
    EndpointOps,
    Auditor,
}

/// The execution planes ringmaster drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Plane {
    Intune,
    Jamf,
    Sccm,
    Landscape,
    Ansible,
}

impl Plane {
    /// Every plane, in declaration order.
    pub const ALL: [Plane; 5] = [
        Plane::Intune,
        Plane::Jamf,
        Plane::Sccm,
        Plane::Landscape,
        Plane::Ansible,
    ];

    /// The plane named `text` (`intune`, ...), if any.
    pub fn named(text: &str) -> Option<Plane> {
        Plane::ALL.into_iter().find(|plane| plane.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Plane::Intune => "intune",
            Plane::Jamf => "jamf",
            Plane::Sccm => "sccm",
            Plane::Landscape => "landscape",
            Plane::Ansible => "ansible",
        }
    }
}

/// A set of tenant segments: who may publish where, where an app may go.
/// `"*"` in a list means every value of that dimension.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Scope {
    pub acquisition_boundaries: Vec<String>,
    pub business_units: Vec<String>,
    /// Absent means every site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sites: Option<Vec<String>>,
}

/// Where one deployment goes: one boundary, one business unit, some rings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetScope {
    pub acquisition_boundary: String,
    pub business_unit: String,
    /// Absent means every site of the business unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sites: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_class: Option<String>,
    /// Ring ids from `ringmaster.yaml`, in rollout order.
    pub rings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RingDefinition {
    pub id: String,
    pub name: String,
    /// How long a ring soaks before its gate is judged, unless the intent says otherwise.
    pub soak_hours: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromotionGates {
    /// Successful installs / targeted devices a ring must reach to pass.
    pub success_rate_threshold: f64,
    pub time_to_compliance_hours: f64,
    /// Open incidents of the rollout's application (for its ring and
    /// business unit) above this fail or hold the gate (`on_incident`).
    pub max_incidents: u32,
    /// Fewer reporting devices than this makes a gate inconclusive.
    #[serde(default = "default_min_reporting")]
    pub min_reporting_devices: u32,
    /// A smaller share of the ring's targeted devices reporting than this
    /// makes a gate inconclusive (3 reports of 6,500 devices say nothing).
    #[serde(default = "default_min_reporting_fraction")]
    pub min_reporting_fraction: f64,
    /// What an open incident above `max_incidents` does to the gate.
    #[serde(default)]
    pub on_incident: IncidentAction,
}

fn default_min_reporting() -> u32 {
    1
}

fn default_min_reporting_fraction() -> f64 {
    0.5
}

/// What an open incident does to a ring's gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentAction {
    /// The gate fails at once and the rollback plan runs (the default).
    #[default]
    Fail,
    /// The rollout holds for a human to decide.
    Hold,
}

/// Partial gates an intent may set; unset fields come from the config.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GateOverrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_rate_threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_compliance_hours: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_incidents: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_reporting_devices: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_reporting_fraction: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_incident: Option<IncidentAction>,
}

impl GateOverrides {
    pub fn apply(&self, defaults: &PromotionGates) -> PromotionGates {
        PromotionGates {
            success_rate_threshold: self
                .success_rate_threshold
                .unwrap_or(defaults.success_rate_threshold),
            time_to_compliance_hours: self
                .time_to_compliance_hours
                .unwrap_or(defaults.time_to_compliance_hours),
            max_incidents: self.max_incidents.unwrap_or(defaults.max_incidents),
            min_reporting_devices: self
                .min_reporting_devices
                .unwrap_or(defaults.min_reporting_devices),
            min_reporting_fraction: self
                .min_reporting_fraction
                .unwrap_or(defaults.min_reporting_fraction),
            on_incident: self.on_incident.unwrap_or(defaults.on_incident),
        }
    }
}

/// One band of the CAB rule: a score above `above` needs `approvals` approvers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalBand {
    pub above: u32,
    pub approvals: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CabPolicy {
    /// A risk score above this needs CAB approval (seed: 50).
    pub risk_threshold: u32,
    /// The first ring that needs CAB approval when it is needed (seed: Ring 2).
    pub from_ring: String,
    /// How many approvers each risk band needs; the highest matching band wins.
    #[serde(default)]
    pub approvals_by_risk: Vec<ApprovalBand>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeFreeze {
    pub name: String,
    /// Seven-field cron expression (sec min hour day month weekday year) or six fields.
    pub cron: String,
    pub duration_hours: f64,
    #[serde(default = "default_timezone")]
    pub timezone: String,
}

fn default_timezone() -> String {
    "UTC".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RemediationPolicy {
    /// Fix drift automatically through the plane.
    Auto,
    /// Record drift and open a remediation ticket (the default).
    #[default]
    Ticket,
}

/// `ringmaster.yaml`: how this tenant rolls out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub tenant: String,
    pub risk_model_version: String,
    pub rings: Vec<RingDefinition>,
    pub gates: PromotionGates,
    pub cab: CabPolicy,
    #[serde(default)]
    pub change_freezes: Vec<ChangeFreeze>,
    pub planes: Vec<Plane>,
    #[serde(default)]
    pub remediation: RemediationPolicy,
    /// Cron schedule of drift reconciliation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconcile_cron: Option<String>,
    /// Every governed commit must carry a valid SSH signature by a
    /// principal's key (see `docs/governance.md`).
    #[serde(default)]
    pub require_signed_commits: bool,
}

impl Config {
    /// Position of a ring in rollout order, if the ring exists.
    pub fn ring_index(&self, ring: &str) -> Option<usize> {
        self.rings.iter().position(|r| r.id == ring)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Principal {
    pub id: String,
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Login on the forge (GitHub), used to map reviews to principals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forge_login: Option<String>,
    /// SSH public keys whose commit signatures are this principal's
    /// (`ssh-ed25519 AAAA… comment`, git's allowed_signers key format).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signing_keys: Vec<String>,
    /// Who this principal is to the API's identity provider: values of the
    /// claim the daemon is configured to read (`oid`, `upn`,
    /// `preferred_username`, `appid`), e.g. an Entra object id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub oidc_subjects: Vec<String>,
    /// Names in the client certificates that authenticate as this principal
    /// on the API (a SAN DNS name, URI or email, or the subject's CN).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificate_subjects: Vec<String>,
    pub roles: Vec<Role>,
    pub scope: Scope,
}

impl Principal {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Application {
    pub id: String,
    pub name: String,
    /// Principal id of the owning team's lead.
    pub owner: String,
    pub category: String,
    pub support_tier: String,
    pub licensing: String,
    /// Runs with elevated rights or is security tooling: always needs CAB from the CAB ring.
    #[serde(default)]
    pub privileged: bool,
    pub planes: Vec<Plane>,
    pub allowed_scope: Scope,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OsRequirement {
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_version: Option<String>,
    #[serde(default)]
    pub arch: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dependency {
    pub application_id: String,
    pub version_req: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignatureFacts {
    pub signed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
    /// The signature was checked against a trusted root by the packaging pipeline.
    #[serde(default)]
    pub verified: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// `vendor`, `internal-build`, `repackaged` or `unknown`.
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slsa_level: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_uri: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    None,
    Low,
    Medium,
    High,
    Critical,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cve {
    pub id: String,
    pub severity: Severity,
    pub component: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_in: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SbomSummary {
    pub format: String,
    pub components: u32,
    #[serde(default)]
    pub cves: Vec<Cve>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// `msi_product_code`, `file`, `registry`, `bundle_id`, `package` or `script`.
    #[serde(rename = "type")]
    pub detection_type: String,
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    pub id: String,
    pub plane: Plane,
    pub file: String,
    /// `sha256:` followed by 64 lowercase hex digits.
    pub sha256: String,
    pub signature: SignatureFacts,
    pub provenance: Provenance,
    pub sbom: SbomSummary,
    pub install: String,
    pub uninstall: String,
    pub detection: Detection,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApplicationVersion {
    pub application_id: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_notes: Option<String>,
    pub os_matrix: Vec<OsRequirement>,
    #[serde(default)]
    pub dependencies: Vec<Dependency>,
    pub artifacts: Vec<Artifact>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaneGroup {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Posture {
    #[serde(default)]
    pub compliant_only: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_os_version: Option<String>,
    #[serde(default)]
    pub encryption_required: bool,
}

/// Which scope segment the entitlement serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentScope {
    pub acquisition_boundary: String,
    pub business_unit: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntitlementRule {
    pub id: String,
    pub plane: Plane,
    pub ring: String,
    pub scope: SegmentScope,
    /// Group ids on the plane (Entra group, Jamf smart group, collection, tag, inventory group).
    pub groups: Vec<PlaneGroup>,
    #[serde(default)]
    pub exclusions: Vec<PlaneGroup>,
    #[serde(default)]
    pub posture: Posture,
    pub expected_devices: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RingWindow {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<DateTime<Utc>>,
    pub duration_hours: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollbackPlan {
    /// Plane-specific strategy (`intune-supersedence`, `jamf-uninstall-policy`,
    /// `sccm-uninstall-deployment`, `landscape-remove-packages`, `ansible-uninstall`,
    /// `redeploy-previous`) or `halt` to stop and alert instead.
    pub strategy: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_version: Option<String>,
    #[serde(default)]
    pub validated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_date: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentIntent {
    pub intent_id: String,
    pub application_id: String,
    pub version: String,
    pub artifact_hash: String,
    pub target_scope: TargetScope,
    /// If present, must equal the requester's scope from `principals/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publisher_scope: Option<Scope>,
    #[serde(default)]
    pub schedule: BTreeMap<String, RingWindow>,
    #[serde(default)]
    pub promotion_gates: GateOverrides,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_plan: Option<RollbackPlan>,
    /// Principal id of the publisher.
    pub requested_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The intent this one replaces (e.g. the previous version's rollout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supersedes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remediation: Option<RemediationPolicy>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalDecision {
    Approved,
    Denied,
    Pending,
}

/// A condition the CAB attached to its approval; the orchestrator enforces it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalCondition {
    pub description: String,
    /// Hold the rollout at this ring ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_at_ring: Option<String>,
    /// ... for at least this many hours before promoting past it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_soak_hours: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRecord {
    pub approval_id: String,
    /// The intent decided on; empty for an application scope approval.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub deployment_intent_id: String,
    /// Digest of the approved intent (`model::digest::intent_sha256`): an
    /// approval of other content does not count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent_sha256: Option<String>,
    /// Set when the record approves a change of an application's
    /// allowed_scope rather than a release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_scope: Option<ScopeApproval>,
    pub decision: ApprovalDecision,
    /// Principal id of the approver.
    pub decided_by: String,
    pub decided_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub assigned_to: Vec<String>,
    #[serde(default)]
    pub conditions: Vec<ApprovalCondition>,
    pub expiry: DateTime<Utc>,
    pub justification: String,
    /// Lets the intent start rings inside a change-freeze window; recorded as such.
    #[serde(default)]
    pub emergency_override: bool,
}

/// What a scope approval approves: one application's new allowed_scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeApproval {
    pub application_id: String,
    /// `model::digest::scope_sha256` of the new allowed_scope.
    pub scope_sha256: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExceptionType {
    Vulnerability,
    UnsignedPackage,
    ScopeViolation,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exception {
    pub exception_id: String,
    /// Artifact id (from an ApplicationVersion) the exception applies to.
    pub artifact_id: String,
    /// The artifact's sha256 when the exception was granted: another binary
    /// under the same id does not get it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_sha256: Option<String>,
    pub exception_type: ExceptionType,
    pub severity: Severity,
    pub details: String,
    /// CVE ids covered, for `vulnerability` exceptions.
    #[serde(default)]
    pub cves: Vec<String>,
    pub compensating_controls: Vec<String>,
    /// Principal id of the security reviewer.
    pub approved_by: String,
    pub approved_at: DateTime<Utc>,
    pub expiry: DateTime<Utc>,
    pub owner: String,
}
