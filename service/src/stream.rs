//! Streaming classification, free of any transport: windows are scored as soon as their audio
//! has arrived. PCM chunks are decoded and resampled incrementally on the feature pool
//! (`StreamResampler`, bit-identical to whole-clip resampling), and only the audio from the next
//! window's start on is kept, so per-stream memory is bounded by one window plus one chunk
//! (and held against the memory budget). An encoded file is decoded whole when its stream ends
//! and then windowed the same way. gRPC `ClassifyStream` and the WebSocket `/v1/stream` read
//! their config into a `StreamRequest`, open it here (`Classifier::open_stream`, the one set-up)
//! and are thin `StreamLink`s over the rest. Beside the one-shot path (`crate::classify`), whose
//! context and scoring it uses.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;
use vericlip_core::audio::{PcmFormat, Segment, StreamResampler, decode_pcm};
use vericlip_core::{AudioError, AudioLimits};

use crate::classify::{Classifier, ms, score_segments, segment_results, summary};
use crate::error::ServiceError;
use crate::input::AudioFormat;
use crate::models::LoadedModel;
use crate::pipeline::{Audio, ClipResult, SegmentResult, StageTimings, decode, segment_features};

/// What opens a stream, whatever carries it: each transport reads its config message into this.
#[derive(Debug)]
pub struct StreamRequest {
    pub model: String,
    pub version: u64,
    /// Seconds between window starts; 0 = the default.
    pub step_seconds: f64,
    /// The declared audio, as parsed (an error in it is reported after the model's and the
    /// step's).
    pub format: Result<AudioFormat, ServiceError>,
    /// How a canary split picks the version (a routing key, or at random).
    pub route: crate::models::Route,
    /// The request id (`crate::correlation`), for the span and the summary.
    pub request_id: String,
}

/// A stream set up: the model version it keeps to its end, its window step and checked format,
/// its id and its span.
pub struct OpenStream {
    model: Arc<LoadedModel>,
    format: AudioFormat,
    step: usize,
    id: String,
    span: tracing::Span,
}

impl Classifier {
    /// Sets up a stream the same way for every transport (`api` names the transport in the
    /// span); the caller holds its stream slot (`admit_stream`) already.
    pub fn open_stream(&self, api: &'static str, request: StreamRequest) -> Result<OpenStream, ServiceError> {
        let model = self.store().resolve(&request.model, request.version, request.route)?;
        let step = step_samples(request.step_seconds, model.extractor.spec().sample_rate)?;
        let format = request.format?.checked(&self.limits().audio)?;
        let id = request.request_id;
        let span = tracing::info_span!(
            "classify_stream",
            api,
            request_id = %id,
            model = %model.name(),
            version = model.version()
        );
        Ok(OpenStream { model, format, step, id, span })
    }
}

impl OpenStream {
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// Scores the stream's audio from `link` to its end; returns the summary.
    pub async fn run(self, c: &Classifier, link: &mut impl StreamLink) -> Result<ClipResult, ServiceError> {
        classify_stream(c, self.model, self.format, self.step, link, self.id).instrument(self.span).await
    }
}

/// A stream's transport: where its audio comes from and its window results go. Both directions
/// honour the stream idle limit (a client that stops sending, or stops reading, is cut off).
pub trait StreamLink: Send {
    /// The next audio chunk; `None` when the client has finished.
    fn next_chunk(&mut self) -> impl Future<Output = Result<Option<Vec<u8>>, ServiceError>> + Send;
    /// Delivers one window's result, in order.
    fn send_segment(&mut self, segment: SegmentResult) -> impl Future<Output = Result<(), ServiceError>> + Send;
}

/// Window step from the client's `step_seconds` (0 = the default 1 s), in model-rate samples.
pub fn step_samples(step_seconds: f64, rate: u32) -> Result<usize, ServiceError> {
    let step = if step_seconds == 0.0 { 1.0 } else { step_seconds };
    if !(0.25..=2.0).contains(&step) {
        return Err(ServiceError::bad_request(
            "invalid_step",
            format!("step_seconds {step_seconds} is outside 0.25..=2.0"),
        ));
    }
    Ok((step * f64::from(rate)).round() as usize)
}

/// Scores a whole stream: every window as its audio completes, then the tail windows when the
/// client finishes; returns the summary. The stream keeps `model` (its version) to the end.
async fn classify_stream(
    c: &Classifier,
    model: Arc<LoadedModel>,
    input: AudioFormat,
    step: usize,
    link: &mut impl StreamLink,
    request_id: String,
) -> Result<ClipResult, ServiceError> {
    let started = Instant::now();
    let mut w = Windows::new(model, step);
    match input {
        AudioFormat::Pcm { format, sample_rate, channels } => {
            pcm(c, &mut w, link, format, sample_rate, channels).await?
        }
        AudioFormat::Encoded => encoded(c, &mut w, link).await?,
    }
    w.timings.total_ms = ms(started.elapsed());
    let rate = w.model.extractor.spec().sample_rate;
    let duration = w.total as f64 / f64::from(rate);
    let segments = std::mem::take(&mut w.emitted);
    Ok(summary(&w.model, segments, duration, w.timings, request_id))
}

/// Windows of model-rate audio as it grows.
pub struct Windows {
    model: Arc<LoadedModel>,
    step: usize,
    /// Model-rate samples from absolute index `start` on.
    buf: Vec<f32>,
    start: usize,
    total: usize,
    emitted: Vec<SegmentResult>,
    timings: StageTimings,
}

impl Windows {
    pub fn new(model: Arc<LoadedModel>, step: usize) -> Self {
        Self { model, step, buf: Vec::new(), start: 0, total: 0, emitted: Vec::new(), timings: StageTimings::default() }
    }

    /// Complete windows in `[from, total)`: starts every `step` from window `first` on.
    fn complete(first: usize, step: usize, len: usize, total: usize) -> Vec<Segment> {
        let mut ready = Vec::new();
        let mut next = first * step;
        while next + len <= total {
            ready.push(Segment { start: next, valid: len });
            next += step;
        }
        ready
    }

    /// Scores `segments` (absolute positions, all inside `buf`) and sends them in order.
    async fn score(
        &mut self,
        c: &Classifier,
        segments: Vec<Segment>,
        link: &mut impl StreamLink,
    ) -> Result<(), ServiceError> {
        if segments.is_empty() {
            return Ok(());
        }
        let from = self.start;
        let last = segments.iter().map(|s| s.start + s.valid).max().unwrap_or(from);
        // Every window must lie in the kept audio (`keep_from` guarantees it); say so rather
        // than panic if that ever breaks.
        let local: Option<Vec<Segment>> =
            segments.iter().map(|s| Some(Segment { start: s.start.checked_sub(from)?, valid: s.valid })).collect();
        let (Some(local), Some(kept)) = (local, last.checked_sub(from).and_then(|n| self.buf.get(..n))) else {
            return Err(ServiceError::Internal(format!("stream window outside the kept audio (from {from})")));
        };
        let samples = kept.to_vec();
        let m = Arc::clone(&self.model);
        let t = Instant::now();
        let batch = c.pool().run(move || segment_features(&m.extractor, &m.normalizer, &samples, &local)).await?;
        self.timings.features_ms += ms(t.elapsed());
        let scored = score_segments(&self.model, batch, None).await?;
        self.timings.queue_ms += ms(scored.queue);
        self.timings.inference_ms += ms(scored.inference);
        let rate = self.model.extractor.spec().sample_rate;
        let rows = segment_results(self.emitted.len(), &segments, &scored.scores, rate, self.model.threshold());
        for row in rows {
            self.emitted.push(row);
            link.send_segment(row).await?;
        }
        Ok(())
    }

    /// Appends model-rate audio and scores every window that is now complete.
    async fn push(&mut self, c: &Classifier, samples: &[f32], link: &mut impl StreamLink) -> Result<(), ServiceError> {
        self.buf.extend_from_slice(samples);
        self.total += samples.len();
        let spec = self.model.extractor.spec();
        let max = (c.limits().audio.max_seconds * f64::from(spec.sample_rate)) as usize;
        if self.total > max {
            let seconds = self.total as f64 / f64::from(spec.sample_rate);
            return Err(AudioError::TooLong { seconds, limit: c.limits().audio.max_seconds }.into());
        }
        let ready = Self::complete(self.emitted.len(), self.step, spec.segment_samples, self.total);
        self.score(c, ready, link).await?;
        // Keep audio from the next window's start on, and the last full window's worth: the
        // tail window ends with the audio and may start before the next step.
        let len = self.model.extractor.spec().segment_samples;
        let keep_from = (self.emitted.len() * self.step).min(self.total.saturating_sub(len));
        if keep_from > self.start {
            self.buf.drain(..keep_from - self.start);
            self.start = keep_from;
        }
        Ok(())
    }

    /// The tail windows (DESIGN.md's rule, as in Classify) once the stream has ended.
    async fn finish(&mut self, c: &Classifier, link: &mut impl StreamLink) -> Result<(), ServiceError> {
        if self.total == 0 {
            return Err(AudioError::Empty.into());
        }
        self.model.extractor.spec().check_duration(self.total)?;
        let rest = Self::tail(&self.model.extractor.spec().segments(self.total, self.step), self.emitted.len());
        self.score(c, rest, link).await
    }

    /// The planned windows not yet emitted.
    fn tail(plan: &[Segment], emitted: usize) -> Vec<Segment> {
        plan.get(emitted..).map(<[Segment]>::to_vec).unwrap_or_default()
    }
}

/// A PCM stream's decoding state, moved onto the feature pool for each chunk and back.
struct PcmState {
    resampler: StreamResampler,
    /// Bytes of an incomplete frame left over from the last chunk.
    pending: Vec<u8>,
}

async fn pcm(
    c: &Classifier,
    w: &mut Windows,
    link: &mut impl StreamLink,
    format: PcmFormat,
    sample_rate: u32,
    channels: u32,
) -> Result<(), ServiceError> {
    let rate = w.model.extractor.spec().sample_rate;
    let mut state = PcmState { resampler: StreamResampler::new(sample_rate, rate)?, pending: Vec::new() };
    let frame_bytes = format.bytes_per_sample() * channels as usize;
    // Per-chunk decoding: the stream's total length is checked in `Windows::push`.
    let limits = AudioLimits { max_seconds: f64::INFINITY, ..c.limits().audio };
    // What the stream holds: its window buffer, plus one chunk in its forms while that chunk is
    // decoded and resampled (on the feature pool, never on the reactor) and windowed.
    let window_bytes = ((w.model.extractor.spec().segment_samples + w.step) * 4) as u64;
    let mut reservation = c.budget().reservation();
    reservation.set(window_bytes)?;
    while let Some(chunk) = link.next_chunk().await? {
        state.pending.extend_from_slice(&chunk);
        drop(chunk);
        let whole = state.pending.len() - state.pending.len() % frame_bytes;
        if whole == 0 {
            continue;
        }
        let frames = (whole / frame_bytes) as u64;
        let resampled_max = frames * u64::from(rate) / u64::from(sample_rate) + 64;
        reservation.set(window_bytes + state.pending.len() as u64 + (frames + 3 * resampled_max) * 4)?;
        let t = Instant::now();
        let (next, resampled) = c
            .pool()
            .run_with(state, move |mut st, _| {
                let mono = decode_pcm(&st.pending[..whole], format, sample_rate, channels, &limits)?;
                st.pending.drain(..whole);
                let mut out = Vec::new();
                st.resampler.push(&mono.samples, &mut out);
                Ok((st, out))
            })
            .await?;
        state = next;
        w.timings.decode_ms += ms(t.elapsed());
        w.push(c, &resampled, link).await?;
        reservation.set(window_bytes)?;
    }
    if !state.pending.is_empty() {
        return Err(AudioError::RaggedPcm { len: state.pending.len(), frame_bytes }.into());
    }
    let mut resampled = Vec::new();
    state.resampler.finish(&mut resampled);
    w.push(c, &resampled, link).await?;
    w.finish(c, link).await
}

async fn encoded(c: &Classifier, w: &mut Windows, link: &mut impl StreamLink) -> Result<(), ServiceError> {
    // An encoded file is decoded whole, so it must fit `max_encoded_stream_bytes`, and the
    // memory budget as it arrives.
    let cap = c.limits().max_encoded_stream_bytes;
    let mut reservation = c.budget().reservation();
    let mut bytes = Vec::new();
    while let Some(chunk) = link.next_chunk().await? {
        if bytes.len() + chunk.len() > cap {
            return Err(ServiceError::bad_request(
                "stream_too_large",
                format!("an encoded stream may carry at most {cap} bytes; stream raw PCM for longer audio"),
            ));
        }
        reservation.ensure((bytes.len() + chunk.len()) as u64)?;
        bytes.extend_from_slice(&chunk);
    }
    let (rate, limits) = (w.model.extractor.spec().sample_rate, c.limits().audio);
    let t = Instant::now();
    let (mono, _reservation) = c
        .pool()
        .run_with((Audio::Encoded(bytes), reservation), move |(audio, mut r), cancel| {
            Ok((decode(audio, rate, &limits, &mut r, cancel)?, r))
        })
        .await?;
    w.timings.decode_ms += ms(t.elapsed());
    // From here on, the same windows as PCM: all complete ones, then the tail.
    w.push(c, &mono.samples, link).await?;
    w.finish(c, link).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use vericlip_core::FeatureSpec;

    #[test]
    fn windows_complete_at_each_step_and_the_tail_follows_the_plan() {
        let spec = FeatureSpec::default();
        let (len, step) = (spec.segment_samples, spec.segment_samples / 2);
        // Nothing before a whole window; then one per step as audio arrives.
        assert!(Windows::complete(0, step, len, len - 1).is_empty());
        assert_eq!(Windows::complete(0, step, len, len), vec![Segment { start: 0, valid: len }]);
        let w = Windows::complete(1, step, len, 2 * len);
        assert_eq!(w.iter().map(|s| s.start).collect::<Vec<_>>(), vec![step, 2 * step]);
        // Chunk boundaries do not matter: the windows of 5 s arriving in pieces are the windows
        // of 5 s at once.
        let total = 5 * spec.sample_rate as usize;
        let mut emitted = 0;
        let mut seen = Vec::new();
        for upto in (0..=total).step_by(3_333).chain([total]) {
            let ready = Windows::complete(emitted, step, len, upto);
            emitted += ready.len();
            seen.extend(ready);
        }
        assert_eq!(seen, Windows::complete(0, step, len, total));
        // At the end, the tail rule adds what the plan has beyond the complete windows.
        let plan = spec.segments(total, step);
        let tail = Windows::tail(&plan, seen.len());
        assert_eq!(seen.len() + tail.len(), plan.len());
        // ... a window that ends with the audio, never past it.
        assert!(tail.iter().all(|s| s.start + s.valid == total && s.valid == len), "{tail:?}");
    }

    #[test]
    fn step_is_validated() {
        assert_eq!(step_samples(0.0, 16_000).unwrap(), 16_000);
        assert_eq!(step_samples(0.5, 16_000).unwrap(), 8_000);
        let e = step_samples(3.0, 16_000).unwrap_err();
        assert_eq!(e.name(), "invalid_step");
    }
}
