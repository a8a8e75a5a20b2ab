//! The scheduler's timing: which function fires when.
//!
//! One task keeps the next tick of every enabled scheduler and sleeps until the earliest (no
//! per-second polling). Executing, recording and the once-only claim of a tick belong to the
//! [`Executor`], so this file is pure timing and is tested with a [`ManualClock`](super::clock).
//!
//! Rules:
//! - A reload keeps the timing of functions whose schedule did not change. A changed schedule
//!   looks for its next tick from the later of its last fired tick and just before the tick the
//!   old version was waiting for, so editing a 09:00 job at 08:59:59 runs it once, at 09:00.
//! - `overlap = "skip"`: a tick that comes while the previous run is still running is recorded as
//!   skipped, not started.
//! - A backlog (the process was stopped or suspended) never fires more than once per function;
//!   `catch_up = "last"` runs once at start for the latest tick missed since the last recorded one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use super::clock::Clock;
use crate::config::model::{CatchUp, FunctionKind, Overlap, Schedule};
use crate::config::schedule::next_runs;
use crate::shutdown::Shutdown;
use crate::snapshot::{LoadedFunction, Snapshot};

/// One tick of one function, handed to the executor.
#[derive(Debug, Clone)]
pub struct Tick {
    pub function: Arc<LoadedFunction>,
    pub scheduled_for: DateTime<Utc>,
    /// True for the single run `catch_up = "last"` makes at start.
    pub catch_up: bool,
    /// When the engine started it; `fired_at - scheduled_for` is the tick's lateness.
    pub fired_at: DateTime<Utc>,
}

/// What the engine asks of the layer that runs tasks.
pub trait Executor: Send + Sync + 'static {
    /// Claims the tick (at most once across replicas), runs the task and records the run.
    fn run(&self, tick: Tick) -> BoxFuture<'static, ()>;
    /// Records a tick that was not started because the previous run was still running.
    fn skip(&self, tick: Tick) -> BoxFuture<'static, ()>;
    /// The latest tick recorded for `function`, for `catch_up`.
    fn last_tick(&self, function: String) -> BoxFuture<'static, Option<DateTime<Utc>>>;
}

struct Entry {
    function: Arc<LoadedFunction>,
    next: Option<DateTime<Utc>>,
    last_fired: Option<DateTime<Utc>>,
    running: Arc<AtomicUsize>,
}

/// The first tick of `schedule` strictly after `t`.
pub fn next_after(schedule: &Schedule, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    next_runs(&schedule.cron, schedule.timezone, t, 1)
        .first()
        .map(|d| d.with_timezone(&Utc))
}

fn schedule_of(f: &LoadedFunction) -> Option<&Schedule> {
    match &f.function.kind {
        FunctionKind::Scheduler(s) if f.function.enabled => Some(&s.schedule),
        _ => None,
    }
}

pub struct Engine {
    clock: Arc<dyn Clock>,
    executor: Arc<dyn Executor>,
    entries: HashMap<String, Entry>,
    tasks: JoinSet<()>,
}

impl Engine {
    pub fn new(clock: Arc<dyn Clock>, executor: Arc<dyn Executor>) -> Self {
        Engine {
            clock,
            executor,
            entries: HashMap::new(),
            tasks: JoinSet::new(),
        }
    }

    /// Runs until shutdown, then waits up to `drain` for running tasks.
    pub async fn run(
        mut self,
        mut snapshots: watch::Receiver<Arc<Snapshot>>,
        mut shutdown: Shutdown,
        drain: Duration,
    ) {
        let first = snapshots.borrow_and_update().clone();
        self.sync(&first, true).await;
        loop {
            while self.tasks.try_join_next().is_some() {}
            let due = self.entries.values().filter_map(|e| e.next).min();
            let sleep = match due {
                Some(t) => self.clock.sleep_until(t),
                None => Box::pin(std::future::pending()),
            };
            tokio::select! {
                _ = shutdown.recv() => break,
                changed = snapshots.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let snap = snapshots.borrow_and_update().clone();
                    self.sync(&snap, false).await;
                }
                _ = sleep => self.fire_due(),
            }
        }
        if !self.tasks.is_empty() {
            info!(
                running = self.tasks.len(),
                "waiting for running scheduled tasks"
            );
            let drained = tokio::time::timeout(drain, async {
                while self.tasks.join_next().await.is_some() {}
            })
            .await;
            if drained.is_err() {
                warn!(
                    running = self.tasks.len(),
                    "drain deadline passed; abandoning running tasks"
                );
                self.tasks.abort_all();
            }
        }
    }

    /// Brings the entries in line with a new snapshot.
    async fn sync(&mut self, snap: &Snapshot, at_start: bool) {
        let now = self.clock.now();
        self.entries.retain(|name, _| {
            snap.functions
                .get(name)
                .and_then(|f| schedule_of(f))
                .is_some()
        });
        for (name, f) in &snap.functions {
            let Some(schedule) = schedule_of(f) else {
                continue;
            };
            match self.entries.get_mut(name) {
                Some(e) => {
                    let same = schedule_of(&e.function).is_some_and(|old| {
                        old.cron == schedule.cron && old.timezone == schedule.timezone
                    });
                    if !same {
                        // Just before the tick the old version waited for, but never before a
                        // tick already fired: neither lost nor doubled.
                        let pending = e.next.map(|n| n - chrono::Duration::milliseconds(1));
                        let mut from = pending.map_or(now, |p| p.min(now));
                        if let Some(last) = e.last_fired {
                            from = from.max(last);
                        }
                        e.next = next_after(schedule, from);
                        log_schedule(name, schedule, e.next, "rescheduled");
                    }
                    e.function = f.clone();
                }
                None => {
                    let mut entry = Entry {
                        function: f.clone(),
                        next: next_after(schedule, now),
                        last_fired: None,
                        running: Arc::new(AtomicUsize::new(0)),
                    };
                    log_schedule(name, schedule, entry.next, "scheduled");
                    if at_start && schedule.catch_up == CatchUp::Last {
                        if let Some(missed) = self.missed_tick(name, schedule, now).await {
                            info!(function = %name, tick = %missed, "catching up the last missed tick");
                            entry.last_fired = Some(missed);
                            start(&mut self.tasks, &self.executor, &entry, missed, true, now);
                        }
                    }
                    self.entries.insert(name.clone(), entry);
                }
            }
        }
    }

    /// The latest tick in (last recorded tick, now], if any.
    async fn missed_tick(
        &self,
        name: &str,
        schedule: &Schedule,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let last = self.executor.last_tick(name.to_owned()).await?;
        let mut t = next_after(schedule, last)?;
        if t > now {
            return None;
        }
        // Walk forward to the most recent one; bounded for very frequent schedules.
        for _ in 0..100_000 {
            match next_after(schedule, t) {
                Some(n) if n <= now => t = n,
                _ => break,
            }
        }
        Some(t)
    }

    fn fire_due(&mut self) {
        let now = self.clock.now();
        let due: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.next.is_some_and(|n| n <= now))
            .map(|(n, _)| n.clone())
            .collect();
        for name in due {
            let Some(entry) = self.entries.get(&name) else {
                continue;
            };
            let Some(tick) = entry.next else { continue };
            start(&mut self.tasks, &self.executor, entry, tick, false, now);
            let Some(entry) = self.entries.get_mut(&name) else {
                continue;
            };
            let Some(schedule) = schedule_of(&entry.function) else {
                continue;
            };
            entry.last_fired = Some(tick);
            // A backlog (the process was suspended) fires once, not once per missed tick.
            entry.next = next_after(schedule, tick.max(now));
        }
    }
}

fn log_schedule(name: &str, schedule: &Schedule, next: Option<DateTime<Utc>>, what: &str) {
    let next = next.map(|n| n.with_timezone(&schedule.timezone).to_rfc3339());
    // A change is worth a line; the initial set of (possibly thousands of) schedules is debug.
    if what == "rescheduled" {
        info!(function = %name, cron = %schedule.cron, description = %schedule.description, timezone = %schedule.timezone, next, "{what}");
    } else {
        debug!(function = %name, cron = %schedule.cron, description = %schedule.description, timezone = %schedule.timezone, next, "{what}");
    }
}

/// Starts the run of one tick, or records it as skipped when `overlap = "skip"` and the previous
/// run is still going.
fn start(
    tasks: &mut JoinSet<()>,
    executor: &Arc<dyn Executor>,
    entry: &Entry,
    scheduled_for: DateTime<Utc>,
    catch_up: bool,
    fired_at: DateTime<Utc>,
) {
    let tick = Tick {
        function: entry.function.clone(),
        scheduled_for,
        catch_up,
        fired_at,
    };
    let overlap = schedule_of(&entry.function).map_or(Overlap::Skip, |s| s.overlap);
    let running = entry.running.clone();
    if overlap == Overlap::Skip && running.load(Ordering::SeqCst) > 0 {
        debug!(function = %entry.function.function.name, %scheduled_for, "previous run still running; skipping");
        tasks.spawn(executor.skip(tick));
        return;
    }
    running.fetch_add(1, Ordering::SeqCst);
    let run = executor.run(tick);
    tasks.spawn(async move {
        run.await;
        running.fetch_sub(1, Ordering::SeqCst);
    });
}
