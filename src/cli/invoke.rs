//! `functiond invoke NAME`: one request through the server's router, without a socket.

use std::process::ExitCode;
use std::sync::Arc;

use functiond::config::runner::RunnerConfig;
use functiond::config::Schemas;
use functiond::{app, telemetry};

/// What to send.
#[derive(clap::Args)]
pub struct InvokeArgs {
    /// The webhook function's name.
    pub name: String,
    /// HTTP method (default: POST when a body is given, else GET).
    #[arg(long)]
    pub method: Option<String>,
    /// A JSON body (sent as application/json).
    #[arg(long, conflicts_with = "form")]
    pub json: Option<String>,
    /// A form field (sent as application/x-www-form-urlencoded); repeat for more.
    #[arg(long, value_name = "KEY=VALUE")]
    pub form: Vec<String>,
    /// A query parameter; repeat for more.
    #[arg(long, value_name = "KEY=VALUE")]
    pub query: Vec<String>,
    /// A request header; repeat for more.
    #[arg(long, value_name = "NAME:VALUE")]
    pub header: Vec<String>,
}

pub fn invoke(config: RunnerConfig, schemas: Arc<Schemas>, args: InvokeArgs) -> ExitCode {
    telemetry::init_logging(config.log_format, "warn");
    let request = match build_request(args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("functiond invoke: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some(runtime) = super::runtime() else {
        return ExitCode::FAILURE;
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

fn build_request(args: InvokeArgs) -> Result<axum::http::Request<axum::body::Body>, String> {
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
    let InvokeArgs {
        name,
        method,
        json,
        form,
        query,
        header: headers,
    } = args;
    let (body, content_type) = match (&json, form.is_empty()) {
        (Some(j), _) => {
            serde_json::from_str::<serde_json::Value>(j)
                .map_err(|e| format!("--json is not JSON: {e}"))?;
            (j.clone(), Some("application/json"))
        }
        (None, false) => (encode(&form)?, Some("application/x-www-form-urlencoded")),
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
        uri.push_str(&encode(&query)?);
    }
    let mut builder = axum::http::Request::builder()
        .method(method.to_ascii_uppercase().as_str())
        .uri(uri);
    if let Some(ct) = content_type {
        builder = builder.header("content-type", ct);
    }
    for h in &headers {
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
