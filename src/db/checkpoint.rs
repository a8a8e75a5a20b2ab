//! WAL checkpoints on a thread and connection of their own, for a SQLite file whose pool was
//! opened with [`super::SqliteTuning::background_checkpoints`].
//!
//! Why: SQLite's automatic checkpoint runs inside whichever commit pushes the WAL past 1,000
//! pages; that commit then copies the WAL back into the database file and syncs it, taking
//! milliseconds while every writer queued behind it waits. A passive checkpoint from another
//! connection does the same work without holding the write lock, so commits stay short.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tracing::warn;

use super::{DbError, SQLITE_BUSY_TIMEOUT};

/// How often the WAL is checkpointed.
const EVERY: Duration = Duration::from_millis(200);

/// Checkpoints a SQLite file's WAL every [`EVERY`] until dropped.
#[derive(Debug)]
pub struct Checkpointer {
    /// Dropped to stop the thread.
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Opens a connection to `path` and starts the thread; fails when the file cannot be opened.
    pub fn start(path: &Path) -> Result<Checkpointer, DbError> {
        let path: PathBuf = path.to_owned();
        let open_err = |e: rusqlite::Error| DbError::Connect {
            url: path.display().to_string(),
            message: format!("cannot open a connection for WAL checkpoints: {e}"),
        };
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open_err)?;
        conn.busy_timeout(SQLITE_BUSY_TIMEOUT).map_err(open_err)?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(&conn, &stopped))
            .map_err(|e| DbError::Other(format!("cannot start the WAL checkpoint thread: {e}")))?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(conn: &Connection, stopped: &mpsc::Receiver<()>) {
    let mut last_error = String::new();
    loop {
        let done = !matches!(stopped.recv_timeout(EVERY), Err(RecvTimeoutError::Timeout));
        // (busy, frames in the WAL, frames checkpointed); PASSIVE never waits for the writer.
        let result = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            row.get::<_, i64>(0)
        });
        match result {
            Ok(_) => last_error.clear(),
            Err(e) => {
                let e = e.to_string();
                if e != last_error {
                    warn!(error = %e, "WAL checkpoint failed; will try again");
                    last_error = e;
                }
            }
        }
        if done {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Database, SqliteTuning};

    fn size(path: &Path) -> u64 {
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
    }

    /// With automatic checkpoints off, written pages stay in the WAL; the checkpointer copies
    /// them into the database file without any further write.
    #[tokio::test]
    async fn the_wal_is_checkpointed_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let url = format!("sqlite://{}", path.display());
        let db = Database::connect_with(&url, SqliteTuning::state())
            .await
            .unwrap();
        db.execute_script("CREATE TABLE t (x BLOB)").await.unwrap();
        // About 8 MB, past the 1,000-page point where SQLite would checkpoint by itself.
        db.execute_script(
            "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 2000) \
             INSERT INTO t SELECT randomblob(4000) FROM s",
        )
        .await
        .unwrap();
        let before = size(&path);
        assert!(
            before < 1 << 20,
            "no automatic checkpoint: {before} bytes in the file"
        );

        let checkpointer = Checkpointer::start(&path).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while size(&path) < 8_000_000 && std::time::Instant::now() < deadline {
            tokio::time::sleep(EVERY).await;
        }
        drop(checkpointer);
        let after = size(&path);
        assert!(
            after >= 8_000_000,
            "checkpointed into the file: {after} bytes"
        );
    }
}
