//! Orthonormal DCT-II (scipy `dct(type=2, norm="ortho")`) truncated to the first `n_out`
//! coefficients: MFCCs from log-mel. A precomputed matrix: `n_out x n_in` is tiny (20 x 64).

#[derive(Debug, Clone)]
pub struct Dct {
    matrix: Vec<f32>,
    n_in: usize,
}

impl Dct {
    pub fn new(n_in: usize, n_out: usize) -> Self {
        let n = n_in as f64;
        let mut matrix = Vec::with_capacity(n_in * n_out);
        for k in 0..n_out {
            let scale = if k == 0 {
                (1.0 / n).sqrt()
            } else {
                (2.0 / n).sqrt()
            };
            matrix.extend((0..n_in).map(|i| {
                (scale
                    * (std::f64::consts::PI * k as f64 * (2.0 * i as f64 + 1.0) / (2.0 * n)).cos())
                    as f32
            }));
        }
        Self { matrix, n_in }
    }

    pub fn apply(&self, input: &[f32], out: &mut [f32]) {
        for (row, o) in self.matrix.chunks_exact(self.n_in).zip(out.iter_mut()) {
            *o = row.iter().zip(input).map(|(a, b)| a * b).sum();
        }
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
                let dot: f32 = (0..8)
                    .map(|i| d.matrix[a * 8 + i] * d.matrix[b * 8 + i])
                    .sum();
                assert!((dot - if a == b { 1.0 } else { 0.0 }).abs() < 1e-6);
            }
        }
    }
}
