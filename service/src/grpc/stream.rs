//! ClassifyStream: windows are scored as soon as their audio has arrived. PCM chunks are decoded
//! and resampled incrementally (`StreamResampler`, bit-identical to whole-clip resampling), and
//! only the audio from the next window's start on is kept, so per-stream memory is bounded by
//! one window plus one chunk; chunks are read one at a time, so HTTP/2 flow control pushes back
//! on a client that sends faster than windows are scored. An encoded file is decoded whole at
//! half-close and then windowed the same way. A stream keeps the model version it
//! started with. When the client goes away, the task ends and frees everything.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};
use tracing::Instrument;
use vericlip_core::audio::{AudioInput, PcmFormat, Segment, StreamResampler, decode_pcm, load_mono};
use vericlip_core::{AudioError, AudioLimits};

use crate::api;
use crate::classify::{Classifier, ms, segment_scores, summary};
use crate::error::ServiceError;
use crate::models::LoadedModel;
use crate::pipeline::segment_features;

type Out = mpsc::Sender<Result<api::ClassifyStreamResponse, Status>>;
type ResponseStream = Pin<Box<dyn Stream<Item = Result<api::ClassifyStreamResponse, Status>> + Send>>;

enum Input {
    Pcm { format: PcmFormat, sample_rate: u32, channels: u32 },
    Encoded,
}

/// The client's end of a stream. Both directions have the idle limit: a client that stops
/// sending (without half-closing) or stops reading its verdicts cannot hold a stream slot forever.
struct Link {
    inbound: Streaming<api::ClassifyStreamRequest>,
    out: Out,
    idle: Duration,
}

impl Link {
    /// The next audio chunk; `None` on half-close.
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, ServiceError> {
        let seconds = self.idle.as_secs_f64();
        tokio::time::timeout(self.idle, next_chunk(&mut self.inbound))
            .await
            .unwrap_or(Err(ServiceError::StreamIdle { seconds }))
    }

    async fn send(&self, message: api::classify_stream_response::Message) -> Result<(), ServiceError> {
        let msg = api::ClassifyStreamResponse { message: Some(message) };
        match tokio::time::timeout(self.idle, self.out.send(Ok(msg))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(ServiceError::Unavailable("the client went away".into())),
            Err(_) => Err(ServiceError::StreamIdle { seconds: self.idle.as_secs_f64() }),
        }
    }
}

/// Reads and checks the StreamConfig, then scores the rest of the stream on a task of its own.
pub async fn start(
    c: Arc<Classifier>,
    mut inbound: Streaming<api::ClassifyStreamRequest>,
) -> Result<ResponseStream, ServiceError> {
    c.check_open()?;
    let permit = Arc::clone(&c.streams)
        .try_acquire_owned()
        .map_err(|_| ServiceError::TooManyStreams { limit: c.limits.max_streams })?;
    let idle = c.limits.stream_idle;
    let first = tokio::time::timeout(idle, inbound.message())
        .await
        .map_err(|_| ServiceError::StreamIdle { seconds: idle.as_secs_f64() })?
        .map_err(|s| ServiceError::bad_request("stream_error", s.message()))?;
    let Some(api::ClassifyStreamRequest { message: Some(api::classify_stream_request::Message::Config(config)) }) =
        first
    else {
        return Err(ServiceError::bad_request("missing_stream_config", "the first message must be a StreamConfig"));
    };
    let model = c.store.resolve(&config.model, config.version)?;
    let step_seconds = if config.step_seconds == 0.0 { 1.0 } else { config.step_seconds };
    if !(0.25..=2.0).contains(&step_seconds) {
        return Err(ServiceError::bad_request(
            "invalid_step",
            format!("step_seconds {} is outside 0.25..=2.0", config.step_seconds),
        ));
    }
    let input = match config.format {
        Some(api::stream_config::Format::Pcm(f)) => {
            let (format, sample_rate, channels) = super::pcm_format(Some(&f))?;
            c.limits.audio.check_format(sample_rate, channels)?;
            Input::Pcm { format, sample_rate, channels }
        }
        Some(api::stream_config::Format::Encoded(true)) => Input::Encoded,
        _ => {
            return Err(ServiceError::bad_request(
                "missing_stream_format",
                "StreamConfig needs `pcm` (a PCM format) or `encoded = true`",
            ));
        }
    };
    let step = (step_seconds * f64::from(model.extractor.spec().sample_rate)).round() as usize;
    let (tx, rx) = mpsc::channel(16);
    let id = c.request_id();
    let span =
        tracing::info_span!("classify_stream", request_id = %id, model = %model.name(), version = model.version());
    let link = Link { inbound, out: tx, idle: c.limits.stream_idle };
    tokio::spawn(run(c, model, input, step, link, permit, id).instrument(span));
    Ok(Box::pin(ReceiverStream::new(rx)))
}

/// Scores windows of model-rate audio as it grows.
struct Windows {
    model: Arc<LoadedModel>,
    step: usize,
    /// Model-rate samples from absolute index `start` on.
    buf: Vec<f32>,
    start: usize,
    total: usize,
    emitted: Vec<api::SegmentScore>,
    timings: api::StageTimings,
}

impl Windows {
    /// Scores `segments` (absolute positions, all inside `buf`) and sends them in order.
    async fn score(&mut self, c: &Classifier, segments: Vec<Segment>, link: &Link) -> Result<(), ServiceError> {
        if segments.is_empty() {
            return Ok(());
        }
        let from = self.start;
        let last = segments.iter().map(|s| s.start + s.valid).max().unwrap_or(from);
        let samples = self.buf[..last - from].to_vec();
        let local: Vec<Segment> = segments.iter().map(|s| Segment { start: s.start - from, valid: s.valid }).collect();
        let m = Arc::clone(&self.model);
        let t = Instant::now();
        let features = c.pool.run(move || segment_features(&m.extractor, &m.normalizer, &samples, &local)).await?;
        self.timings.features_ms += ms(t.elapsed());
        let scored = self.model.batcher.run(features, segments.len(), None).await?;
        self.timings.queue_ms += ms(scored.queue);
        self.timings.inference_ms += ms(scored.inference);
        let rate = self.model.extractor.spec().sample_rate;
        let rows = segment_scores(self.emitted.len(), &segments, &scored.scores, rate, self.model.threshold());
        for row in rows {
            self.emitted.push(row);
            link.send(api::classify_stream_response::Message::Segment(row)).await?;
        }
        Ok(())
    }

    /// Appends model-rate audio and scores every window that is now complete.
    async fn push(&mut self, c: &Classifier, samples: &[f32], link: &Link) -> Result<(), ServiceError> {
        self.buf.extend_from_slice(samples);
        self.total += samples.len();
        let spec = self.model.extractor.spec();
        let max = (c.limits.audio.max_seconds * f64::from(spec.sample_rate)) as usize;
        if self.total > max {
            let seconds = self.total as f64 / f64::from(spec.sample_rate);
            return Err(AudioError::TooLong { seconds, limit: c.limits.audio.max_seconds }.into());
        }
        let len = spec.segment_samples;
        let mut ready = Vec::new();
        let mut next = self.emitted.len() * self.step;
        while next + len <= self.total {
            ready.push(Segment { start: next, valid: len });
            next += self.step;
        }
        self.score(c, ready, link).await?;
        // Keep audio from the next window's start on.
        let keep_from = (self.emitted.len() * self.step).min(self.total);
        if keep_from > self.start {
            self.buf.drain(..keep_from - self.start);
            self.start = keep_from;
        }
        Ok(())
    }

    /// The tail windows (DESIGN.md's rule, as in Classify) once the stream has ended.
    async fn finish(&mut self, c: &Classifier, link: &Link) -> Result<(), ServiceError> {
        if self.total == 0 {
            return Err(AudioError::Empty.into());
        }
        let plan = self.model.extractor.spec().segments(self.total, self.step);
        let rest = plan.get(self.emitted.len()..).map(<[Segment]>::to_vec).unwrap_or_default();
        self.score(c, rest, link).await
    }
}

#[allow(clippy::too_many_arguments)]
async fn run(
    c: Arc<Classifier>,
    model: Arc<LoadedModel>,
    input: Input,
    step: usize,
    mut link: Link,
    _permit: OwnedSemaphorePermit,
    id: String,
) {
    c.metrics.active_streams.inc();
    let started = Instant::now();
    let mut w = Windows {
        model,
        step,
        buf: Vec::new(),
        start: 0,
        total: 0,
        emitted: Vec::new(),
        timings: api::StageTimings::default(),
    };
    let result = match input {
        Input::Pcm { format, sample_rate, channels } => pcm(&c, &mut w, &mut link, format, sample_rate, channels).await,
        Input::Encoded => encoded(&c, &mut w, &mut link).await,
    };
    let result = match result {
        Ok(()) => {
            w.timings.total_ms = ms(started.elapsed());
            let rate = w.model.extractor.spec().sample_rate;
            let duration = w.total as f64 / f64::from(rate);
            let segments = std::mem::take(&mut w.emitted);
            let s = summary(&w.model, segments, duration, w.timings, id);
            tracing::info!(
                verdict = s.verdict,
                fake_score = s.fake_score,
                segments = s.segments.len(),
                "stream classified"
            );
            link.send(api::classify_stream_response::Message::Summary(s)).await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => c.metrics.request("ClassifyStream", tonic::Code::Ok),
        Err(e) => {
            tracing::info!(error = e.name(), message = %e, "stream failed");
            c.metrics.request("ClassifyStream", e.code());
            // Best effort: the client may be gone, or not reading.
            let _ = tokio::time::timeout(link.idle, link.out.send(Err(e.into()))).await;
        }
    }
    c.metrics.active_streams.dec();
}

/// The next audio chunk; `None` on half-close.
async fn next_chunk(inbound: &mut Streaming<api::ClassifyStreamRequest>) -> Result<Option<Vec<u8>>, ServiceError> {
    loop {
        match inbound.message().await {
            Ok(Some(api::ClassifyStreamRequest { message: Some(api::classify_stream_request::Message::Audio(b)) })) => {
                return Ok(Some(b));
            }
            Ok(Some(api::ClassifyStreamRequest {
                message: Some(api::classify_stream_request::Message::Config(_)),
            })) => {
                return Err(ServiceError::bad_request(
                    "repeated_stream_config",
                    "only the first message may be a StreamConfig",
                ));
            }
            Ok(Some(_)) => continue,
            Ok(None) => return Ok(None),
            Err(s) if s.code() == tonic::Code::OutOfRange => {
                return Err(ServiceError::MessageTooLarge(s.message().into()));
            }
            Err(s) => {
                return Err(ServiceError::bad_request(
                    "stream_error",
                    format!("reading the stream failed: {}", s.message()),
                ));
            }
        }
    }
}

async fn pcm(
    c: &Classifier,
    w: &mut Windows,
    link: &mut Link,
    format: PcmFormat,
    sample_rate: u32,
    channels: u32,
) -> Result<(), ServiceError> {
    let rate = w.model.extractor.spec().sample_rate;
    let mut resampler = StreamResampler::new(sample_rate, rate)?;
    let frame_bytes = format.bytes_per_sample() * channels as usize;
    // Per-chunk decoding: the stream's total length is checked in `Windows::push`.
    let limits = AudioLimits { max_seconds: f64::INFINITY, ..c.limits.audio };
    let mut pending: Vec<u8> = Vec::new();
    let mut resampled = Vec::new();
    while let Some(chunk) = link.next_chunk().await? {
        pending.extend_from_slice(&chunk);
        let whole = pending.len() - pending.len() % frame_bytes;
        if whole == 0 {
            continue;
        }
        let t = Instant::now();
        let mono = decode_pcm(&pending[..whole], format, sample_rate, channels, &limits)?;
        pending.drain(..whole);
        resampled.clear();
        resampler.push(&mono.samples, &mut resampled);
        w.timings.decode_ms += ms(t.elapsed());
        w.push(c, &resampled, link).await?;
    }
    if !pending.is_empty() {
        return Err(AudioError::RaggedPcm { len: pending.len(), frame_bytes }.into());
    }
    resampled.clear();
    resampler.finish(&mut resampled);
    w.push(c, &resampled, link).await?;
    w.finish(c, link).await
}

async fn encoded(c: &Classifier, w: &mut Windows, link: &mut Link) -> Result<(), ServiceError> {
    // An encoded file is decoded whole, so it must fit one message's worth of bytes times 4.
    let cap = c.limits.max_encoded_stream_bytes;
    let mut bytes = Vec::new();
    while let Some(chunk) = link.next_chunk().await? {
        if bytes.len() + chunk.len() > cap {
            return Err(ServiceError::bad_request(
                "stream_too_large",
                format!("an encoded stream may carry at most {cap} bytes; stream raw PCM for longer audio"),
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    let (rate, limits) = (w.model.extractor.spec().sample_rate, c.limits.audio);
    let t = Instant::now();
    let mono = c.pool.run(move || Ok(load_mono(AudioInput::Encoded(&bytes), rate, &limits)?)).await?;
    w.timings.decode_ms += ms(t.elapsed());
    // From here on, the same windows as PCM: all complete ones, then the tail.
    w.push(c, &mono.samples, link).await?;
    w.finish(c, link).await
}
