//! Worker threads: each runs a current-thread tokio runtime with a `LocalSet`, owns its slots,
//! and drives every run as a local task, so a run awaiting an activity never blocks the others.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::LocalBoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use super::pool::{failed, Counters, PoolConfig};
use super::slot::Slot;
use super::state::{HostFuture, HostResult};
use super::{FlowError, FlowJob, FlowOutcome, Host};

/// A job made ready on the caller's thread: globals serialized, the runtime handle captured.
pub(crate) struct Prepared {
    pub(crate) name: Arc<str>,
    pub(crate) script_id: Arc<str>,
    pub(crate) source: Arc<str>,
    pub(crate) params: Vec<String>,
    /// The global values as one JSON array, in `params` order.
    pub(crate) args_json: String,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) timeout: Duration,
    pub(crate) memory_limit_bytes: usize,
    pub(crate) host: Arc<dyn Host>,
    /// Where activities run: the caller's tokio runtime, if any.
    handle: Option<tokio::runtime::Handle>,
}

impl Prepared {
    pub(crate) fn new(job: FlowJob) -> Result<Self, FlowError> {
        let mut params = Vec::with_capacity(job.globals.len());
        let mut args = Vec::with_capacity(job.globals.len());
        for (name, value) in job.globals {
            if !is_identifier(&name) {
                return Err(FlowError::Internal(format!(
                    "global name {name:?} is not a JavaScript identifier"
                )));
            }
            params.push(name);
            args.push(value);
        }
        let args_json = serde_json::to_string(&args)
            .map_err(|e| FlowError::Internal(format!("globals are not JSON: {e}")))?;
        Ok(Self {
            name: job.name,
            script_id: job.script_id,
            source: job.source,
            params,
            args_json,
            env: job.env,
            timeout: job.timeout,
            memory_limit_bytes: job.memory_limit_bytes,
            host: job.host,
            handle: tokio::runtime::Handle::try_current().ok(),
        })
    }
}

fn is_identifier(name: &str) -> bool {
    const RESERVED: &[&str] = &[
        "await",
        "break",
        "case",
        "catch",
        "class",
        "const",
        "continue",
        "debugger",
        "default",
        "delete",
        "do",
        "else",
        "enum",
        "export",
        "extends",
        "false",
        "finally",
        "for",
        "function",
        "if",
        "implements",
        "import",
        "in",
        "instanceof",
        "interface",
        "let",
        "new",
        "null",
        "package",
        "private",
        "protected",
        "public",
        "return",
        "static",
        "super",
        "switch",
        "this",
        "throw",
        "true",
        "try",
        "typeof",
        "var",
        "void",
        "while",
        "with",
        "yield",
        "eval",
        "arguments",
    ];
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        && !RESERVED.contains(&name)
}

pub(crate) struct Request {
    pub(crate) job: Prepared,
    /// Held until the run is over: the pool's concurrency bound.
    pub(crate) permit: OwnedSemaphorePermit,
    pub(crate) reply: oneshot::Sender<FlowOutcome>,
}

pub(crate) enum Msg {
    Run(Box<Request>),
    Warm(oneshot::Sender<Result<(), String>>),
}

pub(crate) struct WorkerHandle {
    pub(crate) tx: mpsc::UnboundedSender<Msg>,
    /// Runs sent to this worker and not finished yet.
    pub(crate) load: Arc<AtomicUsize>,
}

struct Worker {
    config: Arc<PoolConfig>,
    counters: Arc<Counters>,
    /// Idle slots, reused last-in first-out (the hottest first).
    idle: RefCell<Vec<Slot>>,
    /// At most `slots_per_worker` runs at once on this worker.
    slots: Semaphore,
    load: Arc<AtomicUsize>,
}

pub(crate) fn spawn(
    index: usize,
    config: Arc<PoolConfig>,
    counters: Arc<Counters>,
) -> std::io::Result<WorkerHandle> {
    let (tx, rx) = mpsc::unbounded_channel();
    let load = Arc::new(AtomicUsize::new(0));
    let worker_load = load.clone();
    std::thread::Builder::new()
        .name(format!("functiond-js-{index}"))
        .stack_size(config.thread_stack_bytes)
        .spawn(move || {
            let worker = Rc::new(Worker {
                slots: Semaphore::new(config.slots_per_worker),
                config,
                counters,
                idle: RefCell::new(Vec::new()),
                load: worker_load,
            });
            worker_main(rx, worker);
        })?;
    Ok(WorkerHandle { tx, load })
}

fn worker_main(mut rx: mpsc::UnboundedReceiver<Msg>, worker: Rc<Worker>) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "flow worker cannot start its runtime");
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        while let Some(msg) = rx.recv().await {
            match msg {
                Msg::Run(request) => {
                    tokio::task::spawn_local(run(worker.clone(), request));
                }
                Msg::Warm(reply) => {
                    let _ = reply.send(worker.warm());
                }
            }
        }
    });
    // The pool is gone: let the runs in flight finish, then drop the slots on this thread.
    rt.block_on(local);
}

/// Counts a run off its worker's load even if the run's task panics.
struct LoadGuard(Arc<AtomicUsize>);

impl Drop for LoadGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn run(worker: Rc<Worker>, request: Box<Request>) {
    let Request {
        mut job,
        permit,
        reply,
    } = *request;
    let load = LoadGuard(worker.load.clone());
    let outcome = worker.execute(&mut job).await;
    // Free the slot's permits before answering, so that a caller retrying at once finds it.
    drop(load);
    drop(permit);
    let _ = reply.send(outcome);
}

impl Worker {
    fn warm(&self) -> Result<(), String> {
        if self.idle.borrow().is_empty() {
            let slot = Slot::new(&self.config, self.counters.clone())?;
            self.idle.borrow_mut().push(slot);
        }
        Ok(())
    }

    async fn execute(&self, job: &mut Prepared) -> FlowOutcome {
        let Ok(_local) = self.slots.acquire().await else {
            return failed(FlowError::Internal("flow worker closed".into()));
        };
        let started = Instant::now();
        let reused = self.idle.borrow_mut().pop();
        let mut slot = match reused {
            Some(slot) => slot,
            None => match Slot::new(&self.config, self.counters.clone()) {
                Ok(slot) => slot,
                Err(e) => return failed(FlowError::Internal(e)),
            },
        };
        let outcome = drive(&mut slot, job, started, self.config.scripts_per_slot).await;
        self.counters.record(&outcome.result);
        if slot.is_spent() || slot.used_bytes() > self.config.recycle_slot_bytes {
            self.counters.slot_dropped();
        } else {
            self.idle.borrow_mut().push(slot);
        }
        outcome
    }
}

/// One run on one slot: start, then settle activities as they finish, until nothing is pending
/// or the deadline passes.
async fn drive(
    slot: &mut Slot,
    job: &mut Prepared,
    started: Instant,
    max_scripts: usize,
) -> FlowOutcome {
    let deadline = started
        .checked_add(job.timeout)
        .unwrap_or_else(|| started + Duration::from_secs(365 * 24 * 3600));
    let mut status = slot.start(job, deadline, max_scripts);
    let mut pending = FuturesUnordered::new();
    while status.is_ok() {
        for (id, future) in slot.take_calls() {
            pending.push(activity(job.handle.as_ref(), id, future));
        }
        if pending.is_empty() {
            break;
        }
        let next = tokio::time::timeout_at(deadline.into(), pending.next()).await;
        status = match next {
            Ok(Some((id, result))) => slot.settle(id, result),
            Ok(None) => break,
            Err(_) => Err(FlowError::Timeout),
        };
    }
    // Dropping `pending` aborts activities still running (after a timeout or an error).
    slot.finish(status, started)
}

/// Aborts the spawned activity when the run no longer waits for it.
struct AbortOnDrop(tokio::task::JoinHandle<HostResult>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn activity(
    handle: Option<&tokio::runtime::Handle>,
    id: u64,
    future: HostFuture,
) -> LocalBoxFuture<'static, (u64, HostResult)> {
    match handle {
        Some(handle) => {
            let mut task = AbortOnDrop(handle.spawn(future));
            Box::pin(async move {
                let result = (&mut task.0)
                    .await
                    .unwrap_or_else(|e| Err(format!("activity failed: {e}")));
                (id, result)
            })
        }
        None => Box::pin(async move { (id, future.await) }),
    }
}
