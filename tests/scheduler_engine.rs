//! Scheduler timing with a hand-driven clock: ticks, reloads, overlap, catch-up, daylight saving.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use tokio::sync::{mpsc, watch, Semaphore};

use functiond::config::compile::{compile_file, MemoryInputs, SourceFile};
use functiond::config::Schemas;
use functiond::scheduler::clock::ManualClock;
use functiond::scheduler::engine::{Engine, Executor, Tick};
use functiond::snapshot::{self, Snapshot, Trigger};
use functiond::source::load::LoadedFile;

#[derive(Debug, Clone, PartialEq)]
struct Fired {
    name: String,
    scheduled_for: DateTime<Utc>,
    skipped: bool,
    catch_up: bool,
}

struct Recorder {
    tx: mpsc::UnboundedSender<Fired>,
    /// Runs hold a permit until the test releases them (to test overlap).
    gate: Option<Arc<Semaphore>>,
    last_tick: Option<DateTime<Utc>>,
}

impl Executor for Recorder {
    fn run(&self, tick: Tick) -> BoxFuture<'static, ()> {
        let tx = self.tx.clone();
        let gate = self.gate.clone();
        Box::pin(async move {
            let _ = tx.send(Fired {
                name: tick.function.function.name.clone(),
                scheduled_for: tick.scheduled_for,
                skipped: false,
                catch_up: tick.catch_up,
            });
            if let Some(g) = gate {
                let _ = g.acquire().await.map(|p| p.forget());
            }
        })
    }
    fn skip(&self, tick: Tick) -> BoxFuture<'static, ()> {
        let _ = self.tx.send(Fired {
            name: tick.function.function.name.clone(),
            scheduled_for: tick.scheduled_for,
            skipped: true,
            catch_up: false,
        });
        Box::pin(async {})
    }
    fn last_tick(&self, _function: String) -> BoxFuture<'static, Option<DateTime<Utc>>> {
        let t = self.last_tick;
        Box::pin(async move { t })
    }
}

fn job(name: &str, schedule: &str, extra: &str) -> String {
    format!("name = \"{name}\"\ntype = \"scheduler\"\n{extra}\n[schedule]\n{schedule}\n[task]\nkind = \"sql\"\nsql = \"SELECT 1\"\n")
}

fn next_snapshot(prev: &Snapshot, files: &[(&str, String)]) -> Arc<Snapshot> {
    let schemas = Schemas::embedded();
    let scan = files
        .iter()
        .map(|(rel, text)| {
            let compiled = compile_file(
                &schemas,
                &SourceFile {
                    display: rel,
                    relative: Path::new(rel),
                    root: Path::new("/"),
                    text,
                },
                &MemoryInputs::default(),
            );
            assert!(
                compiled.result.is_ok(),
                "{rel}: {:?}",
                compiled.result.as_ref().err()
            );
            LoadedFile {
                relative: rel.into(),
                display: rel.to_string(),
                compiled,
            }
        })
        .collect();
    Arc::new(snapshot::next(prev, scan, Trigger::Watch, Utc::now(), 0.0))
}

struct Harness {
    clock: ManualClock,
    fired: mpsc::UnboundedReceiver<Fired>,
    snapshots: watch::Sender<Arc<Snapshot>>,
    gate: Arc<Semaphore>,
    _stop: functiond::shutdown::ShutdownTrigger,
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("test time")
        .with_timezone(&Utc)
}

impl Harness {
    fn start(
        now: &str,
        files: &[(&str, String)],
        gated: bool,
        last_tick: Option<DateTime<Utc>>,
    ) -> Harness {
        let clock = ManualClock::new(utc(now));
        let (tx, fired) = mpsc::unbounded_channel();
        let gate = Arc::new(Semaphore::new(0));
        let recorder = Recorder {
            tx,
            gate: gated.then(|| gate.clone()),
            last_tick,
        };
        let (snapshots, rx) = watch::channel(next_snapshot(&Snapshot::default(), files));
        let (stop, shutdown) = functiond::shutdown::channel();
        let engine = Engine::new(Arc::new(clock.clone()), Arc::new(recorder));
        tokio::spawn(engine.run(rx, shutdown, Duration::from_secs(1)));
        Harness {
            clock,
            fired,
            snapshots,
            gate,
            _stop: stop,
        }
    }

    /// Moves the clock and returns what fired because of it.
    async fn at(&mut self, t: &str) -> Vec<Fired> {
        // Let the engine settle on its next sleep first.
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.clock.set(utc(t));
        self.drain().await
    }

    async fn drain(&mut self) -> Vec<Fired> {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut out = Vec::new();
        while let Ok(f) = self.fired.try_recv() {
            out.push(f);
        }
        out
    }

    fn reload(&self, files: &[(&str, String)]) {
        let prev = self.snapshots.borrow().clone();
        self.snapshots.send_replace(next_snapshot(&prev, files));
    }
}

/// What `ticks` gives when only `name`'s tick at `at` ran.
fn ran_once(name: &str, at: &str) -> Vec<(String, DateTime<Utc>, bool)> {
    vec![(name.to_owned(), utc(at), false)]
}

fn ticks(fired: &[Fired]) -> Vec<(String, DateTime<Utc>, bool)> {
    fired
        .iter()
        .map(|f| (f.name.clone(), f.scheduled_for, f.skipped))
        .collect()
}

#[tokio::test]
async fn fires_at_each_tick_and_not_between() {
    let mut h = Harness::start(
        "2026-06-01T08:00:00Z",
        &[("a.toml", job("a", "cron = \"0 9 * * *\"", ""))],
        false,
        None,
    );
    assert!(h.at("2026-06-01T08:59:59Z").await.is_empty());
    let f = h.at("2026-06-01T09:00:00Z").await;
    assert_eq!(ticks(&f), ran_once("a", "2026-06-01T09:00:00Z"));
    assert!(h.at("2026-06-01T15:00:00Z").await.is_empty());
    let f = h.at("2026-06-02T09:00:00.200Z").await;
    assert_eq!(ticks(&f), ran_once("a", "2026-06-02T09:00:00Z"));
}

#[tokio::test]
async fn editing_a_0900_job_at_085959_runs_it_once() {
    let mut h = Harness::start(
        "2026-06-01T08:59:00Z",
        &[("a.toml", job("a", "cron = \"0 9 * * *\"", ""))],
        false,
        None,
    );
    h.at("2026-06-01T08:59:59Z").await;
    // Same schedule, new description.
    h.reload(&[(
        "a.toml",
        job("a", "cron = \"0 9 * * *\"", "description = \"edited\""),
    )]);
    let f = h.at("2026-06-01T09:00:00Z").await;
    assert_eq!(f.len(), 1, "{f:?}");
    // A changed schedule that still contains 09:00, edited just before: still once.
    h.at("2026-06-02T08:59:59Z").await;
    h.reload(&[("a.toml", job("a", "cron = \"0 9,10 * * *\"", ""))]);
    let f = h.at("2026-06-02T09:00:00Z").await;
    assert_eq!(ticks(&f), ran_once("a", "2026-06-02T09:00:00Z"));
    // Edited right after it fired: 09:00 does not run again; 10:00 does.
    h.reload(&[("a.toml", job("a", "cron = \"0 9,10,11 * * *\"", ""))]);
    assert!(h.drain().await.is_empty());
    let f = h.at("2026-06-02T10:00:00Z").await;
    assert_eq!(ticks(&f), ran_once("a", "2026-06-02T10:00:00Z"));
}

#[tokio::test]
async fn a_late_reload_of_a_due_tick_neither_loses_nor_doubles_it() {
    let mut h = Harness::start(
        "2026-06-01T08:00:00Z",
        &[("a.toml", job("a", "cron = \"0 9 * * *\"", ""))],
        false,
        None,
    );
    // 09:00 has passed but the engine has not fired yet when the edited schedule arrives: the
    // pending 09:00 tick still runs (late), once.
    tokio::time::sleep(Duration::from_millis(20)).await;
    h.clock.set_without_waking(utc("2026-06-01T09:00:00.300Z"));
    h.reload(&[("a.toml", job("a", "cron = \"0 9,18 * * *\"", ""))]);
    let f = h.drain().await;
    assert_eq!(ticks(&f), ran_once("a", "2026-06-01T09:00:00Z"));
}

#[tokio::test]
async fn overlap_skip_records_a_skip_and_allow_runs_twice() {
    let files = [
        ("skip.toml", job("skip", "cron = \"* * * * *\"", "")),
        (
            "allow.toml",
            job("allow", "cron = \"* * * * *\"\noverlap = \"allow\"", ""),
        ),
    ];
    let mut h = Harness::start("2026-06-01T08:00:30Z", &files, true, None);
    let mut f = h.at("2026-06-01T08:01:00Z").await;
    f.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(
        f.iter()
            .map(|x| (x.name.as_str(), x.skipped))
            .collect::<Vec<_>>(),
        vec![("allow", false), ("skip", false)]
    );
    // Both runs are still going (the gate is closed) when the next minute comes.
    let mut f = h.at("2026-06-01T08:02:00Z").await;
    f.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(
        f.iter()
            .map(|x| (x.name.as_str(), x.skipped))
            .collect::<Vec<_>>(),
        vec![("allow", false), ("skip", true)]
    );
    // Once the runs finish, "skip" runs again.
    h.gate.add_permits(10);
    let mut f = h.at("2026-06-01T08:03:00Z").await;
    f.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(
        f.iter()
            .map(|x| (x.name.as_str(), x.skipped))
            .collect::<Vec<_>>(),
        vec![("allow", false), ("skip", false)]
    );
}

#[tokio::test]
async fn disabled_and_removed_functions_never_run() {
    let mut h = Harness::start(
        "2026-06-01T08:00:30Z",
        &[
            (
                "off.toml",
                job("off", "cron = \"* * * * *\"", "enabled = false"),
            ),
            ("on.toml", job("on", "cron = \"* * * * *\"", "")),
        ],
        false,
        None,
    );
    let f = h.at("2026-06-01T08:01:00Z").await;
    assert_eq!(
        f.iter().map(|x| x.name.as_str()).collect::<Vec<_>>(),
        vec!["on"]
    );
    h.reload(&[(
        "off.toml",
        job("off", "cron = \"* * * * *\"", "enabled = false"),
    )]);
    assert!(h.at("2026-06-01T08:02:00Z").await.is_empty());
}

#[tokio::test]
async fn a_backlog_fires_once_and_catch_up_runs_the_last_missed_tick() {
    // The process was suspended for three days: one run, not three.
    let mut h = Harness::start(
        "2026-06-01T08:00:00Z",
        &[("a.toml", job("a", "cron = \"0 9 * * *\"", ""))],
        false,
        None,
    );
    let f = h.at("2026-06-04T12:00:00Z").await;
    assert_eq!(f.len(), 1, "{f:?}");

    // catch_up = "last": at start, the latest tick since the last recorded one runs once.
    let files = [
        (
            "c.toml",
            job("c", "cron = \"0 9 * * *\"\ncatch_up = \"last\"", ""),
        ),
        ("n.toml", job("n", "cron = \"0 9 * * *\"", "")),
    ];
    let mut h = Harness::start(
        "2026-06-04T12:00:00Z",
        &files,
        false,
        Some(utc("2026-06-01T09:00:00Z")),
    );
    let f = h.drain().await;
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(
        (f[0].name.as_str(), f[0].scheduled_for, f[0].catch_up),
        ("c", utc("2026-06-04T09:00:00Z"), true)
    );
    // Nothing missed since the last recorded tick: nothing to catch up.
    let mut h = Harness::start(
        "2026-06-04T12:00:00Z",
        &files[..1],
        false,
        Some(utc("2026-06-04T09:00:00Z")),
    );
    assert!(h.drain().await.is_empty());
}

#[tokio::test]
async fn daylight_saving_gap_and_overlap_in_two_zones() {
    for (tz, gap_day, gap_run_utc, fold_day, fold_run_utc) in [
        // Berlin: 2026-03-29 02:00 → 03:00; 2026-10-25 03:00 → 02:00.
        (
            "Europe/Berlin",
            "2026-03-29T00:00:00Z",
            "2026-03-29T01:00:00Z",
            "2026-10-24T23:00:00Z",
            "2026-10-25T00:30:00Z",
        ),
        // New York: 2026-03-08 02:00 → 03:00; 2026-11-01 02:00 → 01:00.
        (
            "America/New_York",
            "2026-03-08T05:00:00Z",
            "2026-03-08T07:00:00Z",
            "2026-11-01T04:00:00Z",
            "2026-11-01T05:30:00Z",
        ),
    ] {
        let (gap_time, fold_time) = if tz == "Europe/Berlin" {
            ("30 2 * * *", "30 2 * * *")
        } else {
            ("30 2 * * *", "30 1 * * *")
        };
        let files = [(
            "gap.toml",
            job(
                "gap",
                &format!("cron = \"{gap_time}\"\ntimezone = \"{tz}\""),
                "",
            ),
        )];
        // Spring forward: 02:30 does not exist; it runs once at 03:00 local.
        let mut h = Harness::start(gap_day, &files, false, None);
        let f = h
            .at(&(utc(gap_run_utc) + chrono::Duration::hours(2)).to_rfc3339())
            .await;
        assert_eq!(
            ticks(&f),
            vec![("gap".into(), utc(gap_run_utc), false)],
            "{tz} gap"
        );

        // Fall back: the repeated local time runs once, at its first occurrence.
        let files = [(
            "fold.toml",
            job(
                "fold",
                &format!("cron = \"{fold_time}\"\ntimezone = \"{tz}\""),
                "",
            ),
        )];
        let mut h = Harness::start(fold_day, &files, false, None);
        let first = h.at(fold_run_utc).await;
        assert_eq!(
            ticks(&first),
            vec![("fold".into(), utc(fold_run_utc), false)],
            "{tz} fold"
        );
        let again = h
            .at(&(utc(fold_run_utc) + chrono::Duration::hours(1)).to_rfc3339())
            .await;
        assert!(
            again.is_empty(),
            "{tz}: the repeated hour ran twice: {again:?}"
        );
    }
    // An hourly schedule keeps its rhythm through the repeated hour: 01:00 runs in both folds.
    let files = [(
        "hourly.toml",
        job(
            "hourly",
            "cron = \"0 * * * *\"\ntimezone = \"America/New_York\"",
            "",
        ),
    )];
    let mut h = Harness::start("2026-11-01T04:30:00Z", &files, false, None);
    let mut all = Vec::new();
    for hour in [
        "2026-11-01T05:00:00Z",
        "2026-11-01T06:00:00Z",
        "2026-11-01T07:00:00Z",
    ] {
        all.extend(h.at(hour).await);
    }
    let local: Vec<String> = all
        .iter()
        .map(|f| {
            f.scheduled_for
                .with_timezone(&chrono_tz::America::New_York)
                .format("%H:%M%z")
                .to_string()
        })
        .collect();
    assert_eq!(local, vec!["01:00-0400", "01:00-0500", "02:00-0500"]);
}
