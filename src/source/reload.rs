//! The reload worker: takes reload requests from a channel, rescans the directory, and swaps in the
//! next snapshot.
//!
//! Requests are messages (from the watcher, the poller, SIGHUP), never callbacks; a burst of
//! requests while a reload runs collapses into one more reload. The scan runs on the blocking pool
//! so that file I/O and validation never stall request handling.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use crate::config::compile::SystemInputs;
use crate::config::Schemas;
use crate::shutdown::Shutdown;
use crate::snapshot::{self, FileStatus, Snapshot, Trigger};
use crate::source::load::load_dir;

/// Owns the functions directory and the sending side of the snapshot channel.
#[derive(Clone)]
pub struct Reloader {
    schemas: Arc<Schemas>,
    root: PathBuf,
    tx: Arc<watch::Sender<Arc<Snapshot>>>,
}

impl Reloader {
    /// A reloader for `root`, and the receiving side every consumer of snapshots clones.
    pub fn new(schemas: Arc<Schemas>, root: PathBuf) -> (Self, watch::Receiver<Arc<Snapshot>>) {
        let (tx, rx) = watch::channel(Arc::new(Snapshot::default()));
        (
            Reloader {
                schemas,
                root,
                tx: Arc::new(tx),
            },
            rx,
        )
    }

    /// Rescans and swaps in the result. Blocking (file I/O): call from the blocking pool or before
    /// the server starts. Returns an error only when the directory itself cannot be read; the
    /// previous snapshot then stays live.
    pub fn reload_blocking(&self, trigger: Trigger) -> std::io::Result<Arc<Snapshot>> {
        let started = Instant::now();
        let prev = self.tx.borrow().clone();
        let scan = match load_dir(&self.schemas, &self.root, &self.root, &SystemInputs) {
            Ok(scan) => scan,
            Err(e) => {
                let msg = format!(
                    "cannot read functions directory {}: {e}",
                    self.root.display()
                );
                warn!(dir = %self.root.display(), error = %e, "reload failed; keeping the running set");
                if prev.is_loaded() {
                    let next = Arc::new(snapshot::failed(&prev, trigger, Utc::now(), msg));
                    self.tx.send_replace(next);
                }
                return Err(e);
            }
        };
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        let next = snapshot::next(&prev, scan, trigger, Utc::now(), elapsed_ms);
        let Some(record) = next.reloads.back() else {
            return Ok(prev);
        };
        let nothing_changed = record.added.is_empty()
            && record.changed.is_empty()
            && record.removed.is_empty()
            && same_file_states(&prev, &next);
        if nothing_changed && matches!(trigger, Trigger::Watch | Trigger::Poll) && prev.is_loaded()
        {
            debug!(?trigger, "reload found no change");
            return Ok(prev);
        }
        log_reload(&prev, &next);
        let next = Arc::new(next);
        self.tx.send_replace(next.clone());
        Ok(next)
    }

    /// Serves reload requests until shutdown.
    pub async fn run(self, mut requests: mpsc::Receiver<Trigger>, mut shutdown: Shutdown) {
        loop {
            let trigger = tokio::select! {
                _ = shutdown.recv() => return,
                t = requests.recv() => match t {
                    Some(t) => t,
                    None => return,
                },
            };
            let this = self.clone();
            // Errors are logged inside; the old set stays live.
            let _ = tokio::task::spawn_blocking(move || this.reload_blocking(trigger)).await;
        }
    }
}

fn same_file_states(a: &Snapshot, b: &Snapshot) -> bool {
    a.files.len() == b.files.len()
        && a.files.iter().zip(&b.files).all(|((pa, sa), (pb, sb))| {
            pa == pb && sa.hash == sb.hash && sa.status == sb.status && sa.errors == sb.errors
        })
}

/// One structured line per reload, plus one warning per problem that is new since the last one.
fn log_reload(prev: &Snapshot, next: &Snapshot) {
    for (path, state) in &next.files {
        if state.status == FileStatus::Ok {
            continue;
        }
        let known = prev
            .files
            .get(path)
            .is_some_and(|p| p.errors == state.errors);
        if !known {
            for d in &state.errors {
                warn!(file = %path.display(), status = ?state.status, "{d}");
            }
        }
    }
    if let Some(r) = next.reloads.back() {
        info!(
            generation = r.generation,
            trigger = r.trigger.as_str(),
            outcome = r.outcome.as_str(),
            functions = next.functions.len(),
            added = %r.added.join(", "),
            changed = %r.changed.join(", "),
            removed = %r.removed.join(", "),
            rejected = %r.rejected.join(", "),
            duration_ms = r.duration_ms,
            "reload"
        );
    }
}
