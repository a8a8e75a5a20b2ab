//! The event outbox: events, one delivery per (event, subscriber), and every attempt.
//!
//! An event and its deliveries are written in one transaction before the event is acknowledged,
//! so a crash after `202` loses nothing. Delivery workers claim due deliveries with a lease
//! (`locked_until`), so a worker that dies mid-delivery only delays it until the lease expires;
//! delivery is at least once.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::{AssertSqlSafe, Row};

use super::{for_sqlite, from_millis, millis, Store};
use crate::db::{Database, DbError};

pub const OUTBOX_SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS functiond_deliveries (
        id TEXT PRIMARY KEY,
        event_id TEXT NOT NULL,
        function TEXT NOT NULL,
        target TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts BIGINT NOT NULL,
        next_attempt_at BIGINT NOT NULL,
        locked_until BIGINT,
        last_error TEXT,
        created_at BIGINT NOT NULL,
        delivered_at BIGINT,
        UNIQUE (event_id, function, target)
    )",
    "CREATE INDEX IF NOT EXISTS functiond_deliveries_due ON functiond_deliveries (status, next_attempt_at)",
    "CREATE INDEX IF NOT EXISTS functiond_deliveries_by_event ON functiond_deliveries (event_id)",
    "CREATE TABLE IF NOT EXISTS functiond_attempts (
        delivery_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        at BIGINT NOT NULL,
        ok BIGINT NOT NULL,
        status_code BIGINT,
        latency_ms DOUBLE PRECISION NOT NULL,
        error TEXT,
        response TEXT,
        PRIMARY KEY (delivery_id, seq)
    )",
];

/// An event to accept, with the subscribers it goes to: (function, target) where target is
/// `flow` or `url`.
#[derive(Debug, Clone)]
pub struct Accept {
    pub event: Map<String, Value>,
    pub source: String,
    pub deliveries: Vec<(String, &'static str)>,
}

/// A delivery claimed for an attempt.
#[derive(Debug, Clone)]
pub struct Due {
    pub id: String,
    pub event_id: String,
    pub function: String,
    pub target: String,
    /// Attempts made before this one.
    pub attempts: i64,
    pub event: Map<String, Value>,
    pub created_at: DateTime<Utc>,
}

/// How an attempt went.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub ok: bool,
    pub status_code: Option<i64>,
    pub latency_ms: f64,
    pub error: Option<String>,
    pub response: Option<String>,
}

/// What happens to the delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Delivered,
    RetryAt(DateTime<Utc>),
    Dead,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeliveryView {
    pub id: String,
    pub function: String,
    pub target: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub attempt_log: Vec<AttemptView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttemptView {
    pub at: DateTime<Utc>,
    pub ok: bool,
    pub status_code: Option<i64>,
    pub latency_ms: f64,
    pub error: Option<String>,
    pub response: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryResult {
    Requeued,
    NotFound,
    NotDead,
}

/// `$1, $2, …` starting at `from`.
fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Store {
    /// Stores each event and its deliveries in one transaction. Returns, per event, whether it
    /// is new (`false`: that id was accepted before; nothing is added).
    pub async fn accept(&self, batch: &[Accept]) -> Result<Vec<bool>, DbError> {
        let now = millis(Utc::now());
        let ins_event = "INSERT INTO functiond_events (id, type, payload, source, received_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING";
        let ins_delivery = "INSERT INTO functiond_deliveries (id, event_id, function, target, status, attempts, next_attempt_at, created_at) VALUES ($1, $2, $3, $4, 'pending', 0, $5, $5) ON CONFLICT DO NOTHING";
        in_tx!(&self.db, |tx, q| {
            let mut fresh = Vec::with_capacity(batch.len());
            for a in batch {
                let id = a
                    .event
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let kind = a
                    .event
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let payload = Value::Object(a.event.clone()).to_string();
                let inserted = q(ins_event)
                    .bind(id)
                    .bind(kind)
                    .bind(&payload)
                    .bind(&a.source)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 1;
                if inserted {
                    for (function, target) in &a.deliveries {
                        q(ins_delivery)
                            .bind(crate::id::new_id().to_string())
                            .bind(id)
                            .bind(function)
                            .bind(*target)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                fresh.push(inserted);
            }
            fresh
        })
        .map_err(|e| DbError::from_sqlx(e, ins_event))
    }

    /// Claims up to `limit` due deliveries for `lease_ms`.
    pub async fn claim_due(&self, limit: i64, lease_ms: i64) -> Result<Vec<Due>, DbError> {
        let now = millis(Utc::now());
        // PostgreSQL: skip rows another replica is claiming right now instead of claiming them
        // twice. SQLite has one writer at a time, so the plain form is enough there.
        let lock = match self.db {
            Database::Postgres(_) => " FOR UPDATE SKIP LOCKED",
            Database::Sqlite(_) => "",
        };
        let claim = format!("UPDATE functiond_deliveries SET locked_until = $1 WHERE id IN (SELECT id FROM functiond_deliveries WHERE status = 'pending' AND next_attempt_at <= $2 AND (locked_until IS NULL OR locked_until < $2) ORDER BY next_attempt_at LIMIT $3{lock}) RETURNING id, event_id, function, target, attempts, created_at");
        let claim = claim.as_str();
        let claimed: Vec<(String, String, String, String, i64, i64)> =
            on_db!(&self.db, claim, |q, pool| async {
                let rows = q
                    .bind(now + lease_ms)
                    .bind(now)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?;
                rows.iter()
                    .map(|r| {
                        Ok((
                            r.try_get("id")?,
                            r.try_get("event_id")?,
                            r.try_get("function")?,
                            r.try_get("target")?,
                            r.try_get::<i64, _>("attempts")?,
                            r.try_get::<i64, _>("created_at")?,
                        ))
                    })
                    .collect::<Result<Vec<_>, sqlx::Error>>()
            })
            .map_err(|e| DbError::from_sqlx(e, claim))?;
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        let mut ids: Vec<&str> = claimed.iter().map(|c| c.1.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let select = format!(
            "SELECT id, payload FROM functiond_events WHERE id IN ({})",
            placeholders(1, ids.len())
        );
        let select = select.as_str();
        let payloads: Vec<(String, String)> = on_db!(&self.db, select, |q, pool| async {
            let mut q = q;
            for id in &ids {
                q = q.bind(*id);
            }
            let rows = q.fetch_all(pool).await?;
            rows.iter()
                .map(|r| Ok((r.try_get("id")?, r.try_get("payload")?)))
                .collect::<Result<Vec<_>, sqlx::Error>>()
        })
        .map_err(|e| DbError::from_sqlx(e, select))?;
        let payloads: std::collections::HashMap<String, Map<String, Value>> = payloads
            .into_iter()
            .filter_map(|(id, p)| match serde_json::from_str(&p) {
                Ok(Value::Object(m)) => Some((id, m)),
                _ => None,
            })
            .collect();
        Ok(claimed
            .into_iter()
            .filter_map(|(id, event_id, function, target, attempts, created)| {
                let event = payloads.get(&event_id)?.clone();
                Some(Due {
                    id,
                    event_id,
                    function,
                    target,
                    attempts,
                    event,
                    created_at: from_millis(created),
                })
            })
            .collect())
    }

    /// Records attempts and moves their deliveries on, all in one transaction: delivery results
    /// are batched like ingest, so they do not queue for the write lock one by one.
    pub async fn finish_attempts(&self, results: &[(Due, Attempt, Next)]) -> Result<(), DbError> {
        if results.is_empty() {
            return Ok(());
        }
        let now = millis(Utc::now());
        let log = "INSERT INTO functiond_attempts (delivery_id, seq, at, ok, status_code, latency_ms, error, response) VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM functiond_attempts WHERE delivery_id = $1), $2, $3, $4, $5, $6, $7)";
        let update = "UPDATE functiond_deliveries SET attempts = attempts + 1, status = $2, next_attempt_at = $3, locked_until = NULL, last_error = $4, delivered_at = $5 WHERE id = $1";
        in_tx!(&self.db, |tx, q| {
            for (due, attempt, next) in results {
                let (status, next_at, delivered) = match next {
                    Next::Delivered => ("delivered", now, Some(now)),
                    Next::RetryAt(t) => ("pending", millis(*t), None),
                    Next::Dead => ("dead", now, None),
                };
                q(log)
                    .bind(&due.id)
                    .bind(now)
                    .bind(i64::from(attempt.ok))
                    .bind(attempt.status_code)
                    .bind(attempt.latency_ms)
                    .bind(&attempt.error)
                    .bind(&attempt.response)
                    .execute(&mut *tx)
                    .await?;
                q(update)
                    .bind(&due.id)
                    .bind(status)
                    .bind(next_at)
                    .bind(if attempt.ok {
                        None
                    } else {
                        attempt.error.clone()
                    })
                    .bind(delivered)
                    .execute(&mut *tx)
                    .await?;
            }
        })
        .map_err(|e| DbError::from_sqlx(e, update))
    }

    /// A dead-lettered delivery back to pending, due now, with a fresh attempt budget.
    pub async fn retry_delivery(&self, id: &str) -> Result<RetryResult, DbError> {
        let sql = "UPDATE functiond_deliveries SET status = 'pending', attempts = 0, next_attempt_at = $2, locked_until = NULL WHERE id = $1 AND status = 'dead'";
        let now = millis(Utc::now());
        let n = on_db!(&self.db, sql, |q, pool| async {
            q.bind(id)
                .bind(now)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(|e| DbError::from_sqlx(e, sql))?;
        if n == 1 {
            return Ok(RetryResult::Requeued);
        }
        let sql = "SELECT status FROM functiond_deliveries WHERE id = $1";
        let exists = on_db!(&self.db, sql, |q, pool| async {
            q.bind(id).fetch_optional(pool).await.map(|r| r.is_some())
        })
        .map_err(|e| DbError::from_sqlx(e, sql))?;
        Ok(if exists {
            RetryResult::NotDead
        } else {
            RetryResult::NotFound
        })
    }

    /// The deliveries of an event, with their attempts.
    pub async fn deliveries_of(&self, event_id: &str) -> Result<Vec<DeliveryView>, DbError> {
        let sql = "SELECT id, function, target, status, attempts, next_attempt_at, last_error, delivered_at FROM functiond_deliveries WHERE event_id = $1 ORDER BY function, target";
        let mut views: Vec<DeliveryView> = on_db!(&self.db, sql, |q, pool| async {
            let rows = q.bind(event_id).fetch_all(pool).await?;
            rows.iter()
                .map(|r| {
                    let status: String = r.try_get("status")?;
                    Ok(DeliveryView {
                        id: r.try_get("id")?,
                        function: r.try_get("function")?,
                        target: r.try_get("target")?,
                        next_attempt_at: (status == "pending")
                            .then(|| r.try_get::<i64, _>("next_attempt_at").map(from_millis))
                            .transpose()?,
                        status,
                        attempts: r.try_get("attempts")?,
                        last_error: r.try_get("last_error")?,
                        delivered_at: r
                            .try_get::<Option<i64>, _>("delivered_at")?
                            .map(from_millis),
                        attempt_log: Vec::new(),
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()
        })
        .map_err(|e| DbError::from_sqlx(e, sql))?;
        let sql = "SELECT delivery_id, at, ok, status_code, latency_ms, error, response FROM functiond_attempts WHERE delivery_id IN (SELECT id FROM functiond_deliveries WHERE event_id = $1) ORDER BY delivery_id, seq";
        let attempts: Vec<(String, AttemptView)> = on_db!(&self.db, sql, |q, pool| async {
            let rows = q.bind(event_id).fetch_all(pool).await?;
            rows.iter()
                .map(|r| {
                    Ok((
                        r.try_get("delivery_id")?,
                        AttemptView {
                            at: from_millis(r.try_get("at")?),
                            ok: r.try_get::<i64, _>("ok")? != 0,
                            status_code: r.try_get("status_code")?,
                            latency_ms: r.try_get("latency_ms")?,
                            error: r.try_get("error")?,
                            response: r.try_get("response")?,
                        },
                    ))
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()
        })
        .map_err(|e| DbError::from_sqlx(e, sql))?;
        for (delivery, a) in attempts {
            if let Some(v) = views.iter_mut().find(|v| v.id == delivery) {
                v.attempt_log.push(a);
            }
        }
        Ok(views)
    }
}
