//! `GET /v1/stream`: ClassifyStream over a WebSocket, for browsers (the page's live microphone)
//! and anything else that cannot speak gRPC. Same stream set-up and pipeline (`crate::stream`),
//! limits, idle timeout, admission and error names as gRPC.
//!
//! Client -> server: a text message with the JSON `WsConfig`; binary messages of audio (PCM in
//! the configured format, or an encoded file's bytes); the text `{"type":"end"}` to finish.
//! Server -> client: text JSON `{"type":"segment", ...}` per window as soon as its audio is in,
//! then `{"type":"summary", ...}` (the classify JSON), or `{"type":"error","error":{...}}`; then
//! the server closes.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
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
}

/// WebSocket close code "going away" (RFC 6455), with the reason, when the drain cuts a stream.
const GOING_AWAY: u16 = 1001;

impl WsLink {
    async fn send(&mut self, message: &WsMessage) -> Result<(), ServiceError> {
        let text = serde_json::to_string(message).map_err(|e| ServiceError::Internal(e.to_string()))?;
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
) {
    let idle = c.limits().stream_idle;
    let mut link = WsLink { socket, idle, audio_deadline: tokio::time::Instant::now() + idle, cut: false };
    let result = run(&c, &mut link, route).await;
    c.count("WebSocketStream", ServiceError::outcome(&result));
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
            tracing::debug!(error = e.name(), message = %e.public_message(), "websocket stream failed");
            WsMessage::Error { error: ErrorBody::of(&e) }
        }
    };
    let _ = link.send(&message).await;
    let close = link.cut.then(|| axum::extract::ws::CloseFrame {
        code: GOING_AWAY,
        reason: "server shutting down: shutdown.drain_seconds reached; the summary covers the audio so far".into(),
    });
    let _ = tokio::time::timeout(Duration::from_secs(1), link.socket.send(Message::Close(close))).await;
    drop((admitted, reservation));
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
    };
    c.open_stream("websocket", request)?.run(c, link).await
}
