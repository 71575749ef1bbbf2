//! The daemon config's `notifications:` list. URLs of chat webhooks carry
//! their own credential and the generic webhook's HMAC key is a secret:
//! both come from a file or an environment variable, never from the config
//! file itself, and print as `***`.
//!
//! ```yaml
//! notifications:
//!   - name: endpoint-team
//!     kind: slack                 # slack | teams | webhook
//!     url_file: /etc/ringmaster/slack-webhook-url
//!     events: [awaiting_cab, gate_failed, rolled_back, evidence_push_failing]
//!     template: "*{title}*\n{summary}"
//!   - name: itsm
//!     kind: webhook
//!     url_env: RINGMASTER_ITSM_URL
//!     secret_file: /etc/ringmaster/itsm-hmac
//!     events: [intent_decided, drift_found]
//!     retry: {base_delay_seconds: 30, max_delay_seconds: 3600, max_attempts: 8}
//! ```

use super::{PLACEHOLDERS, Trigger};
use crate::orchestrator::backoff::BackoffPolicy;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::PathBuf;

/// Where a target's messages go, and in which shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// A Slack incoming webhook (`{"text": ...}`).
    Slack,
    /// A Teams incoming webhook (Workflows): an Adaptive Card message.
    Teams,
    /// Any HTTPS endpoint: the event as JSON, HMAC-SHA256 signed.
    Webhook,
}

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Slack => "slack",
            TargetKind::Teams => "teams",
            TargetKind::Webhook => "webhook",
        }
    }
}

/// A value that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct NotifySecret(String);

impl NotifySecret {
    pub fn new(value: impl Into<String>) -> NotifySecret {
        NotifySecret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for NotifySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    pub base_delay_seconds: Option<u64>,
    pub max_delay_seconds: Option<u64>,
    pub max_attempts: Option<u32>,
}

/// One entry as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotificationTarget {
    pub name: String,
    pub kind: TargetKind,
    pub url_file: Option<PathBuf>,
    pub url_env: Option<String>,
    pub secret_file: Option<PathBuf>,
    pub secret_env: Option<String>,
    pub events: Vec<String>,
    pub template: Option<String>,
    #[serde(default)]
    pub retry: RawRetry,
}

/// One validated target.
#[derive(Debug, Clone)]
pub struct NotificationTarget {
    pub name: String,
    pub kind: TargetKind,
    pub url: NotifySecret,
    /// The generic webhook's HMAC key.
    pub secret: Option<NotifySecret>,
    pub events: BTreeSet<Trigger>,
    pub template: Option<String>,
    pub retry: BackoffPolicy,
}

fn read_secret(
    setting: &str,
    file: &Option<PathBuf>,
    env: &Option<String>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<NotifySecret>, String> {
    let text = match (file, env) {
        (Some(_), Some(_)) => return Err(format!("{setting}_file and {setting}_env: set one")),
        (Some(path), None) => {
            std::fs::read_to_string(path).map_err(|error| format!("{}: {error}", path.display()))?
        }
        (None, Some(name)) => {
            lookup(name).ok_or_else(|| format!("environment variable {name} is not set"))?
        }
        (None, None) => return Ok(None),
    };
    let value = text.trim().to_owned();
    if value.is_empty() {
        return Err(format!("{setting} is empty"));
    }
    Ok(Some(NotifySecret::new(value)))
}

impl RawNotificationTarget {
    /// Reads the secrets and checks every field; `lookup` reads the environment.
    pub fn validate(
        self,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<NotificationTarget, String> {
        let name = self.name.clone();
        let at = |message: String| format!("notifications[{name}]: {message}");
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(at("name must be letters, digits, '-' or '_'".into()));
        }
        let url = read_secret("url", &self.url_file, &self.url_env, lookup)
            .map_err(at)?
            .ok_or_else(|| at("url_file or url_env is required".into()))?;
        let parsed = url::Url::parse(url.expose()).map_err(|error| at(format!("url: {error}")))?;
        if !matches!(parsed.scheme(), "https" | "http") {
            return Err(at("url must be http(s)".into()));
        }
        let secret =
            read_secret("secret", &self.secret_file, &self.secret_env, lookup).map_err(at)?;
        match (self.kind, &secret) {
            (TargetKind::Webhook, None) => {
                return Err(at(
                    "a webhook target signs its messages: secret_file or secret_env is required"
                        .into(),
                ));
            }
            (TargetKind::Slack | TargetKind::Teams, Some(_)) => {
                return Err(at(format!(
                    "{} webhooks take no secret (the URL is the credential)",
                    self.kind.as_str()
                )));
            }
            _ => {}
        }
        if self.events.is_empty() {
            return Err(at("events: name at least one".into()));
        }
        let mut events = BTreeSet::new();
        for event in &self.events {
            let trigger = Trigger::parse(event).ok_or_else(|| {
                at(format!(
                    "unknown event {event:?}; known: {}",
                    Trigger::ALL.map(Trigger::as_str).join(", ")
                ))
            })?;
            events.insert(trigger);
        }
        if let Some(template) = &self.template {
            check_template(template).map_err(at)?;
        }
        let defaults = BackoffPolicy::default();
        let retry = BackoffPolicy {
            base_delay_seconds: self.retry.base_delay_seconds.unwrap_or(30),
            max_delay_seconds: self.retry.max_delay_seconds.unwrap_or(3600),
            max_attempts: self.retry.max_attempts.unwrap_or(8).max(1),
            jitter_ratio: 0.1,
            ..defaults
        };
        Ok(NotificationTarget {
            name: self.name,
            kind: self.kind,
            url,
            secret,
            events,
            template: self.template,
            retry,
        })
    }
}

/// Every `{name}` of a template is a known placeholder.
pub fn check_template(template: &str) -> Result<(), String> {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| "template: unclosed '{'".to_owned())?;
        let name = &after[..close];
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "template: unknown placeholder {{{name}}}; known: {}",
                PLACEHOLDERS.join(", ")
            ));
        }
        rest = &after[close + 1..];
    }
    Ok(())
}

/// Validates the whole list (names unique).
pub fn validate_all(
    raw: Vec<RawNotificationTarget>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<NotificationTarget>, String> {
    let mut names = BTreeSet::new();
    let mut targets = Vec::new();
    for entry in raw {
        if !names.insert(entry.name.clone()) {
            return Err(format!(
                "notifications: the name {} is used twice",
                entry.name
            ));
        }
        targets.push(entry.validate(lookup)?);
    }
    Ok(targets)
}
