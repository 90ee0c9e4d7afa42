//! Numeric kernels for the hot paths (features, resampling).
//!
//! The extractor lays spectra out bin-major (`[bin][frame]`), so every filterbank is a sum of
//! scaled rows: `out[t] += w * x[t]` over all frames at once. That loop has no reduction, so the
//! compiler vectorizes it at whatever SIMD width the CPU offers, and each element still sees the
//! same operations in the same order: results are bitwise identical on every x86-64 path.
//! Where a reduction is unavoidable (resampling taps), [`dot`] keeps 32 independent partial sums
//! so the additions do not form one serial chain.

/// `out[t] += w * x[t]` (f32): the reference of [`weighted_rows`].
#[cfg(test)]
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

/// An element type of [`weighted_rows`]: f32 or f64.
pub trait Lane: Copy + std::ops::Mul<Output = Self> + std::ops::AddAssign {
    const ZERO: Self;
}

impl Lane for f32 {
    const ZERO: Self = 0.0;
}

impl Lane for f64 {
    const ZERO: Self = 0.0;
}

/// `out[t] = sum of w * src[row * frames + t]` over the `(row, w)` taps, for every frame `t`
/// (`out.len() == frames`; `src` is bin-major with `frames` columns). Terms are added in tap
/// order to a zero, so the values are bitwise those of `out.fill(0)` followed by one [`axpy`]
/// per tap; but frames go in tiles of `N` whose sums stay in registers over all taps (one load
/// per tap and frame, instead of also loading and storing `out` for every tap, and the per-tap
/// overhead spread over `N` frames). A last partial tile is a whole tile ending at the last
/// frame, overlapping the one before: each frame's sum depends only on its own column, so the
/// frames computed twice get the same bits twice.
#[inline(always)]
pub fn weighted_rows<T: Lane, I: Iterator<Item = (usize, T)> + Clone, const N: usize>(
    out: &mut [T],
    taps: I,
    src: &[T],
    frames: usize,
) {
    debug_assert_eq!(out.len(), frames);
    if frames >= N {
        tiles::<T, I, N>(out, &taps, src, frames);
    } else if frames >= 8 {
        tiles::<T, I, 8>(out, &taps, src, frames);
    } else {
        tiles::<T, I, 1>(out, &taps, src, frames);
    }
}

/// [`weighted_rows`] in tiles of `N` (`frames >= N`), the last one overlapping.
#[inline(always)]
fn tiles<T: Lane, I: Iterator<Item = (usize, T)> + Clone, const N: usize>(
    out: &mut [T],
    taps: &I,
    src: &[T],
    frames: usize,
) {
    let mut next = 0;
    while next < frames {
        let t0 = next.min(frames - N);
        let mut acc = [T::ZERO; N];
        for (row, w) in taps.clone() {
            let at = row * frames + t0;
            let Ok(x) = <&[T; N]>::try_from(&src[at..at + N]) else { unreachable!("a slice of N") };
            for i in 0..N {
                acc[i] += w * x[i];
            }
        }
        out[t0..t0 + N].copy_from_slice(&acc);
        next = t0 + N;
    }
}

/// `dst[c * dst_stride + r] = src[r * src_stride + c]` for `r < rows`, `c < cols`: a strided
/// transpose, in 8 x 8 tiles. With `SIMD` (only ever instantiated inside functions compiled for
/// AVX2 or better, after the run-time check) a full tile is eight 8-float loads, a shuffle
/// network and eight 8-float stores; otherwise, and for the edges, it is copied element by
/// element. A copy either way: bitwise the same result.
#[inline(always)]
pub fn transpose<const SIMD: bool>(
    src: &[f32],
    src_stride: usize,
    rows: usize,
    cols: usize,
    dst: &mut [f32],
    dst_stride: usize,
) {
    if rows == 0 || cols == 0 {
        return;
    }
    assert!(cols <= src_stride && rows <= dst_stride, "transpose: rows overlap");
    assert!((rows - 1) * src_stride + cols <= src.len(), "transpose: source too short");
    assert!((cols - 1) * dst_stride + rows <= dst.len(), "transpose: destination too short");
    let (full_r, full_c) = (rows - rows % 8, cols - cols % 8);
    for r0 in (0..full_r).step_by(8) {
        for c0 in (0..full_c).step_by(8) {
            #[cfg(target_arch = "x86_64")]
            if SIMD {
                // SAFETY: `SIMD` is only true where AVX is available (see above), and the tile's
                // eight source rows (r0..r0+8, columns c0..c0+8) and eight destination rows
                // (c0..c0+8, columns r0..r0+8) lie inside the slices, checked by the asserts.
                unsafe {
                    transpose8x8_avx(
                        src.as_ptr().add(r0 * src_stride + c0),
                        src_stride,
                        dst.as_mut_ptr().add(c0 * dst_stride + r0),
                        dst_stride,
                    )
                };
                continue;
            }
            for r in r0..r0 + 8 {
                for c in c0..c0 + 8 {
                    dst[c * dst_stride + r] = src[r * src_stride + c];
                }
            }
        }
    }
    // The edges: columns past the last full tile, then rows past it.
    for r in 0..full_r {
        for c in full_c..cols {
            dst[c * dst_stride + r] = src[r * src_stride + c];
        }
    }
    for r in full_r..rows {
        for c in 0..cols {
            dst[c * dst_stride + r] = src[r * src_stride + c];
        }
    }
}

/// One 8 x 8 tile of [`transpose`] in AVX registers.
///
/// # Safety
/// The CPU supports AVX; `src + i * src_stride` and `dst + i * dst_stride` are valid for 8
/// floats each (reads, writes) for i in 0..8, and the two regions do not overlap.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
#[inline]
unsafe fn transpose8x8_avx(src: *const f32, src_stride: usize, dst: *mut f32, dst_stride: usize) {
    use std::arch::x86_64::*;
    // SAFETY: the caller's contract (valid, non-overlapping 8-float rows; AVX available).
    unsafe {
        let r: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(src.add(i * src_stride)));
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        let u0 = _mm256_shuffle_ps::<0b01_00_01_00>(t0, t2);
        let u1 = _mm256_shuffle_ps::<0b11_10_11_10>(t0, t2);
        let u2 = _mm256_shuffle_ps::<0b01_00_01_00>(t1, t3);
        let u3 = _mm256_shuffle_ps::<0b11_10_11_10>(t1, t3);
        let u4 = _mm256_shuffle_ps::<0b01_00_01_00>(t4, t6);
        let u5 = _mm256_shuffle_ps::<0b11_10_11_10>(t4, t6);
        let u6 = _mm256_shuffle_ps::<0b01_00_01_00>(t5, t7);
        let u7 = _mm256_shuffle_ps::<0b11_10_11_10>(t5, t7);
        let out = [
            _mm256_permute2f128_ps::<0x20>(u0, u4),
            _mm256_permute2f128_ps::<0x20>(u1, u5),
            _mm256_permute2f128_ps::<0x20>(u2, u6),
            _mm256_permute2f128_ps::<0x20>(u3, u7),
            _mm256_permute2f128_ps::<0x31>(u0, u4),
            _mm256_permute2f128_ps::<0x31>(u1, u5),
            _mm256_permute2f128_ps::<0x31>(u2, u6),
            _mm256_permute2f128_ps::<0x31>(u3, u7),
        ];
        for (i, v) in out.into_iter().enumerate() {
            _mm256_storeu_ps(dst.add(i * dst_stride), v);
        }
    }
}

/// `out[r][t] = sum over m of weights[r][m] * src[m][t]` for the `R` rows of `weights`
/// (`R x n_in`, row-major; `src` bin-major `n_in x frames`; `out` `R x frames`): the dense
/// form of [`weighted_rows`] for several output rows at once, sharing each input load between
/// them and giving the adder `R` times as many independent sums (a single row's sums are
/// latency-bound). Bitwise the same as [`weighted_rows`] row by row.
#[inline(always)]
pub fn dense_rows<T: Lane, const R: usize, const N: usize>(out: &mut [T], weights: &[T], src: &[T], frames: usize) {
    let n_in = weights.len() / R;
    debug_assert_eq!(out.len(), R * frames);
    debug_assert!(frames >= N);
    let mut next = 0;
    while next < frames {
        let t0 = next.min(frames - N);
        let mut acc = [[T::ZERO; N]; R];
        for m in 0..n_in {
            let at = m * frames + t0;
            let Ok(x) = <&[T; N]>::try_from(&src[at..at + N]) else { unreachable!("a slice of N") };
            for (r, acc) in acc.iter_mut().enumerate() {
                let w = weights[r * n_in + m];
                for i in 0..N {
                    acc[i] += w * x[i];
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            out[r * frames + t0..r * frames + t0 + N].copy_from_slice(acc);
        }
        next = t0 + N;
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
    fn weighted_rows_equal_axpy_sums_bitwise() {
        for frames in [1, 7, 8, 9, 15, 31, 32, 33, 63, 64, 65, 126, 157] {
            let rows = 11;
            let src: Vec<f32> = (0..rows * frames).map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.3).collect();
            let taps: Vec<(usize, f32)> = vec![(3, 0.25), (0, -1.5), (7, 1e-3), (10, 3.7), (3, 0.1)];
            let mut want = vec![0f32; frames];
            for &(r, w) in &taps {
                axpy(&mut want, w, &src[r * frames..(r + 1) * frames]);
            }
            let mut got = vec![f32::NAN; frames];
            weighted_rows::<_, _, 32>(&mut got, taps.iter().copied(), &src, frames);
            assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "frames {frames}");
            let mut got = vec![f32::NAN; frames];
            weighted_rows::<_, _, 64>(&mut got, taps.iter().copied(), &src, frames);
            assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "frames {frames} (64)");
            let src64: Vec<f64> = src.iter().map(|&v| f64::from(v) * 1.1).collect();
            let mut want = vec![0f64; frames];
            for &(r, w) in &taps {
                axpy_f64(&mut want, f64::from(w), &src64[r * frames..(r + 1) * frames]);
            }
            let mut got = vec![f64::NAN; frames];
            weighted_rows::<_, _, 16>(&mut got, taps.iter().map(|&(r, w)| (r, f64::from(w))), &src64, frames);
            assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "frames {frames} (f64)");
        }
    }

    #[test]
    fn transposes_agree_with_the_definition() {
        for (rows, cols) in [(1, 1), (8, 8), (3, 17), (16, 257), (126, 96), (9, 8), (8, 9), (0, 5)] {
            let (ss, ds) = (cols + 3, rows + 5);
            let src: Vec<f32> = (0..rows * ss).map(|i| i as f32 * 0.5 - 7.0).collect();
            let want: Vec<f32> = {
                let mut d = vec![-1.0; cols * ds];
                for r in 0..rows {
                    for c in 0..cols {
                        d[c * ds + r] = src[r * ss + c];
                    }
                }
                d
            };
            let mut plain = vec![-1.0; cols * ds];
            transpose::<false>(&src, ss, rows, cols, &mut plain, ds);
            assert_eq!(plain, want, "{rows}x{cols}");
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx") {
                let mut simd = vec![-1.0; cols * ds];
                transpose::<true>(&src, ss, rows, cols, &mut simd, ds);
                assert_eq!(simd, want, "{rows}x{cols} (AVX)");
            }
        }
    }

    #[test]
    fn dense_rows_equal_weighted_rows_bitwise() {
        let (n_in, frames) = (13, 126);
        let src: Vec<f64> = (0..n_in * frames).map(|i| ((i * 37 % 101) as f64 - 50.0) / 7.3).collect();
        let weights: Vec<f64> = (0..3 * n_in).map(|i| ((i * 13 % 7) as f64 - 3.0) / 1.7).collect();
        let mut got = vec![f64::NAN; 3 * frames];
        dense_rows::<_, 3, 32>(&mut got, &weights, &src, frames);
        for r in 0..3 {
            let mut want = vec![f64::NAN; frames];
            let taps = weights[r * n_in..(r + 1) * n_in].iter().copied().enumerate();
            weighted_rows::<_, _, 32>(&mut want, taps, &src, frames);
            assert!(want.iter().zip(&got[r * frames..]).all(|(a, b)| a.to_bits() == b.to_bits()), "row {r}");
        }
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
