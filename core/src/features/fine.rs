//! The fine kinds: a second, longer STFT (`fine_n_fft`, e.g. 1024 at 16 kHz: 15.6 Hz bins over
//! the full 0..sample_rate/2 band) and two blocks read off its log power spectrum `L`:
//! - the linear log power spectrum: rows `0..n_fine_log_spec` of `L`;
//! - the spectral fine structure: `L` minus its own cepstrally liftered envelope, per frame,
//!   rows `0..n_fine_structure`.
//!
//! Why: the seed features (MFCC, chroma, 64 mel bands) describe the spectral envelope, which a
//! neural vocoder (HiFi-GAN) reproduces by design; what separates its copy from the source lies
//! between the harmonics. Each frame's log spectrum minus its smoothed envelope separated
//! HiFi-GAN copies from their sources across checkpoints (AUC 0.92) where the pooled seed
//! features could not (0.38; issue 31's probe).
//!
//! The STFT is the one implementation of `features::stft` (Hann, centre zero padding, f64
//! transform rounded to complex64 and squared, as librosa) at `fine_n_fft` with the seed's hop:
//! frame `t` is centred on sample `t * hop_length`, as the seed STFT's frame `t` is, so both
//! streams have `1 + samples / hop_length` frames and are concatenated frame by frame.
//!
//! `L = power_to_db(P, db_ref, db_amin, db_top)` over all `K = fine_n_fft / 2 + 1` bins (the
//! floor 80 dB under the segment's maximum over all of them). The envelope is the real cepstrum
//! of the frame's log spectrum low-passed in quefrency: `c[q] = (1/N) sum_k m_k L[k]
//! cos(pi k q / (K - 1))` for `q < Q` (`N = fine_n_fft`, `m_k` 1 at DC and Nyquist, else 2:
//! `irfft(L)`), `E[k] = c[0] + 2 sum_{q=1}^{Q-1} c[q] cos(pi k q / (K - 1))` (`rfft` of the
//! cepstrum with quefrencies `Q..=N-Q` zeroed), `Q = fine_lifter`. Two dense cosine passes over
//! the bin-major spectrogram (`Q x K`, then `K x Q`), in f64. Reference: `fine_db` and
//! `fine_structure` in `tests/golden/reference_features_ext.py` (numpy's FFTs).

use super::dct::Dct;
use super::filterbank;
use super::stft::{Stft, StftScratch};

pub struct Fine {
    stft: Stft,
    /// Analysis (`Q x K`: log spectrum -> cepstrum) and synthesis (`n_structure x Q`:
    /// cepstrum -> envelope) of the lifter, when the spec has the fine structure.
    lifter: Option<(Dct, Dct)>,
    /// Cepstral coefficients kept (`Q`).
    q: usize,
    n_structure: usize,
    n_log_spec: usize,
}

/// Per-worker buffers of [`Fine::apply`].
pub struct FineScratch {
    /// The STFT size its buffers were made for.
    n_fft: usize,
    stft: StftScratch,
    /// `[K][frames]` power, then dB.
    db: Vec<f32>,
    /// `[K][frames]` dB in f64, the lifter's input.
    db64: Vec<f64>,
    /// `[Q][frames]` cepstra.
    ceps: Vec<f64>,
    /// `[n_structure][frames]` envelope.
    envelope: Vec<f64>,
}

impl Fine {
    /// `fine_n_fft`, the seed's `hop`, the lifter's `q` (0 without the fine structure) and the
    /// two blocks' sizes (bins from 0).
    pub fn new(n_fft: usize, hop: usize, q: usize, n_structure: usize, n_log_spec: usize) -> Self {
        let stft = Stft::new(n_fft, hop);
        let k_bins = stft.n_bins();
        let lifter = (n_structure > 0).then(|| {
            let last = (k_bins - 1) as f64;
            let cos = |k: usize, q: usize| (std::f64::consts::PI * (k * q) as f64 / last).cos();
            let mut analysis = Vec::with_capacity(q * k_bins);
            for qi in 0..q {
                analysis.extend((0..k_bins).map(|k| {
                    let m = if k == 0 || k == k_bins - 1 { 1.0 } else { 2.0 };
                    m * cos(k, qi) / n_fft as f64
                }));
            }
            // Only the output bins' envelope is needed.
            let mut synthesis = Vec::with_capacity(n_structure * q);
            for k in 0..n_structure {
                synthesis.extend((0..q).map(|qi| if qi == 0 { 1.0 } else { 2.0 * cos(k, qi) }));
            }
            (Dct::from_matrix(analysis, k_bins), Dct::from_matrix(synthesis, q))
        });
        Self { stft, lifter, q, n_structure, n_log_spec }
    }

    pub fn scratch(&self) -> FineScratch {
        FineScratch {
            n_fft: self.stft.n_fft(),
            stft: self.stft.scratch(),
            db: Vec::new(),
            db64: Vec::new(),
            ceps: Vec::new(),
            envelope: Vec::new(),
        }
    }

    /// Whether `sc` was made for this STFT size.
    pub fn fits(&self, sc: &FineScratch) -> bool {
        sc.n_fft == self.stft.n_fft()
    }

    /// Both blocks for `samples` (`frames` of them, as the seed STFT's), bin-major: the fine
    /// structure's `[n_structure][frames]` into `structure`, the log spectrum's
    /// `[n_log_spec][frames]` into `log_spec` (each cleared first; empty without its block).
    /// Always inlined, so the extractor's AVX2 / AVX-512 copies compile it for those targets.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub fn apply<const SIMD: bool, const WIDE: bool>(
        &self,
        samples: &[f32],
        frames: usize,
        (db_amin, db_ref, db_top): (f32, f32, f32),
        sc: &mut FineScratch,
        structure: &mut Vec<f32>,
        log_spec: &mut Vec<f32>,
    ) {
        structure.clear();
        log_spec.clear();
        let own_frames = self.stft.prepare(samples, &mut sc.stft);
        debug_assert_eq!(own_frames, frames, "same hop: the same frames as the seed STFT");
        let k_bins = self.stft.n_bins();
        sc.db.resize(k_bins * frames, 0.0);
        self.stft.power::<SIMD>(frames, &mut sc.stft, &mut sc.db);
        filterbank::power_to_db_in_place(&mut sc.db, db_amin, db_ref, db_top);
        log_spec.extend_from_slice(&sc.db[..self.n_log_spec * frames]);
        if let Some((analysis, synthesis)) = &self.lifter {
            sc.db64.clear();
            sc.db64.extend(sc.db.iter().map(|&v| f64::from(v)));
            sc.ceps.resize(self.q * frames, 0.0);
            analysis.apply_columns::<WIDE>(&sc.db64, frames, &mut sc.ceps);
            let rows = self.n_structure * frames;
            sc.envelope.resize(rows, 0.0);
            synthesis.apply_columns::<WIDE>(&sc.ceps, frames, &mut sc.envelope);
            structure.extend(sc.db64[..rows].iter().zip(&sc.envelope[..rows]).map(|(l, e)| (l - e) as f32));
        }
    }
}
