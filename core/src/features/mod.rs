//! Feature extraction: `[frames][spec.n_features()]` per segment, exactly as the references in
//! `tests/golden` (`reference_features.py` for the seed's MFCC, chroma and log-mel;
//! `reference_features_ext.py` for LFCC and deltas) compute it
//! with librosa 1.0, and per-feature normalization. Block order: see [`FeatureSpec`]. (The
//! reference of the linear log-spectrogram, the phase-advance deviation and the excitation
//! block is there too.)
//!
//! A [`FeatureExtractor`] is built once (FFT plan, filterbanks, DCT) and shared between threads;
//! each worker owns a [`Scratch`], so extraction allocates nothing per frame (and nothing at all
//! once the scratch has seen a segment of the same length).
//!
//! Layout: the power spectra of all frames are stored bin-major (`[bin][frame]`), so the mel,
//! chroma and DCT stages are sums of scaled rows over all frames at once (see `kernels`), and
//! the result is transposed into frame-major rows at the end. One power spectrogram feeds the
//! mel, chroma and LFCC filterbanks. The fine kinds (`fine`) run the same STFT code at their own,
//! longer `fine_n_fft` and the same hop, so their frames are the seed's.

mod chroma;
mod dct;
mod delta;
mod excitation;
pub mod filterbank;
mod fine;
pub mod mel;
mod normalize;
mod phase;
mod spec;
mod stft;

use ndarray::Array2;
use thiserror::Error;

pub use normalize::{Normalizer, NormalizerFit};
pub use spec::{ChromaNorm, FeatureBlock, FeatureSpec, MAX_DELTA_ORDER, PadMode, Slaney, Window, limits};

use chroma::ChromaFilterbank;
use dct::Dct;
use delta::Delta;
use excitation::{Excitation, ExcitationScratch};
use filterbank::Filterbank;
use fine::{Fine, FineScratch};
use phase::{PhaseDeviation, PhaseScratch};
use stft::{Stft, StftScratch};

#[derive(Debug, Error)]
pub enum FeatureError {
    #[error("invalid feature spec: `{field}`: {reason}")]
    InvalidSpec { field: &'static str, reason: String },
    #[error("cannot extract features from empty audio")]
    EmptyInput,
    #[error("deltas of width {width} need at least {width} frames, the audio has {frames}")]
    TooFewFrames { frames: usize, width: usize },
    #[error("normalizer: {0}")]
    Normalizer(String),
    #[error("output buffer holds {got} floats, the features of this audio are {expected}")]
    OutputSize { expected: usize, got: usize },
}

thread_local! {
    /// Each thread's scratch buffers, one per pair of FFT sizes (`n_fft`, `fine_n_fft`; see
    /// `FeatureExtractor::with_thread_scratch`).
    static THREAD_SCRATCH: std::cell::RefCell<Vec<((usize, usize), Scratch)>> = const { std::cell::RefCell::new(Vec::new()) };
}

pub struct FeatureExtractor {
    spec: FeatureSpec,
    stft: Stft,
    mel: Filterbank,
    chroma: ChromaFilterbank,
    dct: Dct,
    /// Linear filterbank and DCT of the LFCC (when `n_lfcc > 0`).
    lfcc: Option<(Filterbank, Dct)>,
    /// Delta filters (when `deltas > 0`).
    delta: Option<Delta>,
    /// Phase-advance deviation (when `n_phase_dev > 0`).
    phase: Option<PhaseDeviation>,
    /// LPC residual kurtosis and loud-frame flag (when `excitation_order > 0`).
    excitation: Option<Excitation>,
    /// The fine kinds' STFT, lifter and blocks (when `fine_n_fft > 0`).
    fine: Option<Fine>,
}

/// Per-worker buffers for [`FeatureExtractor::extract_into`].
pub struct Scratch {
    stft: StftScratch,
    /// `[n_bins][frames]` power spectra.
    power: Vec<f32>,
    /// `[n_mels][frames]` mel power, then log-mel.
    mel: Vec<f32>,
    /// `[n_chroma][frames]`.
    chroma: Vec<f32>,
    /// Per-frame chroma maximum.
    peak: Vec<f32>,
    /// `[n_mels][frames]` log-mel, then `[n_lfcc_filters][frames]` linear-band dB, in f64:
    /// the input of each DCT.
    log64: Vec<f64>,
    /// `[n_mfcc + n_lfcc][frames]`: the cepstra (MFCC rows, then LFCC rows), rounded to f32
    /// precision as they are output (deltas are of the output values, as in the reference).
    ceps: Vec<f64>,
    /// `[n_lfcc_filters][frames]` linear-band power, then dB.
    lin: Vec<f32>,
    /// `[deltas][n_mfcc + n_lfcc][frames]`.
    delta: Vec<f64>,
    /// `[n_log_spec][frames]` power of the first bins, then dB.
    log_spec: Vec<f32>,
    phase: PhaseScratch,
    /// `[n_phase_dev][frames]`.
    phase_out: Vec<f64>,
    excitation: ExcitationScratch,
    /// `[2][frames]` when the spec has the excitation block, else empty.
    excitation_out: Vec<f64>,
    /// The fine STFT's buffers (when the spec has one).
    fine: Option<FineScratch>,
    /// `[n_fine_structure][frames]` and `[n_fine_log_spec][frames]`.
    fine_structure: Vec<f32>,
    fine_log_spec: Vec<f32>,
    /// `[n_features][frames]`: the output, bin-major, before its transpose.
    rows: Vec<f32>,
}

impl FeatureExtractor {
    pub fn new(spec: FeatureSpec) -> Result<Self, FeatureError> {
        spec.validate()?;
        Ok(Self {
            stft: Stft::new(spec.n_fft, spec.hop_length),
            mel: Filterbank::mel(spec.sample_rate, spec.n_fft, spec.n_mels, spec.fmin, spec.fmax),
            chroma: ChromaFilterbank::new(spec.sample_rate, spec.n_fft, spec.n_chroma, spec.chroma_tuning),
            dct: Dct::new(spec.n_mels, spec.n_mfcc),
            lfcc: (spec.n_lfcc > 0).then(|| {
                let fb = Filterbank::linear(spec.sample_rate, spec.n_fft, spec.n_lfcc_filters, spec.fmin, spec.fmax);
                (fb, Dct::new(spec.n_lfcc_filters, spec.n_lfcc))
            }),
            delta: (spec.deltas > 0).then(|| Delta::new(spec.delta_width, spec.deltas)),
            phase: (spec.n_phase_dev > 0).then(|| PhaseDeviation::new(spec.n_fft, spec.hop_length, spec.n_phase_dev)),
            excitation: (spec.excitation_order > 0)
                .then(|| Excitation::new(spec.n_fft, spec.hop_length, spec.excitation_order)),
            fine: (spec.fine_n_fft > 0).then(|| {
                Fine::new(
                    spec.fine_n_fft,
                    spec.hop_length,
                    spec.fine_lifter,
                    spec.n_fine_structure,
                    spec.n_fine_log_spec,
                )
            }),
            spec,
        })
    }

    pub fn spec(&self) -> &FeatureSpec {
        &self.spec
    }

    pub fn scratch(&self) -> Scratch {
        Scratch {
            stft: self.stft.scratch(),
            power: Vec::new(),
            mel: Vec::new(),
            chroma: Vec::new(),
            peak: Vec::new(),
            log64: Vec::new(),
            ceps: Vec::new(),
            lin: Vec::new(),
            delta: Vec::new(),
            log_spec: Vec::new(),
            phase: PhaseScratch::default(),
            phase_out: Vec::new(),
            excitation: ExcitationScratch::default(),
            excitation_out: Vec::new(),
            fine: self.fine.as_ref().map(Fine::scratch),
            fine_structure: Vec::new(),
            fine_log_spec: Vec::new(),
            rows: Vec::new(),
        }
    }

    /// Runs `f` with this thread's [`Scratch`] for this extractor's FFT sizes, kept between calls:
    /// a worker thread (the service's feature pool, the trainer's rayon threads) allocates its
    /// buffers once instead of per request. A nested call gets a fresh scratch.
    pub fn with_thread_scratch<R>(&self, f: impl FnOnce(&mut Scratch) -> R) -> R {
        let sizes = (self.spec.n_fft, self.spec.fine_n_fft);
        THREAD_SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut cache) => {
                let at = match cache.iter().position(|(n, _)| *n == sizes) {
                    Some(at) => at,
                    None => {
                        cache.push((sizes, self.scratch()));
                        cache.len() - 1
                    }
                };
                f(&mut cache[at].1)
            }
            Err(_) => f(&mut self.scratch()),
        })
    }

    /// [`Self::extract_into`] writing into a slice of exactly
    /// `spec.frames_for(samples.len()) * spec.n_features()` floats (e.g. one segment's share of a
    /// batch), so nothing is copied afterwards.
    pub fn extract_to(&self, samples: &[f32], scratch: &mut Scratch, out: &mut [f32]) -> Result<(), FeatureError> {
        let expected = self.spec.frames_for(samples.len()) * self.spec.n_features();
        if out.len() != expected {
            return Err(FeatureError::OutputSize { expected, got: out.len() });
        }
        self.check(samples)?;
        self.dispatch(samples, scratch, out);
        Ok(())
    }

    /// Features of `samples` (mono, at the spec's rate) into `out`, row-major
    /// `[spec.frames_for(samples.len())][spec.n_features()]`; `out` is resized, reusing its buffer.
    /// With deltas, audio of fewer than `delta_width` frames is an error (as in librosa); a full
    /// segment always has enough (`FeatureSpec::validate`).
    ///
    /// On x86-64 CPUs with AVX2 the same code runs compiled for AVX2 (selected at run time, so the
    /// binary still runs on any x86-64). Results are bitwise identical either way: Rust never
    /// fuses multiply-adds implicitly and no stage reduces across SIMD lanes.
    pub fn extract_into(&self, samples: &[f32], scratch: &mut Scratch, out: &mut Vec<f32>) -> Result<(), FeatureError> {
        self.check(samples)?;
        out.clear();
        out.resize(self.spec.frames_for(samples.len()) * self.spec.n_features(), 0.0);
        self.dispatch(samples, scratch, out);
        Ok(())
    }

    fn check(&self, samples: &[f32]) -> Result<(), FeatureError> {
        if samples.is_empty() {
            return Err(FeatureError::EmptyInput);
        }
        let frames = self.spec.frames_for(samples.len());
        if let Some(d) = &self.delta
            && frames < d.width()
        {
            return Err(FeatureError::TooFewFrames { frames, width: d.width() });
        }
        Ok(())
    }

    /// The extraction for this CPU: on x86-64 CPUs with AVX-512 or AVX2 the same code runs
    /// compiled for them (selected at run time, so the binary still runs on any x86-64).
    fn dispatch(&self, samples: &[f32], scratch: &mut Scratch, out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (and so AVX2), checked just above.
            unsafe { self.extract_avx512(samples, scratch, out) };
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            unsafe { self.extract_avx2(samples, scratch, out) };
            return;
        }
        self.extract_body::<false, false>(samples, scratch, out);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn extract_avx2(&self, samples: &[f32], scratch: &mut Scratch, out: &mut [f32]) {
        self.extract_body::<true, false>(samples, scratch, out);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn extract_avx512(&self, samples: &[f32], scratch: &mut Scratch, out: &mut [f32]) {
        self.extract_body::<true, true>(samples, scratch, out);
    }

    /// The extraction itself; always inlined so each caller compiles it for its target features.
    /// `SIMD`: the caller is compiled for AVX2 (explicit AVX transposes); `WIDE`: for AVX-512
    /// (32 vector registers: wider DCT passes). Same values either way.
    #[inline(always)]
    fn extract_body<const SIMD: bool, const WIDE: bool>(
        &self,
        samples: &[f32],
        scratch: &mut Scratch,
        out: &mut [f32],
    ) {
        let s = &self.spec;
        let frames = self.stft.prepare(samples, &mut scratch.stft);
        let sc = scratch;
        sc.power.resize(self.stft.n_bins() * frames, 0.0);
        if let Some(ph) = &self.phase {
            // The phase-advance deviation reads this transform's complex spectra: one FFT per frame.
            ph.prepare(frames, &mut sc.phase);
            let (re, im) = (&mut sc.phase.re, &mut sc.phase.im);
            self.stft.power_and_spectra::<SIMD>(frames, &mut sc.stft, &mut sc.power, re, im);
        } else {
            self.stft.power::<SIMD>(frames, &mut sc.stft, &mut sc.power);
        }
        let (db_amin, db_ref, db_top) = (s.db_amin as f32, s.db_ref as f32, s.db_top as f32);
        sc.mel.resize(s.n_mels * frames, 0.0);
        self.mel.apply_columns(&sc.power, frames, &mut sc.mel);
        // dB needs the segment-wide maximum (top_db), hence after all frames.
        filterbank::power_to_db_in_place(&mut sc.mel, db_amin, db_ref, db_top);
        sc.chroma.resize(s.n_chroma * frames, 0.0);
        self.chroma.apply_columns(&sc.power, frames, &mut sc.chroma, &mut sc.peak);
        // Cepstra: MFCC rows, then LFCC rows (the same power spectrogram, linear bands).
        let n_ceps = s.n_mfcc + s.n_lfcc;
        sc.ceps.resize(n_ceps * frames, 0.0);
        let (mfcc, lfcc) = sc.ceps.split_at_mut(s.n_mfcc * frames);
        sc.log64.clear();
        sc.log64.extend(sc.mel.iter().map(|&v| f64::from(v)));
        self.dct.apply_columns::<WIDE>(&sc.log64, frames, mfcc);
        if let Some((fb, dct)) = &self.lfcc {
            sc.lin.resize(fb.n_bands() * frames, 0.0);
            fb.apply_columns(&sc.power, frames, &mut sc.lin);
            filterbank::power_to_db_in_place(&mut sc.lin, db_amin, db_ref, db_top);
            sc.log64.clear();
            sc.log64.extend(sc.lin.iter().map(|&v| f64::from(v)));
            dct.apply_columns::<WIDE>(&sc.log64, frames, lfcc);
        }
        // The linear log-spectrogram: the power rows of its bins (bin-major already), in dB with
        // the floor over the block's segment, as `power_to_db` of that slice of the spectrogram.
        let log_spec = &mut sc.log_spec;
        log_spec.clear();
        log_spec.extend_from_slice(&sc.power[..s.n_log_spec * frames]);
        filterbank::power_to_db_in_place(log_spec, db_amin, db_ref, db_top);
        let phase_out = &mut sc.phase_out;
        phase_out.clear();
        phase_out.resize(s.n_phase_dev * frames, 0.0);
        if let Some(ph) = &self.phase {
            let max_power = sc.power.iter().fold(0f32, |m, v| m.max(*v));
            let amin_top = (s.db_amin, s.db_top);
            ph.apply::<WIDE>(frames, max_power, amin_top, &mut sc.phase, phase_out);
        }
        let excitation_out = &mut sc.excitation_out;
        excitation_out.clear();
        if let Some(ex) = &self.excitation {
            excitation_out.resize(s.n_excitation() * frames, 0.0);
            ex.apply(&sc.power, sc.stft.padded(), frames, &mut sc.excitation, excitation_out);
        }
        if let Some(fine) = &self.fine {
            // A scratch made by another extractor (or before) gets the buffers of this one's size.
            if sc.fine.as_ref().is_none_or(|f| !fine.fits(f)) {
                sc.fine = Some(fine.scratch());
            }
            if let Some(fine_scratch) = &mut sc.fine {
                let db = (db_amin, db_ref, db_top);
                fine.apply::<SIMD, WIDE>(
                    samples,
                    frames,
                    db,
                    fine_scratch,
                    &mut sc.fine_structure,
                    &mut sc.fine_log_spec,
                );
            }
        } else {
            sc.fine_structure.clear();
            sc.fine_log_spec.clear();
        }
        // Output precision now, so the deltas see exactly the cepstra that are output.
        for v in sc.ceps.iter_mut() {
            *v = f64::from(*v as f32);
        }
        if let Some(d) = &self.delta {
            sc.delta.resize(s.deltas * n_ceps * frames, 0.0);
            for (k, o) in sc.delta.chunks_exact_mut(n_ceps * frames).enumerate() {
                d.apply_rows(k + 1, &sc.ceps, frames, o);
            }
        }
        // Frame-major rows, blocks in `FeatureSpec::layout` order:
        // [mfcc, chroma, log-mel, lfcc, log-spec, phase-dev, excitation, fine structure,
        // fine log-spec, deltas of (mfcc, lfcc) by order]: staged bin-major in
        // f32, then transposed.
        let width = s.n_features();
        let (ceps, delta) = (&sc.ceps, &sc.delta[..s.deltas * n_ceps * frames]);
        let (mfcc, lfcc) = ceps.split_at(s.n_mfcc * frames);
        sc.rows.clear();
        sc.rows.extend(mfcc.iter().map(|&v| v as f32));
        sc.rows.extend_from_slice(&sc.chroma[..s.n_chroma * frames]);
        sc.rows.extend_from_slice(&sc.mel[..s.n_mels * frames]);
        sc.rows.extend(lfcc.iter().map(|&v| v as f32));
        sc.rows.extend_from_slice(&sc.log_spec);
        sc.rows.extend(sc.phase_out.iter().map(|&v| v as f32));
        sc.rows.extend(sc.excitation_out.iter().map(|&v| v as f32));
        sc.rows.extend_from_slice(&sc.fine_structure);
        sc.rows.extend_from_slice(&sc.fine_log_spec);
        sc.rows.extend(delta.iter().map(|&v| v as f32));
        debug_assert_eq!(sc.rows.len(), width * frames);
        debug_assert_eq!(out.len(), width * frames);
        crate::kernels::transpose::<SIMD>(&sc.rows, frames, width, frames, out, width);
    }

    /// Convenience form of [`Self::extract_into`] returning a `[frames, n_features]` array.
    pub fn extract(&self, samples: &[f32]) -> Result<Array2<f32>, FeatureError> {
        let mut out = Vec::new();
        self.extract_into(samples, &mut self.scratch(), &mut out)?;
        let frames = out.len() / self.spec.n_features();
        Array2::from_shape_vec((frames, self.spec.n_features()), out)
            .map_err(|e| FeatureError::InvalidSpec { field: "n_features", reason: e.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extractor_is_shareable_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<FeatureExtractor>();
    }

    #[test]
    fn shape_and_basic_values_for_a_tone() {
        let spec = FeatureSpec::default();
        let ex = FeatureExtractor::new(spec.clone()).unwrap();
        let tone: Vec<f32> =
            (0..32_000).map(|i| (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 16_000.0).sin() * 0.5).collect();
        let f = ex.extract(&tone).unwrap();
        assert_eq!(f.dim(), (126, 96));
        // A4 = 440 Hz is pitch class A (index 9 with C at 0): chroma max there in a middle frame.
        let chroma = f.row(60);
        let chroma = &chroma.as_slice().unwrap()[20..32];
        let argmax = chroma.iter().enumerate().fold(0, |b, (i, v)| if *v > chroma[b] { i } else { b });
        assert_eq!(argmax, 9, "{chroma:?}");
        assert!((chroma[9] - 1.0).abs() < 1e-6);
        assert!(f.iter().all(|v| v.is_finite()));
        assert!(ex.extract(&[]).is_err());
    }

    #[test]
    fn dispatched_and_portable_paths_agree_bitwise() {
        let ex = FeatureExtractor::new(FeatureSpec::default()).unwrap();
        let noise: Vec<f32> =
            (0..40_000u32).map(|i| ((i.wrapping_mul(2_654_435_761) >> 9) as f32 / 8_388_608.0 - 1.0) * 0.3).collect();
        let mut a = Vec::new();
        ex.extract_into(&noise, &mut ex.scratch(), &mut a).unwrap();
        let mut b = vec![f32::NAN; a.len()];
        ex.extract_body::<false, false>(&noise, &mut ex.scratch(), &mut b);
        assert_eq!(a.len(), b.len());
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
        let ex = FeatureExtractor::new(FeatureSpec { deltas: 2, ..FeatureSpec::lfcc_deltas() }).unwrap();
        ex.extract_into(&noise, &mut ex.scratch(), &mut a).unwrap();
        b.resize(a.len(), f32::NAN);
        ex.extract_body::<false, false>(&noise, &mut ex.scratch(), &mut b);
        assert_eq!(a.len(), 157 * 196);
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
    }

    #[test]
    fn slices_and_thread_scratch_give_the_same_features() {
        let x = noise(32_000, 3);
        let seed = FeatureExtractor::new(FeatureSpec::default()).unwrap();
        let rich = FeatureExtractor::new(FeatureSpec::lfcc_deltas()).unwrap();
        for ex in [&seed, &rich, &seed] {
            let mut want = Vec::new();
            ex.extract_into(&x, &mut ex.scratch(), &mut want).unwrap();
            // Two segments side by side in one buffer, through the thread's (reused) scratch.
            let mut both = vec![f32::NAN; 2 * want.len()];
            ex.with_thread_scratch(|s| {
                for half in both.chunks_exact_mut(want.len()) {
                    ex.extract_to(&x, s, half).unwrap();
                }
            });
            assert!(
                both.chunks_exact(want.len()).all(|h| h.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()))
            );
        }
        let e = seed.extract_to(&x, &mut seed.scratch(), &mut [0.0; 5]).unwrap_err();
        assert!(matches!(e, FeatureError::OutputSize { expected: 12_096, got: 5 }), "{e}");
    }

    fn noise(n: usize, seed: u32) -> Vec<f32> {
        (0..n as u32)
            .map(|i| ((i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 9) as f32 / 8_388_608.0 - 1.0) * 0.3)
            .collect()
    }

    #[test]
    fn richer_spec_keeps_the_seed_blocks_bit_identical() {
        let x = noise(32_000, 7);
        let seed = FeatureExtractor::new(FeatureSpec::default()).unwrap().extract(&x).unwrap();
        let spec = FeatureSpec { deltas: 2, ..FeatureSpec::lfcc_deltas() };
        let rich = FeatureExtractor::new(spec.clone()).unwrap().extract(&x).unwrap();
        assert_eq!(rich.dim(), (126, 196));
        for t in 0..126 {
            for c in 0..96 {
                assert_eq!(rich[[t, c]].to_bits(), seed[[t, c]].to_bits(), "frame {t} col {c}");
            }
        }
        // The deltas are of the output cepstra: recompute delta_mfcc from columns 0..20 (ramp
        // filter (j - 4) / 60) and delta2_lfcc from the LFCC columns.
        let (mfcc, lfcc) = (spec.block("mfcc").unwrap(), spec.block("lfcc").unwrap());
        let (d_mfcc, d2_lfcc) = (spec.block("delta_mfcc").unwrap(), spec.block("delta2_lfcc").unwrap());
        for t in 4..122 {
            for k in 0..20 {
                let d: f64 =
                    (0..9).map(|j| (j as f64 - 4.0) / 60.0 * f64::from(rich[[t + j - 4, mfcc.start + k]])).sum();
                assert!((d - f64::from(rich[[t, d_mfcc.start + k]])).abs() < 1e-4, "frame {t} delta mfcc {k}");
                let w = [28.0, 7.0, -8.0, -17.0, -20.0, -17.0, -8.0, 7.0, 28.0];
                let d2: f64 = (0..9).map(|j| w[j] / 462.0 * f64::from(rich[[t + j - 4, lfcc.start + k]])).sum();
                assert!((d2 - f64::from(rich[[t, d2_lfcc.start + k]])).abs() < 1e-4, "frame {t} delta2 lfcc {k}");
            }
        }
        // Noise is not stationary frame to frame: the deltas are not all ~0.
        assert!((0..126).any(|t| rich[[t, d_mfcc.start + 1]].abs() > 0.1));
    }

    #[test]
    fn lfcc_of_silence_is_the_db_floor_and_its_deltas_vanish() {
        let spec = FeatureSpec::lfcc_deltas();
        let f = FeatureExtractor::new(spec.clone()).unwrap().extract(&vec![0.0; 32_000]).unwrap();
        let lfcc = spec.block("lfcc").unwrap();
        // Every band at 10 log10(1e-10) = -100 dB: c0 = -100 * sqrt(70), the rest 0.
        let c0 = -100.0 * 70f32.sqrt();
        assert!(f.rows().into_iter().all(|r| (r[lfcc.start] - c0).abs() < 1e-2), "{}", f.row(0)[lfcc.start]);
        assert!(f.rows().into_iter().all(|r| r.iter().skip(lfcc.start + 1).all(|v| v.abs() < 1e-3)));
    }

    #[test]
    fn lfcc_low_coefficients_see_where_the_energy_is() {
        // c1 of a DCT-II weighs low bands positively and high bands negatively.
        let spec = FeatureSpec::lfcc_deltas();
        let ex = FeatureExtractor::new(spec.clone()).unwrap();
        let tone = |hz: f32| -> Vec<f32> {
            (0..32_000).map(|i| (2.0 * std::f32::consts::PI * hz * i as f32 / 16_000.0).sin() * 0.5).collect()
        };
        let c1 = spec.block("lfcc").unwrap().start + 1;
        let (low, high) = (ex.extract(&tone(300.0)).unwrap(), ex.extract(&tone(7000.0)).unwrap());
        assert!(low[[60, c1]] > 0.0 && high[[60, c1]] < 0.0, "{} {}", low[[60, c1]], high[[60, c1]]);
    }

    #[test]
    fn log_spectrogram_resolves_harmonics_and_keeps_the_seed_blocks() {
        // 200 Hz and its 2nd harmonic: peaks at bins 200 / 31.25 = 6.4 and 12.8, a trough
        // between them that the 64 mel bands (~45 Hz wide there, smoothed) show far less.
        let spec = FeatureSpec::log_spec();
        let x: Vec<f32> = (0..32_000)
            .map(|i| {
                let t = i as f32 / 16_000.0;
                0.4 * (2.0 * std::f32::consts::PI * 200.0 * t).sin()
                    + 0.2 * (2.0 * std::f32::consts::PI * 400.0 * t).sin()
            })
            .collect();
        let f = FeatureExtractor::new(spec.clone()).unwrap().extract(&x).unwrap();
        let seed = FeatureExtractor::new(FeatureSpec::default()).unwrap().extract(&x).unwrap();
        assert_eq!(f.dim(), (126, 353));
        assert!((0..126).all(|t| (0..96).all(|c| f[[t, c]].to_bits() == seed[[t, c]].to_bits())));
        let row = f.row(60);
        let bins = &row.as_slice().unwrap()[spec.block("log_spec").unwrap()];
        let argmax = |r: std::ops::Range<usize>| r.clone().max_by(|&a, &b| bins[a].total_cmp(&bins[b])).unwrap();
        assert_eq!((argmax(4..10), argmax(10..16)), (6, 13));
        assert!(bins[6] - bins[10] > 30.0, "{} {}", bins[6], bins[10]);
        // The floor is 80 dB under the block's maximum.
        let top = bins.iter().fold(f32::MIN, |m, v| m.max(*v));
        assert!(f.rows().into_iter().all(|r| r.iter().skip(96).all(|v| *v >= top - 80.0 - 1e-3)));
        // The dispatched (SIMD) and portable paths agree bitwise here too.
        let ex = FeatureExtractor::new(FeatureSpec { n_log_spec: 100, ..FeatureSpec::lfcc_deltas() }).unwrap();
        let (mut a, mut b) = (Vec::new(), vec![f32::NAN; 126 * 256]);
        ex.extract_into(&x, &mut ex.scratch(), &mut a).unwrap();
        ex.extract_body::<false, false>(&x, &mut ex.scratch(), &mut b);
        assert!(a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
    }

    #[test]
    fn phase_deviation_is_near_zero_for_a_steady_tone_and_large_for_noise() {
        // A 1 kHz tone sits on bin 32 (31.25 Hz bins): its phase advances exactly as a bin-32
        // sinusoid's, so only its two Hann neighbours (whose centres are 31.25 Hz away) deviate.
        // White noise's phase is uniform: mean 1 - cos d = 1, c0 = sqrt(257) ~ 16.
        let spec = FeatureSpec::phase_dev();
        let ex = FeatureExtractor::new(spec.clone()).unwrap();
        let block = spec.block("phase_dev").unwrap();
        let tone: Vec<f32> =
            (0..32_000).map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 16_000.0).sin() * 0.5).collect();
        let (t, n) = (ex.extract(&tone).unwrap(), ex.extract(&noise(32_000, 5)).unwrap());
        assert_eq!(t.dim(), (126, 126));
        for f in [&t, &n] {
            assert!(f.row(0).iter().skip(block.start).all(|v| *v == 0.0), "frame 0 has no predecessor");
        }
        let c0 = |f: &Array2<f32>| (2..124).map(|r| f[[r, block.start]]).sum::<f32>() / 122.0;
        assert!(c0(&t) < 2.0 && c0(&n) > 12.0, "tone {} noise {}", c0(&t), c0(&n));
        let silence = ex.extract(&vec![0.0; 32_000]).unwrap();
        assert!(silence.rows().into_iter().all(|r| r.iter().skip(block.start).all(|v| *v == 0.0)));
        seed_blocks_untouched_and_portable_path_identical(&ex, &tone, &t);
    }

    #[test]
    fn excitation_is_peaky_for_a_pulse_train_gaussian_for_noise_and_zero_for_silence() {
        // A 100 Hz pulse train through a two-pole resonator: the LPC inverse filter undoes the
        // resonator and leaves the pulses (about 1.6 per 256-sample hop: kurtosis ~ 150, ln ~ 5).
        // White noise: Gaussian kurtosis 3, ln 3 = 1.1. Silence: no residual, no loud frame.
        let spec = FeatureSpec::excitation();
        let ex = FeatureExtractor::new(spec.clone()).unwrap();
        let block = spec.block("excitation").unwrap();
        let (kurt, loud) = (block.start, block.start + 1);
        let mut pulses = vec![0f32; 32_000];
        let (mut y1, mut y2) = (0f32, 0f32);
        for (i, v) in pulses.iter_mut().enumerate() {
            let x = if i % 160 == 0 { 1.0 } else { 0.0 };
            let y = x + 1.6 * y1 - 0.8 * y2;
            (y2, y1) = (y1, y);
            *v = 0.1 * y;
        }
        let mean_loud = |f: &Array2<f32>| {
            let rows: Vec<_> = f.rows().into_iter().filter(|r| r[loud] == 1.0).collect();
            assert!(rows.len() > 100, "{} loud frames", rows.len());
            rows.iter().map(|r| r[kurt]).sum::<f32>() / rows.len() as f32
        };
        // Near-Gaussian white noise (the sum of 12 xorshift uniforms: kurtosis 2.9); `noise`
        // above is a multiplicative hash of the index, which a predictor partly foresees.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut uniform = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let white: Vec<f32> =
            (0..32_000).map(|_| (((0..12).map(|_| uniform()).sum::<f64>() - 6.0) * 0.1) as f32).collect();
        let (p, n) = (ex.extract(&pulses).unwrap(), ex.extract(&white).unwrap());
        assert_eq!(p.dim(), (126, 98));
        assert!(mean_loud(&p) > 3.5, "pulse train: {}", mean_loud(&p));
        assert!((0.9..1.35).contains(&mean_loud(&n)), "noise: {}", mean_loud(&n));
        assert!(p.rows().into_iter().all(|r| r[loud] == 0.0 || r[loud] == 1.0));
        let silence = ex.extract(&vec![0.0; 32_000]).unwrap();
        assert!(silence.rows().into_iter().all(|r| r[kurt] == 0.0 && r[loud] == 0.0));
        // Loud is relative to the segment's loudest frame: a burst after near-silence.
        let mut burst = vec![0f32; 32_000];
        burst[16_000..].copy_from_slice(&white[..16_000]);
        let b = ex.extract(&burst).unwrap();
        assert!((0..60).all(|t| b[[t, loud]] == 0.0) && (66..124).all(|t| b[[t, loud]] == 1.0));
        seed_blocks_untouched_and_portable_path_identical(&ex, &pulses, &p);
    }

    /// A richer spec's extractor `ex` gave `rich` for `input`: its seed blocks are the seed spec's
    /// bit for bit, and the dispatched (SIMD) path equals the portable one bit for bit.
    fn seed_blocks_untouched_and_portable_path_identical(ex: &FeatureExtractor, input: &[f32], rich: &Array2<f32>) {
        let seed = FeatureExtractor::new(FeatureSpec::default()).unwrap().extract(input).unwrap();
        assert!((0..seed.nrows()).all(|r| (0..96).all(|c| rich[[r, c]].to_bits() == seed[[r, c]].to_bits())));
        let x = noise(32_000, 8);
        let (mut a, mut b) = (Vec::new(), vec![f32::NAN; 126 * ex.spec().n_features()]);
        ex.extract_into(&x, &mut ex.scratch(), &mut a).unwrap();
        ex.extract_body::<false, false>(&x, &mut ex.scratch(), &mut b);
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
    }

    #[test]
    fn fine_structure_peaks_at_harmonics_and_keeps_the_seed_blocks() {
        // 150 Hz and 9 harmonics: at 15.625 Hz bins the harmonics sit at bins 9.6, 19.2, ...,
        // with troughs between them; the liftered envelope (ripples slower than 533 Hz) passes
        // under the peaks, so the fine structure is positive on the harmonics and negative
        // between them, while the log spectrum itself is dominated by the envelope.
        let spec = FeatureSpec::fine_structure();
        let ex = FeatureExtractor::new(spec.clone()).unwrap();
        let x: Vec<f32> = (0..32_000)
            .map(|i| {
                let t = i as f32 / 16_000.0;
                (1..=10).map(|h| 0.3 / h as f32 * (2.0 * std::f32::consts::PI * 150.0 * h as f32 * t).sin()).sum()
            })
            .collect();
        let f = ex.extract(&x).unwrap();
        assert_eq!(f.dim(), (126, 609));
        let block = spec.block("fine_structure").unwrap();
        let row = f.row(60);
        let fine = &row.as_slice().unwrap()[block];
        for h in 1..=8 {
            let peak = (150.0 * h as f32 / 15.625).round() as usize;
            let trough = (150.0 * (h as f32 + 0.5) / 15.625).round() as usize;
            assert!(fine[peak] > 5.0 && fine[trough] < -5.0, "harmonic {h}: {} {}", fine[peak], fine[trough]);
        }
        // Silence: the log spectrum is the flat floor, its envelope is itself.
        let silence = ex.extract(&vec![0.0; 32_000]).unwrap();
        assert!(silence.rows().into_iter().all(|r| r.iter().skip(96).all(|v| v.abs() < 1e-6)));
        seed_blocks_untouched_and_portable_path_identical(&ex, &x, &f);
        let ex = FeatureExtractor::new(FeatureSpec::fine_phase()).unwrap();
        let f = ex.extract(&x).unwrap();
        seed_blocks_untouched_and_portable_path_identical(&ex, &x, &f);
    }

    #[test]
    fn fine_stream_frames_align_with_the_seed_frames() {
        // A click at sample 16,000 (frame 62.5 at hop 256): the loudest frames of the seed's
        // log-mel and of the 1024-point log spectrum are the same two, 62 and 63.
        let spec = FeatureSpec::fine_log_spec();
        let mut x = vec![0f32; 32_000];
        x[16_000] = 1.0;
        let f = FeatureExtractor::new(spec.clone()).unwrap().extract(&x).unwrap();
        let energy = |cols: std::ops::Range<usize>| -> Vec<f32> {
            f.rows().into_iter().map(|r| cols.clone().map(|c| r[c]).sum()).collect()
        };
        let top2 = |e: Vec<f32>| {
            let mut idx: Vec<usize> = (0..e.len()).collect();
            idx.sort_by(|&a, &b| e[b].total_cmp(&e[a]));
            let mut two = [idx[0], idx[1]];
            two.sort();
            two
        };
        assert_eq!(top2(energy(spec.block("log_mel").unwrap())), [62, 63]);
        assert_eq!(top2(energy(spec.block("fine_log_spec").unwrap())), [62, 63]);
        // Frame count from the same rule for both streams, on a length that is not a whole hop.
        let short = FeatureExtractor::new(spec).unwrap().extract(&x[..5_000]).unwrap();
        assert_eq!(short.nrows(), 1 + 5_000 / 256);
    }

    #[test]
    fn a_scratch_of_another_extractor_still_gives_the_fine_blocks() {
        let x = noise(32_000, 11);
        let fine = FeatureExtractor::new(FeatureSpec::fine_structure()).unwrap();
        let seed = FeatureExtractor::new(FeatureSpec::default()).unwrap();
        let (mut want, mut got) = (Vec::new(), Vec::new());
        fine.extract_into(&x, &mut fine.scratch(), &mut want).unwrap();
        fine.extract_into(&x, &mut seed.scratch(), &mut got).unwrap();
        assert!(want.len() == 126 * 609 && want.iter().zip(&got).all(|(a, b)| a.to_bits() == b.to_bits()));
        // And the thread scratch keeps the two extractors apart.
        let mut a = Vec::new();
        seed.with_thread_scratch(|s| seed.extract_into(&x, s, &mut a)).unwrap();
        fine.with_thread_scratch(|s| fine.extract_into(&x, s, &mut got)).unwrap();
        assert!(want.iter().zip(&got).all(|(a, b)| a.to_bits() == b.to_bits()));
    }

    #[test]
    fn deltas_need_a_window_of_frames() {
        let ex = FeatureExtractor::new(FeatureSpec::lfcc_deltas()).unwrap();
        // 8 frames (7 hops) < width 9: an error, as librosa's; 9 frames are enough.
        let e = ex.extract(&noise(7 * 256, 1)).unwrap_err();
        assert!(matches!(e, FeatureError::TooFewFrames { frames: 8, width: 9 }), "{e}");
        assert_eq!(ex.extract(&noise(8 * 256, 1)).unwrap().dim(), (9, 156));
        // The seed spec has no such limit.
        assert_eq!(FeatureExtractor::new(FeatureSpec::default()).unwrap().extract(&noise(300, 1)).unwrap().nrows(), 2);
    }
}
