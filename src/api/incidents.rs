//! Incident intake: `POST /webhooks/alertmanager` (Alertmanager's webhook
//! receiver) and `POST /webhooks/incidents` (a generic, HMAC-signed
//! incident webhook). Both record incidents in the store, where the
//! promotion gates read them (`Store::open_incidents_matching`).
//!
//! In this order, each step before the next:
//! 1. the body is read with a hard cap ([`ALERTMANAGER_BODY_LIMIT`],
//!    [`INCIDENT_BODY_LIMIT`]; larger is `413`);
//! 2. the sender is authenticated before the body is parsed — Alertmanager
//!    with what its `http_config` sends (`Authorization: Bearer <token>`,
//!    or basic auth), compared in constant time; the generic webhook with
//!    `X-Ringmaster-Signature: sha256=<hex>`, an HMAC-SHA256 over
//!    `<timestamp>.<raw body>` where the timestamp (`X-Ringmaster-Timestamp`,
//!    Unix seconds) must be within [`MAX_CLOCK_SKEW_SECONDS`] of now, so a
//!    captured request cannot be replayed later. Missing or wrong: `401`;
//! 3. the payload is parsed into [`IncidentReport`]s ([`alertmanager_reports`],
//!    [`generic_report`]: pure); a malformed one is `400` naming the field;
//! 4. each report is recorded (`Store::record_incident`): deduplicated by
//!    source and the source's id (Alertmanager: the alert's fingerprint), so
//!    Alertmanager's repeated notifications and a re-sent webhook change
//!    nothing; a generic report older than the last one applied for its
//!    incident is ignored (no reordering by replay). Every change (opened,
//!    resolved, reopened) is an event in the audit log;
//! 5. the daemon's loop is woken and `200` goes back with what was recorded.
//!
//! Alertmanager alerts map to rollouts by labels: `ringmaster_app` (the
//! application id, required: an alert without it is acknowledged and
//! ignored), `ringmaster_ring` and `business_unit` (or
//! `ringmaster_business_unit`), each optional and narrowing. A firing alert
//! is an open incident, a resolved one closes it.

use super::Clock;
use crate::store::{
    EventOutcome, EventType, IncidentChange, IncidentReport, IncidentStatus, NewEvent, Store,
};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit as _, Mac as _};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The largest Alertmanager notification accepted (a group of thousands of
/// alerts with their labels and annotations stays well below it).
pub const ALERTMANAGER_BODY_LIMIT: usize = 4 * 1024 * 1024;
/// The largest generic incident report accepted.
pub const INCIDENT_BODY_LIMIT: usize = 64 * 1024;
/// How far a generic report's signed timestamp may be from now.
pub const MAX_CLOCK_SKEW_SECONDS: i64 = 300;
/// The header carrying the generic webhook's HMAC.
pub const SIGNATURE_HEADER: &str = "x-ringmaster-signature";
/// The header carrying the signed Unix timestamp.
pub const TIMESTAMP_HEADER: &str = "x-ringmaster-timestamp";

/// A secret compared or keyed with, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct IntakeSecret(String);

impl IntakeSecret {
    pub fn new(value: impl Into<String>) -> IntakeSecret {
        IntakeSecret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for IntakeSecret {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("***")
    }
}

/// How Alertmanager authenticates (its receiver's `http_config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertmanagerAuth {
    /// `authorization: {type: Bearer, credentials: ...}`.
    Bearer(IntakeSecret),
    /// `basic_auth: {username: ..., password: ...}`.
    Basic {
        username: String,
        password: IntakeSecret,
    },
}

/// What the intake needs.
pub struct IncidentIntake {
    /// `None`: the Alertmanager receiver is not served.
    pub alertmanager: Option<AlertmanagerAuth>,
    /// `None`: the generic webhook is not served.
    pub webhook_secret: Option<IntakeSecret>,
    /// A connection of its own to the daemon's state store.
    pub store: Mutex<Store>,
    pub clock: Clock,
    /// Wakes the daemon's event loop after a change.
    pub on_recorded: Box<dyn Fn() + Send + Sync>,
}

/// The routes that are configured (each only with its authentication).
pub fn routes(state: Arc<IncidentIntake>) -> Router {
    let mut router = Router::new();
    if state.alertmanager.is_some() {
        router = router.route(
            "/webhooks/alertmanager",
            post(receive_alertmanager).layer(DefaultBodyLimit::max(ALERTMANAGER_BODY_LIMIT)),
        );
    }
    if state.webhook_secret.is_some() {
        router = router.route(
            "/webhooks/incidents",
            post(receive_generic).layer(DefaultBodyLimit::max(INCIDENT_BODY_LIMIT)),
        );
    }
    router.with_state(state)
}

type Answer = (StatusCode, Json<Value>);

fn refuse(status: StatusCode, detail: impl Into<String>) -> Answer {
    (
        status,
        Json(json!({"status": "refused", "detail": detail.into()})),
    )
}

/// Equal in time independent of where they differ.
fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    let length_differs = left.len() != right.len();
    let mut difference = 0u8;
    for (index, byte) in left.iter().enumerate() {
        difference |= byte ^ right.get(index).copied().unwrap_or(0);
    }
    !length_differs && difference == 0
}

/// Whether the `Authorization` header is what Alertmanager is configured to send.
pub fn alertmanager_authorized(auth: &AlertmanagerAuth, headers: &HeaderMap) -> bool {
    let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some((scheme, credentials)) = value.split_once(' ') else {
        return false;
    };
    match auth {
        AlertmanagerAuth::Bearer(token) => {
            scheme.eq_ignore_ascii_case("bearer")
                && constant_time_eq(credentials.trim().as_bytes(), token.expose().as_bytes())
        }
        AlertmanagerAuth::Basic { username, password } => {
            use base64::Engine as _;
            if !scheme.eq_ignore_ascii_case("basic") {
                return false;
            }
            let expected = base64::engine::general_purpose::STANDARD
                .encode(format!("{username}:{}", password.expose()));
            constant_time_eq(credentials.trim().as_bytes(), expected.as_bytes())
        }
    }
}

/// The generic webhook's signature for `body` sent at `timestamp`:
/// `sha256=` and the hex HMAC-SHA256 of `<timestamp>.<body>`.
pub fn sign_generic(secret: &IntakeSecret, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks the generic webhook's signature and timestamp; the timestamp on success.
pub fn verify_generic(
    secret: &IntakeSecret,
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, String> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let timestamp = header(TIMESTAMP_HEADER)
        .ok_or_else(|| format!("{TIMESTAMP_HEADER} is required"))?
        .trim()
        .parse::<i64>()
        .map_err(|_| format!("{TIMESTAMP_HEADER} is not Unix seconds"))?;
    let provided =
        header(SIGNATURE_HEADER).ok_or_else(|| format!("{SIGNATURE_HEADER} is required"))?;
    let hex_part = provided
        .trim()
        .strip_prefix("sha256=")
        .ok_or("the signature must be sha256=<hex>")?;
    let provided_bytes = hex::decode(hex_part).map_err(|_| "the signature is not hex")?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&provided_bytes)
        .map_err(|_| "the signature does not match the body".to_owned())?;
    let sent = DateTime::<Utc>::from_timestamp(timestamp, 0).ok_or("timestamp out of range")?;
    if (now - sent).num_seconds().abs() > MAX_CLOCK_SKEW_SECONDS {
        return Err(format!(
            "the signed timestamp {sent} is more than {MAX_CLOCK_SKEW_SECONDS} s from now: a replay or a skewed clock"
        ));
    }
    Ok(sent)
}

/// Alertmanager's webhook payload (`version: "4"`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertmanagerNotification {
    pub version: String,
    #[serde(default)]
    pub group_key: String,
    #[serde(default)]
    pub receiver: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub external_url: String,
    pub alerts: Vec<AlertmanagerAlert>,
}

/// One alert of a notification.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertmanagerAlert {
    pub status: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    #[serde(default, rename = "generatorURL")]
    pub generator_url: String,
    #[serde(default)]
    pub fingerprint: String,
}

/// What a notification turned into.
#[derive(Debug, Default)]
pub struct ParsedNotification {
    pub reports: Vec<IncidentReport>,
    /// Alerts without `ringmaster_app`: acknowledged, not recorded.
    pub ignored: usize,
}

/// Alertmanager's notification as incident reports (pure). `now` stands
/// in for a missing `startsAt`.
pub fn alertmanager_reports(body: &[u8], now: DateTime<Utc>) -> Result<ParsedNotification, String> {
    let notification: AlertmanagerNotification = serde_json::from_slice(body)
        .map_err(|error| format!("not an Alertmanager webhook notification: {error}"))?;
    if notification.version != "4" {
        return Err(format!(
            "Alertmanager webhook version {:?} is not supported (expected \"4\")",
            notification.version
        ));
    }
    let mut parsed = ParsedNotification::default();
    for alert in notification.alerts {
        let Some(application_id) = alert
            .labels
            .get("ringmaster_app")
            .filter(|app| !app.trim().is_empty())
            .cloned()
        else {
            parsed.ignored += 1;
            continue;
        };
        let status = match alert.status.as_str() {
            "firing" => IncidentStatus::Open,
            "resolved" => IncidentStatus::Resolved,
            other => {
                return Err(format!(
                    "alert status {other:?} is neither firing nor resolved"
                ));
            }
        };
        let fingerprint = if alert.fingerprint.is_empty() {
            // Alertmanager always sends one; derive it from the labels otherwise.
            crate::evidence::sha256_hex(
                serde_json::to_string(&alert.labels)
                    .unwrap_or_default()
                    .as_bytes(),
            )
        } else {
            alert.fingerprint.clone()
        };
        let label = |name: &str| alert.labels.get(name).filter(|v| !v.is_empty()).cloned();
        let summary = alert
            .annotations
            .get("summary")
            .or_else(|| alert.annotations.get("description"))
            .or_else(|| alert.labels.get("alertname"))
            .cloned()
            .unwrap_or_else(|| "alert".to_owned());
        parsed.reports.push(IncidentReport {
            source: "alertmanager".into(),
            external_id: fingerprint,
            application_id,
            ring: label("ringmaster_ring"),
            business_unit: label("business_unit").or_else(|| label("ringmaster_business_unit")),
            severity: label("severity").unwrap_or_else(|| "unknown".into()),
            summary,
            status,
            started_at: alert.starts_at.filter(|t| t.timestamp() > 0).unwrap_or(now),
            details: json!({
                "alertname": alert.labels.get("alertname"),
                "labels": alert.labels,
                "annotations": alert.annotations,
                "starts_at": alert.starts_at,
                "ends_at": alert.ends_at,
                "generator_url": alert.generator_url,
                "group_key": notification.group_key,
                "receiver": notification.receiver,
                "external_url": notification.external_url,
            }),
        });
    }
    Ok(parsed)
}

/// The generic webhook's body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericIncident {
    /// The sender's incident id: the deduplication key.
    pub id: String,
    /// The application id.
    pub app: String,
    pub ring: Option<String>,
    pub business_unit: Option<String>,
    /// Alternative to `ring` / `business_unit` at the top level.
    pub scope: Option<GenericScope>,
    pub severity: String,
    /// `open` or `resolved`.
    pub status: IncidentStatus,
    #[serde(default)]
    pub summary: String,
    pub started_at: Option<DateTime<Utc>>,
    /// Anything else the sender wants on record.
    #[serde(default)]
    pub details: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericScope {
    pub ring: Option<String>,
    pub business_unit: Option<String>,
}

/// The generic webhook's body as an incident report (pure).
pub fn generic_report(body: &[u8], signed_at: DateTime<Utc>) -> Result<IncidentReport, String> {
    let incident: GenericIncident =
        serde_json::from_slice(body).map_err(|error| format!("not an incident report: {error}"))?;
    let nonempty = |field: &str, value: &str| {
        if value.trim().is_empty() || value.len() > 256 {
            Err(format!("{field} must be 1 to 256 characters"))
        } else {
            Ok(())
        }
    };
    nonempty("id", &incident.id)?;
    nonempty("app", &incident.app)?;
    nonempty("severity", &incident.severity)?;
    let scope = incident.scope.unwrap_or(GenericScope {
        ring: None,
        business_unit: None,
    });
    Ok(IncidentReport {
        source: "webhook".into(),
        external_id: incident.id.clone(),
        application_id: incident.app.clone(),
        ring: incident.ring.or(scope.ring).filter(|r| !r.is_empty()),
        business_unit: incident
            .business_unit
            .or(scope.business_unit)
            .filter(|b| !b.is_empty()),
        severity: incident.severity,
        summary: if incident.summary.is_empty() {
            format!("incident {}", incident.id)
        } else {
            incident.summary
        },
        status: incident.status,
        started_at: incident.started_at.unwrap_or(signed_at),
        details: json!({"signed_at": signed_at, "details": incident.details}),
    })
}

/// Records reports and their events; returns `(created, resolved, reopened, unchanged)`.
fn record(
    state: &IncidentIntake,
    reports: Vec<IncidentReport>,
    now: DateTime<Utc>,
    signed_at: Option<DateTime<Utc>>,
) -> Result<Value, crate::store::StoreError> {
    let mut store = state.store.lock().unwrap_or_else(|e| e.into_inner());
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    for report in reports {
        if let Some(signed_at) = signed_at
            && let Some(known) = store.incident(&report.source, &report.external_id)?
            && known
                .details
                .get("signed_at")
                .and_then(|v| serde_json::from_value::<DateTime<Utc>>(v.clone()).ok())
                .is_some_and(|last| signed_at < last)
        {
            *counts.entry("stale").or_default() += 1;
            continue;
        }
        let change = store.record_incident(&report, now)?;
        let (name, event_type, outcome) = match change {
            IncidentChange::Created if report.status == IncidentStatus::Open => {
                ("opened", EventType::IncidentOpened, EventOutcome::Failure)
            }
            IncidentChange::Created => {
                ("resolved", EventType::IncidentResolved, EventOutcome::Info)
            }
            IncidentChange::Reopened => {
                ("reopened", EventType::IncidentOpened, EventOutcome::Failure)
            }
            IncidentChange::Resolved => (
                "resolved",
                EventType::IncidentResolved,
                EventOutcome::Success,
            ),
            IncidentChange::Unchanged => {
                *counts.entry("unchanged").or_default() += 1;
                continue;
            }
        };
        *counts.entry(name).or_default() += 1;
        store.append_event(NewEvent {
            correlation_id: format!("incident:{}:{}", report.source, report.external_id),
            intent_id: None,
            event_type,
            timestamp: now,
            actor: report.source.clone(),
            actor_role: "incident-source".into(),
            execution_plane: None,
            ring: report.ring.clone(),
            outcome,
            details: json!({
                "change": name,
                "application_id": report.application_id,
                "business_unit": report.business_unit,
                "severity": report.severity,
                "summary": report.summary,
                "external_id": report.external_id,
            }),
        })?;
    }
    Ok(json!(counts))
}

async fn record_and_answer(
    state: Arc<IncidentIntake>,
    reports: Vec<IncidentReport>,
    ignored: usize,
    signed_at: Option<DateTime<Utc>>,
) -> Answer {
    let recorder = state.clone();
    let recorded = tokio::task::spawn_blocking(move || {
        let now = (recorder.clock)();
        record(&recorder, reports, now, signed_at)
    })
    .await;
    match recorded {
        Ok(Ok(counts)) => {
            (state.on_recorded)();
            (
                StatusCode::OK,
                Json(json!({"status": "recorded", "incidents": counts, "ignored": ignored})),
            )
        }
        Ok(Err(error)) => {
            tracing::error!(%error, "incident could not be stored");
            refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "the incident could not be stored; send it again",
            )
        }
        Err(error) => refuse(StatusCode::SERVICE_UNAVAILABLE, error.to_string()),
    }
}

async fn receive_alertmanager(
    State(state): State<Arc<IncidentIntake>>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let Some(auth) = &state.alertmanager else {
        return refuse(StatusCode::NOT_FOUND, "not configured");
    };
    if !alertmanager_authorized(auth, &headers) {
        tracing::warn!("Alertmanager notification refused: wrong or missing credentials");
        return refuse(
            StatusCode::UNAUTHORIZED,
            "missing or wrong credentials (configure the receiver's http_config)",
        );
    }
    let parsed = match alertmanager_reports(&body, (state.clock)()) {
        Ok(parsed) => parsed,
        Err(error) => return refuse(StatusCode::BAD_REQUEST, error),
    };
    record_and_answer(state, parsed.reports, parsed.ignored, None).await
}

async fn receive_generic(
    State(state): State<Arc<IncidentIntake>>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let Some(secret) = &state.webhook_secret else {
        return refuse(StatusCode::NOT_FOUND, "not configured");
    };
    let signed_at = match verify_generic(secret, &headers, &body, (state.clock)()) {
        Ok(at) => at,
        Err(error) => {
            tracing::warn!(%error, "incident webhook refused");
            return refuse(StatusCode::UNAUTHORIZED, error);
        }
    };
    let report = match generic_report(&body, signed_at) {
        Ok(report) => report,
        Err(error) => return refuse(StatusCode::BAD_REQUEST, error),
    };
    record_and_answer(state, vec![report], 0, Some(signed_at)).await
}

#[cfg(test)]
mod tests;
