//! `GET/POST/PUT/DELETE /api/webhook/{name}`: runs a webhook function (SPEC §4).
//!
//! Checks come in the order a client can act on: unknown or disabled function 404, method not
//! allowed 405 (with `Allow`), body too large 413, authentication 401, unsupported content type
//! 415, malformed JSON or form 400; then concurrency (503 with `Retry-After`), then the flow:
//! a throw is 500 (no stack trace in the body), a timeout 504; no flow, or no
//! `setWebhookResponse`, is 200 with an empty body.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::{Map, Value};
use tracing::{info, warn};

use super::auth;
use super::request_id::RequestId;
use super::{ApiError, AppState};
use crate::config::model::{FunctionKind, HttpMethod, Webhook};
use crate::exec::host::flow_env;
use crate::exec::js::{ConsoleLevel, FlowBody, FlowError, FlowJob, FlowOutcome};
use crate::snapshot::LoadedFunction;
use crate::store::{RunRecord, RunStatus};

pub async fn handle(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    req: Request,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let snap = state.snapshot();
    let f = snap
        .functions
        .get(&name)
        .filter(|f| f.function.enabled)
        .filter(|f| matches!(f.function.kind, FunctionKind::Webhook(_)))
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("no webhook named {name:?}")))?;
    drop(snap);
    let FunctionKind::Webhook(hook) = &f.function.kind else {
        return Err(ApiError::not_found(format!("no webhook named {name:?}")));
    };
    let result = serve(&state, &f, hook, &request_id, req).await;
    let status = match &result {
        Ok(r) => r.status(),
        Err(e) => e.status,
    };
    state
        .metrics
        .observe_webhook(&name, status.as_u16(), started.elapsed().as_secs_f64());
    result
}

async fn serve(
    state: &AppState,
    f: &Arc<LoadedFunction>,
    hook: &Webhook,
    request_id: &str,
    req: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let method = http_method(&parts.method)
        .filter(|m| hook.methods.contains(m))
        .ok_or_else(|| {
            let allow: Vec<&str> = hook.methods.iter().map(|m| m.as_str()).collect();
            let allow = allow.join(", ");
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("method {} is not allowed; allowed: {allow}", parts.method),
            )
            .with_header(
                header::ALLOW,
                HeaderValue::from_str(&allow).unwrap_or(HeaderValue::from_static("")),
            )
        })?;
    let limit = usize::try_from(hook.max_body_bytes).unwrap_or(usize::MAX);
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {} bytes", hook.max_body_bytes),
        )
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > hook.max_body_bytes) {
        return Err(too_large());
    }
    let bytes: Bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())?;
    if let Some(a) = &hook.auth {
        auth::verify(a, &parts.headers, &bytes, chrono::Utc::now())
            .map_err(|e| ApiError::unauthorized(e.to_string()))?;
    }
    let (body_json, form) = parse_body(&parts.headers, &bytes)?;

    let Some(flow) = &hook.flow else {
        record(state, f, request_id, RunStatus::Succeeded, None, None, 0.0);
        return Ok(StatusCode::OK.into_response());
    };
    let _permit = state
        .limits
        .acquire(&f.function.name, hook.max_concurrency)
        .ok_or_else(busy)?;

    let globals = vec![
        (
            "METHOD".to_owned(),
            Value::String(method.as_str().to_owned()),
        ),
        ("BODY".to_owned(), body_json),
        ("FORM_PARAMS".to_owned(), Value::Object(form)),
        (
            "HEADERS".to_owned(),
            Value::Object(headers_object(&parts.headers)),
        ),
        (
            "QUERY_PARAMS".to_owned(),
            Value::Object(query_object(parts.uri.query())),
        ),
    ];
    let env = flow_env(flow);
    let job = FlowJob {
        name: Arc::from(f.function.name.as_str()),
        script_id: Arc::from(f.hash.as_str()),
        source: flow.source.clone(),
        globals,
        env,
        timeout: flow.timeout,
        memory_limit_bytes: flow.memory_limit_bytes,
        host: state.host_for(&f.function.name),
    };
    let outcome = state.js.try_run(job).await.map_err(|_| busy())?;
    respond(state, f, request_id, outcome)
}

fn busy() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "too many requests are running; retry shortly",
    )
    .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
}

/// Turns a flow's outcome into the HTTP response and records the run.
fn respond(
    state: &AppState,
    f: &LoadedFunction,
    request_id: &str,
    outcome: FlowOutcome,
) -> Result<Response, ApiError> {
    let console = console_text(&outcome);
    let ms = outcome.duration.as_secs_f64() * 1000.0;
    let name = &f.function.name;
    for line in &outcome.console {
        info!(function = %name, request_id, level = ?line.level, "console: {}", line.text);
    }
    let (status, error, api_error) = match &outcome.result {
        Ok(()) => (RunStatus::Succeeded, None, None),
        Err(FlowError::Timeout) => (
            RunStatus::Timeout,
            Some("the flow ran past its timeout".to_owned()),
            Some(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "the flow did not finish in time",
            )),
        ),
        Err(e) => {
            let detail = flow_error_detail(e);
            warn!(function = %name, request_id, error = %detail, "flow failed");
            (
                RunStatus::Failed,
                Some(detail),
                Some(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the flow failed; see the run history for details",
                )),
            )
        }
    };
    record(state, f, request_id, status, console, error, ms);
    if let Some(e) = api_error {
        return Err(e);
    }
    let Some(r) = outcome.response else {
        return Ok(StatusCode::OK.into_response());
    };
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK);
    let mut res = match r.body {
        FlowBody::Empty => Response::new(Body::empty()),
        FlowBody::Text(t) => {
            let mut res = Response::new(Body::from(t));
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            res
        }
        FlowBody::Json(j) => {
            let mut res = Response::new(Body::from(j));
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            res
        }
    };
    *res.status_mut() = status;
    for (k, v) in r.headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            res.headers_mut().insert(k, v);
        }
    }
    Ok(res)
}

fn flow_error_detail(e: &FlowError) -> String {
    match e {
        FlowError::Thrown { message, stack } => match stack {
            Some(s) if !s.is_empty() => format!("{message}\n{s}"),
            _ => message.clone(),
        },
        FlowError::Compile { message } => format!("the script does not compile: {message}"),
        FlowError::MemoryLimit => "the flow went over its memory limit".to_owned(),
        FlowError::Timeout => "the flow ran past its timeout".to_owned(),
        FlowError::Internal(m) => format!("internal error: {m}"),
    }
}

fn console_text(outcome: &FlowOutcome) -> Option<String> {
    if outcome.console.is_empty() {
        return None;
    }
    let lines: Vec<String> = outcome
        .console
        .iter()
        .map(|l| {
            let level = match l.level {
                ConsoleLevel::Debug => "debug",
                ConsoleLevel::Log => "log",
                ConsoleLevel::Info => "info",
                ConsoleLevel::Warn => "warn",
                ConsoleLevel::Error => "error",
            };
            format!("[{level}] {}", l.text)
        })
        .collect();
    Some(lines.join("\n"))
}

fn record(
    state: &AppState,
    f: &LoadedFunction,
    request_id: &str,
    status: RunStatus,
    output: Option<String>,
    error: Option<String>,
    duration_ms: f64,
) {
    let now = chrono::Utc::now();
    state.runs.record(RunRecord {
        id: crate::id::new_id().to_string(),
        function: f.function.name.clone(),
        kind: "webhook".into(),
        version: f.hash.clone(),
        trigger: "request".into(),
        request_id: Some(request_id.to_owned()),
        scheduled_for: None,
        started_at: now - chrono::Duration::microseconds((duration_ms * 1000.0) as i64),
        finished_at: Some(now),
        status,
        duration_ms: Some(duration_ms),
        output,
        error,
        rows_affected: None,
        file: None,
    });
}

fn http_method(m: &Method) -> Option<HttpMethod> {
    match *m {
        Method::GET => Some(HttpMethod::Get),
        Method::POST => Some(HttpMethod::Post),
        Method::PUT => Some(HttpMethod::Put),
        Method::DELETE => Some(HttpMethod::Delete),
        _ => None,
    }
}

/// `BODY` and `FORM_PARAMS` from the body, by content type; an empty body needs no type.
fn parse_body(headers: &HeaderMap, bytes: &[u8]) -> Result<(Value, Map<String, Value>), ApiError> {
    if bytes.is_empty() {
        return Ok((Value::Null, Map::new()));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => serde_json::from_slice::<Value>(bytes)
            .map(|v| (v, Map::new()))
            .map_err(|e| ApiError::bad_request(format!("malformed JSON body: {e}"))),
        "application/x-www-form-urlencoded" => {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| ApiError::bad_request("malformed form body: not UTF-8"))?;
            Ok((Value::Null, pairs_object(form_pairs(text)?)))
        }
        "" => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a request with a body needs content-type application/json or application/x-www-form-urlencoded",
        )),
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("content type {other:?} is not accepted; use application/json or application/x-www-form-urlencoded"),
        )),
    }
}

/// Decodes `a=1&b=x+y` strictly: a `%` not followed by two hex digits is an error.
fn form_pairs(text: &str) -> Result<Vec<(String, String)>, ApiError> {
    let decode = |s: &str| -> Result<String, ApiError> {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = bytes
                        .get(i + 1..i + 3)
                        .and_then(|h| std::str::from_utf8(h).ok())
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                        .ok_or_else(|| {
                            ApiError::bad_request(format!(
                                "malformed form body: bad escape in {s:?}"
                            ))
                        })?;
                    out.push(hex);
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8(out)
            .map_err(|_| ApiError::bad_request("malformed form body: not UTF-8 after decoding"))
    };
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

/// Repeated keys become arrays of strings, in order.
fn pairs_object(pairs: Vec<(String, String)>) -> Map<String, Value> {
    let mut map = Map::new();
    for (k, v) in pairs {
        match map.get_mut(&k) {
            Some(Value::Array(a)) => a.push(Value::String(v)),
            Some(prev) => {
                let first = std::mem::take(prev);
                *prev = Value::Array(vec![first, Value::String(v)]);
            }
            None => {
                map.insert(k, Value::String(v));
            }
        }
    }
    map
}

fn query_object(query: Option<&str>) -> Map<String, Value> {
    // The query string is lenient: a bad escape keeps the raw text rather than failing the request.
    let pairs = query
        .map(|q| {
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    let dec = |s: &str| {
                        form_pairs(&format!("x={s}"))
                            .ok()
                            .and_then(|mut v| v.pop())
                            .map_or_else(|| s.to_owned(), |(_, v)| v)
                    };
                    (dec(k), dec(v))
                })
                .collect()
        })
        .unwrap_or_default();
    pairs_object(pairs)
}

/// Names lower-cased; repeated headers joined with `, `.
fn headers_object(headers: &HeaderMap) -> Map<String, Value> {
    let mut map = Map::new();
    for (k, v) in headers {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        match map.get_mut(k.as_str()) {
            Some(Value::String(prev)) => {
                prev.push_str(", ");
                prev.push_str(&v);
            }
            _ => {
                map.insert(k.as_str().to_owned(), Value::String(v));
            }
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_and_queries_decode_with_repeats_as_arrays() {
        let form =
            pairs_object(form_pairs("name=Ana+Li&tag=a&tag=b&e=%C3%A9&empty=").expect("valid"));
        assert_eq!(
            Value::Object(form),
            serde_json::json!({"name": "Ana Li", "tag": ["a", "b"], "e": "é", "empty": ""})
        );
        assert!(form_pairs("bad=%zz").is_err());
        let q = query_object(Some("a=1&a=2&b=%20x&c"));
        assert_eq!(
            Value::Object(q),
            serde_json::json!({"a": ["1", "2"], "b": " x", "c": ""})
        );
    }
}
