//! Correlation of every answer with its request, for the gRPC and HTTP ports alike (one tower
//! layer, `CorrelateLayer`, outermost on both):
//! - a request id: the client's `x-request-id` when it is a sane one (at most 128 visible ASCII
//!   characters of a small set, so it can go into headers and log lines unescaped), else a new
//!   one; it is put in the request's extensions (`Correlation`) for the handlers, and on the
//!   answer: the `x-request-id` response header (gRPC: initial metadata, or the trailers of a
//!   trailers-only error) and, for gRPC, the trailers too;
//! - a W3C `traceparent` (when valid) recorded in the request's span (`trace_id`,
//!   `parent_span_id`), so the server's log lines join the caller's trace;
//! - gRPC error statuses made by a library (tonic) completed with the `google.rpc.Status`
//!   details the service's own carry (`grpc::error::complete_status`);
//! - every error answer logged once, at INFO (the client's fault) or WARN (ours, or "not now"),
//!   with its request id, name and status; rate-limited, with a count of the lines left out.
//!
//! Nothing here knows a handler; handlers read the id with `Correlation::of`.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use http::{HeaderMap, HeaderValue};
use http_body::Frame;
use tracing::Instrument;

pub const REQUEST_ID_HEADER: &str = "x-request-id";
pub const TRACEPARENT_HEADER: &str = "traceparent";
/// Longest incoming request id kept (longer ones are replaced by a new id).
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// A request's correlation data, in its extensions from the layer on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Correlation {
    /// The request id: the client's, or one made here.
    pub id: String,
    /// The caller's trace, from `traceparent`.
    pub trace: Option<TraceParent>,
}

/// The parts of a W3C `traceparent` header the logs need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: String,
    pub parent_id: String,
}

impl Correlation {
    /// From a request's headers: the incoming id if valid (else a new one), the trace if valid.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let id = headers.get(REQUEST_ID_HEADER).and_then(valid_request_id).unwrap_or_else(new_request_id);
        let trace = headers.get(TRACEPARENT_HEADER).and_then(|v| v.to_str().ok()).and_then(TraceParent::parse);
        Self { id, trace }
    }

    /// The request's correlation as found in its extensions (put there by `CorrelateLayer`); a
    /// new one for a request that did not pass the layer (a service called directly, in tests).
    pub fn of(found: Option<&Self>) -> Self {
        found.cloned().unwrap_or_else(|| Self { id: new_request_id(), trace: None })
    }

    /// The span every log line of the request is under.
    fn span(&self, port: &'static str, path: &str) -> tracing::Span {
        let span = tracing::info_span!(
            "request",
            port,
            path = %crate::error::quote_bounded(path),
            request_id = %self.id,
            trace_id = tracing::field::Empty,
            parent_span_id = tracing::field::Empty
        );
        if let Some(t) = &self.trace {
            span.record("trace_id", t.trace_id.as_str());
            span.record("parent_span_id", t.parent_id.as_str());
        }
        span
    }
}

impl TraceParent {
    /// `version-traceid-parentid-flags`, lower-case hex (version `ff` and all-zero ids are
    /// invalid); a later version may add fields after the flags.
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.trim().split('-');
        let (version, trace_id, parent_id, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let hex =
            |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let zero = |s: &str| s.bytes().all(|b| b == b'0');
        let ok = hex(version, 2)
            && version != "ff"
            && hex(trace_id, 32)
            && !zero(trace_id)
            && hex(parent_id, 16)
            && !zero(parent_id)
            && hex(flags, 2)
            && (version != "00" || parts.next().is_none());
        ok.then(|| Self { trace_id: trace_id.to_string(), parent_id: parent_id.to_string() })
    }
}

/// An incoming request id, if it is one to keep: 1 to 128 characters of `A-Z a-z 0-9 - _ . : / + = @`.
fn valid_request_id(value: &HeaderValue) -> Option<String> {
    let bytes = value.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= MAX_REQUEST_ID_LEN
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=@".contains(b));
    ok.then(|| String::from_utf8_lossy(bytes).into_owned())
}

/// A new request id: a per-process prefix (so ids from different pods differ) and a counter.
pub fn new_request_id() -> String {
    static PREFIX: OnceLock<u32> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let prefix = PREFIX.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() ^ d.as_secs() as u32)
            ^ std::process::id().rotate_left(16)
    });
    format!("{prefix:08x}-{:08x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// An error answer as the log line reports it.
#[derive(Debug, Clone, Copy)]
pub struct ErrorAnswer<'a> {
    pub request_id: &'a str,
    /// The stable error name (empty when the answer had none: an error made by a library).
    pub name: &'a str,
    /// gRPC status code name or HTTP status.
    pub status: &'a str,
    pub message: &'a str,
    /// Our fault, or "not now" (5xx, INTERNAL, UNAVAILABLE, ...): WARN; else INFO.
    pub server_side: bool,
}

/// At most this many error lines at once, refilled at `ERROR_LOGS_PER_SECOND`.
const ERROR_LOG_BURST: f64 = 20.0;
const ERROR_LOGS_PER_SECOND: f64 = 10.0;

struct LogBucket {
    tokens: f64,
    at: Instant,
    suppressed: u64,
}

/// Logs an error answer once (each transport calls this where the answer leaves: the layer for
/// gRPC and HTTP, the WebSocket session for its error messages); rate-limited, so a flood of bad
/// requests cannot flood the log. Returns whether it was logged.
pub fn log_error_answer(e: ErrorAnswer<'_>) -> bool {
    static BUCKET: OnceLock<Mutex<LogBucket>> = OnceLock::new();
    let bucket =
        BUCKET.get_or_init(|| Mutex::new(LogBucket { tokens: ERROR_LOG_BURST, at: Instant::now(), suppressed: 0 }));
    let suppressed = {
        let Ok(mut b) = bucket.lock() else { return false };
        let now = Instant::now();
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * ERROR_LOGS_PER_SECOND).min(ERROR_LOG_BURST);
        b.at = now;
        if b.tokens < 1.0 {
            b.suppressed += 1;
            return false;
        }
        b.tokens -= 1.0;
        std::mem::take(&mut b.suppressed)
    };
    let message = crate::error::quote_bounded(e.message);
    if e.server_side {
        tracing::warn!(request_id = e.request_id, error = e.name, status = e.status, %message, suppressed, "error answer");
    } else {
        tracing::info!(request_id = e.request_id, error = e.name, status = e.status, %message, suppressed, "error answer");
    }
    true
}

/// The layer (see the module's comment). `port` names the port in the span.
#[derive(Debug, Clone, Copy)]
pub struct CorrelateLayer {
    pub port: &'static str,
}

impl<S> tower::Layer<S> for CorrelateLayer {
    type Service = Correlate<S>;

    fn layer(&self, inner: S) -> Correlate<S> {
        Correlate { inner, port: self.port }
    }
}

#[derive(Debug, Clone)]
pub struct Correlate<S> {
    inner: S,
    port: &'static str,
}

impl<S, B, RB> tower::Service<http::Request<B>> for Correlate<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    RB: http_body::Body,
{
    type Response = http::Response<CorrelatedBody<RB>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let correlation = Correlation::from_headers(request.headers());
        let span = correlation.span(self.port, request.uri().path());
        let grpc = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        request.extensions_mut().insert(correlation.clone());
        let future = self.inner.call(request).instrument(span.clone());
        Box::pin(async move {
            let mut response = future.await?;
            let id = HeaderValue::from_str(&correlation.id).ok();
            if let Some(id) = &id {
                response.headers_mut().insert(REQUEST_ID_HEADER, id.clone());
            }
            let _enter = span.enter();
            if grpc {
                // A trailers-only answer (an error before any message) has its status here.
                crate::grpc::error::complete_status(response.headers_mut());
                log_grpc_status(response.headers(), &correlation.id);
            } else {
                log_http_error(&response, &correlation.id);
            }
            drop(_enter);
            let trailer_id = if grpc { id } else { None };
            Ok(response.map(|body| CorrelatedBody { inner: body, id: trailer_id, request_id: correlation.id, span }))
        })
    }
}

/// The message of an HTTP error answer, for its log line (`ServiceError::into_response` puts it
/// in the response's extensions).
#[derive(Debug, Clone)]
pub struct ErrorMessage(pub String);

fn log_http_error<RB>(response: &http::Response<RB>, request_id: &str) {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return;
    }
    let name = response.headers().get(crate::error::ERROR_NAME_KEY).and_then(|v| v.to_str().ok()).unwrap_or("");
    let message = response.extensions().get::<ErrorMessage>().map_or("", |m| m.0.as_str());
    log_error_answer(ErrorAnswer {
        request_id,
        name,
        status: status.as_str(),
        message,
        server_side: status.is_server_error() || status == http::StatusCode::TOO_MANY_REQUESTS,
    });
}

/// Logs the gRPC status in `map` (headers of a trailers-only answer, or trailers) if it is an
/// error.
fn log_grpc_status(map: &HeaderMap, request_id: &str) {
    let Some(code) = map.get("grpc-status").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<i32>().ok()) else {
        return;
    };
    if code == 0 {
        return;
    }
    let code = tonic::Code::from_i32(code);
    let name = map.get(crate::error::ERROR_NAME_KEY).and_then(|v| v.to_str().ok()).unwrap_or("");
    let message = map.get("grpc-message").map(|v| percent_decode(v.as_bytes())).unwrap_or_default();
    use tonic::Code as C;
    let server_side = matches!(
        code,
        C::Internal | C::Unavailable | C::ResourceExhausted | C::Unknown | C::DataLoss | C::Unimplemented
    );
    log_error_answer(ErrorAnswer { request_id, name, status: code.description(), message: &message, server_side });
}

/// `grpc-message` is percent-encoded on the wire.
fn percent_decode(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (bytes.get(i + 1).and_then(|b| hex(*b)), bytes.get(i + 2).and_then(|b| hex(*b)))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A response body that adds the request id to the trailers (gRPC) and logs an error status
/// found there.
pub struct CorrelatedBody<B> {
    inner: B,
    /// The id for the trailers; `None` for HTTP answers (their header carries it).
    id: Option<HeaderValue>,
    request_id: String,
    span: tracing::Span,
}

impl<B> http_body::Body for CorrelatedBody<B>
where
    B: http_body::Body + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = &mut *self;
        let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            other => return other,
        };
        let Some(id) = this.id.clone() else { return Poll::Ready(Some(Ok(frame))) };
        let frame = match frame.into_trailers() {
            Ok(mut trailers) => {
                trailers.insert(REQUEST_ID_HEADER, id);
                crate::grpc::error::complete_status(&mut trailers);
                let _enter = this.span.enter();
                log_grpc_status(&trailers, &this.request_id);
                Frame::trailers(trailers)
            }
            Err(frame) => frame,
        };
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incoming_request_ids_are_kept_only_when_sane() {
        let keep = |s: &str| valid_request_id(&HeaderValue::from_str(s).unwrap());
        assert_eq!(keep("req-1_A.b:c/d+e=f@g").as_deref(), Some("req-1_A.b:c/d+e=f@g"));
        assert_eq!(keep(&"a".repeat(128)).map(|s| s.len()), Some(128));
        assert_eq!(keep(&"a".repeat(129)), None);
        assert_eq!(keep(""), None);
        assert_eq!(keep("a b"), None);
        assert_eq!(keep("a\"b"), None);
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID_HEADER, HeaderValue::from_static("has space"));
        let made = Correlation::from_headers(&headers).id;
        assert_ne!(made, "has space");
        assert!(made.len() == 17 && made.as_bytes()[8] == b'-', "{made}");
    }

    #[test]
    fn traceparent_is_parsed_as_w3c_says() {
        let t = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.parent_id, "00f067aa0ba902b7");
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "garbage",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
        // A later version may append fields.
        assert!(TraceParent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz").is_some());
    }

    #[test]
    fn error_lines_are_rate_limited() {
        let answer = ErrorAnswer {
            request_id: "test",
            name: "undecodable_audio",
            status: "400",
            message: "m",
            server_side: false,
        };
        let logged = (0..200).filter(|_| log_error_answer(answer)).count();
        // A burst of 20, refilled at 10 a second: 200 calls in well under a second log far fewer.
        assert!(logged <= ERROR_LOG_BURST as usize + 5, "{logged} of 200 logged");
    }

    #[test]
    fn grpc_messages_are_percent_decoded() {
        assert_eq!(percent_decode(b"bad%20audio%3A x%"), "bad audio: x%");
    }
}
