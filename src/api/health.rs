//! The daemon's dependencies as it last saw them: each circuit breaker's
//! state and last error, published by the daemon's loop after every wake-up
//! and read by `GET /api/v1/health/planes`.

use crate::orchestrator::CircuitBreaker;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// One dependency's breaker, as last published.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BreakerView {
    /// `git remote (fetch)`, `evidence push`, `GitHub API`, `plane intune`, ...
    pub dependency: String,
    /// `{"state": "closed", "failures": 0}`, `{"state": "open", "until": ..., "openings": 2}`,
    /// `{"state": "half_open", "openings": 2}`.
    #[schema(value_type = Object)]
    pub circuit: Value,
    pub last_error: Option<String>,
    pub published_at: DateTime<Utc>,
}

/// Shared between the daemon (writer) and the API (reader).
#[derive(Debug, Clone, Default)]
pub struct HealthBoard(Arc<RwLock<BTreeMap<String, BreakerView>>>);

impl HealthBoard {
    /// Records a breaker's current state.
    pub fn publish(&self, breaker: &CircuitBreaker, now: DateTime<Utc>) {
        let view = BreakerView {
            dependency: breaker.dependency().to_owned(),
            circuit: serde_json::to_value(breaker.state()).unwrap_or(Value::Null),
            last_error: breaker.last_error().map(str::to_owned),
            published_at: now,
        };
        if let Ok(mut board) = self.0.write() {
            board.insert(view.dependency.clone(), view);
        }
    }

    pub fn breakers(&self) -> Vec<BreakerView> {
        self.0
            .read()
            .map(|board| board.values().cloned().collect())
            .unwrap_or_default()
    }
}
