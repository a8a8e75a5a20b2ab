//! The application database (`[database] url`): what flows (`db.query`, `db.execute`) and
//! scheduler tasks (`sql`, `export`) run against.
//!
//! Why the native drivers and not sqlx's `Any`: `Any` only knows null, booleans, integers, floats,
//! text and blobs, so PostgreSQL NUMERIC, TIMESTAMPTZ, JSONB, UUID and SQLite DATE/DATETIME
//! columns would fail to decode. Each driver instead decodes into one shared value type,
//! [`Cell`] (see [`value`] for the mapping to JSON, CSV and XLSX).
//!
//! SQL comes from function files, so it is not a literal: it is wrapped in [`AssertSqlSafe`].
//! That is sound because values never go into SQL text — they are bound parameters, with the
//! database's own placeholders (`?` for SQLite, `$1, $2, …` for PostgreSQL).
//!
//! # Parameters
//!
//! `params` are JSON values (what a flow passes to `db.query(sql, params)`):
//!
//! - SQLite binds them as they are: `null` → NULL, booleans → 1/0, integers → INTEGER, other
//!   numbers → REAL, strings → TEXT, arrays and objects → their JSON text.
//! - PostgreSQL first prepares the statement to learn the type it infers for each `$n`, then
//!   converts the value to that type: numbers or numeric strings for `int2/int4/int8`, `float4/8`
//!   and `numeric`; booleans (or `"true"`, `"f"`, `1`, …) for `bool`; ISO 8601 strings for `date`,
//!   `time`, `timestamp` and `timestamptz` (a date-time without an offset is taken as UTC; one
//!   with an offset is converted to UTC for `timestamp`); any JSON value for `json/jsonb` (a
//!   string becomes a JSON string); UUID strings for `uuid`; base64 strings for `bytea`; anything
//!   for text types (non-strings as their JSON text); JSON arrays for `int2[]`, `int4[]`,
//!   `int8[]`, `float4[]`, `float8[]`, `numeric[]`, `text[]`, `bool[]`, `uuid[]`. Enums and domains
//!   work like their labels and base types. Other types are refused with a hint to cast in SQL
//!   (`$1::text::inet`, `name = ANY($1::text[])` for a `varchar` column).
//!
//! Results for exports are streamed ([`Database::stream`]): the column names come from preparing
//! the statement (so a zero-row result still has a header) and rows are decoded as they are
//! read, never collected. A SQLite file is streamed on a read-only connection of its own through
//! rusqlite, several times faster than through sqlx (see `sqlite_stream.rs` for why).

mod checkpoint;
mod error;
mod postgres;
mod sqlite;
mod sqlite_stream;
pub mod value;

use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::stream::{BoxStream, Stream, StreamExt as _};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Column as _, Either, Executor as _, Row as _, SqlSafeStr as _};
use sqlx::{ConnectOptions as _, Connection as _};
use sqlx::{Statement as _, TypeInfo as _};

pub use checkpoint::Checkpointer;
pub use error::{redact_url, DbError, SqlPosition};
pub use value::Cell;

/// How long a statement waits for a locked SQLite database before failing with "database is
/// locked".
pub(crate) const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// SQLite allows one writer at a time; a few connections let readers (flows, exports) proceed
/// while a writer works (WAL mode).
const SQLITE_MAX_CONNECTIONS: u32 = 4;
const PG_MAX_CONNECTIONS: u32 = 10;
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// How a SQLite file is used.
#[derive(Debug, Clone, Copy)]
pub struct SqliteTuning {
    /// Connections in the pool.
    pub connections: u32,
    /// No automatic WAL checkpoints in the committing connection: the owner runs them from a
    /// connection of its own ([`checkpoint_wal`]).
    pub background_checkpoints: bool,
}

impl Default for SqliteTuning {
    fn default() -> Self {
        SqliteTuning {
            connections: SQLITE_MAX_CONNECTIONS,
            background_checkpoints: false,
        }
    }
}

impl SqliteTuning {
    /// The state database: one connection, so its writers queue in the process, in order,
    /// instead of sleeping in SQLite's busy handler (which showed as 40-90 ms accept latency
    /// spikes); and checkpoints off the commit path (an automatic checkpoint copies the WAL back
    /// and syncs the file inside whichever commit crosses 1,000 pages, which showed as 6-30 ms
    /// commits).
    pub fn state() -> Self {
        SqliteTuning {
            connections: 1,
            background_checkpoints: true,
        }
    }
}

/// A connection pool to the application database. Cloning is cheap (the pool is shared).
#[derive(Clone, Debug)]
pub enum Database {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// One result column: its name and the type the database reports for it (SQLite: the declared
/// type such as `DATE`, empty for an expression; PostgreSQL: e.g. `INT4`, `TIMESTAMPTZ`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub type_name: String,
}

impl Database {
    /// Opens a pool for `url` and checks that one connection works.
    ///
    /// - `sqlite://path` or `sqlite:path` (relative to the working directory; the parent folder and
    ///   the file are created when missing; WAL journal, 10 s busy timeout, foreign keys on),
    ///   `sqlite:///absolute/path`, `sqlite::memory:` (one private in-memory database shared by
    ///   the pool through a single connection).
    /// - `postgres://…` or `postgresql://…` (libpq-style URL and options).
    pub async fn connect(url: &str) -> Result<Database, DbError> {
        Self::connect_with(url, SqliteTuning::default()).await
    }

    /// [`Database::connect`] with SQLite settings of its own (the state database's, see
    /// [`SqliteTuning::state`]).
    pub async fn connect_with(url: &str, tuning: SqliteTuning) -> Result<Database, DbError> {
        let shown = redact_url(url);
        let connect_err = |e: sqlx::Error| DbError::Connect {
            url: shown.clone(),
            message: e.to_string(),
        };
        let url_err = |message: String| DbError::Url {
            url: shown.clone(),
            message,
        };
        if url.starts_with("sqlite:") {
            let memory = is_sqlite_memory(url);
            let mut options = SqliteConnectOptions::from_str(url)
                .map_err(|e| url_err(e.to_string()))?
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .foreign_keys(true);
            let mut pool = SqlitePoolOptions::new().acquire_timeout(ACQUIRE_TIMEOUT);
            if memory {
                // Each connection to `:memory:` would be its own database: keep exactly one,
                // forever.
                pool = pool
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None);
            } else {
                options = options
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal);
                if tuning.background_checkpoints {
                    options = options.pragma("wal_autocheckpoint", "0");
                }
                if let Some(parent) = options.get_filename().parent() {
                    if !parent.as_os_str().is_empty() {
                        tokio::fs::create_dir_all(parent)
                            .await
                            .map_err(|e| DbError::Connect {
                                url: shown.clone(),
                                message: format!("cannot create folder {}: {e}", parent.display()),
                            })?;
                    }
                }
                pool = pool.max_connections(tuning.connections.max(1));
            }
            let pool = pool.connect_with(options).await.map_err(connect_err)?;
            Ok(Database::Sqlite(pool))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url).map_err(|e| url_err(e.to_string()))?;
            // One direct attempt first: the pool would keep retrying a refused connection until
            // its acquire timeout, while a wrong host or password should be reported at once.
            let probe = options.connect().await.map_err(connect_err)?;
            let _ = probe.close().await;
            let pool = PgPoolOptions::new()
                .max_connections(PG_MAX_CONNECTIONS)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_lazy_with(options);
            Ok(Database::Postgres(pool))
        } else {
            Err(url_err(
                "expected sqlite://…, sqlite::memory:, postgres://… or postgresql://…".into(),
            ))
        }
    }

    /// `"sqlite"` or `"postgres"`, for messages and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Database::Sqlite(_) => "sqlite",
            Database::Postgres(_) => "postgres",
        }
    }

    /// Runs a script of one or more `;`-separated statements (a `sql` task) and returns the sum
    /// of the rows they changed. Rows returned by a `SELECT` are discarded.
    ///
    /// The script is one transaction on both databases: PostgreSQL runs a multi-statement
    /// script in one implicit transaction; on SQLite it is wrapped in `BEGIN IMMEDIATE … COMMIT`,
    /// unless it manages transactions itself (then it runs as written). After a failure an open
    /// transaction is rolled back, so the connection goes back to the pool clean.
    pub async fn execute_script(&self, sql: &str) -> Result<u64, DbError> {
        // If this future is dropped part-way (a task timeout), the connection may be inside a
        // transaction: it is then closed rather than returned to the pool.
        let err = |e| DbError::from_sqlx(e, sql);
        match self {
            Database::Sqlite(pool) => {
                let mut conn = CloseUnlessDone::new(pool.acquire().await.map_err(err)?);
                let result = sqlite_script(conn.get(), sql).await;
                conn.settle(sql, result).await
            }
            Database::Postgres(pool) => {
                let mut conn = CloseUnlessDone::new(pool.acquire().await.map_err(err)?);
                let result = pg_script(conn.get(), sql).await;
                conn.settle(sql, result).await
            }
        }
    }

    /// Runs one statement with bound parameters and returns all rows as JSON objects keyed by
    /// column name (a repeated name keeps the last column's value). Values follow the mapping in
    /// [`value`].
    pub async fn query_json(
        &self,
        sql: &str,
        params: &[serde_json::Value],
    ) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, DbError> {
        let err = |e| DbError::from_sqlx(e, sql);
        let mut cells = Vec::new();
        let mut out = Vec::new();
        let mut to_object = |names: &mut dyn Iterator<Item = String>, cells: &mut Vec<Cell>| {
            let map = names.zip(cells.drain(..).map(Cell::into_json)).collect();
            out.push(map);
        };
        match self {
            Database::Sqlite(pool) => {
                let args = sqlite::bind(params)?;
                let mut conn = CloseUnlessDone::new(pool.acquire().await.map_err(err)?);
                let rows = sqlx::query_with(AssertSqlSafe(sql), args)
                    .fetch_all(conn.get())
                    .await;
                for row in &conn.settle(sql, rows).await? {
                    sqlite::decode_row(row, &mut cells)?;
                    let mut names = row.columns().iter().map(|c| c.name().to_owned());
                    to_object(&mut names, &mut cells);
                }
            }
            Database::Postgres(pool) => {
                let mut conn = CloseUnlessDone::new(pool.acquire().await.map_err(err)?);
                let args = pg_args(conn.get(), sql, params).await?;
                let rows = sqlx::query_with(AssertSqlSafe(sql), args)
                    .fetch_all(conn.get())
                    .await;
                for row in &conn.settle(sql, rows).await? {
                    postgres::decode_row(row, &mut cells)?;
                    let mut names = row.columns().iter().map(|c| c.name().to_owned());
                    to_object(&mut names, &mut cells);
                }
            }
        }
        Ok(out)
    }

    /// Runs one statement with bound parameters and returns the number of rows it changed.
    pub async fn execute(&self, sql: &str, params: &[serde_json::Value]) -> Result<u64, DbError> {
        let err = |e| DbError::from_sqlx(e, sql);
        match self {
            Database::Sqlite(pool) => {
                let args = sqlite::bind(params)?;
                let mut conn = CloseUnlessDone::new(pool.acquire().await.map_err(err)?);
                let done = sqlx::query_with(AssertSqlSafe(sql), args)
                    .execute(conn.get())
                    .await;
                Ok(conn.settle(sql, done).await?.rows_affected())
            }
            Database::Postgres(pool) => {
                let mut conn = CloseUnlessDone::new(pool.acquire().await.map_err(err)?);
                let args = pg_args(conn.get(), sql, params).await?;
                let done = sqlx::query_with(AssertSqlSafe(sql), args)
                    .execute(conn.get())
                    .await;
                Ok(conn.settle(sql, done).await?.rows_affected())
            }
        }
    }

    /// Starts one query (no parameters) for streaming. Resolves once the statement is prepared,
    /// so SQL errors surface here and [`RowStream::columns`] is known even when no row follows;
    /// rows are then read as the stream is polled, a few hundred ahead at most. Holds a
    /// connection (PostgreSQL and in-memory SQLite: one from the pool; a SQLite file: one of its
    /// own, which cannot write) until the stream ends or is dropped; dropping it stops the query.
    pub async fn stream(&self, sql: &str) -> Result<RowStream, DbError> {
        let err = |e| DbError::from_sqlx(e, sql);
        let columns_of = |cols: &mut dyn Iterator<Item = (String, String)>| -> Arc<[Column]> {
            cols.map(|(name, type_name)| Column { name, type_name })
                .collect()
        };
        match self {
            Database::Sqlite(pool) => {
                let path = pool.connect_options().get_filename().to_owned();
                let on_disk = tokio::fs::metadata(&path).await.is_ok_and(|m| m.is_file());
                if on_disk {
                    let reader = sqlite_stream::start(path, sql.to_owned()).await?;
                    return Ok(RowStream {
                        columns: reader.columns.clone().into(),
                        sql: sql.into(),
                        rows: Rows::Batches {
                            reader,
                            current: Vec::new().into_iter(),
                        },
                    });
                }
                // In memory: only the pool's own connection sees the data.
                let stmt = pool
                    .prepare(AssertSqlSafe(sql.to_owned()).into_sql_str())
                    .await
                    .map_err(err)?;
                let columns = columns_of(&mut stmt.columns().iter().map(|c| {
                    let type_name = match c.type_info().name() {
                        "NULL" => String::new(),
                        name => name.to_owned(),
                    };
                    (c.name().to_owned(), type_name)
                }));
                let rows = pool.fetch(sqlx::query(AssertSqlSafe(sql.to_owned())));
                Ok(RowStream {
                    columns,
                    sql: sql.into(),
                    rows: Rows::Sqlite(rows),
                })
            }
            Database::Postgres(pool) => {
                let stmt = pool
                    .prepare(AssertSqlSafe(sql.to_owned()).into_sql_str())
                    .await
                    .map_err(err)?;
                let columns = columns_of(
                    &mut stmt
                        .columns()
                        .iter()
                        .map(|c| (c.name().to_owned(), c.type_info().name().to_owned())),
                );
                let rows = pool.fetch(sqlx::query(AssertSqlSafe(sql.to_owned())));
                Ok(RowStream {
                    columns,
                    sql: sql.into(),
                    rows: Rows::Postgres(rows),
                })
            }
        }
    }

    /// Closes every connection (waits for the ones in use to be returned).
    pub async fn close(&self) {
        match self {
            Database::Sqlite(pool) => pool.close().await,
            Database::Postgres(pool) => pool.close().await,
        }
    }
}

/// Prepares `sql` on `conn` (cached per connection) to learn the parameter types the server
/// inferred, and converts `params` to them.
async fn pg_args(
    conn: &mut sqlx::PgConnection,
    sql: &str,
    params: &[serde_json::Value],
) -> Result<sqlx::postgres::PgArguments, DbError> {
    let stmt = conn
        .prepare(AssertSqlSafe(sql.to_owned()).into_sql_str())
        .await
        .map_err(|e| DbError::from_sqlx(e, sql))?;
    let types = match stmt.parameters() {
        Some(Either::Left(types)) => types,
        _ => &[],
    };
    postgres::bind(params, types)
}

async fn sqlite_script(conn: &mut sqlx::SqliteConnection, sql: &str) -> Result<u64, sqlx::Error> {
    conn.execute("BEGIN IMMEDIATE").await?;
    let wrapped = async {
        let done = sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&mut *conn)
            .await?;
        conn.execute("COMMIT").await?;
        Ok::<_, sqlx::Error>(done.rows_affected())
    }
    .await;
    let e = match wrapped {
        Ok(rows) => return Ok(rows),
        Err(e) => e,
    };
    let _ = conn.execute("ROLLBACK").await;
    if !manages_transactions(&e) {
        return Err(e);
    }
    match sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut *conn).await {
        Ok(done) => Ok(done.rows_affected()),
        Err(e) => {
            let _ = conn.execute("ROLLBACK").await;
            Err(e)
        }
    }
}

async fn pg_script(conn: &mut sqlx::PgConnection, sql: &str) -> Result<u64, sqlx::Error> {
    match sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut *conn).await {
        Ok(done) => Ok(done.rows_affected()),
        Err(e) => {
            // Only matters when the script opened a transaction itself.
            let _ = conn.execute("ROLLBACK").await;
            Err(e)
        }
    }
}

/// A pooled connection that is closed, not returned to the pool, unless [`Self::done`] is
/// called: for work that a dropped future could leave half-way (an open transaction).
struct CloseUnlessDone<DB: sqlx::Database> {
    conn: sqlx::pool::PoolConnection<DB>,
    done: bool,
}

impl<DB: sqlx::Database> CloseUnlessDone<DB> {
    fn new(conn: sqlx::pool::PoolConnection<DB>) -> Self {
        CloseUnlessDone { conn, done: false }
    }

    fn get(&mut self) -> &mut DB::Connection {
        &mut self.conn
    }

    /// The work finished (successfully or not, but cleanly): the connection may be reused.
    fn done(mut self) {
        self.done = true;
    }
}

impl<DB: sqlx::Database> Drop for CloseUnlessDone<DB> {
    fn drop(&mut self) {
        if !self.done {
            self.conn.close_on_drop();
        }
    }
}

impl<DB: sqlx::Database> CloseUnlessDone<DB>
where
    DB::Connection: EndTransaction,
{
    /// The outcome of `sql` on this connection, once it is sure to be left outside any
    /// transaction. A transaction that `sql` began and did not end (`BEGIN` without `COMMIT`)
    /// is rolled back and the call fails: left open, it would go back to the pool with the
    /// connection, and whatever ran on it next would run inside it (its writes never committed,
    /// its locks held), while the caller's next statement may run on another connection. Only
    /// SQL that mentions `BEGIN`, `START` or `SAVEPOINT` can open one, so only that is checked.
    /// A connection whose state cannot be checked is closed rather than reused.
    async fn settle<T>(mut self, sql: &str, outcome: Result<T, sqlx::Error>) -> Result<T, DbError> {
        let lower = sql.to_ascii_lowercase();
        let may_open = ["begin", "start", "savepoint"]
            .iter()
            .any(|k| lower.contains(k));
        let was_open = match may_open {
            true => self
                .get()
                .end_transaction()
                .await
                .map_err(|e| DbError::Other(e.to_string()))?,
            false => false,
        };
        self.done();
        // The statement's own error first.
        let value = outcome.map_err(|e| DbError::from_sqlx(e, sql))?;
        if was_open {
            return Err(DbError::Other(
                "the SQL began a transaction and did not end it, so it was rolled back: commit \
                 or roll back in the same call (the next call may run on another connection)"
                    .into(),
            ));
        }
        Ok(value)
    }
}

/// Rolls back a transaction the connection is inside, if any; says whether there was one.
trait EndTransaction {
    async fn end_transaction(&mut self) -> Result<bool, sqlx::Error>;
}

impl EndTransaction for sqlx::SqliteConnection {
    async fn end_transaction(&mut self) -> Result<bool, sqlx::Error> {
        let open = {
            let mut handle = self.lock_handle().await?;
            // SAFETY: the handle is a live connection, locked for this call; sqlx and
            // rusqlite link the same libsqlite3-sys.
            unsafe { rusqlite::ffi::sqlite3_get_autocommit(handle.as_raw_handle().as_ptr()) == 0 }
        };
        if open {
            self.execute("ROLLBACK").await?;
        }
        Ok(open)
    }
}

impl EndTransaction for sqlx::PgConnection {
    async fn end_transaction(&mut self) -> Result<bool, sqlx::Error> {
        // Inside a transaction begun earlier, the transaction started before this statement;
        // in autocommit, a statement sent as a simple query (one message) starts its own
        // transaction at the same instant. An aborted transaction fails the query.
        let open = sqlx::raw_sql(AssertSqlSafe(
            "SELECT transaction_timestamp() <> statement_timestamp()",
        ))
        .fetch_one(&mut *self)
        .await
        .and_then(|row| row.try_get::<bool, _>(0))
        .unwrap_or(true);
        if open {
            self.execute("ROLLBACK").await?;
        }
        Ok(open)
    }
}

/// For tests: the URL of a fresh schema named `test` in the database `FUNCTIOND_TEST_PG_URL`
/// names (its search path, and `functiond_test_<test>` as the application name), or `None`
/// with a note when none is set.
#[cfg(test)]
pub(crate) async fn test_schema_url(test: &str) -> Option<String> {
    let Ok(base) = std::env::var("FUNCTIOND_TEST_PG_URL") else {
        eprintln!("note: FUNCTIOND_TEST_PG_URL not set; skipping PostgreSQL part of {test}");
        return None;
    };
    let db = Database::connect(&base).await.unwrap();
    db.execute_script(&format!(
        "DROP SCHEMA IF EXISTS {test} CASCADE; CREATE SCHEMA {test};"
    ))
    .await
    .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(format!(
        "{base}{sep}options=-csearch_path%3D{test}&application_name=functiond_test_{test}"
    ))
}

pub(crate) fn is_sqlite_memory(url: &str) -> bool {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let (db, query) = rest.split_once('?').unwrap_or((rest, ""));
    db == ":memory:" || query.split('&').any(|kv| kv == "mode=memory")
}

/// A script error that means "this script handles transactions itself", so it must not run
/// inside our `BEGIN … COMMIT`.
fn manages_transactions(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            let m = db.message();
            m.contains("within a transaction") || m.contains("inside a transaction")
        }
        _ => false,
    }
}

/// Rows of one query, decoded as they arrive. See [`Database::stream`].
pub struct RowStream {
    columns: Arc<[Column]>,
    sql: Arc<str>,
    rows: Rows,
}

enum Rows {
    /// A SQLite file, read on a thread of its own ([`sqlite_stream`]).
    Batches {
        reader: sqlite_stream::Reader,
        current: std::vec::IntoIter<Vec<Cell>>,
    },
    /// `sqlite::memory:`, through the pool.
    Sqlite(BoxStream<'static, Result<SqliteRow, sqlx::Error>>),
    Postgres(BoxStream<'static, Result<PgRow, sqlx::Error>>),
}

impl RowStream {
    /// The result's columns, in order; known before the first row.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }
}

impl Stream for RowStream {
    type Item = Result<Vec<Cell>, DbError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let width = this.columns.len();
        let sql = &this.sql;
        let decoded = match &mut this.rows {
            Rows::Batches { reader, current } => loop {
                if let Some(row) = current.next() {
                    break Some(Ok(row));
                }
                match futures::ready!(reader.batches.poll_recv(cx)) {
                    Some(Ok(batch)) => *current = batch.into_iter(),
                    Some(Err(e)) => break Some(Err(e)),
                    None => break None,
                }
            },
            Rows::Sqlite(rows) => futures::ready!(rows.poll_next_unpin(cx)).map(|row| {
                let row = row.map_err(|e| DbError::from_sqlx(e, sql))?;
                let mut cells = Vec::with_capacity(width);
                sqlite::decode_row(&row, &mut cells).map(|()| cells)
            }),
            Rows::Postgres(rows) => futures::ready!(rows.poll_next_unpin(cx)).map(|row| {
                let row = row.map_err(|e| DbError::from_sqlx(e, sql))?;
                let mut cells = Vec::with_capacity(width);
                postgres::decode_row(&row, &mut cells).map(|()| cells)
            }),
        };
        Poll::Ready(decoded)
    }
}

#[cfg(test)]
mod tests;
