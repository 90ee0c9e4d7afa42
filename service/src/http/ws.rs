//! `GET /v1/stream`: ClassifyStream over a WebSocket, for browsers (the page's live microphone)
//! and anything else that cannot speak gRPC. Same stream set-up and pipeline (`crate::stream`),
//! limits, idle timeout, admission and error names as gRPC.
//!
//! Client -> server: a text message with the JSON `WsConfig`; binary messages of audio (PCM in
//! the configured format, or an encoded file's bytes); the text `{"type":"end"}` to finish.
//! Server -> client: text JSON `{"type":"segment", ...}` per window as soon as its audio is in,
//! then `{"type":"summary", ...}` (the classify JSON), or `{"type":"error","error":{...}}`; then
//! the server closes: after an error with a close code for its kind (`close_code`) and the error
//! name as the reason. Every message carries the stream's `request_id`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use serde::{Deserialize, Serialize};

use super::error::ErrorBody;
use crate::budget::Reservation;
use crate::classify::{Admitted, Classifier};
use crate::error::ServiceError;
use crate::input::AudioFormat;
use crate::models::Route;
use crate::pipeline::{ClipResult, SegmentResult};
use crate::stream::{StreamLink, StreamRequest};

/// Largest WebSocket message (a config or an audio chunk): browsers send ~100 ms chunks; an
/// encoded file goes in as many messages as it needs. Held against the memory budget per stream.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// The first message of a WebSocket stream.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WsConfig {
    /// `s16le` or `f32le` for raw PCM, `encoded` for a file's bytes.
    pub format: String,
    #[serde(default)]
    pub sample_rate: u32,
    #[serde(default = "one")]
    pub channels: u32,
    #[serde(default)]
    pub step_seconds: f64,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub version: u64,
}

fn one() -> u32 {
    1
}

/// What the server sends: a `WsMessage` with the stream's request id beside its fields.
#[derive(Debug, Serialize)]
struct WsOut<'a> {
    #[serde(flatten)]
    message: &'a WsMessage,
    request_id: &'a str,
}

/// What the server sends.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum WsMessage {
    Segment(SegmentResult),
    Summary(ClipResult),
    Error { error: ErrorBody },
}

struct WsLink {
    socket: WebSocket,
    idle: Duration,
    /// When the stream is closed unless a non-empty binary (audio) message arrives first:
    /// pings, empty frames and other traffic do not keep a stream slot.
    audio_deadline: tokio::time::Instant,
    /// The drain limit ended the stream: its close frame says so.
    cut: bool,
    request_id: String,
}

/// WebSocket close code "going away" (RFC 6455), with the reason, when the drain cuts a stream.
const GOING_AWAY: u16 = 1001;

impl WsLink {
    async fn send(&mut self, message: &WsMessage) -> Result<(), ServiceError> {
        let out = WsOut { message, request_id: &self.request_id };
        let text = serde_json::to_string(&out).map_err(|e| ServiceError::Internal(e.to_string()))?;
        match tokio::time::timeout(self.idle, self.socket.send(Message::Text(text.into()))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(ServiceError::Unavailable("the client went away".into())),
            Err(_) => Err(ServiceError::StreamIdle { seconds: self.idle.as_secs_f64() }),
        }
    }

    /// The next text or binary message (pings are answered by axum).
    async fn recv(&mut self) -> Result<Option<Message>, ServiceError> {
        match tokio::time::timeout(self.idle, self.socket.recv()).await {
            Err(_) => Err(ServiceError::StreamIdle { seconds: self.idle.as_secs_f64() }),
            Ok(None) => Ok(None),
            Ok(Some(Err(e))) => {
                Err(ServiceError::bad_request("stream_error", format!("reading the WebSocket failed: {e}")))
            }
            Ok(Some(Ok(m))) => Ok(Some(m)),
        }
    }
}

impl StreamLink for WsLink {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, ServiceError> {
        let seconds = self.idle.as_secs_f64();
        loop {
            let next = tokio::select! {
                next = tokio::time::timeout_at(self.audio_deadline, self.socket.recv()) => next,
                // The drain limit passed: end as if the client had finished (summary so far).
                () = crate::drain::cut_signal() => {
                    self.cut = true;
                    return Ok(None);
                }
            };
            let message = match next {
                Err(_) => return Err(ServiceError::StreamIdle { seconds }),
                Ok(None) => None,
                Ok(Some(Err(e))) => {
                    return Err(ServiceError::bad_request(
                        "stream_error",
                        format!("reading the WebSocket failed: {e}"),
                    ));
                }
                Ok(Some(Ok(m))) => Some(m),
            };
            match message {
                Some(Message::Binary(b)) if b.is_empty() => continue,
                Some(Message::Binary(b)) => {
                    self.audio_deadline = tokio::time::Instant::now() + self.idle;
                    return Ok(Some(b.to_vec()));
                }
                Some(Message::Text(t)) => {
                    #[derive(Deserialize)]
                    struct Control {
                        r#type: String,
                    }
                    match serde_json::from_str::<Control>(&t) {
                        Ok(c) if c.r#type == "end" => return Ok(None),
                        _ => {
                            return Err(ServiceError::bad_request(
                                "invalid_stream_message",
                                "after the config, send binary audio and then the text {\"type\":\"end\"}",
                            ));
                        }
                    }
                }
                Some(Message::Close(_)) | None => {
                    return Err(ServiceError::Unavailable(
                        "the client closed the stream before {\"type\":\"end\"}".into(),
                    ));
                }
                Some(_) => continue,
            }
        }
    }

    async fn send_segment(&mut self, segment: SegmentResult) -> Result<(), ServiceError> {
        self.send(&WsMessage::Segment(segment)).await
    }
}

/// One WebSocket stream, from its config to its summary or error.
pub async fn session(
    c: Arc<Classifier>,
    socket: WebSocket,
    admitted: Admitted,
    reservation: Reservation,
    route: Route,
    request_id: String,
) {
    let idle = c.limits().stream_idle;
    let audio_deadline = tokio::time::Instant::now() + idle;
    let mut link = WsLink { socket, idle, audio_deadline, cut: false, request_id };
    let result = run(&c, &mut link, route).await;
    c.count("WebSocketStream", ServiceError::outcome(&result));
    let mut close = None;
    let message = match result {
        Ok(summary) => {
            tracing::debug!(
                verdict = summary.verdict.as_str(),
                segments = summary.segments.len(),
                "websocket stream classified"
            );
            WsMessage::Summary(summary)
        }
        Err(e) => {
            crate::correlation::log_error_answer(crate::correlation::ErrorAnswer {
                request_id: &link.request_id,
                name: e.name(),
                status: e.class().name(),
                message: &e.public_message(),
                server_side: super::error::status(e.class()).is_server_error()
                    || e.class() == crate::error::ErrorClass::ResourceExhausted,
            });
            close = Some(CloseFrame { code: close_code(&e), reason: e.name().into() });
            WsMessage::Error { error: ErrorBody::of(&e) }
        }
    };
    let _ = link.send(&message).await;
    if link.cut {
        close = Some(CloseFrame {
            code: GOING_AWAY,
            reason: "server shutting down: shutdown.drain_seconds reached; the summary covers the audio so far".into(),
        });
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), link.socket.send(Message::Close(close))).await;
    // Read (and drop) what the client had sent already, up to its own close frame: closing with
    // unread data resets the connection, and the client would see 1006 instead of our message
    // and close code.
    let drain = async {
        let mut read = 0usize;
        while read <= CLOSE_DRAIN_BYTES
            && let Some(Ok(m)) = link.socket.recv().await
        {
            if matches!(m, Message::Close(_)) {
                break;
            }
            read += m.into_data().len();
        }
    };
    let _ = tokio::time::timeout(CLOSE_DRAIN_TIME, drain).await;
    drop((admitted, reservation));
}

/// How much of what a client sent before our close frame is read before the socket is dropped.
const CLOSE_DRAIN_BYTES: usize = 8 << 20;
const CLOSE_DRAIN_TIME: Duration = Duration::from_secs(2);

/// The close code (RFC 6455) of a stream that ended with `e`: 1009 for audio over a size limit,
/// 1003 for data the server cannot take (bad config, bad audio), 1011 for a server fault or a
/// server that cannot serve now, 1008 (policy) for the rest: limits, the idle time, an unknown
/// model, a missing key.
pub fn close_code(e: &ServiceError) -> u16 {
    use crate::error::ErrorClass as C;
    match (e.name(), e.class()) {
        ("message_too_large" | "stream_too_large" | "audio_too_long", _) => 1009,
        (_, C::InvalidArgument) => 1003,
        (_, C::Internal | C::Unavailable | C::Cancelled) => 1011,
        (_, C::NotFound | C::Unauthenticated | C::ResourceExhausted | C::DeadlineExceeded) => 1008,
    }
}

async fn run(c: &Classifier, link: &mut WsLink, route: Route) -> Result<ClipResult, ServiceError> {
    let config = match link.recv().await? {
        Some(Message::Text(t)) => serde_json::from_str::<WsConfig>(&t).map_err(|e| {
            ServiceError::bad_request("invalid_stream_config", format!("the first message is not a stream config: {e}"))
        })?,
        _ => {
            return Err(ServiceError::bad_request(
                "missing_stream_config",
                "the first message must be a text JSON config, e.g. {\"format\":\"f32le\",\"sample_rate\":48000}",
            ));
        }
    };
    let format = match config.format.as_str() {
        "encoded" => Ok(AudioFormat::Encoded),
        f => AudioFormat::pcm(Some(f), super::SPELLING, Some(config.sample_rate), config.channels),
    };
    let request = StreamRequest {
        model: config.model,
        version: config.version,
        step_seconds: config.step_seconds,
        format,
        route,
        request_id: link.request_id.clone(),
    };
    c.open_stream("websocket", request)?.run(c, link).await
}
