//! How the daemon runs: defaults < config file < environment < flags.
//!
//! What is governed lives in the Git repository; this is only how the daemon
//! itself runs (where the repository and state are, which key signs, how often
//! to poll). Parsed into a raw, all-optional layer first, then validated into
//! [`DaemonConfig`], so every missing or bad setting is reported by name.

pub use super::git_config::RawGitCredentials;
pub use super::github_config::GitHubConfig;
use crate::api::incidents::{AlertmanagerAuth, IntakeSecret};
use crate::forge::{GitHubToken, WebhookSecret};
use crate::model::Plane;
use crate::planes::ConnectorConfig;
use crate::source::credentials::GitAuth;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The password of the signing key, never printed.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Where the governed repository lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoLocation {
    /// A repository on this machine, watched for new commits.
    Local(PathBuf),
    /// A remote URL, mirrored into the state directory and fetched on an interval.
    Remote(String),
}

impl RepoLocation {
    pub fn parse(text: &str) -> RepoLocation {
        let looks_remote = text.contains("://") || (text.contains('@') && text.contains(':'));
        if looks_remote {
            RepoLocation::Remote(text.to_owned())
        } else {
            RepoLocation::Local(PathBuf::from(text))
        }
    }
}

/// Where SIEM lines (privileged actions, policy violations) go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SiemSink {
    Off,
    Stdout,
    File(PathBuf),
}

/// One layer of settings; every field optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub repo: Option<String>,
    pub state: Option<PathBuf>,
    /// The state store, instead of the SQLite file in `state`
    /// (`sqlite:PATH` or `postgres://...`; `RINGMASTER_STORE_URL`).
    #[serde(default, deserialize_with = "deserialize_store")]
    pub store: Option<crate::store::StoreLocation>,
    pub key: Option<PathBuf>,
    pub branch: Option<String>,
    pub evidence_branch: Option<String>,
    /// Seconds between polls of the tracked branch (the safety net behind
    /// file watching and webhooks).
    pub poll_seconds: Option<u64>,
    /// Seconds a replica's lead of a shared (PostgreSQL) store lasts
    /// without renewal [default: 15]; renewed at a third of it.
    pub leader_lease_seconds: Option<u64>,
    /// `stdout`, `off`, or a file path.
    pub siem: Option<String>,
    /// Name of the Git remote evidence is pushed to (remote mode: `origin`).
    pub evidence_remote: Option<String>,
    /// Address the HTTP server (health, webhooks) listens on, `127.0.0.1:8080`.
    pub listen: Option<String>,
    /// `owner/name` of the governed repository on GitHub; turns the forge on.
    pub github_repository: Option<String>,
    /// GitHub's API base URL [default: https://api.github.com];
    /// `https://HOST/api/v3` for GitHub Enterprise Server.
    pub github_api_url: Option<String>,
    /// GitHub App id (App authentication: check runs).
    pub github_app_id: Option<u64>,
    /// The App's installation id on the repository's account.
    pub github_installation_id: Option<u64>,
    /// File holding the App's private key (PEM).
    pub github_app_key_file: Option<PathBuf>,
    /// File holding a GitHub token (token authentication: commit statuses).
    pub github_token_file: Option<PathBuf>,
    /// File holding the webhook secret.
    pub github_webhook_secret_file: Option<PathBuf>,
    /// A token from `RINGMASTER_GITHUB_TOKEN`; never read from a config file.
    #[serde(skip)]
    pub github_token: Option<GitHubToken>,
    /// The webhook secret from `RINGMASTER_GITHUB_WEBHOOK_SECRET`; never read from a config file.
    #[serde(skip)]
    pub github_webhook_secret: Option<WebhookSecret>,
    /// The connector of each plane, by plane name (`intune: {type: intune, ...}`,
    /// or `jamf: {type: sim}` for the simulated fleet). Every plane the tenant's
    /// `ringmaster.yaml` lists needs one. Config file only.
    #[serde(default, deserialize_with = "planes_section")]
    pub planes: Option<BTreeMap<Plane, ConnectorConfig>>,
    /// The WORM copy of evidence (S3 with Object Lock). Config file only.
    pub evidence_object_store: Option<crate::worm::RawObjectStoreConfig>,
    /// `AWS_*` credentials from the environment, for the object store when
    /// its `credentials_file` is not set; never read from a config file.
    #[serde(skip)]
    pub object_store_environment: Option<crate::worm::StoreCredentials>,
    /// The incident receivers (see [`RawIncidents`]).
    pub incidents: Option<RawIncidents>,
    /// `/api/v1` (see `daemon::api_config`).
    pub api: Option<super::api_config::RawApi>,
    /// Notification targets (see `notify::config`). Config file only.
    pub notifications: Option<Vec<crate::notify::RawNotificationTarget>>,
    /// How the Git remotes authenticate (see [`RawGitCredentials`]).
    pub git_credentials: Option<RawGitCredentials>,
}

/// The incident receivers' secrets, from files or the environment (never
/// the config file itself). A receiver is served only when its secret is set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIncidents {
    /// File holding the bearer token Alertmanager sends (its receiver's
    /// `http_config.authorization.credentials`); or set
    /// `RINGMASTER_ALERTMANAGER_TOKEN`.
    pub alertmanager_token_file: Option<PathBuf>,
    /// Basic auth instead of a token: the username Alertmanager sends...
    pub alertmanager_username: Option<String>,
    /// ...and the file holding its password.
    pub alertmanager_password_file: Option<PathBuf>,
    /// File holding the generic incident webhook's HMAC secret; or set
    /// `RINGMASTER_INCIDENT_WEBHOOK_SECRET`.
    pub webhook_secret_file: Option<PathBuf>,
    #[serde(skip)]
    pub alertmanager_token: Option<IntakeSecret>,
    #[serde(skip)]
    pub webhook_secret: Option<IntakeSecret>,
}

impl RawIncidents {
    fn layered(self, over: RawIncidents) -> RawIncidents {
        RawIncidents {
            alertmanager_token_file: over
                .alertmanager_token_file
                .or(self.alertmanager_token_file),
            alertmanager_username: over.alertmanager_username.or(self.alertmanager_username),
            alertmanager_password_file: over
                .alertmanager_password_file
                .or(self.alertmanager_password_file),
            webhook_secret_file: over.webhook_secret_file.or(self.webhook_secret_file),
            alertmanager_token: over.alertmanager_token.or(self.alertmanager_token),
            webhook_secret: over.webhook_secret.or(self.webhook_secret),
        }
    }

    /// Reads the secret files and checks that Alertmanager has one way in.
    fn validate(self) -> Result<IncidentsConfig, ConfigError> {
        let read = |path: &Path| -> Result<IntakeSecret, ConfigError> {
            let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
                path: path.to_owned(),
                message: error.to_string(),
            })?;
            let secret = text.trim_end_matches(['\n', '\r']).to_owned();
            if secret.is_empty() {
                return Err(ConfigError::Invalid {
                    setting: "incidents".into(),
                    message: format!("{} is empty", path.display()),
                });
            }
            Ok(IntakeSecret::new(secret))
        };
        let token = match (&self.alertmanager_token_file, self.alertmanager_token) {
            (Some(path), _) => Some(read(path)?),
            (None, token) => token,
        };
        let basic = match (
            &self.alertmanager_username,
            &self.alertmanager_password_file,
        ) {
            (Some(username), Some(path)) => Some(AlertmanagerAuth::Basic {
                username: username.clone(),
                password: read(path)?,
            }),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Invalid {
                    setting: "incidents.alertmanager_username".into(),
                    message:
                        "basic auth needs both alertmanager_username and alertmanager_password_file"
                            .into(),
                });
            }
        };
        let alertmanager = match (token, basic) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid {
                    setting: "incidents".into(),
                    message: "configure Alertmanager with a bearer token or basic auth, not both"
                        .into(),
                });
            }
            (Some(token), None) => Some(AlertmanagerAuth::Bearer(token)),
            (None, basic) => basic,
        };
        let webhook_secret = match (&self.webhook_secret_file, self.webhook_secret) {
            (Some(path), _) => Some(read(path)?),
            (None, secret) => secret,
        };
        Ok(IncidentsConfig {
            alertmanager,
            webhook_secret,
        })
    }
}

/// The incident receivers that are served, with their authentication.
#[derive(Debug, Clone, Default)]
pub struct IncidentsConfig {
    /// `POST /webhooks/alertmanager`, when set.
    pub alertmanager: Option<AlertmanagerAuth>,
    /// `POST /webhooks/incidents` (HMAC-signed), when set.
    pub webhook_secret: Option<IntakeSecret>,
}

/// Reads `planes:`, where a `type: sim` entry may leave out the `plane` its
/// key already names.
fn planes_section<'de, D>(
    deserializer: D,
) -> Result<Option<BTreeMap<Plane, ConnectorConfig>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de::Error as _;
    let raw: Option<BTreeMap<Plane, serde_yaml::Value>> = Option::deserialize(deserializer)?;
    let Some(raw) = raw else {
        return Ok(None);
    };
    let mut planes = BTreeMap::new();
    for (plane, mut value) in raw {
        if let serde_yaml::Value::Mapping(mapping) = &mut value
            && mapping.get("type").and_then(serde_yaml::Value::as_str) == Some("sim")
            && !mapping.contains_key("plane")
        {
            mapping.insert("plane".into(), plane.as_str().into());
        }
        let config: ConnectorConfig = serde_yaml::from_value(value)
            .map_err(|error| D::Error::custom(format!("planes.{}: {error}", plane.as_str())))?;
        planes.insert(plane, config);
    }
    Ok(Some(planes))
}

/// The line of `planes.<plane>` in the file, for an error about that entry
/// (`planes.intune: unknown field ...`), which the two-step reading of
/// `planes:` leaves without a position.
fn plane_entry_line(text: &str, message: &str) -> Option<usize> {
    let plane = message.strip_prefix("planes.")?.split(':').next()?;
    let mut in_planes = false;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if !line.starts_with([' ', '\t']) {
            in_planes = trimmed.starts_with("planes:");
            continue;
        }
        if in_planes
            && trimmed
                .strip_prefix(plane)
                .is_some_and(|rest| rest.starts_with(':'))
        {
            return Some(index + 1);
        }
    }
    None
}

/// A `type: sim` plane without a `state_file` keeps its fleet in the state
/// directory (`sim-<plane>.json`), so a restarted daemon finds the same devices
/// and assignments.
pub fn with_sim_state_files(
    mut planes: BTreeMap<Plane, ConnectorConfig>,
    state_dir: &Path,
) -> BTreeMap<Plane, ConnectorConfig> {
    for (plane, config) in planes.iter_mut() {
        if let ConnectorConfig::Sim(sim) = config
            && sim.state_file.is_none()
        {
            sim.state_file = Some(state_dir.join(format!("sim-{}.json", plane.as_str())));
        }
    }
    planes
}

/// The leader lease `leader_lease_seconds` asks for: 2 s to 1 h.
pub fn leader_lease(seconds: Option<u64>) -> Result<Duration, ConfigError> {
    match seconds {
        None => Ok(super::lease::DEFAULT_LEASE),
        Some(seconds @ 2..=3600) => Ok(Duration::from_secs(seconds)),
        Some(seconds) => Err(ConfigError::Invalid {
            setting: "leader_lease_seconds".into(),
            message: format!(
                "{seconds} is outside 2..=3600: the lease is renewed at a third of it"
            ),
        }),
    }
}

impl RawConfig {
    /// Fields of `over` win over fields of `self`.
    pub fn layered(self, over: RawConfig) -> RawConfig {
        RawConfig {
            repo: over.repo.or(self.repo),
            state: over.state.or(self.state),
            store: over.store.or(self.store),
            key: over.key.or(self.key),
            branch: over.branch.or(self.branch),
            evidence_branch: over.evidence_branch.or(self.evidence_branch),
            poll_seconds: over.poll_seconds.or(self.poll_seconds),
            leader_lease_seconds: over.leader_lease_seconds.or(self.leader_lease_seconds),
            siem: over.siem.or(self.siem),
            evidence_remote: over.evidence_remote.or(self.evidence_remote),
            listen: over.listen.or(self.listen),
            github_repository: over.github_repository.or(self.github_repository),
            github_api_url: over.github_api_url.or(self.github_api_url),
            github_app_id: over.github_app_id.or(self.github_app_id),
            github_installation_id: over.github_installation_id.or(self.github_installation_id),
            github_app_key_file: over.github_app_key_file.or(self.github_app_key_file),
            github_token_file: over.github_token_file.or(self.github_token_file),
            github_webhook_secret_file: over
                .github_webhook_secret_file
                .or(self.github_webhook_secret_file),
            github_token: over.github_token.or(self.github_token),
            github_webhook_secret: over.github_webhook_secret.or(self.github_webhook_secret),
            planes: over.planes.or(self.planes),
            evidence_object_store: over.evidence_object_store.or(self.evidence_object_store),
            object_store_environment: over
                .object_store_environment
                .or(self.object_store_environment),
            incidents: match (self.incidents, over.incidents) {
                (Some(under), Some(over)) => Some(under.layered(over)),
                (under, over) => over.or(under),
            },
            api: match (self.api, over.api) {
                (Some(under), Some(over)) => Some(under.layered(over)),
                (under, over) => over.or(under),
            },
            notifications: over.notifications.or(self.notifications),
            git_credentials: match (self.git_credentials, over.git_credentials) {
                (Some(under), Some(over)) => Some(under.layered(over)),
                (under, over) => over.or(under),
            },
        }
    }

    /// Reads a YAML config file.
    pub fn from_file(path: &Path) -> Result<RawConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            message: error.to_string(),
        })?;
        serde_yaml::from_str(&text).map_err(|error| {
            let mut message = error.to_string();
            if !message.contains("line ")
                && let Some(line) = plane_entry_line(&text, &message)
            {
                message = format!("{message} at line {line}");
            }
            ConfigError::Parse {
                path: path.to_owned(),
                message,
            }
        })
    }

    /// `RINGMASTER_REPO`, `RINGMASTER_STATE`, ... from a lookup function
    /// (the process environment in `main`, a map in tests).
    pub fn from_environment(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<RawConfig, ConfigError> {
        let number = |name: &str, what: &str| -> Result<Option<u64>, ConfigError> {
            match lookup(name) {
                Some(text) => Ok(Some(text.parse().map_err(|_| ConfigError::Invalid {
                    setting: name.into(),
                    message: format!("\"{text}\" is not {what}"),
                })?)),
                None => Ok(None),
            }
        };
        let poll_seconds = number("RINGMASTER_POLL_SECONDS", "a whole number of seconds")?;
        Ok(RawConfig {
            repo: lookup("RINGMASTER_REPO"),
            state: lookup("RINGMASTER_STATE").map(PathBuf::from),
            store: lookup(crate::store::STORE_URL_ENV)
                .filter(|text| !text.trim().is_empty())
                .map(|text| {
                    crate::store::StoreLocation::parse(&text).map_err(|error| {
                        ConfigError::Invalid {
                            setting: "store".into(),
                            message: error.to_string(),
                        }
                    })
                })
                .transpose()?,
            key: lookup("RINGMASTER_KEY").map(PathBuf::from),
            branch: lookup("RINGMASTER_BRANCH"),
            evidence_branch: lookup("RINGMASTER_EVIDENCE_BRANCH"),
            poll_seconds,
            leader_lease_seconds: number(
                "RINGMASTER_LEADER_LEASE_SECONDS",
                "a whole number of seconds",
            )?,
            siem: lookup("RINGMASTER_SIEM"),
            evidence_remote: lookup("RINGMASTER_EVIDENCE_REMOTE"),
            listen: lookup("RINGMASTER_LISTEN"),
            github_repository: lookup("RINGMASTER_GITHUB_REPOSITORY"),
            github_api_url: lookup("RINGMASTER_GITHUB_API_URL"),
            github_app_id: number("RINGMASTER_GITHUB_APP_ID", "a GitHub App id")?,
            github_installation_id: number(
                "RINGMASTER_GITHUB_INSTALLATION_ID",
                "a GitHub App installation id",
            )?,
            github_app_key_file: lookup("RINGMASTER_GITHUB_APP_KEY_FILE").map(PathBuf::from),
            github_token_file: lookup("RINGMASTER_GITHUB_TOKEN_FILE").map(PathBuf::from),
            github_webhook_secret_file: lookup("RINGMASTER_GITHUB_WEBHOOK_SECRET_FILE")
                .map(PathBuf::from),
            github_token: lookup("RINGMASTER_GITHUB_TOKEN").map(GitHubToken::new),
            github_webhook_secret: lookup("RINGMASTER_GITHUB_WEBHOOK_SECRET")
                .map(WebhookSecret::new),
            planes: None,
            evidence_object_store: None,
            object_store_environment: crate::worm::StoreCredentials::from_environment(&lookup),
            incidents: Some(RawIncidents {
                alertmanager_token: lookup("RINGMASTER_ALERTMANAGER_TOKEN").map(IntakeSecret::new),
                webhook_secret: lookup("RINGMASTER_INCIDENT_WEBHOOK_SECRET").map(IntakeSecret::new),
                ..RawIncidents::default()
            }),
            api: None,
            notifications: None,
            git_credentials: Some(RawGitCredentials::from_environment(&lookup)),
        })
    }

    pub fn validate(mut self, key_password: Option<Secret>) -> Result<DaemonConfig, ConfigError> {
        let github = self.github()?;
        if github.is_some() && self.listen.is_some() && self.github_webhook_secret.is_none() {
            return Err(ConfigError::Invalid {
                setting: "github_webhook_secret_file".into(),
                message: "receiving webhooks (--listen) needs the webhook secret: pass \
                          --github-webhook-secret-file or set RINGMASTER_GITHUB_WEBHOOK_SECRET"
                    .into(),
            });
        }
        let missing = |setting: &str, flag: &str| ConfigError::Missing {
            setting: setting.into(),
            flag: flag.into(),
        };
        let repo = RepoLocation::parse(&self.repo.ok_or_else(|| missing("repo", "--repo"))?);
        let state_dir = self.state.ok_or_else(|| missing("state", "--state"))?;
        let key = self.key.ok_or_else(|| missing("key", "--key"))?;
        let branch = self.branch.unwrap_or_else(|| "main".into());
        let evidence_branch = self.evidence_branch.unwrap_or_else(|| "evidence".into());
        if branch == evidence_branch {
            return Err(ConfigError::Invalid {
                setting: "evidence_branch".into(),
                message: format!("must differ from the tracked branch \"{branch}\""),
            });
        }
        let poll_seconds = self.poll_seconds.unwrap_or(30);
        if poll_seconds == 0 {
            return Err(ConfigError::Invalid {
                setting: "poll_seconds".into(),
                message: "must be at least 1".into(),
            });
        }
        let siem = match self.siem.as_deref() {
            None | Some("off") => SiemSink::Off,
            Some("stdout") | Some("-") => SiemSink::Stdout,
            Some(path) => SiemSink::File(PathBuf::from(path)),
        };
        let evidence_remote = match (&repo, self.evidence_remote) {
            (_, Some(remote)) => Some(remote),
            (RepoLocation::Remote(_), None) => Some("origin".into()),
            (RepoLocation::Local(_), None) => None,
        };
        let github_app = github.as_ref().is_some_and(|github| {
            matches!(github.settings.auth, crate::forge::GitHubAuth::App { .. })
        });
        let git_credentials = super::git_config::validate(
            self.git_credentials.take(),
            github_app,
            &repo,
            evidence_remote.as_deref(),
        )?;
        let planes = with_sim_state_files(self.planes.unwrap_or_default(), &state_dir);
        for (plane, connector) in &planes {
            if connector.plane() != *plane {
                return Err(ConfigError::Invalid {
                    setting: format!("planes.{}", plane.as_str()),
                    message: format!(
                        "a connector of type {} drives plane {}, not {}",
                        connector.kind(),
                        connector.plane().as_str(),
                        plane.as_str()
                    ),
                });
            }
        }
        let environment_credentials = self.object_store_environment.clone();
        let evidence_object_store = self
            .evidence_object_store
            .map(|raw| {
                raw.validate_with(environment_credentials)
                    .map_err(|message| ConfigError::Invalid {
                        setting: "evidence_object_store".into(),
                        message,
                    })
            })
            .transpose()?;
        let incidents = self.incidents.unwrap_or_default().validate()?;
        let notifications =
            crate::notify::config::validate_all(self.notifications.unwrap_or_default(), &|name| {
                std::env::var(name).ok()
            })
            .map_err(|message| ConfigError::Invalid {
                setting: "notifications".into(),
                message,
            })?;
        if (incidents.alertmanager.is_some() || incidents.webhook_secret.is_some())
            && self.listen.is_none()
        {
            return Err(ConfigError::Invalid {
                setting: "incidents".into(),
                message: "the incident receivers need the HTTP server: pass --listen".into(),
            });
        }
        let has_listen = self.listen.is_some();
        let api = self.api.map(|api| api.validate(has_listen)).transpose()?;
        Ok(DaemonConfig {
            api,
            evidence_object_store,
            repo,
            store: self.store,
            state_dir,
            key,
            key_password,
            branch,
            evidence_branch,
            poll_interval: Duration::from_secs(poll_seconds),
            siem,
            evidence_remote,
            listen: self.listen,
            github,
            planes,
            config_file: None,
            incidents,
            notifications,
            git_credentials,
        })
    }
}

/// The validated settings the daemon runs with.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub repo: RepoLocation,
    pub state_dir: PathBuf,
    /// The state store; `None`: the SQLite file `ringmaster.db` in `state_dir`.
    pub store: Option<crate::store::StoreLocation>,
    pub key: PathBuf,
    pub key_password: Option<Secret>,
    /// The tracked branch of the governed repository.
    pub branch: String,
    pub evidence_branch: String,
    pub poll_interval: Duration,
    pub siem: SiemSink,
    /// Remote that evidence is pushed to (fast-forward only), if any.
    pub evidence_remote: Option<String>,
    /// Where the HTTP server listens; `None`: no server.
    pub listen: Option<String>,
    /// The forge; `None`: no GitHub integration.
    pub github: Option<GitHubConfig>,
    /// The connector of each plane (`type: sim` for the simulated fleet).
    pub planes: BTreeMap<Plane, ConnectorConfig>,
    /// The config file these settings came from, if any: its `planes:` section
    /// is read again while the daemon runs, and changed connectors rebuilt.
    pub config_file: Option<PathBuf>,
    /// Where every evidence record is also written, write-once, before it
    /// counts as written.
    pub evidence_object_store: Option<crate::worm::ObjectStoreConfig>,
    /// The incident receivers served (with `listen`).
    pub incidents: IncidentsConfig,
    /// `/api/v1`, when configured.
    pub api: Option<super::api_config::ApiConfig>,
    /// Where chosen events are sent (Slack, Teams, signed webhooks).
    pub notifications: Vec<crate::notify::NotificationTarget>,
    /// How the fetch and the evidence push authenticate.
    pub git_credentials: GitAuth,
}

impl DaemonConfig {
    /// Where the daemon's store is.
    pub fn store_location(&self) -> crate::store::StoreLocation {
        self.store.clone().unwrap_or_else(|| {
            crate::store::StoreLocation::Sqlite(self.state_dir.join("ringmaster.db"))
        })
    }
}

/// `store:` in a config file: a store location (never echoed back).
fn deserialize_store<'de, D>(
    deserializer: D,
) -> Result<Option<crate::store::StoreLocation>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let text: Option<String> = Option::deserialize(deserializer)?;
    text.map(|text| crate::store::StoreLocation::parse(&text).map_err(serde::de::Error::custom))
        .transpose()
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path}: not a valid daemon config: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{setting} is required: pass {flag}, set it in --config, or set RINGMASTER_{}", setting.to_uppercase())]
    Missing { setting: String, flag: String },
    #[error("{setting}: {message}")]
    Invalid { setting: String, message: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_environment_override_file_override_defaults() {
        let file = RawConfig {
            repo: Some("/srv/repo".into()),
            state: Some("/var/lib/a".into()),
            key: Some("/etc/k".into()),
            poll_seconds: Some(60),
            ..RawConfig::default()
        };
        let environment = RawConfig::from_environment(|name| {
            (name == "RINGMASTER_STATE").then(|| "/var/lib/b".to_owned())
        })
        .expect("env");
        let flags = RawConfig {
            branch: Some("release".into()),
            ..RawConfig::default()
        };
        let config = file
            .layered(environment)
            .layered(flags)
            .validate(None)
            .expect("valid");
        assert_eq!(config.repo, RepoLocation::Local("/srv/repo".into()));
        assert_eq!(config.state_dir, PathBuf::from("/var/lib/b"));
        assert_eq!(config.branch, "release");
        assert_eq!(config.poll_interval, Duration::from_secs(60));
        assert_eq!(config.evidence_branch, "evidence");
    }

    #[test]
    fn missing_and_invalid_settings_are_named() {
        let error = RawConfig::default()
            .validate(None)
            .expect_err("repo missing");
        assert!(error.to_string().contains("--repo"), "{error}");
        let error = RawConfig::from_environment(|n| {
            (n == "RINGMASTER_POLL_SECONDS").then(|| "soon".into())
        })
        .expect_err("bad number");
        assert!(error.to_string().contains("soon"));
    }

    #[test]
    fn urls_are_remote_and_push_evidence_to_origin() {
        assert_eq!(
            RepoLocation::parse("https://git.example/t.git"),
            RepoLocation::Remote("https://git.example/t.git".into())
        );
        assert_eq!(
            RepoLocation::parse("git@github.com:contoso/t.git"),
            RepoLocation::Remote("git@github.com:contoso/t.git".into())
        );
        assert_eq!(
            RepoLocation::parse("./tenant"),
            RepoLocation::Local("./tenant".into())
        );
        let config = RawConfig {
            repo: Some("file:///srv/t.git".into()),
            state: Some("s".into()),
            key: Some("k".into()),
            ..RawConfig::default()
        }
        .validate(Some(Secret::new("hunter2")))
        .expect("valid");
        assert_eq!(config.evidence_remote.as_deref(), Some("origin"));
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
