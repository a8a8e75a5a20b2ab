//! Webhooks over real HTTP: every status code of SPEC §4, every global of SPEC §5, isolation,
//! limits, authentication with real signatures, activities, run history, and the `leads` example.

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

fn hook(name: &str, extra: &str, flow: &str) -> String {
    let flow = flow.replace('\\', "\\\\").replace('"', "\\\"");
    format!("name = \"{name}\"\ntype = \"webhook\"\n{extra}\n[flow]\ninline = \"\"\"{flow}\"\"\"\ntimeout_ms = 1000\n")
}

async fn send(
    s: &TestServer,
    method: &str,
    path: &str,
    ctype: Option<&str>,
    body: &str,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut req = s.client.request(
        reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
        format!("{}{path}", s.base),
    );
    if let Some(t) = ctype {
        req = req.header("content-type", t);
    }
    if !body.is_empty() {
        req = req.body(body.to_owned());
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, headers, res.text().await.expect("body"))
}

fn error_body(text: &str) -> Value {
    let v: Value =
        serde_json::from_str(text).unwrap_or_else(|_| panic!("not a JSON error body: {text}"));
    assert!(v["error"].is_string() && v["request_id"].is_string(), "{v}");
    v
}

#[tokio::test]
async fn status_codes_of_the_contract() {
    let s = TestServer::start(&[
        ("plain.toml", "name = \"plain\"\ntype = \"webhook\"\n[webhook]\nmethods = [\"POST\", \"PUT\"]\nmax_body_bytes = 64\n"),
        ("off.toml", "name = \"off\"\ntype = \"webhook\"\nenabled = false\n"),
        ("throws.toml", &hook("throws", "", "throw new Error('secret internals')")),
        ("loops.toml", &hook("loops", "", "while (true) {}")),
        ("silent.toml", &hook("silent", "", "const x = 1;")),
        ("custom.toml", &hook("custom", "", "setWebhookResponse({ status: 201, body: { id: 7 }, headers: { 'x-extra': 'yes' } })")),
        ("text.toml", &hook("text", "", "setWebhookResponse({ status: 202, body: 'plain text' })")),
    ])
    .await;
    // Default: no flow → 200, empty body.
    let (st, _, body) = send(
        &s,
        "POST",
        "/api/webhook/plain",
        Some("application/json"),
        "{\"a\":1}",
    )
    .await;
    assert_eq!((st, body.as_str()), (200, ""));
    // 404: unknown and disabled.
    for path in ["/api/webhook/nope", "/api/webhook/off"] {
        let (st, _, body) = send(&s, "POST", path, None, "").await;
        assert_eq!(st, 404, "{path}");
        error_body(&body);
    }
    // 405 with Allow.
    let (st, headers, body) = send(&s, "GET", "/api/webhook/plain", None, "").await;
    assert_eq!(st, 405);
    assert_eq!(headers["allow"], "POST, PUT");
    error_body(&body);
    let (st, _, _) = send(&s, "PATCH", "/api/webhook/plain", None, "").await;
    assert_eq!(st, 405);
    // 413.
    let (st, _, body) = send(
        &s,
        "POST",
        "/api/webhook/plain",
        Some("application/json"),
        &format!("\"{}\"", "x".repeat(100)),
    )
    .await;
    assert_eq!(st, 413);
    error_body(&body);
    // 415: a body of another type; parameters on the accepted types are fine.
    let (st, _, body) = send(
        &s,
        "POST",
        "/api/webhook/plain",
        Some("text/plain"),
        "hello",
    )
    .await;
    assert_eq!(st, 415);
    error_body(&body);
    let (st, _, _) = send(&s, "POST", "/api/webhook/plain", None, "hello").await;
    assert_eq!(st, 415);
    let (st, _, _) = send(
        &s,
        "PUT",
        "/api/webhook/plain",
        Some("application/json; charset=utf-8"),
        "[1]",
    )
    .await;
    assert_eq!(st, 200);
    // 400: malformed JSON and form.
    let (st, _, body) = send(
        &s,
        "POST",
        "/api/webhook/plain",
        Some("application/json"),
        "{\"a\":",
    )
    .await;
    assert_eq!(st, 400);
    assert!(error_body(&body)["error"]
        .as_str()
        .is_some_and(|e| e.contains("malformed JSON")));
    let (st, _, _) = send(
        &s,
        "POST",
        "/api/webhook/plain",
        Some("application/x-www-form-urlencoded"),
        "a=%zz",
    )
    .await;
    assert_eq!(st, 400);
    // 500 without the stack or the message.
    let (st, headers, body) = send(&s, "POST", "/api/webhook/throws", None, "").await;
    assert_eq!(st, 500);
    let err = error_body(&body);
    assert_eq!(
        err["request_id"],
        headers["x-request-id"].to_str().expect("ascii")
    );
    assert!(
        !body.contains("secret internals") && !body.contains("flow:"),
        "{body}"
    );
    // 504, and the server keeps answering right after.
    let started = Instant::now();
    let (st, _, body) = send(&s, "POST", "/api/webhook/loops", None, "").await;
    assert_eq!(st, 504);
    error_body(&body);
    assert!(started.elapsed() < Duration::from_secs(5));
    let (st, _, _) = send(&s, "POST", "/api/webhook/silent", None, "").await;
    assert_eq!(st, 200);
    // setWebhookResponse: JSON and text bodies, status, headers.
    let (st, headers, body) = send(&s, "POST", "/api/webhook/custom", None, "").await;
    assert_eq!((st, body.as_str()), (201, "{\"id\":7}"));
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["x-extra"], "yes");
    let (st, _, body) = send(&s, "POST", "/api/webhook/text", None, "").await;
    assert_eq!((st, body.as_str()), (202, "plain text"));
    s.stop().await;
}

#[tokio::test]
async fn every_global_as_the_spec_defines_it() {
    let echo = "setWebhookResponse({ status: 200, body: { METHOD, BODY, FORM_PARAMS, HEADERS, QUERY_PARAMS, allowed: env('FUNCTIOND_TEST_ALLOWED'), denied: env('PATH') ?? null } })";
    let s = TestServer::start(&[(
        "echo.toml",
        &hook("echo", "", echo).replace(
            "timeout_ms = 1000",
            "timeout_ms = 1000\nenv = [\"FUNCTIOND_TEST_ALLOWED\"]",
        ),
    )])
    .await;
    std::env::set_var("FUNCTIOND_TEST_ALLOWED", "yes");
    let res = s
        .client
        .post(format!("{}/api/webhook/echo?a=1&a=2&b=x%20y", s.base))
        .header("content-type", "application/json")
        .header("X-Custom", "one")
        .header("x-custom", "two")
        .body("{\"name\":\"Ana\",\"n\":[1,2]}")
        .send()
        .await
        .expect("request");
    let v: Value = res.json().await.expect("json");
    assert_eq!(v["METHOD"], "POST");
    assert_eq!(v["BODY"], json!({"name": "Ana", "n": [1, 2]}));
    assert_eq!(v["FORM_PARAMS"], json!({}));
    assert_eq!(v["HEADERS"]["x-custom"], "one, two");
    assert_eq!(v["HEADERS"]["content-type"], "application/json");
    assert_eq!(v["QUERY_PARAMS"], json!({"a": ["1", "2"], "b": "x y"}));
    assert_eq!(v["allowed"], "yes");
    assert_eq!(v["denied"], Value::Null);

    let (_, _, text) = send(
        &s,
        "PUT",
        "/api/webhook/echo",
        Some("application/x-www-form-urlencoded"),
        "name=Ana+Li&tag=a&tag=b",
    )
    .await;
    let v: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(v["METHOD"], "PUT");
    assert_eq!(v["BODY"], Value::Null);
    assert_eq!(
        v["FORM_PARAMS"],
        json!({"name": "Ana Li", "tag": ["a", "b"]})
    );

    let (_, _, text) = send(&s, "DELETE", "/api/webhook/echo", None, "").await;
    let v: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(
        (v["METHOD"].as_str(), &v["BODY"], &v["QUERY_PARAMS"]),
        (Some("DELETE"), &Value::Null, &json!({}))
    );
    s.stop().await;
}

#[tokio::test]
async fn runs_are_isolated_and_limits_do_not_poison_later_runs() {
    let s = TestServer::start(&[
        ("pollute.toml", &hook("pollute", "", "try { Array.prototype.leak = 1 } catch (e) {} try { globalThis.leak = 1 } catch (e) {} setWebhookResponse({ status: 200, body: 'ok' })")),
        ("probe.toml", &hook("probe", "", "setWebhookResponse({ status: 200, body: { proto: [].leak ?? null, global: globalThis.leak ?? null } })")),
        ("bomb.toml", &hook("bomb", "", "let a = []; while (true) a.push(new Array(100000).fill(1));").replace("timeout_ms = 1000", "timeout_ms = 5000\nmemory_mb = 16")),
    ])
    .await;
    for _ in 0..3 {
        assert_eq!(
            send(&s, "POST", "/api/webhook/pollute", None, "").await.0,
            200
        );
        let (_, _, body) = send(&s, "POST", "/api/webhook/probe", None, "").await;
        assert_eq!(body, "{\"proto\":null,\"global\":null}");
    }
    let (st, _, body) = send(&s, "POST", "/api/webhook/bomb", None, "").await;
    assert_eq!(st, 500);
    error_body(&body);
    let (st, _, body) = send(&s, "POST", "/api/webhook/probe", None, "").await;
    assert_eq!(
        (st, body.as_str()),
        (200, "{\"proto\":null,\"global\":null}")
    );
    s.stop().await;
}

#[tokio::test]
async fn too_many_concurrent_runs_get_503_with_retry_after() {
    let busy = "const end = Date.now() + 700; while (Date.now() < end) {} setWebhookResponse({ status: 200 })";
    let s = TestServer::start(&[(
        "busy.toml",
        &hook("busy", "[webhook]\nmax_concurrency = 1", busy)
            .replace("timeout_ms = 1000", "timeout_ms = 3000"),
    )])
    .await;
    let first = {
        let url = format!("{}/api/webhook/busy", s.base);
        let client = s.client.clone();
        tokio::spawn(async move { client.post(url).send().await.map(|r| r.status().as_u16()) })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (st, headers, body) = send(&s, "POST", "/api/webhook/busy", None, "").await;
    assert_eq!(st, 503);
    assert_eq!(headers["retry-after"], "1");
    error_body(&body);
    assert_eq!(first.await.expect("join").expect("request"), 200);
    s.stop().await;
}

fn hmac_hex(secret: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn authentication_with_real_credentials_and_signatures() {
    std::env::set_var("FUNCTIOND_TEST_HMAC", "It's a Secret to Everybody");
    std::env::set_var("FUNCTIOND_TEST_BEARER", "t0ken");
    let s = TestServer::start(&[
        ("signed.toml", "name = \"signed\"\ntype = \"webhook\"\n[webhook.auth]\nkind = \"hmac\"\nsecret = { env = \"FUNCTIOND_TEST_HMAC\" }\nheader = \"X-Hub-Signature-256\"\nprefix = \"sha256=\"\n"),
        ("bearer.toml", "name = \"bearer\"\ntype = \"webhook\"\n[webhook.auth]\nkind = \"bearer\"\nsecret = { env = \"FUNCTIOND_TEST_BEARER\" }\n"),
    ])
    .await;
    let body = "{\"action\":\"opened\"}";
    let good = format!("sha256={}", hmac_hex("It's a Secret to Everybody", body));
    let post = |sig: Option<String>, body: &'static str| {
        let mut req = s
            .client
            .post(format!("{}/api/webhook/signed", s.base))
            .header("content-type", "application/json")
            .body(body);
        if let Some(sig) = sig {
            req = req.header("X-Hub-Signature-256", sig);
        }
        req.send()
    };
    assert_eq!(
        post(Some(good.clone()), "{\"action\":\"opened\"}")
            .await
            .expect("request")
            .status(),
        200
    );
    assert_eq!(
        post(Some(good), "{\"action\":\"closed\"}")
            .await
            .expect("request")
            .status(),
        401
    );
    assert_eq!(
        post(None, "{\"action\":\"opened\"}")
            .await
            .expect("request")
            .status(),
        401
    );
    let res = post(Some("sha256=00".into()), "{}").await.expect("request");
    assert_eq!(res.status(), 401);
    error_body(&res.text().await.expect("body"));

    let url = format!("{}/api/webhook/bearer", s.base);
    assert_eq!(
        s.client
            .get(&url)
            .bearer_auth("t0ken")
            .send()
            .await
            .expect("request")
            .status(),
        200
    );
    assert_eq!(
        s.client
            .get(&url)
            .bearer_auth("t0ke")
            .send()
            .await
            .expect("request")
            .status(),
        401
    );
    assert_eq!(
        s.client.get(&url).send().await.expect("request").status(),
        401
    );
    s.stop().await;
}

#[tokio::test]
async fn activities_query_call_http_and_emit() {
    let flow = r#"
await db.execute("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT, at DATETIME)", []);
const { rows_affected } = await db.execute("INSERT INTO notes (body, at) VALUES (?, '2026-12-04 09:00:00')", [BODY.text]);
const rows = await db.query("SELECT id, body, at FROM notes WHERE body = ?", [BODY.text]);
const echoed = await http.request({ url: QUERY_PARAMS.target, method: "POST", body: { hello: "there" } });
const id = await emit("note.created", { note_id: rows[0].id });
setWebhookResponse({ status: 200, body: { rows_affected, rows, status: echoed.status, echoed: echoed.json, event: id } });
"#;
    let s = TestServer::start(&[
        (
            "notes.toml",
            &hook("notes", "", flow).replace("timeout_ms = 1000", "timeout_ms = 5000"),
        ),
        (
            "target.toml",
            &hook(
                "target",
                "",
                "setWebhookResponse({ status: 201, body: { got: BODY } })",
            ),
        ),
    ])
    .await;
    let target = format!("{}/api/webhook/target", s.base);
    let res = s
        .client
        .post(format!("{}/api/webhook/notes", s.base))
        .query(&[("target", target.as_str())])
        .json(&json!({"text": "hello ✓"}))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.expect("json");
    assert_eq!(v["rows_affected"], 1);
    assert_eq!(
        v["rows"],
        json!([{"id": 1, "body": "hello ✓", "at": "2026-12-04T09:00:00"}])
    );
    assert_eq!(v["status"], 201);
    assert_eq!(v["echoed"], json!({"got": {"hello": "there"}}));
    let event_id = v["event"].as_str().expect("event id");
    let event = s
        .running
        .state
        .store
        .event(event_id)
        .await
        .expect("query")
        .expect("stored");
    assert_eq!(event["type"], "note.created");
    assert_eq!(event["note_id"], 1);
    assert_eq!(event["id"], event_id);
    s.stop().await;
}

#[tokio::test]
async fn the_leads_example_stores_a_lead_and_answers_201_with_its_id() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("functions.d");
    let files: Vec<(String, String)> = ["leads.toml", "leads.js"]
        .iter()
        .map(|f| {
            (
                f.to_string(),
                std::fs::read_to_string(root.join(f)).expect("example"),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let s = TestServer::start(&refs).await;
    let url = format!("{}/api/webhook/leads", s.base);
    let res = s
        .client
        .post(&url)
        .form(&[
            ("name", "Ana Li"),
            ("email", "ana@example.com"),
            ("phone", "+598 99 123"),
            ("product", "fiber"),
        ])
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 201);
    assert_eq!(res.json::<Value>().await.expect("json"), json!({"id": 1}));
    let res = s
        .client
        .post(&url)
        .json(&json!({"name": "Bo", "email": "bo@example.com", "product": "tv"}))
        .send()
        .await
        .expect("request");
    assert_eq!(res.json::<Value>().await.expect("json"), json!({"id": 2}));
    let res = s
        .client
        .post(&url)
        .json(&json!({"name": "No Email"}))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 422);
    assert_eq!(
        s.client.get(&url).send().await.expect("request").status(),
        405
    );

    // The rows are in the application database, and the runs in the history.
    let db = functiond::db::Database::connect(&common::config(s.dir.path()).database_url)
        .await
        .expect("db");
    let rows = db
        .query_json(
            "SELECT name, email, phone, product FROM leads ORDER BY id",
            &[],
        )
        .await
        .expect("rows");
    assert_eq!(rows[0]["name"], "Ana Li");
    assert_eq!(rows[0]["phone"], "+598 99 123");
    assert_eq!(rows[1]["product"], "tv");
    let mut runs = Value::Null;
    for _ in 0..100 {
        runs = s.get_json("/api/functions/leads").await.1["runs"].clone();
        if runs.as_array().is_some_and(|r| r.len() == 3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(runs.as_array().map(Vec::len), Some(3), "{runs}");
    assert!(runs[2]["request_id"].is_string());
    assert!(
        runs[2]["output"]
            .as_str()
            .is_some_and(|o| o.contains("[info] new lead 1 fiber")),
        "{runs}"
    );
    s.stop().await;
}

#[tokio::test]
async fn db_activities_on_postgres() {
    let Some(url) = common::pg_url() else {
        return;
    };
    let table = format!("t_{}", uuid::Uuid::now_v7().simple());
    let flow = format!(
        r#"
await db.execute("CREATE TABLE {table} (id SERIAL PRIMARY KEY, amount NUMERIC(10,2), at TIMESTAMPTZ, doc JSONB, uid UUID, ok BOOLEAN, day DATE)", []);
const {{ rows_affected }} = await db.execute("INSERT INTO {table} (amount, at, doc, uid, ok, day) VALUES ($1, $2, $3::jsonb, $4::uuid, $5, $6::date)", ["12.50", "2026-12-04T09:00:00Z", {{ a: [1, 2] }}, "6f1c2a3e-1d2b-4c5d-8e9f-0a1b2c3d4e5f", true, "2026-12-04"]);
const rows = await db.query("SELECT id, amount, at, doc, uid, ok, day FROM {table} WHERE amount > $1", [10]);
setWebhookResponse({{ status: 200, body: {{ rows_affected, rows }} }});
"#
    );
    let s = TestServer::start_with(
        &[(
            "pg.toml",
            &hook("pg", "", &flow).replace("timeout_ms = 1000", "timeout_ms = 10000"),
        )],
        |cfg| {
            cfg.database_url = url.clone();
        },
    )
    .await;
    let (st, _, body) = send(&s, "POST", "/api/webhook/pg", None, "").await;
    assert_eq!(st, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["rows_affected"], 1);
    assert_eq!(
        v["rows"],
        json!([{"id": 1, "amount": 12.5, "at": "2026-12-04T09:00:00Z", "doc": {"a": [1, 2]}, "uid": "6f1c2a3e-1d2b-4c5d-8e9f-0a1b2c3d4e5f", "ok": true, "day": "2026-12-04"}])
    );
    s.stop().await;
}

#[tokio::test]
async fn basic_and_standard_webhooks_auth() {
    use base64::Engine;
    let key_b64 = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    std::env::set_var("FUNCTIOND_TEST_WHSEC", format!("whsec_{key_b64}"));
    std::env::set_var("FUNCTIOND_TEST_BASIC", "hook:pa55");
    let s = TestServer::start(&[
        ("std.toml", "name = \"std\"\ntype = \"webhook\"\n[webhook.auth]\nkind = \"standard-webhooks\"\nsecret = { env = \"FUNCTIOND_TEST_WHSEC\" }\n"),
        ("basic.toml", "name = \"basic\"\ntype = \"webhook\"\n[webhook.auth]\nkind = \"basic\"\nsecret = { env = \"FUNCTIOND_TEST_BASIC\" }\n"),
    ])
    .await;
    // Signed here with the hmac crate, independently of the server's code: v1,base64(HMAC-SHA256(key, id.ts.body)).
    let sign = |id: &str, ts: i64, body: &str| {
        let key = base64::engine::general_purpose::STANDARD
            .decode(key_b64)
            .expect("key");
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("key");
        mac.update(format!("{id}.{ts}.{body}").as_bytes());
        format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        )
    };
    let body = "{\"type\":\"invoice.paid\"}";
    let now = chrono::Utc::now().timestamp();
    let post = |id: &str, ts: i64, sig: String, body: &'static str| {
        s.client
            .post(format!("{}/api/webhook/std", s.base))
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sig)
            .body(body)
            .send()
    };
    let good = sign("msg_1", now, body);
    assert_eq!(
        post("msg_1", now, good.clone(), "{\"type\":\"invoice.paid\"}")
            .await
            .expect("req")
            .status(),
        200
    );
    // Key rotation: several signatures, one of them right.
    let rotated = format!("v1,AAAA {} v1,BBBB", good);
    assert_eq!(
        post("msg_1", now, rotated, "{\"type\":\"invoice.paid\"}")
            .await
            .expect("req")
            .status(),
        200
    );
    assert_eq!(
        post("msg_2", now, good.clone(), "{\"type\":\"invoice.paid\"}")
            .await
            .expect("req")
            .status(),
        401
    );
    let old = now - 600;
    assert_eq!(
        post(
            "msg_1",
            old,
            sign("msg_1", old, body),
            "{\"type\":\"invoice.paid\"}"
        )
        .await
        .expect("req")
        .status(),
        401
    );
    assert_eq!(
        post("msg_1", now, good, "{\"type\":\"invoice.void\"}")
            .await
            .expect("req")
            .status(),
        401
    );

    let url = format!("{}/api/webhook/basic", s.base);
    assert_eq!(
        s.client
            .get(&url)
            .basic_auth("hook", Some("pa55"))
            .send()
            .await
            .expect("req")
            .status(),
        200
    );
    assert_eq!(
        s.client
            .get(&url)
            .basic_auth("hook", Some("nope"))
            .send()
            .await
            .expect("req")
            .status(),
        401
    );
    s.stop().await;
}
