//! Events end to end: ingest, schema validation, idempotency, URL delivery with signatures checked
//! by independent code, retries, dead letters and replay, flow subscribers, emit, the runner's own
//! events.

mod common;

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use common::TestServer;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

/// A real HTTP receiver on loopback: records every request, answers with queued statuses (200
/// when the queue is empty).
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(HeaderMap, String)>>>,
    answers: Arc<Mutex<VecDeque<u16>>>,
    /// How long each answer takes, in milliseconds.
    delay_ms: Arc<AtomicU64>,
}

impl Receiver {
    async fn start() -> (Receiver, String) {
        let r = Receiver::default();
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(r.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (r, url)
    }
    fn count(&self) -> usize {
        self.got.lock().expect("lock").len()
    }
    fn last(&self) -> (HeaderMap, String) {
        self.got
            .lock()
            .expect("lock")
            .last()
            .cloned()
            .expect("a request")
    }
    /// The distinct `webhook-id`s (event ids) received.
    fn ids(&self) -> HashSet<String> {
        self.got
            .lock()
            .expect("lock")
            .iter()
            .filter_map(|(h, _)| h.get("webhook-id")?.to_str().ok().map(str::to_owned))
            .collect()
    }
    fn answer(&self, statuses: &[u16]) {
        self.answers.lock().expect("lock").extend(statuses);
    }
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
    r.got.lock().expect("lock").push((headers, body));
    let delay = r.delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let code = r.answers.lock().expect("lock").pop_front().unwrap_or(200);
    StatusCode::from_u16(code).unwrap_or(StatusCode::OK)
}

async fn until<F: Fn() -> bool>(what: &str, f: F) {
    for _ in 0..250 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn post_event(s: &TestServer, body: &str) -> (u16, Value) {
    let res = s
        .client
        .post(format!("{}/api/events", s.base))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("request");
    let st = res.status().as_u16();
    (st, res.json().await.unwrap_or(Value::Null))
}

async fn event_state(s: &TestServer, id: &str) -> Value {
    s.get_json(&format!("/api/events/{id}")).await.1
}

async fn wait_delivery_status(s: &TestServer, id: &str, status: &str) -> Value {
    for _ in 0..250 {
        let v = event_state(s, id).await;
        if v["deliveries"]
            .as_array()
            .is_some_and(|d| !d.is_empty() && d.iter().all(|d| d["status"] == status))
        {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "deliveries of {id} never all {status}: {}",
        event_state(s, id).await
    );
}

fn subscriber(url: &str, extra: &str) -> String {
    format!("name = \"monitor\"\ntype = \"event\"\n[event]\ntypes = [\"agent_logged_in\"]\nurl = \"{url}\"\n[event.delivery]\ntimeout_ms = 2000\n{extra}\n")
}

const LOGIN: &str = r#"{"type": "agent_logged_in", "timestamp": "2026-12-04T09:00:00Z", "agent": "ana", "campaign": "sales"}"#;

#[tokio::test]
async fn delivered_signed_and_shown_with_its_attempts() {
    let (rx, url) = Receiver::start().await;
    std::env::set_var(
        "FUNCTIOND_TEST_SIGNING",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    );
    let s = TestServer::start(&[(
        "monitor.toml",
        &subscriber(&url, "secret = { env = \"FUNCTIOND_TEST_SIGNING\" }"),
    )])
    .await;
    let (st, v) = post_event(&s, LOGIN).await;
    assert_eq!(st, 202, "{v}");
    assert_eq!(v["deliveries"], 1);
    let id = v["id"].as_str().expect("id").to_owned();
    until("the delivery", || rx.count() == 1).await;
    let (headers, body) = rx.last();
    let event: Value = serde_json::from_str(&body).expect("JSON body");
    assert_eq!(event["type"], "agent_logged_in");
    assert_eq!(event["id"], id.as_str());
    assert_eq!(event["agent"], "ana");
    assert_eq!(event["timestamp"], "2026-12-04T09:00:00Z");
    // Standard Webhooks, checked here with the hmac crate: v1,base64(HMAC-SHA256(key, id.ts.body)).
    assert_eq!(headers["webhook-id"], id.as_str());
    let ts = headers["webhook-timestamp"].to_str().expect("ascii");
    let key = base64::engine::general_purpose::STANDARD
        .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        .expect("key");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("key");
    mac.update(format!("{id}.{ts}.{body}").as_bytes());
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    assert_eq!(headers["webhook-signature"], expected.as_str());

    let v = wait_delivery_status(&s, &id, "delivered").await;
    let d = &v["deliveries"][0];
    assert_eq!(
        (
            d["function"].as_str(),
            d["target"].as_str(),
            d["attempts"].as_i64()
        ),
        (Some("monitor"), Some("url"), Some(1))
    );
    assert_eq!(d["attempt_log"][0]["status_code"], 200);
    assert_eq!(v["event"]["agent"], "ana");
    s.stop().await;
}

/// A receiver that first answers `statuses`, a server whose `monitor` function sends it
/// `agent_logged_in` events with `delivery` settings, and the id of one such event posted.
async fn login_to_a_failing_monitor(
    statuses: &[u16],
    delivery: &str,
) -> (Receiver, TestServer, String) {
    let (rx, url) = Receiver::start().await;
    rx.answer(statuses);
    let s = TestServer::start(&[("monitor.toml", &subscriber(&url, delivery))]).await;
    let (st, v) = post_event(&s, LOGIN).await;
    assert_eq!(st, 202, "{v}");
    let id = v["id"].as_str().expect("id").to_owned();
    (rx, s, id)
}

#[tokio::test]
async fn retried_with_back_off_then_delivered() {
    let (rx, s, id) =
        login_to_a_failing_monitor(&[500, 503], "max_attempts = 5\nbackoff_ms = [0, 100, 200]")
            .await;
    let v = wait_delivery_status(&s, &id, "delivered").await;
    let log = v["deliveries"][0]["attempt_log"]
        .as_array()
        .expect("log")
        .clone();
    assert_eq!(
        log.iter()
            .map(|a| a["status_code"].as_i64())
            .collect::<Vec<_>>(),
        vec![Some(500), Some(503), Some(200)]
    );
    assert_eq!(
        log.iter().map(|a| a["ok"].as_bool()).collect::<Vec<_>>(),
        vec![Some(false), Some(false), Some(true)]
    );
    assert_eq!(rx.count(), 3);
    s.stop().await;
}

#[tokio::test]
async fn dead_lettered_then_replayed() {
    let (rx, s, id) =
        login_to_a_failing_monitor(&[500, 500], "max_attempts = 2\nbackoff_ms = [0, 50]").await;
    let v = wait_delivery_status(&s, &id, "dead").await;
    let delivery = v["deliveries"][0]["id"]
        .as_str()
        .expect("delivery id")
        .to_owned();
    assert!(
        v["deliveries"][0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("HTTP 500")),
        "{v}"
    );
    // Only a dead delivery can be replayed; unknown ids are 404.
    let retry = |d: String| {
        s.client
            .post(format!("{}/api/deliveries/{d}/retry", s.base))
            .send()
    };
    assert_eq!(retry("nope".into()).await.expect("req").status(), 404);
    assert_eq!(retry(delivery.clone()).await.expect("req").status(), 202);
    wait_delivery_status(&s, &id, "delivered").await;
    assert_eq!(retry(delivery).await.expect("req").status(), 409);
    assert_eq!(rx.count(), 3);
    s.stop().await;
}

#[tokio::test]
async fn the_same_id_twice_is_one_event_delivered_once() {
    let (rx, url) = Receiver::start().await;
    let s = TestServer::start(&[("monitor.toml", &subscriber(&url, ""))]).await;
    let body =
        r#"{"type": "agent_logged_in", "id": "evt-42", "agent": "ana", "campaign": "sales"}"#;
    let (st, first) = post_event(&s, body).await;
    assert_eq!(
        (st, first["id"].as_str(), first["duplicate"].as_bool()),
        (202, Some("evt-42"), Some(false))
    );
    let (st, second) = post_event(&s, body).await;
    assert_eq!((st, second["duplicate"].as_bool()), (202, Some(true)));
    wait_delivery_status(&s, "evt-42", "delivered").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.count(), 1);
    s.stop().await;
}

/// More events than the in-memory hand-off queue holds, faster than a slow subscriber takes
/// them: the overflow waits in the database and is claimed from there, and every event is
/// delivered exactly once (no delivery both handed off and claimed, none lost between the two).
#[tokio::test]
async fn a_burst_beyond_the_hand_off_queue_is_delivered_once_each() {
    let (rx, url) = Receiver::start().await;
    // 64 deliveries at a time, 50 ms each: about 1,300 a second, slower than ingest.
    rx.delay_ms.store(50, Ordering::Relaxed);
    let s = TestServer::start(&[("monitor.toml", &subscriber(&url, ""))]).await;
    const EVENTS: usize = 3000;
    let mut posters = tokio::task::JoinSet::new();
    for worker in 0..50 {
        let client = s.client.clone();
        let endpoint = format!("{}/api/events", s.base);
        posters.spawn(async move {
            for i in (worker..EVENTS).step_by(50) {
                let res = client
                    .post(&endpoint)
                    .header("content-type", "application/json")
                    .body(format!(r#"{{"type": "agent_logged_in", "id": "burst-{i}", "agent": "ana", "campaign": "sales"}}"#))
                    .send()
                    .await
                    .expect("request");
                assert_eq!(res.status().as_u16(), 202);
            }
        });
    }
    while let Some(r) = posters.join_next().await {
        r.expect("poster");
    }
    assert!(
        rx.count() < EVENTS,
        "the subscriber should still be behind when ingest is done (it got {})",
        rx.count()
    );
    for _ in 0..600 {
        if rx.count() >= EVENTS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Time for a double delivery to show up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ids = rx.ids();
    assert_eq!((rx.count(), ids.len()), (EVENTS, EVENTS));
    for i in [0, 1023, 1024, 2999] {
        assert!(
            ids.contains(&format!("burst-{i}")),
            "burst-{i} not delivered"
        );
    }
    s.stop().await;
}

/// A clean shutdown gives back the deliveries the worker was handed but had not started, so the
/// next start makes them at once instead of after their lease (60 s by default). Attempts cut off
/// by the drain deadline keep their claim until the lease runs out.
#[tokio::test]
async fn a_clean_shutdown_releases_deliveries_not_started() {
    let state = tempfile::tempdir().expect("tempdir");
    let state_url = format!("sqlite://{}", state.path().join("functiond.db").display());
    let (hung, hung_url) = Receiver::start().await;
    hung.delay_ms.store(60_000, Ordering::Relaxed);
    let tweak = |url: String| {
        move |c: &mut functiond::config::runner::RunnerConfig| {
            c.state_url = url;
            c.drain_timeout = Duration::from_millis(200);
        }
    };
    // A delivery timeout longer than the test: no slot frees up before the shutdown.
    let patient = subscriber(&hung_url, "").replace("timeout_ms = 2000", "timeout_ms = 60000");
    let s = TestServer::start_with(&[("monitor.toml", &patient)], tweak(state_url.clone())).await;
    for i in 0..100 {
        let body = format!(
            r#"{{"type": "agent_logged_in", "id": "queued-{i}", "agent": "ana", "campaign": "sales"}}"#
        );
        assert_eq!(post_event(&s, &body).await.0, 202);
    }
    // 64 attempts (every slot) hang at the receiver; 36 deliveries wait for a slot.
    until("64 attempts in flight", || hung.count() >= 64).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(hung.count(), 64);
    s.stop().await;

    let (rx, url) = Receiver::start().await;
    let s = TestServer::start_with(
        &[("monitor.toml", &subscriber(&url, ""))],
        tweak(state_url.clone()),
    )
    .await;
    until("the 36 deliveries not started", || rx.count() >= 36).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = hung.ids();
    let delivered = rx.ids();
    assert_eq!((rx.count(), delivered.len()), (36, 36));
    assert!(delivered.is_disjoint(&started));
    s.stop().await;
}

#[tokio::test]
async fn bad_events_are_refused_and_nothing_is_stored() {
    let s = TestServer::start(&[]).await;
    for (body, status, needle) in [
        ("not json", 400, "not JSON"),
        ("[1, 2]", 400, "JSON object"),
        ("{\"agent\": \"ana\"}", 400, "no `type`"),
        ("{\"type\": 5}", 400, "`type`"),
        ("{\"type\": \"x\", \"id\": 7}", 400, "`id`"),
        (
            r#"{"type": "agent_logged_in", "id": "bad-1", "campaign": "sales"}"#,
            422,
            "/: missing required key \"agent\"",
        ),
        (
            r#"{"type": "agent_logged_in", "id": "bad-2", "agent": 3, "campaign": "sales"}"#,
            422,
            "/agent: 3 is not of type",
        ),
    ] {
        let (st, v) = post_event(&s, body).await;
        assert_eq!(st, status, "{body}: {v}");
        assert!(
            v["error"].as_str().is_some_and(|e| e.contains(needle)),
            "{body}: {v}"
        );
        assert!(v["request_id"].is_string());
    }
    for id in ["bad-1", "bad-2"] {
        assert_eq!(s.get(&format!("/api/events/{id}")).await.status(), 404);
    }
    let big = format!(
        "{{\"type\": \"x\", \"pad\": \"{}\"}}",
        "x".repeat(1_100_000)
    );
    assert_eq!(post_event(&s, &big).await.0, 413);
    // An event type without a schema is accepted as is.
    assert_eq!(
        post_event(&s, r#"{"type": "custom.thing", "n": 1}"#)
            .await
            .0,
        202
    );
    s.stop().await;
}

#[tokio::test]
async fn flow_subscribers_get_event_and_throwing_flows_are_retried() {
    // Fails on its first run (no table yet), succeeds on the next: a retried delivery.
    let flow = r#"
const seen = await db.query("SELECT name FROM sqlite_master WHERE name = 'seen'", []);
await db.execute("CREATE TABLE IF NOT EXISTS seen (id TEXT, agent TEXT, type TEXT)", []);
if (seen.length === 0) throw new Error("first run fails on purpose");
await db.execute("INSERT INTO seen VALUES (?, ?, ?)", [EVENT.id, EVENT.agent, EVENT.type]);
"#;
    let file = format!(
        "name = \"recorder\"\ntype = \"event\"\n[event]\ntypes = [\"agent_logged_in\"]\n[event.delivery]\nbackoff_ms = [0, 50]\n[flow]\ninline = \"\"\"{flow}\"\"\"\n"
    );
    let emitter = "name = \"login\"\ntype = \"webhook\"\n[flow]\ninline = \"\"\"const id = await emit('agent_logged_in', { agent: BODY.agent, campaign: 'sales' }); setWebhookResponse({ status: 202, body: { id } })\"\"\"\n";
    let s = TestServer::start(&[("recorder.toml", &file), ("login.toml", emitter)]).await;
    let res = s
        .client
        .post(format!("{}/api/webhook/login", s.base))
        .json(&json!({"agent": "bo"}))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 202);
    let id = res.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let v = wait_delivery_status(&s, &id, "delivered").await;
    let d = &v["deliveries"][0];
    assert_eq!(
        (d["target"].as_str(), d["attempts"].as_i64()),
        (Some("flow"), Some(2))
    );
    assert!(
        d["attempt_log"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("first run fails on purpose")),
        "{v}"
    );
    let db = functiond::db::Database::connect(&common::config(s.dir.path()).database_url)
        .await
        .expect("db");
    let rows = db
        .query_json("SELECT id, agent, type FROM seen", &[])
        .await
        .expect("rows");
    assert_eq!(
        Value::Array(rows.into_iter().map(Value::Object).collect()),
        json!([{"id": id, "agent": "bo", "type": "agent_logged_in"}])
    );
    s.stop().await;
}

#[tokio::test]
async fn rejected_files_are_announced_as_events() {
    let (rx, url) = Receiver::start().await;
    let watcher = format!("name = \"ops\"\ntype = \"event\"\n[event]\ntypes = [\"function.rejected\"]\nurl = \"{url}\"\n");
    let s = TestServer::start(&[("ops.toml", &watcher)]).await;
    s.write(
        "broken.toml",
        "name = \"broken\"\ntype = \"webhook\"\nbogus = 1\n",
    );
    until("function.rejected", || rx.count() == 1).await;
    let (_, body) = rx.last();
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["type"], "function.rejected");
    assert_eq!(v["function"], "broken");
    assert_eq!(v["file"], "broken.toml");
    assert!(
        v["errors"][0]
            .as_str()
            .is_some_and(|e| e.contains("unknown key `bogus`")),
        "{v}"
    );
    s.stop().await;
}

#[tokio::test]
async fn postgres_as_the_state_database() {
    let Some(url) = common::pg_url() else {
        return;
    };
    let (rx, hook) = Receiver::start().await;
    rx.answer(&[502]);
    let s = TestServer::start_with(
        &[("monitor.toml", &subscriber(&hook, "backoff_ms = [0, 50]"))],
        |cfg| {
            cfg.state_url = url.clone();
        },
    )
    .await;
    let id = format!("pg-{}", uuid::Uuid::now_v7().simple());
    let body = format!(
        r#"{{"type": "agent_logged_in", "id": "{id}", "agent": "ana", "campaign": "sales"}}"#
    );
    let (st, v) = post_event(&s, &body).await;
    assert_eq!(st, 202, "{v}");
    assert_eq!(post_event(&s, &body).await.1["duplicate"], true);
    let v = wait_delivery_status(&s, &id, "delivered").await;
    assert_eq!(v["deliveries"][0]["attempts"], 2);
    assert_eq!(rx.count(), 2);
    s.stop().await;
}
