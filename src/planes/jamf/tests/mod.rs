//! Unit tests of the Jamf Pro connector and its simulator, for what the
//! conformance suite (`tests/conformance_jamf.rs`) does not cover:
//! configuration errors, the policy XML against the reference's sample, the
//! five-connection cap, 409 "Duplicate name" taken as "exists", the user
//! bearer token, and how logs and inventory map into counts.

mod client;
mod config;
mod status;
mod wire;

use super::simulator::{JamfSimulator, SimulatorOptions};
use super::{JamfAuth, JamfConfig, JamfConnector};
use crate::model::Plane;
use crate::planes::{ArtifactRef, PublishRequest, Secret};
use chrono::{DateTime, TimeZone, Utc};
use std::time::Duration;

pub const CLIENT: &str = "8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d";
pub const CORRELATION: &str = "7f1c2d3e-4b5a-5c6d-8e7f-9a0b1c2d3e4f";

/// A simulator on 127.0.0.1:0 with groups 213 (5 Macs), 214 (3) and 87 (1),
/// and a connector pointed at it (secret in a file).
pub struct Setup {
    pub simulator: JamfSimulator,
    pub connector: JamfConnector,
    pub config: JamfConfig,
    /// Holds the secret file; removed with the setup (only held, never read).
    pub _secret_dir: tempfile::TempDir,
}

pub async fn setup(page_size: usize) -> Setup {
    let secret = format!("jamf-unit-secret-{}", uuid::Uuid::new_v4().simple());
    let mut options = SimulatorOptions::new(CLIENT, Secret::new(secret.clone()));
    options.page_size = page_size;
    let simulator = JamfSimulator::new(options);
    simulator.add_group("213", "Ring 1 Canary", 5);
    simulator.add_group("214", "Ring 2 Pilot", 3);
    simulator.add_group("87", "Excluded - Loaner Macs", 1);
    let address = simulator.start().await.expect("simulator");
    let secret_dir = tempfile::Builder::new()
        .prefix("jamf-unit-")
        .tempdir()
        .expect("temp dir");
    let file = secret_dir.path().join("secret");
    std::fs::write(&file, &secret).expect("secret file");
    let mut config = JamfConfig::new(
        &format!("http://{address}"),
        JamfAuth::ClientCredentials {
            client_id: CLIENT.into(),
            client_secret_env: None,
            client_secret_file: Some(file),
        },
    );
    config.page_size = page_size;
    config.request_timeout = Duration::from_millis(2000);
    let connector = JamfConnector::new(&config).expect("connector");
    Setup {
        simulator,
        connector,
        config,
        _secret_dir: secret_dir,
    }
}

pub fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap() + chrono::Duration::minutes(minutes)
}

pub fn request(ring: &str, groups: &[&str]) -> PublishRequest {
    PublishRequest {
        correlation_id: CORRELATION.into(),
        intent_id: "globalprotect-6.2.1".into(),
        application_id: "globalprotect-vpn".into(),
        application_name: "GlobalProtect".into(),
        version: "6.2.1".into(),
        plane: Plane::Jamf,
        ring: ring.into(),
        artifact: ArtifactRef {
            id: "globalprotect-vpn-6.2.1-macos-pkg".into(),
            file: "GlobalProtect-6.2.1.pkg".into(),
            sha256: format!("sha256:{}", "6a".repeat(32)),
            install: "installer -pkg \"GlobalProtect-6.2.1.pkg\" -target /".into(),
            uninstall: "/Applications/GlobalProtect.app/Contents/Resources/uninstall_gp.sh".into(),
            detection_type: "bundle_id".into(),
            detection_value: "com.paloaltonetworks.GlobalProtect.client".into(),
        },
        groups: groups.iter().map(|group| group.to_string()).collect(),
        exclusions: vec!["87".into()],
        expected_devices: 5,
        supersedes_version: None,
        sites: None,
    }
}
