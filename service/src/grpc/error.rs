//! The service's errors as gRPC statuses: each error class is one status code, and the stable
//! error name rides in the `vericlip-error` trailer. The one place that maps them.

use tonic::Code;

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

impl From<ServiceError> for tonic::Status {
    fn from(e: ServiceError) -> Self {
        let mut status = tonic::Status::new(code(e.class()), e.public_message());
        if let Ok(v) = e.name().parse() {
            status.metadata_mut().insert(ERROR_NAME_KEY, v);
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
