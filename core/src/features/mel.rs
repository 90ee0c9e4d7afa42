//! Slaney mel filterbank (librosa `filters.mel(htk=False, norm="slaney")`) and `power_to_db`.
//!
//! The filterbank is stored sparsely: each triangular band touches only a few FFT bins, so the
//! per-frame product costs a few hundred multiply-adds instead of `n_mels * n_bins`.

/// Hz -> mel on the Slaney scale (linear below 1 kHz, logarithmic above).
pub fn hz_to_mel(hz: f64) -> f64 {
    const F_SP: f64 = 200.0 / 3.0;
    const MIN_LOG_HZ: f64 = 1000.0;
    let min_log_mel = MIN_LOG_HZ / F_SP;
    let logstep = 6.4f64.ln() / 27.0;
    if hz >= MIN_LOG_HZ { min_log_mel + (hz / MIN_LOG_HZ).ln() / logstep } else { hz / F_SP }
}

/// Mel -> Hz on the Slaney scale.
pub fn mel_to_hz(mel: f64) -> f64 {
    const F_SP: f64 = 200.0 / 3.0;
    const MIN_LOG_HZ: f64 = 1000.0;
    let min_log_mel = MIN_LOG_HZ / F_SP;
    let logstep = 6.4f64.ln() / 27.0;
    if mel >= min_log_mel { MIN_LOG_HZ * (logstep * (mel - min_log_mel)).exp() } else { F_SP * mel }
}

/// One band: weights for FFT bins `first .. first + weights.len()`.
#[derive(Debug, Clone)]
struct Band {
    first: usize,
    weights: Vec<f32>,
}

#[derive(Debug, Clone)]
pub struct MelFilterbank {
    bands: Vec<Band>,
    n_bins: usize,
}

impl MelFilterbank {
    /// Builds the filterbank exactly as librosa does (float64 maths, float32 weights).
    pub fn new(sample_rate: u32, n_fft: usize, n_mels: usize, fmin: f64, fmax: f64) -> Self {
        let n_bins = n_fft / 2 + 1;
        let sr = f64::from(sample_rate);
        // np.fft.rfftfreq(n_fft, 1/sr)
        let fft_freqs: Vec<f64> = (0..n_bins).map(|k| k as f64 * sr / n_fft as f64).collect();
        // mel_frequencies(n_mels + 2, fmin, fmax): linspace in mel, back to Hz.
        let (lo, hi) = (hz_to_mel(fmin), hz_to_mel(fmax));
        let n_pts = n_mels + 2;
        let mel_f: Vec<f64> = (0..n_pts)
            .map(|i| {
                // np.linspace: start + i * step, with the last point exactly `hi`.
                let m = if i == n_pts - 1 { hi } else { lo + i as f64 * ((hi - lo) / (n_pts - 1) as f64) };
                mel_to_hz(m)
            })
            .collect();
        let bands = (0..n_mels)
            .map(|i| {
                let (f0, f1, f2) = (mel_f[i], mel_f[i + 1], mel_f[i + 2]);
                let enorm = 2.0 / (f2 - f0);
                let dense: Vec<f32> = fft_freqs
                    .iter()
                    .map(|&f| {
                        let lower = -(f0 - f) / (f1 - f0);
                        let upper = (f2 - f) / (f2 - f1);
                        let w = 0f64.max(lower.min(upper)) as f32; // stored as float32 ...
                        (f64::from(w) * enorm) as f32 // ... then scaled in place by enorm
                    })
                    .collect();
                let first = dense.iter().position(|&w| w != 0.0).unwrap_or(0);
                let last = dense.iter().rposition(|&w| w != 0.0).map_or(first, |p| p + 1);
                Band { first, weights: dense[first..last].to_vec() }
            })
            .collect();
        Self { bands, n_bins }
    }

    pub fn n_mels(&self) -> usize {
        self.bands.len()
    }

    /// Mel power for all frames: `mel[m][t] = sum_f weights[m][f] * power[f][t]`, both bin-major
    /// with `frames` columns.
    #[inline(always)]
    pub fn apply_columns(&self, power: &[f32], frames: usize, mel: &mut [f32]) {
        debug_assert_eq!(power.len(), self.n_bins * frames);
        for (band, out) in self.bands.iter().zip(mel.chunks_exact_mut(frames)) {
            out.fill(0.0);
            for (k, &w) in band.weights.iter().enumerate() {
                let f = band.first + k;
                crate::kernels::axpy(out, w, &power[f * frames..(f + 1) * frames]);
            }
        }
    }

    /// Dense `[n_mels][n_bins]` copy (tests and inspection).
    pub fn to_dense(&self) -> Vec<Vec<f32>> {
        self.bands
            .iter()
            .map(|b| {
                let mut row = vec![0f32; self.n_bins];
                row[b.first..b.first + b.weights.len()].copy_from_slice(&b.weights);
                row
            })
            .collect()
    }
}

/// librosa `power_to_db(S, ref, amin, top_db)` over a whole matrix, in place:
/// `10 log10(max(amin, S)) - 10 log10(max(amin, ref))`, then floored at `max - top_db`.
#[inline(always)]
pub fn power_to_db_in_place(values: &mut [f32], amin: f32, db_ref: f32, top_db: f32) {
    // 10 log10(x) = (10 / ln 10) ln(x), with a vectorizable ln of libm's accuracy.
    const DB_PER_NEPER: f32 = 10.0 / std::f32::consts::LN_10;
    let ref_db = DB_PER_NEPER * crate::kernels::ln_positive(amin.max(db_ref));
    for v in values.iter_mut() {
        *v = DB_PER_NEPER * crate::kernels::ln_positive(v.max(amin)) - ref_db;
    }
    let floor = values.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v)) - top_db;
    for v in values.iter_mut() {
        *v = v.max(floor);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slaney_scale_round_trips_and_is_linear_below_1khz() {
        for hz in [0.0, 100.0, 999.0, 1000.0, 3000.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-9);
        }
        assert!((hz_to_mel(600.0) - 9.0).abs() < 1e-12);
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-12);
    }

    #[test]
    fn bands_are_triangles_with_slaney_area_norm() {
        let fb = MelFilterbank::new(16_000, 512, 64, 0.0, 8000.0);
        assert_eq!(fb.n_mels(), 64);
        for row in fb.to_dense() {
            assert!(row.iter().all(|w| *w >= 0.0));
            assert!(row.iter().any(|w| *w > 0.0), "empty band");
        }
    }
}
