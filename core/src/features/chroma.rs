//! Chroma filterbank, exactly librosa's `filters.chroma(sr, n_fft, n_chroma=12, tuning,
//! ctroct=5, octwidth=2, norm=2, base_c=True)`: Gaussian bumps per pitch class over each FFT bin,
//! L2-normalized per bin, weighted by an octave-domain Gaussian centred at 5 octaves above C0.

#[derive(Debug, Clone)]
pub struct ChromaFilterbank {
    /// `[n_chroma][n_bins]`, row-major.
    weights: Vec<f32>,
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
        frqbins.extend(
            (1..n_fft).map(|k| nc * ((k as f64 * (sr / n_fft as f64)) / (a440 / 16.0)).log2()),
        );
        // A made-up value for the 0 Hz bin: 1.5 octaves below bin 1.
        frqbins[0] = frqbins[1] - 1.5 * nc;
        let binwidth: Vec<f64> = (0..n_fft)
            .map(|j| {
                if j + 1 < n_fft {
                    (frqbins[j + 1] - frqbins[j]).max(1.0)
                } else {
                    1.0
                }
            })
            .collect();
        let half = (nc / 2.0).round();
        let mut wts = vec![0f64; n_chroma * n_fft];
        for c in 0..n_chroma {
            for j in 0..n_fft {
                let d = (frqbins[j] - c as f64 + half + 10.0 * nc).rem_euclid(nc) - half;
                wts[c * n_fft + j] = (-0.5 * (2.0 * d / binwidth[j]).powi(2)).exp();
            }
        }
        for j in 0..n_fft {
            let norm = (0..n_chroma)
                .map(|c| wts[c * n_fft + j].powi(2))
                .sum::<f64>()
                .sqrt();
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
        let mut weights = vec![0f32; n_chroma * n_bins];
        for r in 0..n_chroma {
            let src = (r + shift) % n_chroma;
            for j in 0..n_bins {
                weights[r * n_bins + j] = wts[src * n_fft + j] as f32;
            }
        }
        Self {
            weights,
            n_chroma,
            n_bins,
        }
    }

    /// Chroma of one power-spectrum frame, max-normalized (librosa `normalize(norm=inf)`: a frame
    /// whose maximum is below the smallest normal float is left as it is).
    pub fn apply(&self, power: &[f32], out: &mut [f32]) {
        debug_assert_eq!(power.len(), self.n_bins);
        for (row, o) in self.weights.chunks_exact(self.n_bins).zip(out.iter_mut()) {
            *o = row.iter().zip(power).map(|(w, p)| w * p).sum();
        }
        let max = out[..self.n_chroma]
            .iter()
            .fold(0f32, |m, v| m.max(v.abs()));
        if max >= f32::MIN_POSITIVE {
            out[..self.n_chroma].iter_mut().for_each(|v| *v /= max);
        }
    }
}
