//! `functiond run NAME`: a scheduler's task now, through the scheduler's own code path.

use std::process::ExitCode;

use functiond::config::runner::RunnerConfig;
use functiond::config::{FunctionKind, Schemas};
use functiond::snapshot;
use functiond::telemetry;

pub fn run_now(config: RunnerConfig, schemas: &Schemas, name: &str) -> ExitCode {
    telemetry::init_logging(config.log_format, "warn");
    let Some(runtime) = super::runtime() else {
        return ExitCode::FAILURE;
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
    let snap = snapshot::load_once(schemas, dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
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
