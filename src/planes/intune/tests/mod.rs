//! Intune specifics the conformance suite does not reach: the install-state
//! mapping, the content upload order, macOS packages, supersedence, the write
//! budget, `Retry-After` forms, the ledger, token refresh limits and the
//! configuration's checks. Each runs the connector against the simulator on
//! 127.0.0.1:0.

use super::simulator::{DeviceReport, IntuneSimulator, SimulatorOptions};
use super::{ContentSource, IntuneConfig, IntuneConnector};
use crate::model::Plane;
use crate::planes::{ArtifactRef, PublishRequest, Secret};
use chrono::TimeZone;
use std::time::Duration;

mod client;
mod config;
mod publish;
mod status;

pub const TENANT: &str = "8f3c2a1b-4d5e-4f60-9a7b-1c2d3e4f5a6b";
pub const CLIENT: &str = "2b7e1c9d-3a4f-4e5b-8c6d-7e8f9a0b1c2d";
pub const SECRET: &str = "Qv8~unit-test-client-secret";
pub const CANARY: &str = "11111111-0000-4000-8000-000000000001";
pub const CORRELATION: &str = "5f0c6e4e-8c1a-5b7e-9a4f-0d3c2b1a0f9e";

pub struct Tenant {
    pub simulator: IntuneSimulator,
    pub config: IntuneConfig,
    pub connector: IntuneConnector,
    _directory: tempfile::TempDir,
}

pub async fn tenant_with(change: impl FnOnce(&mut IntuneConfig)) -> Tenant {
    let mut options = SimulatorOptions::new(TENANT, CLIENT, Secret::new(SECRET));
    options.page_size = 3;
    let simulator = IntuneSimulator::new(options);
    simulator.add_group(CANARY, 8);
    let address = simulator.start().await.expect("simulator");
    let directory = tempfile::tempdir().expect("temp dir");
    let secret_file = directory.path().join("secret");
    std::fs::write(&secret_file, SECRET).expect("secret");
    let mut config = IntuneConfig::new(TENANT, CLIENT, ContentSource::SimulatorPlaceholder);
    config.base_url = format!("http://{address}");
    config.token_url = format!("http://{address}");
    config.client_secret_file = Some(secret_file);
    config.request_timeout = Duration::from_secs(2);
    config.upload_poll_interval = Duration::ZERO;
    change(&mut config);
    let connector = IntuneConnector::new(&config).expect("connector");
    Tenant {
        simulator,
        config,
        connector,
        _directory: directory,
    }
}

pub async fn tenant() -> Tenant {
    tenant_with(|_| {}).await
}

pub fn at(minutes: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap() + chrono::Duration::minutes(minutes)
}

pub fn request(version: &str, correlation_id: &str) -> PublishRequest {
    PublishRequest {
        correlation_id: correlation_id.into(),
        intent_id: format!("vpn-client-{version}"),
        application_id: "vpn-client".into(),
        application_name: "Contoso VPN Client".into(),
        version: version.into(),
        plane: Plane::Intune,
        ring: "ring-1".into(),
        artifact: ArtifactRef {
            id: format!("vpn-client-{version}-win"),
            file: format!("VpnClient-{version}.intunewin"),
            sha256: format!("sha256:{}", "cd".repeat(32)),
            install: "msiexec /i \"VpnClient.msi\" /qn".into(),
            uninstall: "msiexec /x {0D3C2B1A-0F9E-4A5B-8C7D-6E5F4A3B2C1D} /qn".into(),
            detection_type: "msi_product_code".into(),
            detection_value: "{0D3C2B1A-0F9E-4A5B-8C7D-6E5F4A3B2C1D}".into(),
        },
        groups: vec![CANARY.into()],
        exclusions: Vec::new(),
        expected_devices: 8,
        supersedes_version: None,
        sites: None,
    }
}

pub fn report(state: &str, detail: &str, error_code: i64, version: &str) -> DeviceReport {
    DeviceReport {
        install_state: state.into(),
        detail: detail.into(),
        error_code,
        display_version: version.into(),
    }
}
