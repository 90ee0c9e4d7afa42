//! ClassifyStream over gRPC: reads the StreamConfig into a `StreamRequest`, opens it
//! (`Classifier::open_stream`, shared with the WebSocket), then runs the transport-free
//! `crate::stream` with a `StreamLink` over the gRPC streams, on a task of its own. When the
//! client goes away, the task ends and frees everything.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};
use tracing::Instrument;

use super::error::{BODY_REFUSED, BODY_REFUSED_OR_SLOW, relayed};
use crate::api;
use crate::classify::{Admitted, Classifier};
use crate::error::ServiceError;
use crate::input::AudioFormat;
use crate::pipeline::SegmentResult;
use crate::stream::{OpenStream, StreamLink, StreamRequest};

type Out = mpsc::Sender<Result<api::ClassifyStreamResponse, Status>>;
type ResponseStream = Pin<Box<dyn Stream<Item = Result<api::ClassifyStreamResponse, Status>> + Send>>;

/// The client's end of a stream. Both directions have the idle limit: a client that sends no
/// audio (whatever else it sends: empty audio messages, keepalive pings) or stops reading its
/// verdicts cannot hold a stream slot longer than `limits.stream_idle_seconds`.
struct Link {
    inbound: Streaming<api::ClassifyStreamRequest>,
    out: Out,
    idle: Duration,
    /// When the stream is closed unless non-empty audio arrives first.
    audio_deadline: tokio::time::Instant,
}

impl Link {
    async fn send(&self, message: api::classify_stream_response::Message) -> Result<(), ServiceError> {
        let msg = api::ClassifyStreamResponse { message: Some(message) };
        match tokio::time::timeout(self.idle, self.out.send(Ok(msg))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(ServiceError::Unavailable("the client went away".into())),
            Err(_) => Err(ServiceError::StreamIdle { seconds: self.idle.as_secs_f64() }),
        }
    }
}

impl StreamLink for Link {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, ServiceError> {
        let seconds = self.idle.as_secs_f64();
        loop {
            let next = tokio::select! {
                next = tokio::time::timeout_at(self.audio_deadline, next_message(&mut self.inbound)) => next,
                // The drain limit passed: end as if the client had finished (summary so far).
                () = crate::drain::cut_signal() => return Ok(None),
            };
            match next {
                Err(_) => return Err(ServiceError::StreamIdle { seconds }),
                // The body's own stall timer has the same length: in a stream, it is the stream idling.
                Ok(Err(e)) if e.name() == "body_stalled" => return Err(ServiceError::StreamIdle { seconds }),
                Ok(Err(e)) => return Err(e),
                Ok(Ok(None)) => return Ok(None),
                // Messages without audio do not keep the stream alive.
                Ok(Ok(Some(chunk))) if chunk.is_empty() => continue,
                Ok(Ok(Some(chunk))) => {
                    self.audio_deadline = tokio::time::Instant::now() + self.idle;
                    return Ok(Some(chunk));
                }
            }
        }
    }

    async fn send_segment(&mut self, segment: SegmentResult) -> Result<(), ServiceError> {
        self.send(api::classify_stream_response::Message::Segment(segment.into())).await
    }
}

/// Reads and checks the StreamConfig, then scores the rest of the stream on a task of its own.
pub async fn start(
    c: Arc<Classifier>,
    mut inbound: Streaming<api::ClassifyStreamRequest>,
    route: crate::models::Route,
    request_id: String,
) -> Result<ResponseStream, ServiceError> {
    let permit = c.admit_stream()?;
    let idle = c.limits().stream_idle;
    let first = tokio::time::timeout(idle, inbound.message())
        .await
        .map_err(|_| ServiceError::StreamIdle { seconds: idle.as_secs_f64() })?
        // A body refused right away (the memory budget, at the header of the message after the
        // config) says so, not a generic stream error.
        .map_err(|s| {
            relayed(&s, BODY_REFUSED).unwrap_or_else(|| ServiceError::bad_request("stream_error", s.message()))
        })?;
    let Some(api::ClassifyStreamRequest { message: Some(api::classify_stream_request::Message::Config(config)) }) =
        first
    else {
        return Err(ServiceError::bad_request("missing_stream_config", "the first message must be a StreamConfig"));
    };
    let format = match config.format {
        Some(api::stream_config::Format::Pcm(f)) => super::pcm_format(Some(&f)),
        Some(api::stream_config::Format::Encoded(true)) => Ok(AudioFormat::Encoded),
        _ => Err(ServiceError::bad_request(
            "missing_stream_format",
            "StreamConfig needs `pcm` (a PCM format) or `encoded = true`",
        )),
    };
    let request = StreamRequest {
        model: config.model,
        version: config.version,
        step_seconds: config.step_seconds,
        format,
        route,
        request_id,
    };
    let open = c.open_stream("grpc", request)?;
    let (tx, rx) = mpsc::channel(16);
    let link = Link { inbound, out: tx, idle, audio_deadline: tokio::time::Instant::now() + idle };
    let span = open.span().clone();
    tokio::spawn(run(c, open, link, permit).instrument(span));
    Ok(Box::pin(ReceiverStream::new(rx)))
}

async fn run(c: Arc<Classifier>, open: OpenStream, mut link: Link, _admitted: Admitted) {
    let result = match open.run(&c, &mut link).await {
        Ok(s) => {
            tracing::debug!(
                verdict = s.verdict.as_str(),
                fake_score = s.fake_score,
                segments = s.segments.len(),
                "stream classified"
            );
            link.send(api::classify_stream_response::Message::Summary(s.into())).await
        }
        Err(e) => Err(e),
    };
    c.count("ClassifyStream", ServiceError::outcome(&result));
    if let Err(e) = result {
        tracing::debug!(error = e.name(), message = %e.public_message(), "stream failed");
        // Best effort: the client may be gone, or not reading.
        let _ = tokio::time::timeout(link.idle, link.out.send(Err(e.into()))).await;
    }
}

/// The next message's audio (empty for a message without audio); `None` on half-close.
async fn next_message(inbound: &mut Streaming<api::ClassifyStreamRequest>) -> Result<Option<Vec<u8>>, ServiceError> {
    match inbound.message().await {
        Ok(Some(api::ClassifyStreamRequest { message: Some(api::classify_stream_request::Message::Audio(b)) })) => {
            Ok(Some(b))
        }
        Ok(Some(api::ClassifyStreamRequest { message: Some(api::classify_stream_request::Message::Config(_)) })) => {
            Err(ServiceError::bad_request("repeated_stream_config", "only the first message may be a StreamConfig"))
        }
        Ok(Some(_)) => Ok(Some(Vec::new())),
        Ok(None) => Ok(None),
        Err(s) if s.code() == tonic::Code::OutOfRange => Err(ServiceError::MessageTooLarge(s.message().into())),
        // A body refused by the memory budget, stalled, or too slow arrives as its own status.
        Err(s) => Err(relayed(&s, BODY_REFUSED_OR_SLOW).unwrap_or_else(|| {
            ServiceError::bad_request("stream_error", format!("reading the stream failed: {}", s.message()))
        })),
    }
}
