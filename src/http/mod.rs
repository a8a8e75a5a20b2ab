//! The HTTP surface: one router, built by [`router`] from an [`AppState`] so tests can drive it
//! without a socket.

pub mod auth;
pub mod error;
pub mod events;
pub mod exports;
pub mod limits;
pub mod request_id;
pub mod status;
pub mod webhook;

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, Method};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{any, get, post};
use axum::Router;
use subtle::ConstantTimeEq;
use tokio::sync::watch;

use crate::config::model::Secret;
use crate::events::Events;
use crate::exec::host::FlowHost;
use crate::exec::js::{Host, JsPool};
use crate::snapshot::Snapshot;
use crate::store::{RunWriter, Store};
use crate::telemetry::Metrics;
pub use error::ApiError;
use limits::Limits;

/// What handlers share: one `Arc`, so the per-request clone axum makes is one counter bump.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The contents of [`AppState`].
pub struct Shared {
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    pub metrics: Metrics,
    /// When set, `/api/*` (except webhooks) needs `Authorization: Bearer <token>`.
    pub api_token: Option<Secret>,
    pub store: Store,
    pub exports_dir: PathBuf,
    pub js: JsPool,
    /// What flows' activities run against (`source` is set per function).
    pub host: FlowHost,
    pub runs: RunWriter,
    pub limits: Limits,
    pub events: Events,
}

impl Shared {
    /// The live snapshot. Holding the `Arc` keeps that version alive for as long as the caller
    /// works with it, whatever reloads happen meanwhile.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshots.borrow().clone()
    }

    /// The activities of one webhook's runs.
    pub fn host_for(&self, function: &str) -> Arc<dyn Host> {
        let mut host = self.host.clone();
        host.source = format!("webhook:{function}");
        Arc::new(host)
    }
}

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/functions", get(status::list_functions))
        .route("/api/functions/{name}", get(status::get_function))
        .route("/api/exports/{name}/{file}", get(exports::download))
        .route("/api/events", post(events::ingest))
        .route("/api/events/{id}", get(events::show))
        .route("/api/deliveries/{id}/retry", post(events::retry))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    // Every method reaches the handler, which answers 404 or 405 (with the function's `Allow`).
    let webhooks = Router::new().route("/api/webhook/{name}", any(webhook::handle));
    Router::new()
        .merge(api)
        .merge(webhooks)
        .route("/healthz", get(status::healthz))
        .route("/readyz", get(status::readyz))
        .route("/metrics", get(status::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(request_id::layer))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        format!("method {method} is not allowed here"),
    )
}

async fn require_token(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if let Some(token) = &state.api_token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !bool::from(given.as_bytes().ct_eq(token.expose())) {
            return Err(ApiError::unauthorized(
                "missing or wrong API token (Authorization: Bearer …)",
            ));
        }
    }
    Ok(next.run(req).await)
}
