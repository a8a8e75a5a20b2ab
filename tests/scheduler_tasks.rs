//! Scheduler tasks for real: SQL on SQLite and PostgreSQL, shell, exports read back, downloads,
//! e-mail through a real SMTP server, tick claims, run history.

mod common;

use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use chrono::{TimeZone, Utc};
use functiond::config::Schemas;
use functiond::db::Database;
use functiond::exec::mail::Mailer;
use functiond::exec::task::TaskContext;
use functiond::scheduler::engine::{Executor, Tick};
use functiond::scheduler::runner::{execute_and_record, TaskRunner};
use functiond::snapshot::{self, LoadedFunction, Trigger};
use functiond::source::load::load_dir;
use functiond::store::{RunRecord, RunStatus, Store};
use functiond::telemetry::Metrics;
use mail_parser::MimeHeaders;

/// A unique suffix so tests sharing one PostgreSQL database do not collide.
fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

struct Env {
    dir: tempfile::TempDir,
    store: Store,
    db: Database,
}

async fn env_with(db_url: Option<String>, state_url: Option<String>) -> Env {
    let dir = tempfile::tempdir().expect("tempdir");
    let db_url =
        db_url.unwrap_or_else(|| format!("sqlite://{}", dir.path().join("app.db").display()));
    let state_url =
        state_url.unwrap_or_else(|| format!("sqlite://{}", dir.path().join("state.db").display()));
    let db = Database::connect(&db_url).await.expect("app database");
    let store = Store::open(&state_url).await.expect("state database");
    Env { dir, store, db }
}

impl Env {
    fn load(&self, files: &[(&str, &str)]) -> Arc<LoadedFunction> {
        let fdir = self.dir.path().join("functions.d");
        for (rel, text) in files {
            common::write(&fdir, rel, text);
        }
        let scan = load_dir(
            &Schemas::embedded(),
            &fdir,
            &fdir,
            &functiond::config::compile::SystemInputs,
        )
        .expect("scan");
        let snap = snapshot::next(&Default::default(), scan, Trigger::Start, Utc::now(), 0.0);
        for f in snap.files.values() {
            assert!(f.errors.is_empty(), "{:?}", f.errors);
        }
        snap.functions
            .values()
            .next()
            .expect("one function")
            .clone()
    }

    fn ctx(&self, name: &str, mailer: Option<Mailer>) -> TaskContext {
        TaskContext {
            function: name.to_owned(),
            db: self.db.clone(),
            exports_dir: self.dir.path().join("exports"),
            mailer,
            at: Utc
                .with_ymd_and_hms(2026, 12, 4, 9, 0, 0)
                .single()
                .expect("time"),
            timezone: chrono_tz::UTC,
        }
    }

    /// Runs `f` by hand (as `functiond run` does) and returns its recorded run.
    async fn run(&self, f: &LoadedFunction, name: &str, mailer: Option<Mailer>) -> RunRecord {
        execute_and_record(
            &self.store,
            f,
            &self.ctx(name, mailer),
            "manual",
            None,
            &mut |_| {},
        )
        .await
    }
}

fn scheduler(name: &str, task: &str) -> String {
    format!("name = \"{name}\"\ntype = \"scheduler\"\n[schedule]\ncron = \"0 9 * * *\"\n[task]\n{task}\n")
}

async fn sql_task_records_rows_affected(env: Env) {
    let table = unique("t");
    let name = unique("sqljob").replace('_', "-");
    let task = format!(
        "kind = \"sql\"\nsql = \"\"\"\nCREATE TABLE {table} (id INTEGER, v TEXT);\nINSERT INTO {table} VALUES (1, 'a'), (2, 'b'), (3, 'c');\nUPDATE {table} SET v = 'z' WHERE id > 1;\n\"\"\"\n"
    );
    let f = env.load(&[("job.toml", &scheduler(&name, &task))]);
    let run = env.run(&f, &name, None).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(run.rows_affected, Some(5));
    let runs = env.store.recent_runs(&name, 10).await.expect("runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, RunStatus::Succeeded);
    assert_eq!(runs[0].version, f.hash);
    assert!(runs[0].finished_at.is_some() && runs[0].duration_ms.is_some());

    // A failing statement is a failed run with the database's reason.
    let bad = unique("sqlbad").replace('_', "-");
    let f = env.load(&[(
        "job.toml",
        &scheduler(
            &bad,
            "kind = \"sql\"\nsql = \"SELECT * FROM no_such_table_at_all\"",
        ),
    )]);
    let run = env.run(&f, &bad, None).await;
    assert_eq!(run.status, RunStatus::Failed);
    assert!(
        run.error
            .as_deref()
            .is_some_and(|e| e.contains("no_such_table_at_all")),
        "{run:?}"
    );
}

#[tokio::test]
async fn sql_task_on_sqlite() {
    sql_task_records_rows_affected(env_with(None, None).await).await;
}

#[tokio::test]
async fn sql_task_on_postgres() {
    let Some(url) = common::pg_url() else { return };
    sql_task_records_rows_affected(env_with(Some(url.clone()), Some(url)).await).await;
}

#[tokio::test]
async fn shell_failures_and_timeouts_are_recorded_runs() {
    let env = env_with(None, None).await;
    let f = env.load(&[(
        "job.toml",
        &scheduler(
            "fails",
            "kind = \"shell\"\ncommand = \"echo working; echo broken >&2; exit 7\"",
        ),
    )]);
    let run = env.run(&f, "fails", None).await;
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.error.as_deref(), Some("exited with status 7"));
    assert_eq!(
        run.output.as_deref(),
        Some("working\n--- stderr ---\nbroken\n")
    );

    let f = env.load(&[(
        "job.toml",
        &scheduler(
            "slow",
            "kind = \"shell\"\ncommand = \"sleep 30\"\ntimeout_ms = 200",
        ),
    )]);
    let run = env.run(&f, "slow", None).await;
    assert_eq!(run.status, RunStatus::Timeout);
    assert!(run.duration_ms.is_some_and(|d| d < 5000.0));
    let recorded = env.store.recent_runs("slow", 5).await.expect("runs");
    assert_eq!(recorded[0].status, RunStatus::Timeout);
}

async fn export_csv_then_download(env: Env, create: &str) {
    let table = unique("interactions");
    let name = unique("report").replace('_', "-");
    env.db
        .execute_script(&create.replace("{t}", &table))
        .await
        .expect("seed");
    let task = format!(
        "kind = \"export\"\nsql = \"SELECT id, agent, note FROM {table} ORDER BY id\"\n[task.export]\nformat = \"csv\"\nfilename = \"{{name}}-{{date}}.csv\"\nkeep = 2\n"
    );
    let f = env.load(&[("job.toml", &scheduler(&name, &task))]);
    let mut progress = Vec::new();
    let run = execute_and_record(
        &env.store,
        &f,
        &env.ctx(&name, None),
        "manual",
        None,
        &mut |n| progress.push(n),
    )
    .await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    let file = format!("{name}-2026-12-04.csv");
    assert_eq!(run.file.as_deref(), Some(file.as_str()));
    assert_eq!(run.rows_affected, Some(3));
    assert_eq!(progress.last(), Some(&3));
    let text = std::fs::read_to_string(env.dir.path().join("exports").join(&name).join(&file))
        .expect("export file");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.expect("csv").iter().map(str::to_owned).collect())
        .collect();
    assert_eq!(
        reader.headers().expect("header").iter().collect::<Vec<_>>(),
        vec!["id", "agent", "note"]
    );
    assert_eq!(
        rows,
        vec![
            vec![
                "1".to_string(),
                "Ana".into(),
                "said \"hi\", then left".into()
            ],
            vec!["2".into(), "Bo".into(), "line one\nline two".into()],
            vec!["3".into(), "Çelik ✓".into(), "".into()],
        ]
    );
}

const SQLITE_SEED: &str = "CREATE TABLE {t} (id INTEGER, agent TEXT, note TEXT);
INSERT INTO {t} VALUES (1, 'Ana', 'said \"hi\", then left'), (2, 'Bo', 'line one
line two'), (3, 'Çelik ✓', NULL);";

#[tokio::test]
async fn export_csv_on_sqlite() {
    export_csv_then_download(env_with(None, None).await, SQLITE_SEED).await;
}

#[tokio::test]
async fn export_csv_on_postgres() {
    let Some(url) = common::pg_url() else { return };
    let seed = "CREATE TABLE {t} (id INTEGER, agent TEXT, note TEXT);
INSERT INTO {t} VALUES (1, 'Ana', 'said \"hi\", then left'), (2, 'Bo', E'line one\\nline two'), (3, 'Çelik ✓', NULL);";
    export_csv_then_download(env_with(Some(url), None).await, seed).await;
}

/// A real SMTP server on loopback that keeps every message it receives.
#[derive(Clone, Default)]
struct Inbox {
    current: Arc<Mutex<Vec<u8>>>,
    messages: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl mailin_embedded::Handler for Inbox {
    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.current.lock().expect("lock").extend_from_slice(buf);
        Ok(())
    }
    fn data_end(&mut self) -> mailin_embedded::Response {
        let msg = std::mem::take(&mut *self.current.lock().expect("lock"));
        self.messages.lock().expect("lock").push(msg);
        mailin_embedded::response::OK
    }
}

fn start_smtp() -> (u16, Inbox) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let inbox = Inbox::default();
    let mut server = mailin_embedded::Server::new(inbox.clone());
    server.with_name("test.local").with_tcp_listener(listener);
    std::thread::spawn(move || {
        let _ = server.serve();
    });
    (port, inbox)
}

#[tokio::test]
async fn export_is_emailed_with_the_file_attached() {
    let env = env_with(None, None).await;
    env.db
        .execute_script(&SQLITE_SEED.replace("{t}", "interactions"))
        .await
        .expect("seed");
    let task = "kind = \"export\"\nsql = \"SELECT id, agent FROM interactions ORDER BY id\"\n[task.export]\nformat = \"csv\"\nfilename = \"daily-{date}.csv\"\nemail = { to = [\"supervisor@example.com\", \"team@example.com\"], subject = \"Daily interactions: {file}\" }\n";
    let f = env.load(&[("job.toml", &scheduler("mailed", task))]);
    let (port, inbox) = start_smtp();
    let mailer =
        Mailer::new(&format!("smtp://127.0.0.1:{port}"), "functiond@example.com").expect("mailer");
    let run = env.run(&f, "mailed", Some(mailer)).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert!(run
        .output
        .as_deref()
        .is_some_and(|o| o.contains("e-mailed to supervisor@example.com, team@example.com")));

    let messages = inbox.messages.lock().expect("lock").clone();
    assert_eq!(messages.len(), 1);
    let msg = mail_parser::MessageParser::default()
        .parse(&messages[0])
        .expect("parsable message");
    assert_eq!(
        msg.subject(),
        Some("Daily interactions: daily-2026-12-04.csv")
    );
    let to: Vec<String> = msg
        .to()
        .expect("to")
        .iter()
        .filter_map(|a| a.address().map(str::to_owned))
        .collect();
    assert_eq!(to, vec!["supervisor@example.com", "team@example.com"]);
    let attachment = msg.attachments().next().expect("an attachment");
    assert_eq!(attachment.attachment_name(), Some("daily-2026-12-04.csv"));
    assert_eq!(
        std::str::from_utf8(attachment.contents()).expect("utf-8"),
        "id,agent\r\n1,Ana\r\n2,Bo\r\n3,Çelik ✓\r\n"
    );

    // An SMTP server that is not there: the file is still written, the run fails and says why.
    let closed = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mailer = Mailer::new(
        &format!("smtp://127.0.0.1:{closed}"),
        "functiond@example.com",
    )
    .expect("mailer");
    let run = env.run(&f, "mailed", Some(mailer)).await;
    assert_eq!(run.status, RunStatus::Failed);
    assert!(
        run.error
            .as_deref()
            .is_some_and(|e| e.starts_with("the file was written, but e-mailing it failed: SMTP")),
        "{run:?}"
    );
    assert!(env
        .dir
        .path()
        .join("exports/mailed/daily-2026-12-04.csv")
        .exists());
}

async fn a_tick_runs_once_across_replicas(env: Env) {
    let name = unique("once").replace('_', "-");
    let f = env.load(&[(
        "job.toml",
        &scheduler(&name, "kind = \"sql\"\nsql = \"SELECT 1\""),
    )]);
    // Two runners sharing one state database, as two replicas would.
    let replica = || TaskRunner {
        store: env.store.clone(),
        db: env.db.clone(),
        exports_dir: env.dir.path().join("exports"),
        mailer: None,
        metrics: Metrics::new(),
        events: None,
    };
    let (a, b) = (replica(), replica());
    let tick = Utc
        .with_ymd_and_hms(2026, 12, 4, 9, 0, 0)
        .single()
        .expect("time");
    let t = || Tick {
        function: f.clone(),
        scheduled_for: tick,
        catch_up: false,
        fired_at: tick,
    };
    tokio::join!(a.run(t()), b.run(t()));
    a.run(t()).await;
    let runs = env.store.recent_runs(&name, 10).await.expect("runs");
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].trigger, "schedule");
    assert_eq!(runs[0].scheduled_for, Some(tick));
    assert_eq!(a.last_tick(name.clone()).await, Some(tick));
}

#[tokio::test]
async fn tick_claims_on_sqlite() {
    a_tick_runs_once_across_replicas(env_with(None, None).await).await;
}

#[tokio::test]
async fn tick_claims_on_postgres() {
    let Some(url) = common::pg_url() else { return };
    a_tick_runs_once_across_replicas(env_with(None, Some(url)).await).await;
}

#[tokio::test]
async fn runs_and_downloads_through_the_api() {
    let task = "kind = \"export\"\nsql = \"SELECT 1 AS one, 'x,y' AS two\"\n[task.export]\nformat = \"csv\"\nfilename = \"out-{date}.csv\"\n";
    let s = common::TestServer::start(&[("job.toml", &scheduler("report", task))]).await;
    let f = s
        .snapshot()
        .functions
        .get("report")
        .expect("loaded")
        .clone();
    let cfg = common::config(s.dir.path());
    let env = Env {
        store: Store::open(&cfg.state_url).await.expect("state"),
        db: Database::connect(&cfg.database_url).await.expect("db"),
        dir: tempfile::tempdir().expect("unused"),
    };
    let mut ctx = env.ctx("report", None);
    ctx.exports_dir = cfg.exports_dir.clone();
    let run = execute_and_record(&env.store, &f, &ctx, "manual", None, &mut |_| {}).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");

    let (status, body) = s.get_json("/api/functions/report").await;
    assert_eq!(status, 200);
    assert_eq!(body["runs"][0]["status"], "succeeded");
    assert_eq!(body["runs"][0]["trigger"], "manual");
    assert_eq!(body["runs"][0]["file"], "out-2026-12-04.csv");

    let res = s.get("/api/exports/report/out-2026-12-04.csv").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        res.headers()["content-disposition"],
        "attachment; filename=\"out-2026-12-04.csv\""
    );
    assert_eq!(res.text().await.expect("body"), "one,two\r\n1,\"x,y\"\r\n");

    for bad in [
        "/api/exports/report/..%2Fjob.toml",
        "/api/exports/report/.hidden",
        "/api/exports/report/nope.csv",
        "/api/exports/..%2F..%2Fetc/passwd",
    ] {
        let res = s.get(bad).await;
        assert_eq!(res.status(), 404, "{bad}");
    }
    s.stop().await;
}
