//! `simulator`: a stateful imitation of the parts of Microsoft Graph (and the
//! identity platform's token endpoint) the Intune connector uses, as a real
//! HTTP server: same paths under `/v1.0` and `/beta`, bodies, status codes,
//! `@odata.nextLink` paging, 429 with or without `Retry-After`, Graph's error
//! body, replace semantics of `/assign` and `updateRelationships`, the content
//! upload state machine, and device install-status rows that appear only when
//! a device reports, read through Intune's install-status report (rows name
//! the Intune managed device id, joined to group members through
//! `managedDevices`). Every request Graph itself would refuse (an operation
//! Graph's description does not have, a `$select` of an undeclared property,
//! a body property the type does not declare) is refused with Graph's 400,
//! by `planes::apispec` against the same descriptions the contract tests use.
//!
//! Tests drive it through [`IntuneSimulator`]'s controls: groups of devices,
//! faults, expired tokens, revoked credentials, device reports, drift.
//! [`serve`] runs it on a listener until a shutdown signal, for tests and for
//! `ringmaster simulate intune`.

mod content;
mod controls;
mod http;
mod reports;
mod routes;
mod state;

pub use controls::DeviceReport;
pub use state::{LostRequest, SimulatorFault};

use crate::planes::Secret;
use crate::planes::simulators::kit::{self, Shutdown};
use axum::Router;
use axum::routing::{get, post, put};
use state::GraphState;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::net::TcpListener;

/// Who may sign in and how lists are paged.
#[derive(Debug, Clone)]
pub struct SimulatorOptions {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// Items per page of every collection.
    pub page_size: usize,
}

impl SimulatorOptions {
    pub fn new(tenant_id: &str, client_id: &str, client_secret: Secret) -> SimulatorOptions {
        SimulatorOptions {
            tenant_id: tenant_id.into(),
            client_id: client_id.into(),
            client_secret,
            page_size: 100,
        }
    }
}

/// A handle to one simulated tenant; clones share it.
#[derive(Clone)]
pub struct IntuneSimulator {
    state: Arc<Mutex<GraphState>>,
    /// Flips to true at shutdown: held (slow or lost) answers are released.
    shutdown: Shutdown,
}

impl IntuneSimulator {
    pub fn new(options: SimulatorOptions) -> IntuneSimulator {
        let state = GraphState::new(
            &options.tenant_id,
            &options.client_id,
            options.client_secret,
            options.page_size,
        );
        IntuneSimulator {
            state: Arc::new(Mutex::new(state)),
            shutdown: Shutdown::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, GraphState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The Graph routes (both API versions), the token endpoint and the blob
    /// store, behind the fault and bearer layer.
    pub fn router(&self) -> Router {
        let apps = "/{version}/deviceAppManagement/mobileApps";
        let content = "/{version}/deviceAppManagement/mobileApps/{app}/{cast}/contentVersions";
        Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(routes::token))
            .route(apps, get(routes::list_apps).post(routes::create_app))
            .route(
                &format!("{apps}/{{app}}"),
                get(routes::get_app)
                    .patch(routes::patch_app)
                    .delete(routes::delete_app),
            )
            .route(
                &format!("{apps}/{{app}}/assignments"),
                get(routes::list_assignments),
            )
            .route(&format!("{apps}/{{app}}/assign"), post(routes::assign))
            .route(
                &format!("{apps}/{{app}}/relationships"),
                get(routes::list_relationships),
            )
            .route(
                &format!("{apps}/{{app}}/updateRelationships"),
                post(routes::update_relationships),
            )
            .route(
                "/{version}/deviceManagement/reports/retrieveDeviceAppInstallationStatusReport",
                post(reports::install_status_report),
            )
            .route(
                "/{version}/deviceManagement/managedDevices",
                get(reports::managed_devices),
            )
            .route(content, post(content::create_content_version))
            .route(
                &format!("{content}/{{content}}/files"),
                post(content::create_file),
            )
            .route(
                &format!("{content}/{{content}}/files/{{file}}"),
                get(content::get_file),
            )
            .route(
                &format!("{content}/{{content}}/files/{{file}}/commit"),
                post(content::commit_file),
            )
            .route("/blob/{file}", put(content::put_blob))
            .route("/{version}/groups/{group}", get(routes::get_group))
            .route(
                "/{version}/groups/{group}/transitiveMembers/microsoft.graph.device",
                get(routes::group_devices),
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
        kit::start(self.router(), self.shutdown.clone(), "intune").await
    }
}

/// Serves the simulator on `listener` until `shutdown` completes; held answers
/// are then released so the server can drain.
pub async fn serve(
    listener: TcpListener,
    simulator: IntuneSimulator,
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
