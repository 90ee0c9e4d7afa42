//! Decoding and feature extraction on a bounded pool of CPU threads, off the async reactor.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use vericlip_core::audio::{AudioInput, PcmFormat, Segment, load_mono};
use vericlip_core::{AudioLimits, FeatureExtractor, Normalizer};

use crate::error::ServiceError;

/// Audio as a request carries it.
#[derive(Debug, Clone)]
pub enum Audio {
    Encoded(Vec<u8>),
    Pcm { data: Vec<u8>, format: PcmFormat, sample_rate: u32, channels: u32 },
}

impl Audio {
    pub fn as_input(&self) -> AudioInput<'_> {
        match self {
            Audio::Encoded(b) => AudioInput::Encoded(b),
            Audio::Pcm { data, format, sample_rate, channels } => {
                AudioInput::Pcm { bytes: data, format: *format, sample_rate: *sample_rate, channels: *channels }
            }
        }
    }
}

/// Normalized features of a clip's segments, ready for the batcher.
pub struct Prepared {
    pub features: Vec<f32>,
    pub segments: Vec<Segment>,
    pub samples: usize,
    pub decode: Duration,
    pub extract: Duration,
}

/// Features of `segments` of `samples` (model-rate mono), normalized: the one place where the
/// service turns audio into model input.
pub fn segment_features(
    extractor: &FeatureExtractor,
    normalizer: &Normalizer,
    samples: &[f32],
    segments: &[Segment],
) -> Result<Vec<f32>, ServiceError> {
    let spec = extractor.spec();
    let mut scratch = extractor.scratch();
    let mut one = Vec::new();
    let mut out = Vec::with_capacity(segments.len() * spec.frames_per_segment() * spec.n_features());
    for s in segments {
        extractor
            .extract_into(&s.samples(samples, spec.segment_samples), &mut scratch, &mut one)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        normalizer.apply(&mut one);
        out.extend_from_slice(&one);
    }
    Ok(out)
}

/// Decodes a clip and computes its segments' features (non-overlapping segments, DESIGN.md's
/// tail rule).
pub fn prepare(
    extractor: &FeatureExtractor,
    normalizer: &Normalizer,
    audio: &Audio,
    limits: &AudioLimits,
) -> Result<Prepared, ServiceError> {
    let spec = extractor.spec();
    let t0 = Instant::now();
    let mono = load_mono(audio.as_input(), spec.sample_rate, limits)?;
    let decode = t0.elapsed();
    let t1 = Instant::now();
    let segments = spec.segments(mono.samples.len(), spec.segment_samples);
    let features = segment_features(extractor, normalizer, &mono.samples, &segments)?;
    Ok(Prepared { features, segments, samples: mono.samples.len(), decode, extract: t1.elapsed() })
}

/// A fixed set of CPU threads for decoding and features. Its queue is bounded by admission
/// control upstream (`runtime.max_queue` requests, `limits.max_streams` streams).
#[derive(Clone)]
pub struct FeaturePool {
    pool: Arc<rayon::ThreadPool>,
}

impl FeaturePool {
    pub fn new(threads: usize) -> anyhow::Result<Self> {
        let threads = if threads == 0 { std::thread::available_parallelism().map_or(2, |n| n.get()) } else { threads };
        let pool =
            rayon::ThreadPoolBuilder::new().num_threads(threads).thread_name(|i| format!("features-{i}")).build()?;
        Ok(Self { pool: Arc::new(pool) })
    }

    /// Runs `work` on the pool and waits for it without blocking the reactor.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, ServiceError> + Send + 'static,
    ) -> Result<T, ServiceError> {
        let (tx, rx) = oneshot::channel();
        self.pool.spawn(move || {
            // A panic in decoding must cost one request, not a pool thread.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
                .unwrap_or_else(|_| Err(ServiceError::Internal("feature worker panicked".into())));
            let _ = tx.send(result);
        });
        rx.await.map_err(|_| ServiceError::Internal("feature worker stopped".into()))?
    }
}
