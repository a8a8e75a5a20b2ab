//! `GET /api/exports/{name}/{file}`: download a finished export file.
//!
//! Only plain file names inside the function's export folder are served: no separators, no `..`,
//! no hidden (in-progress temporary) files; the file is streamed, never read whole.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use tokio_util::io::ReaderStream;

use super::{ApiError, AppState};
use crate::config::raw::FunctionName;

pub async fn download(
    State(state): State<AppState>,
    Path((name, file)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::not_found(format!("no export {file:?} of {name:?}"));
    if FunctionName::parse(&name).is_err()
        || file.is_empty()
        || file.starts_with('.')
        || file.contains(['/', '\\', '\0'])
    {
        return Err(not_found());
    }
    let path = state.exports_dir.join(&name).join(&file);
    let f = tokio::fs::File::open(&path)
        .await
        .map_err(|_| not_found())?;
    let meta = f.metadata().await.map_err(|_| not_found())?;
    if !meta.is_file() {
        return Err(not_found());
    }
    let content_type = if file.ends_with(".xlsx") {
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    } else if file.ends_with(".csv") {
        "text/csv; charset=utf-8"
    } else {
        "application/octet-stream"
    };
    let disposition = format!("attachment; filename=\"{}\"", file.replace('"', ""));
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CONTENT_LENGTH, meta.len().to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        Body::from_stream(ReaderStream::new(f)),
    )
        .into_response())
}
