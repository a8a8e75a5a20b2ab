//! The status surface over real HTTP on port 0: functions API, health, readiness, metrics,
//! request ids, JSON errors, the API token.

mod common;

use common::{webhook, TestServer};

const SCHEDULER: &str = r#"
name = "report"
type = "scheduler"
[schedule]
minutes = 0
hours = 9
days_of_month = 1
timezone = "America/Montevideo"
[task]
kind = "sql"
sql = "SELECT 1"
"#;

#[tokio::test]
async fn functions_are_listed_with_status_hash_and_schedule() {
    let s = TestServer::start(&[
        ("hook.toml", &webhook("hook")),
        ("sub/report.toml", SCHEDULER),
        (
            "broken.toml",
            "name = \"broken\"\ntype = \"webhook\"\nbogus = true\n",
        ),
    ])
    .await;
    let (status, body) = s.get_json("/api/functions").await;
    assert_eq!(status, 200);
    let functions = body["functions"].as_array().expect("array");
    assert_eq!(functions.len(), 3, "{body:#}");
    let hook = functions
        .iter()
        .find(|f| f["name"] == "hook")
        .expect("hook listed");
    assert_eq!(hook["type"], "webhook");
    assert_eq!(hook["enabled"], true);
    assert_eq!(hook["status"], "ok");
    assert_eq!(hook["file"], "hook.toml");
    assert!(hook["hash"]
        .as_str()
        .is_some_and(|h| h.starts_with("sha256:") && h.len() == 71));
    assert!(hook["loaded_at"].is_string());
    assert_eq!(
        hook["methods"],
        serde_json::json!(["GET", "POST", "PUT", "DELETE"])
    );

    let broken = functions
        .iter()
        .find(|f| f["name"] == "broken")
        .expect("broken listed");
    assert_eq!(broken["status"], "rejected");
    assert_eq!(broken["errors"][0]["line"], 3);
    assert!(broken["errors"][0]["message"]
        .as_str()
        .is_some_and(|m| m.contains("bogus")));

    let (status, one) = s.get_json("/api/functions/report").await;
    assert_eq!(status, 200);
    let sched = &one["function"]["schedule"];
    assert_eq!(sched["cron"], "0 9 1 * *");
    assert_eq!(sched["timezone"], "America/Montevideo");
    assert_eq!(sched["next_runs"].as_array().map(Vec::len), Some(5));
    assert!(
        sched["next_runs"][0]
            .as_str()
            .is_some_and(|t| t.ends_with("-03:00")),
        "{sched}"
    );
    assert_eq!(one["function"]["file"], "sub/report.toml");
    assert_eq!(one["reloads"][0]["trigger"], "start");
    assert_eq!(one["reloads"][0]["outcome"], "partial");
    s.stop().await;
}

#[tokio::test]
async fn errors_are_json_with_the_request_id() {
    let s = TestServer::start(&[]).await;
    let res = s.get("/api/functions/nope").await;
    assert_eq!(res.status(), 404);
    let id = res.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_eq!(res.headers()["content-type"], "application/json");
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["request_id"], id.as_str());
    assert!(body["error"].as_str().is_some_and(|e| e.contains("nope")));

    // A caller's request id is kept.
    let res = s
        .client
        .get(format!("{}/no/such/route", s.base))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers()["x-request-id"], "abc-123");
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["request_id"], "abc-123");

    // Successful responses carry one too.
    let res = s.get("/healthz").await;
    assert!(res.headers().contains_key("x-request-id"));
    s.stop().await;
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let s = TestServer::start(&[("hook.toml", &webhook("hook")), ("report.toml", SCHEDULER)]).await;
    assert_eq!(s.get_json("/healthz").await.0, 200);
    let (status, ready) = s.get_json("/readyz").await;
    assert_eq!(status, 200);
    assert_eq!(ready["status"], "ready");

    s.write("bad.toml", "this is = = not toml");
    s.wait_for("rejected file", |sn| sn.files.len() == 3).await;
    // The metrics task updates right after the swap; give it a moment.
    let mut text = String::new();
    for _ in 0..50 {
        text = s.get("/metrics").await.text().await.expect("text");
        if text.contains("functiond_reloads_total{outcome=\"partial\"} 1") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for line in [
        "functiond_functions{type=\"webhook\",state=\"ok\"} 1",
        "functiond_functions{type=\"scheduler\",state=\"ok\"} 1",
        "functiond_functions{type=\"event\",state=\"ok\"} 0",
        "functiond_reloads_total{outcome=\"ok\"} 1",
        "functiond_reloads_total{outcome=\"partial\"} 1",
        "functiond_rejected_files 1",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    s.stop().await;
}

#[tokio::test]
async fn api_token_guards_the_functions_api_but_not_health() {
    let s = TestServer::start_with(&[("hook.toml", &webhook("hook"))], |cfg| {
        cfg.api_token = Some(functiond::config::runner::TokenSource::Literal(
            "t0ken".into(),
        ));
    })
    .await;
    let res = s.get("/api/functions").await;
    assert_eq!(res.status(), 401);
    let res = s
        .client
        .get(format!("{}/api/functions", s.base))
        .bearer_auth("wrong")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 401);
    let res = s
        .client
        .get(format!("{}/api/functions", s.base))
        .bearer_auth("t0ken")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    assert_eq!(s.get_json("/healthz").await.0, 200);
    assert_eq!(s.get_json("/metrics").await.0, 200);
    s.stop().await;
}

#[tokio::test]
async fn a_missing_functions_directory_is_a_start_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = common::config(dir.path());
    let err = functiond::app::start(
        &cfg,
        std::sync::Arc::new(functiond::config::Schemas::embedded()),
    )
    .await
    .err()
    .expect("start fails");
    assert!(err.to_string().contains("functions.d"), "{err}");
}
