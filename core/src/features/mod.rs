//! Feature extraction: `[frames][n_mfcc + n_chroma + n_mels]` per segment, exactly as
//! `shared/reference/features.py` (librosa 1.0) computes it, and per-feature normalization.
//!
//! A [`FeatureExtractor`] is built once (FFT plan, filterbanks, DCT) and shared between threads;
//! each worker owns a [`Scratch`], so extraction allocates nothing per frame (and nothing at all
//! once the scratch has seen a segment of the same length).
//!
//! Layout: the power spectra of all frames are stored bin-major (`[bin][frame]`), so the mel,
//! chroma and DCT stages are sums of scaled rows over all frames at once (see `kernels`), and
//! the result is transposed into frame-major rows at the end.

mod chroma;
mod dct;
pub mod mel;
mod normalize;
mod spec;
mod stft;

use ndarray::Array2;
use thiserror::Error;

pub use normalize::{Normalizer, NormalizerFit};
pub use spec::{ChromaNorm, FeatureSpec, PadMode, Slaney, Window};

use chroma::ChromaFilterbank;
use dct::Dct;
use mel::MelFilterbank;
use stft::{Stft, StftScratch};

#[derive(Debug, Error)]
pub enum FeatureError {
    #[error("invalid feature spec: `{field}`: {reason}")]
    InvalidSpec { field: &'static str, reason: String },
    #[error("cannot extract features from empty audio")]
    EmptyInput,
    #[error("normalizer: {0}")]
    Normalizer(String),
}

pub struct FeatureExtractor {
    spec: FeatureSpec,
    stft: Stft,
    mel: MelFilterbank,
    chroma: ChromaFilterbank,
    dct: Dct,
}

/// Per-worker buffers for [`FeatureExtractor::extract_into`].
pub struct Scratch {
    stft: StftScratch,
    /// `[n_bins][frames]` power spectra.
    power: Vec<f32>,
    /// `[n_mels][frames]` mel power, then log-mel.
    mel: Vec<f32>,
    /// `[n_chroma][frames]`.
    chroma: Vec<f32>,
    /// Per-frame chroma maximum.
    peak: Vec<f32>,
    /// `[n_mels][frames]` log-mel in f64, and `[n_mfcc][frames]` MFCC.
    logmel64: Vec<f64>,
    mfcc: Vec<f64>,
}

impl FeatureExtractor {
    pub fn new(spec: FeatureSpec) -> Result<Self, FeatureError> {
        spec.validate()?;
        Ok(Self {
            stft: Stft::new(spec.n_fft, spec.hop_length),
            mel: MelFilterbank::new(spec.sample_rate, spec.n_fft, spec.n_mels, spec.fmin, spec.fmax),
            chroma: ChromaFilterbank::new(spec.sample_rate, spec.n_fft, spec.n_chroma, spec.chroma_tuning),
            dct: Dct::new(spec.n_mels, spec.n_mfcc),
            spec,
        })
    }

    pub fn spec(&self) -> &FeatureSpec {
        &self.spec
    }

    pub fn scratch(&self) -> Scratch {
        Scratch {
            stft: self.stft.scratch(),
            power: Vec::new(),
            mel: Vec::new(),
            chroma: Vec::new(),
            peak: Vec::new(),
            logmel64: Vec::new(),
            mfcc: Vec::new(),
        }
    }

    /// Features of `samples` (mono, at the spec's rate) into `out`, row-major
    /// `[spec.frames_for(samples.len())][spec.n_features()]`; `out` is resized, reusing its buffer.
    ///
    /// On x86-64 CPUs with AVX2 the same code runs compiled for AVX2 (selected at run time, so the
    /// binary still runs on any x86-64). Results are bitwise identical either way: Rust never
    /// fuses multiply-adds implicitly and no stage reduces across SIMD lanes.
    pub fn extract_into(&self, samples: &[f32], scratch: &mut Scratch, out: &mut Vec<f32>) -> Result<(), FeatureError> {
        if samples.is_empty() {
            return Err(FeatureError::EmptyInput);
        }
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            unsafe { self.extract_avx2(samples, scratch, out) };
            return Ok(());
        }
        self.extract_body(samples, scratch, out);
        Ok(())
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn extract_avx2(&self, samples: &[f32], scratch: &mut Scratch, out: &mut Vec<f32>) {
        self.extract_body(samples, scratch, out);
    }

    /// The extraction itself; always inlined so each caller compiles it for its target features.
    #[inline(always)]
    fn extract_body(&self, samples: &[f32], scratch: &mut Scratch, out: &mut Vec<f32>) {
        let s = &self.spec;
        let frames = self.stft.prepare(samples, &mut scratch.stft);
        let sc = scratch;
        sc.power.resize(self.stft.n_bins() * frames, 0.0);
        for t in 0..frames {
            self.stft.power_frame(t, frames, &mut sc.stft, &mut sc.power);
        }
        sc.mel.resize(s.n_mels * frames, 0.0);
        self.mel.apply_columns(&sc.power, frames, &mut sc.mel);
        // dB needs the segment-wide maximum (top_db), hence after all frames.
        mel::power_to_db_in_place(&mut sc.mel, s.db_amin as f32, s.db_ref as f32, s.db_top as f32);
        sc.chroma.resize(s.n_chroma * frames, 0.0);
        self.chroma.apply_columns(&sc.power, frames, &mut sc.chroma, &mut sc.peak);
        sc.logmel64.clear();
        sc.logmel64.extend(sc.mel.iter().map(|&v| f64::from(v)));
        sc.mfcc.resize(s.n_mfcc * frames, 0.0);
        self.dct.apply_columns(&sc.logmel64, frames, &mut sc.mfcc);
        // Frame-major rows: [mfcc, chroma, log-mel].
        let width = s.n_features();
        out.clear();
        out.resize(frames * width, 0.0);
        for (t, row) in out.chunks_exact_mut(width).enumerate() {
            let (mfcc, rest) = row.split_at_mut(s.n_mfcc);
            let (chroma, logmel) = rest.split_at_mut(s.n_chroma);
            for (k, v) in mfcc.iter_mut().enumerate() {
                *v = sc.mfcc[k * frames + t] as f32;
            }
            for (c, v) in chroma.iter_mut().enumerate() {
                *v = sc.chroma[c * frames + t];
            }
            for (m, v) in logmel.iter_mut().enumerate() {
                *v = sc.mel[m * frames + t];
            }
        }
    }

    /// Convenience form of [`Self::extract_into`] returning a `[frames, n_features]` array.
    pub fn extract(&self, samples: &[f32]) -> Result<Array2<f32>, FeatureError> {
        let mut out = Vec::new();
        self.extract_into(samples, &mut self.scratch(), &mut out)?;
        let frames = out.len() / self.spec.n_features();
        Array2::from_shape_vec((frames, self.spec.n_features()), out)
            .map_err(|e| FeatureError::InvalidSpec { field: "n_features", reason: e.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extractor_is_shareable_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<FeatureExtractor>();
    }

    #[test]
    fn shape_and_basic_values_for_a_tone() {
        let spec = FeatureSpec::default();
        let ex = FeatureExtractor::new(spec.clone()).unwrap();
        let tone: Vec<f32> =
            (0..32_000).map(|i| (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 16_000.0).sin() * 0.5).collect();
        let f = ex.extract(&tone).unwrap();
        assert_eq!(f.dim(), (126, 96));
        // A4 = 440 Hz is pitch class A (index 9 with C at 0): chroma max there in a middle frame.
        let chroma = f.row(60);
        let chroma = &chroma.as_slice().unwrap()[20..32];
        let argmax = chroma.iter().enumerate().fold(0, |b, (i, v)| if *v > chroma[b] { i } else { b });
        assert_eq!(argmax, 9, "{chroma:?}");
        assert!((chroma[9] - 1.0).abs() < 1e-6);
        assert!(f.iter().all(|v| v.is_finite()));
        assert!(ex.extract(&[]).is_err());
    }

    #[test]
    fn dispatched_and_portable_paths_agree_bitwise() {
        let ex = FeatureExtractor::new(FeatureSpec::default()).unwrap();
        let noise: Vec<f32> =
            (0..40_000u32).map(|i| ((i.wrapping_mul(2_654_435_761) >> 9) as f32 / 8_388_608.0 - 1.0) * 0.3).collect();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        ex.extract_into(&noise, &mut ex.scratch(), &mut a).unwrap();
        ex.extract_body(&noise, &mut ex.scratch(), &mut b);
        assert_eq!(a.len(), b.len());
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
    }
}
