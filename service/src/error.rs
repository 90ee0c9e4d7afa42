//! Every error a request can meet: one class (what kind of failure it is, which each transport
//! maps to its own status once: `grpc::error` to a gRPC code, `http::error` to an HTTP status)
//! and one stable name (sent in the `vericlip-error` trailer and in HTTP error bodies, and used as
//! a metrics label). Nothing here knows a transport.

use vericlip_core::AudioError;

/// Trailer / header carrying the stable error name.
pub const ERROR_NAME_KEY: &str = "vericlip-error";

#[derive(Debug, Clone, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Audio(#[from] AudioError),
    #[error("{message}")]
    BadRequest { name: &'static str, message: String },
    #[error("{0}")]
    ModelNotFound(String),
    #[error("server is at capacity ({limit} requests in progress); retry with backoff")]
    QueueFull { limit: usize },
    #[error("{0}")]
    MessageTooLarge(String),
    #[error("too many concurrent streams (limit {limit}); retry with backoff")]
    TooManyStreams { limit: usize },
    #[error("the request's deadline passed while it was queued; inference was not run")]
    DeadlineExceeded,
    #[error("the stream was idle for {seconds} s (no audio sent or no verdicts read); closed")]
    StreamIdle { seconds: f64 },
    #[error("the request body stalled: nothing arrived for {seconds} s")]
    BodyStalled { seconds: f64 },
    /// A refusal made outside the request's handler (a request body refused on its way in by
    /// `net::body`, a key in the wrong place), passed on with its name and class.
    #[error("{message}")]
    Relayed { name: &'static str, class: ErrorClass, message: String },
    #[error("missing or wrong API key: send `authorization: Bearer <key>`")]
    Unauthenticated,
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServiceError {
    pub fn bad_request(name: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest { name, message: message.into() }
    }

    /// Stable, machine-readable name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Audio(e) => e.name(),
            Self::BadRequest { name, .. } => name,
            Self::ModelNotFound(_) => "model_not_found",
            Self::QueueFull { .. } => "queue_full",
            Self::TooManyStreams { .. } => "too_many_streams",
            Self::MessageTooLarge(_) => "message_too_large",
            Self::DeadlineExceeded => "deadline_exceeded",
            Self::StreamIdle { .. } => "stream_idle",
            Self::BodyStalled { .. } => "body_stalled",
            Self::Unauthenticated => "unauthenticated",
            Self::Relayed { name, .. } => name,
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    /// The message as clients and logs see it: at most 1,024 characters, control characters
    /// escaped (a request-controlled string can neither bloat an answer nor forge a log line).
    pub fn public_message(&self) -> String {
        const MAX: usize = 1024;
        let text = self.to_string();
        let mut out: String = text
            .chars()
            .take(MAX)
            .flat_map(|c| if c.is_control() { c.escape_debug().collect::<Vec<_>>() } else { vec![c] })
            .collect();
        if text.chars().nth(MAX).is_some() {
            out.push_str("...");
        }
        out
    }

    /// What kind of failure this is; each transport maps the class to its own status.
    pub fn class(&self) -> ErrorClass {
        use ErrorClass as C;
        match self {
            Self::Audio(AudioError::Io(_)) | Self::Internal(_) => C::Internal,
            Self::Audio(AudioError::OverBudget { .. }) => C::ResourceExhausted,
            Self::Audio(AudioError::Cancelled) => C::Cancelled,
            Self::Unauthenticated => C::Unauthenticated,
            Self::Relayed { class, .. } => *class,
            Self::Audio(_) | Self::BadRequest { .. } => C::InvalidArgument,
            Self::ModelNotFound(_) => C::NotFound,
            Self::QueueFull { .. } | Self::TooManyStreams { .. } | Self::MessageTooLarge(_) => C::ResourceExhausted,
            Self::DeadlineExceeded | Self::StreamIdle { .. } | Self::BodyStalled { .. } => C::DeadlineExceeded,
            Self::Unavailable(_) => C::Unavailable,
        }
    }

    /// When a retry may succeed, how long to wait first (gRPC `RetryInfo` and
    /// `grpc-retry-pushback-ms`, HTTP `Retry-After`); `None`: retrying the same request is
    /// pointless (it is wrong, too large, or unknown to us) or not ours to advise.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        use std::time::Duration;
        match self {
            // Capacity frees as requests finish: soon.
            Self::QueueFull { .. } => Some(Duration::from_millis(250)),
            Self::Audio(AudioError::OverBudget { .. }) => Some(Duration::from_millis(500)),
            Self::Relayed { class: ErrorClass::ResourceExhausted, name, .. } if *name != "message_too_large" => {
                Some(Duration::from_millis(500))
            }
            // A stream slot frees when a whole stream ends; a model loads, a pod drains.
            Self::TooManyStreams { .. } | Self::Unavailable(_) => Some(Duration::from_secs(1)),
            _ => None,
        }
    }

    /// A request's outcome as metrics count it: `Ok`, or the class of its error.
    pub fn outcome<T>(result: &Result<T, Self>) -> Result<(), ErrorClass> {
        result.as_ref().map(|_| ()).map_err(Self::class)
    }
}

/// The kinds of failure, named as gRPC names its status codes (`INVALID_ARGUMENT`, ...): that is
/// the `code` of an HTTP error body and the `code` label of the request metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The request is wrong (bad audio, a bad field); retrying it unchanged fails again.
    InvalidArgument,
    Unauthenticated,
    /// The client went away (or cancelled) before the answer.
    Cancelled,
    NotFound,
    /// A limit was reached (capacity, memory budget, message size); retry with backoff.
    ResourceExhausted,
    /// A time limit passed (the client's deadline, a stream's idle limit, a stalled body).
    DeadlineExceeded,
    /// Not now (no model yet, shutting down, client gone); retry, maybe elsewhere.
    Unavailable,
    Internal,
}

impl ErrorClass {
    pub fn name(self) -> &'static str {
        match self {
            Self::InvalidArgument => "INVALID_ARGUMENT",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Cancelled => "CANCELLED",
            Self::NotFound => "NOT_FOUND",
            Self::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Self::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Self::Unavailable => "UNAVAILABLE",
            Self::Internal => "INTERNAL",
        }
    }
}

/// A request-controlled string for an error message or log line: at most 64 characters, control
/// characters escaped, marked when cut.
pub fn quote_bounded(s: &str) -> String {
    const MAX: usize = 64;
    let mut out: String = s.chars().take(MAX).flat_map(char::escape_debug).collect();
    if s.chars().nth(MAX).is_some() {
        out.push_str("...");
    }
    format!("\"{out}\"")
}
