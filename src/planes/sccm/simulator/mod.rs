//! `simulator`: a stateful imitation of the Configuration Manager
//! AdminService WMI route (and the Entra token endpoint of the cloud
//! management gateway path) as a real HTTP server: same paths, JSON bodies,
//! lazy properties, status codes, OData errors, `$filter`, `$top`/`$skip`
//! paging with or without `@odata.nextLink`, collection membership evaluated
//! from include and exclude rules, deployment summaries computed from the
//! per-device rows, and switchable faults.
//!
//! Tests drive it through [`SccmSimulator`]'s controls; [`serve`] runs it until
//! a shutdown signal, for tests and for `ringmaster simulate sccm`.

mod controls;
mod http;
mod routes;
mod state;

pub use state::{LostRequest, Paging, SimulatorFault};

use crate::planes::Secret;
use crate::planes::simulators::kit::{self, Shutdown};
use axum::Router;
use axum::routing::{get, post};
use state::SiteState;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::net::TcpListener;

/// The site and who may sign in.
#[derive(Debug, Clone)]
pub struct SimulatorOptions {
    pub site_code: String,
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub page_size: usize,
    pub paging: Paging,
}

impl SimulatorOptions {
    pub fn new(
        site_code: &str,
        tenant_id: &str,
        client_id: &str,
        client_secret: Secret,
    ) -> SimulatorOptions {
        SimulatorOptions {
            site_code: site_code.into(),
            tenant_id: tenant_id.into(),
            client_id: client_id.into(),
            client_secret,
            page_size: 1000,
            paging: Paging::NextLink,
        }
    }
}

/// A handle to one simulated site; clones share it.
#[derive(Clone)]
pub struct SccmSimulator {
    state: Arc<Mutex<SiteState>>,
    /// Flips to true at shutdown: held (slow or lost) answers are released.
    shutdown: Shutdown,
}

impl SccmSimulator {
    pub fn new(options: SimulatorOptions) -> SccmSimulator {
        let state = SiteState::new(
            &options.site_code,
            &options.tenant_id,
            &options.client_id,
            options.client_secret,
            options.page_size,
            options.paging,
        );
        SccmSimulator {
            state: Arc::new(Mutex::new(state)),
            shutdown: Shutdown::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SiteState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(routes::token))
            .route(
                "/AdminService/wmi/{segment}",
                get(routes::get).post(routes::post).delete(routes::delete),
            )
            .route("/AdminService/wmi/{segment}/{action}", post(routes::action))
            .layer(axum::middleware::from_fn_with_state(
                self.clone(),
                http::faults_and_auth,
            ))
            .with_state(self.clone())
    }

    /// Binds `127.0.0.1:0`, serves in a background task until the handle's
    /// runtime ends, and answers the address.
    pub async fn start(&self) -> std::io::Result<SocketAddr> {
        kit::start(self.router(), self.shutdown.clone(), "sccm").await
    }
}

/// Serves the simulator on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    simulator: SccmSimulator,
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
