//! The execution planes the daemon drives: one connector per plane.
//!
//! A plane named under `planes:` in the daemon's config runs on that connector
//! (built, and so validated, when the daemon opens). Every other plane the
//! tenant's `ringmaster.yaml` lists runs on the embedded default, the simulated
//! fleet (`planes::sim`), its groups registered from the entitlements with
//! their expected device counts.

use crate::model::{Plane, Snapshot};
use crate::planes::sim::{SimConfig, SimConnector};
use crate::planes::{Connector, ConnectorConfig};
use std::collections::BTreeMap;
use std::path::Path;
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
}

/// The connectors, by plane.
#[derive(Debug, Clone, Default)]
pub struct Planes {
    connectors: BTreeMap<Plane, Connector>,
}

/// How the simulated fleet behaves.
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

impl Planes {
    /// One simulated fleet per configured plane. With `state_dir`, each fleet
    /// persists to `state_dir/sim-<plane>.json`, so a restarted daemon finds the
    /// same devices and assignments.
    pub fn simulated(
        snapshot: &Snapshot,
        settings: &SimSettings,
        state_dir: Option<&Path>,
    ) -> Result<Planes, PlanesError> {
        Planes::build(snapshot, &BTreeMap::new(), settings, state_dir)
    }

    /// The `configured` connectors for their planes, and a simulated fleet for
    /// every other plane the tenant lists.
    pub fn build(
        snapshot: &Snapshot,
        configured: &BTreeMap<Plane, Connector>,
        settings: &SimSettings,
        state_dir: Option<&Path>,
    ) -> Result<Planes, PlanesError> {
        let mut connectors = BTreeMap::new();
        let planes: Vec<Plane> = snapshot
            .config
            .as_ref()
            .map(|c| c.planes.clone())
            .unwrap_or_default();
        for plane in planes {
            if let Some(connector) = configured.get(&plane) {
                connectors.insert(plane, connector.clone());
                continue;
            }
            tracing::info!(
                plane = plane.as_str(),
                "no connector configured: the plane runs on the simulated fleet"
            );
            let error = |message: String| PlanesError {
                plane: plane.as_str().to_owned(),
                message,
            };
            let mut config = SimConfig::for_plane(plane);
            config.seed = settings.seed;
            config.install_delay = settings.install_delay;
            config.default_success_rate = settings.default_success_rate;
            let state_file = state_dir.map(|dir| dir.join(format!("sim-{}.json", plane.as_str())));
            let resumed = state_file.as_ref().is_some_and(|file| file.exists());
            config.state_file = state_file;
            let connector = SimConnector::new(config).map_err(|e| error(e.to_string()))?;
            if !resumed {
                for rule in snapshot
                    .entitlements
                    .values()
                    .filter(|rule| rule.plane == plane)
                {
                    connector
                        .register_entitlement(rule)
                        .map_err(|e| error(e.to_string()))?;
                }
            }
            connectors.insert(plane, Connector::Sim(connector));
        }
        Ok(Planes { connectors })
    }

    pub fn connector(&self, plane: Plane) -> Option<&Connector> {
        self.connectors.get(&plane)
    }

    /// Whether `plane` runs on the simulated fleet.
    pub fn mode(&self, plane: Plane) -> PlaneMode {
        match self.connectors.get(&plane) {
            Some(Connector::Sim(_)) => PlaneMode::Simulated,
            _ => PlaneMode::Live,
        }
    }

    /// The simulated fleet behind a plane, for fault and drift injection.
    pub fn sim(&self, plane: Plane) -> Option<&SimConnector> {
        match self.connectors.get(&plane) {
            Some(Connector::Sim(sim)) => Some(sim),
            _ => None,
        }
    }
}
