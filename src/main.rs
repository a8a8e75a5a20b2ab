//! The `functiond` command: parses arguments, sets up logging, runs the library, prints results and
//! picks the exit code. The only place that prints.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use functiond::config::runner::{load_runner_config, LogFormat, RunnerConfig};
use functiond::config::{schedule, Diagnostic, FunctionKind, Schemas};
use functiond::snapshot::{self, FileStatus, Trigger};
use functiond::source::load::load_dir;
use functiond::{app, telemetry};

#[derive(Parser)]
#[command(
    name = "functiond",
    version,
    about = "Serve webhook, event and scheduled functions from a directory of TOML files"
)]
struct Cli {
    /// The runner configuration file (optional; every key also has a FUNCTIOND_* variable).
    #[arg(long, global = true, env = "FUNCTIOND_CONFIG")]
    config: Option<PathBuf>,
    /// Log format: text for terminals, json for log collectors (FUNCTIOND_LOG_FORMAT).
    #[arg(long, global = true, value_parser = ["text", "json"])]
    log_format: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server on the functions directory, watching it (the default).
    Serve,
    /// Validate every function file; print each problem as path:line:col: message; exit 1 if any.
    Check {
        /// The functions directory (default: the configured one, `functions.d`).
        dir: Option<PathBuf>,
    },
    /// Show a schedule's cron expression, its description and its next run times.
    Cron {
        /// A cron expression or an English phrase (quote it), e.g. "0 9 * * 1-5" or "every day at 9am".
        #[arg(required_unless_present = "fields")]
        schedule: Vec<String>,
        /// The five-field form instead: minutes=0 hours=9 days_of_week=mon,fri months=*/3
        #[arg(long, num_args = 1.., value_name = "KEY=VALUE")]
        fields: Vec<String>,
        /// IANA timezone for the run times.
        #[arg(long, default_value = "UTC")]
        tz: String,
        /// How many run times to show.
        #[arg(long, default_value_t = 5)]
        count: usize,
        /// Show runs after this time (RFC 3339, e.g. 2026-03-08T00:00:00Z; default now).
        #[arg(long)]
        from: Option<String>,
    },
    /// Run a webhook once without the server (same router and flow runtime) and print the response.
    Invoke {
        /// The webhook function's name.
        name: String,
        /// HTTP method (default: POST when a body is given, else GET).
        #[arg(long)]
        method: Option<String>,
        /// A JSON body (sent as application/json).
        #[arg(long, conflicts_with = "form")]
        json: Option<String>,
        /// A form field (sent as application/x-www-form-urlencoded); repeat for more.
        #[arg(long, value_name = "KEY=VALUE")]
        form: Vec<String>,
        /// A query parameter; repeat for more.
        #[arg(long, value_name = "KEY=VALUE")]
        query: Vec<String>,
        /// A request header; repeat for more.
        #[arg(long, value_name = "NAME:VALUE")]
        header: Vec<String>,
    },
    /// Run a scheduler's task now, through the same code path as the scheduler, and record it.
    Run {
        /// The scheduler function's name.
        name: String,
    },
    /// Exit 0 if the server on the configured address answers /healthz (for container health
    /// checks, where no curl is installed).
    Healthcheck,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let schemas = Arc::new(Schemas::embedded());
    let config = match load_config(&schemas, cli.config.as_deref(), cli.log_format.as_deref()) {
        Ok(c) => c,
        Err(lines) => {
            for l in lines {
                eprintln!("{l}");
            }
            return ExitCode::FAILURE;
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config, schemas),
        Command::Check { dir } => check(&schemas, dir.as_deref().unwrap_or(&config.functions_dir)),
        Command::Healthcheck => healthcheck(config.listen),
        Command::Run { name } => run_now(config, &schemas, &name),
        Command::Invoke {
            name,
            method,
            json,
            form,
            query,
            header,
        } => invoke(config, schemas, &name, method, json, &form, &query, &header),
        Command::Cron {
            schedule,
            fields,
            tz,
            count,
            from,
        } => cron(&schedule.join(" "), &fields, &tz, count, from.as_deref()),
    }
}

fn load_config(
    schemas: &Schemas,
    path: Option<&Path>,
    log_format: Option<&str>,
) -> Result<RunnerConfig, Vec<String>> {
    let text = match path {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .map_err(|e| vec![format!("cannot read config {}: {e}", p.display())])?,
        ),
        None => None,
    };
    let shown = path.map(|p| p.display().to_string()).unwrap_or_default();
    let mut config = load_runner_config(
        schemas,
        text.as_deref().map(|t| (shown.as_str(), t)),
        &|k| std::env::var(k).ok(),
    )
    .map_err(|d| d.iter().map(Diagnostic::to_string).collect::<Vec<_>>())?;
    match log_format {
        Some("json") => config.log_format = LogFormat::Json,
        Some("text") => config.log_format = LogFormat::Text,
        _ => {}
    }
    Ok(config)
}

fn serve(config: RunnerConfig, schemas: Arc<Schemas>) -> ExitCode {
    telemetry::init_logging(config.log_format, &config.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let running = match app::start(&config, schemas).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("{e}");
                eprintln!("functiond: {e}");
                return ExitCode::FAILURE;
            }
        };
        if let Err(e) = wait_for_signals(&running).await {
            eprintln!("functiond: cannot install signal handlers: {e}");
        }
        tracing::info!("shutting down");
        match running.shutdown().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("functiond: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// SIGHUP reloads; SIGTERM and SIGINT return (to shut down).
async fn wait_for_signals(running: &app::Running) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading");
                let _ = running.reloads.try_send(Trigger::Signal);
            }
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
        }
    }
}

fn check(schemas: &Schemas, dir: &Path) -> ExitCode {
    if !dir.is_dir() {
        eprintln!(
            "functiond check: functions directory {} not found or not a directory",
            dir.display()
        );
        return ExitCode::FAILURE;
    }
    let scan = match load_dir(schemas, dir, dir, &functiond::config::compile::SystemInputs) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("functiond check: cannot read {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
    };
    let snap = snapshot::next(
        &Default::default(),
        scan,
        Trigger::Start,
        chrono::Utc::now(),
        0.0,
    );
    let mut problems: Vec<&Diagnostic> =
        snap.files.values().flat_map(|f| f.errors.iter()).collect();
    problems.sort();
    for d in &problems {
        println!("{d}");
    }
    let count = |t: &str| {
        snap.functions
            .values()
            .filter(|f| f.function.kind.type_name() == t)
            .count()
    };
    let bad_files = snap
        .files
        .values()
        .filter(|f| f.status != FileStatus::Ok)
        .count();
    println!(
        "{}: {}, {}, {}; {}",
        plural(snap.functions.len(), "function"),
        plural(count("webhook"), "webhook"),
        plural(count("event"), "event"),
        plural(count("scheduler"), "scheduler"),
        if problems.is_empty() {
            "no problems".to_owned()
        } else {
            format!(
                "{} in {}",
                plural(problems.len(), "problem"),
                plural(bad_files, "file")
            )
        }
    );
    for f in snap.functions.values() {
        if let FunctionKind::Scheduler(s) = &f.function.kind {
            let sch = &s.schedule;
            println!(
                "  {}: {}  ({}, {})",
                f.function.name, sch.cron, sch.description, sch.timezone
            );
        }
    }
    if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[allow(clippy::too_many_arguments)]
fn invoke(
    config: RunnerConfig,
    schemas: Arc<Schemas>,
    name: &str,
    method: Option<String>,
    json: Option<String>,
    form: &[String],
    query: &[String],
    headers: &[String],
) -> ExitCode {
    telemetry::init_logging(config.log_format, "warn");
    let request = match build_request(name, method, json, form, query, headers) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("functiond invoke: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match app::invoke(&config, schemas, request).await {
            Ok(res) => {
                let status = res.status();
                println!("HTTP {status}");
                for (k, v) in res.headers() {
                    println!("{k}: {}", String::from_utf8_lossy(v.as_bytes()));
                }
                println!();
                let body = axum::body::to_bytes(res.into_body(), usize::MAX)
                    .await
                    .unwrap_or_default();
                println!("{}", String::from_utf8_lossy(&body));
                if status.is_client_error() || status.is_server_error() {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                }
            }
            Err(e) => {
                eprintln!("functiond invoke: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

fn build_request(
    name: &str,
    method: Option<String>,
    json: Option<String>,
    form: &[String],
    query: &[String],
    headers: &[String],
) -> Result<axum::http::Request<axum::body::Body>, String> {
    fn pair<'a>(s: &'a str, sep: char, what: &str) -> Result<(&'a str, &'a str), String> {
        s.split_once(sep)
            .ok_or_else(|| format!("{s:?}: expected {what}"))
    }
    fn encode(pairs: &[String]) -> Result<String, String> {
        let mut out = Vec::new();
        for p in pairs {
            let (k, v) = pair(p, '=', "KEY=VALUE")?;
            out.push(format!("{}={}", form_escape(k), form_escape(v)));
        }
        Ok(out.join("&"))
    }
    let (body, content_type) = match (&json, form.is_empty()) {
        (Some(j), _) => {
            serde_json::from_str::<serde_json::Value>(j)
                .map_err(|e| format!("--json is not JSON: {e}"))?;
            (j.clone(), Some("application/json"))
        }
        (None, false) => (encode(form)?, Some("application/x-www-form-urlencoded")),
        (None, true) => (String::new(), None),
    };
    let method = method.unwrap_or_else(|| {
        if body.is_empty() {
            "GET".into()
        } else {
            "POST".into()
        }
    });
    let mut uri = format!("/api/webhook/{name}");
    if !query.is_empty() {
        uri.push('?');
        uri.push_str(&encode(query)?);
    }
    let mut builder = axum::http::Request::builder()
        .method(method.to_ascii_uppercase().as_str())
        .uri(uri);
    if let Some(ct) = content_type {
        builder = builder.header("content-type", ct);
    }
    for h in headers {
        let (k, v) = pair(h, ':', "NAME:VALUE")?;
        builder = builder.header(k.trim(), v.trim());
    }
    builder
        .body(axum::body::Body::from(body))
        .map_err(|e| e.to_string())
}

/// application/x-www-form-urlencoded escaping.
fn form_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn run_now(config: RunnerConfig, schemas: &Schemas, name: &str) -> ExitCode {
    telemetry::init_logging(config.log_format, "warn");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match run_once(&config, schemas, name).await {
            Ok(run) => {
                println!(
                    "{}: {} in {:.0} ms",
                    run.function,
                    run.status.as_str(),
                    run.duration_ms.unwrap_or(0.0)
                );
                if let Some(rows) = run.rows_affected {
                    println!("rows: {rows}");
                }
                if let Some(file) = &run.file {
                    println!(
                        "file: {}",
                        config.exports_dir.join(&run.function).join(file).display()
                    );
                }
                if let Some(out) = run.output.as_deref().filter(|o| !o.is_empty()) {
                    println!("output:\n{}", out.trim_end());
                }
                if let Some(err) = &run.error {
                    eprintln!("error: {err}");
                }
                if run.status == functiond::store::RunStatus::Succeeded {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(e) => {
                eprintln!("functiond run: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

async fn run_once(
    config: &RunnerConfig,
    schemas: &Schemas,
    name: &str,
) -> Result<functiond::store::RunRecord, String> {
    use functiond::exec::task::TaskContext;
    let dir = &config.functions_dir;
    let scan = load_dir(schemas, dir, dir, &functiond::config::compile::SystemInputs)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let snap = snapshot::next(
        &Default::default(),
        scan,
        Trigger::Start,
        chrono::Utc::now(),
        0.0,
    );
    let f = snap.functions.get(name).ok_or_else(|| {
        let problems: Vec<String> = snap
            .files
            .values()
            .filter(|s| s.name.as_deref() == Some(name))
            .flat_map(|s| s.errors.iter().map(|d| d.to_string()))
            .collect();
        if problems.is_empty() {
            format!("no function named {name:?} in {}", dir.display())
        } else {
            format!("{name} does not load:\n{}", problems.join("\n"))
        }
    })?;
    let FunctionKind::Scheduler(s) = &f.function.kind else {
        return Err(format!(
            "{name} is a {} function; `run` runs scheduler tasks",
            f.function.kind.type_name()
        ));
    };
    let db = functiond::db::Database::connect(&config.database_url)
        .await
        .map_err(|e| format!("database.url: {e}"))?;
    let store = functiond::store::Store::open(&config.state_url)
        .await
        .map_err(|e| format!("state.url: {e}"))?;
    let mailer = functiond::exec::mail::Mailer::new(&config.smtp_url, &config.smtp_from)?;
    let ctx = TaskContext {
        function: name.to_owned(),
        db,
        exports_dir: config.exports_dir.clone(),
        mailer: Some(mailer),
        at: chrono::Utc::now(),
        timezone: s.schedule.timezone,
    };
    // A spinner with the rows written so far; indicatif draws nothing when stderr is not a terminal.
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar.set_message(format!("running {name}"));
    let mut progress = |rows: u64| bar.set_message(format!("{name}: {rows} rows written"));
    let run = functiond::scheduler::runner::execute_and_record(
        &store,
        f,
        &ctx,
        "manual",
        None,
        &mut progress,
    )
    .await;
    bar.finish_and_clear();
    Ok(run)
}

fn healthcheck(listen: std::net::SocketAddr) -> ExitCode {
    use std::io::{Read, Write};
    use std::time::Duration;
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let answer = (|| -> std::io::Result<String> {
        let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
        let mut buf = String::new();
        stream.read_to_string(&mut buf)?;
        Ok(buf)
    })();
    match answer {
        Ok(text) if text.starts_with("HTTP/1.0 200") || text.starts_with("HTTP/1.1 200") => {
            ExitCode::SUCCESS
        }
        Ok(text) => {
            eprintln!("unhealthy: {}", text.lines().next().unwrap_or_default());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("unhealthy: {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn cron(text: &str, fields: &[String], tz: &str, count: usize, from: Option<&str>) -> ExitCode {
    // Five fields or a macro is cron; anything else is read as English.
    let looks_like_cron = text.starts_with('@') || text.split_whitespace().count() == 5;
    let expr = if !fields.is_empty() {
        schedule::fields_from_pairs(fields)
            .and_then(|f| schedule::from_fields(&f).map_err(|e| e.to_string()))
    } else if looks_like_cron {
        schedule::parse_cron(text)
    } else {
        schedule::from_english(text)
    };
    let expr = match expr {
        Ok(e) => e,
        Err(e) => {
            eprintln!("functiond cron: {e}");
            return ExitCode::FAILURE;
        }
    };
    let tz = match schedule::parse_timezone(tz) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("functiond cron: {e}");
            return ExitCode::FAILURE;
        }
    };
    let after = match from {
        None => chrono::Utc::now(),
        Some(s) => match chrono::DateTime::parse_from_rfc3339(s) {
            Ok(t) => t.with_timezone(&chrono::Utc),
            Err(e) => {
                eprintln!("functiond cron: --from {s:?}: {e} (expected RFC 3339, e.g. 2026-03-08T00:00:00Z)");
                return ExitCode::FAILURE;
            }
        },
    };
    println!("cron:        {expr}");
    println!("description: {}", schedule::describe(&expr));
    println!("timezone:    {tz}");
    println!("next runs:");
    for t in schedule::next_runs(&expr, tz, after, count) {
        println!("  {}", t.to_rfc3339());
    }
    ExitCode::SUCCESS
}
