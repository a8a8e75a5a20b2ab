//! Noticing changes in the functions directory and asking for a reload.
//!
//! File-system notifications (notify, recursive) are batched by a quiet window: a reload is asked
//! for once no event has arrived for `debounce`, or at the latest `MAX_BATCH` after the first one,
//! so a `git pull` touching 50 files gives one reload while a save shows up within a fraction of a
//! second. Editors that save by rename and the Kubernetes ConfigMap `..data` symlink swap both
//! produce events in the watched tree; the reload rescans everything, so which event arrived does
//! not matter.
//!
//! When notifications cannot start (no inotify, a watch limit) or fail later, the watcher logs it
//! and falls back to polling a fingerprint of the tree; `reload.mode = "poll"` asks for polling
//! from the start, for mounts that deliver no notifications.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};
use tracing::{info, warn};

use crate::config::runner::ReloadMode;
use crate::shutdown::Shutdown;
use crate::snapshot::Trigger;
use crate::source::load::fingerprint;

/// The longest a steady stream of events can delay a reload.
const MAX_BATCH: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct WatchSettings {
    pub root: PathBuf,
    pub mode: ReloadMode,
    pub debounce: Duration,
    pub poll_interval: Duration,
}

enum Notice {
    Changed,
    Failed(String),
}

/// Starts watching and returns once changes are being noticed (so nothing written after this
/// returns can be missed); the returned task runs until shutdown.
pub async fn start(
    settings: WatchSettings,
    reloads: mpsc::Sender<Trigger>,
    shutdown: Shutdown,
) -> JoinHandle<()> {
    let interval_ms = settings.poll_interval.as_millis() as u64;
    if settings.mode == ReloadMode::Poll {
        info!(dir = %settings.root.display(), interval_ms, "watching the functions directory by polling");
        let last = fingerprint_async(settings.root.clone()).await;
        return tokio::spawn(async move { poll(&settings, last, &reloads, shutdown).await });
    }
    let (tx, rx) = mpsc::unbounded_channel();
    match start_notify(&settings.root, tx) {
        Ok(watcher) => {
            info!(dir = %settings.root.display(), "watching the functions directory for changes");
            tokio::spawn(notified(settings, watcher, rx, reloads, shutdown))
        }
        Err(e) => {
            warn!(dir = %settings.root.display(), error = %e, interval_ms, "file notifications unavailable; falling back to polling");
            let last = fingerprint_async(settings.root.clone()).await;
            tokio::spawn(async move { poll(&settings, last, &reloads, shutdown).await })
        }
    }
}

/// Turns notifications into batched reload requests; falls back to polling if they fail.
async fn notified(
    settings: WatchSettings,
    _watcher: RecommendedWatcher,
    mut rx: mpsc::UnboundedReceiver<Notice>,
    reloads: mpsc::Sender<Trigger>,
    mut shutdown: Shutdown,
) {
    loop {
        let notice = tokio::select! {
            _ = shutdown.recv() => return,
            n = rx.recv() => n,
        };
        let failure = match notice {
            Some(Notice::Changed) => quiet_window(&mut rx, settings.debounce).await.err(),
            Some(Notice::Failed(e)) => Some(e),
            None => return,
        };
        request(&reloads, Trigger::Watch);
        if let Some(e) = failure {
            warn!(error = %e, interval_ms = settings.poll_interval.as_millis() as u64, "file watcher failed; falling back to polling");
            let last = fingerprint_async(settings.root.clone()).await;
            return poll(&settings, last, &reloads, shutdown).await;
        }
    }
}

/// Waits until no event has come for `debounce` (at most [`MAX_BATCH`] in all).
async fn quiet_window(
    rx: &mut mpsc::UnboundedReceiver<Notice>,
    debounce: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + MAX_BATCH;
    loop {
        let quiet = (Instant::now() + debounce).min(deadline);
        tokio::select! {
            _ = sleep_until(quiet) => return Ok(()),
            n = rx.recv() => match n {
                Some(Notice::Changed) => continue,
                Some(Notice::Failed(e)) => return Err(e),
                None => return Ok(()),
            },
        }
    }
}

fn start_notify(
    root: &Path,
    tx: mpsc::UnboundedSender<Notice>,
) -> notify::Result<RecommendedWatcher> {
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let notice = match res {
            Ok(ev) if matches!(ev.kind, EventKind::Access(_)) => return,
            Ok(_) => Notice::Changed,
            Err(e) => Notice::Failed(e.to_string()),
        };
        let _ = tx.send(notice);
    })?;
    watcher.watch(root, RecursiveMode::Recursive)?;
    Ok(watcher)
}

async fn fingerprint_async(root: PathBuf) -> Option<[u8; 32]> {
    tokio::task::spawn_blocking(move || fingerprint(&root).ok())
        .await
        .ok()
        .flatten()
}

/// Polls the directory's fingerprint until shutdown, starting from `last`.
async fn poll(
    settings: &WatchSettings,
    mut last: Option<[u8; 32]>,
    reloads: &mpsc::Sender<Trigger>,
    mut shutdown: Shutdown,
) {
    let mut tick = tokio::time::interval(settings.poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.recv() => return,
            _ = tick.tick() => {}
        }
        let now = fingerprint_async(settings.root.clone()).await;
        if now != last {
            last = now;
            request(reloads, Trigger::Poll);
        }
    }
}

/// Asks for a reload; if one is already queued, this one is folded into it.
fn request(reloads: &mpsc::Sender<Trigger>, trigger: Trigger) {
    let _ = reloads.try_send(trigger);
}
