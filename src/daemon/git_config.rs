//! The Git credentials part of the daemon's settings (`git_credentials:`):
//! how the fetch of the governed repository and the push of the evidence
//! branch authenticate. One method at most — an HTTPS token (from a file,
//! read again at every attempt, or `RINGMASTER_GIT_TOKEN`), the GitHub App's
//! installation token, or an SSH key with a `known_hosts` file — checked
//! against the URLs it will be sent to. Secrets never come from the config
//! file itself, and no URL may carry one.

#[cfg(test)]
use super::config::RawConfig;
use super::config::{ConfigError, RepoLocation};
use crate::source::credentials::{
    GitAuth, GitSecret, RemoteHost, SecretSource, SshAuth, TOKEN_USERNAME, redact_url,
    url_carries_credentials,
};
use serde::Deserialize;
use std::path::PathBuf;

/// `git_credentials:` in the config file; every field optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGitCredentials {
    /// File holding an HTTPS token (read at every fetch and push, so a
    /// rotated token is used without a restart); or set `RINGMASTER_GIT_TOKEN`.
    pub token_file: Option<PathBuf>,
    /// The user sent with the token [default: x-access-token].
    pub username: Option<String>,
    /// HTTPS with the GitHub App's installation token (needs the forge's
    /// github_app_id, github_installation_id and github_app_key_file).
    pub github_app: Option<bool>,
    /// SSH: the private key file.
    pub ssh_key_file: Option<PathBuf>,
    /// SSH: the file holding the key's passphrase; or set
    /// `RINGMASTER_GIT_SSH_PASSPHRASE`.
    pub ssh_passphrase_file: Option<PathBuf>,
    /// SSH: the OpenSSH known_hosts file the server's host key must be in.
    pub ssh_known_hosts_file: Option<PathBuf>,
    /// SSH: accept a host known_hosts does not list (a listed host with
    /// another key is refused regardless) [default: false].
    pub ssh_accept_unknown_host_keys: Option<bool>,
    /// SSH: the user when the URL names none [default: git].
    pub ssh_username: Option<String>,
    /// From `RINGMASTER_GIT_TOKEN`; never read from a config file.
    #[serde(skip)]
    pub token: Option<GitSecret>,
    /// From `RINGMASTER_GIT_SSH_PASSPHRASE`; never read from a config file.
    #[serde(skip)]
    pub ssh_passphrase: Option<GitSecret>,
}

impl RawGitCredentials {
    /// Fields of `over` win.
    pub fn layered(self, over: RawGitCredentials) -> RawGitCredentials {
        RawGitCredentials {
            token_file: over.token_file.or(self.token_file),
            username: over.username.or(self.username),
            github_app: over.github_app.or(self.github_app),
            ssh_key_file: over.ssh_key_file.or(self.ssh_key_file),
            ssh_passphrase_file: over.ssh_passphrase_file.or(self.ssh_passphrase_file),
            ssh_known_hosts_file: over.ssh_known_hosts_file.or(self.ssh_known_hosts_file),
            ssh_accept_unknown_host_keys: over
                .ssh_accept_unknown_host_keys
                .or(self.ssh_accept_unknown_host_keys),
            ssh_username: over.ssh_username.or(self.ssh_username),
            token: over.token.or(self.token),
            ssh_passphrase: over.ssh_passphrase.or(self.ssh_passphrase),
        }
    }

    /// `RINGMASTER_GIT_TOKEN`, `RINGMASTER_GIT_TOKEN_FILE`, ...
    pub fn from_environment(lookup: &impl Fn(&str) -> Option<String>) -> RawGitCredentials {
        RawGitCredentials {
            token_file: lookup("RINGMASTER_GIT_TOKEN_FILE").map(PathBuf::from),
            ssh_key_file: lookup("RINGMASTER_GIT_SSH_KEY_FILE").map(PathBuf::from),
            ssh_known_hosts_file: lookup("RINGMASTER_GIT_KNOWN_HOSTS_FILE").map(PathBuf::from),
            token: lookup("RINGMASTER_GIT_TOKEN").map(GitSecret::new),
            ssh_passphrase: lookup("RINGMASTER_GIT_SSH_PASSPHRASE").map(GitSecret::new),
            ..RawGitCredentials::default()
        }
    }
}

fn invalid(setting: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting: setting.into(),
        message: message.into(),
    }
}

/// The Git credentials, checked against the URLs they will be sent to:
/// the governed repository's (remote mode) and the evidence remote's.
/// `github_app_configured`: the forge authenticates as a GitHub App.
pub(super) fn validate(
    raw: Option<RawGitCredentials>,
    github_app_configured: bool,
    repo: &RepoLocation,
    evidence_remote: Option<&str>,
) -> Result<GitAuth, ConfigError> {
    let mut urls: Vec<(&str, String)> = Vec::new();
    if let RepoLocation::Remote(url) = repo {
        urls.push(("repo", url.clone()));
    }
    if let Some(remote) = evidence_remote
        && RemoteHost::parse(remote).is_some()
    {
        urls.push(("evidence_remote", remote.to_owned()));
    }
    for (setting, url) in &urls {
        if url_carries_credentials(url) {
            return Err(invalid(
                setting,
                format!(
                    "{} carries credentials in the URL; remove them and put the token in \
                         git_credentials.token_file (or RINGMASTER_GIT_TOKEN): secrets never go in URLs",
                    redact_url(url)
                ),
            ));
        }
    }
    let raw = raw.unwrap_or_default();
    let token = match (&raw.token_file, raw.token) {
        (Some(path), _) => Some(SecretSource::File(path.clone())),
        (None, Some(secret)) => Some(SecretSource::Value {
            secret,
            origin: "RINGMASTER_GIT_TOKEN".into(),
        }),
        (None, None) => None,
    };
    let github_app = raw.github_app.unwrap_or(false);
    let ssh = raw.ssh_key_file.is_some();
    let methods = usize::from(token.is_some()) + usize::from(github_app) + usize::from(ssh);
    if methods > 1 {
        return Err(invalid(
            "git_credentials",
            "configure one way to authenticate: token_file (or RINGMASTER_GIT_TOKEN), \
                 github_app, or ssh_key_file",
        ));
    }
    let schemes: Vec<(&str, String, RemoteHost)> = urls
        .iter()
        .filter_map(|(setting, url)| {
            RemoteHost::parse(url).map(|host| (*setting, url.clone(), host))
        })
        .collect();
    let https_only = |what: &str| -> Result<(), ConfigError> {
        for (setting, url, host) in &schemes {
            let plain_loopback = host.scheme == "http" && host.is_loopback();
            if host.scheme != "https" && !plain_loopback {
                return Err(invalid(
                    setting,
                    format!(
                        "{} is not an https:// URL: {what} is only sent over HTTPS \
                             (plain http:// to this machine only)",
                        redact_url(url)
                    ),
                ));
            }
        }
        Ok(())
    };
    if let Some(token) = token {
        https_only("a token")?;
        return Ok(GitAuth::Token {
            username: raw.username.unwrap_or_else(|| TOKEN_USERNAME.into()),
            token,
        });
    }
    if github_app {
        https_only("the GitHub App's token")?;
        if !github_app_configured {
            return Err(invalid(
                "git_credentials.github_app",
                "needs the GitHub App: github_repository, github_app_id, \
                     github_installation_id and github_app_key_file",
            ));
        }
        return Ok(GitAuth::GitHubApp);
    }
    if let Some(key_file) = raw.ssh_key_file {
        for (setting, url, host) in &schemes {
            if host.scheme != "ssh" {
                return Err(invalid(
                    setting,
                    format!(
                        "{} is not an SSH URL, but git_credentials names an SSH key",
                        redact_url(url)
                    ),
                ));
            }
        }
        let Some(known_hosts_file) = raw.ssh_known_hosts_file else {
            return Err(invalid(
                "git_credentials.ssh_known_hosts_file",
                "SSH needs the known_hosts file the server's host key is checked against \
                     (ssh-keyscan HOST >> FILE, after checking the fingerprint)",
            ));
        };
        let passphrase = match (raw.ssh_passphrase_file, raw.ssh_passphrase) {
            (Some(path), _) => Some(SecretSource::File(path)),
            (None, Some(secret)) => Some(SecretSource::Value {
                secret,
                origin: "RINGMASTER_GIT_SSH_PASSPHRASE".into(),
            }),
            (None, None) => None,
        };
        return Ok(GitAuth::Ssh(SshAuth {
            username: raw.ssh_username,
            key_file,
            passphrase,
            known_hosts_file,
            accept_unknown_hosts: raw.ssh_accept_unknown_host_keys.unwrap_or(false),
        }));
    }
    if let Some((setting, url, _)) = schemes.iter().find(|(_, _, host)| host.scheme == "ssh") {
        return Err(invalid(
            setting,
            format!(
                "{} is an SSH URL: set git_credentials.ssh_key_file and ssh_known_hosts_file",
                redact_url(url)
            ),
        ));
    }
    Ok(GitAuth::None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(repo: &str) -> RawConfig {
        RawConfig {
            repo: Some(repo.into()),
            state: Some("s".into()),
            key: Some("k".into()),
            ..RawConfig::default()
        }
    }

    fn with(repo: &str, credentials: RawGitCredentials) -> Result<GitAuth, ConfigError> {
        RawConfig {
            git_credentials: Some(credentials),
            ..base(repo)
        }
        .validate(None)
        .map(|config| config.git_credentials)
    }

    #[test]
    fn a_token_goes_over_https_only_and_never_in_a_url() {
        let token = || RawGitCredentials {
            token_file: Some("/run/secrets/git".into()),
            ..RawGitCredentials::default()
        };
        let auth = with("https://git.example/t.git", token()).expect("https");
        assert!(matches!(auth, GitAuth::Token { ref username, .. } if username == TOKEN_USERNAME));
        assert!(
            with("http://127.0.0.1:8080/t.git", token()).is_ok(),
            "loopback"
        );
        let error = with("http://git.example/t.git", token()).expect_err("plain http");
        assert!(error.to_string().contains("HTTPS"), "{error}");
        let error = with("git@git.example:t.git", token()).expect_err("ssh");
        assert!(error.to_string().contains("HTTPS"), "{error}");

        let error = base("https://x-access-token:ghp_hunter2@github.com/c/t.git")
            .validate(None)
            .expect_err("token in URL");
        let message = error.to_string();
        assert!(message.contains("never go in URLs"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
        let error = RawConfig {
            evidence_remote: Some("https://ghp_hunter2@github.com/c/t.git".into()),
            ..base("./tenant")
        }
        .validate(None)
        .expect_err("token in the evidence remote's URL");
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }

    #[test]
    fn the_environment_gives_a_token_and_one_method_at_most() {
        let environment = RawConfig::from_environment(|name| {
            (name == "RINGMASTER_GIT_TOKEN").then(|| "ghp_hunter2".to_owned())
        })
        .expect("env");
        let config = base("https://github.com/c/t.git")
            .layered(environment)
            .validate(None)
            .expect("valid");
        assert!(matches!(
            config.git_credentials,
            GitAuth::Token { token: SecretSource::Value { ref secret, .. }, .. } if secret.expose() == "ghp_hunter2"
        ));
        assert!(!format!("{config:?}").contains("hunter2"));

        let both = RawGitCredentials {
            token_file: Some("t".into()),
            ssh_key_file: Some("k".into()),
            ..RawGitCredentials::default()
        };
        let error = with("https://github.com/c/t.git", both).expect_err("two");
        assert!(error.to_string().contains("one way"), "{error}");

        let file: Result<RawConfig, _> = serde_yaml::from_str("git_credentials:\n  token: ghp_x\n");
        assert!(file.is_err(), "a token in the config file is refused");
    }

    #[test]
    fn ssh_needs_a_known_hosts_file_and_an_ssh_url() {
        let key = || RawGitCredentials {
            ssh_key_file: Some("/etc/ringmaster/deploy_key".into()),
            ..RawGitCredentials::default()
        };
        let error = with("ssh://git@git.example/t.git", key()).expect_err("no known_hosts");
        assert!(error.to_string().contains("known_hosts"), "{error}");
        let auth = with(
            "git@git.example:t.git",
            RawGitCredentials {
                ssh_known_hosts_file: Some("/etc/ringmaster/known_hosts".into()),
                ..key()
            },
        )
        .expect("ssh");
        assert!(matches!(auth, GitAuth::Ssh(ref ssh) if !ssh.accept_unknown_hosts));
        let error = with(
            "https://git.example/t.git",
            RawGitCredentials {
                ssh_known_hosts_file: Some("k".into()),
                ..key()
            },
        )
        .expect_err("https with a key");
        assert!(error.to_string().contains("not an SSH URL"), "{error}");
        let error = base("ssh://git@git.example/t.git")
            .validate(None)
            .expect_err("ssh without a key");
        assert!(error.to_string().contains("ssh_key_file"), "{error}");
    }

    #[test]
    fn the_github_app_needs_the_forge_as_an_app() {
        let app = RawGitCredentials {
            github_app: Some(true),
            ..RawGitCredentials::default()
        };
        let error = with("https://github.com/c/t.git", app.clone()).expect_err("no App");
        assert!(error.to_string().contains("github_app_id"), "{error}");
    }
}
