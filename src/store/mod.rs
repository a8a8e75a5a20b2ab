//! The runner's own tables in the state database (SQLite by default, PostgreSQL for several
//! replicas): run history and scheduler tick claims.
//!
//! Times are stored as milliseconds since the Unix epoch (`BIGINT`), the same in both databases.
//! Queries are written once with `$1` placeholders and turned into SQLite's numbered `?1` form.
//! A tick is claimed with an insert that conflicts on (function, tick), so a tick runs at most
//! once even when several replicas share one PostgreSQL state database.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use sqlx::{AssertSqlSafe, Row};

use crate::db::{Checkpointer, Database, DbError, SqliteTuning};

/// How many runs are kept per function.
pub const RUNS_KEPT_PER_FUNCTION: i64 = 1000;

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS functiond_runs (
        id TEXT PRIMARY KEY,
        function TEXT NOT NULL,
        kind TEXT NOT NULL,
        version TEXT NOT NULL,
        trigger TEXT NOT NULL,
        request_id TEXT,
        scheduled_for BIGINT,
        started_at BIGINT NOT NULL,
        finished_at BIGINT,
        status TEXT NOT NULL,
        duration_ms DOUBLE PRECISION,
        output TEXT,
        error TEXT,
        rows_affected BIGINT,
        file TEXT
    )",
    "CREATE INDEX IF NOT EXISTS functiond_runs_by_function ON functiond_runs (function, started_at)",
    "CREATE TABLE IF NOT EXISTS functiond_events (
        id TEXT PRIMARY KEY,
        type TEXT NOT NULL,
        payload TEXT NOT NULL,
        source TEXT NOT NULL,
        received_at BIGINT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS functiond_ticks (
        function TEXT NOT NULL,
        scheduled_for BIGINT NOT NULL,
        claimed_at BIGINT NOT NULL,
        PRIMARY KEY (function, scheduled_for)
    )",
];

/// A handle on the state database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    db: Database,
    /// Checkpoints a SQLite file's WAL while any handle lives.
    _checkpointer: Option<Arc<Checkpointer>>,
}

/// One run of a function, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    pub id: String,
    pub function: String,
    /// `webhook`, `event` or `scheduler`.
    pub kind: String,
    /// The content hash of the function version that ran.
    pub version: String,
    /// `schedule`, `catch_up`, `manual`, `request`, `event`.
    pub trigger: String,
    pub request_id: Option<String>,
    pub scheduled_for: Option<DateTime<Utc>>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub status: RunStatus,
    pub duration_ms: Option<f64>,
    /// Console or command output, bounded.
    pub output: Option<String>,
    pub error: Option<String>,
    pub rows_affected: Option<i64>,
    /// The file an export made (its name in the function's export folder).
    pub file: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    Timeout,
    Skipped,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Timeout => "timeout",
            RunStatus::Skipped => "skipped",
        }
    }

    fn parse(s: &str) -> RunStatus {
        match s {
            "running" => RunStatus::Running,
            "succeeded" => RunStatus::Succeeded,
            "timeout" => RunStatus::Timeout,
            "skipped" => RunStatus::Skipped,
            _ => RunStatus::Failed,
        }
    }
}

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// `$1` → `?1` for SQLite.
fn for_sqlite(sql: &str) -> String {
    sql.replace('$', "?")
}

/// Runs one statement with bound values on whichever database `$db` is, mapping the result with
/// the same code for both drivers.
macro_rules! on_db {
    ($db:expr, $sql:expr, |$q:ident, $pool:ident| $body:expr) => {
        match $db {
            Database::Sqlite($pool) => {
                let $q = sqlx::query(AssertSqlSafe(for_sqlite($sql)));
                $body.await
            }
            Database::Postgres($pool) => {
                let $q = sqlx::query(AssertSqlSafe($sql.to_owned()));
                $body.await
            }
        }
    };
}

/// Runs `$body` in a transaction on whichever database; `$q` turns SQL text into a query.
macro_rules! in_tx {
    ($db:expr, |$tx:ident, $q:ident| $body:block) => {
        match $db {
            Database::Sqlite(pool) => {
                async {
                    let $q = |s: &str| sqlx::query(AssertSqlSafe(for_sqlite(s)));
                    let mut $tx = pool.begin().await?;
                    let out = $body;
                    $tx.commit().await?;
                    Ok::<_, sqlx::Error>(out)
                }
                .await
            }
            Database::Postgres(pool) => {
                async {
                    let $q = |s: &str| sqlx::query(AssertSqlSafe(s.to_owned()));
                    let mut $tx = pool.begin().await?;
                    let out = $body;
                    $tx.commit().await?;
                    Ok::<_, sqlx::Error>(out)
                }
                .await
            }
        }
    };
}

mod events;
pub mod outbox;
mod writer;

pub use events::new_event;
pub use writer::RunWriter;

impl Store {
    /// Connects and creates the tables if they are missing.
    pub async fn open(url: &str) -> Result<Store, DbError> {
        // One SQLite connection, checkpoints off the commit path (see `SqliteTuning::state`).
        let db = Database::connect_with(url, SqliteTuning::state()).await?;
        for stmt in SCHEMA.iter().chain(outbox::OUTBOX_SCHEMA) {
            db.execute_script(stmt).await?;
        }
        let checkpointer = match &db {
            Database::Sqlite(pool) if !crate::db::is_sqlite_memory(url) => {
                let path = pool.connect_options().get_filename().to_owned();
                Some(Arc::new(Checkpointer::start(&path)?))
            }
            _ => None,
        };
        Ok(Store {
            db,
            _checkpointer: checkpointer,
        })
    }

    /// Claims a scheduler tick; `false` when it was already claimed (by this or another replica).
    pub async fn claim_tick(
        &self,
        function: &str,
        scheduled_for: DateTime<Utc>,
    ) -> Result<bool, DbError> {
        let sql = "INSERT INTO functiond_ticks (function, scheduled_for, claimed_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
        let now = millis(Utc::now());
        let affected = on_db!(&self.db, sql, |q, pool| async {
            q.bind(function)
                .bind(millis(scheduled_for))
                .bind(now)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(|e| DbError::from_sqlx(e, sql))?;
        Ok(affected == 1)
    }

    /// The latest claimed tick of `function`.
    pub async fn last_tick(&self, function: &str) -> Result<Option<DateTime<Utc>>, DbError> {
        let sql = "SELECT MAX(scheduled_for) AS t FROM functiond_ticks WHERE function = $1";
        let t: Option<i64> = on_db!(&self.db, sql, |q, pool| async {
            q.bind(function)
                .fetch_one(pool)
                .await
                .and_then(|row| row.try_get::<Option<i64>, _>("t"))
        })
        .map_err(|e| DbError::from_sqlx(e, sql))?;
        Ok(t.map(from_millis))
    }

    /// Inserts finished runs in one transaction (the webhook path records runs in batches).
    /// One prepared single-row statement, repeated: SQLite looks parameter names up linearly, so a
    /// many-row statement with thousands of numbered parameters costs quadratic time.
    pub async fn insert_runs(&self, runs: &[RunRecord]) -> Result<(), DbError> {
        if runs.is_empty() {
            return Ok(());
        }
        let sql = "INSERT INTO functiond_runs (id, function, kind, version, trigger, request_id, scheduled_for, started_at, finished_at, status, duration_ms, output, error, rows_affected, file) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) ON CONFLICT DO NOTHING";
        in_tx!(&self.db, |tx, q| {
            for r in runs {
                q(sql)
                    .bind(&r.id)
                    .bind(&r.function)
                    .bind(&r.kind)
                    .bind(&r.version)
                    .bind(&r.trigger)
                    .bind(&r.request_id)
                    .bind(r.scheduled_for.map(millis))
                    .bind(millis(r.started_at))
                    .bind(r.finished_at.map(millis))
                    .bind(r.status.as_str())
                    .bind(r.duration_ms)
                    .bind(&r.output)
                    .bind(&r.error)
                    .bind(r.rows_affected)
                    .bind(&r.file)
                    .execute(&mut *tx)
                    .await?;
            }
        })
        .map_err(|e| DbError::from_sqlx(e, sql))
    }

    /// Inserts a run (usually with status `running`, then [`Store::finish_run`]).
    pub async fn insert_run(&self, r: &RunRecord) -> Result<(), DbError> {
        self.insert_runs(std::slice::from_ref(r)).await
    }

    /// Records how a run ended.
    pub async fn finish_run(&self, r: &RunRecord) -> Result<(), DbError> {
        let sql = "UPDATE functiond_runs SET finished_at = $2, status = $3, duration_ms = $4, output = $5, error = $6, rows_affected = $7, file = $8 WHERE id = $1";
        on_db!(&self.db, sql, |q, pool| async {
            q.bind(&r.id)
                .bind(r.finished_at.map(millis))
                .bind(r.status.as_str())
                .bind(r.duration_ms)
                .bind(&r.output)
                .bind(&r.error)
                .bind(r.rows_affected)
                .bind(&r.file)
                .execute(pool)
                .await
                .map(|_| ())
        })
        .map_err(|e| DbError::from_sqlx(e, sql))?;
        Ok(())
    }

    /// The most recent runs of `function`, newest first.
    pub async fn recent_runs(&self, function: &str, limit: i64) -> Result<Vec<RunRecord>, DbError> {
        let sql = "SELECT id, function, kind, version, trigger, request_id, scheduled_for, started_at, finished_at, status, duration_ms, output, error, rows_affected, file FROM functiond_runs WHERE function = $1 ORDER BY started_at DESC, id DESC LIMIT $2";
        on_db!(&self.db, sql, |q, pool| async {
            let rows = q.bind(function).bind(limit).fetch_all(pool).await?;
            rows.iter()
                .map(|row| {
                    Ok(RunRecord {
                        id: row.try_get("id")?,
                        function: row.try_get("function")?,
                        kind: row.try_get("kind")?,
                        version: row.try_get("version")?,
                        trigger: row.try_get("trigger")?,
                        request_id: row.try_get("request_id")?,
                        scheduled_for: row
                            .try_get::<Option<i64>, _>("scheduled_for")?
                            .map(from_millis),
                        started_at: from_millis(row.try_get("started_at")?),
                        finished_at: row
                            .try_get::<Option<i64>, _>("finished_at")?
                            .map(from_millis),
                        status: RunStatus::parse(row.try_get::<&str, _>("status")?),
                        duration_ms: row.try_get("duration_ms")?,
                        output: row.try_get("output")?,
                        error: row.try_get("error")?,
                        rows_affected: row.try_get("rows_affected")?,
                        file: row.try_get("file")?,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()
        })
        .map_err(|e| DbError::from_sqlx(e, sql))
    }

    /// Deletes runs beyond the newest [`RUNS_KEPT_PER_FUNCTION`] of `function`, and tick claims
    /// older than a week (they only guard against doubles around the moment of the tick).
    pub async fn prune(&self, function: &str) -> Result<u64, DbError> {
        let sql = "DELETE FROM functiond_runs WHERE function = $1 AND id NOT IN (SELECT id FROM functiond_runs WHERE function = $1 ORDER BY started_at DESC, id DESC LIMIT $2)";
        let runs = on_db!(&self.db, sql, |q, pool| async {
            q.bind(function)
                .bind(RUNS_KEPT_PER_FUNCTION)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(|e| DbError::from_sqlx(e, sql))?;
        let cutoff = millis(Utc::now() - chrono::Duration::days(7));
        let sql = "DELETE FROM functiond_ticks WHERE function = $1 AND scheduled_for < $2 AND scheduled_for < (SELECT MAX(scheduled_for) FROM functiond_ticks WHERE function = $1)";
        on_db!(&self.db, sql, |q, pool| async {
            q.bind(function)
                .bind(cutoff)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(|e| DbError::from_sqlx(e, sql))?;
        Ok(runs)
    }
}

#[cfg(test)]
mod tests;
