//! The execution planes the daemon drives: one connector per plane, each
//! configured explicitly.
//!
//! Every plane the tenant's `ringmaster.yaml` lists must have a connector
//! under `planes:` in the daemon's config — a real one (`type: intune`, ...) or
//! the simulated fleet, said in so many words (`type: sim`). `serve` refuses to
//! start otherwise, naming the plane ([`unconfigured`]). A simulated plane is
//! marked `plane_mode: simulated` in `status`, in events and in every evidence
//! record, and its groups are registered from the entitlements with their
//! expected device counts.
//!
//! The connectors are rebuilt whenever the snapshot's planes or entitlements
//! change, or the daemon config's `planes:` section does; a plane that a new
//! `ringmaster.yaml` lists while the daemon runs without a connector for it is
//! [`Planes::missing`]: its rollouts hold with an event that says so, and go on
//! once the connector is configured.

use crate::model::{Plane, Snapshot};
use crate::planes::sim::SimConfig;
use crate::planes::{Connector, ConnectorConfig};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[error("plane {plane}: {message}")]
pub struct PlanesError {
    pub plane: String,
    pub message: String,
}

/// Whether a plane is real or simulated; said in `status`, in events and in
/// every evidence record (`plane_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlaneMode {
    /// A connector to the plane itself (or to whatever its configuration
    /// points at).
    Live,
    /// `type: sim`: the in-process simulated fleet. Nothing is installed.
    Simulated,
}

impl PlaneMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PlaneMode::Live => "live",
            PlaneMode::Simulated => "simulated",
        }
    }

    /// The mode a connector configuration gives its plane.
    pub fn of(config: &ConnectorConfig) -> PlaneMode {
        match config {
            ConnectorConfig::Sim(_) => PlaneMode::Simulated,
            _ => PlaneMode::Live,
        }
    }
}

/// The connectors, by plane.
#[derive(Debug, Clone, Default)]
pub struct Planes {
    connectors: BTreeMap<Plane, Connector>,
    /// Planes the tenant lists that have no connector.
    missing: BTreeSet<Plane>,
}

/// How a simulated fleet behaves: what the demo and the tests configure as
/// `type: sim` for each plane.
#[derive(Debug, Clone)]
pub struct SimSettings {
    pub seed: u64,
    pub install_delay: (Duration, Duration),
    pub default_success_rate: f64,
}

impl Default for SimSettings {
    fn default() -> Self {
        SimSettings {
            seed: 7,
            install_delay: (Duration::from_secs(10 * 60), Duration::from_secs(3 * 3600)),
            default_success_rate: 0.99,
        }
    }
}

impl SimSettings {
    /// `type: sim` for each of `planes`, in memory (no state file).
    pub fn configs(&self, planes: &[Plane]) -> BTreeMap<Plane, ConnectorConfig> {
        planes
            .iter()
            .map(|plane| {
                let mut config = SimConfig::for_plane(*plane);
                config.seed = self.seed;
                config.install_delay = self.install_delay;
                config.default_success_rate = self.default_success_rate;
                (*plane, ConnectorConfig::Sim(config))
            })
            .collect()
    }
}

/// Builds the configured connectors, naming the plane of the first that
/// cannot be built.
pub fn build_configured(
    configured: &BTreeMap<Plane, ConnectorConfig>,
) -> Result<BTreeMap<Plane, Connector>, PlanesError> {
    configured
        .iter()
        .map(|(plane, config)| {
            config
                .build()
                .map(|connector| (*plane, connector))
                .map_err(|error| PlanesError {
                    plane: plane.as_str().to_owned(),
                    message: error.to_string(),
                })
        })
        .collect()
}

/// The planes `snapshot`'s `ringmaster.yaml` lists.
pub fn listed(snapshot: &Snapshot) -> Vec<Plane> {
    snapshot
        .config
        .as_ref()
        .map(|config| config.planes.clone())
        .unwrap_or_default()
}

/// The planes `snapshot` lists that have no configured connector, in order.
pub fn unconfigured<T>(snapshot: &Snapshot, configured: &BTreeMap<Plane, T>) -> Vec<Plane> {
    listed(snapshot)
        .into_iter()
        .filter(|plane| !configured.contains_key(plane))
        .collect()
}

/// The error `serve` stops with when planes have no connector.
pub fn unconfigured_error(planes: &[Plane]) -> PlanesError {
    let names: Vec<&str> = planes.iter().map(|plane| plane.as_str()).collect();
    let first = names.first().copied().unwrap_or("intune");
    PlanesError {
        plane: names.join(", "),
        message: format!(
            "listed in ringmaster.yaml (planes:) but no connector is configured for it; add it \
             under planes: in the daemon config (--config), e.g. `planes: {{{first}: {{type: \
             {first}, ...}}}}`, or `planes: {{{first}: {{type: sim}}}}` to run it on the \
             simulated fleet (then marked plane_mode: simulated in status, events and evidence)"
        ),
    }
}

impl Planes {
    /// The `configured` connectors of the planes `snapshot` lists. Each
    /// simulated plane gets the snapshot's entitlement groups registered
    /// (those it lacks, or whose size changed). A listed plane without a
    /// connector is [`Planes::missing`].
    pub fn build(
        snapshot: &Snapshot,
        configured: &BTreeMap<Plane, Connector>,
    ) -> Result<Planes, PlanesError> {
        let mut connectors = BTreeMap::new();
        let mut missing = BTreeSet::new();
        for plane in listed(snapshot) {
            let Some(connector) = configured.get(&plane) else {
                missing.insert(plane);
                continue;
            };
            if let Connector::Sim(sim) = connector {
                for rule in snapshot
                    .entitlements
                    .values()
                    .filter(|rule| rule.plane == plane)
                {
                    sim.register_entitlement_if_changed(rule)
                        .map_err(|error| PlanesError {
                            plane: plane.as_str().to_owned(),
                            message: error.to_string(),
                        })?;
                }
            }
            connectors.insert(plane, connector.clone());
        }
        Ok(Planes {
            connectors,
            missing,
        })
    }

    pub fn connector(&self, plane: Plane) -> Option<&Connector> {
        self.connectors.get(&plane)
    }

    /// Planes the tenant lists that have no connector.
    pub fn missing(&self) -> &BTreeSet<Plane> {
        &self.missing
    }

    /// Whether `plane` runs on the simulated fleet.
    pub fn mode(&self, plane: Plane) -> PlaneMode {
        match self.connectors.get(&plane) {
            Some(Connector::Sim(_)) => PlaneMode::Simulated,
            _ => PlaneMode::Live,
        }
    }

    /// The simulated fleet behind a plane, for fault and drift injection.
    pub fn sim(&self, plane: Plane) -> Option<&crate::planes::sim::SimConnector> {
        match self.connectors.get(&plane) {
            Some(Connector::Sim(sim)) => Some(sim),
            _ => None,
        }
    }
}

/// The daemon's planes over time: the configured connectors, rebuilt when the
/// config file's `planes:` section changes, and the [`Planes`] of the current
/// snapshot, rebuilt when the snapshot changes.
#[derive(Debug)]
pub struct PlaneRegistry {
    configs: BTreeMap<Plane, ConnectorConfig>,
    connectors: BTreeMap<Plane, Connector>,
    /// Where `planes:` is read again from, and the state directory its sim
    /// planes keep their fleets in.
    config_file: Option<std::path::PathBuf>,
    state_dir: std::path::PathBuf,
    /// The file's text when last read (nothing is rebuilt while it is unchanged).
    file_text: Option<String>,
    /// The snapshot commit `current` was built for; `None` after a change of
    /// connectors, so the next refresh rebuilds.
    built_for: Option<String>,
    current: Option<Planes>,
}

/// What re-reading the config file did.
#[derive(Debug, Clone, PartialEq)]
pub enum Reload {
    /// The file (or its `planes:`) did not change.
    Unchanged,
    /// These planes got new connectors (added, changed or removed).
    Rebuilt(Vec<Plane>),
    /// The new `planes:` cannot be used; the previous connectors stay.
    Refused(String),
}

impl PlaneRegistry {
    /// Builds the connectors of `configs` (a bad one stops the daemon at start).
    pub fn open(
        configs: BTreeMap<Plane, ConnectorConfig>,
        config_file: Option<std::path::PathBuf>,
        state_dir: std::path::PathBuf,
    ) -> Result<PlaneRegistry, PlanesError> {
        let connectors = build_configured(&configs)?;
        let file_text = config_file
            .as_ref()
            .and_then(|path| std::fs::read_to_string(path).ok());
        Ok(PlaneRegistry {
            configs,
            connectors,
            config_file,
            state_dir,
            file_text,
            built_for: None,
            current: None,
        })
    }

    /// The configured connectors, by plane.
    pub fn configured(&self) -> &BTreeMap<Plane, Connector> {
        &self.connectors
    }

    /// The mode each configured plane runs in.
    pub fn modes(&self) -> BTreeMap<Plane, PlaneMode> {
        self.configs
            .iter()
            .map(|(plane, config)| (*plane, PlaneMode::of(config)))
            .collect()
    }

    /// Reads the config file's `planes:` again; rebuilds the connectors whose
    /// configuration changed (an unchanged one keeps its connector, and so its
    /// token cache and, for a sim plane, its fleet).
    pub fn reload(&mut self) -> Reload {
        let Some(path) = self.config_file.clone() else {
            return Reload::Unchanged;
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) => {
                return Reload::Refused(format!("{}: {error}", path.display()));
            }
        };
        if self.file_text.as_deref() == Some(text.as_str()) {
            return Reload::Unchanged;
        }
        let raw = match super::config::RawConfig::from_file(&path) {
            Ok(raw) => raw,
            Err(error) => return Reload::Refused(error.to_string()),
        };
        self.file_text = Some(text);
        let configs =
            super::config::with_sim_state_files(raw.planes.unwrap_or_default(), &self.state_dir);
        for (plane, config) in &configs {
            if config.plane() != *plane {
                return Reload::Refused(format!(
                    "planes.{}: a connector of type {} drives plane {}",
                    plane.as_str(),
                    config.kind(),
                    config.plane().as_str()
                ));
            }
        }
        let mut connectors = BTreeMap::new();
        let mut changed = Vec::new();
        for (plane, config) in &configs {
            match (self.configs.get(plane), self.connectors.get(plane)) {
                (Some(old), Some(connector)) if old == config => {
                    connectors.insert(*plane, connector.clone());
                }
                _ => {
                    let connector = match config.build() {
                        Ok(connector) => connector,
                        Err(error) => {
                            return Reload::Refused(format!("planes.{}: {error}", plane.as_str()));
                        }
                    };
                    connectors.insert(*plane, connector);
                    changed.push(*plane);
                }
            }
        }
        changed.extend(
            self.configs
                .keys()
                .filter(|plane| !configs.contains_key(plane))
                .copied(),
        );
        if changed.is_empty() {
            return Reload::Unchanged;
        }
        self.configs = configs;
        self.connectors = connectors;
        self.built_for = None;
        Reload::Rebuilt(changed)
    }

    /// The planes for the snapshot of `commit`, rebuilt when the snapshot or
    /// the connectors changed since the last call.
    pub fn refresh(&mut self, commit: &str, snapshot: &Snapshot) -> Result<(), PlanesError> {
        if self.current.is_some() && self.built_for.as_deref() == Some(commit) {
            return Ok(());
        }
        let planes = Planes::build(snapshot, &self.connectors)?;
        for plane in planes.missing() {
            tracing::warn!(
                plane = plane.as_str(),
                "ringmaster.yaml lists a plane with no connector; its rollouts hold until one is configured"
            );
        }
        self.current = Some(planes);
        self.built_for = Some(commit.to_owned());
        Ok(())
    }

    /// Builds every configured connector again (a replica taking the lead
    /// of a shared store: a sim plane re-reads the fleet another replica
    /// changed, clients start with fresh tokens); the next refresh rebuilds
    /// the planes. On failure the previous connectors stay.
    pub fn rebuild_connectors(&mut self) -> Result<(), PlanesError> {
        self.connectors = build_configured(&self.configs)?;
        self.built_for = None;
        Ok(())
    }

    /// The planes of the current snapshot, once one was built.
    pub fn current(&self) -> Option<&Planes> {
        self.current.as_ref()
    }
}
