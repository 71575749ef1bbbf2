//! `simulators`: every plane's HTTP simulator behind one handle, for
//! `ringmaster simulate <plane>` and `ringmaster demo --planes simulators`.
//!
//! A [`PlaneSimulator`] is started on a listener, gets the groups the governed
//! repository's entitlements name (with their expected device counts), and
//! answers the [`ConnectorConfig`] a daemon needs to reach it, the secret in a
//! file. [`PlaneSimulator::check_in`] makes the devices report on the caller's
//! clock: the simulators never decide on their own when a device installs.
//!
//! The simulators themselves (paths, bodies, paging) live with their
//! connectors: `planes::<plane>::simulator`; what they share (faults, the
//! request count, bearer tokens, screening, page links, serving) is [`kit`].

pub mod kit;

use crate::model::{EntitlementRule, Plane};
use crate::planes::ansible::awx::AwxConfig;
use crate::planes::ansible::awx::simulator::{AskOnLaunch, AwxSimulator};
use crate::planes::intune::simulator::{IntuneSimulator, SimulatorOptions as IntuneOptions};
use crate::planes::intune::{ContentSource, IntuneConfig, RequestBudget};
use crate::planes::jamf::simulator::{JamfSimulator, SimulatorOptions as JamfOptions};
use crate::planes::jamf::{JamfAuth, JamfConfig};
use crate::planes::landscape::simulator::{
    LandscapeSimulator, SimulatorOptions as LandscapeOptions,
};
use crate::planes::landscape::{LandscapeAuth, LandscapeConfig};
use crate::planes::sccm::simulator::{SccmSimulator, SimulatorOptions as SccmOptions};
use crate::planes::sccm::{SccmAuth, SccmConfig};
use crate::planes::{ConnectorConfig, Secret};
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::TcpListener;

/// The planes with an HTTP simulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum SimulatedPlane {
    /// Microsoft Graph (Intune) and the identity platform's token endpoint.
    Intune,
    /// Jamf Pro: the Jamf Pro API (JSON) and the Classic API (XML).
    Jamf,
    /// Configuration Manager's AdminService, with an Entra token endpoint.
    Sccm,
    /// Canonical Landscape: the signed legacy API and the REST login.
    Landscape,
    /// AWX / Automation Controller (`/api/v2/`): the Ansible plane's second mode.
    Awx,
}

impl SimulatedPlane {
    pub const ALL: [SimulatedPlane; 5] = [
        SimulatedPlane::Intune,
        SimulatedPlane::Jamf,
        SimulatedPlane::Sccm,
        SimulatedPlane::Landscape,
        SimulatedPlane::Awx,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SimulatedPlane::Intune => "intune",
            SimulatedPlane::Jamf => "jamf",
            SimulatedPlane::Sccm => "sccm",
            SimulatedPlane::Landscape => "landscape",
            SimulatedPlane::Awx => "awx",
        }
    }

    /// The plane whose entitlements the simulator takes its groups from.
    pub fn plane(self) -> Plane {
        match self {
            SimulatedPlane::Intune => Plane::Intune,
            SimulatedPlane::Jamf => Plane::Jamf,
            SimulatedPlane::Sccm => Plane::Sccm,
            SimulatedPlane::Landscape => Plane::Landscape,
            SimulatedPlane::Awx => Plane::Ansible,
        }
    }

    /// The simulator standing in for `plane`, if there is one.
    pub fn for_plane(plane: Plane) -> Option<SimulatedPlane> {
        SimulatedPlane::ALL
            .into_iter()
            .find(|simulated| simulated.plane() == plane)
    }
}

/// The identities the simulators accept: fixed, well-formed, not secret.
const TENANT_ID: &str = "8f3c2a1b-4d5e-4f60-9a7b-1c2d3e4f5a6b";
const INTUNE_CLIENT_ID: &str = "3e1a5c7d-2b4f-4a6e-8c0d-1f2e3a4b5c6d";
const SCCM_CLIENT_ID: &str = "5c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f";
const SCCM_SITE: &str = "PS1";
const JAMF_CLIENT_ID: &str = "3f1c2a4b-5d6e-4f70-8a9b-0c1d2e3f4a5b";
/// The job templates the AWX simulator holds: install, uninstall, verify.
const AWX_INSTALL: u64 = 11;
/// The Landscape API access key the simulator knows (not a secret).
const LANDSCAPE_ACCESS_KEY: &str = "3OTS8UWJOH4XBSRMSOYQ";
const AWX_UNINSTALL: u64 = 12;
const AWX_VERIFY: u64 = 13;

#[derive(Clone)]
enum Inner {
    Intune(IntuneSimulator),
    Jamf(JamfSimulator),
    Sccm(SccmSimulator),
    Landscape(LandscapeSimulator),
    Awx(AwxSimulator),
}

/// One plane's simulator and the secret it accepts.
#[derive(Clone)]
pub struct PlaneSimulator {
    kind: SimulatedPlane,
    inner: Inner,
    secret: Secret,
    /// Group ids already registered (entitlements share exclusion groups).
    registered: std::sync::Arc<std::sync::Mutex<BTreeSet<String>>>,
}

impl std::fmt::Debug for PlaneSimulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlaneSimulator")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Devices in an exclusion group that no ring targets.
const EXCLUDED_DEVICES: u32 = 2;

impl PlaneSimulator {
    /// A simulator accepting `secret` as its client secret (or key).
    pub fn new(kind: SimulatedPlane, secret: Secret) -> PlaneSimulator {
        let inner = match kind {
            SimulatedPlane::Intune => {
                let mut options = IntuneOptions::new(TENANT_ID, INTUNE_CLIENT_ID, secret.clone());
                options.page_size = 1000;
                Inner::Intune(IntuneSimulator::new(options))
            }
            SimulatedPlane::Jamf => {
                let mut options = JamfOptions::new(JAMF_CLIENT_ID, secret.clone());
                options.page_size = 1000;
                Inner::Jamf(JamfSimulator::new(options))
            }
            SimulatedPlane::Sccm => {
                let options =
                    SccmOptions::new(SCCM_SITE, TENANT_ID, SCCM_CLIENT_ID, secret.clone());
                Inner::Sccm(SccmSimulator::new(options))
            }
            SimulatedPlane::Landscape => Inner::Landscape(LandscapeSimulator::new(
                LandscapeOptions::new(LANDSCAPE_ACCESS_KEY, secret.clone()),
            )),
            SimulatedPlane::Awx => {
                let simulator = AwxSimulator::new(secret.expose(), 200);
                for template in [AWX_INSTALL, AWX_UNINSTALL, AWX_VERIFY] {
                    simulator.add_template(template, AskOnLaunch::all());
                }
                Inner::Awx(simulator)
            }
        };
        PlaneSimulator {
            kind,
            inner,
            secret,
            registered: Default::default(),
        }
    }

    /// A simulator with a fresh random secret.
    pub fn with_random_secret(kind: SimulatedPlane) -> PlaneSimulator {
        PlaneSimulator::new(kind, random_secret())
    }

    pub fn kind(&self) -> SimulatedPlane {
        self.kind
    }

    pub fn secret(&self) -> &Secret {
        &self.secret
    }

    pub fn intune(&self) -> Option<&IntuneSimulator> {
        match &self.inner {
            Inner::Intune(simulator) => Some(simulator),
            _ => None,
        }
    }

    pub fn awx(&self) -> Option<&AwxSimulator> {
        match &self.inner {
            Inner::Awx(simulator) => Some(simulator),
            _ => None,
        }
    }

    pub fn jamf(&self) -> Option<&JamfSimulator> {
        match &self.inner {
            Inner::Jamf(simulator) => Some(simulator),
            _ => None,
        }
    }

    pub fn sccm(&self) -> Option<&SccmSimulator> {
        match &self.inner {
            Inner::Sccm(simulator) => Some(simulator),
            _ => None,
        }
    }

    /// Registers the groups of the entitlements of this simulator's plane: each
    /// rule's expected devices spread over its groups; exclusion groups get a
    /// couple of devices of their own. A group named twice is registered once.
    /// Answers (groups, devices) newly registered.
    pub fn register<'a>(
        &self,
        rules: impl IntoIterator<Item = &'a EntitlementRule>,
    ) -> (usize, u64) {
        self.register_capped(rules, u32::MAX)
    }

    /// As [`PlaneSimulator::register`], with at most `cap` devices per group:
    /// a lab-sized plane for a demo that must run in seconds.
    pub fn register_capped<'a>(
        &self,
        rules: impl IntoIterator<Item = &'a EntitlementRule>,
        cap: u32,
    ) -> (usize, u64) {
        let mut registered = self
            .registered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (mut groups, mut devices) = (0usize, 0u64);
        for rule in rules
            .into_iter()
            .filter(|rule| rule.plane == self.kind.plane())
        {
            let count = u32::try_from(rule.groups.len().max(1)).unwrap_or(u32::MAX);
            let (share, remainder) = (rule.expected_devices / count, rule.expected_devices % count);
            let included = rule.groups.iter().enumerate().map(|(position, group)| {
                let extra = u32::from(u32::try_from(position).unwrap_or(u32::MAX) < remainder);
                (group, share + extra)
            });
            let excluded = rule
                .exclusions
                .iter()
                .map(|group| (group, EXCLUDED_DEVICES));
            for (group, device_count) in included.chain(excluded) {
                let device_count = device_count.min(cap);
                if !registered.insert(group.id.clone()) {
                    continue;
                }
                let name = group.name.as_deref().unwrap_or(&group.id);
                self.add_group(&group.id, name, device_count);
                groups += 1;
                devices += u64::from(device_count);
            }
        }
        (groups, devices)
    }

    /// Registers one group (a Jamf computer group, a collection, a tag, an
    /// inventory group) of `devices` new devices (the fleet bench's rings).
    pub fn add_group(&self, id: &str, name: &str, devices: u32) {
        match &self.inner {
            Inner::Intune(simulator) => simulator.add_group(id, devices),
            Inner::Jamf(simulator) => simulator.add_group(id, name, devices),
            Inner::Sccm(simulator) => simulator.add_collection(id, name, devices),
            Inner::Landscape(simulator) => simulator.add_tag(id, devices),
            Inner::Awx(simulator) => {
                let hosts: Vec<String> = (1..=devices)
                    .map(|n| format!("{}-{n:04}", id.replace('_', "-")))
                    .collect();
                let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
                simulator.add_group(id, &hosts);
            }
        }
    }

    /// Every targeted device without a final result reports at `at`; a share
    /// `1 - success_rate` of them fails. Answers how many results changed.
    pub fn check_in(&self, at: DateTime<Utc>, success_rate: f64) -> usize {
        match &self.inner {
            Inner::Intune(simulator) => simulator.check_in(at, success_rate),
            Inner::Jamf(simulator) => simulator.check_in(at, success_rate),
            Inner::Sccm(simulator) => simulator.check_in(at, success_rate),
            Inner::Landscape(simulator) => simulator.check_in(at, success_rate),
            Inner::Awx(simulator) => simulator.check_in(at, success_rate),
        }
    }

    /// Serves on `listener` until `shutdown` completes.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        match &self.inner {
            Inner::Intune(simulator) => {
                crate::planes::intune::simulator::serve(listener, simulator.clone(), shutdown).await
            }
            Inner::Jamf(simulator) => {
                crate::planes::jamf::simulator::serve(listener, simulator.clone(), shutdown).await
            }
            Inner::Sccm(simulator) => {
                crate::planes::sccm::simulator::serve(listener, simulator.clone(), shutdown).await
            }
            Inner::Landscape(simulator) => {
                crate::planes::landscape::simulator::serve(listener, simulator.clone(), shutdown)
                    .await
            }
            Inner::Awx(simulator) => {
                crate::planes::ansible::awx::simulator::serve(listener, simulator.clone(), shutdown)
                    .await
            }
        }
    }

    /// Binds `address`, serves in a background task for as long as the
    /// runtime runs, and answers the bound address.
    pub async fn start(&self, address: SocketAddr) -> std::io::Result<SocketAddr> {
        let listener = TcpListener::bind(address).await?;
        let bound = listener.local_addr()?;
        let simulator = self.clone();
        tokio::spawn(async move {
            if let Err(error) = simulator.serve(listener, std::future::pending()).await {
                tracing::warn!(%error, plane = simulator.kind.as_str(), "simulator stopped");
            }
        });
        Ok(bound)
    }

    /// Writes the secret to `path` (mode 0600 on Unix).
    pub fn write_secret(&self, path: &Path) -> std::io::Result<()> {
        write_private(path, self.secret.expose())
    }

    /// The connector configuration that reaches this simulator at `address`,
    /// the secret read from `secret_file` (see [`PlaneSimulator::write_secret`]).
    /// `work_dir` is where a connector keeps local state (Landscape's journal).
    pub fn connector_config(
        &self,
        address: SocketAddr,
        secret_file: &Path,
        work_dir: &Path,
    ) -> ConnectorConfig {
        let root = format!("http://{address}");
        match self.kind {
            SimulatedPlane::Intune => {
                let mut config = IntuneConfig::new(
                    TENANT_ID,
                    INTUNE_CLIENT_ID,
                    ContentSource::SimulatorPlaceholder,
                );
                config.base_url = root.clone();
                config.token_url = root;
                config.client_secret_file = Some(secret_file.to_path_buf());
                // The simulator has no service-side budget; a demo moves
                // simulated days in seconds, so the client's own budget is
                // widened to match (the documented one stays the default).
                config.request_budget = RequestBudget {
                    requests: 1_000_000,
                    window_seconds: Duration::from_secs(20),
                };
                config.write_budget = RequestBudget {
                    requests: 1_000_000,
                    window_seconds: Duration::from_secs(20),
                };
                config.upload_poll_interval = Duration::from_millis(10);
                ConnectorConfig::Intune(config)
            }
            SimulatedPlane::Jamf => {
                let auth = JamfAuth::ClientCredentials {
                    client_id: JAMF_CLIENT_ID.into(),
                    client_secret_env: None,
                    client_secret_file: Some(secret_file.to_path_buf()),
                };
                let mut config = JamfConfig::new(&root, auth);
                config.page_size = 1000;
                ConnectorConfig::Jamf(config)
            }
            SimulatedPlane::Sccm => {
                let auth = SccmAuth::EntraClientCredentials {
                    token_url: root.clone(),
                    tenant_id: TENANT_ID.into(),
                    client_id: SCCM_CLIENT_ID.into(),
                    client_secret_env: None,
                    client_secret_file: Some(secret_file.to_path_buf()),
                    scope: "api://cmg-server-app/.default".into(),
                };
                ConnectorConfig::Sccm(SccmConfig::new(
                    &format!("{root}/AdminService"),
                    auth,
                    "\\\\fs01\\packages",
                ))
            }
            SimulatedPlane::Landscape => {
                let auth = LandscapeAuth::LegacyApi {
                    access_key: LANDSCAPE_ACCESS_KEY.into(),
                    secret_key_env: None,
                    secret_key_file: Some(secret_file.to_path_buf()),
                };
                ConnectorConfig::Landscape(LandscapeConfig::new(
                    &root,
                    auth,
                    work_dir.join("landscape-journal.sqlite"),
                ))
            }
            SimulatedPlane::Awx => {
                let inventory = self.awx().map_or(1, AwxSimulator::inventory_id);
                let mut config = AwxConfig::new(&root, secret_file.to_path_buf(), inventory);
                config.install_template_id = AWX_INSTALL;
                config.uninstall_template_id = AWX_UNINSTALL;
                config.verify_template_id = AWX_VERIFY;
                ConnectorConfig::Awx(config)
            }
        }
    }
}

/// A fresh client secret: 256 random bits as text.
pub fn random_secret() -> Secret {
    Secret::new(format!(
        "{}~{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    ))
}

/// Writes `content` to a new file readable only by its owner. The file
/// must not exist yet, not even as a dangling symbolic link (`O_EXCL`): a
/// file planted at the path between looking and writing is refused, never
/// followed or truncated.
pub fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    std::io::Write::write_all(&mut file, content.as_bytes())
}

/// Where a simulator's secret goes when the caller names no file:
/// `<plane>-<port>.secret` in [`private_temp_dir`].
pub fn default_secret_file(kind: SimulatedPlane, address: SocketAddr) -> std::io::Result<PathBuf> {
    let directory = private_temp_dir(&std::env::temp_dir())?;
    Ok(directory.join(format!("{}-{}.secret", kind.as_str(), address.port())))
}

/// `ringmaster-simulate-<uid>` under `base` (the temp directory, shared by
/// every user), made readable by its owner only (0700) when missing. An
/// existing one is used only when it is a real directory (not a symbolic
/// link), owned by this user, that no one else can read or write; anything
/// else is refused with what is wrong, so a secret is never written where
/// another user put the path.
pub fn private_temp_dir(base: &Path) -> std::io::Result<PathBuf> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
        let uid = rustix::process::getuid().as_raw();
        let directory = base.join(format!("ringmaster-simulate-{uid}"));
        match std::fs::DirBuilder::new().mode(0o700).create(&directory) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(error),
        }
        let metadata = std::fs::symlink_metadata(&directory)?;
        let refuse = |why: &str| {
            Err(std::io::Error::other(format!(
                "{} {why}: remove it, or name a secret file with --secret-file",
                directory.display()
            )))
        };
        if !metadata.file_type().is_dir() {
            return refuse("is not a directory (a symbolic link or a file)");
        }
        if metadata.uid() != uid {
            return refuse(&format!("belongs to user {}, not to you", metadata.uid()));
        }
        if metadata.permissions().mode() & 0o077 != 0 {
            return refuse(&format!(
                "can be read or written by other users (mode {:o})",
                metadata.permissions().mode() & 0o7777
            ));
        }
        Ok(directory)
    }
    #[cfg(not(unix))]
    {
        let directory = base.join("ringmaster-simulate");
        std::fs::create_dir_all(&directory)?;
        Ok(directory)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn the_default_secret_directory_is_private_to_its_user() {
        let base = tempfile::tempdir().unwrap();
        let directory = private_temp_dir(base.path()).unwrap();
        let metadata = std::fs::symlink_metadata(&directory).unwrap();
        assert!(metadata.is_dir());
        assert_eq!(metadata.permissions().mode() & 0o777, 0o700);
        assert_eq!(metadata.uid(), rustix::process::getuid().as_raw());
        // Used again as it is.
        assert_eq!(private_temp_dir(base.path()).unwrap(), directory);
        let file =
            default_secret_file(SimulatedPlane::Intune, "127.0.0.1:8443".parse().unwrap()).unwrap();
        assert!(file.ends_with("intune-8443.secret"), "{}", file.display());
    }

    #[test]
    fn a_planted_secret_directory_is_refused() {
        let uid = rustix::process::getuid().as_raw();
        // Another user's directory at the path, open to everyone.
        let base = tempfile::tempdir().unwrap();
        let path = base.path().join(format!("ringmaster-simulate-{uid}"));
        std::fs::create_dir(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
        let error = private_temp_dir(base.path()).unwrap_err().to_string();
        assert!(error.contains("other users (mode 777)"), "{error}");
        assert!(error.contains("--secret-file"), "{error}");

        // A symbolic link to a directory the attacker controls.
        let base = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::set_permissions(elsewhere.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let path = base.path().join(format!("ringmaster-simulate-{uid}"));
        std::os::unix::fs::symlink(elsewhere.path(), &path).unwrap();
        let error = private_temp_dir(base.path()).unwrap_err().to_string();
        assert!(error.contains("is not a directory"), "{error}");

        // Owned by someone else (needs root to make one; CI runs as root).
        if uid == 0 {
            let base = tempfile::tempdir().unwrap();
            let path = base.path().join("ringmaster-simulate-0");
            std::fs::create_dir(&path).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
            std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
            let error = private_temp_dir(base.path()).unwrap_err().to_string();
            assert!(error.contains("belongs to user 65534"), "{error}");
        }
    }

    #[test]
    fn a_secret_is_never_written_through_a_planted_link_or_over_a_file() {
        let directory = tempfile::tempdir().unwrap();
        let target = directory.path().join("victim");
        let link = directory.path().join("intune-8443.secret");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let error = write_private(&link, "s3cret").unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::AlreadyExists);
        assert!(!target.exists(), "the link was followed");

        let existing = directory.path().join("existing");
        std::fs::write(&existing, "keep me").unwrap();
        assert!(write_private(&existing, "s3cret").is_err());
        assert_eq!(std::fs::read_to_string(&existing).unwrap(), "keep me");

        let fresh = directory.path().join("fresh.secret");
        write_private(&fresh, "s3cret").unwrap();
        assert_eq!(std::fs::read_to_string(&fresh).unwrap(), "s3cret");
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
