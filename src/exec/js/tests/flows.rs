//! Globals, responses, console, errors, activities, the script cache.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_globals_and_env() {
    let p = pool(1, 4);
    let out = p
        .run(job(r#"setWebhookResponse({ body: {
            method: METHOD, body: BODY, form: FORM_PARAMS, headers: HEADERS, query: QUERY_PARAMS,
            key: env("API_KEY"), missing: env("PATH") === undefined, odd: env(42) === undefined,
            event: typeof EVENT,
        }})"#))
        .await;
    assert_eq!(out.result, Ok(()));
    assert_eq!(
        body_json(&out),
        json!({
            "method": "POST", "body": { "name": "Ada", "n": [1, 2, 3] }, "form": {},
            "headers": { "content-type": "application/json", "x-a": "1, 2" },
            "query": { "q": "x", "tag": ["a", "b"] },
            "key": "secret", "missing": true, "odd": true, "event": "undefined",
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_flow_gets_event_only() {
    let p = pool(1, 4);
    let mut j = job(
        r#"setWebhookResponse({ body: { type: EVENT.type, id: EVENT.id, method: typeof METHOD } })"#,
    );
    j.globals = vec![(
        "EVENT".into(),
        json!({ "type": "order.paid", "id": "e1", "timestamp": "t" }),
    )];
    let out = p.run(j).await;
    assert_eq!(
        body_json(&out),
        json!({ "type": "order.paid", "id": "e1", "method": "undefined" })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_forms() {
    let p = pool(1, 4);
    let resp = |o: FlowOutcome| o.response;
    assert_eq!(resp(p.run(job("1 + 1")).await), None);
    assert_eq!(
        resp(p.run(job(r#"setWebhookResponse({ status: 201, body: "hi", headers: { "X-A": "b", "x-n": 5 } })"#)).await),
        Some(FlowResponse {
            status: 201,
            headers: vec![("X-A".into(), "b".into()), ("x-n".into(), "5".into())],
            body: FlowBody::Text("hi".into()),
        })
    );
    assert_eq!(
        resp(p.run(job("setWebhookResponse({})")).await),
        Some(FlowResponse {
            status: 200,
            headers: vec![],
            body: FlowBody::Empty
        })
    );
    for (src, body) in [
        (
            "setWebhookResponse({ body: { ok: true } })",
            r#"{"ok":true}"#,
        ),
        ("setWebhookResponse({ body: [1, 'a'] })", r#"[1,"a"]"#),
        ("setWebhookResponse({ body: null })", "null"),
        ("setWebhookResponse({ body: 5 })", "5"),
        (
            "setWebhookResponse({ status: 500, body: 1 }); setWebhookResponse({ body: 2 })",
            "2",
        ),
    ] {
        let out = p.run(job(src)).await;
        assert_eq!(
            out.response.map(|r| r.body),
            Some(FlowBody::Json(body.into())),
            "{src}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_validation_throws_type_error() {
    let p = pool(1, 4);
    for arg in [
        "{ status: 99 }",
        "{ status: 600 }",
        "{ status: '200' }",
        "{ status: 200.5 }",
        "{ headers: { 'bad name': 'x' } }",
        "{ headers: { 'x-a': 'a\\nb' } }",
        "{ headers: { 'x-a': 'é' } }",
        "{ headers: { 'x-a': {} } }",
        "{ headers: 'x' }",
        "null",
        "'text'",
        "{ body: () => 1 }",
    ] {
        let src = format!(
            "try {{ setWebhookResponse({arg}); }} catch (e) {{ console.log(e.name); }} setWebhookResponse({arg})"
        );
        let out = p.run(job(&src)).await;
        assert_eq!(console_text(&out), vec!["TypeError"], "{arg}");
        assert!(
            thrown(&out).0.starts_with("TypeError: setWebhookResponse"),
            "{arg}"
        );
        assert_eq!(out.response, None, "{arg}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_formats_and_orders() {
    let p = pool(1, 4);
    let out = p
        .run(job(r#"
            console.log("a", 1, { x: 1 }, [1, 2], null, undefined, true, 2n);
            console.info("i"); console.warn("w"); console.error("e"); console.debug("d");
            const c = {}; c.self = c; console.log(c);
            console.log(function named() {}, new Error("bad"));
            console.log("\ud800", Symbol("s"));
        "#))
        .await;
    assert_eq!(out.result, Ok(()));
    let levels: Vec<_> = out.console.iter().map(|l| l.level).collect();
    use ConsoleLevel::*;
    assert_eq!(levels, vec![Log, Info, Warn, Error, Debug, Log, Log, Log]);
    let text = console_text(&out);
    assert_eq!(text[0], r#"a 1 {"x":1} [1,2] null undefined true 2"#);
    assert_eq!(text[5], "[object Object]");
    assert!(
        text[6].starts_with("[Function: named] Error: bad\n"),
        "{}",
        text[6]
    );
    assert_eq!(text[7], "\u{FFFD} Symbol(s)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_is_truncated() {
    let p = pool(1, 4); // console_limit_bytes: 4096
    let out = p
        .run(job(
            r#"for (let i = 0; i < 1000; i++) console.log("x".repeat(99)); setWebhookResponse({})"#,
        ))
        .await;
    assert_eq!(out.result, Ok(()));
    let total: usize = out.console[..out.console.len() - 1]
        .iter()
        .map(|l| l.text.len())
        .sum();
    assert_eq!(total, 4096);
    assert!(out.console.len() < 50);
    let last = out.console.last().unwrap();
    assert_eq!(last.level, ConsoleLevel::Warn);
    assert!(last.text.starts_with("… truncated"));
    assert!(out.response.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thrown_values() {
    let p = pool(1, 4);
    let (message, stack) = thrown(
        &p.run(job("\nfunction f() { throw new Error('boom'); }\nf();"))
            .await,
    );
    assert_eq!(message, "Error: boom");
    let stack = stack.unwrap();
    assert!(
        stack.contains("at f (flow:2:"),
        "line of the script in {stack}"
    );
    for (src, expected) in [
        ("throw 'plain string'", "plain string"),
        ("throw {}", "{}"),
        ("throw { code: 7 }", r#"{"code":7}"#),
        ("throw null", "null"),
        ("throw undefined", "undefined"),
        ("throw 42", "42"),
        ("await Promise.reject(new TypeError('t'))", "TypeError: t"),
        ("class MyError extends Error { constructor(m) { super(m); this.name = 'MyError'; } }\nthrow new MyError('x')", "MyError: x"),
        ("undeclared = 1", "ReferenceError: undeclared is not defined"),
        ("null.x", "TypeError: cannot read property 'x' of null"),
        ("await new Promise(() => {})", "the flow awaits a promise that never settles"),
        ("const e = new Error(); e.message = 'later'; throw e", "Error: later"),
    ] {
        assert_eq!(thrown(&p.run(job(src)).await).0, expected, "{src}");
    }
    let out = p.run(job("with ({}) {}")).await;
    assert!(
        matches!(out.result, Err(FlowError::Compile { .. })),
        "{:?}",
        out.result
    );
    let out = p.run(job("let x = ;")).await;
    assert!(
        matches!(&out.result, Err(FlowError::Compile { message }) if message.contains("SyntaxError"))
    );
    // The slot is still fine.
    assert_eq!(p.run(job("setWebhookResponse({})")).await.result, Ok(()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activities_with_top_level_await() {
    let p = pool(1, 4);
    let host = Arc::new(TestHost::default());
    let out = p
        .run(job_with(host.clone(), r#"
            const rows = await db.query("select ?", [BODY.name]);
            const done = await db.execute("update", []);
            const res = await http.request({ url: "https://x.test", method: "POST", body: { a: 1 } });
            const id = await emit("order.paid", { n: 1 });
            emit("fire.and.forget", null);
            let failed;
            try { await db.query("fail"); } catch (e) { failed = e.message; }
            setWebhookResponse({ body: { rows, done, status: res.status, echoed: res.json.body, id, failed } });
        "#))
        .await;
    assert_eq!(out.result, Ok(()));
    assert_eq!(
        body_json(&out),
        json!({
            "rows": [{ "id": 1, "name": "a", "params": ["Ada"] }], "done": { "rows_affected": 3 },
            "status": 200, "echoed": { "a": 1 }, "id": "evt-1", "failed": "boom",
        })
    );
    assert_eq!(
        host.calls(),
        vec![
            r#"query select ? ["Ada"]"#.to_string(),
            "execute update []".into(),
            r#"http {"body":{"a":1},"method":"POST","url":"https://x.test"}"#.into(),
            r#"emit order.paid {"n":1}"#.into(),
            "emit fire.and.forget null".into(),
            "query fail []".into(),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_arguments_are_checked() {
    let p = pool(1, 4);
    for (call, expected) in [
        ("db.query(1)", "TypeError: db.query: sql must be a string"),
        (
            "db.query('x', {})",
            "TypeError: db.query: params must be an array",
        ),
        (
            "db.execute('x', 'y')",
            "TypeError: db.execute: params must be an array",
        ),
        (
            "http.request('x')",
            "TypeError: http.request expects an object { url, method, headers, body, timeout_ms }",
        ),
        (
            "http.request({})",
            "TypeError: http.request: url must be a string",
        ),
        ("emit('')", "TypeError: emit: type must not be empty"),
        (
            "emit('t', () => 1)",
            "TypeError: emit: data must be JSON-serializable",
        ),
    ] {
        assert_eq!(
            thrown(&p.run(job(&format!("await {call}"))).await).0,
            expected,
            "{call}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unawaited_activity_finishes_before_the_run_ends() {
    let p = pool(1, 4);
    let host = Arc::new(TestHost::default());
    let out = p
        .run(job_with(
            host.clone(),
            "emit('later', 1).then(id => console.log('emitted', id)); setWebhookResponse({})",
        ))
        .await;
    assert_eq!(out.result, Ok(()));
    assert_eq!(console_text(&out), vec!["emitted evt-1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_cache_compiles_once_per_version() {
    let p = pool(1, 4);
    let mut j = job("setWebhookResponse({ body: 1 })");
    for _ in 0..10 {
        assert_eq!(p.run(j.clone()).await.result, Ok(()));
    }
    assert_eq!(p.stats().compiles, 1);
    // An edit: same function, new version.
    j.source = Arc::from("setWebhookResponse({ body: 2 })");
    j.script_id = Arc::from("v2");
    assert_eq!(body_json(&p.run(j.clone()).await), json!(2));
    assert_eq!(body_json(&p.run(j.clone()).await), json!(2));
    assert_eq!(p.stats().compiles, 2);
    // A broken version is compiled once too; its error is remembered.
    let mut broken = j.clone();
    broken.source = Arc::from("let = ;");
    broken.script_id = Arc::from("v3");
    for _ in 0..3 {
        assert!(matches!(
            p.run(broken.clone()).await.result,
            Err(FlowError::Compile { .. })
        ));
    }
    assert_eq!(p.stats().compiles, 3);
    assert_eq!(body_json(&p.run(j.clone()).await), json!(2));
    assert_eq!(p.stats().compiles, 4);
    // Other globals for the same version: a new signature, compiled again.
    j.globals.pop();
    assert_eq!(body_json(&p.run(j).await), json!(2));
    assert_eq!(p.stats().compiles, 5);
    assert_eq!(p.stats().slots_built, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_cache_evicts_least_recently_used() {
    let p = JsPool::new(PoolConfig {
        workers: 1,
        scripts_per_slot: 2,
        ..PoolConfig::default()
    })
    .unwrap();
    let a = job("setWebhookResponse({ body: 'a' })");
    let b = job("setWebhookResponse({ body: 'b' })");
    let c = job("setWebhookResponse({ body: 'c' })");
    for j in [&a, &b, &a, &c, &a, &b] {
        assert_eq!(p.run(j.clone()).await.result, Ok(()));
    }
    // a, b, (a cached), c evicts b, (a cached), b evicts c.
    assert_eq!(p.stats().compiles, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_global_name_is_an_internal_error() {
    let p = pool(1, 4);
    let mut j = job("1");
    j.globals.push(("not valid".into(), json!(1)));
    assert!(matches!(p.run(j).await.result, Err(FlowError::Internal(_))));
    let mut j = job("1");
    j.globals.push(("class".into(), json!(1)));
    assert!(matches!(p.run(j).await.result, Err(FlowError::Internal(_))));
}

#[test]
fn check_syntax_reports_errors_without_running() {
    assert_eq!(
        check_syntax("const x = await db.query('x'); return;"),
        Ok(())
    );
    assert_eq!(
        check_syntax("let = ;"),
        Err("variable name expected".into())
    );
    assert_eq!(
        check_syntax("with (a) {}"),
        Err("invalid keyword: with".into())
    );
    // Breaking out of the wrapper runs nothing lasting, and stops at the deadline.
    let start = std::time::Instant::now();
    let _ = check_syntax("}; while (true) {}; (function () {");
    assert!(start.elapsed() < Duration::from_secs(5));
}
