//! functiond: serve webhook, event and scheduled functions declared as TOML files in a watched
//! directory.
//!
//! # Layout
//!
//! Data flows one way, top to bottom:
//!
//! ```text
//! files ─▶ config/        pure: TOML text → schema check → raw serde types → validated model,
//!                         collecting every problem with file:line:col
//!       ─▶ source/        the only reader of the functions directory: scan (load.rs), notice
//!                         changes (watch.rs), turn a reload request into a snapshot (reload.rs)
//!       ─▶ snapshot.rs    the immutable function set; swapped atomically, never mutated
//!       ─▶ http/          axum router: webhooks, status API, exports download, health, metrics
//!       ─▶ events/        publish (catalog check, subscribers, group commit to the outbox)
//!                         and deliver (URL POSTs, flows, retries, dead letters)
//!       ─▶ scheduler/     when scheduler functions fire (engine.rs) and how a tick is run and
//!                         recorded (runner.rs)
//!       ─▶ exec/          executors: flows (js/), activities (host.rs), sql and shell tasks,
//!                         exports, e-mail (task.rs dispatches)
//!       ─▶ db/            the application database (SQLite / PostgreSQL, native drivers)
//!       ─▶ store/         the state database: run history, tick claims
//!       ─▶ telemetry.rs   logs and metrics
//! app.rs                  starts the workers, serves, drains on shutdown
//! shutdown.rs             the shutdown handle every worker receives
//! main.rs, cli/           arguments, one file per subcommand, printing
//! ```
//!
//! # Invariants
//!
//! - `config/` does no I/O of its own and knows nothing of tokio; reading goes through
//!   `config::compile::Inputs`.
//! - The live set changes only by swapping a whole new [`snapshot::Snapshot`]; work holds the `Arc`
//!   it started with.
//! - No globals: configuration, metrics and the shutdown signal are passed explicitly.
//! - A reload never stops the server: an invalid file keeps its last good version live.

pub mod app;
pub mod config;
pub mod db;
pub mod events;
pub mod exec;
pub mod http;
pub mod id;
pub mod scheduler;
pub mod shutdown;
pub mod snapshot;
pub mod source;
pub mod store;
pub mod telemetry;

use std::net::SocketAddr;
use std::path::PathBuf;

/// Errors that stop the application from starting or a command from completing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}", .0.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"))]
    Diagnostics(Vec<config::Diagnostic>),
    #[error("configuration: {0}")]
    Config(String),
    #[error("functions directory {}: {reason}", path.display())]
    FunctionsDir { path: PathBuf, reason: String },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Database(String),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
