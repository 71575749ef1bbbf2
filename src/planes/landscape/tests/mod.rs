//! Landscape specifics the conformance suite does not reach: the signature
//! (a known answer, and the simulator refusing a wrong one), the
//! configuration's checks, the journal across restarts and crashes, and the
//! mapping of `activity_status` into counts. Each plane test runs against the
//! simulator on 127.0.0.1:0.

use super::simulator::{LandscapeSimulator, SimulatorOptions};
use super::{LandscapeAuth, LandscapeConfig, LandscapeConnector};
use crate::model::Plane;
use crate::planes::{ArtifactRef, PublishRequest, Secret};
use chrono::{DateTime, TimeZone, Utc};
use std::time::Duration;

mod config;
mod journal;
mod signature;
mod status;

pub const ACCESS_KEY: &str = "3OTS8UWJOH4XBSRMSOYQ";
pub const SECRET_KEY: &str = "Zx7~unit-test-landscape-secret";
pub const CANARY: &str = "ring-canary";
pub const KIOSKS: &str = "kiosks";
pub const CORRELATION: &str = "5f0c6e4e-8c1a-5b7e-9a4f-0d3c2b1a0f9e";
pub const PACKAGE: &str = "vpn-client";
pub const VERSION: &str = "2.1.0";

/// A simulator with 6 canary computers and 2 kiosks, and a connector on it.
pub struct Account {
    pub simulator: LandscapeSimulator,
    pub config: LandscapeConfig,
    pub connector: LandscapeConnector,
    _directory: tempfile::TempDir,
}

pub async fn account_with(
    change_options: impl FnOnce(&mut SimulatorOptions),
    change_config: impl FnOnce(&mut LandscapeConfig),
) -> Account {
    let mut options = SimulatorOptions::new(ACCESS_KEY, Secret::new(SECRET_KEY));
    options.page_size = 4;
    change_options(&mut options);
    let simulator = LandscapeSimulator::new(options);
    simulator.add_tag(CANARY, 6);
    simulator.add_tag(KIOSKS, 2);
    let address = simulator.start().await.expect("simulator");
    let directory = tempfile::tempdir().expect("temp dir");
    let secret_file = directory.path().join("secret");
    std::fs::write(&secret_file, SECRET_KEY).expect("secret");
    let mut config = LandscapeConfig::new(
        &format!("http://{address}"),
        LandscapeAuth::LegacyApi {
            access_key: ACCESS_KEY.into(),
            secret_key_env: None,
            secret_key_file: Some(secret_file),
        },
        directory.path().join("journal.sqlite"),
    );
    config.page_size = 4;
    config.request_timeout = Duration::from_millis(500);
    change_config(&mut config);
    let connector = LandscapeConnector::new(&config).expect("connector");
    Account {
        simulator,
        config,
        connector,
        _directory: directory,
    }
}

pub async fn account() -> Account {
    account_with(|_| {}, |_| {}).await
}

impl Account {
    /// A second connector on the same journal file: a restarted daemon.
    pub fn restarted(&self) -> LandscapeConnector {
        LandscapeConnector::new(&self.config).expect("connector")
    }
}

pub fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap() + chrono::Duration::minutes(minutes)
}

pub fn request() -> PublishRequest {
    PublishRequest {
        correlation_id: CORRELATION.into(),
        intent_id: "vpn-client-2.1".into(),
        application_id: PACKAGE.into(),
        application_name: "Contoso VPN Client".into(),
        version: VERSION.into(),
        plane: Plane::Landscape,
        ring: "ring-1-canary".into(),
        artifact: ArtifactRef {
            id: "vpn-client-2.1.0-deb".into(),
            file: "vpn-client_2.1.0_amd64.deb".into(),
            sha256: format!("sha256:{}", "ab".repeat(32)),
            install: "apt-get install -y vpn-client=2.1.0".into(),
            uninstall: "apt-get remove -y vpn-client".into(),
            detection_type: "deb_package".into(),
            detection_value: PACKAGE.into(),
        },
        groups: vec![CANARY.into()],
        exclusions: vec![KIOSKS.into()],
        expected_devices: 6,
        supersedes_version: None,
        sites: None,
    }
}
