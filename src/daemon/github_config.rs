//! The forge part of the daemon's settings: which GitHub repository, how to
//! authenticate (a token, or a GitHub App), the webhook secret. Secrets come
//! from files or the environment, never from the config file, and are
//! newtypes whose `Debug` prints `***`.

use super::config::{ConfigError, RawConfig};
use crate::forge::{AppPrivateKey, GitHubAuth, GitHubSettings, GitHubToken, WebhookSecret};
use std::path::Path;

impl RawConfig {
    /// The forge settings, when `github_repository` is set: reads the secret
    /// files and checks that exactly one way to authenticate is configured.
    pub(super) fn github(&mut self) -> Result<Option<GitHubConfig>, ConfigError> {
        if let Some(path) = self.github_webhook_secret_file.take() {
            self.github_webhook_secret = Some(WebhookSecret::new(read_secret(&path)?));
        }
        let Some(repository) = self.github_repository.clone() else {
            return Ok(None);
        };
        let invalid = |setting: &str, message: String| ConfigError::Invalid {
            setting: setting.into(),
            message,
        };
        let Some((owner, name)) = repository
            .split_once('/')
            .filter(|(o, n)| !o.is_empty() && !n.is_empty() && !n.contains('/'))
        else {
            return Err(invalid(
                "github_repository",
                format!("\"{repository}\" is not owner/name"),
            ));
        };
        if let Some(path) = &self.github_token_file {
            self.github_token = Some(GitHubToken::new(read_secret(path)?));
        }
        let app = (
            self.github_app_id,
            self.github_installation_id,
            &self.github_app_key_file,
        );
        let auth = match (self.github_token.take(), app) {
            (Some(token), (None, None, None)) => GitHubAuth::Token(token),
            (None, (Some(app_id), Some(installation_id), Some(key_file))) => GitHubAuth::App {
                app_id,
                installation_id,
                private_key: AppPrivateKey::new(read_secret(key_file)?),
            },
            (Some(_), _) => {
                return Err(invalid(
                    "github_token",
                    "configure either a token or a GitHub App, not both".into(),
                ));
            }
            (None, _) => {
                return Err(invalid(
                    "github_repository",
                    "needs authentication: --github-token-file (or RINGMASTER_GITHUB_TOKEN), \
                     or --github-app-id, --github-installation-id and --github-app-key-file"
                        .into(),
                ));
            }
        };
        let api_base_url = self
            .github_api_url
            .clone()
            .unwrap_or_else(|| "https://api.github.com".into());
        if !(api_base_url.starts_with("https://") || api_base_url.starts_with("http://")) {
            return Err(invalid(
                "github_api_url",
                format!("\"{api_base_url}\" is not an http(s) URL"),
            ));
        }
        Ok(Some(GitHubConfig {
            settings: GitHubSettings {
                api_base_url,
                owner: owner.to_owned(),
                repository: name.to_owned(),
                auth,
            },
            webhook_secret: self.github_webhook_secret.clone(),
        }))
    }
}

/// A secret file's content, without the trailing newline editors add.
fn read_secret(path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_owned(),
        message: error.to_string(),
    })?;
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

/// The forge settings: which repository, how to authenticate, the webhook secret.
#[derive(Debug, Clone)]
pub struct GitHubConfig {
    pub settings: GitHubSettings,
    /// Needed to receive webhooks; without it only the poll runs.
    pub webhook_secret: Option<WebhookSecret>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> RawConfig {
        RawConfig {
            repo: Some("https://github.com/contoso/tenant.git".into()),
            state: Some("s".into()),
            key: Some("k".into()),
            github_repository: Some("contoso/tenant".into()),
            ..RawConfig::default()
        }
    }

    #[test]
    fn github_needs_exactly_one_way_to_authenticate() {
        let error = base().validate(None).expect_err("no auth");
        assert!(error.to_string().contains("--github-token-file"), "{error}");

        let environment = RawConfig::from_environment(|name| {
            (name == "RINGMASTER_GITHUB_TOKEN").then(|| "ghp_hunter2".to_owned())
        })
        .expect("env");
        let config = base().layered(environment).validate(None).expect("token");
        let github = config.github.as_ref().expect("github on");
        assert!(
            matches!(github.settings.auth, GitHubAuth::Token(ref t) if t.expose() == "ghp_hunter2")
        );
        assert_eq!(github.settings.api_base_url, "https://api.github.com");
        assert_eq!(
            (
                github.settings.owner.as_str(),
                github.settings.repository.as_str()
            ),
            ("contoso", "tenant")
        );
        assert!(!format!("{config:?}").contains("hunter2"));

        let partial_app = RawConfig {
            github_app_id: Some(1),
            ..base()
        };
        assert!(
            partial_app.validate(None).is_err(),
            "an App needs id, installation and key"
        );

        let both = RawConfig {
            github_token: Some(GitHubToken::new("t")),
            github_app_id: Some(1),
            ..base()
        };
        let error = both.validate(None).expect_err("both");
        assert!(error.to_string().contains("not both"), "{error}");

        let bad = RawConfig {
            github_repository: Some("contoso".into()),
            github_token: Some(GitHubToken::new("t")),
            ..base()
        };
        assert!(
            bad.validate(None)
                .expect_err("not owner/name")
                .to_string()
                .contains("owner/name")
        );
    }

    #[test]
    fn listening_for_webhooks_needs_the_webhook_secret_from_a_file_or_the_environment() {
        let dir = tempfile::tempdir().expect("dir");
        let with_token = || RawConfig {
            listen: Some("127.0.0.1:0".into()),
            github_token: Some(GitHubToken::new("t")),
            ..base()
        };
        let error = with_token().validate(None).expect_err("no secret");
        assert!(error.to_string().contains("webhook secret"), "{error}");

        let secret_file = dir.path().join("webhook.secret");
        std::fs::write(&secret_file, "s3cret-hunter2\n").expect("write");
        let config = RawConfig {
            github_webhook_secret_file: Some(secret_file),
            ..with_token()
        }
        .validate(None)
        .expect("valid");
        let secret = config
            .github
            .as_ref()
            .and_then(|g| g.webhook_secret.as_ref())
            .expect("secret");
        assert_eq!(
            secret.expose(),
            "s3cret-hunter2",
            "the trailing newline is not part of it"
        );
        assert!(!format!("{config:?}").contains("hunter2"));

        // The file layer cannot carry secrets at all.
        let file: Result<RawConfig, _> = serde_yaml::from_str("github_token: ghp_x\n");
        assert!(file.is_err(), "secrets are refused in config files");
    }
}
