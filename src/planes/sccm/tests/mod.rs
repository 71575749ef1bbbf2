//! Configuration Manager specifics the conformance suite does not reach: the
//! `EnforcementState` mapping, lagging membership, what publish builds (XML,
//! ring collection, deployment fields), uninstall and rollback deployments,
//! `$top`/`$skip` paging without next links, the token-file auth and the
//! configuration's checks. Each runs against the simulator on 127.0.0.1:0.

use super::simulator::{Paging, SccmSimulator, SimulatorOptions};
use super::{SccmAuth, SccmConfig, SccmConnector};
use crate::model::Plane;
use crate::planes::{ArtifactRef, PublishRequest, Secret};
use chrono::TimeZone;
use std::time::Duration;

mod config;
mod publish;
mod status;

pub const TENANT: &str = "8f3c2a1b-4d5e-4f60-9a7b-1c2d3e4f5a6b";
pub const CLIENT: &str = "5c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f";
pub const SECRET: &str = "Zx7~unit-test-sccm-secret";
pub const CANARY: &str = "PS1000C1";
pub const KIOSKS: &str = "PS1000E8";
pub const CORRELATION: &str = "5f0c6e4e-8c1a-5b7e-9a4f-0d3c2b1a0f9e";

pub struct Site {
    pub simulator: SccmSimulator,
    pub config: SccmConfig,
    pub connector: SccmConnector,
    _directory: tempfile::TempDir,
}

pub async fn site_with(
    paging: Paging,
    change: impl FnOnce(&mut SccmConfig, &std::path::Path),
) -> Site {
    let mut options = SimulatorOptions::new("PS1", TENANT, CLIENT, Secret::new(SECRET));
    options.page_size = 3;
    options.paging = paging;
    let simulator = SccmSimulator::new(options);
    simulator.add_collection(CANARY, "Ring Canary", 8);
    simulator.add_collection(KIOSKS, "Kiosks", 2);
    let address = simulator.start().await.expect("simulator");
    let directory = tempfile::tempdir().expect("temp dir");
    let secret_file = directory.path().join("secret");
    std::fs::write(&secret_file, SECRET).expect("secret");
    let auth = SccmAuth::EntraClientCredentials {
        token_url: format!("http://{address}"),
        tenant_id: TENANT.into(),
        client_id: CLIENT.into(),
        client_secret_env: None,
        client_secret_file: Some(secret_file),
        scope: "api://cmg-server-app/.default".into(),
    };
    let mut config = SccmConfig::new(
        &format!("http://{address}/AdminService"),
        auth,
        "\\\\fs01\\packages",
    );
    config.page_size = 3;
    config.request_timeout = Duration::from_secs(2);
    change(&mut config, directory.path());
    let connector = SccmConnector::new(&config).expect("connector");
    Site {
        simulator,
        config,
        connector,
        _directory: directory,
    }
}

pub async fn site() -> Site {
    site_with(Paging::NextLink, |_, _| {}).await
}

pub fn at(minutes: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap() + chrono::Duration::minutes(minutes)
}

pub fn request(version: &str, correlation_id: &str) -> PublishRequest {
    PublishRequest {
        correlation_id: correlation_id.into(),
        intent_id: format!("agent-{version}"),
        application_id: "rd-agent".into(),
        application_name: "Contoso R&D Agent".into(),
        version: version.into(),
        plane: Plane::Sccm,
        ring: "ring-1".into(),
        artifact: ArtifactRef {
            id: format!("rd-agent-{version}-msi"),
            file: format!("RdAgent-{version}.msi"),
            sha256: format!("sha256:{}", "12".repeat(32)),
            install: format!("msiexec /i \"RdAgent-{version}.msi\" /qn"),
            uninstall: "msiexec /x {6A5B4C3D-2E1F-4A0B-9C8D-7E6F5A4B3C2D} /qn".into(),
            detection_type: "msi_product_code".into(),
            detection_value: "{6A5B4C3D-2E1F-4A0B-9C8D-7E6F5A4B3C2D}".into(),
        },
        groups: vec![CANARY.into()],
        exclusions: vec![KIOSKS.into()],
        expected_devices: 8,
        supersedes_version: None,
        sites: None,
    }
}

/// The id of the install deployment of the correlation id's application.
pub fn install_deployment(site: &Site, correlation_id: &str) -> serde_json::Value {
    let ci = site.simulator.application_ids(correlation_id)[0];
    site.simulator
        .assignments(ci)
        .into_iter()
        .find(|assignment| assignment["DesiredConfigType"] == 1)
        .expect("an install deployment")
}
