//! `functiond emit TYPE [--json DATA]`: publish an event to the running server, or with `--local`
//! store and deliver it in this process.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use functiond::config::runner::{RunnerConfig, TokenSource};
use functiond::config::Schemas;
use functiond::{app, telemetry};
use serde_json::{Map, Value};

pub fn emit(
    config: RunnerConfig,
    schemas: Arc<Schemas>,
    event_type: &str,
    json: Option<&str>,
    local: bool,
) -> ExitCode {
    telemetry::init_logging(config.log_format, "warn");
    let mut event = match json.map(serde_json::from_str::<Value>) {
        None => Map::new(),
        Some(Ok(Value::Object(m))) => m,
        Some(Ok(_)) => {
            eprintln!("functiond emit: --json must be a JSON object (the event's payload)");
            return ExitCode::FAILURE;
        }
        Some(Err(e)) => {
            eprintln!("functiond emit: --json is not JSON: {e}");
            return ExitCode::FAILURE;
        }
    };
    event.insert("type".into(), Value::String(event_type.to_owned()));
    let Some(runtime) = super::runtime() else {
        return ExitCode::FAILURE;
    };
    runtime.block_on(async move {
        if local {
            return match app::emit_locally(&config, schemas, event, Duration::from_secs(30)).await {
                Ok((published, deliveries)) => {
                    println!(
                        "{}{}",
                        published.id,
                        if published.new {
                            ""
                        } else {
                            " (already accepted before)"
                        }
                    );
                    for d in &deliveries {
                        let error = d
                            .last_error
                            .as_deref()
                            .map(|e| format!(": {e}"))
                            .unwrap_or_default();
                        println!(
                            "  {} ({}): {} after {} attempt(s){error}",
                            d.function, d.target, d.status, d.attempts
                        );
                    }
                    if deliveries.iter().all(|d| d.status == "delivered") {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(e) => {
                    eprintln!("functiond emit: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        match post(&config, &event).await {
            Ok(id) => {
                println!("{id}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("functiond emit: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// POSTs the event to the configured server's `/api/events`, with the API token when one is set.
async fn post(config: &RunnerConfig, event: &Map<String, Value>) -> Result<String, String> {
    let mut addr = config.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let url = format!("http://{addr}/api/events");
    let mut req = reqwest::Client::new().post(&url).json(event);
    let token = match &config.api_token {
        None => None,
        Some(TokenSource::Literal(t)) => Some(t.clone()),
        Some(TokenSource::Env(v)) => {
            Some(std::env::var(v).map_err(|_| format!("api.token: {v} is not set"))?)
        }
        Some(TokenSource::File(p)) => Some(
            std::fs::read_to_string(p)
                .map_err(|e| format!("api.token: {}: {e}", p.display()))?
                .trim_end()
                .to_owned(),
        ),
    };
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req
        .send()
        .await
        .map_err(|e| format!("cannot reach the server at {url} ({e}); is `functiond serve` running? (or use --local)"))?;
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    if status.as_u16() == 202 {
        Ok(body["id"].as_str().unwrap_or_default().to_owned())
    } else {
        Err(format!(
            "HTTP {status}: {}",
            body["error"].as_str().unwrap_or("no details")
        ))
    }
}
