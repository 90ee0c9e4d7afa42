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
//! cepstrum with quefrencies `Q..=N-Q` zeroed), `Q = fine_lifter`. Dense cosine passes over
//! the bin-major spectrogram in f64, folded by the cosines' symmetry (see `Lifter`). Reference: `fine_db` and
//! `fine_structure` in `tests/golden/reference_features_ext.py` (numpy's FFTs).

use super::dct::Dct;
use super::filterbank;
use super::stft::{Stft, StftScratch};

pub struct Fine {
    stft: Stft,
    /// The lifter's four cosine passes, when the spec has the fine structure.
    lifter: Option<Lifter>,
    n_structure: usize,
    n_log_spec: usize,
}

/// The cepstral lifter, folded: with `M = K - 1` (even), `cos(pi (M - k) q / M) = (-1)^q
/// cos(pi k q / M)`, so bins `k` and `M - k` enter the even cepstra as their sum and the odd
/// ones as their difference, and the envelope of bin `M - k` is the even part minus the odd
/// part of bin `k`'s: every pass runs over `M / 2 + 1` bins instead of `K` (half the work of
/// the plain `Q x K` and `K x Q` products, the same sums up to rounding).
struct Lifter {
    /// Even / odd quefrencies: `(sum rows, H + 1) -> even cepstra`, `(difference rows, H) -> odd`.
    analysis_even: Dct,
    analysis_odd: Dct,
    /// Even / odd cepstra -> the two parts of the envelope of bins `0..=H`.
    synthesis_even: Dct,
    synthesis_odd: Dct,
    n_even: usize,
    n_odd: usize,
    /// `H = M / 2`.
    half: usize,
}

/// Per-worker buffers of [`Fine::apply`].
pub struct FineScratch {
    /// The STFT size its buffers were made for.
    n_fft: usize,
    stft: StftScratch,
    /// `[K][frames]` power, then dB.
    db: Vec<f32>,
    /// `[H + 1][frames]` sums `L[k] + L[M - k]` (`L[H]` alone), `[H][frames]` differences.
    sum: Vec<f64>,
    diff: Vec<f64>,
    /// `[n_even][frames]`, `[n_odd][frames]` cepstra.
    ceps_even: Vec<f64>,
    ceps_odd: Vec<f64>,
    /// `[H + 1][frames]` even and odd parts of the envelope.
    env_even: Vec<f64>,
    env_odd: Vec<f64>,
}

impl Lifter {
    /// `q` cepstral coefficients for `n_fft` (a multiple of 4: `M = n_fft / 2` even).
    fn new(n_fft: usize, q: usize) -> Self {
        let m = n_fft / 2;
        let half = m / 2;
        let cos = |k: usize, q: usize| (std::f64::consts::PI * (k * q) as f64 / m as f64).cos();
        // irfft's weights: 1 at DC (and Nyquist, folded into DC's row), 2 elsewhere, over n_fft.
        let weight = |k: usize| if k == 0 { 1.0 } else { 2.0 };
        let analysis = |qs: &[usize], bins: usize| -> Dct {
            let rows = qs.iter().flat_map(|&qi| (0..bins).map(move |k| weight(k) * cos(k, qi) / n_fft as f64));
            Dct::from_matrix(rows.collect(), bins)
        };
        // rfft of the even cepstrum: c[0] + 2 sum_q c[q] cos(pi k q / M).
        let synthesis = |qs: &[usize]| -> Dct {
            let rows = (0..=half).flat_map(|k| qs.iter().map(move |&qi| if qi == 0 { 1.0 } else { 2.0 * cos(k, qi) }));
            Dct::from_matrix(rows.collect(), qs.len().max(1))
        };
        let even: Vec<usize> = (0..q).step_by(2).collect();
        let odd: Vec<usize> = (1..q).step_by(2).collect();
        Self {
            analysis_even: analysis(&even, half + 1),
            analysis_odd: analysis(&odd, half),
            synthesis_even: synthesis(&even),
            synthesis_odd: synthesis(&odd),
            n_even: even.len(),
            n_odd: odd.len(),
            half,
        }
    }

    /// `out[k][t] = L[k][t] - E[k][t]` for the first `out.len() / frames` bins, from the
    /// `[K][frames]` dB `db`.
    #[inline(always)]
    fn apply<const WIDE: bool>(
        &self,
        db: &[f32],
        frames: usize,
        sc: &mut FineScratch,
        out: &mut Vec<f32>,
        n_out: usize,
    ) {
        let (h, m) = (self.half, 2 * self.half);
        let row = |k: usize| &db[k * frames..(k + 1) * frames];
        sc.sum.clear();
        sc.diff.clear();
        for k in 0..h {
            let (a, b) = (row(k), row(m - k));
            sc.sum.extend(a.iter().zip(b).map(|(&x, &y)| f64::from(x) + f64::from(y)));
            sc.diff.extend(a.iter().zip(b).map(|(&x, &y)| f64::from(x) - f64::from(y)));
        }
        sc.sum.extend(row(h).iter().map(|&x| f64::from(x)));
        sc.ceps_even.resize(self.n_even * frames, 0.0);
        self.analysis_even.apply_columns::<WIDE>(&sc.sum, frames, &mut sc.ceps_even);
        sc.env_even.resize((h + 1) * frames, 0.0);
        self.synthesis_even.apply_columns::<WIDE>(&sc.ceps_even, frames, &mut sc.env_even);
        sc.env_odd.clear();
        sc.env_odd.resize((h + 1) * frames, 0.0);
        if self.n_odd > 0 {
            sc.ceps_odd.resize(self.n_odd * frames, 0.0);
            self.analysis_odd.apply_columns::<WIDE>(&sc.diff, frames, &mut sc.ceps_odd);
            self.synthesis_odd.apply_columns::<WIDE>(&sc.ceps_odd, frames, &mut sc.env_odd);
        }
        for k in 0..n_out {
            // Bin k's envelope: even + odd part of bin k, or even - odd of its mirror M - k.
            let (j, sign) = if k <= h { (k, 1.0) } else { (m - k, -1.0) };
            let (even, odd) = (&sc.env_even[j * frames..(j + 1) * frames], &sc.env_odd[j * frames..(j + 1) * frames]);
            out.extend(
                row(k).iter().zip(even.iter().zip(odd)).map(|(&l, (&e, &o))| (f64::from(l) - (e + sign * o)) as f32),
            );
        }
    }
}

impl Fine {
    /// `fine_n_fft` (a multiple of 4), the seed's `hop`, the lifter's `q` (0 without the fine
    /// structure) and the two blocks' sizes (bins from 0).
    pub fn new(n_fft: usize, hop: usize, q: usize, n_structure: usize, n_log_spec: usize) -> Self {
        let stft = Stft::new(n_fft, hop);
        let lifter = (n_structure > 0).then(|| Lifter::new(n_fft, q));
        Self { stft, lifter, n_structure, n_log_spec }
    }

    pub fn scratch(&self) -> FineScratch {
        FineScratch {
            n_fft: self.stft.n_fft(),
            stft: self.stft.scratch(),
            db: Vec::new(),
            sum: Vec::new(),
            diff: Vec::new(),
            ceps_even: Vec::new(),
            ceps_odd: Vec::new(),
            env_even: Vec::new(),
            env_odd: Vec::new(),
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
        if let Some(lifter) = &self.lifter {
            let db = std::mem::take(&mut sc.db);
            lifter.apply::<WIDE>(&db, frames, sc, structure, self.n_structure);
            sc.db = db;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The folded lifter against the plain definition (`irfft`, zero quefrencies `Q..=N-Q`,
    /// `rfft`, written as the cosine sums), for odd and even `Q`, `Q = 1`, and output widths
    /// that stop before, at and after the fold's middle bin.
    #[test]
    fn folded_lifter_equals_the_plain_cosine_sums() {
        for (n_fft, q, n_out) in [(64, 1, 33), (64, 2, 10), (64, 7, 20), (64, 32, 33), (1024, 30, 513), (1024, 31, 300)]
        {
            let fine = Fine::new(n_fft, 16, q, n_out, 0);
            let lifter = fine.lifter.as_ref().unwrap();
            let (k_bins, frames) = (n_fft / 2 + 1, 19);
            let db: Vec<f32> = (0..k_bins * frames)
                .map(|i| ((i as u32).wrapping_mul(2_654_435_761) >> 8) as f32 / 65_536.0 - 128.0)
                .collect();
            let mut sc = fine.scratch();
            let mut out = Vec::new();
            lifter.apply::<false>(&db, frames, &mut sc, &mut out, n_out);
            assert_eq!(out.len(), n_out * frames);
            let m = (k_bins - 1) as f64;
            for t in 0..frames {
                let l = |k: usize| f64::from(db[k * frames + t]);
                let c: Vec<f64> = (0..q)
                    .map(|qi| {
                        (0..k_bins)
                            .map(|k| {
                                let w = if k == 0 || k == k_bins - 1 { 1.0 } else { 2.0 };
                                w * l(k) * (std::f64::consts::PI * (k * qi) as f64 / m).cos()
                            })
                            .sum::<f64>()
                            / n_fft as f64
                    })
                    .collect();
                for k in 0..n_out {
                    let e: f64 = c
                        .iter()
                        .enumerate()
                        .map(|(qi, c)| {
                            let w = if qi == 0 { 1.0 } else { 2.0 };
                            w * c * (std::f64::consts::PI * (k * qi) as f64 / m).cos()
                        })
                        .sum();
                    let want = (l(k) - e) as f32;
                    let got = out[k * frames + t];
                    assert!((got - want).abs() < 1e-4, "n_fft {n_fft} q {q} bin {k} frame {t}: {got} vs {want}");
                }
            }
        }
    }
}
