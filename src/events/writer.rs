//! The outbox writer: the one task that writes the event outbox.
//!
//! Each cycle takes every event published meanwhile (up to [`BATCH`]) and every delivery attempt
//! that finished meanwhile (up to [`RESULT_BATCH`]) and writes them in **one** transaction
//! (group commit); publishers hear back once it is committed. Sharing the transaction keeps the
//! state database's single writer from alternating between ingest and delivery bookkeeping, which
//! is what made accept latency spiky.
//!
//! **Hand-off.** While the delivery worker keeps up, the new deliveries of a batch are claimed
//! in that same transaction and handed to the worker through a bounded in-memory queue: no claim
//! query, no second read of the event. When the queue is full, deliveries are stored unclaimed,
//! the [`Link`] is marked as having a backlog, and the worker claims from the database (in
//! batches, oldest first) until a claim finds nothing more; then hand-off resumes. A crash loses
//! nothing: handed deliveries are claimed in the database with a lease and come back when it runs
//! out.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::{mpsc, oneshot, Notify};
use tracing::{debug, warn};

use crate::shutdown::Shutdown;
use crate::store::outbox::{Accept, Due, Finished, OutboxWrite};
use crate::store::Store;
use crate::telemetry::Metrics;

/// Events committed in one transaction at most.
pub const BATCH: usize = 512;
/// Finished attempts recorded in one transaction at most.
const RESULT_BATCH: usize = 256;
/// Deliveries waiting in memory for the worker at most.
pub const HAND_OFF_QUEUE: usize = 1024;

/// One event waiting to be committed, and who to tell.
pub(super) struct Job {
    pub accept: Accept,
    pub reply: oneshot::Sender<Result<bool, String>>,
}

/// What the outbox writer and the delivery worker share.
pub struct Link {
    /// How long a claim holds, in milliseconds (`events.lease_ms`): for deliveries handed over
    /// here and for those the worker claims.
    pub lease_ms: i64,
    /// Rung when deliveries are waiting in the database (not handed off), or a dead one was put
    /// back: the worker should claim.
    pub wake: Notify,
    /// Set when deliveries were stored unclaimed; cleared by the worker when a claim finds no
    /// more. While set, nothing is handed off, so the stored ones go first.
    backlog: AtomicBool,
    /// Set while a delivery worker takes handed-off deliveries.
    attached: AtomicBool,
    /// The worker's ends, taken when it starts.
    worker_ends: Mutex<Option<(mpsc::Receiver<Due>, mpsc::UnboundedSender<Finished>)>>,
}

impl Link {
    /// The delivery worker's ends of the hand-off queue and the results channel; `None` when a
    /// worker took them already or the writer has stopped.
    pub fn attach(&self) -> Option<(mpsc::Receiver<Due>, mpsc::UnboundedSender<Finished>)> {
        let ends = self.worker_ends.lock().ok()?.take()?;
        self.attached.store(true, Ordering::SeqCst);
        Some(ends)
    }

    /// The worker stops taking handed-off deliveries.
    pub fn detach(&self) {
        self.attached.store(false, Ordering::SeqCst);
    }

    /// A claim found every due delivery: hand-off may resume.
    pub fn backlog_cleared(&self) {
        self.backlog.store(false, Ordering::SeqCst);
    }

    fn hand_off_open(&self) -> bool {
        self.attached.load(Ordering::SeqCst) && !self.backlog.load(Ordering::SeqCst)
    }
}

/// The writer task's state.
pub(super) struct Writer {
    store: Store,
    metrics: Metrics,
    link: Arc<Link>,
    hand_off: mpsc::Sender<Due>,
    results: mpsc::UnboundedReceiver<Finished>,
}

impl Writer {
    pub fn new(store: Store, metrics: Metrics, lease_ms: i64) -> (Writer, Arc<Link>) {
        let (hand_off, queue) = mpsc::channel(HAND_OFF_QUEUE);
        let (results_tx, results) = mpsc::unbounded_channel();
        let link = Arc::new(Link {
            lease_ms,
            wake: Notify::new(),
            backlog: AtomicBool::new(false),
            attached: AtomicBool::new(false),
            worker_ends: Mutex::new(Some((queue, results_tx))),
        });
        let writer = Writer {
            store,
            metrics,
            link: link.clone(),
            hand_off,
            results,
        };
        (writer, link)
    }

    /// Runs until shutdown. After the shutdown signal it goes on committing (events that flows
    /// emit while they drain, the last attempts) until the delivery worker has stopped, then
    /// commits what is still queued and returns.
    pub async fn run(mut self, mut jobs_rx: mpsc::Receiver<Job>, mut shutdown: Shutdown) {
        let mut jobs: Vec<Job> = Vec::with_capacity(BATCH);
        let mut finished: Vec<Finished> = Vec::with_capacity(RESULT_BATCH);
        let mut stopping = false;
        let mut jobs_open = true;
        let mut results_open = true;
        loop {
            tokio::select! {
                biased;
                _ = shutdown.recv(), if !stopping => {
                    stopping = true;
                    // No worker attached: none may attach now, and the results channel closes.
                    if let Ok(mut ends) = self.link.worker_ends.lock() {
                        ends.take();
                    }
                }
                n = jobs_rx.recv_many(&mut jobs, BATCH), if jobs_open => jobs_open = n > 0,
                n = self.results.recv_many(&mut finished, RESULT_BATCH), if results_open => {
                    results_open = n > 0;
                }
                else => {}
            }
            // Whatever else is already waiting goes into the same transaction.
            while jobs.len() < BATCH {
                let Ok(job) = jobs_rx.try_recv() else { break };
                jobs.push(job);
            }
            while finished.len() < RESULT_BATCH {
                let Ok(f) = self.results.try_recv() else {
                    break;
                };
                finished.push(f);
            }
            self.commit(&mut jobs, &mut finished, stopping).await;
            if !results_open && (stopping || !jobs_open) {
                while let Ok(job) = jobs_rx.try_recv() {
                    jobs.push(job);
                    if jobs.len() == BATCH {
                        self.commit(&mut jobs, &mut finished, true).await;
                    }
                }
                self.commit(&mut jobs, &mut finished, true).await;
                return;
            }
        }
    }

    async fn commit(&self, jobs: &mut Vec<Job>, finished: &mut Vec<Finished>, stopping: bool) {
        if jobs.is_empty() && finished.is_empty() {
            return;
        }
        let (accept, replies): (Vec<Accept>, Vec<_>) =
            jobs.drain(..).map(|j| (j.accept, j.reply)).unzip();
        // Only this task sends on the hand-off queue, so its free capacity can only grow
        // until the sends below.
        let hand_off = match !stopping && self.link.hand_off_open() {
            true => self.hand_off.capacity(),
            false => 0,
        };
        let write = OutboxWrite {
            accept: &accept,
            hand_off,
            lease_ms: self.link.lease_ms,
            finished,
        };
        match self.store.write_outbox(&write).await {
            Ok(written) => {
                for ((a, reply), new) in accept.iter().zip(replies).zip(written.fresh) {
                    if new {
                        // Label by type only for routed events, so arbitrary types posted by
                        // clients cannot grow the metric without bound.
                        let t = match a.deliveries.is_empty() {
                            true => "unrouted",
                            false => a.event.get("type").and_then(Value::as_str).unwrap_or(""),
                        };
                        self.metrics.observe_event_accepted(t);
                    }
                    let _ = reply.send(Ok(new));
                }
                for due in written.handed {
                    if let Err(e) = self.hand_off.try_send(due) {
                        // The worker stopped: the claim's lease brings the delivery back.
                        debug!(delivery = %e.into_inner().id, "delivery worker gone; left to its lease");
                    }
                }
                if written.left > 0 {
                    self.link.backlog.store(true, Ordering::SeqCst);
                    self.link.wake.notify_one();
                }
            }
            Err(e) => {
                warn!(error = %e, events = accept.len(), attempts = finished.len(), "cannot write the event outbox; the attempts will be made again when their claims expire");
                for reply in replies {
                    let _ = reply.send(Err(e.to_string()));
                }
            }
        }
        finished.clear();
    }
}
