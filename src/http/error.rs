//! The one error type of the HTTP layer.
//!
//! Handlers return `Err(ApiError)`; the response carries the message in an extension, and the
//! request-id layer (`request_id.rs`) renders every error as `{"error": …, "request_id": …}` so that
//! no handler has to thread the request id through.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Extra headers, e.g. `Allow` on 405 and `Retry-After` on 503.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// The human message of an error response, picked up by the request-id layer.
#[derive(Debug, Clone)]
pub struct ErrorMessage(pub String);

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = self.status.into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            );
        }
        for (name, value) in self.headers {
            res.headers_mut().insert(name, value);
        }
        res.extensions_mut().insert(ErrorMessage(self.message));
        res
    }
}
