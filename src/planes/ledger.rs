//! `ledger`: what a connector writes on a plane object so that the plane itself
//! remembers the deployment (Intune: the mobileApp's `notes`; Configuration
//! Manager: the first ring collection's `Comment`): the correlation id (how the app is found
//! again), the application and version, the groups of each ring in publish
//! order, the exclusions, and what remediation did (uninstalled, rolled back,
//! pinned).
//!
//! `corr:<id>;pkg:<application>@<version>;state:active;ring:<ring>=<g1>,<g2>;excl:<g3>;pin:<ring>;halt`
//!
//! `halt` marks a deployment halted ([`crate::planes::Remediation::Halt`]):
//! no ring of it is allowed any more.
//!
//! Every name written here is checked by [`is_plain`] first, so the separators
//! never appear inside a value.

/// What a deployment has become.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeploymentState {
    Active,
    Uninstalled,
    RolledBack { to_version: String },
}

/// One ring's groups, in the order they were published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingRecord {
    pub ring: String,
    pub groups: Vec<String>,
}

/// The deployment as recorded on its app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ledger {
    pub correlation_id: String,
    pub application_id: String,
    pub version: String,
    pub state: DeploymentState,
    pub rings: Vec<RingRecord>,
    pub exclusions: Vec<String>,
    pub pinned_ring: Option<String>,
    /// Halted: every install assignment withdrawn, no ring assigned again.
    pub halted: bool,
}

/// Whether `value` can be written in the ledger as is.
pub fn is_plain(value: &str) -> bool {
    !value.is_empty()
        && !value.chars().any(|character| {
            matches!(character, ';' | '=' | ',' | '@') || character.is_whitespace()
        })
}

/// The `pkg:` marker of an application version, also found on apps published
/// by other intents (the version a rollback returns to).
pub fn package_marker(application_id: &str, version: &str) -> String {
    format!("pkg:{application_id}@{version}")
}

/// The correlation id in `notes`, if the app was made by ringmaster.
pub fn correlation_in(notes: &str) -> Option<&str> {
    notes.split(';').find_map(|part| part.strip_prefix("corr:"))
}

impl Ledger {
    pub fn new(correlation_id: &str, application_id: &str, version: &str) -> Ledger {
        Ledger {
            correlation_id: correlation_id.to_string(),
            application_id: application_id.to_string(),
            version: version.to_string(),
            state: DeploymentState::Active,
            rings: Vec::new(),
            exclusions: Vec::new(),
            pinned_ring: None,
            halted: false,
        }
    }

    pub fn parse(notes: &str) -> Option<Ledger> {
        let correlation_id = correlation_in(notes)?;
        let (application_id, version) = notes
            .split(';')
            .find_map(|part| part.strip_prefix("pkg:"))
            .and_then(|package| package.split_once('@'))?;
        let mut ledger = Ledger::new(correlation_id, application_id, version);
        for part in notes.split(';') {
            if let Some(state) = part.strip_prefix("state:") {
                ledger.state = match state.split_once('=') {
                    Some(("rolledback", to_version)) => DeploymentState::RolledBack {
                        to_version: to_version.to_string(),
                    },
                    _ if state == "uninstalled" => DeploymentState::Uninstalled,
                    _ => DeploymentState::Active,
                };
            } else if let Some(ring) = part.strip_prefix("ring:") {
                let (name, groups) = ring.split_once('=').unwrap_or((ring, ""));
                ledger.rings.push(RingRecord {
                    ring: name.to_string(),
                    groups: split_list(groups),
                });
            } else if let Some(groups) = part.strip_prefix("excl:") {
                ledger.exclusions = split_list(groups);
            } else if let Some(ring) = part.strip_prefix("pin:") {
                ledger.pinned_ring = Some(ring.to_string());
            } else if part == "halt" {
                ledger.halted = true;
            }
        }
        Some(ledger)
    }

    pub fn render(&self) -> String {
        let state = match &self.state {
            DeploymentState::Active => "active".to_string(),
            DeploymentState::Uninstalled => "uninstalled".to_string(),
            DeploymentState::RolledBack { to_version } => format!("rolledback={to_version}"),
        };
        let mut parts = vec![
            format!("corr:{}", self.correlation_id),
            package_marker(&self.application_id, &self.version),
            format!("state:{state}"),
        ];
        for record in &self.rings {
            parts.push(format!("ring:{}={}", record.ring, record.groups.join(",")));
        }
        if !self.exclusions.is_empty() {
            parts.push(format!("excl:{}", self.exclusions.join(",")));
        }
        if let Some(ring) = &self.pinned_ring {
            parts.push(format!("pin:{ring}"));
        }
        if self.halted {
            parts.push("halt".to_string());
        }
        parts.join(";")
    }

    /// Records the ring's groups and exclusions (merging into an earlier record).
    pub fn record_ring(&mut self, ring: &str, groups: &[String], exclusions: &[String]) {
        let index = match self.rings.iter().position(|record| record.ring == ring) {
            Some(index) => index,
            None => {
                self.rings.push(RingRecord {
                    ring: ring.to_string(),
                    groups: Vec::new(),
                });
                self.rings.len() - 1
            }
        };
        for group in groups {
            if !self.rings[index].groups.contains(group) {
                self.rings[index].groups.push(group.clone());
            }
        }
        for group in exclusions {
            if !self.exclusions.contains(group) {
                self.exclusions.push(group.clone());
            }
        }
    }

    /// Whether the pin (if any) lets `ring` be assigned: rings up to and
    /// including the pinned one; a ring never published is refused.
    pub fn ring_allowed(&self, ring: &str) -> bool {
        if self.halted {
            return false;
        }
        let Some(pinned) = &self.pinned_ring else {
            return true;
        };
        let position = |wanted: &str| self.rings.iter().position(|record| record.ring == wanted);
        match (position(pinned), position(ring)) {
            _ if ring == pinned => true,
            (Some(pinned_at), Some(ring_at)) => ring_at <= pinned_at,
            (None, Some(_)) => true,
            (_, None) => false,
        }
    }

    /// Why `ring` of the deployment on `object` may not be assigned: it was
    /// halted (`deployment_halted`) or pinned before it (`ring_pinned`).
    pub fn ring_refusal(&self, object: &str, ring: &str) -> crate::planes::ConnectorError {
        use crate::planes::{ConnectorError, ErrorCode};
        if self.halted {
            ConnectorError::new(
                ErrorCode::DeploymentHalted,
                format!(
                    "deployment {} on {object} was halted; ring {ring} is not assigned",
                    self.correlation_id
                ),
            )
        } else {
            ConnectorError::new(
                ErrorCode::RingPinned,
                format!(
                    "app {object} is pinned at ring {}; ring {ring} is not assigned",
                    self.pinned_ring.as_deref().unwrap_or_default()
                ),
            )
        }
    }

    /// The groups of every ring the pin allows, in publish order, once each.
    pub fn allowed_groups(&self) -> Vec<String> {
        let mut groups: Vec<String> = Vec::new();
        for record in self
            .rings
            .iter()
            .filter(|record| self.ring_allowed(&record.ring))
        {
            for group in &record.groups {
                if !groups.contains(group) {
                    groups.push(group.clone());
                }
            }
        }
        groups
    }

    /// The version the deployment delivers now (`None` once uninstalled).
    pub fn delivered_version(&self) -> Option<&str> {
        match &self.state {
            DeploymentState::Active => Some(&self.version),
            DeploymentState::Uninstalled => None,
            DeploymentState::RolledBack { to_version } => Some(to_version),
        }
    }
}

fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .filter(|item| !item.is_empty())
        .map(str::to_string)
        .collect()
}
