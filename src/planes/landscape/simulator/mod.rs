//! `simulator`: a stateful imitation of the Landscape legacy API (and the REST
//! login) as a real HTTP server: `/api/` with the action in the query string
//! (GET or POST), signature version 2 checked on every signed request, JWTs
//! from `POST /api/v2/login`, computers with tags, package changes as parent
//! activities with one `ChangePackagesRequest` child per computer and the
//! documented `activity_status` values, the computer and activity query
//! languages (`tag:`, `id:`, `NOT`, `OR`, `parent-id:`, `type:`, `status:`,
//! `created-after:`, `computer:`), `limit`/`offset` paging, the legacy error
//! body, and switchable faults.
//!
//! Tests drive it through [`LandscapeSimulator`]'s controls; [`serve`] runs it
//! until a shutdown signal, for tests and for `ringmaster simulate landscape`.

mod controls;
mod http;
mod routes;
mod state;

pub use state::{LostRequest, SimulatorFault};

use crate::planes::Secret;
use crate::planes::simulators::kit::{self, Shutdown};
use axum::Router;
use axum::routing::{any, post};
use state::LandscapeState;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::net::TcpListener;

/// The account and who may sign in.
#[derive(Debug, Clone)]
pub struct SimulatorOptions {
    /// The legacy API access key (`access_key_id`).
    pub access_key: String,
    /// The secret key signatures are checked with.
    pub secret_key: Secret,
    /// The REST login's user.
    pub email: String,
    pub password: Secret,
    pub account: String,
    /// The most items a list answers per request (`limit` is capped to it,
    /// and it is the default when `limit` is absent).
    pub page_size: usize,
    /// How far a signed request's `timestamp` may be from the simulator's clock.
    pub timestamp_tolerance: chrono::Duration,
}

impl SimulatorOptions {
    pub fn new(access_key: &str, secret_key: Secret) -> SimulatorOptions {
        SimulatorOptions {
            access_key: access_key.into(),
            secret_key,
            email: "ringmaster@example.com".into(),
            password: Secret::new(format!("pw-{}", uuid::Uuid::new_v4().simple())),
            account: "standalone".into(),
            page_size: 1000,
            timestamp_tolerance: chrono::Duration::minutes(15),
        }
    }

    /// Who may log in through `POST /api/v2/login`.
    pub fn with_login(mut self, email: &str, password: Secret, account: &str) -> SimulatorOptions {
        self.email = email.into();
        self.password = password;
        self.account = account.into();
        self
    }
}

/// A handle to one simulated Landscape account; clones share it.
#[derive(Clone)]
pub struct LandscapeSimulator {
    state: Arc<Mutex<LandscapeState>>,
    /// Flips to true at shutdown: held (slow or lost) answers are released.
    shutdown: Shutdown,
}

impl LandscapeSimulator {
    pub fn new(options: SimulatorOptions) -> LandscapeSimulator {
        LandscapeSimulator {
            state: Arc::new(Mutex::new(LandscapeState::new(&options))),
            shutdown: Shutdown::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, LandscapeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn router(&self) -> Router {
        let legacy = Router::new().route("/api/", any(routes::legacy)).layer(
            axum::middleware::from_fn_with_state(self.clone(), http::faults_and_auth),
        );
        Router::new()
            .route("/api/v2/login", post(routes::login))
            .merge(legacy)
            .with_state(self.clone())
    }

    /// Binds `127.0.0.1:0`, serves in a background task until the handle's
    /// runtime ends, and answers the address.
    pub async fn start(&self) -> std::io::Result<SocketAddr> {
        kit::start(self.router(), self.shutdown.clone(), "landscape").await
    }
}

/// Serves the simulator on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    simulator: LandscapeSimulator,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    kit::serve(
        listener,
        simulator.router(),
        simulator.shutdown.clone(),
        shutdown,
    )
    .await
}
