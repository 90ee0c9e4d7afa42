//! The service's errors as HTTP answers: each error class is one status, and the body is the
//! JSON error (`{"error": {"name", "code", "message"}}`) that WebSocket error messages carry too.
//! The one place that maps them.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use crate::error::{ERROR_NAME_KEY, ErrorClass, ServiceError};

pub fn status(class: ErrorClass) -> StatusCode {
    match class {
        ErrorClass::InvalidArgument => StatusCode::BAD_REQUEST,
        ErrorClass::Unauthenticated => StatusCode::UNAUTHORIZED,
        // nginx's "client closed request": the client is gone, nobody reads this.
        ErrorClass::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        ErrorClass::NotFound => StatusCode::NOT_FOUND,
        ErrorClass::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        ErrorClass::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        ErrorClass::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorClass::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// An error as HTTP JSON bodies and WebSocket messages carry it.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorBody {
    pub name: &'static str,
    pub code: &'static str,
    pub message: String,
}

impl ErrorBody {
    pub fn of(e: &ServiceError) -> Self {
        Self { name: e.name(), code: e.class().name(), message: e.public_message() }
    }
}

impl IntoResponse for ServiceError {
    fn into_response(self) -> Response {
        let body = ErrorBody::of(&self);
        (status(self.class()), [(ERROR_NAME_KEY, body.name)], axum::Json(json!({ "error": body }))).into_response()
    }
}

/// 405 for an API route called with the wrong method, with the JSON error body every other
/// error has (name `method_not_allowed`) and the `allow` header.
pub fn method_not_allowed(
    allow: &'static str,
) -> impl Fn(http::Method, http::Uri) -> std::future::Ready<Response> + Clone + Send + Sync + 'static {
    move |method, uri| {
        let body = ErrorBody {
            name: "method_not_allowed",
            code: "UNIMPLEMENTED",
            message: format!(
                "{} {} is not supported; use {allow} {}",
                crate::error::quote_bounded(method.as_str()),
                uri.path(),
                uri.path()
            ),
        };
        std::future::ready(
            (
                StatusCode::METHOD_NOT_ALLOWED,
                [(header::ALLOW.as_str(), allow), (ERROR_NAME_KEY, body.name)],
                axum::Json(json!({ "error": body })),
            )
                .into_response(),
        )
    }
}
