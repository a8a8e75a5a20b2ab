//! The caller's side: configuration, admission (a semaphore of slots), dispatch to the
//! least-loaded worker, counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use super::worker::{self, Msg, Prepared, Request, WorkerHandle};
use super::{Busy, FlowError, FlowJob, FlowOutcome};

/// Sizes and limits of a [`JsPool`].
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Worker threads running QuickJS (default: the number of CPUs).
    pub workers: usize,
    /// Runs in flight per worker, each in its own QuickJS runtime (built on demand).
    /// `workers * slots_per_worker` is the pool's concurrency limit.
    pub slots_per_worker: usize,
    /// Compiled scripts kept per slot (least recently used evicted).
    pub scripts_per_slot: usize,
    /// Console text kept per run; past it one "… truncated" line.
    pub console_limit_bytes: usize,
    /// QuickJS stack limit (deep recursion → `RangeError`).
    pub max_stack_bytes: usize,
    /// Stack of each worker thread; must exceed `max_stack_bytes` comfortably.
    pub thread_stack_bytes: usize,
    /// A slot holding more than this after a run is dropped and rebuilt later.
    pub recycle_slot_bytes: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            slots_per_worker: 64,
            scripts_per_slot: 64,
            console_limit_bytes: 64 * 1024,
            max_stack_bytes: 1 << 20,
            thread_stack_bytes: 8 << 20,
            recycle_slot_bytes: 64 << 20,
        }
    }
}

/// Counters since the pool started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub runs: u64,
    pub compiles: u64,
    pub slots_built: u64,
    pub slots_dropped: u64,
    pub thrown: u64,
    pub timeouts: u64,
    pub memory_limits: u64,
    pub busy: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    runs: AtomicU64,
    compiles: AtomicU64,
    slots_built: AtomicU64,
    slots_dropped: AtomicU64,
    thrown: AtomicU64,
    timeouts: AtomicU64,
    memory_limits: AtomicU64,
    busy: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn compiled(&self) {
        bump(&self.compiles);
    }
    pub(crate) fn slot_built(&self) {
        bump(&self.slots_built);
    }
    pub(crate) fn slot_dropped(&self) {
        bump(&self.slots_dropped);
    }
    pub(crate) fn record(&self, result: &Result<(), FlowError>) {
        bump(&self.runs);
        match result {
            Err(FlowError::Thrown { .. } | FlowError::Compile { .. }) => bump(&self.thrown),
            Err(FlowError::Timeout) => bump(&self.timeouts),
            Err(FlowError::MemoryLimit) => bump(&self.memory_limits),
            _ => {}
        }
    }
    fn snapshot(&self) -> PoolStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        PoolStats {
            runs: get(&self.runs),
            compiles: get(&self.compiles),
            slots_built: get(&self.slots_built),
            slots_dropped: get(&self.slots_dropped),
            thrown: get(&self.thrown),
            timeouts: get(&self.timeouts),
            memory_limits: get(&self.memory_limits),
            busy: get(&self.busy),
        }
    }
}

/// Runs flows on dedicated QuickJS threads. Cheap to clone; the threads stop when the last
/// clone is dropped (after finishing the runs in flight).
#[derive(Clone)]
pub struct JsPool {
    inner: Arc<Inner>,
}

struct Inner {
    workers: Vec<WorkerHandle>,
    permits: Arc<Semaphore>,
    capacity: usize,
    counters: Arc<Counters>,
}

impl JsPool {
    /// Starts the worker threads. Slots are built on first use (see [`JsPool::warm_up`]).
    pub fn new(config: PoolConfig) -> std::io::Result<Self> {
        let mut config = config;
        config.workers = config.workers.max(1);
        config.slots_per_worker = config.slots_per_worker.max(1);
        config.scripts_per_slot = config.scripts_per_slot.max(1);
        let config = Arc::new(config);
        let counters = Arc::new(Counters::default());
        let workers = (0..config.workers)
            .map(|i| worker::spawn(i, config.clone(), counters.clone()))
            .collect::<std::io::Result<Vec<_>>>()?;
        let capacity = config.workers * config.slots_per_worker;
        Ok(Self {
            inner: Arc::new(Inner {
                workers,
                permits: Arc::new(Semaphore::new(capacity)),
                capacity,
                counters,
            }),
        })
    }

    /// Runs a flow, waiting for a free slot if all are busy.
    pub async fn run(&self, job: FlowJob) -> FlowOutcome {
        match self.inner.permits.clone().acquire_owned().await {
            Ok(permit) => self.dispatch(job, permit).await,
            Err(_) => failed(FlowError::Internal("flow pool closed".into())),
        }
    }

    /// Runs a flow if a slot is free now; otherwise [`Busy`] at once (answer 503).
    pub async fn try_run(&self, job: FlowJob) -> Result<FlowOutcome, Busy> {
        match self.inner.permits.clone().try_acquire_owned() {
            Ok(permit) => Ok(self.dispatch(job, permit).await),
            Err(_) => {
                bump(&self.inner.counters.busy);
                Err(Busy)
            }
        }
    }

    /// Slots free now.
    pub fn available(&self) -> usize {
        self.inner.permits.available_permits()
    }

    /// The concurrency limit: `workers * slots_per_worker`.
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    pub fn stats(&self) -> PoolStats {
        self.inner.counters.snapshot()
    }

    /// Builds one slot on every worker that has none idle, so the first requests do not pay
    /// for it. Returns the first error.
    pub async fn warm_up(&self) -> Result<(), String> {
        let mut waits = Vec::new();
        for w in &self.inner.workers {
            let (tx, rx) = oneshot::channel();
            if w.tx.send(Msg::Warm(tx)).is_ok() {
                waits.push(rx);
            }
        }
        for rx in waits {
            rx.await.map_err(|_| "flow worker stopped".to_string())??;
        }
        Ok(())
    }

    async fn dispatch(&self, job: FlowJob, permit: OwnedSemaphorePermit) -> FlowOutcome {
        let job = match Prepared::new(job) {
            Ok(job) => job,
            Err(e) => return failed(e),
        };
        let Some(w) = self
            .inner
            .workers
            .iter()
            .min_by_key(|w| w.load.load(Ordering::Relaxed))
        else {
            return failed(FlowError::Internal("flow pool has no workers".into()));
        };
        w.load.fetch_add(1, Ordering::Relaxed);
        let (reply, rx) = oneshot::channel();
        let request = Request { job, permit, reply };
        if w.tx.send(Msg::Run(Box::new(request))).is_err() {
            w.load.fetch_sub(1, Ordering::Relaxed);
            return failed(FlowError::Internal("flow worker stopped".into()));
        }
        rx.await
            .unwrap_or_else(|_| failed(FlowError::Internal("flow worker dropped the run".into())))
    }
}

pub(crate) fn failed(error: FlowError) -> FlowOutcome {
    FlowOutcome {
        response: None,
        console: Vec::new(),
        result: Err(error),
        duration: std::time::Duration::ZERO,
    }
}

const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<JsPool>();
};
