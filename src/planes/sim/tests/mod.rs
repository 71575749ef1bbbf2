//! Tests of the sim plane's behaviour: status over simulated time, per-version
//! success, remediations, drift, and its internals. The connector contract as
//! seen from outside (idempotency, errors, persistence, configuration) is in
//! `tests/planes_sim.rs`.

mod drift;
mod internals;
mod remediation;
mod state_file;
mod status;

use super::SimConfig;
use super::SimConnector;
use crate::model::Plane;
use crate::planes::{
    ArtifactRef, DeploymentStatus, ExecutionPlaneConnector, PublishRequest, Remediation, RingStatus,
};
use chrono::{DateTime, TimeZone, Utc};
use std::time::Duration;

pub const CORRELATION: &str = "5f0c6e4e-8c1a-5b7e-9a4f-0d3c2b1a0f9e";
pub const LAB: &str = "grp-lab";
pub const CANARY: &str = "grp-canary";
pub const PILOT: &str = "grp-pilot";
pub const ROGUE: &str = "grp-rogue";
pub const MAX_DELAY_MINUTES: i64 = 120;

pub fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap()
}

pub fn at(minutes: i64) -> DateTime<Utc> {
    start() + chrono::Duration::minutes(minutes)
}

pub fn config(seed: u64) -> SimConfig {
    SimConfig {
        plane: Plane::Intune,
        seed,
        install_delay: (Duration::from_secs(10 * 60), Duration::from_secs(120 * 60)),
        default_success_rate: 0.9,
        state_file: None,
    }
}

pub fn fleet_with(config: SimConfig) -> SimConnector {
    let sim = SimConnector::new(config).expect("sim plane");
    for (group, devices) in [(LAB, 20), (CANARY, 400), (PILOT, 300), (ROGUE, 50)] {
        sim.add_group(group, devices).expect("group");
    }
    sim
}

pub fn fleet(seed: u64) -> SimConnector {
    fleet_with(config(seed))
}

pub fn request(ring: &str, groups: &[&str]) -> PublishRequest {
    PublishRequest {
        correlation_id: CORRELATION.into(),
        intent_id: "vpn-client-2.1".into(),
        application_id: "vpn-client".into(),
        application_name: "Contoso VPN Client".into(),
        version: "2.1.0".into(),
        plane: Plane::Intune,
        ring: ring.into(),
        artifact: ArtifactRef {
            id: "vpn-client-2.1.0-win".into(),
            file: "VpnClient-2.1.0.intunewin".into(),
            sha256: format!("sha256:{}", "ab".repeat(32)),
            install: "msiexec /i VpnClient.msi /qn".into(),
            uninstall: "msiexec /x {GUID} /qn".into(),
            detection_type: "msi_product_code".into(),
            detection_value: "{0D3C2B1A-0F9E-4A5B-8C7D-6E5F4A3B2C1D}".into(),
        },
        groups: groups.iter().map(|group| group.to_string()).collect(),
        exclusions: vec!["grp-kiosks".into()],
        expected_devices: 400,
        supersedes_version: Some("2.0.5".into()),
        sites: None,
    }
}

/// A Landscape publish of htop 3.3.0 (a .deb) to `groups` in `ring`: the
/// request of the internals and state-file tests.
pub fn htop_request(correlation_id: &str, ring: &str, groups: &[&str]) -> PublishRequest {
    PublishRequest {
        correlation_id: correlation_id.into(),
        intent_id: "htop-3.3".into(),
        application_id: "htop".into(),
        application_name: "htop".into(),
        version: "3.3.0".into(),
        plane: Plane::Landscape,
        ring: ring.into(),
        artifact: ArtifactRef {
            id: "htop-3.3.0-deb".into(),
            file: "htop_3.3.0_amd64.deb".into(),
            sha256: format!("sha256:{}", "0f".repeat(32)),
            install: "apt-get install -y htop=3.3.0".into(),
            uninstall: "apt-get remove -y htop".into(),
            detection_type: "package".into(),
            detection_value: "htop".into(),
        },
        groups: groups.iter().map(|group| group.to_string()).collect(),
        exclusions: Vec::new(),
        expected_devices: 10,
        supersedes_version: Some("3.2.2".into()),
        sites: None,
    }
}

pub fn canary() -> PublishRequest {
    request("ring-1-canary", &[CANARY])
}

pub fn ring<'a>(status: &'a DeploymentStatus, ring: &str) -> &'a RingStatus {
    status.rings.get(ring).expect("ring in status")
}

pub fn assert_counts_add_up(ring: &RingStatus) {
    assert_eq!(
        ring.installed + ring.failed + ring.pending,
        ring.targeted,
        "{ring:?}"
    );
    assert_eq!(
        ring.failure_reasons.values().sum::<u32>(),
        ring.failed,
        "{ring:?}"
    );
}

/// Remediates twice: the first call applies, the replay does not.
pub async fn contract_remediation_is_idempotent(
    connector: &impl ExecutionPlaneConnector,
    correlation_id: &str,
    remediation: Remediation,
    now: DateTime<Utc>,
) -> DeploymentStatus {
    let first = connector
        .remediate(correlation_id, &remediation, now)
        .await
        .expect("remediate");
    assert!(
        first.applied,
        "{remediation:?} first time: {}",
        first.detail
    );
    assert_eq!(first.action, remediation);
    let replay = connector
        .remediate(correlation_id, &remediation, now)
        .await
        .expect("replay");
    assert!(
        !replay.applied,
        "{remediation:?} replayed: {}",
        replay.detail
    );
    connector
        .query_status(correlation_id, now)
        .await
        .expect("status")
}
