//! The scheduler's [`Executor`]: claims a tick in the state database, runs the task, records the
//! run, and counts it in the metrics. [`execute_and_record`] is also what `functiond run` uses.

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use tracing::{debug, info, warn};

use super::engine::{Executor, Tick};
use crate::config::model::FunctionKind;
use crate::db::Database;
use crate::events::Events;
use crate::exec::mail::Mailer;
use crate::exec::task::{run_task, TaskContext};
use crate::snapshot::LoadedFunction;
use crate::store::{RunRecord, RunStatus, Store};
use crate::telemetry::Metrics;

/// Everything a scheduled run needs; cheap to clone.
#[derive(Clone)]
pub struct TaskRunner {
    pub store: Store,
    pub db: Database,
    pub exports_dir: std::path::PathBuf,
    pub mailer: Option<Mailer>,
    pub metrics: Metrics,
    /// Where `schedule.succeeded`, `schedule.failed` and `export.ready` go.
    pub events: Option<Events>,
}

impl TaskRunner {
    fn context(&self, f: &LoadedFunction, at: DateTime<Utc>) -> Option<TaskContext> {
        let FunctionKind::Scheduler(s) = &f.function.kind else {
            return None;
        };
        Some(TaskContext {
            function: f.function.name.clone(),
            db: self.db.clone(),
            exports_dir: self.exports_dir.clone(),
            mailer: self.mailer.clone(),
            at,
            timezone: s.schedule.timezone,
        })
    }
}

/// Runs a scheduler function's task now and records the run; the one path for scheduled and
/// manual runs.
pub async fn execute_and_record(
    store: &Store,
    f: &LoadedFunction,
    ctx: &TaskContext,
    trigger: &str,
    scheduled_for: Option<DateTime<Utc>>,
    progress: &mut (dyn FnMut(u64) + Send),
) -> RunRecord {
    let FunctionKind::Scheduler(s) = &f.function.kind else {
        return record(
            f,
            trigger,
            scheduled_for,
            RunStatus::Failed,
            Some("not a scheduler function".into()),
        );
    };
    let mut run = record(f, trigger, scheduled_for, RunStatus::Running, None);
    if let Err(e) = store.insert_run(&run).await {
        warn!(function = %f.function.name, error = %e, "cannot record the start of a run");
    }
    let started = std::time::Instant::now();
    let result = run_task(&s.task, ctx, progress).await;
    run.finished_at = Some(Utc::now());
    run.duration_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
    run.status = result.status;
    run.output = result.output;
    run.error = result.error;
    run.rows_affected = result.rows_affected;
    run.file = result.file;
    if let Err(e) = store.finish_run(&run).await {
        warn!(function = %f.function.name, error = %e, "cannot record the end of a run");
    }
    if let Err(e) = store.prune(&f.function.name).await {
        debug!(function = %f.function.name, error = %e, "pruning run history failed");
    }
    run
}

fn record(
    f: &LoadedFunction,
    trigger: &str,
    scheduled_for: Option<DateTime<Utc>>,
    status: RunStatus,
    error: Option<String>,
) -> RunRecord {
    RunRecord {
        id: crate::id::new_id().to_string(),
        function: f.function.name.clone(),
        kind: f.function.kind.type_name().to_owned(),
        version: f.hash.clone(),
        trigger: trigger.to_owned(),
        request_id: None,
        scheduled_for,
        started_at: Utc::now(),
        finished_at: (status != RunStatus::Running).then(Utc::now),
        status,
        duration_ms: None,
        output: None,
        error,
        rows_affected: None,
        file: None,
    }
}

impl Executor for TaskRunner {
    fn run(&self, tick: Tick) -> BoxFuture<'static, ()> {
        let this = self.clone();
        Box::pin(async move {
            let f = &tick.function;
            let name = &f.function.name;
            match this.store.claim_tick(name, tick.scheduled_for).await {
                Ok(true) => {}
                Ok(false) => {
                    debug!(function = %name, tick = %tick.scheduled_for, "tick already claimed; not running it again");
                    return;
                }
                Err(e) => {
                    // Without the state database there is no once-only guarantee: do not run.
                    warn!(function = %name, tick = %tick.scheduled_for, error = %e, "cannot claim tick; skipping it");
                    return;
                }
            }
            let lateness = (tick.fired_at - tick.scheduled_for)
                .to_std()
                .unwrap_or_default();
            let Some(ctx) = this.context(f, tick.scheduled_for) else {
                return;
            };
            let (cron, description) = match &f.function.kind {
                FunctionKind::Scheduler(s) => {
                    (s.schedule.cron.to_string(), s.schedule.description.clone())
                }
                _ => Default::default(),
            };
            let trigger = if tick.catch_up {
                "catch_up"
            } else {
                "schedule"
            };
            let run = execute_and_record(
                &this.store,
                f,
                &ctx,
                trigger,
                Some(tick.scheduled_for),
                &mut |_| {},
            )
            .await;
            this.metrics.observe_scheduled_run(
                name,
                run.status.as_str(),
                run.duration_ms.unwrap_or(0.0) / 1000.0,
                lateness.as_secs_f64(),
            );
            if let Some(events) = &this.events {
                announce_run(events, &run).await;
            }
            match run.status {
                RunStatus::Succeeded => {
                    info!(function = %name, %cron, schedule = %description, tick = %tick.scheduled_for, lateness_ms = lateness.as_secs_f64() * 1000.0, duration_ms = run.duration_ms, rows = run.rows_affected, file = run.file, "scheduled run succeeded")
                }
                _ => {
                    warn!(function = %name, %cron, schedule = %description, tick = %tick.scheduled_for, status = run.status.as_str(), error = run.error, "scheduled run failed")
                }
            }
        })
    }

    fn skip(&self, tick: Tick) -> BoxFuture<'static, ()> {
        let this = self.clone();
        Box::pin(async move {
            let f = &tick.function;
            let run = record(
                f,
                "schedule",
                Some(tick.scheduled_for),
                RunStatus::Skipped,
                Some("the previous run was still running (overlap = \"skip\")".into()),
            );
            if let Err(e) = this.store.insert_run(&run).await {
                warn!(function = %f.function.name, error = %e, "cannot record a skipped tick");
            }
            this.metrics
                .observe_scheduled_run(&f.function.name, "skipped", 0.0, 0.0);
            info!(function = %f.function.name, tick = %tick.scheduled_for, "tick skipped: previous run still running");
        })
    }

    fn last_tick(&self, function: String) -> BoxFuture<'static, Option<DateTime<Utc>>> {
        let store = self.store.clone();
        Box::pin(async move { store.last_tick(&function).await.ok().flatten() })
    }
}

/// The runner's own events for a finished run: `schedule.succeeded` or `schedule.failed`, and
/// `export.ready` when an export made a file.
pub async fn announce_run(events: &Events, run: &RunRecord) {
    let ok = run.status == RunStatus::Succeeded;
    let mut base = serde_json::Map::new();
    base.insert("function".into(), run.function.clone().into());
    base.insert("run_id".into(), run.id.clone().into());
    base.insert("status".into(), run.status.as_str().into());
    base.insert("trigger".into(), run.trigger.clone().into());
    if let Some(t) = run.scheduled_for {
        base.insert("scheduled_for".into(), t.to_rfc3339().into());
    }
    if let Some(e) = &run.error {
        base.insert("error".into(), e.clone().into());
    }
    let mut event = base.clone();
    event.insert(
        "type".into(),
        if ok {
            "schedule.succeeded"
        } else {
            "schedule.failed"
        }
        .into(),
    );
    if let Err(e) = events.publish(event, "runner").await {
        warn!(function = %run.function, error = %e, "cannot publish the run's event");
    }
    if let (true, Some(file)) = (ok, &run.file) {
        let mut event = base;
        event.insert("type".into(), "export.ready".into());
        event.insert("file".into(), file.clone().into());
        event.insert(
            "url".into(),
            format!("/api/exports/{}/{file}", run.function).into(),
        );
        if let Some(rows) = run.rows_affected {
            event.insert("rows".into(), rows.into());
        }
        if let Err(e) = events.publish(event, "runner").await {
            warn!(function = %run.function, error = %e, "cannot publish export.ready");
        }
    }
}
