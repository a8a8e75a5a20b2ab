//! Logs and metrics.
//!
//! Logs go through `tracing`: human-readable on a terminal, one JSON object per line with
//! `--log-format json` / `FUNCTIOND_LOG_FORMAT=json`. Metrics live in a registry owned by the
//! application (no global recorder) and are rendered in the Prometheus/OpenMetrics text format.

use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tracing_subscriber::EnvFilter;

use crate::config::runner::LogFormat;
use crate::snapshot::{FileStatus, Snapshot};

/// Installs the process's log subscriber. Called once, by `main`.
pub fn init_logging(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_env("RUST_LOG")
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FunctionLabels {
    r#type: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    function: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    function: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabel {
    r#type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FunctionLabel {
    function: String,
}

/// The application's metrics; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    functions: Family<FunctionLabels, Gauge>,
    rejected_files: Gauge,
    reloads: Family<OutcomeLabels, Counter>,
    reload_seconds: Histogram,
    generation: Gauge,
    schedule_runs: Family<RunLabels, Counter>,
    schedule_seconds: Family<FunctionLabel, Histogram>,
    schedule_lateness: Histogram,
    webhook_requests: Family<StatusLabels, Counter>,
    events_accepted: Family<TypeLabel, Counter>,
    deliveries: Family<ResultLabel, Counter>,
    delivery_seconds: Histogram,
    webhook_seconds: Family<FunctionLabel, Histogram>,
    /// The newest reload generation already counted.
    counted: Arc<Mutex<u64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let functions = Family::<FunctionLabels, Gauge>::default();
        registry.register(
            "functiond_functions",
            "Functions loaded, by type and state (ok, stale, disabled)",
            functions.clone(),
        );
        let rejected_files = Gauge::default();
        registry.register(
            "functiond_rejected_files",
            "Function files rejected with nothing of them live",
            rejected_files.clone(),
        );
        let reloads = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "functiond_reloads",
            "Reloads of the functions directory, by outcome (ok, partial, failed)",
            reloads.clone(),
        );
        let reload_seconds = Histogram::new([0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]);
        registry.register(
            "functiond_reload_duration_seconds",
            "Time to scan and validate the functions directory",
            reload_seconds.clone(),
        );
        let generation = Gauge::default();
        registry.register(
            "functiond_snapshot_generation",
            "Generation of the live function set",
            generation.clone(),
        );
        let schedule_runs = Family::<RunLabels, Counter>::default();
        registry.register(
            "functiond_schedule_runs",
            "Scheduled task runs, by function and status (succeeded, failed, timeout, skipped)",
            schedule_runs.clone(),
        );
        let schedule_seconds = Family::<FunctionLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([0.01, 0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 1800.0])
        });
        registry.register(
            "functiond_schedule_run_duration_seconds",
            "Duration of scheduled task runs",
            schedule_seconds.clone(),
        );
        let schedule_lateness = Histogram::new([0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]);
        registry.register(
            "functiond_schedule_lateness_seconds",
            "How long after its tick a scheduled run started",
            schedule_lateness.clone(),
        );
        let webhook_requests = Family::<StatusLabels, Counter>::default();
        registry.register(
            "functiond_webhook_requests",
            "Webhook requests, by function and HTTP status",
            webhook_requests.clone(),
        );
        let webhook_seconds = Family::<FunctionLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
            ])
        });
        registry.register(
            "functiond_webhook_duration_seconds",
            "Webhook request latency, from routing to response",
            webhook_seconds.clone(),
        );
        let events_accepted = Family::<TypeLabel, Counter>::default();
        registry.register(
            "functiond_events_accepted",
            "Events accepted and stored, by type",
            events_accepted.clone(),
        );
        let deliveries = Family::<ResultLabel, Counter>::default();
        registry.register(
            "functiond_deliveries",
            "Delivery attempts by result (delivered, retried, dead)",
            deliveries.clone(),
        );
        let delivery_seconds =
            Histogram::new([0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 300.0, 3600.0]);
        registry.register(
            "functiond_delivery_latency_seconds",
            "From an event's acceptance to its successful delivery",
            delivery_seconds.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            events_accepted,
            deliveries,
            delivery_seconds,
            webhook_requests,
            webhook_seconds,
            schedule_runs,
            schedule_seconds,
            schedule_lateness,
            functions,
            rejected_files,
            reloads,
            reload_seconds,
            generation,
            counted: Arc::new(Mutex::new(0)),
        }
    }

    /// Brings the gauges up to date with `snap` and counts its reloads not counted yet.
    pub fn observe_snapshot(&self, snap: &Snapshot) {
        for t in ["webhook", "event", "scheduler"] {
            for s in ["ok", "stale", "disabled"] {
                let labels = FunctionLabels {
                    r#type: t.into(),
                    state: s.into(),
                };
                self.functions.get_or_create(&labels).set(0);
            }
        }
        for f in snap.functions.values() {
            let state = if !f.function.enabled {
                "disabled"
            } else if f.status() == FileStatus::Stale {
                "stale"
            } else {
                "ok"
            };
            let labels = FunctionLabels {
                r#type: f.function.kind.type_name().into(),
                state: state.into(),
            };
            self.functions.get_or_create(&labels).inc();
        }
        let rejected = snap
            .files
            .values()
            .filter(|f| f.status == FileStatus::Rejected)
            .count();
        self.rejected_files.set(rejected as i64);
        self.generation.set(snap.generation as i64);
        let mut counted = self.counted.lock().unwrap_or_else(|e| e.into_inner());
        for r in snap.reloads.iter().filter(|r| r.generation > *counted) {
            let labels = OutcomeLabels {
                outcome: r.outcome.as_str().into(),
            };
            self.reloads.get_or_create(&labels).inc();
            self.reload_seconds.observe(r.duration_ms / 1000.0);
        }
        *counted = (*counted).max(snap.generation);
    }

    /// Counts one scheduled run (or skipped tick).
    pub fn observe_scheduled_run(&self, function: &str, status: &str, seconds: f64, lateness: f64) {
        let labels = RunLabels {
            function: function.into(),
            status: status.into(),
        };
        self.schedule_runs.get_or_create(&labels).inc();
        if status != "skipped" {
            let f = FunctionLabel {
                function: function.into(),
            };
            self.schedule_seconds.get_or_create(&f).observe(seconds);
            self.schedule_lateness.observe(lateness);
        }
    }

    /// Counts one webhook request.
    pub fn observe_webhook(&self, function: &str, status: u16, seconds: f64) {
        let labels = StatusLabels {
            function: function.into(),
            status,
        };
        self.webhook_requests.get_or_create(&labels).inc();
        let f = FunctionLabel {
            function: function.into(),
        };
        self.webhook_seconds.get_or_create(&f).observe(seconds);
    }

    pub fn observe_event_accepted(&self, event_type: &str) {
        let labels = TypeLabel {
            r#type: event_type.into(),
        };
        self.events_accepted.get_or_create(&labels).inc();
    }

    /// Counts a delivery attempt's result; `latency` (acceptance to delivery) for `delivered`.
    pub fn observe_delivery(&self, result: &str, latency: f64) {
        let labels = ResultLabel {
            result: result.into(),
        };
        self.deliveries.get_or_create(&labels).inc();
        if result == "delivered" {
            self.delivery_seconds.observe(latency);
        }
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
