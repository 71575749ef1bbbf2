//! `simulator`: a stateful imitation of the parts of Jamf Pro the connector
//! uses, as a real HTTP server: the OAuth client-credentials and user bearer
//! token endpoints (tokens expire), packages with `DUPLICATE_FIELD` on a
//! taken name, `computers-inventory` with sections, both paged by
//! `page`/`page-size` with `totalCount` and filtered by RSQL; Classic XML
//! computer groups, policies (create with `/id/0`, 409 "Duplicate name",
//! by name, unpaged list), computer history policy logs and log flush; Jamf's
//! JSON and HTML error shapes; a cap of five requests in flight (the sixth is
//! refused with 503); an `APBALANCEID` session cookie (requests that send it
//! back are counted); and switchable faults.
//!
//! Tests, the demo and `ringmaster simulate jamf` drive it through
//! [`JamfSimulator`]'s controls; [`serve`] runs it until a shutdown signal.

mod controls;
mod http;
mod routes;
mod state;

pub use state::{LostRequest, SimulatorFault};

use crate::planes::Secret;
use crate::planes::jamf::MAX_CONNECTIONS;
use crate::planes::simulators::kit::{self, Shutdown};
use axum::Router;
use axum::routing::{delete, get, post};
use state::JamfState;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Who may sign in and how lists are paged.
#[derive(Debug, Clone)]
pub struct SimulatorOptions {
    /// The API client's id; also the one user's name for `/api/v1/auth/token`.
    pub client_id: String,
    /// The API client's secret; also that user's password.
    pub client_secret: Secret,
    /// The largest page the Jamf Pro API lists answer.
    pub page_size: usize,
    /// HTTP status of a `DUPLICATE_FIELD` refusal ([U] in the reference).
    pub duplicate_field_status: u16,
    /// Requests in flight before the next is refused with 503.
    pub max_connections: usize,
    /// How long every API request takes (zero by default), so that
    /// concurrent requests overlap on the server as they do on a real one.
    pub latency: Duration,
}

impl SimulatorOptions {
    pub fn new(client_id: &str, client_secret: Secret) -> SimulatorOptions {
        SimulatorOptions {
            client_id: client_id.into(),
            client_secret,
            page_size: 100,
            duplicate_field_status: 400,
            max_connections: MAX_CONNECTIONS,
            latency: Duration::ZERO,
        }
    }
}

/// A handle to one simulated Jamf Pro server; clones share it.
#[derive(Clone)]
pub struct JamfSimulator {
    state: Arc<Mutex<JamfState>>,
    /// Flips to true at shutdown: held (slow or lost) answers are released.
    shutdown: Shutdown,
    /// The number of requests in flight, for tests that wait on it.
    in_flight: watch::Sender<usize>,
}

impl JamfSimulator {
    pub fn new(options: SimulatorOptions) -> JamfSimulator {
        let state = JamfState::new(
            &options.client_id,
            options.client_secret,
            options.page_size,
            options.duplicate_field_status,
            options.max_connections,
            options.latency,
        );
        JamfSimulator {
            state: Arc::new(Mutex::new(state)),
            shutdown: Shutdown::default(),
            in_flight: watch::Sender::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, JamfState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until `count` requests are in flight at once.
    pub async fn until_in_flight(&self, count: usize) {
        let mut receiver = self.in_flight.subscribe();
        // An error means the sender is gone: the simulator is gone too.
        let _ = receiver.wait_for(|now| *now >= count).await;
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/api/v1/oauth/token", post(routes::oauth_token))
            .route("/api/v1/auth/token", post(routes::user_token))
            .route(
                "/api/v1/packages",
                get(routes::list_packages).post(routes::create_package),
            )
            .route(
                "/api/v1/packages/{id}",
                get(routes::get_package)
                    .put(routes::put_package)
                    .delete(routes::delete_package),
            )
            .route(
                "/api/v3/computers-inventory",
                get(routes::computers_inventory),
            )
            .route(
                "/JSSResource/computergroups/id/{id}",
                get(routes::computer_group),
            )
            .route("/JSSResource/policies", get(routes::list_policies))
            .route(
                "/JSSResource/policies/id/{id}",
                get(routes::get_policy)
                    .post(routes::create_policy)
                    .put(routes::update_policy)
                    .delete(routes::delete_policy),
            )
            .route(
                "/JSSResource/policies/name/{name}",
                get(routes::policy_by_name),
            )
            .route(
                "/JSSResource/computerhistory/id/{id}/subset/{subset}",
                get(routes::computer_history),
            )
            .route(
                "/JSSResource/logflush/policy/id/{id}/interval/{interval}",
                delete(routes::flush_policy_logs),
            )
            .fallback(routes::unknown_route)
            .layer(axum::middleware::from_fn_with_state(
                self.clone(),
                http::faults_and_auth,
            ))
            .with_state(self.clone())
    }

    /// Binds `127.0.0.1:0`, serves in a background task until the handle's
    /// runtime ends, and answers the address.
    pub async fn start(&self) -> std::io::Result<SocketAddr> {
        kit::start(self.router(), self.shutdown.clone(), "jamf").await
    }
}

/// Serves the simulator on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    simulator: JamfSimulator,
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
