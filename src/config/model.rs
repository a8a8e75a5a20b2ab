//! Validated runtime types: what dispatch and the executors receive.
//!
//! Everything here has passed the schema, serde and the semantic checks of `compile.rs`: defaults
//! are filled, referenced files are read, secrets are resolved, schedules are parsed. Executors
//! never see raw TOML types.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

pub use super::raw::{
    AuthKind, CatchUp, ExportFormat, HmacAlgorithm, HttpMethod, Overlap, SignatureEncoding,
};
use super::schedule::CronExpr;

/// One loaded function.
#[derive(Debug, Clone)]
pub struct Function {
    pub name: String,
    pub description: Option<String>,
    pub enabled: bool,
    pub kind: FunctionKind,
}

#[derive(Debug, Clone)]
pub enum FunctionKind {
    Webhook(Webhook),
    Event(EventFunction),
    Scheduler(Scheduler),
}

impl FunctionKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            FunctionKind::Webhook(_) => "webhook",
            FunctionKind::Event(_) => "event",
            FunctionKind::Scheduler(_) => "scheduler",
        }
    }
}

/// A flow script, read and ready to compile.
#[derive(Debug, Clone)]
pub struct Flow {
    pub source: Arc<str>,
    /// The script's file (relative to the functions directory), or `None` for an inline script.
    pub script_path: Option<PathBuf>,
    pub timeout: Duration,
    pub memory_limit_bytes: usize,
    /// Environment variables the flow may read with `env(name)`.
    pub env: Vec<String>,
}

pub const DEFAULT_FLOW_TIMEOUT: Duration = Duration::from_millis(10_000);
pub const DEFAULT_FLOW_MEMORY_MB: u32 = 64;
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1024 * 1024;
pub const DEFAULT_MAX_CONCURRENCY: u32 = 64;

#[derive(Debug, Clone)]
pub struct Webhook {
    pub flow: Option<Flow>,
    /// Sorted, without duplicates; never empty.
    pub methods: Vec<HttpMethod>,
    pub max_body_bytes: u64,
    /// Runs of this webhook at once; past it requests get 503.
    pub max_concurrency: usize,
    pub auth: Option<Auth>,
}

#[derive(Debug, Clone)]
pub struct Auth {
    pub kind: AuthKind,
    pub secret: Secret,
    /// hmac only: the header carrying the signature.
    pub header: String,
    pub algorithm: HmacAlgorithm,
    pub prefix: String,
    pub encoding: SignatureEncoding,
}

/// A resolved secret value. Its `Debug` never prints the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<[u8]>);

impl Secret {
    pub fn new(bytes: impl Into<Arc<[u8]>>) -> Self {
        Secret(bytes.into())
    }
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone)]
pub struct EventFunction {
    pub types: Vec<String>,
    pub url: Option<String>,
    pub flow: Option<Flow>,
    pub delivery: Delivery,
}

#[derive(Debug, Clone)]
pub struct Delivery {
    pub timeout: Duration,
    pub max_attempts: u32,
    /// Delay before each retry; the last one repeats.
    pub backoff: Vec<Duration>,
    pub secret: Option<Secret>,
}

pub const DEFAULT_DELIVERY_TIMEOUT: Duration = Duration::from_millis(15_000);
pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;
/// Immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h: the schedule of the common webhook services.
pub const DEFAULT_BACKOFF_MS: [u64; 7] = [
    0, 5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000,
];

#[derive(Debug, Clone)]
pub struct Scheduler {
    pub schedule: Schedule,
    pub task: Task,
}

#[derive(Debug, Clone, Serialize)]
pub struct Schedule {
    /// Always five fields.
    #[serde(serialize_with = "serialize_display")]
    pub cron: CronExpr,
    pub description: String,
    #[serde(serialize_with = "serialize_display")]
    pub timezone: chrono_tz::Tz,
    #[serde(skip)]
    pub overlap: Overlap,
    #[serde(skip)]
    pub catch_up: CatchUp,
}

fn serialize_display<T: fmt::Display, S: serde::Serializer>(
    v: &T,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

pub const DEFAULT_TASK_TIMEOUT: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone)]
pub struct Task {
    pub action: Action,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub enum Action {
    Sql {
        sql: Arc<str>,
    },
    /// Commands come only from function files, never from request or event data.
    Shell {
        command: String,
        env: BTreeMap<String, String>,
        /// Resolved against the function file's folder when relative.
        cwd: Option<PathBuf>,
    },
    Export {
        sql: Arc<str>,
        export: Export,
    },
}

#[derive(Debug, Clone)]
pub struct Export {
    pub format: ExportFormat,
    /// A template with `{name}`, `{date}`, `{time}`, `{datetime}`; no path separators.
    pub filename: String,
    pub keep: Option<u32>,
    pub email: Option<Email>,
}

#[derive(Debug, Clone)]
pub struct Email {
    pub to: Vec<String>,
    pub subject: String,
    pub body: String,
}
