//! Every error a request can meet maps to one gRPC status code, one HTTP status and one stable
//! name (sent in the `vericlip-error` trailer and in HTTP error bodies, and used as a metrics label).

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
    /// A request body refused on its way in (`net::body`), as tonic relayed its status.
    #[error("{message}")]
    Relayed { name: &'static str, code: tonic::Code, message: String },
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

    /// The error behind a status that a refused request body produced, if it is one.
    pub fn relayed(status: &tonic::Status) -> Option<Self> {
        let name = status.metadata().get(ERROR_NAME_KEY)?.to_str().ok()?;
        let name = ["memory_budget_exhausted", "body_stalled"].into_iter().find(|n| *n == name)?;
        Some(Self::Relayed { name, code: status.code(), message: status.message().to_string() })
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

    pub fn code(&self) -> tonic::Code {
        use tonic::Code;
        match self {
            Self::Audio(AudioError::Io(_)) | Self::Internal(_) => Code::Internal,
            Self::Audio(AudioError::OverBudget { .. }) => Code::ResourceExhausted,
            Self::Audio(AudioError::Cancelled) => Code::Cancelled,
            Self::Unauthenticated => Code::Unauthenticated,
            Self::Relayed { code, .. } => *code,
            Self::Audio(_) | Self::BadRequest { .. } => Code::InvalidArgument,
            Self::ModelNotFound(_) => Code::NotFound,
            Self::QueueFull { .. } | Self::TooManyStreams { .. } | Self::MessageTooLarge(_) => Code::ResourceExhausted,
            Self::DeadlineExceeded | Self::StreamIdle { .. } | Self::BodyStalled { .. } => Code::DeadlineExceeded,
            Self::Unavailable(_) => Code::Unavailable,
        }
    }

    pub fn http_status(&self) -> u16 {
        use tonic::Code;
        match self.code() {
            Code::InvalidArgument => 400,
            Code::Unauthenticated => 401,
            Code::Cancelled => 499,
            Code::NotFound => 404,
            Code::ResourceExhausted => 429,
            Code::DeadlineExceeded => 504,
            Code::Unavailable => 503,
            _ => 500,
        }
    }
}

impl From<ServiceError> for tonic::Status {
    fn from(e: ServiceError) -> Self {
        let mut status = tonic::Status::new(e.code(), e.public_message());
        if let Ok(v) = e.name().parse() {
            status.metadata_mut().insert(ERROR_NAME_KEY, v);
        }
        status
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

/// tonic rejects a request message over `max_decoding_message_size` with OUT_OF_RANGE before
/// the service sees it; gRPC's convention (grpc-core, grpc-go) is RESOURCE_EXHAUSTED. This
/// response mapper (a tower layer on the server) rewrites that one case and adds the error name.
pub fn oversized_message_status<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers_mut();
    let out_of_range = headers.get("grpc-status").is_some_and(|v| v == "11");
    let too_large = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|m| m.contains("too large") || m.contains("too%20large"));
    if out_of_range && too_large {
        headers.insert("grpc-status", http::HeaderValue::from_static("8"));
        headers.insert(ERROR_NAME_KEY, http::HeaderValue::from_static("message_too_large"));
    }
    response
}
