//! The daemon's dependencies as it last saw them: each circuit breaker's
//! state and last error, published by the daemon's loop after every wake-up
//! and read by `GET /api/v1/health/planes`; and this replica's role (leader
//! or standby, and the fencing epoch), read by `/healthz`.

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

/// This replica's part, as its last step saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// No step has run yet.
    Starting,
    /// A SQLite store: one machine, one daemon (the instance lock).
    Single,
    /// The replica holding the lease on a shared (PostgreSQL) store.
    Leader,
    /// Another replica holds the lease; this one processes nothing.
    Standby,
}

/// What `/healthz` says of the replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleView {
    pub role: Role,
    /// The fencing epoch seen at the last step (shared stores only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    /// The replica holding the lease (shared stores only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// When the role was last published.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published_at: Option<DateTime<Utc>>,
}

impl Default for RoleView {
    fn default() -> Self {
        RoleView {
            role: Role::Starting,
            epoch: None,
            leader: None,
            published_at: None,
        }
    }
}

/// Shared between the daemon (writer) and the API (reader).
#[derive(Debug, Clone, Default)]
pub struct HealthBoard {
    breakers: Arc<RwLock<BTreeMap<String, BreakerView>>>,
    role: Arc<RwLock<RoleView>>,
}

impl HealthBoard {
    /// Records a breaker's current state.
    pub fn publish(&self, breaker: &CircuitBreaker, now: DateTime<Utc>) {
        let view = BreakerView {
            dependency: breaker.dependency().to_owned(),
            circuit: serde_json::to_value(breaker.state()).unwrap_or(Value::Null),
            last_error: breaker.last_error().map(str::to_owned),
            published_at: now,
        };
        if let Ok(mut board) = self.breakers.write() {
            board.insert(view.dependency.clone(), view);
        }
    }

    /// Records this replica's role after a step.
    pub fn publish_role(&self, view: RoleView) {
        if let Ok(mut role) = self.role.write() {
            *role = view;
        }
    }

    /// This replica's role as last published.
    pub fn role(&self) -> RoleView {
        self.role
            .read()
            .map(|role| role.clone())
            .unwrap_or_default()
    }

    pub fn breakers(&self) -> Vec<BreakerView> {
        self.breakers
            .read()
            .map(|board| board.values().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ApiServer, router_with_health};

    async fn healthz(server: &ApiServer) -> serde_json::Value {
        let answer = reqwest::get(format!("http://{}/healthz", server.local_addr))
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 200);
        answer.json().await.unwrap()
    }

    #[tokio::test]
    async fn healthz_reports_the_role_and_epoch_the_daemon_last_published() {
        let board = HealthBoard::default();
        let server = ApiServer::start("127.0.0.1:0", router_with_health(None, board.clone()))
            .await
            .unwrap();
        let body = healthz(&server).await;
        assert_eq!(body["status"], "ok");
        assert_eq!(body["role"], "starting", "{body}");
        assert!(body.get("epoch").is_none(), "{body}");

        let now: DateTime<Utc> = "2026-12-01T00:00:00Z".parse().unwrap();
        board.publish_role(RoleView {
            role: Role::Standby,
            epoch: Some(3),
            leader: Some("replica-a".into()),
            published_at: Some(now),
        });
        let body = healthz(&server).await;
        assert_eq!(body["role"], "standby", "{body}");
        assert_eq!(body["epoch"], 3, "{body}");
        assert_eq!(body["leader"], "replica-a", "{body}");

        board.publish_role(RoleView {
            role: Role::Leader,
            epoch: Some(4),
            leader: Some("replica-b".into()),
            published_at: Some(now),
        });
        let body = healthz(&server).await;
        assert_eq!(body["role"], "leader", "{body}");
        assert_eq!(body["epoch"], 4, "{body}");

        board.publish_role(RoleView {
            role: Role::Single,
            epoch: None,
            leader: None,
            published_at: Some(now),
        });
        let body = healthz(&server).await;
        assert_eq!(body["role"], "single", "{body}");
        assert!(body.get("epoch").is_none(), "{body}");
    }
}
