//! Deltas along time, exactly `librosa.feature.delta(x, width, order, mode="interp")`, which is
//! `scipy.signal.savgol_filter(x, width, polyorder=order, deriv=order, mode="interp")`: the
//! `order`-th derivative of the least-squares polynomial of degree `order` through each window
//! of `width` frames.
//!
//! With the polynomial's degree equal to the derivative's order that derivative is a constant,
//! `order! * leading coefficient`, so each order is one `width`-tap filter (planned once) and
//! the "interp" edges (a fit through the first / last `width` frames, evaluated at the first /
//! last `width / 2` frames) equal the filter's value at the first / last full window.

/// The filters for orders `1..=max_order` of one width.
#[derive(Debug, Clone)]
pub struct Delta {
    /// `taps[k - 1]`: the order-`k` filter, `width` taps for frames `t - width/2 ..= t + width/2`.
    taps: Vec<Vec<f64>>,
    width: usize,
}

impl Delta {
    /// `width` odd and > `max_order` (checked by `FeatureSpec::validate`).
    pub fn new(width: usize, max_order: usize) -> Self {
        let half = (width / 2) as f64;
        let x: Vec<f64> = (0..width).map(|i| i as f64 - half).collect();
        // Monic orthogonal polynomials over the window (Gram-Schmidt of 1, x, x^2, ...), as
        // values at its points: the least-squares fit's x^k coefficient is <q_k, y> / <q_k, q_k>.
        let mut q: Vec<Vec<f64>> = vec![vec![1.0; width]];
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(u, v)| u * v).sum::<f64>();
        for k in 1..=max_order {
            let mut p: Vec<f64> = x.iter().map(|v| v.powi(k as i32)).collect();
            for prev in &q {
                let c = dot(&p, prev) / dot(prev, prev);
                p.iter_mut().zip(prev).for_each(|(a, b)| *a -= c * b);
            }
            q.push(p);
        }
        let taps = (1..=max_order)
            .map(|k| {
                let factorial = (1..=k).product::<usize>() as f64;
                let norm = dot(&q[k], &q[k]);
                q[k].iter().map(|v| factorial * v / norm).collect()
            })
            .collect();
        Self { taps, width }
    }

    pub fn width(&self) -> usize {
        self.width
    }

    /// Order-`order` deltas of each `frames`-long row of `input` into the same row of `out`
    /// (`frames >= width`, checked by the caller).
    #[inline(always)]
    pub fn apply_rows(&self, order: usize, input: &[f64], frames: usize, out: &mut [f64]) {
        let (w, half) = (self.width, self.width / 2);
        debug_assert!(frames >= w);
        let inner = frames - 2 * half;
        for (x, o) in input.chunks_exact(frames).zip(out.chunks_exact_mut(frames)) {
            let mid = &mut o[half..half + inner];
            mid.fill(0.0);
            // out[t] = sum_j taps[j] * x[t - half + j] for every full window, as scaled rows.
            for (j, &c) in self.taps[order - 1].iter().enumerate() {
                crate::kernels::axpy_f64(mid, c, &x[j..j + inner]);
            }
            let (first, last) = (o[half], o[half + inner - 1]);
            o[..half].fill(first);
            o[half + inner..].fill(last);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn width_9_taps_are_savitzky_golay_derivative_filters() {
        let d = Delta::new(9, 2);
        // scipy.signal.savgol_coeffs(9, 1, deriv=1, use="dot") = (j - 4) / 60;
        // savgol_coeffs(9, 2, deriv=2, use="dot") = [28, 7, -8, -17, -20, -17, -8, 7, 28] / 462.
        let first: Vec<f64> = (0..9).map(|j| (j as f64 - 4.0) / 60.0).collect();
        let second: Vec<f64> = [28.0, 7.0, -8.0, -17.0, -20.0, -17.0, -8.0, 7.0, 28.0].map(|v| v / 462.0).to_vec();
        for (got, want) in [(&d.taps[0], &first), (&d.taps[1], &second)] {
            assert!(got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-15), "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn deltas_of_a_ramp_and_a_parabola() {
        let d = Delta::new(9, 2);
        let frames = 20;
        // Row 0: 2t + 1 (delta 2, delta2 0); row 1: t^2 (delta 2t in the middle, delta2 2).
        let input: Vec<f64> =
            (0..frames).map(|t| 2.0 * t as f64 + 1.0).chain((0..frames).map(|t| (t * t) as f64)).collect();
        let mut out = vec![f64::NAN; 2 * frames];
        d.apply_rows(1, &input, frames, &mut out);
        assert!(out[..frames].iter().all(|v| (v - 2.0).abs() < 1e-12), "{out:?}");
        // librosa: the parabola's edges hold the first / last full window's slope (8 and 30).
        let want: Vec<f64> = (0..frames).map(|t| 2.0 * t.clamp(4, frames - 5) as f64).collect();
        assert!(out[frames..].iter().zip(&want).all(|(g, w)| (g - w).abs() < 1e-12), "{:?}", &out[frames..]);
        d.apply_rows(2, &input, frames, &mut out);
        assert!(out[..frames].iter().all(|v| v.abs() < 1e-12), "{out:?}");
        assert!(out[frames..].iter().all(|v| (v - 2.0).abs() < 1e-12), "{out:?}");
    }

    #[test]
    fn exactly_one_window_of_frames() {
        let d = Delta::new(3, 1);
        let mut out = vec![0.0; 3];
        d.apply_rows(1, &[1.0, 5.0, 3.0], 3, &mut out);
        assert_eq!(out, vec![1.0; 3]); // (3 - 1) / 2 everywhere
    }
}
