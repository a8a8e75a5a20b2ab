//! The activities a flow may call (`db`, `http`, `emit`), backed by the real database, an HTTP
//! client and the event store. One [`FlowHost`] is shared by all runs; it holds no per-run state.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::StreamExt;
use serde_json::{json, Map, Value};

use super::js::Host;
use crate::db::Database;

/// The largest HTTP response body a flow may read; larger ones fail the call.
pub const MAX_HTTP_RESPONSE_BYTES: usize = 10 * 1024 * 1024;
/// `http.request` timeout when the flow gives none.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Publishes events on behalf of flows (`emit`). Implemented by the event store.
pub trait EventSink: Send + Sync {
    /// Stores the event durably and returns its id.
    fn publish(
        &self,
        event_type: String,
        data: Value,
        source: String,
    ) -> BoxFuture<'static, Result<String, String>>;
}

#[derive(Clone)]
pub struct FlowHost {
    pub db: Database,
    pub http: reqwest::Client,
    pub events: Arc<dyn EventSink>,
    /// Who emits (`webhook:<name>`), recorded with the event.
    pub source: String,
}

impl FlowHost {
    /// The HTTP client flows share: no redirects to other schemes, bounded connect time.
    pub fn http_client() -> reqwest::Client {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("functiond/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default()
    }
}

impl Host for FlowHost {
    fn db_query(
        &self,
        sql: String,
        params: Vec<Value>,
    ) -> BoxFuture<'static, Result<Vec<Map<String, Value>>, String>> {
        let db = self.db.clone();
        Box::pin(async move {
            db.query_json(&sql, &params)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn db_execute(
        &self,
        sql: String,
        params: Vec<Value>,
    ) -> BoxFuture<'static, Result<u64, String>> {
        let db = self.db.clone();
        Box::pin(async move { db.execute(&sql, &params).await.map_err(|e| e.to_string()) })
    }

    fn http_request(&self, request: Value) -> BoxFuture<'static, Result<Value, String>> {
        let client = self.http.clone();
        Box::pin(async move { http_request(&client, request).await })
    }

    fn emit(&self, event_type: String, data: Value) -> BoxFuture<'static, Result<String, String>> {
        self.events.publish(event_type, data, self.source.clone())
    }
}

/// The `env(name)` values a flow may read: the variables it lists that are set now.
pub fn flow_env(flow: &crate::config::model::Flow) -> Vec<(String, String)> {
    flow.env
        .iter()
        .filter_map(|n| std::env::var(n).ok().map(|v| (n.clone(), v)))
        .collect()
}

/// `{url, method, headers, body, timeout_ms}` → `{status, headers, body, json}`. A string body is
/// sent as is; any other body as JSON with `content-type: application/json`. `json` is the parsed
/// body when it is JSON, else null.
async fn http_request(client: &reqwest::Client, request: Value) -> Result<Value, String> {
    let obj = request
        .as_object()
        .ok_or("http.request takes an object: { url, method, headers, body, timeout_ms }")?;
    let url = obj
        .get("url")
        .and_then(Value::as_str)
        .ok_or("http.request: `url` (a string) is required")?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!(
            "http.request: {url:?} is not an http:// or https:// URL"
        ));
    }
    let method = obj
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or("GET")
        .to_ascii_uppercase();
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|_| format!("http.request: bad method {method:?}"))?;
    let timeout = obj
        .get("timeout_ms")
        .and_then(Value::as_u64)
        .map_or(DEFAULT_HTTP_TIMEOUT, Duration::from_millis);
    let mut req = client.request(method, url).timeout(timeout);
    if let Some(headers) = obj.get("headers").and_then(Value::as_object) {
        for (k, v) in headers {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            req = req.header(k.as_str(), v);
        }
    }
    match obj.get("body") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => req = req.body(s.clone()),
        Some(other) => req = req.json(other),
    }
    let res = req
        .send()
        .await
        .map_err(|e| format!("http.request {url}: {}", error_chain(&e)))?;
    let status = res.status().as_u16();
    let mut headers = Map::new();
    for (k, v) in res.headers() {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        match headers.get_mut(k.as_str()) {
            Some(Value::String(prev)) => {
                prev.push_str(", ");
                prev.push_str(&v);
            }
            _ => {
                headers.insert(k.as_str().to_owned(), Value::String(v));
            }
        }
    }
    let mut body = Vec::new();
    let mut stream = res.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| format!("http.request {url}: reading the body: {}", error_chain(&e)))?;
        if body.len() + chunk.len() > MAX_HTTP_RESPONSE_BYTES {
            return Err(format!(
                "http.request {url}: the response is larger than {MAX_HTTP_RESPONSE_BYTES} bytes"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    let parsed = serde_json::from_str::<Value>(&text).unwrap_or(Value::Null);
    Ok(json!({ "status": status, "headers": headers, "body": text, "json": parsed }))
}

/// An error with its sources, `a: b: c`, as users need to see network failures.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}
