//! Decoding and feature extraction on a bounded pool of CPU threads, off the async reactor.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use vericlip_core::audio::activity::has_speech;
use vericlip_core::audio::{AudioInput, MonoAudio, PcmFormat, Segment, load_mono_budgeted};
use vericlip_core::clip::{ClipAudio, ClipBudget, ClipError, clip_features_gated, gated_segment_features};
use vericlip_core::{AudioError, AudioLimits, FeatureExtractor, Normalizer};

use crate::budget::Reservation;
use crate::error::ServiceError;
use crate::metrics::Metrics;
use crate::pipeline::watchdog::{self, Progress};

/// Audio as a request carries it.
#[derive(Debug, Clone)]
pub enum Audio {
    Encoded(Vec<u8>),
    Pcm { data: Vec<u8>, format: PcmFormat, sample_rate: u32, channels: u32 },
}

impl Audio {
    /// Bytes the request's audio occupies as received.
    pub fn byte_len(&self) -> usize {
        match self {
            Audio::Encoded(b) => b.len(),
            Audio::Pcm { data, .. } => data.len(),
        }
    }

    pub fn as_input(&self) -> AudioInput<'_> {
        match self {
            Audio::Encoded(b) => AudioInput::Encoded(b),
            Audio::Pcm { data, format, sample_rate, channels } => {
                AudioInput::Pcm { bytes: data, format: *format, sample_rate: *sample_rate, channels: *channels }
            }
        }
    }
}

/// Normalized features of a clip's segments with speech, ready for the batcher.
pub struct Prepared {
    pub batch: SegmentBatch,
    pub segments: Vec<Segment>,
    pub samples: usize,
    pub decode: Duration,
    pub extract: Duration,
}

/// Model input for some segments: which of them have speech (core's energy gate,
/// `vericlip_core::audio::activity`), and the normalized features of those, in order. A segment
/// without speech is neither featurized nor scored: it is answered `no_speech`.
#[derive(Debug, Clone, Default)]
pub struct SegmentBatch {
    pub features: Vec<f32>,
    pub speech: Vec<bool>,
}

impl SegmentBatch {
    /// Segments the model will score.
    pub fn with_speech(&self) -> usize {
        self.speech.iter().filter(|&&s| s).count()
    }
}

/// Features of `segments` of `samples` (model-rate mono), normalized, for the segments with
/// speech: how a stream window becomes model input (a clip's go through [`prepare`]; both gate
/// and featurize with core's `gated_segment_features`).
pub fn segment_features(
    extractor: &FeatureExtractor,
    normalizer: &Normalizer,
    samples: &[f32],
    segments: &[Segment],
) -> Result<SegmentBatch, ServiceError> {
    let (features, speech) = gated_segment_features(extractor, Some(normalizer), samples, segments, has_speech)
        .map_err(|e| ServiceError::Internal(e.to_string()))?;
    Ok(SegmentBatch { features, speech })
}

/// Decodes a clip and computes its segments' features (core's `clip_features`: non-overlapping
/// segments, DESIGN.md's tail rule), for the segments with speech. `reservation` holds the
/// request's share of the memory budget: it grows before each buffer does (decoded samples,
/// resampled samples, features) and shrinks as buffers are freed; `cancel` stops the work at the
/// next packet or stage.
pub fn prepare(
    extractor: &FeatureExtractor,
    normalizer: &Normalizer,
    audio: Audio,
    limits: &AudioLimits,
    reservation: &mut Reservation,
    cancel: &Cancel,
) -> Result<Prepared, ServiceError> {
    let mut budget = PoolBudget::new(&audio, reservation, cancel);
    // The gate sees each segment's real audio at its recorded level: before padding and features.
    let clip = clip_features_gated(extractor, Some(normalizer), audio, limits, &mut budget, has_speech).map_err(
        |e| match e {
            ClipError::Audio(e) => ServiceError::from(e),
            ClipError::Features(e) => ServiceError::Internal(e.to_string()),
        },
    )?;
    Ok(Prepared {
        batch: SegmentBatch { features: clip.features, speech: clip.kept },
        segments: clip.segments,
        samples: clip.samples,
        decode: clip.decode,
        extract: clip.extract,
    })
}

const F32: u64 = 4;

/// The feature pool's [`ClipBudget`]: the request's memory-budget `Reservation` (which, while
/// decoding, also covers the received input) and its job's `Cancel`.
struct PoolBudget<'a> {
    reservation: &'a mut Reservation,
    cancel: &'a Cancel,
    /// Bytes the input occupies while it is decoded.
    input_bytes: u64,
}

impl<'a> PoolBudget<'a> {
    fn new(audio: &Audio, reservation: &'a mut Reservation, cancel: &'a Cancel) -> Self {
        // symphonia reads an encoded file from its own copy of the bytes.
        let copies = if matches!(audio, Audio::Encoded(_)) { 2 } else { 1 };
        Self { reservation, cancel, input_bytes: audio.byte_len() as u64 * copies }
    }
}

impl ClipBudget for PoolBudget<'_> {
    fn decoding(&mut self, samples: usize) -> Result<(), AudioError> {
        self.cancel.check()?;
        self.reservation.ensure(self.input_bytes + samples as u64 * F32)
    }

    fn decoded(&mut self, samples: usize) -> Result<(), AudioError> {
        self.reservation.set(samples as u64 * F32)?;
        self.cancel.check()
    }

    fn extracting(&mut self, samples: usize, features: usize) -> Result<(), AudioError> {
        self.reservation.set((samples + features) as u64 * F32)
    }

    fn extracted(&mut self, features: usize) -> Result<(), AudioError> {
        self.reservation.set(features as u64 * F32)
    }
}

impl ClipAudio for Audio {
    fn input(&self) -> AudioInput<'_> {
        self.as_input()
    }
}

/// Decodes `audio` to mono at `rate` within the memory budget: `reservation` grows before each
/// buffer does and, on return, holds just the result; `cancel` stops at the next packet.
pub fn decode(
    audio: Audio,
    rate: u32,
    limits: &AudioLimits,
    reservation: &mut Reservation,
    cancel: &Cancel,
) -> Result<MonoAudio, ServiceError> {
    let mut budget = PoolBudget::new(&audio, reservation, cancel);
    let mono = {
        let mut decoding = |samples: usize| budget.decoding(samples);
        load_mono_budgeted(audio.as_input(), rate, limits, &mut decoding)?
    };
    drop(audio);
    budget.reservation.set(mono.samples.len() as u64 * F32)?;
    Ok(mono)
}

/// Set when a job's caller has gone (deadline passed, client disconnected): a queued job is then
/// skipped, and a running one stops at its next chunk boundary.
#[derive(Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    pub fn check(&self) -> Result<(), AudioError> {
        if self.is_cancelled() { Err(AudioError::Cancelled) } else { Ok(()) }
    }
}

/// Cancels a job and drops its input if the waiting side goes away before the job finishes.
struct Abandon<T> {
    cancel: Cancel,
    input: Arc<Mutex<Option<T>>>,
    armed: bool,
}

impl<T> Drop for Abandon<T> {
    fn drop(&mut self) {
        if self.armed {
            self.cancel.0.store(true, Ordering::Release);
            // The job may sit in the pool's queue for a while: free its audio now.
            drop(self.input.lock().map(|mut i| i.take()));
        }
    }
}

/// A pool thread's job in hand, for liveness: finished when dropped (a panic included).
struct InHand<'a>(&'a Progress);

impl<'a> InHand<'a> {
    fn new(progress: &'a Progress) -> Self {
        progress.enqueued();
        Self(progress)
    }
}

impl Drop for InHand<'_> {
    fn drop(&mut self) {
        self.0.taken(1);
    }
}

/// A fixed set of CPU threads for decoding and features. Its queue is bounded by admission
/// control upstream (`runtime.max_queue` requests, `limits.max_streams` streams) and by the
/// memory budget; work whose caller has gone is skipped or stopped (`Cancel`).
#[derive(Clone)]
pub struct FeaturePool {
    pool: Arc<rayon::ThreadPool>,
    metrics: Arc<Metrics>,
    /// Liveness (`watchdog`): jobs queued and not started, and each thread's job in hand.
    queue: Arc<Progress>,
    threads: Arc<Vec<Arc<Progress>>>,
}

impl FeaturePool {
    pub fn new(threads: usize, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        let threads = if threads == 0 { std::thread::available_parallelism().map_or(2, |n| n.get()) } else { threads };
        let pool =
            rayon::ThreadPoolBuilder::new().num_threads(threads).thread_name(|i| format!("features-{i}")).build()?;
        let queue = watchdog::track("feature pool queue");
        let threads = (0..threads).map(|i| watchdog::track(format!("feature worker features-{i}"))).collect();
        Ok(Self { pool: Arc::new(pool), metrics, queue, threads: Arc::new(threads) })
    }

    /// Runs `work` on the pool and waits for it without blocking the reactor.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, ServiceError> + Send + 'static,
    ) -> Result<T, ServiceError> {
        self.run_with((), move |(), _| work()).await
    }

    /// Runs `work(input, cancel)` on the pool. If this future is dropped first (the caller's
    /// deadline passed or its client went away), `input` is dropped at once, a job still queued
    /// never runs, and `cancel` tells a running one to stop.
    pub async fn run_with<I: Send + 'static, T: Send + 'static>(
        &self,
        input: I,
        work: impl FnOnce(I, &Cancel) -> Result<T, ServiceError> + Send + 'static,
    ) -> Result<T, ServiceError> {
        let (tx, rx) = oneshot::channel();
        let cancel = Cancel::default();
        let slot = Arc::new(Mutex::new(Some(input)));
        let mut abandon = Abandon { cancel: cancel.clone(), input: Arc::clone(&slot), armed: true };
        let metrics = Arc::clone(&self.metrics);
        let (queue, threads) = (Arc::clone(&self.queue), Arc::clone(&self.threads));
        queue.enqueued();
        self.pool.spawn(move || {
            queue.taken(1);
            let mine = rayon::current_thread_index().and_then(|i| threads.get(i));
            let _in_hand = mine.map(|p| InHand::new(p));
            let input = slot.lock().ok().and_then(|mut i| i.take());
            let Some(input) = input.filter(|_| !cancel.is_cancelled()) else {
                metrics.cancelled_jobs.inc();
                return;
            };
            // A panic in decoding must cost one request, not a pool thread.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(input, &cancel)))
                .unwrap_or_else(|_| Err(ServiceError::Internal("feature worker panicked".into())));
            if matches!(result, Err(ServiceError::Audio(AudioError::Cancelled))) {
                metrics.cancelled_jobs.inc();
            }
            let _ = tx.send(result);
        });
        let result = rx.await.map_err(|_| ServiceError::Internal("feature worker stopped".into()));
        abandon.armed = false;
        result?
    }
}
