//! The service's context (`Classifier`: models, feature pool, limits, admission, metrics) and
//! the one-shot path on it, shared by gRPC `Classify` and HTTP `POST /v1/classify`: admission
//! (bounded), model resolution, features on the CPU pool, batched inference, the verdict. The
//! streaming path (`crate::stream`) builds on the same context and scoring; nothing here knows
//! a transport.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use vericlip_core::AudioLimits;
use vericlip_core::audio::Segment;

use crate::budget::MemoryBudget;
use crate::error::{ErrorClass, ServiceError};
use crate::metrics::Metrics;
use crate::model_info::{self, Listing, ModelInfo};
use crate::models::{LoadedModel, ModelStore};
use crate::pipeline::features::SegmentBatch;
use crate::pipeline::{Audio, ClipResult, FeaturePool, SegmentResult, StageTimings, Verdict, prepare};

/// What the service shares between its transports: they call its methods.
pub struct Classifier {
    store: Arc<ModelStore>,
    pool: FeaturePool,
    metrics: Arc<Metrics>,
    limits: Limits,
    budget: Arc<MemoryBudget>,
    admission: Arc<Semaphore>,
    streams: Arc<Semaphore>,
    shutting_down: AtomicBool,
}

/// Bounds on what requests and streams may use.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub audio: AudioLimits,
    /// Requests admitted at once (decoding, queued or running).
    pub max_queue: usize,
    pub max_streams: usize,
    /// An encoded (not PCM) stream is decoded whole at its end; this caps what it may buffer.
    pub max_encoded_stream_bytes: usize,
    /// A stream that neither sends audio nor takes its verdicts for this long is closed.
    pub stream_idle: Duration,
}

/// Holds an admission slot, a request's or a stream's (whatever its transport); frees it, and
/// its gauge (`queue_depth` or `active_streams`), on drop.
pub struct Admitted {
    _permit: OwnedSemaphorePermit,
    gauge: Gauge,
}

impl Admitted {
    fn new(permit: OwnedSemaphorePermit, gauge: &Gauge) -> Self {
        gauge.inc();
        Self { _permit: permit, gauge: gauge.clone() }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// What the model said about a batch's segments: a score for each segment with speech, `None`
/// for one without (not sent to the model).
pub struct SegmentScores {
    pub scores: Vec<Option<f32>>,
    pub queue: Duration,
    pub inference: Duration,
}

/// Scores the segments of `batch` that have speech (all of them in one batcher job); the others
/// stay `None`. A batch with no speech at all never reaches the model.
pub async fn score_segments(
    model: &LoadedModel,
    batch: SegmentBatch,
    deadline: Option<Instant>,
) -> Result<SegmentScores, ServiceError> {
    let n = batch.with_speech();
    let (mut scores, queue, inference) = if n == 0 {
        (Vec::new().into_iter(), Duration::ZERO, Duration::ZERO)
    } else {
        let scored = model.batcher.run(batch.features, n, deadline).await?;
        (scored.scores.into_iter(), scored.queue, scored.inference)
    };
    let scores = batch.speech.iter().map(|&speech| if speech { scores.next() } else { None }).collect();
    Ok(SegmentScores { scores, queue, inference })
}

/// Segment results of `segments` (positions in model-rate samples) and their scores (`None`:
/// no speech).
pub fn segment_results(
    first_index: usize,
    segments: &[Segment],
    scores: &[Option<f32>],
    rate: u32,
    threshold: f64,
) -> Vec<SegmentResult> {
    segments
        .iter()
        .zip(scores)
        .enumerate()
        .map(|(i, (s, &p))| SegmentResult {
            index: (first_index + i) as u32,
            start_seconds: s.start_seconds(rate),
            end_seconds: s.end_seconds(rate),
            fake_score: p.unwrap_or(0.0),
            verdict: p.map_or(Verdict::NoSpeech, |p| Verdict::of(f64::from(p), threshold)),
        })
        .collect()
}

/// The clip-level answer from its segments: the mean score of the segments with speech against
/// the model's threshold; `no_speech` when no segment has speech.
pub fn summary(
    model: &LoadedModel,
    segments: Vec<SegmentResult>,
    duration_seconds: f64,
    timings: StageTimings,
    request_id: String,
) -> ClipResult {
    let voiced: Vec<f64> =
        segments.iter().filter(|s| s.verdict != Verdict::NoSpeech).map(|s| f64::from(s.fake_score)).collect();
    let (verdict, mean) = if voiced.is_empty() {
        (Verdict::NoSpeech, 0.0)
    } else {
        let mean = voiced.iter().sum::<f64>() / voiced.len() as f64;
        (Verdict::of(mean, model.threshold()), mean)
    };
    ClipResult {
        verdict,
        fake_score: mean as f32,
        threshold: model.threshold(),
        segments,
        model: model.name().to_string(),
        model_version: model.version(),
        duration_seconds,
        timings,
        request_id,
    }
}

/// The span of one classification, whichever API it came through; `Classifier::classify` fills in
/// model, version and segment count.
pub fn request_span(api: &'static str, request_id: &str) -> tracing::Span {
    tracing::info_span!(
        "classify",
        api,
        request_id = %request_id,
        model = tracing::field::Empty,
        version = tracing::field::Empty,
        segments = tracing::field::Empty
    )
}

/// Milliseconds, as the API's stage timings report them.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl Classifier {
    pub fn new(
        store: Arc<ModelStore>,
        pool: FeaturePool,
        metrics: Arc<Metrics>,
        limits: Limits,
        budget: Arc<MemoryBudget>,
    ) -> Self {
        Self {
            store,
            pool,
            metrics,
            limits,
            budget,
            admission: Arc::new(Semaphore::new(limits.max_queue)),
            streams: Arc::new(Semaphore::new(limits.max_streams)),
            shutting_down: AtomicBool::new(false),
        }
    }

    /// The loaded models (what `resolve` picks from).
    pub fn store(&self) -> &Arc<ModelStore> {
        &self.store
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The memory budget that request audio is held against.
    pub fn budget(&self) -> &Arc<MemoryBudget> {
        &self.budget
    }

    pub(crate) fn pool(&self) -> &FeaturePool {
        &self.pool
    }

    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    pub fn check_open(&self) -> Result<(), ServiceError> {
        // Requests that arrived before the drain began are in flight: they finish (crate::drain).
        if self.shutting_down.load(Ordering::SeqCst) && !crate::drain::arrived_before_drain() {
            return Err(ServiceError::Unavailable("the server is shutting down; retry on another replica".into()));
        }
        Ok(())
    }

    /// A slot in the bounded queue, or RESOURCE_EXHAUSTED right away (shed load, never queue
    /// without bound).
    pub fn admit(&self) -> Result<Admitted, ServiceError> {
        self.check_open()?;
        let permit = Arc::clone(&self.admission)
            .try_acquire_owned()
            .map_err(|_| ServiceError::QueueFull { limit: self.limits.max_queue })?;
        Ok(Admitted::new(permit, &self.metrics.queue_depth))
    }

    /// A stream slot (gRPC or WebSocket), or RESOURCE_EXHAUSTED right away.
    pub fn admit_stream(&self) -> Result<Admitted, ServiceError> {
        self.check_open()?;
        let permit = Arc::clone(&self.streams)
            .try_acquire_owned()
            .map_err(|_| ServiceError::TooManyStreams { limit: self.limits.max_streams })?;
        Ok(Admitted::new(permit, &self.metrics.active_streams))
    }

    /// Every loaded model version and every rejected one.
    pub fn models(&self, include_manifest: bool) -> Listing {
        model_info::list(&self.store, include_manifest)
    }

    /// The version a request for (`name`, `version`) gets, described with its whole manifest.
    pub fn model(&self, name: &str, version: u64) -> Result<ModelInfo, ServiceError> {
        let m = self.store.resolve(name, version, crate::models::Route::STABLE)?;
        let serving = self.store.snapshot().models.get(m.name()).and_then(|e| e.serving);
        Ok(model_info::info(&m, serving == Some(m.version()), true))
    }

    /// Counts an answered request of `rpc` (`Ok`, or its error's class).
    pub fn count(&self, rpc: &'static str, outcome: Result<(), ErrorClass>) {
        self.metrics.request(rpc, outcome);
    }

    /// Counts and logs a finished classification (inside its span).
    pub fn record(&self, rpc: &'static str, span: &tracing::Span, result: &Result<ClipResult, ServiceError>) {
        let _enter = span.enter();
        self.metrics.request(rpc, ServiceError::outcome(result));
        match result {
            Ok(r) => {
                self.metrics.answered(r);
                tracing::debug!(verdict = r.verdict.as_str(), fake_score = r.fake_score, "classified");
            }
            Err(e) => tracing::debug!(error = e.name(), message = %e.public_message(), "classify failed"),
        }
    }

    /// Classifies one clip. With a `deadline` (the client's), a clip still queued or running
    /// when it passes is answered `deadline_exceeded` and its queued work is dropped.
    pub async fn classify(
        &self,
        audio: Audio,
        model: &str,
        version: u64,
        route: crate::models::Route,
        deadline: Option<Instant>,
        request_id: String,
    ) -> Result<ClipResult, ServiceError> {
        let work = async {
            let started = Instant::now();
            let _admitted = self.admit()?;
            let model = self.store.resolve(model, version, route)?;
            self.metrics.routed(model.name(), model.version());
            let span = tracing::Span::current();
            span.record("model", model.name());
            span.record("version", model.version());
            // The received bytes are held already; decoding asks for more as it goes.
            let mut reservation = self.budget.reservation();
            reservation.ensure(audio.byte_len() as u64)?;
            let (m, limits) = (Arc::clone(&model), self.limits.audio);
            let (prepared, _reservation) = self
                .pool
                .run_with((audio, reservation), move |(audio, mut r), cancel| {
                    let p = prepare(&m.extractor, &m.normalizer, audio, &limits, &mut r, cancel)?;
                    Ok((p, r))
                })
                .await?;
            span.record("segments", prepared.segments.len());
            if deadline.is_some_and(|d| Instant::now() >= d) {
                self.metrics.expired_in_queue.inc();
                return Err(ServiceError::DeadlineExceeded);
            }
            let scored = score_segments(&model, prepared.batch, deadline).await?;
            let rate = model.extractor.spec().sample_rate;
            // One reading of the clock, so the response and the metrics agree on the total.
            let total = started.elapsed();
            let timings = StageTimings {
                decode_ms: ms(prepared.decode),
                features_ms: ms(prepared.extract),
                queue_ms: ms(scored.queue),
                inference_ms: ms(scored.inference),
                total_ms: ms(total),
            };
            for (stage, d) in [
                ("decode", prepared.decode),
                ("features", prepared.extract),
                ("queue", scored.queue),
                ("inference", scored.inference),
                ("total", total),
            ] {
                self.metrics.stage(stage, d.as_secs_f64());
            }
            let segments = segment_results(0, &prepared.segments, &scored.scores, rate, model.threshold());
            let duration = prepared.samples as f64 / f64::from(rate);
            Ok(summary(&model, segments, duration, timings, request_id))
        };
        let Some(d) = deadline else { return work.await };
        tokio::time::timeout_at(d.into(), work).await.unwrap_or_else(|_| {
            // Dropping the future drops the queued job's reply: the batcher skips it.
            self.metrics.expired_in_queue.inc();
            Err(ServiceError::DeadlineExceeded)
        })
    }
}
