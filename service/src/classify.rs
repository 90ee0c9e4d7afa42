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
use tracing::Instrument;
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

/// Holds admission slots, a request's, a batch's (one per clip) or a stream's (whatever its
/// transport); frees them, and their gauge (`queue_depth` or `active_streams`), on drop.
pub struct Admitted {
    _permit: OwnedSemaphorePermit,
    gauge: Gauge,
    slots: i64,
}

impl Admitted {
    fn new(permit: OwnedSemaphorePermit, gauge: &Gauge) -> Self {
        let slots = permit.num_permits() as i64;
        gauge.inc_by(slots);
        Self { _permit: permit, gauge: gauge.clone(), slots }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.gauge.dec_by(self.slots);
    }
}

/// Most clips one batch (`ClassifyBatch`, `POST /v1/classify:batch`) may carry; a server whose
/// `runtime.max_queue` is smaller takes at most that many (`Classifier::max_batch_clips`).
pub const MAX_BATCH_CLIPS: usize = 32;

/// One clip of a batch as its transport read it: the audio (or why it has none usable, which
/// becomes that clip's error alone) and the model it asks for.
pub struct BatchClip {
    pub audio: Result<Audio, ServiceError>,
    pub model: String,
    pub version: u64,
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

    /// `n` slots in the bounded queue at once (a batch's clips), or RESOURCE_EXHAUSTED right
    /// away: a batch is admitted whole or not at all, so a refused one can be retried as it is.
    fn admit_many(&self, n: usize) -> Result<Admitted, ServiceError> {
        self.check_open()?;
        let n = u32::try_from(n).map_err(|_| ServiceError::QueueFull { limit: self.limits.max_queue })?;
        let permit = Arc::clone(&self.admission)
            .try_acquire_many_owned(n)
            .map_err(|_| ServiceError::QueueFull { limit: self.limits.max_queue })?;
        Ok(Admitted::new(permit, &self.metrics.queue_depth))
    }

    /// The most clips a batch may carry here: `MAX_BATCH_CLIPS`, or the queue's size when that
    /// is smaller (a batch takes a queue slot per clip and must fit in an idle queue).
    pub fn max_batch_clips(&self) -> usize {
        MAX_BATCH_CLIPS.min(self.limits.max_queue)
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
        let traffic = self
            .store
            .snapshot()
            .models
            .get(m.name())
            .map(|e| model_info::Traffic { stable: e.serving, canary: e.canary })
            .unwrap_or_default();
        Ok(model_info::info(&m, traffic, true))
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
        let started = Instant::now();
        let _admitted = self.admit()?;
        self.classify_admitted(started, audio, model, version, route, deadline, request_id).await
    }

    /// Classifies the `clips` of one batch concurrently, each as `classify` would (the batcher
    /// gathers their segments with everyone else's; each holds its audio against the memory
    /// budget), after admitting them all at once. Each clip gets its own result or error; the
    /// batch itself fails only when it is empty, over `max_batch_clips`, not admitted, or the
    /// replica is not ready.
    /// `api` and `rpc` name the transport in the clips' spans and request counts.
    #[allow(clippy::too_many_arguments)]
    pub async fn classify_batch(
        &self,
        api: &'static str,
        rpc: &'static str,
        clips: Vec<BatchClip>,
        route: crate::models::Route,
        deadline: Option<Instant>,
        request_id: &str,
    ) -> Result<Vec<Result<ClipResult, ServiceError>>, ServiceError> {
        let limit = self.max_batch_clips();
        if clips.is_empty() {
            return Err(ServiceError::bad_request("empty_batch", "the batch carries no clips (`clips` is empty)"));
        }
        if clips.len() > limit {
            return Err(ServiceError::bad_request(
                "batch_too_large",
                format!("the batch carries {} clips; at most {limit} per batch: split it", clips.len()),
            ));
        }
        // A replica with nothing to serve fails the batch whole (UNAVAILABLE, which the clients
        // retry on another replica), not clip by clip.
        if let Some(reason) = self.store.snapshot().unready_reason() {
            return Err(ServiceError::Unavailable(format!("this replica is not ready ({reason}); retry shortly")));
        }
        let started = Instant::now();
        let _admitted = self.admit_many(clips.len())?;
        let work = clips.into_iter().enumerate().map(|(i, clip)| {
            let span = request_span(api, request_id);
            let id = request_id.to_string();
            let inner = span.clone();
            async move {
                tracing::debug!(clip = i, "batch clip");
                let result = match clip.audio {
                    Ok(audio) => {
                        self.classify_admitted(started, audio, &clip.model, clip.version, route, deadline, id).await
                    }
                    Err(e) => Err(e),
                };
                self.record(rpc, &inner, &result);
                result
            }
            .instrument(span)
        });
        Ok(futures_util::future::join_all(work).await)
    }

    /// `classify` after admission; `started` is when the request began (for its total time).
    #[allow(clippy::too_many_arguments)]
    async fn classify_admitted(
        &self,
        started: Instant,
        audio: Audio,
        model: &str,
        version: u64,
        route: crate::models::Route,
        deadline: Option<Instant>,
        request_id: String,
    ) -> Result<ClipResult, ServiceError> {
        let work = async {
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
