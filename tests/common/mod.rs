//! Shared helpers for black-box tests: a real server on port 0 over a temporary functions
//! directory.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use functiond::app::{self, Running};
use functiond::config::runner::{ReloadMode, RunnerConfig};
use functiond::config::Schemas;
use functiond::snapshot::Snapshot;
use serde_json::Value;

pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub running: Running,
    pub base: String,
    pub client: reqwest::Client,
}

pub fn config(dir: &Path) -> RunnerConfig {
    RunnerConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        functions_dir: dir.join("functions.d"),
        exports_dir: dir.join("exports"),
        database_url: format!("sqlite://{}", dir.join("app.db").display()),
        state_url: format!("sqlite://{}", dir.join("functiond.db").display()),
        debounce: Duration::from_millis(50),
        poll_interval: Duration::from_millis(100),
        drain_timeout: Duration::from_secs(5),
        ..RunnerConfig::default()
    }
}

pub fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(path, text).expect("write");
}

pub fn webhook(name: &str) -> String {
    format!("name = \"{name}\"\ntype = \"webhook\"\n")
}

impl TestServer {
    pub async fn start(files: &[(&str, &str)]) -> TestServer {
        Self::start_with(files, |_| {}).await
    }

    pub async fn start_with(
        files: &[(&str, &str)],
        tweak: impl FnOnce(&mut RunnerConfig),
    ) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("functions.d")).expect("mkdir");
        for (rel, text) in files {
            write(&dir.path().join("functions.d"), rel, text);
        }
        let mut cfg = config(dir.path());
        tweak(&mut cfg);
        let running = app::start(&cfg, Arc::new(Schemas::embedded()))
            .await
            .expect("server starts");
        let base = format!("http://{}", running.addr);
        TestServer {
            dir,
            running,
            base,
            client: reqwest::Client::new(),
        }
    }

    pub fn functions_dir(&self) -> PathBuf {
        self.dir.path().join("functions.d")
    }

    pub fn write(&self, rel: &str, text: &str) {
        write(&self.functions_dir(), rel, text);
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.running.state.snapshot()
    }

    /// Waits until the live snapshot satisfies `pred`; panics with the last snapshot after 5 s.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&Snapshot) -> bool) -> Arc<Snapshot> {
        let mut rx = self.running.state.snapshots.clone();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let snap = rx.borrow_and_update().clone();
            if pred(&snap) {
                return snap;
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                panic!("timed out waiting for {what}; last snapshot: generation {} functions {:?} files {:?}",
                    snap.generation, snap.functions.keys().collect::<Vec<_>>(), snap.files);
            }
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request")
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let res = self.get(path).await;
        let status = res.status().as_u16();
        let body = res.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    pub async fn stop(self) {
        self.running.shutdown().await.expect("clean shutdown");
    }
}

pub fn poll_mode(cfg: &mut RunnerConfig) {
    cfg.reload_mode = ReloadMode::Poll;
}

/// The PostgreSQL URL the CI sets for the PostgreSQL variants of tests; `None` (with a note on
/// stderr) where none is set, so a machine without PostgreSQL still runs everything else.
pub fn pg_url() -> Option<String> {
    let url = std::env::var("FUNCTIOND_TEST_PG_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        eprintln!("FUNCTIOND_TEST_PG_URL is not set: skipping the PostgreSQL variant");
    }
    url
}
