//! Starts the workers, serves HTTP, and drains on shutdown.
//!
//! [`start`] returns a [`Running`] handle instead of blocking, so `main` can wire signals to it and
//! tests can start a real server on port 0 in-process.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::model::Secret;
use crate::config::runner::{RunnerConfig, TokenSource};
use crate::config::Schemas;
use crate::db::Database;
use crate::events::catalog::Catalog;
use crate::events::delivery::Deliverer;
use crate::events::Events;
use crate::exec::host::FlowHost;
use crate::exec::js::{JsPool, PoolConfig};
use crate::exec::mail::Mailer;
use crate::http::{self, AppState, Shared};
use crate::scheduler::clock::{Clock, SystemClock};
use crate::scheduler::engine::Engine;
use crate::scheduler::runner::TaskRunner;
use crate::shutdown::{self, Shutdown, ShutdownTrigger};
use crate::snapshot::Trigger;
use crate::source::reload::Reloader;
use crate::source::watch::{self, WatchSettings};
use crate::store::{RunWriter, Store};
use crate::telemetry::Metrics;
use crate::{Error, Result};

/// A started application.
pub struct Running {
    /// The address the server listens on (useful with port 0).
    pub addr: SocketAddr,
    /// Send a [`Trigger`] to ask for a reload (what SIGHUP does).
    pub reloads: mpsc::Sender<Trigger>,
    pub state: AppState,
    trigger: ShutdownTrigger,
    server: JoinHandle<std::io::Result<()>>,
    workers: Vec<JoinHandle<()>>,
    drain: Duration,
}

/// Loads the functions directory, binds the listener and starts every worker.
///
/// Fails, before serving anything, when the functions directory cannot be read, the API token
/// cannot be resolved, or the address cannot be bound.
pub async fn start(config: &RunnerConfig, schemas: Arc<Schemas>) -> Result<Running> {
    let api_token = resolve_token(config.api_token.as_ref())?;
    let root = config.functions_dir.clone();
    if !root.is_dir() {
        return Err(Error::FunctionsDir {
            path: root,
            reason: "not found or not a directory".into(),
        });
    }
    let services = Services::open(config).await?;

    let (trigger, shutdown) = shutdown::channel();
    let (reload_tx, reload_rx) = mpsc::channel(1);
    // Watch before the first scan, so that nothing written meanwhile is missed.
    let watcher = watch::start(
        WatchSettings {
            root: root.clone(),
            mode: config.reload_mode,
            debounce: config.debounce,
            poll_interval: config.poll_interval,
        },
        reload_tx.clone(),
        shutdown.clone(),
    )
    .await;
    let (reloader, snapshots) = Reloader::new(schemas, root.clone());
    let first = reloader.clone();
    let loaded = tokio::task::spawn_blocking(move || first.reload_blocking(Trigger::Start))
        .await
        .map_err(|e| Error::Internal(e.to_string()))?;
    if let Err(e) = loaded {
        trigger.trigger();
        return Err(Error::FunctionsDir {
            path: root,
            reason: e.to_string(),
        });
    }

    let metrics = Metrics::new();
    let (state, app_tasks) = services.app_state(
        config,
        snapshots.clone(),
        metrics.clone(),
        api_token,
        shutdown.clone(),
    )?;
    let deliverer = Deliverer {
        store: services.store.clone(),
        snapshots: snapshots.clone(),
        js: state.js.clone(),
        host: state.host.clone(),
        http: FlowHost::http_client(),
        metrics: metrics.clone(),
        events: state.events.clone(),
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let runner = TaskRunner {
        store: services.store,
        db: services.db,
        exports_dir: config.exports_dir.clone(),
        mailer: Some(services.mailer),
        metrics: metrics.clone(),
        events: Some(state.events.clone()),
    };
    let engine = Engine::new(clock, Arc::new(runner));
    let mut workers = app_tasks;
    workers.extend([
        watcher,
        tokio::spawn(deliverer.run(shutdown.clone(), config.drain_timeout)),
        tokio::spawn(announce_rejections(
            snapshots.clone(),
            state.events.clone(),
            shutdown.clone(),
        )),
        tokio::spawn(reloader.run(reload_rx, shutdown.clone())),
        tokio::spawn(observe_snapshots(
            snapshots.clone(),
            metrics,
            shutdown.clone(),
        )),
        tokio::spawn(engine.run(snapshots, shutdown.clone(), config.drain_timeout)),
    ]);

    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| Error::Bind {
            addr: config.listen,
            source: e,
        })?;
    let addr = listener.local_addr().map_err(|e| Error::Bind {
        addr: config.listen,
        source: e,
    })?;
    let router = http::router(state.clone());
    let mut stop = shutdown.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move { stop.recv().await })
            .await
    });
    info!(%addr, "listening on http://{addr}");
    Ok(Running {
        addr,
        reloads: reload_tx,
        state,
        trigger,
        server,
        workers,
        drain: config.drain_timeout,
    })
}

impl Running {
    /// Stops accepting connections, lets in-flight requests finish up to the drain deadline, then
    /// stops the workers.
    pub async fn shutdown(self) -> Result<()> {
        self.trigger.trigger();
        let mut server = self.server;
        match tokio::time::timeout(self.drain, &mut server).await {
            Ok(Ok(Ok(()))) => info!("drained; all in-flight requests finished"),
            Ok(Ok(Err(e))) => warn!(error = %e, "server stopped with an error"),
            Ok(Err(e)) => warn!(error = %e, "server task failed"),
            Err(_) => {
                warn!(
                    deadline_ms = self.drain.as_millis() as u64,
                    "drain deadline passed; dropping remaining connections"
                );
                server.abort();
            }
        }
        // The scheduler drains its own running tasks up to the same deadline.
        for w in self.workers {
            let _ = tokio::time::timeout(self.drain + Duration::from_secs(1), w).await;
        }
        Ok(())
    }
}

/// The databases and the mailer, opened once at start.
struct Services {
    db: Database,
    store: Store,
    mailer: Mailer,
}

impl Services {
    async fn open(config: &RunnerConfig) -> Result<Services> {
        let db = Database::connect(&config.database_url)
            .await
            .map_err(|e| Error::Database(format!("database.url: {e}")))?;
        let store = Store::open(&config.state_url)
            .await
            .map_err(|e| Error::Database(format!("state.url: {e}")))?;
        let mailer = Mailer::new(&config.smtp_url, &config.smtp_from).map_err(Error::Config)?;
        Ok(Services { db, store, mailer })
    }

    /// What the HTTP handlers share, and the run-history writer's task.
    fn app_state(
        &self,
        config: &RunnerConfig,
        snapshots: tokio::sync::watch::Receiver<Arc<crate::snapshot::Snapshot>>,
        metrics: Metrics,
        api_token: Option<Secret>,
        shutdown: Shutdown,
    ) -> Result<(AppState, Vec<JoinHandle<()>>)> {
        let js = JsPool::new(PoolConfig::default())
            .map_err(|e| Error::Internal(format!("cannot start the flow workers: {e}")))?;
        let catalog = Catalog::load(&config.event_schemas_dir).map_err(Error::Config)?;
        let (events, events_task) = Events::start(
            self.store.clone(),
            snapshots.clone(),
            Arc::new(catalog),
            metrics.clone(),
            config.event_lease,
            shutdown.clone(),
        )
        .map_err(|e| Error::Internal(format!("cannot start the event outbox writer: {e}")))?;
        let (runs, runs_task) = RunWriter::spawn(self.store.clone(), shutdown);
        let state = AppState::new(Shared {
            snapshots,
            metrics,
            api_token,
            store: self.store.clone(),
            exports_dir: config.exports_dir.clone(),
            js,
            host: FlowHost {
                db: self.db.clone(),
                http: FlowHost::http_client(),
                events: Arc::new(events.clone()),
                source: String::new(),
            },
            runs,
            limits: Default::default(),
            events,
        });
        Ok((state, vec![runs_task, events_task]))
    }
}

/// The function set (loaded once, not watched) and the services, for one-shot commands.
async fn load_once(
    config: &RunnerConfig,
    schemas: Arc<Schemas>,
) -> Result<(
    tokio::sync::watch::Receiver<Arc<crate::snapshot::Snapshot>>,
    Services,
)> {
    let root = config.functions_dir.clone();
    let (reloader, snapshots) = Reloader::new(schemas, root.clone());
    tokio::task::spawn_blocking(move || reloader.reload_blocking(Trigger::Start))
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
        .map_err(|e| Error::FunctionsDir {
            path: root,
            reason: e.to_string(),
        })?;
    Ok((snapshots, Services::open(config).await?))
}

/// Sends one request through the same router the server uses, without a socket, watcher or
/// scheduler (`functiond invoke`). The run is recorded like any other.
pub async fn invoke(
    config: &RunnerConfig,
    schemas: Arc<Schemas>,
    request: axum::http::Request<axum::body::Body>,
) -> Result<axum::response::Response> {
    use tower::ServiceExt;
    let (snapshots, services) = load_once(config, schemas).await?;
    let (trigger, shutdown) = shutdown::channel();
    let (state, tasks) = services.app_state(config, snapshots, Metrics::new(), None, shutdown)?;
    let response = http::router(state)
        .oneshot(request)
        .await
        .map_err(|e| Error::Internal(e.to_string()))?;
    // Buffer the body before the run-history writer flushes and stops.
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|e| Error::Internal(e.to_string()))?;
    trigger.trigger();
    for t in tasks {
        let _ = t.await;
    }
    Ok(axum::response::Response::from_parts(
        parts,
        axum::body::Body::from(bytes),
    ))
}

/// Publishes one event and delivers it in this process (`functiond emit --local`): the same
/// validation, outbox and delivery code as the server. Waits until every delivery of the event
/// is delivered or dead-lettered, or `wait` passes, and returns the event and its deliveries.
pub async fn emit_locally(
    config: &RunnerConfig,
    schemas: Arc<Schemas>,
    event: serde_json::Map<String, serde_json::Value>,
    wait: Duration,
) -> Result<(
    crate::events::Published,
    Vec<crate::store::outbox::DeliveryView>,
)> {
    let (snapshots, services) = load_once(config, schemas).await?;
    let (trigger, shutdown) = shutdown::channel();
    let metrics = Metrics::new();
    let (state, tasks) = services.app_state(
        config,
        snapshots.clone(),
        metrics.clone(),
        None,
        shutdown.clone(),
    )?;
    let deliverer = Deliverer {
        store: services.store.clone(),
        snapshots,
        js: state.js.clone(),
        host: state.host.clone(),
        http: FlowHost::http_client(),
        metrics,
        events: state.events.clone(),
    };
    let worker = tokio::spawn(deliverer.run(shutdown, config.drain_timeout));
    let published = state
        .events
        .publish(event, "cli")
        .await
        .map_err(|e| Error::Config(e.to_string()))?;
    let deadline = tokio::time::Instant::now() + wait;
    let deliveries = loop {
        let d = services
            .store
            .deliveries_of(&published.id)
            .await
            .map_err(|e| Error::Database(e.to_string()))?;
        if d.iter().all(|d| d.status != "pending") || tokio::time::Instant::now() >= deadline {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    trigger.trigger();
    let _ = worker.await;
    for t in tasks {
        let _ = t.await;
    }
    Ok((published, deliveries))
}

/// Publishes `function.rejected` for every file that newly fails to load (or fails differently),
/// so users can react, for example by e-mailing whoever owns the functions repository.
async fn announce_rejections(
    mut snapshots: tokio::sync::watch::Receiver<Arc<crate::snapshot::Snapshot>>,
    events: Events,
    mut shutdown: Shutdown,
) {
    let mut prev = snapshots.borrow_and_update().clone();
    let announce = |snap: &crate::snapshot::Snapshot, prev: Option<&crate::snapshot::Snapshot>| {
        let mut out = Vec::new();
        for (path, f) in &snap.files {
            if f.errors.is_empty() {
                continue;
            }
            if prev
                .and_then(|p| p.files.get(path))
                .is_some_and(|p| p.errors == f.errors)
            {
                continue;
            }
            let mut event = serde_json::Map::new();
            event.insert("type".into(), "function.rejected".into());
            event.insert(
                "function".into(),
                f.name.clone().map_or(serde_json::Value::Null, Into::into),
            );
            event.insert("file".into(), path.display().to_string().into());
            event.insert(
                "status".into(),
                serde_json::to_value(f.status).unwrap_or_default(),
            );
            let errors: Vec<String> = f.errors.iter().map(|d| d.to_string()).collect();
            event.insert("errors".into(), errors.into());
            out.push(event);
        }
        out
    };
    for e in announce(&prev, None) {
        let _ = events.publish(e, "runner").await;
    }
    loop {
        tokio::select! {
            _ = shutdown.recv() => return,
            changed = snapshots.changed() => if changed.is_err() { return },
        }
        let snap = snapshots.borrow_and_update().clone();
        for e in announce(&snap, Some(&prev)) {
            if let Err(err) = events.publish(e, "runner").await {
                warn!(error = %err, "cannot publish function.rejected");
            }
        }
        prev = snap;
    }
}

async fn observe_snapshots(
    mut snapshots: tokio::sync::watch::Receiver<Arc<crate::snapshot::Snapshot>>,
    metrics: Metrics,
    mut shutdown: Shutdown,
) {
    loop {
        let snap = snapshots.borrow_and_update().clone();
        metrics.observe_snapshot(&snap);
        tokio::select! {
            _ = shutdown.recv() => return,
            changed = snapshots.changed() => if changed.is_err() { return },
        }
    }
}

fn resolve_token(source: Option<&TokenSource>) -> Result<Option<Secret>> {
    let value = match source {
        None => return Ok(None),
        Some(TokenSource::Literal(t)) => t.clone(),
        Some(TokenSource::Env(var)) => std::env::var(var).map_err(|_| {
            Error::Config(format!(
                "api.token: environment variable `{var}` is not set"
            ))
        })?,
        Some(TokenSource::File(path)) => std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("api.token: cannot read {}: {e}", path.display())))?
            .trim_end_matches(['\r', '\n'])
            .to_owned(),
    };
    if value.is_empty() {
        return Err(Error::Config("api.token: the token is empty".into()));
    }
    Ok(Some(Secret::new(value.into_bytes())))
}
