//! Records webhook and event runs in batches, off the request path.
//!
//! A handler hands its finished [`RunRecord`] to the writer and answers at once; a background task
//! inserts what has queued up in one statement. The queue is bounded: when the database cannot
//! keep up, records beyond it are counted and dropped (the response was already sent), and the
//! log says how many.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::warn;

use super::{RunRecord, Store};
use crate::shutdown::Shutdown;

const QUEUE: usize = 10_000;
const BATCH: usize = 500;
/// Prune a function's history after this many new runs (pruning scans the kept runs, so doing it
/// often costs more than the inserts at high request rates).
const PRUNE_EVERY: u32 = 5_000;

#[derive(Clone)]
pub struct RunWriter {
    tx: mpsc::Sender<RunRecord>,
    dropped: Arc<AtomicU64>,
}

impl RunWriter {
    /// Starts the background writer; it drains the queue and stops after shutdown.
    pub fn spawn(store: Store, mut shutdown: Shutdown) -> (RunWriter, JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<RunRecord>(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let writer = RunWriter {
            tx,
            dropped: dropped.clone(),
        };
        let task = tokio::spawn(async move {
            let mut since_prune: HashMap<String, u32> = HashMap::new();
            let mut batch = Vec::with_capacity(BATCH);
            loop {
                let n = tokio::select! {
                    n = rx.recv_many(&mut batch, BATCH) => n,
                    _ = shutdown.recv() => {
                        // Take what is queued, then finish.
                        while let Ok(r) = rx.try_recv() {
                            batch.push(r);
                        }
                        write(&store, &mut batch, &mut since_prune).await;
                        return;
                    }
                };
                if n == 0 {
                    return;
                }
                write(&store, &mut batch, &mut since_prune).await;
                let lost = dropped.swap(0, Ordering::Relaxed);
                if lost > 0 {
                    warn!(
                        lost,
                        "run history queue was full; some run records were not kept"
                    );
                }
            }
        });
        (writer, task)
    }

    /// Queues a finished run; never waits.
    pub fn record(&self, run: RunRecord) {
        if self.tx.try_send(run).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn write(store: &Store, batch: &mut Vec<RunRecord>, since_prune: &mut HashMap<String, u32>) {
    for chunk in batch.chunks(BATCH) {
        if let Err(e) = store.insert_runs(chunk).await {
            warn!(error = %e, runs = chunk.len(), "cannot record runs");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for r in batch.iter() {
        let n = since_prune.entry(r.function.clone()).or_default();
        *n += 1;
        if *n >= PRUNE_EVERY {
            *n = 0;
            let _ = store.prune(&r.function).await;
        }
    }
    batch.clear();
}
