//! Runs one scheduler task (`sql`, `shell`, `export`) and says how it went.
//!
//! The same function serves the scheduler and `functiond run`, so a manual run behaves exactly
//! like a scheduled one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::export::export_to_file;
use super::mail::Mailer;
use super::shell::run_shell;
use super::sql_split::split_statements;
use crate::config::model::{Action, Export, Task};
use crate::db::Database;
use crate::store::RunStatus;

/// What a task needs besides its own definition.
#[derive(Clone, Debug)]
pub struct TaskContext {
    pub function: String,
    pub db: Database,
    pub exports_dir: PathBuf,
    pub mailer: Option<Mailer>,
    /// The time the run is for (the tick, or now for a manual run) and the zone for file names.
    pub at: DateTime<Utc>,
    pub timezone: Tz,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TaskResult {
    pub status: RunStatus,
    pub output: Option<String>,
    pub error: Option<String>,
    pub rows_affected: Option<i64>,
    /// The export's file name, in `<exports dir>/<function>/`.
    pub file: Option<String>,
}

impl TaskResult {
    fn failed(error: String) -> Self {
        TaskResult {
            status: RunStatus::Failed,
            output: None,
            error: Some(error),
            rows_affected: None,
            file: None,
        }
    }
}

/// Runs `task`; `progress` hears the number of rows an export has written so far.
pub async fn run_task(
    task: &Task,
    ctx: &TaskContext,
    progress: &mut (dyn FnMut(u64) + Send),
) -> TaskResult {
    match &task.action {
        // The shell executor enforces its own timeout, so that it can kill the process group.
        Action::Shell { command, env, cwd } => {
            match run_shell(command, env, cwd.as_deref(), task.timeout).await {
                Ok(o) if o.succeeded() => TaskResult {
                    status: RunStatus::Succeeded,
                    output: Some(o.output),
                    error: None,
                    rows_affected: None,
                    file: None,
                },
                Ok(o) => TaskResult {
                    status: if o.timed_out {
                        RunStatus::Timeout
                    } else {
                        RunStatus::Failed
                    },
                    error: Some(match (o.timed_out, o.exit_code) {
                        (true, _) => format!(
                            "timed out after {}; the process group was killed",
                            human(task.timeout)
                        ),
                        (false, Some(code)) => format!("exited with status {code}"),
                        (false, None) => "killed by a signal".to_owned(),
                    }),
                    output: Some(o.output),
                    rows_affected: None,
                    file: None,
                },
                Err(e) => TaskResult::failed(format!("cannot start /bin/sh: {e}")),
            }
        }
        Action::Sql { sql } => {
            let run = ctx.db.execute_script(sql);
            match tokio::time::timeout(task.timeout, run).await {
                Ok(Ok(rows)) => TaskResult {
                    status: RunStatus::Succeeded,
                    output: None,
                    error: None,
                    rows_affected: i64::try_from(rows).ok(),
                    file: None,
                },
                Ok(Err(e)) => TaskResult::failed(e.to_string()),
                Err(_) => timed_out(task.timeout),
            }
        }
        Action::Export { sql, export } => {
            match tokio::time::timeout(task.timeout, run_export(sql, export, ctx, progress)).await {
                Ok(result) => result,
                Err(_) => timed_out(task.timeout),
            }
        }
    }
}

fn timed_out(after: Duration) -> TaskResult {
    TaskResult {
        status: RunStatus::Timeout,
        error: Some(format!("timed out after {}", human(after))),
        ..TaskResult::failed(String::new())
    }
}

fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    }
}

async fn run_export(
    sql: &str,
    export: &Export,
    ctx: &TaskContext,
    progress: &mut (dyn FnMut(u64) + Send),
) -> TaskResult {
    let name = render_filename(
        &export.filename,
        &ctx.function,
        ctx.at.with_timezone(&ctx.timezone),
    );
    let dir = ctx.exports_dir.join(&ctx.function);
    if let Err(e) = tokio::fs::create_dir_all(&dir).await {
        return TaskResult::failed(format!("cannot create {}: {e}", dir.display()));
    }
    let dest = dir.join(&name);
    // Statements before the last are setup; the last one's rows are exported.
    let statements = split_statements(sql);
    let Some((query, setup)) = statements.split_last() else {
        return TaskResult::failed("the export SQL has no statement".into());
    };
    for stmt in setup {
        if let Err(e) = ctx.db.execute_script(stmt).await {
            return TaskResult::failed(format!("setup statement failed: {e}"));
        }
    }
    let outcome = match export_to_file(&ctx.db, query, export.format, &dest, progress).await {
        Ok(o) => o,
        Err(e) => return TaskResult::failed(e.to_string()),
    };
    let mut output = format!("{} rows, {} bytes → {name}", outcome.rows, outcome.bytes);
    if let Some(keep) = export.keep {
        match prune_exports(&dir, keep as usize) {
            Ok(0) => {}
            Ok(n) => output.push_str(&format!("; removed {n} older file(s) (keep = {keep})")),
            Err(e) => output.push_str(&format!("; could not remove older files: {e}")),
        }
    }
    let mut result = TaskResult {
        status: RunStatus::Succeeded,
        output: None,
        error: None,
        rows_affected: i64::try_from(outcome.rows).ok(),
        file: Some(name.clone()),
    };
    if let Some(email) = &export.email {
        let fill = |t: &str| t.replace("{name}", &ctx.function).replace("{file}", &name);
        let sent = match &ctx.mailer {
            None => Err("no SMTP configured (smtp.url)".to_owned()),
            Some(m) => {
                m.send_file(
                    &email.to,
                    &fill(&email.subject),
                    &fill(&email.body),
                    &dest,
                    &name,
                )
                .await
            }
        };
        match sent {
            Ok(()) => output.push_str(&format!("; e-mailed to {}", email.to.join(", "))),
            Err(e) => {
                result.status = RunStatus::Failed;
                result.error = Some(format!(
                    "the file was written, but e-mailing it failed: {e}"
                ));
            }
        }
    }
    result.output = Some(output);
    result
}

/// Fills `{name}`, `{date}` (2026-12-04), `{time}` (090000) and `{datetime}` (2026-12-04T090000)
/// with the run's time in the schedule's zone; no characters that need quoting in a file name.
pub fn render_filename(template: &str, function: &str, at: DateTime<Tz>) -> String {
    template
        .replace("{name}", function)
        .replace("{datetime}", &at.format("%Y-%m-%dT%H%M%S").to_string())
        .replace("{date}", &at.format("%Y-%m-%d").to_string())
        .replace("{time}", &at.format("%H%M%S").to_string())
}

/// Keeps the `keep` newest finished files of a function's export folder; returns how many were
/// removed. Temporary files of exports in progress (hidden) are left alone.
pub fn prune_exports(dir: &Path, keep: usize) -> std::io::Result<usize> {
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            meta.is_file()
                .then(|| (meta.modified().unwrap_or(std::time::UNIX_EPOCH), e.path()))
        })
        .collect();
    files.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.cmp(&a.1)));
    let mut removed = 0;
    for (_, path) in files.into_iter().skip(keep) {
        std::fs::remove_file(path)?;
        removed += 1;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn file_names_use_the_schedule_zone() {
        let at = chrono_tz::America::Montevideo
            .with_ymd_and_hms(2026, 12, 4, 9, 0, 5)
            .single()
            .expect("valid time");
        assert_eq!(
            render_filename("{name}-{date}.csv", "report", at),
            "report-2026-12-04.csv"
        );
        assert_eq!(
            render_filename("{datetime}_{time}.xlsx", "r", at),
            "2026-12-04T090005_090005.xlsx"
        );
    }

    #[test]
    fn pruning_keeps_the_newest_and_ignores_temp_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (i, name) in ["a.csv", "b.csv", "c.csv"].iter().enumerate() {
            let p = dir.path().join(name);
            std::fs::write(&p, "x").expect("write");
            let t = std::time::UNIX_EPOCH + Duration::from_secs(1_000 + i as u64);
            std::fs::File::options()
                .write(true)
                .open(&p)
                .and_then(|f| f.set_modified(t))
                .expect("mtime");
        }
        std::fs::write(dir.path().join(".c.csv.tmp-1"), "partial").expect("write");
        assert_eq!(prune_exports(dir.path(), 2).expect("prune"), 1);
        assert!(!dir.path().join("a.csv").exists());
        assert!(dir.path().join("b.csv").exists() && dir.path().join("c.csv").exists());
        assert!(dir.path().join(".c.csv.tmp-1").exists());
    }
}
