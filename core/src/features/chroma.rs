//! Chroma filterbank, exactly librosa's `filters.chroma(sr, n_fft, n_chroma=12, tuning,
//! ctroct=5, octwidth=2, norm=2, base_c=True)`: Gaussian bumps per pitch class over each FFT bin,
//! L2-normalized per bin, weighted by an octave-domain Gaussian centred at 5 octaves above C0.

/// Weights below this fraction of the largest are skipped. Every bin's largest weight is at
/// least ~5 % of the global maximum, so a normalized chroma value moves by at most ~2e-7
/// (the parity tolerance is 1e-4), and 45 % of the multiply-adds disappear.
const SKIP_BELOW: f64 = 1e-9;

#[derive(Debug, Clone)]
pub struct ChromaFilterbank {
    /// Per chroma class, the (bin, weight) pairs that matter.
    rows: Vec<Vec<(usize, f32)>>,
    n_chroma: usize,
    n_bins: usize,
}

impl ChromaFilterbank {
    pub fn new(sample_rate: u32, n_fft: usize, n_chroma: usize, tuning: f64) -> Self {
        const CTROCT: f64 = 5.0;
        const OCTWIDTH: f64 = 2.0;
        let nc = n_chroma as f64;
        let sr = f64::from(sample_rate);
        let a440 = 440.0 * 2f64.powf(tuning / nc);
        // Frequencies of bins 1..n_fft (np.linspace(0, sr, n_fft, endpoint=False)[1:]) in chroma bins.
        let mut frqbins: Vec<f64> = Vec::with_capacity(n_fft);
        frqbins.push(0.0);
        frqbins.extend((1..n_fft).map(|k| nc * ((k as f64 * (sr / n_fft as f64)) / (a440 / 16.0)).log2()));
        // A made-up value for the 0 Hz bin: 1.5 octaves below bin 1.
        frqbins[0] = frqbins[1] - 1.5 * nc;
        let binwidth: Vec<f64> =
            (0..n_fft).map(|j| if j + 1 < n_fft { (frqbins[j + 1] - frqbins[j]).max(1.0) } else { 1.0 }).collect();
        let half = (nc / 2.0).round();
        let mut wts = vec![0f64; n_chroma * n_fft];
        for c in 0..n_chroma {
            for j in 0..n_fft {
                let d = (frqbins[j] - c as f64 + half + 10.0 * nc).rem_euclid(nc) - half;
                wts[c * n_fft + j] = (-0.5 * (2.0 * d / binwidth[j]).powi(2)).exp();
            }
        }
        for j in 0..n_fft {
            let norm = (0..n_chroma).map(|c| wts[c * n_fft + j].powi(2)).sum::<f64>().sqrt();
            let oct_weight = (-0.5 * ((frqbins[j] / nc - CTROCT) / OCTWIDTH).powi(2)).exp();
            for c in 0..n_chroma {
                let w = &mut wts[c * n_fft + j];
                if norm >= f64::MIN_POSITIVE {
                    *w /= norm;
                }
                *w *= oct_weight;
            }
        }
        // base_c: roll rows so that row 0 is C (np.roll(wts, -3, axis=0)); keep bins 0..=n_fft/2.
        let n_bins = n_fft / 2 + 1;
        let shift = 3 * (n_chroma / 12);
        let max = wts.iter().fold(0f64, |m, w| m.max(*w));
        let rows = (0..n_chroma)
            .map(|r| {
                let src = (r + shift) % n_chroma;
                (0..n_bins)
                    .map(|j| (j, wts[src * n_fft + j] as f32))
                    .filter(|(_, w)| f64::from(*w) > SKIP_BELOW * max)
                    .collect()
            })
            .collect();
        Self { rows, n_chroma, n_bins }
    }

    /// Chroma for all frames from bin-major power (`frames` columns) into `chroma[c][t]`,
    /// then each frame max-normalized (librosa `normalize(norm=inf)`: a frame whose maximum is
    /// below the smallest normal float is left as it is). `peak` is a `frames`-long scratch.
    #[inline(always)]
    pub fn apply_columns(&self, power: &[f32], frames: usize, chroma: &mut [f32], peak: &mut Vec<f32>) {
        debug_assert_eq!(power.len(), self.n_bins * frames);
        for (row, out) in self.rows.iter().zip(chroma.chunks_exact_mut(frames)) {
            crate::kernels::weighted_rows::<_, _, 64>(out, row.iter().copied(), power, frames);
        }
        peak.clear();
        peak.resize(frames, 0.0);
        for out in chroma.chunks_exact(frames).take(self.n_chroma) {
            for (p, v) in peak.iter_mut().zip(out) {
                *p = p.max(v.abs());
            }
        }
        for p in peak.iter_mut() {
            if *p < f32::MIN_POSITIVE {
                *p = 1.0;
            }
        }
        for out in chroma.chunks_exact_mut(frames).take(self.n_chroma) {
            for (v, p) in out.iter_mut().zip(peak.iter()) {
                *v /= p;
            }
        }
    }
}
