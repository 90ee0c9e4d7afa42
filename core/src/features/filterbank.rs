//! Sparse triangular filterbanks over the FFT bins, and `power_to_db`. One construction for both
//! kinds, librosa's `filters.mel` triangles with band edges:
//! - mel: edges equally spaced on the Slaney mel scale, Slaney area norm (librosa
//!   `filters.mel(htk=False, norm="slaney")`);
//! - linear: edges equally spaced in Hz, peak weight 1 (the LFCC filters,
//!   `tests/golden/reference_features_ext.py::linear_filterbank`).
//!
//! The filterbank is stored sparsely: each triangular band touches only a few FFT bins, so the
//! product costs a few hundred multiply-adds per frame instead of `n_bands * n_bins`.

use super::mel::{hz_to_mel, mel_to_hz};

/// One band: weights for FFT bins `first .. first + weights.len()`.
#[derive(Debug, Clone)]
struct Band {
    first: usize,
    weights: Vec<f32>,
}

#[derive(Debug, Clone)]
pub struct Filterbank {
    bands: Vec<Band>,
    n_bins: usize,
}

/// `np.linspace(lo, hi, n)`: `lo + i * step`, with the last point exactly `hi`.
fn linspace(lo: f64, hi: f64, n: usize) -> impl Iterator<Item = f64> {
    (0..n).map(move |i| if i == n - 1 { hi } else { lo + i as f64 * ((hi - lo) / (n - 1) as f64) })
}

impl Filterbank {
    /// Slaney mel filterbank, exactly as librosa builds it (float64 maths, float32 weights).
    pub fn mel(sample_rate: u32, n_fft: usize, n_mels: usize, fmin: f64, fmax: f64) -> Self {
        // mel_frequencies(n_mels + 2, fmin, fmax): linspace in mel, back to Hz.
        let edges: Vec<f64> = linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2).map(mel_to_hz).collect();
        Self::triangles(sample_rate, n_fft, &edges, true)
    }

    /// `n_bands` triangles with edges equally spaced in Hz over `fmin..fmax`, peak weight 1.
    pub fn linear(sample_rate: u32, n_fft: usize, n_bands: usize, fmin: f64, fmax: f64) -> Self {
        let edges: Vec<f64> = linspace(fmin, fmax, n_bands + 2).collect();
        Self::triangles(sample_rate, n_fft, &edges, false)
    }

    /// Band `i` rises from `edges[i]` to 1 at `edges[i + 1]` and falls to 0 at `edges[i + 2]`,
    /// evaluated at the FFT bin frequencies in float64 and stored as float32; with `slaney_norm`
    /// the float32 weights are then scaled by `2 / (edges[i + 2] - edges[i])`, as librosa does.
    fn triangles(sample_rate: u32, n_fft: usize, edges: &[f64], slaney_norm: bool) -> Self {
        let n_bins = n_fft / 2 + 1;
        let sr = f64::from(sample_rate);
        // np.fft.rfftfreq(n_fft, 1/sr)
        let fft_freqs: Vec<f64> = (0..n_bins).map(|k| k as f64 * sr / n_fft as f64).collect();
        let bands = edges
            .windows(3)
            .map(|e| {
                let (f0, f1, f2) = (e[0], e[1], e[2]);
                let enorm = 2.0 / (f2 - f0);
                let dense: Vec<f32> = fft_freqs
                    .iter()
                    .map(|&f| {
                        let lower = -(f0 - f) / (f1 - f0);
                        let upper = (f2 - f) / (f2 - f1);
                        let w = 0f64.max(lower.min(upper)) as f32; // stored as float32 ...
                        if slaney_norm { (f64::from(w) * enorm) as f32 } else { w } // ... then scaled in place
                    })
                    .collect();
                let first = dense.iter().position(|&w| w != 0.0).unwrap_or(0);
                let last = dense.iter().rposition(|&w| w != 0.0).map_or(first, |p| p + 1);
                Band { first, weights: dense[first..last].to_vec() }
            })
            .collect();
        Self { bands, n_bins }
    }

    pub fn n_bands(&self) -> usize {
        self.bands.len()
    }

    /// Band power for all frames: `out[m][t] = sum_f weights[m][f] * power[f][t]`, both
    /// bin-major with `frames` columns.
    #[inline(always)]
    pub fn apply_columns(&self, power: &[f32], frames: usize, out: &mut [f32]) {
        debug_assert_eq!(power.len(), self.n_bins * frames);
        for (band, out) in self.bands.iter().zip(out.chunks_exact_mut(frames)) {
            let taps = band.weights.iter().enumerate().map(|(k, &w)| (band.first + k, w));
            crate::kernels::weighted_rows::<_, _, 64>(out, taps, power, frames);
        }
    }

    /// Dense `[n_bands][n_bins]` copy (tests and inspection).
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
    fn mel_bands_are_triangles_with_slaney_area_norm() {
        let fb = Filterbank::mel(16_000, 512, 64, 0.0, 8000.0);
        assert_eq!(fb.n_bands(), 64);
        for row in fb.to_dense() {
            assert!(row.iter().all(|w| *w >= 0.0));
            assert!(row.iter().any(|w| *w > 0.0), "empty band");
        }
    }

    #[test]
    fn linear_bands_are_equal_width_unit_peak_triangles() {
        // 70 bands over 0..8000 Hz: edges every 8000/71 Hz, FFT bins every 31.25 Hz.
        let fb = Filterbank::linear(16_000, 512, 70, 0.0, 8000.0);
        assert_eq!(fb.n_bands(), 70);
        let step = 8000.0 / 71.0;
        for (i, row) in fb.to_dense().iter().enumerate() {
            // Weight of bin k is the triangle through (f0, 0), (f1, 1), (f2, 0) at k * 31.25 Hz.
            for (k, &w) in row.iter().enumerate() {
                let f = k as f64 * 31.25;
                let (f0, f1, f2) = (i as f64 * step, (i + 1) as f64 * step, (i + 2) as f64 * step);
                let want = ((f - f0) / (f1 - f0)).min((f2 - f) / (f2 - f1)).max(0.0);
                assert!((f64::from(w) - want).abs() < 1e-6, "band {i} bin {k}: {w} vs {want}");
            }
            let peak = row.iter().fold(0f32, |m, w| m.max(*w));
            assert!(peak > 0.85 && peak <= 1.0, "band {i} peak {peak}");
        }
    }

    #[test]
    fn power_to_db_floors_at_top_db_below_the_maximum() {
        let mut v = vec![1.0, 1e-3, 0.0, 100.0];
        power_to_db_in_place(&mut v, 1e-10, 1.0, 30.0);
        let want = [0.0, -10.0, -10.0, 20.0]; // 20 dB max, floor at -10 dB
        for (g, w) in v.iter().zip(want) {
            assert!((g - w).abs() < 1e-4, "{v:?}");
        }
    }
}
