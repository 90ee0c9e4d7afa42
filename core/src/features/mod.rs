//! Feature extraction: `[frames][n_mfcc + n_chroma + n_mels]` per segment, exactly as
//! `shared/reference/features.py` (librosa 1.0) computes it, and per-feature normalization.
//!
//! A [`FeatureExtractor`] is built once (FFT plan, filterbanks, DCT) and shared between threads;
//! each worker owns a [`Scratch`], so extraction allocates nothing per frame.

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
    power: Vec<f32>,
}

impl FeatureExtractor {
    pub fn new(spec: FeatureSpec) -> Result<Self, FeatureError> {
        spec.validate()?;
        Ok(Self {
            stft: Stft::new(spec.n_fft, spec.hop_length),
            mel: MelFilterbank::new(
                spec.sample_rate,
                spec.n_fft,
                spec.n_mels,
                spec.fmin,
                spec.fmax,
            ),
            chroma: ChromaFilterbank::new(
                spec.sample_rate,
                spec.n_fft,
                spec.n_chroma,
                spec.chroma_tuning,
            ),
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
            power: vec![0.0; self.stft.n_bins()],
        }
    }

    /// Features of `samples` (mono, at the spec's rate) into `out`, row-major
    /// `[spec.frames_for(samples.len())][spec.n_features()]`; `out` is resized, reusing its buffer.
    pub fn extract_into(
        &self,
        samples: &[f32],
        scratch: &mut Scratch,
        out: &mut Vec<f32>,
    ) -> Result<(), FeatureError> {
        if samples.is_empty() {
            return Err(FeatureError::EmptyInput);
        }
        let s = &self.spec;
        let width = s.n_features();
        let (mfcc_at, chroma_at, mel_at) = (0, s.n_mfcc, s.n_mfcc + s.n_chroma);
        out.clear();
        out.resize(s.frames_for(samples.len()) * width, 0.0);
        // Pass 1: mel power and chroma per frame, written straight into each row's slots.
        self.stft.for_each_power_frame(
            samples,
            &mut scratch.stft,
            &mut scratch.power,
            |t, power| {
                let row = &mut out[t * width..(t + 1) * width];
                self.mel.apply(power, &mut row[mel_at..mel_at + s.n_mels]);
                self.chroma
                    .apply(power, &mut row[chroma_at..chroma_at + s.n_chroma]);
            },
        );
        // Pass 2: dB needs the clip-wide maximum (top_db), so it runs after all frames exist.
        mel::power_to_db_in_place(
            out,
            width,
            mel_at,
            s.n_mels,
            s.db_amin as f32,
            s.db_ref as f32,
            s.db_top as f32,
        );
        // Pass 3: MFCC = DCT of each row's log-mel.
        for row in out.chunks_exact_mut(width) {
            let (head, logmel) = row.split_at_mut(mel_at);
            self.dct
                .apply(logmel, &mut head[mfcc_at..mfcc_at + s.n_mfcc]);
        }
        Ok(())
    }

    /// Convenience form of [`Self::extract_into`] returning a `[frames, n_features]` array.
    pub fn extract(&self, samples: &[f32]) -> Result<Array2<f32>, FeatureError> {
        let mut out = Vec::new();
        self.extract_into(samples, &mut self.scratch(), &mut out)?;
        let frames = out.len() / self.spec.n_features();
        Array2::from_shape_vec((frames, self.spec.n_features()), out).map_err(|e| {
            FeatureError::InvalidSpec {
                field: "n_features",
                reason: e.to_string(),
            }
        })
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
        let tone: Vec<f32> = (0..32_000)
            .map(|i| (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 16_000.0).sin() * 0.5)
            .collect();
        let f = ex.extract(&tone).unwrap();
        assert_eq!(f.dim(), (126, 96));
        // A4 = 440 Hz is pitch class A (index 9 with C at 0): chroma max there in a middle frame.
        let chroma = f.row(60);
        let chroma = &chroma.as_slice().unwrap()[20..32];
        let argmax = chroma
            .iter()
            .enumerate()
            .fold(0, |b, (i, v)| if *v > chroma[b] { i } else { b });
        assert_eq!(argmax, 9, "{chroma:?}");
        assert!((chroma[9] - 1.0).abs() < 1e-6);
        assert!(f.iter().all(|v| v.is_finite()));
        assert!(ex.extract(&[]).is_err());
    }
}
