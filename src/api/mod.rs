//! The daemon's HTTP server (axum): `/healthz` and the GitHub webhook
//! receiver, `/webhooks/github`. Each concern is a [`Router`] merged into
//! one, so `/api/v1`, `/metrics` and the status page plug in the same way.
//!
//! The server only ever records and signals: a webhook delivery is verified,
//! deduplicated and stored durably, then the daemon's event loop is woken;
//! all the work happens there. Shutdown is injected ([`ApiServer::shutdown`]).

pub mod auth;
pub mod context;
pub mod governed;
pub mod health;
pub mod incidents;
pub mod metrics;
pub mod origin;
pub mod problem;
pub mod protect;
pub mod status_page;
pub mod tls;
pub mod v1;
pub mod webhooks;

pub use origin::{ApiOrigin, RequestOrigin};

pub use webhooks::{WEBHOOK_BODY_LIMIT, WebhookState};

use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The wall clock, injected (the same shape as `daemon::Clock`).
pub type Clock = crate::forge::Clock;

/// What can go wrong running the server.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
    #[error("the HTTP server failed: {0}")]
    Serve(String),
}

/// The routes: `/healthz` always, `/webhooks/github` when webhooks are configured.
pub fn router(webhooks: Option<Arc<WebhookState>>) -> Router {
    router_with_health(webhooks, health::HealthBoard::default())
}

/// [`router`] whose `/healthz` reports the replica's role and fencing epoch
/// as the daemon publishes them on `health`.
pub fn router_with_health(
    webhooks: Option<Arc<WebhookState>>,
    health: health::HealthBoard,
) -> Router {
    let router = Router::new().route("/healthz", healthz(health));
    match webhooks {
        Some(state) => router.merge(webhooks::routes(state)),
        None => router,
    }
}

/// `GET /healthz`: always 200 while the process serves (load balancers
/// probe it); the body says whether this replica leads, stands by, or runs
/// alone, and under which fencing epoch.
pub fn healthz(health: health::HealthBoard) -> axum::routing::MethodRouter {
    get(move || {
        let health = health.clone();
        async move {
            let role = health.role();
            let mut body = json!({"status": "ok"});
            if let (Some(body), Ok(serde_json::Value::Object(role))) =
                (body.as_object_mut(), serde_json::to_value(role))
            {
                body.extend(role);
            }
            Json(body)
        }
    })
}

async fn bind(address: &str) -> Result<tokio::net::TcpListener, ApiError> {
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| ApiError::Bind {
            address: address.to_owned(),
            source,
        })
}

fn local_address(
    listener: &tokio::net::TcpListener,
    address: &str,
) -> Result<SocketAddr, ApiError> {
    listener.local_addr().map_err(|source| ApiError::Bind {
        address: address.to_owned(),
        source,
    })
}

/// A running server.
pub struct ApiServer {
    /// Where it listens (the real port when `:0` was asked for).
    pub local_addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl ApiServer {
    /// Binds `address` (`127.0.0.1:8080`, `[::]:8080`) and serves `router`
    /// over plain HTTP (each request knows its peer: [`tls::ClientInfo`]).
    pub async fn start(address: &str, router: Router) -> Result<ApiServer, ApiError> {
        let listener = bind(address).await?;
        let local_addr = local_address(&listener, address)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let service = router.into_make_service_with_connect_info::<tls::ClientInfo>();
        let task = tokio::spawn(async move {
            axum::serve(listener, service)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(ApiServer {
            local_addr,
            stop,
            task,
        })
    }

    /// Binds `address` and serves `router` over TLS (rustls), asking for
    /// client certificates when the configuration names a client CA.
    pub async fn start_tls(
        address: &str,
        router: Router,
        config: rustls::ServerConfig,
    ) -> Result<ApiServer, ApiError> {
        let listener = bind(address).await?;
        let local_addr = local_address(&listener, address)?;
        let listener =
            tls::TlsListener::new(listener, config).map_err(|source| ApiError::Bind {
                address: address.to_owned(),
                source,
            })?;
        let (stop, stopped) = oneshot::channel::<()>();
        let service = router.into_make_service_with_connect_info::<tls::ClientInfo>();
        let task = tokio::spawn(async move {
            axum::serve(listener, service)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(ApiServer {
            local_addr,
            stop,
            task,
        })
    }

    /// Stops accepting, lets requests in flight finish, and waits.
    pub async fn shutdown(self) -> Result<(), ApiError> {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(ApiError::Serve(error.to_string())),
            Err(error) => Err(ApiError::Serve(error.to_string())),
        }
    }
}
