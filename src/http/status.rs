//! What is loaded and how the process is doing: `/api/functions`, `/healthz`, `/readyz`,
//! `/metrics`.

use std::path::Path;

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use super::{ApiError, AppState};
use crate::config::model::{FunctionKind, Schedule};
use crate::config::schedule::next_runs;
use crate::config::Diagnostic;
use crate::snapshot::{FileState, FileStatus, LoadedFunction, ReloadRecord, Snapshot};

/// How many upcoming runs a scheduler's entry shows.
const NEXT_RUNS: usize = 5;
/// How many recorded runs a function's entry shows.
const RECENT_RUNS: i64 = 20;

#[derive(Serialize)]
struct FunctionView<'a> {
    name: Option<&'a str>,
    r#type: Option<&'static str>,
    enabled: Option<bool>,
    description: Option<&'a str>,
    file: String,
    status: FileStatus,
    errors: &'a [Diagnostic],
    hash: &'a str,
    loaded_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    schedule: Option<ScheduleView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    methods: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_types: Option<&'a [String]>,
}

#[derive(Serialize)]
struct ScheduleView<'a> {
    #[serde(flatten)]
    schedule: &'a Schedule,
    next_runs: Vec<String>,
}

fn live_view(f: &LoadedFunction) -> FunctionView<'_> {
    let (schedule, methods, event_types) = match &f.function.kind {
        FunctionKind::Scheduler(s) => {
            let runs = next_runs(&s.schedule.cron, s.schedule.timezone, Utc::now(), NEXT_RUNS);
            let view = ScheduleView {
                schedule: &s.schedule,
                next_runs: runs.iter().map(|t| t.to_rfc3339()).collect(),
            };
            (Some(view), None, None)
        }
        FunctionKind::Webhook(w) => (
            None,
            Some(w.methods.iter().map(|m| m.as_str()).collect()),
            None,
        ),
        FunctionKind::Event(e) => (None, None, Some(e.types.as_slice())),
    };
    FunctionView {
        name: Some(&f.function.name),
        r#type: Some(f.function.kind.type_name()),
        enabled: Some(f.function.enabled),
        description: f.function.description.as_deref(),
        file: f.file.display().to_string(),
        status: f.status(),
        errors: &f.errors,
        hash: &f.hash,
        loaded_at: Some(f.loaded_at),
        schedule,
        methods,
        event_types,
    }
}

fn rejected_view<'a>(path: &Path, state: &'a FileState) -> FunctionView<'a> {
    FunctionView {
        name: state.name.as_deref(),
        r#type: None,
        enabled: None,
        description: None,
        file: path.display().to_string(),
        status: FileStatus::Rejected,
        errors: &state.errors,
        hash: &state.hash,
        loaded_at: None,
        schedule: None,
        methods: None,
        event_types: None,
    }
}

fn all_views(snap: &Snapshot) -> Vec<FunctionView<'_>> {
    let mut views: Vec<_> = snap.functions.values().map(|f| live_view(f)).collect();
    views.extend(
        snap.files
            .iter()
            .filter(|(_, s)| s.status == FileStatus::Rejected)
            .map(|(p, s)| rejected_view(p, s)),
    );
    views
}

fn reloads(snap: &Snapshot) -> Vec<&ReloadRecord> {
    snap.reloads.iter().rev().collect()
}

pub async fn list_functions(State(state): State<AppState>) -> impl IntoResponse {
    let snap = state.snapshot();
    Json(json!({
        "generation": snap.generation,
        "functions": all_views(&snap),
        "reloads": reloads(&snap),
    }))
}

pub async fn get_function(
    State(state): State<AppState>,
    UrlPath(name): UrlPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    let snap = state.snapshot();
    let view = all_views(&snap)
        .into_iter()
        .find(|v| v.name == Some(name.as_str()))
        .ok_or_else(|| ApiError::not_found(format!("no function named {name:?}")))?;
    let runs = match state.store.recent_runs(&name, RECENT_RUNS).await {
        Ok(runs) => json!(runs),
        Err(e) => json!({ "error": e.to_string() }),
    };
    Ok(Json(json!({
        "function": view,
        "runs": runs,
        "reloads": reloads(&snap),
    })))
}

pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// Ready once the first load of the functions directory has completed.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let snap = state.snapshot();
    if snap.is_loaded() {
        (
            StatusCode::OK,
            Json(json!({ "status": "ready", "generation": snap.generation })),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "loading" })),
        )
    }
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
