//! Orthonormal DCT-II (scipy `dct(type=2, norm="ortho")`) truncated to the first `n_out`
//! coefficients: MFCCs from log-mel. A precomputed matrix: `n_out x n_in` is tiny (20 x 64).
//! [`Dct::from_matrix`] runs another cosine basis through the same kernel (the fine structure's
//! cepstral lifter, `features::fine`).

#[derive(Debug, Clone)]
pub struct Dct {
    matrix: Vec<f64>,
    n_in: usize,
}

impl Dct {
    pub fn new(n_in: usize, n_out: usize) -> Self {
        let n = n_in as f64;
        let mut matrix = Vec::with_capacity(n_in * n_out);
        for k in 0..n_out {
            let scale = if k == 0 { (1.0 / n).sqrt() } else { (2.0 / n).sqrt() };
            matrix.extend(
                (0..n_in).map(|i| scale * (std::f64::consts::PI * k as f64 * (2.0 * i as f64 + 1.0) / (2.0 * n)).cos()),
            );
        }
        Self { matrix, n_in }
    }

    /// Any `n_out x n_in` row-major basis (`matrix.len()` a multiple of `n_in`), applied as
    /// [`Self::apply_columns`] applies the DCT's.
    pub fn from_matrix(matrix: Vec<f64>, n_in: usize) -> Self {
        debug_assert!(n_in > 0 && matrix.len().is_multiple_of(n_in));
        Self { matrix, n_in }
    }

    /// `out[k][t] = sum_m matrix[k][m] * input[m][t]` over `frames` columns, in f64: the
    /// coefficients are sums of 64 values of +-100 dB, where f32 accumulation alone would cost
    /// ~1e-4 of the 1e-3 parity budget. `WIDE` (AVX-512: 32 vector registers) computes four
    /// coefficients per pass instead of two; the sums are the same either way.
    #[inline(always)]
    pub fn apply_columns<const WIDE: bool>(&self, input: &[f64], frames: usize, out: &mut [f64]) {
        let rows_per_pass = if frames < 16 {
            1
        } else if WIDE {
            4
        } else {
            2
        };
        let mut k = 0;
        for (weights, o) in self.matrix.chunks(rows_per_pass * self.n_in).zip(out.chunks_mut(rows_per_pass * frames)) {
            match weights.len() / self.n_in {
                4 => crate::kernels::dense_rows::<_, 4, 16>(o, weights, input, frames),
                2 => crate::kernels::dense_rows::<_, 2, 16>(o, weights, input, frames),
                _ => {
                    for (row, o) in weights.chunks_exact(self.n_in).zip(o.chunks_exact_mut(frames)) {
                        crate::kernels::weighted_rows::<_, _, 32>(o, row.iter().copied().enumerate(), input, frames);
                    }
                }
            }
            k += weights.len() / self.n_in;
        }
        debug_assert_eq!(k * frames, out.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_dct_is_orthonormal() {
        let d = Dct::new(8, 8);
        for a in 0..8 {
            for b in 0..8 {
                let dot: f64 = (0..8).map(|i| d.matrix[a * 8 + i] * d.matrix[b * 8 + i]).sum();
                assert!((dot - if a == b { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
        }
    }
}
