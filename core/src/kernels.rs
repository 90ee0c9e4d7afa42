//! Numeric kernels for the hot paths (features, resampling).
//!
//! The extractor lays spectra out bin-major (`[bin][frame]`), so every filterbank is a sum of
//! scaled rows: `out[t] += w * x[t]` over all frames at once. That loop has no reduction, so the
//! compiler vectorizes it at whatever SIMD width the CPU offers, and each element still sees the
//! same operations in the same order: results are bitwise identical on every x86-64 path.
//! Where a reduction is unavoidable (resampling taps), [`dot`] keeps 32 independent partial sums
//! so the additions do not form one serial chain.

/// `out[t] += w * x[t]` (f32).
#[inline(always)]
pub fn axpy(out: &mut [f32], w: f32, x: &[f32]) {
    for (o, v) in out.iter_mut().zip(x) {
        *o += w * v;
    }
}

/// Dot product with 32 independent partial sums (float addition is not associative, so a
/// plain `sum()` is one serial dependency chain the compiler may not vectorize).
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (ca, ra) = a[..n].as_chunks::<32>();
    let (cb, rb) = b[..n].as_chunks::<32>();
    let mut acc = [0f32; 32];
    for (x, y) in ca.iter().zip(cb) {
        for i in 0..32 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut width = 16;
    while width > 0 {
        for i in 0..width {
            acc[i] += acc[i + width];
        }
        width /= 2;
    }
    acc[0] + ra.iter().zip(rb).map(|(x, y)| x * y).sum::<f32>()
}

/// `out[t] += w * x[t]` (f64).
#[inline(always)]
pub fn axpy_f64(out: &mut [f64], w: f64, x: &[f64]) {
    for (o, v) in out.iter_mut().zip(x) {
        *o += w * v;
    }
}

/// Natural logarithm of a positive, finite, normal f32 (Cephes `logf`: ~1 ulp, like libm),
/// branch-free so loops over it vectorize. Callers clamp inputs to `amin` > 0 first.
/// The coefficients are Cephes' published ones, kept verbatim.
#[allow(clippy::excessive_precision)]
#[inline(always)]
pub fn ln_positive(x: f32) -> f32 {
    const SQRT_HALF: f32 = std::f32::consts::FRAC_1_SQRT_2;
    let bits = x.to_bits();
    let mut e = ((bits >> 23) & 0xff) as i32 - 126;
    // Mantissa in [0.5, 1).
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000);
    let small = m < SQRT_HALF;
    e -= i32::from(small);
    m = if small { m + m - 1.0 } else { m - 1.0 };
    let e = e as f32;
    let z = m * m;
    let mut y = 7.037_683_6e-2;
    y = y * m - 1.151_461e-1;
    y = y * m + 1.167_699_9e-1;
    y = y * m - 1.242_014_1e-1;
    y = y * m + 1.424_932_3e-1;
    y = y * m - 1.666_805_8e-1;
    y = y * m + 2.000_071_4e-1;
    y = y * m - 2.499_999_4e-1;
    y = y * m + 3.333_333_1e-1;
    y *= m * z;
    y += -2.121_944_4e-4 * e;
    y += -0.5 * z;
    m + y + 0.693_359_4 * e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axpy_scales_and_adds_elementwise() {
        let mut out = vec![1.0f32; 19];
        let x: Vec<f32> = (0..19).map(|i| i as f32).collect();
        axpy(&mut out, 0.5, &x);
        assert!(out.iter().enumerate().all(|(i, v)| *v == 1.0 + 0.5 * i as f32));
        let mut o64 = vec![2.0f64; 5];
        axpy_f64(&mut o64, -1.0, &[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(o64, vec![1.0, 0.0, -1.0, -2.0, -3.0]);
    }

    #[test]
    fn dot_matches_f64_reference() {
        for n in [0, 1, 31, 32, 33, 100, 376] {
            let a: Vec<f32> = (0..n).map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0).collect();
            let b: Vec<f32> = (0..n).map(|i| ((i * 53 % 97) as f32 - 40.0) / 3.0).collect();
            let want: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
            assert!((f64::from(dot(&a, &b)) - want).abs() <= 1e-4 * want.abs().max(1.0), "n={n}");
        }
    }

    #[test]
    fn ln_is_as_accurate_as_libm_over_the_db_range() {
        // From amin (1e-10) to huge powers: relative error within a few f32 ulps of ln().
        let mut x = 1e-10f32;
        let mut worst = 0f64;
        while x < 1e12 {
            let want = f64::from(x).ln();
            let err = (f64::from(ln_positive(x)) - want).abs() / want.abs().max(1.0);
            worst = worst.max(err);
            x *= 1.000_37;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
    }
}
