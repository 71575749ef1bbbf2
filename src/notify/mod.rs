//! Notifications: chosen events of the audit log, sent to Slack- and
//! Teams-compatible incoming webhooks and to a generic signed JSON webhook.
//!
//! The event log is the source. Each target has a cursor in the store (the
//! last event it has looked at, starting at the log's head when the target
//! is first seen, so a new target is not flooded with history); every
//! matching event becomes a delivery row keyed by (target, event seq), sent,
//! retried with backoff after a failure (`orchestrator::backoff::next_attempt`,
//! the one place retry timing is decided), and marked delivered. A restart
//! reads the same rows, so nothing delivered is sent again; a crash between
//! the receiver's `2xx` and the row's update re-sends that one message with
//! the same `X-Ringmaster-Delivery` id, which the receiver can drop.
//!
//! This file is pure: which events notify ([`Trigger::of`]) and what the
//! message says ([`message`]). `config` reads the daemon config's
//! `notifications:` list, `deliver` sends.

pub mod config;
pub mod deliver;

use crate::store::{Event, EventType};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use config::{NotificationTarget, RawNotificationTarget, TargetKind};

/// The events a target can choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The policy's verdict on an intent (ALLOW, DENY, ...).
    IntentDecided,
    /// A rollout waits for a CAB approval or an exception.
    AwaitingCab,
    /// A ring passed its gate.
    RingPromoted,
    /// A ring's gate failed.
    GateFailed,
    /// A rollback finished on the plane.
    RolledBack,
    /// Drift between the desired and the plane's state.
    DriftFound,
    /// A commit changed the governance rules without the approvals it needs.
    GovernanceChangeUnauthorised,
    /// The evidence branch cannot be pushed: nothing is published.
    EvidencePushFailing,
}

impl Trigger {
    pub const ALL: [Trigger; 8] = [
        Trigger::IntentDecided,
        Trigger::AwaitingCab,
        Trigger::RingPromoted,
        Trigger::GateFailed,
        Trigger::RolledBack,
        Trigger::DriftFound,
        Trigger::GovernanceChangeUnauthorised,
        Trigger::EvidencePushFailing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::IntentDecided => "intent_decided",
            Trigger::AwaitingCab => "awaiting_cab",
            Trigger::RingPromoted => "ring_promoted",
            Trigger::GateFailed => "gate_failed",
            Trigger::RolledBack => "rolled_back",
            Trigger::DriftFound => "drift_found",
            Trigger::GovernanceChangeUnauthorised => "governance_change_unauthorised",
            Trigger::EvidencePushFailing => "evidence_push_failing",
        }
    }

    pub fn parse(text: &str) -> Option<Trigger> {
        Trigger::ALL.into_iter().find(|t| t.as_str() == text)
    }

    /// The trigger an event fires, if any.
    pub fn of(event: &Event) -> Option<Trigger> {
        let kind = event.details.get("kind").and_then(Value::as_str);
        match event.event_type {
            EventType::PolicyEvaluated if kind == Some("verdict") => Some(Trigger::IntentDecided),
            // The decision record names the rules that fired.
            EventType::EvidenceCommitted
                if event
                    .details
                    .get("rules")
                    .and_then(Value::as_array)
                    .is_some_and(|rules| {
                        rules
                            .iter()
                            .filter_map(Value::as_str)
                            .any(|rule| rule.contains("governance_change_unauthorised"))
                    }) =>
            {
                Some(Trigger::GovernanceChangeUnauthorised)
            }
            EventType::PublishBlocked if event.correlation_id == "evidence:push" => {
                Some(Trigger::EvidencePushFailing)
            }
            EventType::PublishBlocked if kind == Some("awaiting_approval") => {
                Some(Trigger::AwaitingCab)
            }
            EventType::RingCompleted => Some(Trigger::RingPromoted),
            EventType::GateEvaluated if event.details["gate"]["verdict"] == "fail" => {
                Some(Trigger::GateFailed)
            }
            EventType::RollbackExecuted if kind == Some("rolled_back") => Some(Trigger::RolledBack),
            EventType::DriftDetected => Some(Trigger::DriftFound),
            _ => None,
        }
    }
}

/// The facts a message is made of, also the placeholders of a template
/// (`{intent}`, `{ring}`, ...).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Facts {
    pub trigger: &'static str,
    pub title: String,
    pub summary: String,
    pub intent: String,
    pub ring: String,
    pub plane: String,
    pub outcome: String,
    pub seq: u64,
    pub event_id: String,
    pub timestamp: String,
}

impl Facts {
    pub fn of(trigger: Trigger, event: &Event) -> Facts {
        let intent = event.intent_id.clone().unwrap_or_default();
        let ring = event.ring.clone().unwrap_or_default();
        let text = |key: &str| {
            event
                .details
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        let (title, summary) = match trigger {
            Trigger::IntentDecided | Trigger::GovernanceChangeUnauthorised => {
                let decision = text("decision");
                let risk = event
                    .details
                    .get("risk_score")
                    .cloned()
                    .unwrap_or(Value::Null);
                (
                    format!("{intent}: {decision}"),
                    format!("policy decision {decision}, risk score {risk}"),
                )
            }
            Trigger::AwaitingCab => (
                format!("{intent} awaits {}", text("requirement").replace('_', " ")),
                format!("{ring} needs it before it starts ({})", text("decision")),
            ),
            Trigger::RingPromoted => (
                format!("{intent}: {ring} passed its gate"),
                gate_summary(&event.details["gate"]),
            ),
            Trigger::GateFailed => (
                format!("{intent}: the {ring} gate failed"),
                gate_summary(&event.details["gate"]),
            ),
            Trigger::RolledBack => (format!("{intent} rolled back"), text("reason")),
            Trigger::DriftFound => (
                format!("{intent}: drift ({})", text("drift_type")),
                format!(
                    "{}; remediation: {}",
                    text("detail"),
                    text("remediation_action")
                ),
            ),
            Trigger::EvidencePushFailing => (
                "evidence push failing: nothing is published".to_owned(),
                text("reason"),
            ),
        };
        Facts {
            trigger: trigger.as_str(),
            title,
            summary,
            intent,
            ring,
            plane: event.execution_plane.clone().unwrap_or_default(),
            outcome: event.outcome.as_str().to_owned(),
            seq: event.seq,
            event_id: event.event_id.clone(),
            timestamp: event
                .timestamp
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }
    }

    fn placeholder(&self, name: &str) -> Option<String> {
        Some(match name {
            "trigger" => self.trigger.to_owned(),
            "title" => self.title.clone(),
            "summary" => self.summary.clone(),
            "intent" => self.intent.clone(),
            "ring" => self.ring.clone(),
            "plane" => self.plane.clone(),
            "outcome" => self.outcome.clone(),
            "seq" => self.seq.to_string(),
            "event_id" => self.event_id.clone(),
            "timestamp" => self.timestamp.clone(),
            _ => return None,
        })
    }
}

/// The placeholders a template may use.
pub const PLACEHOLDERS: &[&str] = &[
    "trigger",
    "title",
    "summary",
    "intent",
    "ring",
    "plane",
    "outcome",
    "seq",
    "event_id",
    "timestamp",
];

fn gate_summary(gate: &Value) -> String {
    match gate.get("reasons").and_then(Value::as_array) {
        Some(reasons) => reasons
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("; "),
        None => String::new(),
    }
}

/// Fills `{name}` placeholders; each value passes through `escape` (the
/// target's markup). Unknown names were refused when the config was read.
pub fn fill(template: &str, facts: &Facts, escape: fn(&str) -> String) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => match facts.placeholder(&after[..close]) {
                Some(value) => {
                    out.push_str(&escape(&value));
                    rest = &after[close + 1..];
                }
                None => {
                    out.push('{');
                    rest = after;
                }
            },
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Slack's `mrkdwn` control characters (`&`, `<`, `>`), escaped as Slack asks.
pub fn escape_slack(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Teams' card markdown: no link or emphasis can be injected.
pub fn escape_teams(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        if matches!(
            character,
            '\\' | '*' | '_' | '[' | ']' | '(' | ')' | '#' | '`' | '<' | '>'
        ) {
            out.push('\\');
        }
        out.push(character);
    }
    out
}

fn plain(text: &str) -> String {
    text.to_owned()
}

/// The default template of chat messages.
pub const DEFAULT_TEMPLATE: &str = "*{title}*\n{summary}";

/// The JSON body a target receives for one event.
pub fn message(kind: TargetKind, template: Option<&str>, facts: &Facts, event: &Event) -> Value {
    let template = template.unwrap_or(DEFAULT_TEMPLATE);
    match kind {
        TargetKind::Slack => json!({
            "text": fill(template, facts, escape_slack),
            "unfurl_links": false,
        }),
        TargetKind::Teams => json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        {"type": "TextBlock", "text": escape_teams(&facts.title), "weight": "Bolder", "wrap": true},
                        {"type": "TextBlock", "text": fill(template, facts, escape_teams), "wrap": true},
                        {"type": "FactSet", "facts": [
                            {"title": "Event", "value": facts.trigger},
                            {"title": "Intent", "value": escape_teams(&facts.intent)},
                            {"title": "Ring", "value": escape_teams(&facts.ring)},
                            {"title": "Seq", "value": facts.seq.to_string()},
                        ]}
                    ]
                }
            }]
        }),
        TargetKind::Webhook => json!({
            "trigger": facts.trigger,
            "title": facts.title,
            "text": fill(template, facts, plain),
            "event": event,
        }),
    }
}

#[cfg(test)]
mod tests;
