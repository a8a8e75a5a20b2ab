//! The events API: `POST /api/events`, `GET /api/events/{id}`, `POST /api/deliveries/{id}/retry`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

use super::{ApiError, AppState};
use crate::events::PublishError;
use crate::store::outbox::RetryResult;

/// The largest event body accepted.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// Accepts an event: 202 with its id once it is stored with its deliveries.
pub async fn ingest(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    if body.len() > MAX_EVENT_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the event is larger than {MAX_EVENT_BYTES} bytes"),
        ));
    }
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?;
    let Value::Object(event) = value else {
        return Err(ApiError::bad_request(
            "an event is a JSON object with a string `type`",
        ));
    };
    match state.events.publish(event, "api").await {
        Ok(p) => Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "id": p.id, "duplicate": !p.new, "deliveries": p.deliveries })),
        )),
        Err(e @ PublishError::Malformed(_)) => Err(ApiError::bad_request(e.to_string())),
        Err(e @ PublishError::Invalid { .. }) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            e.to_string(),
        )),
        Err(e @ PublishError::Store(_)) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            e.to_string(),
        )),
    }
}

/// An event and the state of each of its deliveries, with every attempt.
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let internal =
        |e: crate::db::DbError| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    let event = state
        .store
        .event(&id)
        .await
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found(format!("no event with id {id:?}")))?;
    let deliveries = state.store.deliveries_of(&id).await.map_err(internal)?;
    Ok(Json(json!({ "event": event, "deliveries": deliveries })))
}

/// Puts a dead-lettered delivery back in the queue with a fresh attempt budget.
pub async fn retry(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let result = state
        .store
        .retry_delivery(&id)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    match result {
        RetryResult::Requeued => {
            state.events.wake_deliverer();
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "id": id, "status": "pending" })),
            ))
        }
        RetryResult::NotFound => Err(ApiError::not_found(format!("no delivery with id {id:?}"))),
        RetryResult::NotDead => Err(ApiError::new(
            StatusCode::CONFLICT,
            "only a dead-lettered delivery can be retried",
        )),
    }
}
