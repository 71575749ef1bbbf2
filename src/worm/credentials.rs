//! Object store credentials: from a file (the AWS shared-credentials format)
//! or from the standard `AWS_*` environment variables. Never printed.

use std::fmt;
use std::path::Path;

/// An access key pair (and session token, for temporary credentials).
#[derive(Clone)]
pub struct StoreCredentials {
    pub access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

impl fmt::Debug for StoreCredentials {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("StoreCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"***")
            .field("session_token", &self.session_token.as_ref().map(|_| "***"))
            .finish()
    }
}

impl StoreCredentials {
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Self {
        StoreCredentials {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token,
        }
    }

    pub(crate) fn secret_access_key(&self) -> &str {
        &self.secret_access_key
    }

    pub(crate) fn session_token(&self) -> Option<&str> {
        self.session_token.as_deref()
    }

    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and the optional
    /// `AWS_SESSION_TOKEN`, from a lookup function (the environment in the
    /// binary, a map in tests).
    pub fn from_environment(lookup: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let access_key_id = lookup("AWS_ACCESS_KEY_ID").filter(|value| !value.is_empty())?;
        let secret_access_key =
            lookup("AWS_SECRET_ACCESS_KEY").filter(|value| !value.is_empty())?;
        let session_token = lookup("AWS_SESSION_TOKEN").filter(|value| !value.is_empty());
        Some(StoreCredentials::new(
            access_key_id,
            secret_access_key,
            session_token,
        ))
    }

    /// Reads `path` in the AWS shared-credentials format: an INI file whose
    /// `[profile]` section (or, without sections, the whole file) has
    /// `aws_access_key_id`, `aws_secret_access_key` and optionally
    /// `aws_session_token`. The error never contains a value from the file.
    pub fn from_file(path: &Path, profile: &str) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("{}: {error}", path.display()))?;
        let mut section: Option<String> = None;
        let mut has_sections = false;
        let (mut key_id, mut secret, mut token) = (None, None, None);
        for (number, raw_line) in text.lines().enumerate() {
            let line = raw_line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                has_sections = true;
                let name = name.trim();
                section = Some(
                    name.strip_prefix("profile ")
                        .unwrap_or(name)
                        .trim()
                        .to_owned(),
                );
                continue;
            }
            let in_profile = match &section {
                Some(name) => name == profile,
                None => true,
            };
            let Some((name, value)) = line.split_once('=') else {
                return Err(format!(
                    "{}:{}: expected `name = value`",
                    path.display(),
                    number + 1
                ));
            };
            if !in_profile {
                continue;
            }
            let value = value.trim().to_owned();
            match name.trim().to_ascii_lowercase().as_str() {
                "aws_access_key_id" => key_id = Some(value),
                "aws_secret_access_key" => secret = Some(value),
                "aws_session_token" => token = Some(value),
                _ => {}
            }
        }
        let where_ = if has_sections {
            format!("profile [{profile}] of {}", path.display())
        } else {
            path.display().to_string()
        };
        match (key_id, secret) {
            (Some(key_id), Some(secret)) if !key_id.is_empty() && !secret.is_empty() => {
                Ok(StoreCredentials::new(key_id, secret, token))
            }
            _ => Err(format!(
                "{where_} has no aws_access_key_id and aws_secret_access_key"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_named_profile_and_never_prints_the_secret() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("credentials");
        std::fs::write(
            &path,
            "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = s3cr3t-default\n\n[profile evidence]\naws_access_key_id=AKIDEVIDENCE\naws_secret_access_key=s3cr3t-evidence\naws_session_token = tok\n",
        )
        .unwrap();
        let credentials = StoreCredentials::from_file(&path, "evidence").unwrap();
        assert_eq!(credentials.access_key_id, "AKIDEVIDENCE");
        assert_eq!(credentials.secret_access_key(), "s3cr3t-evidence");
        assert_eq!(credentials.session_token(), Some("tok"));
        let printed = format!("{credentials:?}");
        assert!(
            !printed.contains("s3cr3t") && !printed.contains("tok\""),
            "{printed}"
        );
        let default = StoreCredentials::from_file(&path, "default").unwrap();
        assert_eq!(default.access_key_id, "AKIDDEFAULT");
        let error = StoreCredentials::from_file(&path, "missing").unwrap_err();
        assert!(
            error.contains("[missing]") && !error.contains("s3cr3t"),
            "{error}"
        );
    }

    #[test]
    fn a_malformed_line_is_named_without_its_content() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("credentials");
        std::fs::write(&path, "aws_access_key_id = A\nsecretvalue-without-equals\n").unwrap();
        let error = StoreCredentials::from_file(&path, "default").unwrap_err();
        assert!(error.ends_with(":2: expected `name = value`"), "{error}");
        assert!(!error.contains("secretvalue"));
    }
}
