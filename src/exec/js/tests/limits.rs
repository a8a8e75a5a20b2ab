//! Time and memory limits, recovery afterwards, concurrency and admission.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;

async fn run_limited(p: &JsPool, src: &str, timeout_ms: u64) -> FlowOutcome {
    let mut j = job(src);
    j.timeout = Duration::from_millis(timeout_ms);
    p.run(j).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_stop_the_run_and_the_next_run_works() {
    let p = pool(1, 4);
    for src in [
        "while (true) {}",
        "await null; Promise.resolve().then(() => { while (true) {} }); setWebhookResponse({})",
        "for (;;) await null",
        "try { while (true) {} } catch (e) {} finally { setWebhookResponse({}) }",
        "await db.query('slow')",
        "/(a+)+$/.test('a'.repeat(40) + '!')",
    ] {
        let start = Instant::now();
        let out = run_limited(&p, src, 100).await;
        assert_eq!(out.result, Err(FlowError::Timeout), "{src}");
        assert!(
            start.elapsed() < Duration::from_millis(450),
            "{src}: {:?}",
            start.elapsed()
        );
        let next = p.run(job("setWebhookResponse({ body: 'ok' })")).await;
        assert_eq!(next.result, Ok(()), "after {src}");
        assert_eq!(
            next.response.map(|r| r.body),
            Some(FlowBody::Text("ok".into()))
        );
    }
    let stats = p.stats();
    assert_eq!(stats.timeouts, 6);
    assert_eq!(stats.slots_dropped, 6, "every timed-out slot is replaced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_limit_stops_the_run_and_the_next_run_works() {
    let p = pool(1, 4);
    for src in [
        "let a = []; while (true) a.push(new Array(1e6))",
        "let a = []; try { while (true) a.push(new Array(1e6)); } catch (e) {} setWebhookResponse({})",
        "'x'.repeat(2 ** 28)",
        "const o = {}; for (let i = 0; ; i++) o['k' + i] = i",
        "new ArrayBuffer(1e9)",
    ] {
        let out = run_limited(&p, src, 5000).await;
        assert_eq!(out.result, Err(FlowError::MemoryLimit), "{src}");
        let next = p.run(job("const a = new Array(1e5).fill(1); setWebhookResponse({ body: a.length })")).await;
        assert_eq!(next.result, Ok(()), "after {src}");
        assert_eq!(body_json(&next), serde_json::json!(100000));
    }
    assert_eq!(p.stats().memory_limits, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_recursion_is_a_range_error_and_keeps_the_slot() {
    let p = pool(1, 4);
    let out = p
        .run(job("function f(n) { return f(n + 1) + 1; } f(0)"))
        .await;
    assert!(thrown(&out).0.starts_with("RangeError"), "{:?}", out.result);
    assert_eq!(p.run(job("setWebhookResponse({})")).await.result, Ok(()));
    assert_eq!(p.stats().slots_dropped, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_activity_does_not_hold_up_other_runs() {
    // One worker thread: the short runs must progress while the slow one awaits.
    let p = pool(1, 64);
    let host = Arc::new(TestHost::default());
    let slow = {
        let p = p.clone();
        let j = job_with(
            host,
            "const r = await db.query('slow'); setWebhookResponse({ body: r.length })",
        );
        tokio::spawn(async move {
            let out = p.run(j).await;
            (out, Instant::now())
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let start = Instant::now();
    let mut short = Vec::new();
    for i in 0..200 {
        let p = p.clone();
        short.push(tokio::spawn(async move {
            p.run(job(&format!("setWebhookResponse({{ body: {} }})", i % 7)))
                .await
        }));
    }
    for h in short {
        assert_eq!(h.await.unwrap().result, Ok(()));
    }
    let short_done = Instant::now();
    assert!(
        short_done - start < Duration::from_millis(300),
        "200 short runs took {:?}",
        short_done - start
    );
    let (out, slow_done) = slow.await.unwrap();
    assert_eq!(out.result, Ok(()));
    assert!(slow_done > short_done, "the short runs finished first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_run_answers_busy_when_all_slots_are_taken() {
    let p = pool(1, 2);
    assert_eq!(p.capacity(), 2);
    let slow = |p: JsPool| tokio::spawn(async move { p.run(job("await db.query('slow')")).await });
    let a = slow(p.clone());
    let b = slow(p.clone());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(p.available(), 0);
    let start = Instant::now();
    assert_eq!(p.try_run(job("1")).await.err(), Some(Busy));
    assert!(start.elapsed() < Duration::from_millis(50));
    assert_eq!(a.await.unwrap().result, Ok(()));
    assert_eq!(b.await.unwrap().result, Ok(()));
    assert!(p.try_run(job("1")).await.is_ok());
    assert_eq!(p.stats().busy, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_workers_share_the_load() {
    let p = pool(2, 8);
    p.warm_up().await.unwrap();
    let mut handles = Vec::new();
    for i in 0..100 {
        let p = p.clone();
        handles.push(tokio::spawn(async move {
            p.run(job(&format!(
                "await emit('t', {i}); setWebhookResponse({{ body: {i} }})"
            )))
            .await
        }));
    }
    for (i, h) in handles.into_iter().enumerate() {
        let out = h.await.unwrap();
        assert_eq!(body_json(&out), serde_json::json!(i));
    }
    assert!(p.stats().slots_built >= 2);
}

#[test]
fn run_from_a_plain_executor_polls_activities_in_place() {
    let p = pool(1, 2);
    let out = futures::executor::block_on(p.run(job(
        "const r = await db.execute('x'); setWebhookResponse({ body: r })",
    )));
    assert_eq!(body_json(&out), serde_json::json!({ "rows_affected": 3 }));
}
