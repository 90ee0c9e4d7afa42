//! The service's errors as gRPC statuses: each error class is one status code; the stable
//! error name rides in the `vericlip-error` trailer and in the `google.rpc.Status` details
//! (`grpc-status-details-bin`): an `ErrorInfo` (reason = the name, domain `vericlip`) and, where
//! a retry helps, a `RetryInfo`. A RESOURCE_EXHAUSTED also says whether the clients' retry policy
//! may retry it (`grpc-retry-pushback-ms`: the delay, or -1 for "do not": the request is too
//! large). The one place that maps them.

use std::collections::HashMap;

use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::{ERROR_NAME_KEY, ErrorClass, ServiceError};
use crate::net::body::BODY_TOO_SLOW;

pub fn code(class: ErrorClass) -> Code {
    match class {
        ErrorClass::InvalidArgument => Code::InvalidArgument,
        ErrorClass::Unauthenticated => Code::Unauthenticated,
        ErrorClass::Cancelled => Code::Cancelled,
        ErrorClass::NotFound => Code::NotFound,
        ErrorClass::ResourceExhausted => Code::ResourceExhausted,
        ErrorClass::DeadlineExceeded => Code::DeadlineExceeded,
        ErrorClass::Unavailable => Code::Unavailable,
        ErrorClass::Internal => Code::Internal,
    }
}

/// The class of a status made outside the handler (see `relayed`).
fn class(code: Code) -> ErrorClass {
    match code {
        Code::InvalidArgument => ErrorClass::InvalidArgument,
        Code::Unauthenticated => ErrorClass::Unauthenticated,
        Code::Cancelled => ErrorClass::Cancelled,
        Code::NotFound => ErrorClass::NotFound,
        Code::ResourceExhausted => ErrorClass::ResourceExhausted,
        Code::DeadlineExceeded => ErrorClass::DeadlineExceeded,
        Code::Unavailable => ErrorClass::Unavailable,
        _ => ErrorClass::Internal,
    }
}

/// `ErrorInfo.domain` of every error the service makes.
pub const ERROR_DOMAIN: &str = "vericlip";
/// gRPC's retry pushback (gRFC A6): how long a client's retry policy waits, or -1: no retry.
pub const RETRY_PUSHBACK_KEY: &str = "grpc-retry-pushback-ms";

impl From<ServiceError> for tonic::Status {
    fn from(e: ServiceError) -> Self {
        let mut details = ErrorDetails::with_error_info(e.name(), ERROR_DOMAIN, HashMap::<String, String>::new());
        let retry_after = e.retry_after();
        if let Some(delay) = retry_after {
            details.set_retry_info(Some(delay));
        }
        let mut status = tonic::Status::with_error_details(code(e.class()), e.public_message(), details);
        if let Ok(v) = e.name().parse() {
            status.metadata_mut().insert(ERROR_NAME_KEY, v);
        }
        if e.class() == ErrorClass::ResourceExhausted {
            let pushback = retry_after.map_or(-1, |d| d.as_millis() as i64);
            if let Ok(v) = pushback.to_string().parse() {
                status.metadata_mut().insert(RETRY_PUSHBACK_KEY, v);
            }
        }
        status
    }
}

/// A request body refused by the memory budget, or stalled.
pub const BODY_REFUSED: &[&str] = &["memory_budget_exhausted", "body_stalled"];
/// ... or too slow (a message under way, not a stream's first).
pub const BODY_REFUSED_OR_SLOW: &[&str] = &["memory_budget_exhausted", "body_stalled", BODY_TOO_SLOW];

/// The error behind a status that a refused request body produced (`net::body`), if it is one
/// of `names`.
pub fn relayed(status: &tonic::Status, names: &[&'static str]) -> Option<ServiceError> {
    let name = status.metadata().get(ERROR_NAME_KEY)?.to_str().ok()?;
    let name = names.iter().copied().find(|n| *n == name)?;
    Some(ServiceError::Relayed { name, class: class(status.code()), message: status.message().to_string() })
}

/// A request body's refusal as tonic finds it: the status in the error's source chain.
pub fn body_refusal(error: &ServiceError) -> Box<dyn std::error::Error + Send + Sync> {
    Box::new(tonic::Status::from(error.clone()))
}

/// Completes an error status made outside the service (by tonic: an unknown method, a message
/// over the size limit) in `map` (trailers, or the headers of a trailers-only answer) so that it
/// too carries the `google.rpc.Status` details: `ErrorInfo` with its name (the `vericlip-error`
/// one when a layer set it, else the status code's, e.g. `unimplemented`) and, for a
/// RESOURCE_EXHAUSTED, a pushback of -1 (nothing says a retry helps).
pub fn complete_status(map: &mut http::HeaderMap) {
    if map.contains_key("grpc-status-details-bin") {
        return;
    }
    let Some(status) = tonic::Status::from_header_map(map) else { return };
    if status.code() == Code::Ok {
        return;
    }
    let name = match map.get(ERROR_NAME_KEY).and_then(|v| v.to_str().ok()) {
        Some(name) => name.to_string(),
        None => snake_case(&format!("{:?}", status.code())),
    };
    let details = ErrorDetails::with_error_info(name, ERROR_DOMAIN, HashMap::<String, String>::new());
    let completed = tonic::Status::with_error_details(status.code(), status.message(), details);
    if completed.add_header(map).is_err() {
        return;
    }
    if status.code() == Code::ResourceExhausted && !map.contains_key(RETRY_PUSHBACK_KEY) {
        map.insert(RETRY_PUSHBACK_KEY, http::HeaderValue::from_static("-1"));
    }
}

/// `InvalidArgument` -> `invalid_argument`.
fn snake_case(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tonic_types::StatusExt;

    use super::*;

    #[test]
    fn statuses_carry_error_info_and_retry_info_where_a_retry_helps() {
        let status = tonic::Status::from(ServiceError::QueueFull { limit: 4 });
        assert_eq!(status.code(), Code::ResourceExhausted);
        let details = status.get_error_details();
        let info = details.error_info().expect("ErrorInfo");
        assert_eq!((info.reason.as_str(), info.domain.as_str()), ("queue_full", ERROR_DOMAIN));
        assert_eq!(details.retry_info().and_then(|r| r.retry_delay), Some(Duration::from_millis(250)));
        assert_eq!(status.metadata().get(RETRY_PUSHBACK_KEY).unwrap(), "250");
        assert_eq!(status.metadata().get(ERROR_NAME_KEY).unwrap(), "queue_full");

        let status = tonic::Status::from(ServiceError::MessageTooLarge("big".into()));
        assert!(status.get_error_details().retry_info().is_none());
        assert_eq!(status.metadata().get(RETRY_PUSHBACK_KEY).unwrap(), "-1");

        let status = tonic::Status::from(ServiceError::bad_request("empty_audio", "no audio"));
        let details = status.get_error_details();
        assert_eq!(details.error_info().unwrap().reason, "empty_audio");
        assert!(details.retry_info().is_none());
        assert!(status.metadata().get(RETRY_PUSHBACK_KEY).is_none());

        let status = tonic::Status::from(ServiceError::Unavailable("no model".into()));
        assert_eq!(status.get_error_details().retry_info().and_then(|r| r.retry_delay), Some(Duration::from_secs(1)));
    }

    #[test]
    fn statuses_made_by_tonic_are_completed() {
        let mut map = http::HeaderMap::new();
        tonic::Status::unimplemented("no such method").add_header(&mut map).unwrap();
        complete_status(&mut map);
        let status = tonic::Status::from_header_map(&map).unwrap();
        assert_eq!(status.code(), Code::Unimplemented);
        assert_eq!(status.get_error_details().error_info().unwrap().reason, "unimplemented");

        let mut map = http::HeaderMap::new();
        tonic::Status::resource_exhausted("message too large").add_header(&mut map).unwrap();
        map.insert(ERROR_NAME_KEY, http::HeaderValue::from_static("message_too_large"));
        complete_status(&mut map);
        let status = tonic::Status::from_header_map(&map).unwrap();
        assert_eq!(status.get_error_details().error_info().unwrap().reason, "message_too_large");
        assert_eq!(map.get(RETRY_PUSHBACK_KEY).unwrap(), "-1");
    }
}
