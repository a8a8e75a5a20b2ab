//! The event outbox: events, one delivery per (event, subscriber), and every attempt.
//!
//! An event and its deliveries are written in one transaction before the event is acknowledged,
//! so a crash after `202` loses nothing. Delivery workers claim due deliveries with a lease
//! (`locked_until`), so a worker that dies mid-delivery only delays it until the lease expires;
//! delivery is at least once.

use std::collections::HashSet;

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
    // Only pending deliveries are ever looked up by due time, so only they are indexed by it
    // (a delivered one leaves the index instead of moving within it). Lookups by event use the
    // unique key, whose first column is the event id. Earlier versions had both indexes in full.
    "DROP INDEX IF EXISTS functiond_deliveries_due",
    "DROP INDEX IF EXISTS functiond_deliveries_by_event",
    "CREATE INDEX IF NOT EXISTS functiond_deliveries_pending ON functiond_deliveries (next_attempt_at) WHERE status = 'pending'",
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
#[derive(Debug, Clone, Serialize)]
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

/// A recorded attempt: when, and how it went.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptView {
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub attempt: Attempt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryResult {
    Requeued,
    NotFound,
    NotDead,
}

/// A finished attempt on its way to the outbox: the delivery, how it went, what comes next.
pub type Finished = (Due, Attempt, Next);

/// What one outbox transaction writes.
pub struct OutboxWrite<'a> {
    /// New events (an id seen before is skipped).
    pub accept: &'a [Accept],
    /// How many of the new deliveries to claim for the caller.
    pub hand_off: usize,
    /// How long those claims hold.
    pub lease_ms: i64,
    /// Attempts that finished.
    pub finished: &'a [Finished],
}

/// What an outbox transaction did.
#[derive(Debug)]
pub struct OutboxWritten {
    /// Per accepted event: whether it is new.
    pub fresh: Vec<bool>,
    /// New deliveries claimed for the caller (at most `hand_off`).
    pub handed: Vec<Due>,
    /// New deliveries left for a claim.
    pub left: usize,
}

struct NewDelivery {
    id: String,
    /// Index in the batch.
    event: usize,
    function: String,
    target: &'static str,
    claimed: bool,
}

/// `$1, $2, …` starting at `from`.
fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The most rows in one multi-row statement.
const CHUNK: usize = 64;

/// Splits `n` rows into statement sizes: as many [`CHUNK`]s as fit, then powers of two. Few
/// distinct sizes means few distinct statements, so the prepared-statement cache keeps them all.
pub fn chunk_sizes(mut n: usize) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if n == 0 {
            return None;
        }
        let size = if n >= CHUNK { CHUNK } else { 1 << n.ilog2() };
        n -= size;
        Some(size)
    })
}

/// `head` + `n` rows of `row(first parameter of the row)` + `tail`. `$1` is shared by all rows;
/// each row has `per_row` parameters of its own.
fn multi_row(
    head: &str,
    n: usize,
    per_row: usize,
    row: impl Fn(usize) -> String,
    tail: &str,
) -> String {
    let rows: Vec<String> = (0..n).map(|i| row(2 + i * per_row)).collect();
    format!("{head}{}{tail}", rows.join(", "))
}

impl Store {
    /// One outbox transaction: stores new events with their deliveries and records attempts
    /// that finished. The first `hand_off` new deliveries are claimed in the same transaction
    /// (the caller gives them to the delivery worker in memory, so they need no claim query).
    ///
    /// Statements are multi-row (`VALUES (…), (…)`), in chunks of [`chunk_sizes`], so a batch
    /// is a handful of round trips to the database however many events it holds.
    pub async fn write_outbox(&self, w: &OutboxWrite<'_>) -> Result<OutboxWritten, DbError> {
        let now = millis(Utc::now());
        let lease_until = now + w.lease_ms;
        let events: Vec<(&str, &str, String, &str)> = w
            .accept
            .iter()
            .map(|a| {
                let field = |k: &str| a.event.get(k).and_then(Value::as_str).unwrap_or_default();
                (
                    field("id"),
                    field("type"),
                    serde_json::to_string(&a.event).unwrap_or_default(),
                    a.source.as_str(),
                )
            })
            .collect();
        let (fresh, deliveries) = in_tx!(&self.db, |tx, q| {
            // Events: the ids that come back are the new ones (an id seen before conflicts).
            let mut inserted = HashSet::new();
            let mut done = 0;
            for n in chunk_sizes(events.len()) {
                let sql = multi_row(
                    "INSERT INTO functiond_events (id, type, payload, source, received_at) VALUES ",
                    n,
                    4,
                    |b| format!("(${b}, ${}, ${}, ${}, $1)", b + 1, b + 2, b + 3),
                    " ON CONFLICT DO NOTHING RETURNING id",
                );
                let mut query = q(&sql).bind(now);
                for (id, kind, payload, source) in &events[done..done + n] {
                    query = query.bind(*id).bind(*kind).bind(payload).bind(*source);
                }
                for row in query.fetch_all(&mut *tx).await? {
                    inserted.insert(row.try_get::<String, _>(0)?);
                }
                done += n;
            }
            // The same id twice in one batch: only its first occurrence is new.
            let fresh: Vec<bool> = events.iter().map(|e| inserted.remove(e.0)).collect();

            // Deliveries of the new events; the first `hand_off` are claimed right away.
            let mut deliveries: Vec<NewDelivery> = Vec::new();
            for (i, a) in w.accept.iter().enumerate().filter(|(i, _)| fresh[*i]) {
                for (function, target) in &a.deliveries {
                    let claimed = deliveries.len() < w.hand_off;
                    deliveries.push(NewDelivery {
                        id: crate::id::new_id().to_string(),
                        event: i,
                        function: function.clone(),
                        target,
                        claimed,
                    });
                }
            }
            let mut done = 0;
            for n in chunk_sizes(deliveries.len()) {
                let sql = multi_row(
                    "INSERT INTO functiond_deliveries (id, event_id, function, target, status, attempts, next_attempt_at, locked_until, created_at) VALUES ",
                    n,
                    5,
                    |b| format!("(${b}, ${}, ${}, ${}, 'pending', 0, $1, ${}, $1)", b + 1, b + 2, b + 3, b + 4),
                    " ON CONFLICT DO NOTHING",
                );
                let mut query = q(&sql).bind(now);
                for d in &deliveries[done..done + n] {
                    query = query
                        .bind(&d.id)
                        .bind(events[d.event].0)
                        .bind(&d.function)
                        .bind(d.target)
                        .bind(d.claimed.then_some(lease_until));
                }
                query.execute(&mut *tx).await?;
                done += n;
            }

            // Attempts. `seq` counts on from the delivery's last attempt; a delivery twice in one
            // statement (a lease that ran out mid-attempt) gets consecutive numbers.
            let mut done = 0;
            for n in chunk_sizes(w.finished.len()) {
                let chunk = &w.finished[done..done + n];
                let sql = multi_row(
                    "INSERT INTO functiond_attempts (delivery_id, seq, at, ok, status_code, latency_ms, error, response) VALUES ",
                    n,
                    7,
                    |b| format!("(${b}, (SELECT COALESCE(MAX(seq), 0) FROM functiond_attempts WHERE delivery_id = ${b}) + ${}, $1, ${}, ${}, ${}, ${}, ${})", b + 1, b + 2, b + 3, b + 4, b + 5, b + 6),
                    "",
                );
                let mut query = q(&sql).bind(now);
                for (k, (due, attempt, _)) in chunk.iter().enumerate() {
                    let earlier = chunk[..k].iter().filter(|f| f.0.id == due.id).count() as i64;
                    query = query
                        .bind(&due.id)
                        .bind(earlier + 1)
                        .bind(i64::from(attempt.ok))
                        .bind(attempt.status_code)
                        .bind(attempt.latency_ms)
                        .bind(&attempt.error)
                        .bind(&attempt.response);
                }
                query.execute(&mut *tx).await?;
                done += n;
            }
            // Failed attempts one by one (they are few) …
            let update = "UPDATE functiond_deliveries SET attempts = attempts + 1, status = $2, next_attempt_at = $3, locked_until = NULL, last_error = $4 WHERE id = $1";
            for (due, attempt, next) in w.finished.iter().filter(|f| f.2 != Next::Delivered) {
                let (status, next_at) = match next {
                    Next::RetryAt(t) => ("pending", millis(*t)),
                    _ => ("dead", now),
                };
                q(update)
                    .bind(&due.id)
                    .bind(status)
                    .bind(next_at)
                    .bind(&attempt.error)
                    .execute(&mut *tx)
                    .await?;
            }
            // Then the delivered ones (the usual case) in multi-row updates: a delivery that
            // succeeded in any attempt is delivered.
            let delivered: Vec<&str> = w
                .finished
                .iter()
                .filter(|f| f.2 == Next::Delivered)
                .map(|f| f.0.id.as_str())
                .collect();
            let mut done = 0;
            for n in chunk_sizes(delivered.len()) {
                let sql = format!(
                    "UPDATE functiond_deliveries SET attempts = attempts + 1, status = 'delivered', next_attempt_at = $1, locked_until = NULL, last_error = NULL, delivered_at = $1 WHERE id IN ({})",
                    placeholders(2, n)
                );
                let mut query = q(&sql).bind(now);
                for id in &delivered[done..done + n] {
                    query = query.bind(*id);
                }
                query.execute(&mut *tx).await?;
                done += n;
            }
            (fresh, deliveries)
        })
        .map_err(|e| DbError::from_sqlx(e, ""))?;
        let created_at = from_millis(now);
        let mut handed = Vec::new();
        let mut left = 0;
        for d in deliveries {
            if !d.claimed {
                left += 1;
                continue;
            }
            let a = &w.accept[d.event];
            handed.push(Due {
                id: d.id,
                event_id: events[d.event].0.to_owned(),
                function: d.function,
                target: d.target.to_owned(),
                attempts: 0,
                event: a.event.clone(),
                created_at,
            });
        }
        Ok(OutboxWritten {
            fresh,
            handed,
            left,
        })
    }

    /// Gives claimed deliveries back (a worker stopping before it attempted them), so that the
    /// next worker takes them at once instead of after their lease.
    pub async fn release_claims(&self, ids: &[String]) -> Result<(), DbError> {
        let mut done = 0;
        for n in chunk_sizes(ids.len()) {
            let sql = format!(
                "UPDATE functiond_deliveries SET locked_until = NULL WHERE status = 'pending' AND id IN ({})",
                placeholders(1, n)
            );
            let chunk = &ids[done..done + n];
            on_db!(&self.db, sql.as_str(), |q, pool| async {
                let mut q = q;
                for id in chunk {
                    q = q.bind(id);
                }
                q.execute(pool).await.map(|_| ())
            })
            .map_err(|e| DbError::from_sqlx(e, &sql))?;
            done += n;
        }
        Ok(())
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
                            attempt: Attempt {
                                ok: r.try_get::<i64, _>("ok")? != 0,
                                status_code: r.try_get("status_code")?,
                                latency_ms: r.try_get("latency_ms")?,
                                error: r.try_get("error")?,
                                response: r.try_get("response")?,
                            },
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
