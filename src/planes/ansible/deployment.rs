//! `deployment`: the connector's record of one deployment on the Ansible plane,
//! `<work dir>/deployments/<correlation id>.json`.
//!
//! Ansible has no server holding apps and assignments; this file is the plane's
//! memory of them: the rings published (with their inventory groups), the runs
//! made for each ring, and the state remediations left. It is written through a
//! rename, so a crash leaves the old record or the new one.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What remediations left of a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DeploymentState {
    Active,
    /// Rings after `ring` were unassigned; later rings are refused.
    Pinned {
        ring: String,
    },
    /// `to_version` was delivered instead on every targeted host.
    RolledBack {
        to_version: String,
    },
    /// The application was removed from every host.
    Uninstalled,
    /// Halted: no ring is assigned or run again; hosts keep what they got.
    Halted,
}

/// One published ring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingRecord {
    pub ring: String,
    pub groups: Vec<String>,
    /// Run folder names for this ring, oldest first (install, repairs).
    pub runs: Vec<RunRecord>,
}

/// One run made for a ring, and the caller's time it was made at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub name: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    pub correlation_id: String,
    pub application_id: String,
    pub version: String,
    pub exclusions: Vec<String>,
    pub rings: Vec<RingRecord>,
    #[serde(flatten)]
    pub state: DeploymentState,
}

impl Deployment {
    /// The version the deployment delivers now.
    pub fn delivered_version(&self) -> &str {
        match &self.state {
            DeploymentState::RolledBack { to_version } => to_version,
            _ => &self.version,
        }
    }

    /// Whether ring `index` is still assigned.
    pub fn ring_active(&self, index: usize) -> bool {
        match &self.state {
            DeploymentState::Active | DeploymentState::RolledBack { .. } => true,
            DeploymentState::Uninstalled | DeploymentState::Halted => false,
            DeploymentState::Pinned { ring } => self
                .rings
                .iter()
                .position(|record| &record.ring == ring)
                .is_some_and(|pinned| index <= pinned),
        }
    }

    /// Groups assigned now, sorted, across rings.
    pub fn assigned_groups(&self) -> Vec<String> {
        let mut groups: Vec<String> = self
            .rings
            .iter()
            .enumerate()
            .filter(|(index, _)| self.ring_active(*index))
            .flat_map(|(_, record)| record.groups.iter().cloned())
            .collect();
        groups.sort();
        groups.dedup();
        groups
    }
}

/// Where deployment records live.
#[derive(Debug, Clone)]
pub struct DeploymentStore {
    pub dir: PathBuf,
}

impl DeploymentStore {
    fn path(&self, correlation_id: &str) -> PathBuf {
        self.dir.join(format!("{correlation_id}.json"))
    }

    pub async fn load(&self, correlation_id: &str) -> std::io::Result<Option<Deployment>> {
        match tokio::fs::read_to_string(self.path(correlation_id)).await {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidData, error)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    pub async fn save(&self, deployment: &Deployment) -> std::io::Result<()> {
        tokio::fs::create_dir_all(&self.dir).await?;
        let path = self.path(&deployment.correlation_id);
        let partial = partial_path(&path);
        let text = serde_json::to_string_pretty(deployment).map_err(std::io::Error::other)?;
        tokio::fs::write(&partial, text).await?;
        tokio::fs::rename(&partial, &path).await
    }
}

fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}
