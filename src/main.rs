//! The `functiond` command: parses arguments and the runner configuration, then hands over to
//! one subcommand in `cli/`. The binary is the only code that prints; the library returns values.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

mod cli;

use functiond::config::runner::{load_runner_config, LogFormat, RunnerConfig};
use functiond::config::{Diagnostic, Schemas};

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
    Invoke(cli::invoke::InvokeArgs),
    /// Publish an event to the running server (or, with --local, store and deliver it here).
    Emit {
        /// The event type, e.g. agent_logged_in.
        r#type: String,
        /// The payload, a JSON object (its keys become the event's keys).
        #[arg(long)]
        json: Option<String>,
        /// Do not use the server: store the event and run its deliveries in this process.
        #[arg(long)]
        local: bool,
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
        Command::Serve => cli::serve::serve(config, schemas),
        Command::Check { dir } => {
            cli::check::check(&schemas, dir.as_deref().unwrap_or(&config.functions_dir))
        }
        Command::Healthcheck => cli::serve::healthcheck(config.listen),
        Command::Run { name } => cli::run::run_now(config, &schemas, &name),
        Command::Emit {
            r#type,
            json,
            local,
        } => cli::emit::emit(config, schemas, &r#type, json.as_deref(), local),
        Command::Invoke(args) => cli::invoke::invoke(config, schemas, args),
        Command::Cron {
            schedule,
            fields,
            tz,
            count,
            from,
        } => cli::cron::cron(&schedule.join(" "), &fields, &tz, count, from.as_deref()),
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
