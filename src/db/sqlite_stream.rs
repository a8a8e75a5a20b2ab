//! Streaming a SQLite result (exports) on a connection of its own, read by rusqlite on a
//! blocking thread.
//!
//! Why not sqlx here: sqlx-sqlite copies every value (`sqlite3_value_dup`) on its worker thread
//! and frees it on the reader's thread, one channel message per row; with SQLite's allocator
//! mutex contended between the two threads that costs about 2 µs a row before any decoding — a
//! million-row export spent 1.8 s just receiving rows, against 1.1 s for the whole
//! `sqlite3 -csv` run. Reading values in place on one thread and handing over batches of decoded
//! rows removes both costs; typing rules are shared with the sqlx path ([`super::sqlite`]).
//!
//! The connection is opened per stream, read-write but with `PRAGMA query_only` (an export
//! cannot change data), with the pool's busy timeout; WAL lets it read while others write.
//! Dropping the stream interrupts a statement still running.

use std::path::PathBuf;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, InterruptHandle, OpenFlags};
use tokio::sync::{mpsc, oneshot};

use super::sqlite::{declared, to_cell, Raw};
use super::{Cell, Column, DbError, SQLITE_BUSY_TIMEOUT};

/// Rows per message from the reader thread.
const BATCH_ROWS: usize = 512;
/// Messages in flight; with `BATCH_ROWS` this bounds the rows held in memory.
const CHANNEL_BATCHES: usize = 4;

pub(crate) type Batch = Result<Vec<Vec<Cell>>, DbError>;

/// The reader side of a running query.
pub(crate) struct Reader {
    pub columns: Vec<Column>,
    pub batches: mpsc::Receiver<Batch>,
    interrupt: InterruptHandle,
}

impl Drop for Reader {
    /// Stops a statement still running: a dropped export must not keep scanning.
    fn drop(&mut self) {
        self.interrupt.interrupt();
    }
}

/// Opens `path`, prepares `sql` and starts reading; resolves once the columns are known.
pub(crate) async fn start(path: PathBuf, sql: String) -> Result<Reader, DbError> {
    let (ready_tx, ready_rx) = oneshot::channel();
    let (tx, batches) = mpsc::channel(CHANNEL_BATCHES);
    tokio::task::spawn_blocking(move || read(&path, &sql, ready_tx, tx));
    match ready_rx.await {
        Ok(Ok((columns, handle))) => Ok(Reader {
            columns,
            batches,
            interrupt: handle,
        }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(DbError::Other(
            "the SQLite reader stopped unexpectedly".into(),
        )),
    }
}

type Ready = Result<(Vec<Column>, InterruptHandle), DbError>;

fn sqlite_err(e: rusqlite::Error) -> DbError {
    match e {
        rusqlite::Error::SqliteFailure(code, message) => DbError::Query {
            message: message.unwrap_or_else(|| code.to_string()),
            code: Some(code.extended_code.to_string()),
            position: None,
        },
        rusqlite::Error::SqlInputError { error, msg, .. } => DbError::Query {
            message: msg,
            code: Some(error.extended_code.to_string()),
            position: None,
        },
        other => DbError::Query {
            message: other.to_string(),
            code: None,
            position: None,
        },
    }
}

fn open(path: &std::path::Path) -> Result<Connection, rusqlite::Error> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(SQLITE_BUSY_TIMEOUT)?;
    conn.pragma_update(None, "query_only", true)?;
    Ok(conn)
}

/// The reader thread. Sends the columns (or the error preparing), then batches of rows; an error
/// part-way through is sent after the rows before it, and ends the stream.
fn read(path: &std::path::Path, sql: &str, ready: oneshot::Sender<Ready>, tx: mpsc::Sender<Batch>) {
    let conn = match open(path) {
        Ok(conn) => conn,
        Err(e) => {
            let _ = ready.send(Err(DbError::Other(format!(
                "cannot open {} for reading: {}",
                path.display(),
                sqlite_err(e)
            ))));
            return;
        }
    };
    let mut stmt = match conn.prepare(sql) {
        Ok(stmt) => stmt,
        Err(e) => {
            let _ = ready.send(Err(sqlite_err(e)));
            return;
        }
    };
    let columns: Vec<Column> = stmt
        .columns()
        .map(|c| Column {
            name: c.name().to_owned(),
            type_name: c.decl_type().unwrap_or_default().to_owned(),
        })
        .collect();
    let decls: Vec<_> = columns.iter().map(|c| declared(&c.type_name)).collect();
    if ready
        .send(Ok((columns.clone(), conn.get_interrupt_handle())))
        .is_err()
    {
        return;
    }
    let mut rows = stmt.raw_query();
    let mut batch = Vec::with_capacity(BATCH_ROWS);
    // Rows read before an error are delivered, then the error.
    let fail = |batch: Vec<Vec<Cell>>, e: DbError| {
        if batch.is_empty() || tx.blocking_send(Ok(batch)).is_ok() {
            let _ = tx.blocking_send(Err(e));
        }
    };
    loop {
        let row = match rows.next() {
            Ok(Some(row)) => row,
            Ok(None) => break,
            Err(e) => return fail(batch, sqlite_err(e)),
        };
        let mut cells = Vec::with_capacity(decls.len());
        for (i, decl) in decls.iter().enumerate() {
            let raw = match row.get_ref_unwrap(i) {
                ValueRef::Null => Raw::Null,
                ValueRef::Integer(n) => Raw::Integer(n),
                ValueRef::Real(f) => Raw::Real(f),
                ValueRef::Text(t) => Raw::Text(t),
                ValueRef::Blob(b) => Raw::Blob(b),
            };
            match to_cell(raw, *decl) {
                Ok(cell) => cells.push(cell),
                Err(message) => {
                    let column = columns[i].name.clone();
                    return fail(batch, DbError::Decode { column, message });
                }
            }
        }
        batch.push(cells);
        if batch.len() == BATCH_ROWS {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ROWS));
            if tx.blocking_send(Ok(full)).is_err() {
                return; // the stream was dropped
            }
        }
    }
    if !batch.is_empty() {
        let _ = tx.blocking_send(Ok(batch));
    }
}
