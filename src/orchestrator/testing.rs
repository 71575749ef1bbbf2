//! Fixtures for the unit tests: the sample tenant's config and a plain intent.

use crate::model::{
    CabPolicy, ChangeFreeze, Config, DeploymentIntent, GateOverrides, Plane, PromotionGates,
    RemediationPolicy, RingDefinition, RollbackPlan, TargetScope,
};
use std::collections::BTreeMap;

/// The five rings of the sample tenant, CAB from ring-2-pilot, one freeze.
pub(crate) fn config() -> Config {
    let ring = |id: &str, soak_hours: f64| RingDefinition {
        id: id.into(),
        name: id.into(),
        soak_hours,
    };
    Config {
        require_signed_commits: false,
        tenant: "contoso".into(),
        risk_model_version: "v1.0".into(),
        rings: vec![
            ring("ring-0-lab", 4.0),
            ring("ring-1-canary", 24.0),
            ring("ring-2-pilot", 48.0),
            ring("ring-3-department", 72.0),
            ring("ring-4-global", 168.0),
        ],
        gates: PromotionGates {
            success_rate_threshold: 0.95,
            time_to_compliance_hours: 24.0,
            max_incidents: 0,
            min_reporting_devices: 3,
            min_reporting_fraction: 0.5,
            on_incident: crate::model::IncidentAction::Fail,
        },
        cab: CabPolicy {
            risk_threshold: 50,
            from_ring: "ring-2-pilot".into(),
            approvals_by_risk: Vec::new(),
        },
        change_freezes: vec![ChangeFreeze {
            name: "year-end-freeze".into(),
            cron: "0 0 0 20 12 *".into(),
            duration_hours: 336.0,
            timezone: "UTC".into(),
        }],
        planes: vec![Plane::Intune],
        remediation: RemediationPolicy::Ticket,
        reconcile_cron: None,
    }
}

/// An intent for `vpn-client 2.1.0` over `rings`, rolling back to 2.0.5.
pub(crate) fn intent(rings: &[&str]) -> DeploymentIntent {
    DeploymentIntent {
        intent_id: "vpn-2.1".into(),
        application_id: "vpn-client".into(),
        version: "2.1.0".into(),
        artifact_hash: format!("sha256:{}", "a".repeat(64)),
        target_scope: TargetScope {
            acquisition_boundary: "acq-001".into(),
            business_unit: "bu-finance".into(),
            sites: None,
            site_class: None,
            rings: rings.iter().map(|ring| ring.to_string()).collect(),
        },
        publisher_scope: None,
        schedule: BTreeMap::new(),
        promotion_gates: GateOverrides::default(),
        rollback_plan: Some(RollbackPlan {
            strategy: "intune-supersedence".into(),
            rollback_version: Some("2.0.5".into()),
            validated: true,
            validation_date: None,
        }),
        requested_by: "alice".into(),
        description: None,
        supersedes: None,
        remediation: None,
    }
}
