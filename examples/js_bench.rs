//! Throughput and latency of the flow runtime (`functiond::exec::js::JsPool`).
//!
//! ```text
//! cargo run --release --example js_bench -- [callers=50] [secs=5] [workers=2] [rt_threads=2]
//! ```
//!
//! Runs the trivial flow `setWebhookResponse({status:200, body:{ok:true}})` with realistic
//! webhook globals (a small JSON body, 10 headers) through `JsPool::run` from `callers`
//! concurrent tasks on a multi-threaded tokio runtime, and prints runs/s and latency
//! percentiles. For comparison it also measures a fresh QuickJS runtime + context per run, and
//! the cost of building a hardened slot.

use std::sync::Arc;
use std::time::{Duration, Instant};

use functiond::exec::js::{BoxFuture, FlowJob, Host, JsPool, PoolConfig};
use serde_json::{json, Map, Value};

const FLOW: &str = "setWebhookResponse({status:200, body:{ok:true}})";

struct NoHost;

impl Host for NoHost {
    fn db_query(
        &self,
        _: String,
        _: Vec<Value>,
    ) -> BoxFuture<'static, Result<Vec<Map<String, Value>>, String>> {
        Box::pin(async { Ok(Vec::new()) })
    }
    fn db_execute(&self, _: String, _: Vec<Value>) -> BoxFuture<'static, Result<u64, String>> {
        Box::pin(async { Ok(0) })
    }
    fn http_request(&self, _: Value) -> BoxFuture<'static, Result<Value, String>> {
        Box::pin(async { Ok(Value::Null) })
    }
    fn emit(&self, _: String, _: Value) -> BoxFuture<'static, Result<String, String>> {
        Box::pin(async { Ok(String::new()) })
    }
}

fn globals() -> Vec<(String, Value)> {
    let headers: Map<String, Value> = [
        ("host", "127.0.0.1:8080"),
        ("user-agent", "curl/8.5.0"),
        ("accept", "*/*"),
        ("content-type", "application/json"),
        ("content-length", "96"),
        ("x-request-id", "0190f7d2-8c1a-7b3e-9f00-1234567890ab"),
        ("x-forwarded-for", "10.0.0.1"),
        ("x-forwarded-proto", "https"),
        ("accept-encoding", "gzip, deflate, br"),
        (
            "x-hub-signature-256",
            "sha256=5d5b09f6dcb2d53a5fffc60c4ac0d55fabdf556069d6631545f42aa6e3500f2e",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), json!(v)))
    .collect();
    vec![
        ("METHOD".into(), json!("POST")),
        (
            "BODY".into(),
            json!({ "order": { "id": 1234, "total": 99.5, "items": ["a", "b"] }, "customer": "ada@example.com" }),
        ),
        ("FORM_PARAMS".into(), json!({})),
        ("HEADERS".into(), Value::Object(headers)),
        ("QUERY_PARAMS".into(), json!({ "source": "bench" })),
    ]
}

fn job() -> FlowJob {
    FlowJob {
        name: Arc::from("bench"),
        script_id: Arc::from("v1"),
        source: Arc::from(FLOW),
        globals: globals(),
        env: vec![],
        timeout: Duration::from_secs(5),
        memory_limit_bytes: 16 << 20,
        host: Arc::new(NoHost),
    }
}

fn arg(n: usize, default: usize) -> usize {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(0)
}

async fn load(pool: &JsPool, callers: usize, duration: Duration) -> (usize, Vec<u32>, Duration) {
    let start = Instant::now();
    let end = start + duration;
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let pool = pool.clone();
            let job = job();
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(200_000);
                while Instant::now() < end {
                    let t = Instant::now();
                    let out = pool.run(job.clone()).await;
                    lat.push(t.elapsed().as_micros() as u32);
                    assert!(
                        out.result.is_ok() && out.response.is_some(),
                        "{:?}",
                        out.result
                    );
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("caller task"));
    }
    let elapsed = start.elapsed();
    all.sort_unstable();
    (all.len(), all, elapsed)
}

fn fresh_context_per_run(iterations: usize) -> Duration {
    let args = serde_json::to_string(&globals().into_iter().map(|(_, v)| v).collect::<Vec<_>>())
        .expect("json");
    let start = Instant::now();
    for _ in 0..iterations {
        let rt = rquickjs::Runtime::new().expect("runtime");
        let ctx = rquickjs::Context::full(&rt).expect("context");
        ctx.with(|ctx| {
            let values: rquickjs::Array = ctx.json_parse(args.clone()).and_then(|v| v.get()).expect("parse");
            let g = ctx.globals();
            for (i, (name, _)) in globals().iter().enumerate() {
                g.set(name.as_str(), values.get::<rquickjs::Value>(i).expect("get")).expect("set");
            }
            let out: rquickjs::Value = ctx
                .eval("let __r; function setWebhookResponse(r) { __r = r } setWebhookResponse({status:200, body:{ok:true}}); __r")
                .expect("eval");
            ctx.json_stringify(out).expect("stringify");
        });
    }
    start.elapsed() / iterations as u32
}

fn main() {
    let callers = arg(1, 50);
    let secs = arg(2, 5);
    let workers = arg(3, 2);
    let rt_threads = arg(4, 2);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(rt_threads)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        // Slot build cost: a fresh pool's first slot (prelude + freezing the realm).
        let mut builds = Vec::new();
        for _ in 0..20 {
            let pool = JsPool::new(PoolConfig { workers: 1, ..PoolConfig::default() }).expect("pool");
            let t = Instant::now();
            pool.warm_up().await.expect("warm up");
            builds.push(t.elapsed());
        }
        builds.sort();

        let pool = JsPool::new(PoolConfig { workers, ..PoolConfig::default() }).expect("pool");
        pool.warm_up().await.expect("warm up");
        // Warm-up load, then one sequential caller, then the concurrent load.
        let _ = load(&pool, callers, Duration::from_secs(1)).await;
        let (n1, lat1, el1) = load(&pool, 1, Duration::from_secs(2)).await;
        let (n, lat, elapsed) = load(&pool, callers, Duration::from_secs(secs as u64)).await;
        let stats = pool.stats();

        println!("flow: {FLOW}");
        println!("pool: {workers} JS workers, tokio {rt_threads} threads");
        println!(
            "{callers} callers: {} runs in {:.2} s = {:.0} runs/s; latency p50 {} µs, p90 {} µs, p99 {} µs, max {} µs",
            n,
            elapsed.as_secs_f64(),
            n as f64 / elapsed.as_secs_f64(),
            percentile(&lat, 0.5),
            percentile(&lat, 0.9),
            percentile(&lat, 0.99),
            lat.last().copied().unwrap_or(0),
        );
        println!(
            "1 caller: {:.0} runs/s; latency p50 {} µs, p99 {} µs",
            n1 as f64 / el1.as_secs_f64(),
            percentile(&lat1, 0.5),
            percentile(&lat1, 0.99),
        );
        println!(
            "slots built {}, compiles {}, runs {}",
            stats.slots_built, stats.compiles, stats.runs
        );
        println!("hardened slot build (first slot of a new pool): p50 {:?}", builds[builds.len() / 2]);
    });
    let fresh = fresh_context_per_run(2000);
    println!(
        "fresh QuickJS runtime + context per run (same flow, same globals): {fresh:?} per run"
    );
}
