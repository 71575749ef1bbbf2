//! `GET /metrics`: the Prometheus exposition of what the store holds (see
//! `crate::metrics`). Reading runs on a blocking thread with the server's
//! own read connection to the store; nothing is written.

use super::Clock;
use crate::metrics::{self, Observation, approvals::ApprovalSource};
use crate::store::Store;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What the metrics route reads.
pub struct MetricsState {
    pub store: Mutex<Store>,
    pub approvals: ApprovalSource,
    pub clock: Clock,
    /// How long the previous collection took, reported by the next one.
    pub previous_collect_seconds: Mutex<f64>,
    /// The event log's counts so far (each scrape reads only what is new).
    pub tally: Mutex<metrics::Tally>,
}

impl MetricsState {
    pub fn new(store: Store, approvals: ApprovalSource, clock: Clock) -> MetricsState {
        MetricsState {
            store: Mutex::new(store),
            approvals,
            clock,
            previous_collect_seconds: Mutex::new(0.0),
            tally: Mutex::new(metrics::Tally::default()),
        }
    }

    /// The exposition text, read now.
    pub fn exposition(&self) -> Result<String, crate::store::StoreError> {
        let started = Instant::now();
        let store = self
            .store
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let timings = self.approvals.timings(&store);
        let mut tally = self
            .tally
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let mut observation = Observation::read_with(&store, &mut tally, timings, (self.clock)())?;
        drop(tally);
        drop(store);
        let mut previous = self
            .previous_collect_seconds
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        observation.previous_collect_seconds = *previous;
        let text = metrics::render(&observation);
        *previous = started.elapsed().as_secs_f64();
        Ok(text)
    }
}

/// The route: `GET /metrics`.
pub fn routes(state: Arc<MetricsState>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(state)
}

async fn scrape(State(state): State<Arc<MetricsState>>) -> Response {
    match tokio::task::spawn_blocking(move || state.exposition()).await {
        Ok(Ok(text)) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        Ok(Err(error)) => {
            tracing::warn!(%error, "metrics: reading the store failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the state store cannot be read\n",
            )
                .into_response()
        }
        Err(error) => {
            tracing::warn!(%error, "metrics: the collection task failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "metrics collection failed\n",
            )
                .into_response()
        }
    }
}
