//! Events in the state database. An event is stored whole (`type`, `id`, `timestamp` and its
//! payload keys) before anyone is told it was accepted; the same id stored twice is one event.

use chrono::{SecondsFormat, Utc};
use futures::future::BoxFuture;
use serde_json::{Map, Value};
use sqlx::{AssertSqlSafe, Row};

use super::{for_sqlite, millis, Store};
use crate::db::{Database, DbError};
use crate::exec::host::EventSink;

impl Store {
    /// Stores `event` (an object with string `type` and `id`); `false` if that id already exists.
    pub async fn insert_event(
        &self,
        event: &Map<String, Value>,
        source: &str,
    ) -> Result<bool, DbError> {
        let id = event.get("id").and_then(Value::as_str).unwrap_or_default();
        let kind = event
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let payload = Value::Object(event.clone()).to_string();
        let sql = "INSERT INTO functiond_events (id, type, payload, source, received_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING";
        let now = millis(Utc::now());
        let affected = on_db!(&self.db, sql, |q, pool| async {
            q.bind(id)
                .bind(kind)
                .bind(&payload)
                .bind(source)
                .bind(now)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(|e| DbError::from_sqlx(e, sql))?;
        Ok(affected == 1)
    }
}

impl Store {
    /// The stored event with this id.
    pub async fn event(&self, id: &str) -> Result<Option<Value>, DbError> {
        let sql = "SELECT payload FROM functiond_events WHERE id = $1";
        let payload: Option<String> = on_db!(&self.db, sql, |q, pool| async {
            match q.bind(id).fetch_optional(pool).await? {
                Some(row) => row.try_get::<String, _>("payload").map(Some),
                None => Ok(None),
            }
        })
        .map_err(|e| DbError::from_sqlx(e, sql))?;
        Ok(payload.and_then(|p| serde_json::from_str(&p).ok()))
    }
}

/// Builds the event a flow's `emit(type, data)` publishes, the way `POST /api/events` reads one:
/// the keys of an object `data` are the payload (any other value goes under `data`); a string
/// `id` in it is the event's id (for idempotency), else one is made; `timestamp` likewise.
pub fn new_event(event_type: &str, data: Value) -> Result<Map<String, Value>, String> {
    let mut event = match data {
        Value::Object(m) => m,
        Value::Null => Map::new(),
        other => Map::from_iter([("data".to_owned(), other)]),
    };
    event.insert("type".into(), Value::String(event_type.to_owned()));
    match event.get("id") {
        None => {
            event.insert("id".into(), Value::String(uuid::Uuid::now_v7().to_string()));
        }
        Some(Value::String(s)) if !s.is_empty() => {}
        Some(_) => return Err("`id` must be a non-empty string (the event's id)".into()),
    }
    if !event.contains_key("timestamp") {
        let now = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        event.insert("timestamp".into(), Value::String(now));
    }
    Ok(event)
}

impl EventSink for Store {
    fn publish(
        &self,
        event_type: String,
        data: Value,
        source: String,
    ) -> BoxFuture<'static, Result<String, String>> {
        let store = self.clone();
        Box::pin(async move {
            if event_type.is_empty() {
                return Err("emit: the event type must be a non-empty string".into());
            }
            let event = new_event(&event_type, data).map_err(|e| format!("emit: {e}"))?;
            let id = event
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            store
                .insert_event(&event, &source)
                .await
                .map_err(|e| format!("emit: {e}"))?;
            Ok(id)
        })
    }
}
