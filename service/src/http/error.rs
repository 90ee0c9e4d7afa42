//! The service's errors as HTTP answers: each error class is one status (one name has its own:
//! `message_too_large` is 413, not the class's 429, which generic retry layers would retry), and
//! the body is the JSON error (`{"error": {"name", "code", "message"}}`) that WebSocket error
//! messages carry too; a 429 or 503 says when to retry (`Retry-After`), a 401 how to
//! authenticate (`WWW-Authenticate`). Unknown routes and methods get the same JSON error. The one
//! place that maps them.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use crate::correlation::ErrorMessage;
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

/// The HTTP status of `e`: its class's, but 413 for a request over the size limit.
pub fn status_of(e: &ServiceError) -> StatusCode {
    if e.name() == "message_too_large" { StatusCode::PAYLOAD_TOO_LARGE } else { status(e.class()) }
}

/// The `WWW-Authenticate` challenge of a 401: the API key as a bearer token.
pub const BEARER_CHALLENGE: &str = "Bearer realm=\"vericlip\"";

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
        let message = body.message.clone();
        let mut response =
            (status_of(&self), [(ERROR_NAME_KEY, body.name)], axum::Json(json!({ "error": body }))).into_response();
        let headers = response.headers_mut();
        if let Some(delay) = self.retry_after() {
            // Whole seconds, rounded up: "Retry-After: 0" would invite a retry storm.
            let seconds = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, header::HeaderValue::from(seconds.max(1)));
        }
        if self.class() == ErrorClass::Unauthenticated {
            headers.insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static(BEARER_CHALLENGE));
        }
        response.extensions_mut().insert(ErrorMessage(message));
        response
    }
}

/// The JSON error answer for a request no route takes: 404 `not_found`.
pub async fn not_found(uri: http::Uri) -> Response {
    let body = ErrorBody {
        name: "not_found",
        code: "NOT_FOUND",
        message: format!("no route {}; see /openapi.json", crate::error::quote_bounded(uri.path())),
    };
    json_error(StatusCode::NOT_FOUND, body, None)
}

/// The JSON error answer for a route called with a method it does not take (routes outside
/// `/v1/`, which have no `method_not_allowed` of their own).
pub async fn any_method_not_allowed(method: http::Method, uri: http::Uri) -> Response {
    let body = ErrorBody {
        name: "method_not_allowed",
        code: "UNIMPLEMENTED",
        message: format!(
            "{} {} is not supported",
            crate::error::quote_bounded(method.as_str()),
            crate::error::quote_bounded(uri.path())
        ),
    };
    json_error(StatusCode::METHOD_NOT_ALLOWED, body, None)
}

fn json_error(status: StatusCode, body: ErrorBody, allow: Option<&'static str>) -> Response {
    let message = body.message.clone();
    let mut response = (status, [(ERROR_NAME_KEY, body.name)], axum::Json(json!({ "error": body }))).into_response();
    if let Some(allow) = allow {
        response.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static(allow));
    }
    response.extensions_mut().insert(ErrorMessage(message));
    response
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
        std::future::ready(json_error(StatusCode::METHOD_NOT_ALLOWED, body, Some(allow)))
    }
}
