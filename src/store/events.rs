//! Reading events back, and building them: an event is stored whole (`type`, `id`, `timestamp`
//! and its payload keys); `outbox.rs` writes them with their deliveries.

use chrono::{SecondsFormat, Utc};
use serde_json::{Map, Value};
use sqlx::{AssertSqlSafe, Row};

use super::{for_sqlite, Store};
use crate::db::{Database, DbError};

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
            event.insert("id".into(), Value::String(crate::id::new_id().to_string()));
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
