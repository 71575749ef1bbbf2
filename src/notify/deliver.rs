//! Sending: one pass over every target — record the messages owed for new
//! events, then send those due, each once, marking it delivered or
//! scheduling its retry (see the module doc of `notify`).

use super::{Facts, NotificationTarget, TargetKind, Trigger, message};
use crate::orchestrator::backoff::{jitter_fraction, next_attempt};
use crate::store::{EventFilter, Store, StoreError};
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::time::Duration;

/// The header naming one message (the same on every retry).
pub const DELIVERY_HEADER: &str = "x-ringmaster-delivery";
/// The trigger of the message.
pub const EVENT_HEADER: &str = "x-ringmaster-event";
/// Generic webhook: `sha256=<hex HMAC-SHA256 over "<timestamp>.<body>">`.
pub const SIGNATURE_HEADER: &str = "x-ringmaster-signature";
/// Generic webhook: Unix seconds when the message was signed.
pub const TIMESTAMP_HEADER: &str = "x-ringmaster-timestamp";

/// How many events a pass reads per batch, and messages it sends per target.
const BATCH: usize = 500;

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NotifyReport {
    pub delivered: usize,
    pub retrying: usize,
    pub given_up: usize,
}

/// The configured targets and the HTTP client they share.
pub struct Notifier {
    targets: Vec<NotificationTarget>,
    client: reqwest::Client,
}

impl Notifier {
    pub fn new(targets: Vec<NotificationTarget>) -> Notifier {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ringmaster/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("an HTTP client with rustls");
        Notifier { targets, client }
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Gives each new target a cursor at the log's head, so it is told about
    /// what happens from now on. Called before a step records anything.
    pub fn prepare(&self, store: &mut Store) -> Result<(), StoreError> {
        if self.targets.is_empty() {
            return Ok(());
        }
        let head = store.last_event()?.map_or(0, |event| event.seq);
        for target in &self.targets {
            store.start_notification_cursor(&target.name, head)?;
        }
        Ok(())
    }

    /// Records what is owed for new events, then sends what is due.
    pub async fn pass(
        &self,
        store: &mut Store,
        now: DateTime<Utc>,
    ) -> Result<NotifyReport, StoreError> {
        let mut report = NotifyReport::default();
        self.prepare(store)?;
        for target in &self.targets {
            enqueue(store, target, now)?;
            for pending in store.due_notifications(&target.name, now, BATCH)? {
                let Some(event) = store
                    .events(&EventFilter {
                        since_seq: Some(pending.event_seq.saturating_sub(1)),
                        limit: Some(1),
                        ..EventFilter::default()
                    })?
                    .into_iter()
                    .find(|event| event.seq == pending.event_seq)
                else {
                    store.notification_attempt_failed(
                        &target.name,
                        pending.event_seq,
                        "the event is not in the log",
                        None,
                    )?;
                    report.given_up += 1;
                    continue;
                };
                let trigger = Trigger::parse(&pending.trigger).unwrap_or(Trigger::IntentDecided);
                let facts = Facts::of(trigger, &event);
                let body = message(target.kind, target.template.as_deref(), &facts, &event);
                let delivery_id = format!("{}-{}", target.name, event.event_id);
                match self.send(target, &delivery_id, trigger, &body, now).await {
                    Ok(()) => {
                        store.notification_delivered(&target.name, pending.event_seq, now)?;
                        report.delivered += 1;
                    }
                    Err((error, retry_after)) => {
                        let failed = pending.attempts + 1;
                        let jitter = jitter_fraction(&delivery_id, failed);
                        let retry_at =
                            next_attempt(now, failed, retry_after, jitter, &target.retry);
                        tracing::warn!(
                            target = %target.name, seq = pending.event_seq, attempt = failed,
                            retry_at = ?retry_at, %error, "notification not delivered"
                        );
                        store.notification_attempt_failed(
                            &target.name,
                            pending.event_seq,
                            &error,
                            retry_at,
                        )?;
                        if retry_at.is_some() {
                            report.retrying += 1;
                        } else {
                            report.given_up += 1;
                        }
                    }
                }
            }
        }
        Ok(report)
    }

    async fn send(
        &self,
        target: &NotificationTarget,
        delivery_id: &str,
        trigger: Trigger,
        body: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<(), (String, Option<chrono::Duration>)> {
        let bytes = serde_json::to_vec(body).expect("a JSON value serialises");
        let mut request = self
            .client
            .post(target.url.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(DELIVERY_HEADER, delivery_id)
            .header(EVENT_HEADER, trigger.as_str());
        if target.kind == TargetKind::Webhook
            && let Some(secret) = &target.secret
        {
            let timestamp = now.timestamp().to_string();
            request = request
                .header(TIMESTAMP_HEADER, &timestamp)
                .header(SIGNATURE_HEADER, sign(secret.expose(), &timestamp, &bytes));
        }
        // The URL is a credential (Slack, Teams): errors name the target, never it.
        let response = request.body(bytes).send().await.map_err(|error| {
            let class = if error.is_timeout() {
                "timed out"
            } else if error.is_connect() {
                "cannot connect"
            } else {
                "request failed"
            };
            (format!("{}: {class}", target.name), None)
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<i64>().ok())
            .and_then(chrono::Duration::try_seconds);
        Err((format!("{}: HTTP {status}", target.name), retry_after))
    }
}

/// `sha256=<hex>` over `<timestamp>.<body>`.
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn enqueue(
    store: &mut Store,
    target: &NotificationTarget,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    loop {
        let cursor = store.notification_cursor(&target.name)?.unwrap_or(0);
        let events = store.events(&EventFilter {
            since_seq: Some(cursor),
            limit: Some(BATCH),
            ..EventFilter::default()
        })?;
        let Some(last) = events.last().map(|event| event.seq) else {
            return Ok(());
        };
        let owed: Vec<(u64, &str)> = events
            .iter()
            .filter_map(|event| {
                let trigger = Trigger::of(event)?;
                target
                    .events
                    .contains(&trigger)
                    .then_some((event.seq, trigger.as_str()))
            })
            .collect();
        store.enqueue_notifications(&target.name, last, &owed, now)?;
        if events.len() < BATCH {
            return Ok(());
        }
    }
}
