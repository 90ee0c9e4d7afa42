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
    #[error("too many concurrent streams (limit {limit}); retry with backoff")]
    TooManyStreams { limit: usize },
    #[error("the request's deadline passed while it was queued; inference was not run")]
    DeadlineExceeded,
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
            Self::DeadlineExceeded => "deadline_exceeded",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    pub fn code(&self) -> tonic::Code {
        use tonic::Code;
        match self {
            Self::Audio(AudioError::Io(_)) | Self::Internal(_) => Code::Internal,
            Self::Audio(_) | Self::BadRequest { .. } => Code::InvalidArgument,
            Self::ModelNotFound(_) => Code::NotFound,
            Self::QueueFull { .. } | Self::TooManyStreams { .. } => Code::ResourceExhausted,
            Self::DeadlineExceeded => Code::DeadlineExceeded,
            Self::Unavailable(_) => Code::Unavailable,
        }
    }

    pub fn http_status(&self) -> u16 {
        use tonic::Code;
        match self.code() {
            Code::InvalidArgument => 400,
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
        let mut status = tonic::Status::new(e.code(), e.to_string());
        if let Ok(v) = e.name().parse() {
            status.metadata_mut().insert(ERROR_NAME_KEY, v);
        }
        status
    }
}
