//! Centered, zero-padded short-time power spectrum with a periodic Hann window, matching
//! `librosa.stft(center=True, pad_mode="constant")` followed by `abs(.)**2`.
//! The FFT is planned once; callers pass a [`StftScratch`] so frames allocate nothing.
//!
//! Like librosa (float64 window times float32 frames, rounded to complex64), the transform runs
//! in f64 and the spectrum is rounded to f32 before squaring: low-level bands of pure tones then
//! agree with librosa to ~1e-5 dB instead of ~1e-3 dB with an f32 FFT.
//!
//! The real FFT is realfft's algorithm (a half-length complex FFT of the even/odd samples, then
//! a twiddle pass), written out here so the twiddle pass also squares the spectrum: one pass
//! instead of realfft's post-processing plus a power pass, with bitwise the same values
//! (`realfft_power_matches_this_bitwise`). Frames are transformed in blocks of [`BLOCK`]; each
//! block's power spectra are written frame-major into the scratch and then transposed into the
//! bin-major matrix eight frames at a time, so the stores are contiguous instead of one
//! scattered float per bin and frame.
//!
//! [`Stft::power_and_spectra`] also keeps each frame's complex spectrum (complex64, as librosa's
//! `stft`), so the phase-advance deviation reads the power path's transform instead of running
//! a second FFT per frame.

use std::sync::Arc;

use realfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};

/// Frames per block: one transposed store covers this many frames of a bin.
pub const BLOCK: usize = 8;

pub struct Stft {
    /// Complex FFT of `n_fft / 2` points.
    fft: Arc<dyn Fft<f64>>,
    /// realfft's twiddles for `n_fft`, `0.5 * exp(-2 pi i k / n_fft)` for k = 1..n_fft/4, as
    /// separate real and imaginary parts.
    tw_re: Vec<f64>,
    tw_im: Vec<f64>,
    window: Vec<f64>,
    n_fft: usize,
    hop: usize,
}

impl StftScratch {
    /// The zero-padded signal of the last [`Stft::prepare`].
    pub fn padded(&self) -> &[f32] {
        &self.padded
    }
}

/// Per-worker buffers; reused across calls.
pub struct StftScratch {
    padded: Vec<f32>,
    /// The windowed frame as `n_fft / 2` complex values (even samples real, odd imaginary).
    frame: Vec<Complex<f64>>,
    spectrum: Vec<Complex<f64>>,
    fft_scratch: Vec<Complex<f64>>,
    /// `[BLOCK][n_bins]` power spectra of one block of frames, frame-major.
    block: Vec<f32>,
    post: PostScratch,
}

impl Stft {
    pub fn new(n_fft: usize, hop: usize) -> Self {
        // The spec validates n_fft (a positive multiple of 4 in practice: 512); realfft's
        // even-length construction needs an even length, so round odd values down.
        let half = (n_fft / 2).max(1);
        let fft = FftPlanner::<f64>::new().plan_fft_forward(half);
        let twiddle_count = if n_fft.is_multiple_of(4) { n_fft / 4 } else { n_fft / 4 + 1 };
        let twiddles: Vec<Complex<f64>> = (1..twiddle_count)
            .map(|i| {
                // realfft's compute_twiddle(i, n_fft) * 0.5, in the same operations.
                let angle = -2f64 * std::f64::consts::PI / n_fft as f64 * i as f64;
                Complex { re: angle.cos(), im: angle.sin() } * 0.5
            })
            .collect();
        let window = hann(n_fft);
        let (tw_re, tw_im) = twiddles.iter().map(|t| (t.re, t.im)).unzip();
        Self { fft, tw_re, tw_im, window, n_fft, hop }
    }

    pub fn n_fft(&self) -> usize {
        self.n_fft
    }

    pub fn n_bins(&self) -> usize {
        self.n_fft / 2 + 1
    }

    pub fn scratch(&self) -> StftScratch {
        let half = self.n_fft / 2;
        StftScratch {
            padded: Vec::new(),
            frame: vec![Complex::default(); half],
            spectrum: vec![Complex::default(); half + 1],
            fft_scratch: vec![Complex::default(); self.fft.get_outofplace_scratch_len()],
            block: vec![0.0; BLOCK * self.n_bins()],
            post: PostScratch {
                a_re: vec![0.0; self.tw_re.len()],
                a_im: vec![0.0; self.tw_re.len()],
                b_re: vec![0.0; self.tw_re.len()],
                b_im: vec![0.0; self.tw_re.len()],
                lo: vec![0.0; self.tw_re.len()],
                hi: vec![0.0; self.tw_re.len()],
                lo_re: vec![0.0; self.tw_re.len()],
                lo_im: vec![0.0; self.tw_re.len()],
                hi_re: vec![0.0; self.tw_re.len()],
                hi_im: vec![0.0; self.tw_re.len()],
            },
        }
    }

    /// Zero-pads `signal` by `n_fft / 2` on both sides into the scratch; returns the frame count.
    #[inline(always)]
    pub fn prepare(&self, signal: &[f32], s: &mut StftScratch) -> usize {
        let pad = self.n_fft / 2;
        s.padded.clear();
        s.padded.resize(pad, 0.0);
        s.padded.extend_from_slice(signal);
        s.padded.resize(signal.len() + 2 * pad, 0.0);
        1 + signal.len() / self.hop
    }

    /// Power spectra of all `frames` frames of the signal given to [`Self::prepare`], into the
    /// bin-major `power` matrix (`n_fft/2 + 1` rows of `frames` columns).
    #[inline(always)]
    pub fn power<const SIMD: bool>(&self, frames: usize, s: &mut StftScratch, power: &mut [f32]) {
        self.transform::<SIMD, false>(frames, s, power, (&mut [], &mut []));
    }

    /// [`Self::power`], and the complex spectra (rounded to complex64, the values whose squares
    /// are the power) frame-major into `re` and `im` (`frames` rows of `n_fft/2 + 1`).
    #[inline(always)]
    pub fn power_and_spectra<const SIMD: bool>(
        &self,
        frames: usize,
        s: &mut StftScratch,
        power: &mut [f32],
        re: &mut [f32],
        im: &mut [f32],
    ) {
        debug_assert!(re.len() == frames * self.n_bins() && im.len() == re.len());
        self.transform::<SIMD, true>(frames, s, power, (re, im));
    }

    /// Both of the above; `KEEP`: write the spectra too.
    #[inline(always)]
    fn transform<const SIMD: bool, const KEEP: bool>(
        &self,
        frames: usize,
        s: &mut StftScratch,
        power: &mut [f32],
        (re, im): (&mut [f32], &mut [f32]),
    ) {
        let n_bins = self.n_bins();
        debug_assert_eq!(power.len(), n_bins * frames);
        let StftScratch { padded, frame, spectrum, fft_scratch, block, post } = s;
        let mut t0 = 0;
        while t0 < frames {
            let n = BLOCK.min(frames - t0);
            for (j, out) in block.chunks_exact_mut(n_bins).take(n).enumerate() {
                let t = t0 + j;
                // `KEEP` is a constant: the seed path compiles without any of this.
                let keep = if KEEP {
                    Some((&mut re[t * n_bins..(t + 1) * n_bins], &mut im[t * n_bins..(t + 1) * n_bins]))
                } else {
                    None
                };
                self.power_frame::<KEEP>(t, padded, frame, spectrum, fft_scratch, post, out, keep);
            }
            // Transpose the block: bin k of frames t0..t0+n is one contiguous run of `power`.
            crate::kernels::transpose::<SIMD>(block, n_bins, n, n_bins, &mut power[t0..], frames);
            t0 += n;
        }
    }

    /// Power spectrum of frame `t` into `out` (`n_bins` values), and with `keep` its complex64
    /// spectrum into those real and imaginary rows.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn power_frame<const KEEP: bool>(
        &self,
        t: usize,
        padded: &[f32],
        frame: &mut [Complex<f64>],
        spectrum: &mut [Complex<f64>],
        fft_scratch: &mut [Complex<f64>],
        post: &mut PostScratch,
        out: &mut [f32],
        keep: Option<(&mut [f32], &mut [f32])>,
    ) {
        let start = t * self.hop;
        let src = &padded[start..start + self.n_fft];
        // The frame as n_fft reals: even samples land in the real parts, odd ones in the
        // imaginary parts, as the half-length complex FFT wants them.
        for ((f, x), w) in complex_as_reals(frame).iter_mut().zip(src).zip(&self.window) {
            *f = f64::from(*x) * w;
        }
        let half = self.n_fft / 2;
        self.fft.process_outofplace_with_scratch(frame, &mut spectrum[..half], fft_scratch);
        // realfft's RealToComplexEven post-processing, squared as it goes: bins k and half - k
        // from spectrum values k and half - k, for k = 1..=pairs.
        let first = spectrum[0];
        let (dc, nyquist) = (c64(first.re + first.im, 0.0), c64(first.re - first.im, 0.0));
        out[0] = power(dc);
        out[half] = power(nyquist);
        let mid = half.div_ceil(2);
        let pairs = self.tw_re.len().min(mid - 1).min(half - mid);
        // Split into plain arrays first (a = values 1..=pairs, b = values half-1 down to
        // half-pairs), so the twiddle loop is element-wise and vectorizes; the same operations
        // per bin as realfft's loop.
        let p = &mut *post;
        for (i, c) in spectrum[1..=pairs].iter().enumerate() {
            p.a_re[i] = c.re;
            p.a_im[i] = c.im;
        }
        for (i, c) in spectrum[half - pairs..half].iter().rev().enumerate() {
            p.b_re[i] = c.re;
            p.b_im[i] = c.im;
        }
        for i in 0..pairs {
            let (lo, hi) = post_pair(p.a_re[i], p.a_im[i], p.b_re[i], p.b_im[i], self.tw_re[i], self.tw_im[i]);
            p.lo[i] = power(lo);
            p.hi[i] = power(hi);
            if KEEP {
                (p.lo_re[i], p.lo_im[i], p.hi_re[i], p.hi_im[i]) = (lo.0, lo.1, hi.0, hi.1);
            }
        }
        out[1..=pairs].copy_from_slice(&p.lo[..pairs]);
        for (o, h) in out[half - pairs..half].iter_mut().rev().zip(&p.hi[..pairs]) {
            *o = *h;
        }
        // With an even half length the centre bin is its own mirror: realfft only conjugates it.
        let centre = half.is_multiple_of(2).then(|| c64(spectrum[half / 2].re, -spectrum[half / 2].im));
        if let Some(c) = centre {
            out[half / 2] = power(c);
        }
        if let Some((re, im)) = keep {
            for (row, lo, hi, edge) in [(re, &p.lo_re, &p.hi_re, 0), (im, &p.lo_im, &p.hi_im, 1)] {
                let pick = |c: (f32, f32)| if edge == 0 { c.0 } else { c.1 };
                row[0] = pick(dc);
                row[half] = pick(nyquist);
                row[1..=pairs].copy_from_slice(&lo[..pairs]);
                for (o, h) in row[half - pairs..half].iter_mut().rev().zip(&hi[..pairs]) {
                    *o = *h;
                }
                if let Some(c) = centre {
                    row[half / 2] = pick(c);
                }
            }
        }
    }
}

/// scipy.signal.get_window("hann", n, fftbins=True): the periodic Hann window (every STFT here).
pub fn hann(n_fft: usize) -> Vec<f64> {
    (0..n_fft).map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n_fft as f64).cos()).collect()
}

/// A spectrum value rounded to complex64, as librosa's `stft` returns it.
#[inline(always)]
fn c64(re: f64, im: f64) -> (f32, f32) {
    (re as f32, im as f32)
}

/// `re^2 + im^2` of a complex64 spectrum value, as librosa's `abs(.)**2`.
#[inline(always)]
fn power((re, im): (f32, f32)) -> f32 {
    re * re + im * im
}

/// realfft's twiddle step for the pair of bins `(k, half - k)` (values `a`, `b`, twiddle `tw`),
/// in its operations and order, each output rounded to complex64.
#[inline(always)]
fn post_pair(a_re: f64, a_im: f64, b_re: f64, b_im: f64, tw_re: f64, tw_im: f64) -> ((f32, f32), (f32, f32)) {
    let (sum_re, sum_im) = (a_re + b_re, a_im + b_im);
    let (diff_re, diff_im) = (a_re - b_re, a_im - b_im);
    // realfft: twiddled_re_sum = sum * tw.re, twiddled_im_sum = sum * tw.im, ... (complex times
    // real), of which only these parts are used.
    let twiddled_re_sum_im = sum_im * tw_re;
    let twiddled_im_sum_im = sum_im * tw_im;
    let twiddled_re_diff_re = diff_re * tw_re;
    let twiddled_im_diff_re = diff_re * tw_im;
    let half_sum_re = 0.5 * sum_re;
    let half_diff_im = 0.5 * diff_im;
    let output_twiddled_real = twiddled_re_sum_im + twiddled_im_diff_re;
    let output_twiddled_im = twiddled_im_sum_im - twiddled_re_diff_re;
    (
        c64(half_sum_re + output_twiddled_real, half_diff_im + output_twiddled_im),
        c64(half_sum_re - output_twiddled_real, output_twiddled_im - half_diff_im),
    )
}

/// Split-array buffers of the twiddle pass (`n_fft / 4` each).
pub struct PostScratch {
    a_re: Vec<f64>,
    a_im: Vec<f64>,
    b_re: Vec<f64>,
    b_im: Vec<f64>,
    lo: Vec<f32>,
    hi: Vec<f32>,
    /// The complex64 values of `lo` and `hi` (for [`Stft::power_and_spectra`]).
    lo_re: Vec<f32>,
    lo_im: Vec<f32>,
    hi_re: Vec<f32>,
    hi_im: Vec<f32>,
}

/// A complex slice as its interleaved real and imaginary parts.
#[inline(always)]
fn complex_as_reals(x: &mut [Complex<f64>]) -> &mut [f64] {
    // SAFETY: `Complex<f64>` is `#[repr(C)] { re: f64, im: f64 }`: two f64 with no padding, so
    // `x.len()` complex values are exactly `2 * x.len()` f64 at the same address and alignment;
    // the returned slice borrows `x` mutably, so nothing else aliases it.
    unsafe { std::slice::from_raw_parts_mut(x.as_mut_ptr().cast::<f64>(), 2 * x.len()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use realfft::RealFftPlanner;

    /// The power spectrum as it was computed through realfft (window, real FFT, f32 rounding,
    /// square): the fused pass must give the same bits, and the kept spectra realfft's complex64.
    #[test]
    fn realfft_power_matches_this_bitwise() {
        for (n_fft, hop, len) in
            [(512, 256, 32_000), (512, 128, 5_000), (64, 16, 700), (12, 4, 50), (10, 3, 41), (18, 5, 77)]
        {
            let x: Vec<f32> = (0..len as u32)
                .map(|i| {
                    ((i.wrapping_mul(2_654_435_761) >> 9) as f32 / 8_388_608.0 - 1.0) * 0.3 + (i as f32 * 0.01).sin()
                })
                .collect();
            let stft = Stft::new(n_fft, hop);
            let mut s = stft.scratch();
            let frames = stft.prepare(&x, &mut s);
            let n_bins = stft.n_bins();
            let mut power = vec![0f32; n_bins * frames];
            stft.power::<false>(frames, &mut s, &mut power);
            // The same power, and the complex64 spectra, through the path that keeps them.
            let (mut again, mut spec_re, mut spec_im) =
                (vec![0f32; power.len()], vec![f32::NAN; power.len()], vec![f32::NAN; power.len()]);
            stft.power_and_spectra::<false>(frames, &mut s, &mut again, &mut spec_re, &mut spec_im);
            assert!(power.iter().zip(&again).all(|(a, b)| a.to_bits() == b.to_bits()));

            let r2c = RealFftPlanner::<f64>::new().plan_fft_forward(n_fft);
            let (mut input, mut spectrum) = (r2c.make_input_vec(), r2c.make_output_vec());
            for t in 0..frames {
                let src = &s.padded[t * hop..t * hop + n_fft];
                for ((f, x), w) in input.iter_mut().zip(src).zip(&stft.window) {
                    *f = f64::from(*x) * w;
                }
                r2c.process(&mut input, &mut spectrum).unwrap();
                for (k, c) in spectrum.iter().enumerate() {
                    let (re, im) = (c.re as f32, c.im as f32);
                    let want = re * re + im * im;
                    assert_eq!(power[k * frames + t].to_bits(), want.to_bits(), "n_fft {n_fft} frame {t} bin {k}");
                    let at = t * n_bins + k;
                    assert_eq!((spec_re[at].to_bits(), spec_im[at].to_bits()), (re.to_bits(), im.to_bits()));
                }
            }
        }
    }
}
