//! Tests against real QuickJS, with a canned [`Host`] that records its calls.

mod flows;
mod isolation;
mod limits;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{json, Map, Value};

use super::*;

/// Canned activities: `db.query("slow")` takes 500 ms, `"fail"` rejects with "boom".
#[derive(Default)]
pub(super) struct TestHost {
    pub(super) calls: Mutex<Vec<String>>,
}

impl TestHost {
    fn record(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }
    pub(super) fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

impl Host for TestHost {
    fn db_query(
        &self,
        sql: String,
        params: Vec<Value>,
    ) -> BoxFuture<'static, Result<Vec<Map<String, Value>>, String>> {
        self.record(format!("query {sql} {}", Value::Array(params.clone())));
        Box::pin(async move {
            match sql.as_str() {
                "slow" => tokio::time::sleep(Duration::from_millis(500)).await,
                "fail" => return Err("boom".to_string()),
                _ => {}
            }
            let row = json!({ "id": 1, "name": "a", "params": params });
            Ok(vec![row.as_object().cloned().unwrap_or_default()])
        })
    }

    fn db_execute(
        &self,
        sql: String,
        params: Vec<Value>,
    ) -> BoxFuture<'static, Result<u64, String>> {
        self.record(format!("execute {sql} {}", Value::Array(params)));
        Box::pin(async { Ok(3) })
    }

    fn http_request(&self, request: Value) -> BoxFuture<'static, Result<Value, String>> {
        self.record(format!("http {request}"));
        Box::pin(async move {
            Ok(json!({ "status": 200, "headers": {}, "body": "ok", "json": request }))
        })
    }

    fn emit(&self, event_type: String, data: Value) -> BoxFuture<'static, Result<String, String>> {
        self.record(format!("emit {event_type} {data}"));
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok("evt-1".to_string())
        })
    }
}

pub(super) fn pool(workers: usize, slots: usize) -> JsPool {
    JsPool::new(PoolConfig {
        workers,
        slots_per_worker: slots,
        console_limit_bytes: 4096,
        ..PoolConfig::default()
    })
    .unwrap()
}

pub(super) fn webhook_globals() -> Vec<(String, Value)> {
    vec![
        ("METHOD".into(), json!("POST")),
        ("BODY".into(), json!({ "name": "Ada", "n": [1, 2, 3] })),
        ("FORM_PARAMS".into(), json!({})),
        (
            "HEADERS".into(),
            json!({ "content-type": "application/json", "x-a": "1, 2" }),
        ),
        (
            "QUERY_PARAMS".into(),
            json!({ "q": "x", "tag": ["a", "b"] }),
        ),
    ]
}

pub(super) fn job_with(host: Arc<TestHost>, source: &str) -> FlowJob {
    let id = format!("{:x}", fxhash(source));
    FlowJob {
        name: Arc::from(format!("fn-{id}")),
        script_id: Arc::from(id),
        source: Arc::from(source),
        globals: webhook_globals(),
        env: vec![("API_KEY".into(), "secret".into())],
        timeout: Duration::from_secs(2),
        memory_limit_bytes: 32 << 20,
        host,
    }
}

pub(super) fn job(source: &str) -> FlowJob {
    job_with(Arc::new(TestHost::default()), source)
}

fn fxhash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// The JSON body of the response, parsed.
pub(super) fn body_json(outcome: &FlowOutcome) -> Value {
    match &outcome.response {
        Some(FlowResponse {
            body: FlowBody::Json(text),
            ..
        }) => serde_json::from_str(text).unwrap(),
        other => panic!("expected a JSON body, got {other:?} ({:?})", outcome.result),
    }
}

pub(super) fn console_text(outcome: &FlowOutcome) -> Vec<String> {
    outcome.console.iter().map(|l| l.text.clone()).collect()
}

pub(super) fn thrown(outcome: &FlowOutcome) -> (String, Option<String>) {
    match &outcome.result {
        Err(FlowError::Thrown { message, stack }) => (message.clone(), stack.clone()),
        other => panic!("expected Thrown, got {other:?}"),
    }
}
