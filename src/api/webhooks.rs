//! `POST /webhooks/github`: verify, deduplicate, store, wake, answer 202.
//!
//! In this order, each step before the next:
//! 1. the body is read with a hard cap ([`WEBHOOK_BODY_LIMIT`]; larger is
//!    `413` before it is read in full);
//! 2. `X-Hub-Signature-256` is checked over the raw bytes in constant time;
//!    a missing or wrong signature is `401` and the body is never parsed;
//! 3. event types and actions ringmaster does not handle, and deliveries
//!    about another repository, are acknowledged (`202`) and dropped;
//! 4. the delivery id (`X-GitHub-Delivery`) and a small hint are written to
//!    the state store through its group committer (`store::GroupCommitter`:
//!    concurrent deliveries share one transaction and one fsync, and each
//!    is answered only once its commit is durable): a repeated id is
//!    acknowledged and not queued again, even after a restart; a delivery
//!    whose commit failed is `503`, never `202`;
//! 5. the daemon's loop is woken and `202` goes back — the work happens
//!    there. A delivery is a hint: the daemon re-reads GitHub before acting.
//!
//! The delivery id is not covered by the signature, so a captured body can
//! be replayed under a new id; that only makes the daemon re-read GitHub.

use super::Clock;
use crate::forge::WebhookSecret;
use crate::forge::signature::{self, SIGNATURE_HEADER};
use crate::forge::webhook::{self, Classified, DELIVERY_HEADER, EVENT_HEADER};
use crate::store::GroupCommitter;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use std::sync::Arc;

/// The largest delivery accepted. GitHub caps payloads at 25 MB; the events
/// ringmaster handles are tens of kilobytes (push lists at most 20 commits).
pub const WEBHOOK_BODY_LIMIT: usize = 1024 * 1024;

/// What the receiver needs.
pub struct WebhookState {
    pub secret: WebhookSecret,
    /// `owner/name`: deliveries about other repositories are dropped.
    pub repository: String,
    /// The group committer of a connection of its own to the daemon's
    /// state store (never the leader's writer: deliveries are stored by
    /// every replica).
    pub deliveries: GroupCommitter,
    pub clock: Clock,
    /// Wakes the daemon's event loop (a hint; the queue is the store).
    pub on_enqueued: Box<dyn Fn() + Send + Sync>,
}

/// The webhook route with its body cap.
pub fn routes(state: Arc<WebhookState>) -> Router {
    Router::new()
        .route("/webhooks/github", post(receive))
        .layer(DefaultBodyLimit::max(WEBHOOK_BODY_LIMIT))
        .with_state(state)
}

fn answer(
    status: StatusCode,
    outcome: &str,
    detail: impl Into<String>,
) -> (StatusCode, Json<Value>) {
    (
        status,
        Json(json!({"status": outcome, "detail": detail.into()})),
    )
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn receive(
    State(state): State<Arc<WebhookState>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Json<Value>) {
    let provided = headers.get(SIGNATURE_HEADER).map(|v| v.as_bytes());
    if let Err(error) = signature::verify(&state.secret, &body, provided) {
        tracing::warn!(%error, "webhook delivery refused");
        return answer(StatusCode::UNAUTHORIZED, "refused", error.to_string());
    }
    let (Some(event), Some(delivery_id)) = (
        header(&headers, EVENT_HEADER),
        header(&headers, DELIVERY_HEADER),
    ) else {
        return answer(
            StatusCode::BAD_REQUEST,
            "refused",
            "X-GitHub-Event and X-GitHub-Delivery are required",
        );
    };
    let hint = match webhook::classify(event, &body) {
        Ok(Classified::Handle(hint)) => hint,
        Ok(Classified::Ignore { reason }) => {
            return answer(StatusCode::ACCEPTED, "ignored", reason);
        }
        Err(error) => return answer(StatusCode::BAD_REQUEST, "refused", error.to_string()),
    };
    if let Some(repository) = hint.repository()
        && !repository.eq_ignore_ascii_case(&state.repository)
    {
        return answer(
            StatusCode::ACCEPTED,
            "ignored",
            format!("delivery is about {repository}, not {}", state.repository),
        );
    }
    if hint == webhook::WebhookHint::Ping {
        return answer(StatusCode::ACCEPTED, "pong", "webhook reaches ringmaster");
    }
    let payload = serde_json::to_value(&hint).expect("hints serialise");
    let now = (state.clock)();
    let recorded = state
        .deliveries
        .record_delivery(delivery_id, event, &payload, now)
        .await;
    match recorded {
        Ok(true) => {
            (state.on_enqueued)();
            answer(StatusCode::ACCEPTED, "queued", delivery_id)
        }
        Ok(false) => answer(
            StatusCode::ACCEPTED,
            "duplicate",
            format!("delivery {delivery_id} was received before"),
        ),
        Err(error) => {
            tracing::error!(%error, "webhook delivery could not be stored");
            answer(
                StatusCode::SERVICE_UNAVAILABLE,
                "error",
                "the delivery could not be stored; the poll will catch up",
            )
        }
    }
}
