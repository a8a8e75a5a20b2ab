//! The real binary: `check`, `cron`, and `serve` with signals and JSON logs.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_functiond");

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(root())
        .env_remove("FUNCTIOND_CONFIG")
        .output()
        .expect("binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The standard output of a command that must have succeeded (else both outputs are shown).
fn success(o: &Output) -> String {
    let text = stdout(o);
    assert!(
        o.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    text
}

#[test]
fn check_accepts_the_examples_and_summarises_them() {
    let out = run(&["check", "functions.d"]);
    let text = success(&out);
    assert!(
        text.contains("3 functions: 1 webhook, 1 event, 1 scheduler; no problems"),
        "{text}"
    );
    assert!(
        text.contains("daily_interactions_report: 0 9 * * *"),
        "{text}"
    );
}

#[test]
fn check_reports_every_problem_of_every_file_and_exits_1() {
    let out = run(&["check", "tests/fixtures/functions/bad-many"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let problems: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("tests/fixtures/functions/bad-many/"))
        .collect();
    assert!(problems.len() >= 6, "{text}");
    assert!(
        problems
            .iter()
            .any(|l| l.starts_with("tests/fixtures/functions/bad-many/job.toml:5:12: ")),
        "{text}"
    );
    assert!(
        problems
            .iter()
            .any(|l| l.starts_with("tests/fixtures/functions/bad-many/other.toml:")),
        "{text}"
    );
}

#[test]
fn check_on_a_missing_directory_is_a_clear_error() {
    let out = run(&["check", "no/such/dir"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no/such/dir"));
}

#[test]
fn cron_prints_expression_description_and_next_runs() {
    let out = run(&[
        "cron",
        "--fields",
        "minutes=0",
        "hours=9",
        "days_of_month=1",
        "--tz",
        "Europe/Berlin",
        "--count",
        "2",
        "--from",
        "2026-01-15T00:00:00Z",
    ]);
    let text = success(&out);
    assert!(text.contains("cron:        0 9 1 * *"), "{text}");
    assert!(text.contains("2026-02-01T09:00:00+01:00"), "{text}");
    assert!(text.contains("2026-03-01T09:00:00+01:00"), "{text}");

    let out = run(&[
        "cron",
        "every",
        "day",
        "at",
        "9am",
        "--count",
        "1",
        "--from",
        "2026-01-15T10:00:00Z",
    ]);
    let text = stdout(&out);
    assert!(text.contains("cron:        0 9 * * *"), "{text}");
    assert!(text.contains("2026-01-16T09:00:00+00:00"), "{text}");

    let out = run(&["cron", "sometimes maybe"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn serve_fails_fast_on_a_missing_functions_directory() {
    let out = Command::new(BIN)
        .env("FUNCTIOND_FUNCTIONS_DIR", "/no/such/functions.d")
        .env("FUNCTIOND_LISTEN", "127.0.0.1:0")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/functions.d"));
}

struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
    addr: String,
}

impl Server {
    fn start(functions: &Path, json_logs: bool) -> Server {
        let mut cmd = Command::new(BIN);
        let data = functions.parent().unwrap_or(functions);
        cmd.arg("serve")
            .env(
                "FUNCTIOND_DATABASE_URL",
                format!("sqlite://{}", data.join("app.db").display()),
            )
            .env(
                "FUNCTIOND_STATE_URL",
                format!("sqlite://{}", data.join("functiond.db").display()),
            )
            .env("FUNCTIOND_FUNCTIONS_DIR", functions)
            .env("FUNCTIOND_LISTEN", "127.0.0.1:0")
            .env("FUNCTIOND_DRAIN_TIMEOUT_MS", "3000")
            .env_remove("RUST_LOG")
            .stderr(Stdio::piped())
            .stdout(Stdio::null());
        if json_logs {
            cmd.env("FUNCTIOND_LOG_FORMAT", "json");
        }
        let mut child = cmd.spawn().expect("spawn");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut s = Server {
            child,
            lines,
            addr: String::new(),
        };
        let line = s.wait_line("listening on http://");
        let at = line.find("http://").expect("address in line");
        s.addr = line[at..]
            .split(|c: char| c.is_whitespace() || c == '"')
            .next()
            .unwrap_or_default()
            .to_owned();
        s
    }

    fn wait_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        panic!("no log line containing {needle:?}");
    }

    fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        rt.block_on(async {
            let res = reqwest::get(format!("{}{path}", self.addr))
                .await
                .expect("request");
            let status = res.status().as_u16();
            (status, res.json().await.unwrap_or(serde_json::Value::Null))
        })
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(ok.success());
    }

    fn wait_exit(mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "server did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn serve_reloads_on_sighup_and_exits_0_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let functions = dir.path().join("functions.d");
    std::fs::create_dir(&functions).expect("mkdir");
    std::fs::write(
        functions.join("hook.toml"),
        "name = \"hook\"\ntype = \"webhook\"\n",
    )
    .expect("write");
    let mut s = Server::start(&functions, false);
    let (status, ready) = s.get("/readyz");
    assert_eq!(status, 200, "{ready}");
    let health = |addr: &str| {
        Command::new(BIN)
            .arg("healthcheck")
            .env("FUNCTIOND_LISTEN", addr)
            .output()
            .expect("runs")
            .status
            .success()
    };
    assert!(
        health(s.addr.trim_start_matches("http://")),
        "healthcheck against the live server"
    );

    s.signal("-HUP");
    s.wait_line("SIGHUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, body) = s.get("/api/functions");
        if body["reloads"][0]["trigger"] == "signal" {
            break;
        }
        assert!(Instant::now() < deadline, "no signal reload: {body}");
        std::thread::sleep(Duration::from_millis(20));
    }

    let addr = s.addr.trim_start_matches("http://").to_owned();
    s.signal("-TERM");
    let status = s.wait_exit();
    assert_eq!(status.code(), Some(0));
    assert!(
        !health(&addr),
        "healthcheck must fail once the server is gone"
    );
}

#[test]
fn json_logs_have_one_structured_reload_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let functions = dir.path().join("functions.d");
    std::fs::create_dir(&functions).expect("mkdir");
    std::fs::write(
        functions.join("hook.toml"),
        "name = \"hook\"\ntype = \"webhook\"\n",
    )
    .expect("write");
    let mut s = Server::start(&functions, true);
    std::fs::write(
        functions.join("bad.toml"),
        "name = \"bad\"\ntype = \"nope\"\n",
    )
    .expect("write");
    let line = s.wait_line("\"trigger\":\"watch\"");
    let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
    assert_eq!(v["message"], "reload");
    assert_eq!(v["outcome"], "partial");
    assert!(
        v["rejected"]
            .as_str()
            .is_some_and(|r| r.contains("bad.toml")),
        "{v}"
    );
    s.signal("-INT");
    assert_eq!(s.wait_exit().code(), Some(0));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from)
        .expect("read_dir")
        .filter_map(Result::ok)
    {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).expect("copy");
        }
    }
}

#[test]
fn run_executes_the_daily_report_example_on_a_fresh_machine() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&root().join("functions.d"), &dir.path().join("functions.d"));
    let run = |name: &str| {
        Command::new(BIN)
            .args(["run", name])
            .current_dir(dir.path())
            .env_remove("FUNCTIOND_CONFIG")
            .env_remove("FUNCTIOND_DATABASE_URL")
            .env_remove("FUNCTIOND_STATE_URL")
            .env_remove("FUNCTIOND_EXPORTS_DIR")
            .output()
            .expect("runs")
    };
    let out = run("daily_interactions_report");
    let text = success(&out);
    assert!(
        text.contains("daily_interactions_report: succeeded"),
        "{text}"
    );
    let folder = dir.path().join("data/exports/daily_interactions_report");
    let files: Vec<_> = std::fs::read_dir(&folder)
        .expect("exports folder")
        .filter_map(Result::ok)
        .collect();
    assert_eq!(files.len(), 1);
    let csv = std::fs::read_to_string(files[0].path()).expect("csv");
    assert_eq!(
        csv,
        "id,agent,campaign,started_at,finished_at,disposition\r\n"
    );

    let out = run("leads");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("leads is a webhook function"));
    let out = run("nope");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no function named \"nope\""));
}

#[test]
fn invoke_runs_the_leads_example_through_the_router() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&root().join("functions.d"), &dir.path().join("functions.d"));
    let invoke = |args: &[&str]| {
        Command::new(BIN)
            .arg("invoke")
            .args(args)
            .current_dir(dir.path())
            .env_remove("FUNCTIOND_CONFIG")
            .env_remove("FUNCTIOND_DATABASE_URL")
            .env_remove("FUNCTIOND_STATE_URL")
            .output()
            .expect("runs")
    };
    let out = invoke(&[
        "leads",
        "--form",
        "name=Ana Li",
        "--form",
        "email=ana@example.com",
        "--form",
        "product=fiber",
    ]);
    let text = success(&out);
    assert!(text.starts_with("HTTP 201 Created\n"), "{text}");
    assert!(text.contains("x-request-id: "), "{text}");
    assert!(text.trim_end().ends_with("{\"id\":1}"), "{text}");
    let out = invoke(&[
        "leads",
        "--json",
        "{\"name\":\"Bo\",\"email\":\"bo@example.com\",\"product\":\"tv\"}",
    ]);
    assert!(stdout(&out).trim_end().ends_with("{\"id\":2}"));
    let out = invoke(&["leads", "--method", "GET"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).starts_with("HTTP 405"));
    let out = invoke(&["leads", "--json", "{not json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--json is not JSON"));
}

/// A minimal HTTP/1.1 receiver on a std thread: records each request body, answers 200.
fn receiver(listener: std::net::TcpListener) -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
    use std::io::{Read, Write};
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let body = loop {
                let Ok(n) = stream.read(&mut chunk) else {
                    break None;
                };
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).into_owned();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break Some(
                            String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned(),
                        );
                    }
                }
            };
            if let Some(b) = body {
                seen.lock().expect("lock").push(b);
            }
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    got
}

fn event_subscriber(functions: &Path, port: u16) {
    std::fs::write(
        functions.join("monitor.toml"),
        format!("name = \"monitor\"\ntype = \"event\"\n[event]\ntypes = [\"agent_logged_in\"]\nurl = \"http://127.0.0.1:{port}/hook\"\n[event.delivery]\nmax_attempts = 100\nbackoff_ms = [0, 100]\ntimeout_ms = 1000\n"),
    )
    .expect("write");
}

#[test]
fn an_accepted_event_survives_kill_9_and_is_delivered_after_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let functions = dir.path().join("functions.d");
    std::fs::create_dir(&functions).expect("mkdir");
    // The subscriber is down while the first server runs.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    event_subscriber(&functions, port);
    std::env::set_var("FUNCTIOND_EVENTS_LEASE_MS", "300");
    let s = Server::start(&functions, false);
    let out = Command::new(BIN)
        .args([
            "emit",
            "agent_logged_in",
            "--json",
            "{\"agent\": \"ana\", \"campaign\": \"sales\", \"id\": \"evt-kill-9\"}",
        ])
        .env("FUNCTIOND_LISTEN", s.addr.trim_start_matches("http://"))
        .output()
        .expect("emit runs");
    assert_eq!(success(&out).trim(), "evt-kill-9");
    // kill -9 right after the 202: no chance to finish anything.
    s.signal("-KILL");
    let _ = s.wait_exit();
    let got = receiver(
        std::net::TcpListener::bind(("127.0.0.1", port)).expect("rebind the subscriber port"),
    );
    let s = Server::start(&functions, false);
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.lock().expect("lock").is_empty() {
        assert!(Instant::now() < deadline, "not delivered after restart");
        std::thread::sleep(Duration::from_millis(20));
    }
    let body: serde_json::Value =
        serde_json::from_str(&got.lock().expect("lock")[0]).expect("json");
    assert_eq!(
        (body["id"].as_str(), body["agent"].as_str()),
        (Some("evt-kill-9"), Some("ana"))
    );
    let (_, v) = s.get("/api/events/evt-kill-9");
    assert_eq!(v["event"]["type"], "agent_logged_in");
    s.signal("-TERM");
    assert_eq!(s.wait_exit().code(), Some(0));
}

#[test]
fn emit_local_delivers_the_agent_activity_example() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&root().join("functions.d"), &dir.path().join("functions.d"));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let got = receiver(listener);
    // The example posts to the monitoring service on 127.0.0.1:9000; point it at this receiver.
    let example = dir.path().join("functions.d/agent-activity.toml");
    let text = std::fs::read_to_string(&example)
        .expect("example")
        .replace("127.0.0.1:9000", &format!("127.0.0.1:{port}"));
    std::fs::write(&example, text).expect("write");
    let out = Command::new(BIN)
        .args(["emit", "agent_logged_in", "--local", "--json", "{\"timestamp\": \"2026-12-04T09:00:00Z\", \"agent\": \"ana\", \"campaign\": \"sales\"}"])
        .current_dir(dir.path())
        .env_remove("FUNCTIOND_DATABASE_URL")
        .env_remove("FUNCTIOND_STATE_URL")
        .output()
        .expect("emit runs");
    let text = success(&out);
    assert!(
        text.contains("agent-activity (url): delivered after 1 attempt(s)"),
        "{text}"
    );
    let body: serde_json::Value =
        serde_json::from_str(&got.lock().expect("lock")[0]).expect("json");
    assert_eq!(body["type"], "agent_logged_in");
    assert_eq!(body["campaign"], "sales");
    // A bad event is refused with the catalog's reason.
    let out = Command::new(BIN)
        .args([
            "emit",
            "agent_logged_in",
            "--local",
            "--json",
            "{\"campaign\": \"sales\"}",
        ])
        .current_dir(dir.path())
        .output()
        .expect("emit runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing required key \"agent\""));
}
