//! The feature specification: every parameter that defines the model's input, recorded in each
//! model's manifest. Field names follow `tests/golden/reference_features.py` (the executable
//! reference), so the JSON is the same.

use serde::{Deserialize, Serialize};

use super::FeatureError;

/// Analysis window. Only Hann (periodic, as `scipy.signal.get_window(.., fftbins=True)`) is implemented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Window {
    Hann,
}

/// Padding of the signal edges when `center = true`. Only zero padding is implemented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PadMode {
    Constant,
}

/// Mel scale and filter normalization. Only Slaney's (librosa's default) is implemented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Slaney {
    Slaney,
}

/// Per-frame chroma normalization. Only the max (infinity) norm is implemented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChromaNorm {
    Inf,
}

fn default_min_audio_seconds() -> f64 {
    1.0
}

/// `skip_serializing_if` for the optional kinds: an absent kind (0) is not written, so a spec
/// without them serializes byte for byte as before they existed (manifests, feature cache keys).
fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Largest delta order implemented (1: delta, 2: delta and delta-delta).
pub const MAX_DELTA_ORDER: usize = 2;

/// Upper bounds on the sizes a spec (read from a manifest: untrusted) may ask for. Every
/// allocation the server makes for a model version (warm-up tensor, batches, per-segment
/// features, stream windows) is a product of these, so a version whose manifest asks for more is
/// refused at load, with the limit named, before anything is allocated. Generous: the default
/// spec is 2 s, 126 frames x 96 features (12,096 floats per segment).
pub mod limits {
    /// Longest segment, seconds (`segment_samples / sample_rate`).
    pub const MAX_SEGMENT_SECONDS: f64 = 60.0;
    /// Most samples per segment (60 s at 192 kHz).
    pub const MAX_SEGMENT_SAMPLES: usize = 11_520_000;
    /// Most STFT frames per segment.
    pub const MAX_FRAMES: usize = 16_384;
    /// Most floats per frame (`n_features`).
    pub const MAX_FEATURES: usize = 4_096;
    /// Most floats in one segment's feature matrix (frames x features): 8 MiB of f32.
    pub const MAX_SEGMENT_FLOATS: usize = 1 << 21;
}

/// Everything that determines the features a model sees. Defaults are DESIGN.md's spec (the
/// seed spec: 96 floats per frame); [`FeatureSpec::lfcc_deltas`] adds LFCC and deltas.
///
/// # Frame layout
/// Each frame is one row of [`FeatureSpec::n_features`] floats, blocks in this order (a block
/// whose size is 0 is absent; [`FeatureSpec::layout`] gives the column ranges):
///
/// | block          | floats                | what                                              |
/// |----------------|-----------------------|---------------------------------------------------|
/// | `mfcc`         | `n_mfcc`              | DCT-II (ortho) of the log-mel                     |
/// | `chroma`       | `n_chroma`            | chroma of the power spectrum, inf-norm per frame  |
/// | `log_mel`      | `n_mels`              | `power_to_db` of the Slaney mel power             |
/// | `lfcc`         | `n_lfcc`              | DCT-II (ortho) of `power_to_db` of linear bands   |
/// | `log_spec`     | `n_log_spec`          | `power_to_db` of the first STFT bins (linear)     |
/// | `phase_dev`    | `n_phase_dev`         | DCT-II (ortho) of the phase-advance deviation     |
/// | `excitation`   | 2 if `excitation_order` | ln kurtosis of the LPC residual, loud-frame flag |
/// | `fine_structure` | `n_fine_structure`  | log power minus its liftered envelope, `fine_n_fft` STFT |
/// | `fine_log_spec`  | `n_fine_log_spec`   | log power of the `fine_n_fft` STFT's first bins    |
/// | `delta_mfcc`   | `n_mfcc` if deltas>=1 | `librosa.feature.delta(mfcc, width, order=1)`     |
/// | `delta_lfcc`   | `n_lfcc` if deltas>=1 | same, of the LFCC                                 |
/// | `delta2_mfcc`  | `n_mfcc` if deltas=2  | `delta(mfcc, width, order=2)`                     |
/// | `delta2_lfcc`  | `n_lfcc` if deltas=2  | same, of the LFCC                                 |
///
/// The first three blocks are the seed spec's, so a spec without the optional kinds gives
/// exactly the seed's 96-float rows. Every kind has a numpy/librosa reference in
/// `tests/golden/reference_features.py` (seed) and `reference_features_ext.py` (the rest).
///
/// The optional kinds' fields default to 0 ("absent") when missing from the JSON and are not
/// written when 0: manifests from before they existed parse to the same spec, and the seed
/// spec's JSON (hence feature cache keys) is unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSpec {
    pub sample_rate: u32,
    /// Samples per segment (2.0 s at 16 kHz).
    pub segment_samples: usize,
    /// Audio left after the last full window is scored when it is at least this long, by one
    /// more window aligned to the end of the audio (overlapping the previous one: real audio
    /// only, never zero padding that would dilute the clip's score).
    pub min_tail_seconds: f64,
    /// Shorter audio is an `audio_too_short` error rather than a verdict; audio between this and
    /// one segment is scored as one zero-padded window. Manifests written before this field
    /// existed read it as the default (1.0 s).
    #[serde(default = "default_min_audio_seconds")]
    pub min_audio_seconds: f64,
    pub n_fft: usize,
    pub hop_length: usize,
    pub win_length: usize,
    pub window: Window,
    pub center: bool,
    pub pad_mode: PadMode,
    pub n_mels: usize,
    pub fmin: f64,
    pub fmax: f64,
    pub mel_scale: Slaney,
    pub mel_norm: Slaney,
    pub power: f64,
    pub db_ref: f64,
    pub db_amin: f64,
    pub db_top: f64,
    pub n_mfcc: usize,
    pub n_chroma: usize,
    pub chroma_tuning: f64,
    pub chroma_norm: ChromaNorm,
    /// LFCC coefficients per frame (0: no LFCC block): power spectrum -> `n_lfcc_filters`
    /// triangular filters spaced linearly over `fmin..fmax` (peak 1, no area normalization) ->
    /// `power_to_db` with `db_ref`, `db_amin`, `db_top` (floor over the segment's LFCC bands) ->
    /// orthonormal DCT-II, first `n_lfcc` coefficients.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub n_lfcc: usize,
    /// Linear filters behind the LFCC (e.g. 70); 0 when `n_lfcc` is 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub n_lfcc_filters: usize,
    /// Deltas of the cepstral blocks (MFCC, and LFCC if present): 0 none, 1 first order,
    /// 2 first and second order (`librosa.feature.delta(order=k)`, Savitzky-Golay).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub deltas: usize,
    /// Delta window in frames (`librosa.feature.delta(width=..., mode="interp")`: odd, >= 3,
    /// at most the frames of a segment; 9 is librosa's default); 0 when `deltas` is 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub delta_width: usize,
    /// Linear log-spectrogram bins per frame (0: no such block): `power_to_db` (with `db_ref`,
    /// `db_amin`, `db_top`, floor over the block's segment) of STFT bins `0..n_log_spec` of the
    /// power spectrum, i.e. 0 Hz up to `(n_log_spec - 1) * sample_rate / n_fft`. Unlike the
    /// mel and LFCC bands it keeps the harmonic fine structure (31.25 Hz bins at 16 kHz, n_fft
    /// 512), where vocoders and neural decoders leave traces that the envelope does not show.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub n_log_spec: usize,
    /// Phase-advance deviation coefficients per frame (0: no such block): per bin, how far the
    /// phase moved between frames against a stationary sinusoid at the bin's centre, weighted
    /// by the bin's level against `db_top` under the segment's maximum, then an orthonormal
    /// DCT-II over the bins, first `n_phase_dev` (see `features::phase`). Vocoders rebuild the
    /// phase from a model; the magnitude features cannot see that.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub n_phase_dev: usize,
    /// LPC order of the excitation block (0: no such block; else 2 floats per frame): the
    /// natural log of the kurtosis of the frame's LPC residual (how pulse-like the source under
    /// the spectral envelope is) and a loud-frame flag (1.0 within 20 dB of the segment's
    /// loudest frame). See `features::excitation`. 16 at 16 kHz (2 + kHz, the textbook order).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub excitation_order: usize,
    /// `n_fft` of the fine kinds' STFT (0: none; then the three fields below are 0 too; else a
    /// multiple of 4 within `max(hop_length, 16)..=16384`): the
    /// same STFT implementation (Hann window of this length, centre zero padding) at the seed's
    /// `hop_length`, so its frame `t` is centred where the seed STFT's frame `t` is and both have
    /// `1 + samples / hop_length` frames; longer than `n_fft` for finer bins (1024 at 16 kHz:
    /// 15.6 Hz over the full 0..8 kHz band). Its log power spectrum `L` is `power_to_db` (with
    /// `db_ref`, `db_amin`, `db_top`, floor over all its bins of the segment). See
    /// `features::fine`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub fine_n_fft: usize,
    /// Spectral fine structure bins per frame (0: no such block): `L` minus its cepstrally
    /// liftered envelope (quefrencies under `fine_lifter` kept), bins `0..n_fine_structure`.
    /// What a neural vocoder leaves between the harmonics, which the envelope features miss.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub n_fine_structure: usize,
    /// Cepstral coefficients of the fine structure's envelope (`1..=fine_n_fft / 2`; 30 keeps
    /// ripples slower than 533 Hz at 16 kHz: formants and tilt, not harmonics); 0 without it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub fine_lifter: usize,
    /// Linear log power spectrum bins of the fine STFT per frame (0: no such block): rows
    /// `0..n_fine_log_spec` of `L`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub n_fine_log_spec: usize,
}

/// Floats per frame of the excitation block when present.
pub const EXCITATION_FLOATS: usize = 2;

/// One block of a frame vector: its name (as in the layout table) and its columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureBlock {
    pub name: &'static str,
    pub columns: std::ops::Range<usize>,
}

impl Default for FeatureSpec {
    fn default() -> Self {
        Self {
            sample_rate: 16_000,
            segment_samples: 32_000,
            min_tail_seconds: 0.5,
            min_audio_seconds: default_min_audio_seconds(),
            n_fft: 512,
            hop_length: 256,
            win_length: 512,
            window: Window::Hann,
            center: true,
            pad_mode: PadMode::Constant,
            n_mels: 64,
            fmin: 0.0,
            fmax: 8000.0,
            mel_scale: Slaney::Slaney,
            mel_norm: Slaney::Slaney,
            power: 2.0,
            db_ref: 1.0,
            db_amin: 1e-10,
            db_top: 80.0,
            n_mfcc: 20,
            n_chroma: 12,
            chroma_tuning: 0.0,
            chroma_norm: ChromaNorm::Inf,
            n_lfcc: 0,
            n_lfcc_filters: 0,
            deltas: 0,
            delta_width: 0,
            n_log_spec: 0,
            n_phase_dev: 0,
            excitation_order: 0,
            fine_n_fft: 0,
            n_fine_structure: 0,
            fine_lifter: 0,
            n_fine_log_spec: 0,
        }
    }
}

impl FeatureSpec {
    /// The seed spec plus 20 LFCC (70 linear filters over 0..8000 Hz, as the ASVspoof LFCC
    /// baseline) and first-order deltas (width 9) of the MFCC and the LFCC: 96 + 20 + 20 + 20 =
    /// 156 floats per frame, the features the anti-spoofing literature finds to generalize
    /// better to unseen TTS engines. Not the default: a trainer opts in.
    pub fn lfcc_deltas() -> Self {
        Self { n_lfcc: 20, n_lfcc_filters: 70, deltas: 1, delta_width: 9, ..Self::default() }
    }

    /// The seed spec plus the linear log-spectrogram of all 257 bins (0..8000 Hz at n_fft 512):
    /// 96 + 257 = 353 floats per frame, for models with a front-end that reads fine spectral
    /// structure (a convolution over time and frequency bins). Not the default: a trainer opts in.
    pub fn log_spec() -> Self {
        Self { n_log_spec: 257, ..Self::default() }
    }

    /// The seed spec plus 30 phase-advance deviation coefficients: 96 + 30 = 126 floats per
    /// frame. Not the default: a trainer opts in.
    pub fn phase_dev() -> Self {
        Self { n_phase_dev: 30, ..Self::default() }
    }

    /// The seed spec plus the excitation block (LPC order 16): 96 + 2 = 98 floats per frame.
    /// Not the default: a trainer opts in.
    pub fn excitation() -> Self {
        Self { excitation_order: 16, ..Self::default() }
    }

    /// The seed spec plus the spectral fine structure of a 1024-point STFT (all 513 bins, 0..8
    /// kHz; lifter 30): 96 + 513 = 609 floats per frame, two streams (the seed's 96, then the
    /// fine structure) per frame at the seed's frames. Not the default: a trainer opts in.
    pub fn fine_structure() -> Self {
        Self { fine_n_fft: 1024, n_fine_structure: 513, fine_lifter: 30, ..Self::default() }
    }

    /// The seed spec plus the linear log power spectrum of a 1024-point STFT (all 513 bins):
    /// 96 + 513 = 609 floats per frame. Not the default: a trainer opts in.
    pub fn fine_log_spec() -> Self {
        Self { fine_n_fft: 1024, n_fine_log_spec: 513, ..Self::default() }
    }

    /// [`Self::fine_structure`] plus 30 phase-advance deviation coefficients (of the seed's
    /// 512-point STFT): 96 + 30 + 513 = 639 floats per frame. Not the default: a trainer opts in.
    pub fn fine_phase() -> Self {
        Self { n_phase_dev: 30, ..Self::fine_structure() }
    }

    /// Columns of the excitation block (0 without it).
    pub fn n_excitation(&self) -> usize {
        if self.excitation_order > 0 { EXCITATION_FLOATS } else { 0 }
    }

    /// Floats per frame: the sum of the blocks of [`Self::layout`] (96 for the seed spec).
    pub fn n_features(&self) -> usize {
        self.n_mfcc
            + self.n_chroma
            + self.n_mels
            + self.n_lfcc
            + self.n_log_spec
            + self.n_phase_dev
            + self.n_excitation()
            + self.n_fine_structure
            + self.n_fine_log_spec
            + self.deltas * (self.n_mfcc + self.n_lfcc)
    }

    /// The frame vector's blocks in order, contiguous from column 0 to [`Self::n_features`];
    /// absent (empty) blocks are left out. See the layout table on [`FeatureSpec`].
    pub fn layout(&self) -> Vec<FeatureBlock> {
        let mut sizes = vec![
            ("mfcc", self.n_mfcc),
            ("chroma", self.n_chroma),
            ("log_mel", self.n_mels),
            ("lfcc", self.n_lfcc),
            ("log_spec", self.n_log_spec),
            ("phase_dev", self.n_phase_dev),
            ("excitation", self.n_excitation()),
            ("fine_structure", self.n_fine_structure),
            ("fine_log_spec", self.n_fine_log_spec),
        ];
        const DELTA_NAMES: [[&str; 2]; MAX_DELTA_ORDER] =
            [["delta_mfcc", "delta_lfcc"], ["delta2_mfcc", "delta2_lfcc"]];
        for names in DELTA_NAMES.iter().take(self.deltas) {
            sizes.extend([(names[0], self.n_mfcc), (names[1], self.n_lfcc)]);
        }
        let mut start = 0;
        sizes
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(name, n)| {
                start += n;
                FeatureBlock { name, columns: start - n..start }
            })
            .collect()
    }

    /// The columns of block `name` of [`Self::layout`], if the spec has it.
    pub fn block(&self, name: &str) -> Option<std::ops::Range<usize>> {
        self.layout().into_iter().find(|b| b.name == name).map(|b| b.columns)
    }

    /// STFT frames for `n_samples` samples (`center = true`): `1 + n / hop`.
    pub fn frames_for(&self, n_samples: usize) -> usize {
        1 + n_samples / self.hop_length
    }

    /// Frames in one full segment (126 for the default spec).
    pub fn frames_per_segment(&self) -> usize {
        self.frames_for(self.segment_samples)
    }

    /// The model's segments of `n_samples` of audio: windows of `segment_samples` every
    /// `step_samples` (use `segment_samples` for non-overlapping), the tail by
    /// `min_tail_seconds`; none for audio under `min_audio_seconds` (see `check_duration`).
    pub fn segments(&self, n_samples: usize, step_samples: usize) -> Vec<crate::audio::Segment> {
        if self.check_duration(n_samples).is_err() {
            return Vec::new();
        }
        let min_tail = (self.min_tail_seconds * f64::from(self.sample_rate)).round() as usize;
        crate::audio::segment_plan(n_samples, self.segment_samples, step_samples, min_tail)
    }

    /// `audio_too_short` for audio under `min_audio_seconds`: the one rule that trainer,
    /// evaluation and server apply before segmenting.
    pub fn check_duration(&self, n_samples: usize) -> Result<(), crate::AudioError> {
        let seconds = n_samples as f64 / f64::from(self.sample_rate);
        if seconds < self.min_audio_seconds {
            return Err(crate::AudioError::TooShort { seconds, min: self.min_audio_seconds });
        }
        Ok(())
    }

    /// Segment length in seconds.
    pub fn segment_seconds(&self) -> f64 {
        self.segment_samples as f64 / f64::from(self.sample_rate)
    }

    /// Checks that the spec is one this extractor implements exactly; the error names the field.
    pub fn validate(&self) -> Result<(), FeatureError> {
        let bad = |field: &'static str, reason: String| Err(FeatureError::InvalidSpec { field, reason });
        let nyquist = f64::from(self.sample_rate) / 2.0;
        if !(1000..=192_000).contains(&self.sample_rate) {
            return bad("sample_rate", format!("{} Hz is outside 1000..=192000", self.sample_rate));
        }
        // Sizes first, before anything below multiplies them (a manifest may say 2^64 - 1).
        if self.segment_samples > limits::MAX_SEGMENT_SAMPLES || self.segment_seconds() > limits::MAX_SEGMENT_SECONDS {
            return bad(
                "segment_samples",
                format!(
                    "{} is over the limit MAX_SEGMENT_SAMPLES ({}) or MAX_SEGMENT_SECONDS ({} s at {} Hz)",
                    self.segment_samples,
                    limits::MAX_SEGMENT_SAMPLES,
                    limits::MAX_SEGMENT_SECONDS,
                    self.sample_rate
                ),
            );
        }
        if self.n_fft < 16 || self.n_fft > 1 << 16 || !self.n_fft.is_multiple_of(2) {
            return bad("n_fft", format!("{} must be even and within 16..=65536", self.n_fft));
        }
        if self.win_length != self.n_fft {
            return bad("win_length", format!("{} must equal n_fft ({})", self.win_length, self.n_fft));
        }
        if self.hop_length == 0 || self.hop_length > self.n_fft {
            return bad("hop_length", format!("{} must be within 1..=n_fft", self.hop_length));
        }
        let frames = self.frames_per_segment();
        if frames > limits::MAX_FRAMES {
            return bad(
                "hop_length",
                format!(
                    "{frames} frames per segment (segment_samples / hop_length + 1) is over the limit MAX_FRAMES ({})",
                    limits::MAX_FRAMES
                ),
            );
        }
        // Each block is bounded below; their sum is checked once all of them are.
        for (field, n) in [
            ("n_mels", self.n_mels),
            ("n_mfcc", self.n_mfcc),
            ("n_chroma", self.n_chroma),
            ("n_lfcc", self.n_lfcc),
            ("n_log_spec", self.n_log_spec),
            ("n_phase_dev", self.n_phase_dev),
            ("n_fine_structure", self.n_fine_structure),
            ("n_fine_log_spec", self.n_fine_log_spec),
        ] {
            if n > limits::MAX_FEATURES {
                return bad(field, format!("{n} is over the limit MAX_FEATURES ({})", limits::MAX_FEATURES));
            }
        }
        if !self.center {
            return bad("center", "only center = true is implemented".into());
        }
        if self.segment_samples < self.n_fft {
            return bad("segment_samples", format!("{} is shorter than n_fft", self.segment_samples));
        }
        if !(self.min_tail_seconds >= 0.0 && self.min_tail_seconds <= self.segment_seconds()) {
            return bad("min_tail_seconds", format!("{} must be within 0..=segment length", self.min_tail_seconds));
        }
        if !(self.min_audio_seconds > 0.0 && self.min_audio_seconds <= self.segment_seconds()) {
            return bad("min_audio_seconds", format!("{} must be within (0, segment length]", self.min_audio_seconds));
        }
        if self.n_mels == 0 || self.n_mels > 512 {
            return bad("n_mels", format!("{} must be within 1..=512", self.n_mels));
        }
        if !(self.fmin >= 0.0 && self.fmin < self.fmax && self.fmax <= nyquist) {
            return bad("fmax", format!("need 0 <= fmin ({}) < fmax ({}) <= {nyquist}", self.fmin, self.fmax));
        }
        if self.power != 2.0 {
            return bad("power", format!("{} is not implemented (only 2.0)", self.power));
        }
        if !(self.db_amin > 0.0 && self.db_ref > 0.0 && self.db_top >= 0.0) {
            return bad("db_amin", "db_amin and db_ref must be > 0, db_top >= 0".into());
        }
        if self.n_mfcc == 0 || self.n_mfcc > self.n_mels {
            return bad("n_mfcc", format!("{} must be within 1..=n_mels", self.n_mfcc));
        }
        if self.n_chroma != 12 {
            return bad("n_chroma", format!("{} is not implemented (only 12)", self.n_chroma));
        }
        if !self.chroma_tuning.is_finite() || self.chroma_tuning.abs() > 0.5 {
            return bad("chroma_tuning", format!("{} must be within -0.5..=0.5", self.chroma_tuning));
        }
        if self.n_lfcc == 0 && self.n_lfcc_filters != 0 {
            return bad("n_lfcc_filters", format!("{} must be 0 without LFCC (n_lfcc 0)", self.n_lfcc_filters));
        }
        if self.n_lfcc > 0 && !(1..=512).contains(&self.n_lfcc_filters) {
            return bad("n_lfcc_filters", format!("{} must be within 1..=512", self.n_lfcc_filters));
        }
        if self.n_lfcc > self.n_lfcc_filters {
            return bad(
                "n_lfcc",
                format!("{} must be within 0..=n_lfcc_filters ({})", self.n_lfcc, self.n_lfcc_filters),
            );
        }
        let n_bins = self.n_fft / 2 + 1;
        if self.n_log_spec > n_bins {
            return bad("n_log_spec", format!("{} must be within 0..=n_fft / 2 + 1 ({n_bins})", self.n_log_spec));
        }
        if self.n_phase_dev > n_bins {
            return bad("n_phase_dev", format!("{} must be within 0..=n_fft / 2 + 1 ({n_bins})", self.n_phase_dev));
        }
        if self.fine_n_fft == 0 {
            for (field, n) in [
                ("n_fine_structure", self.n_fine_structure),
                ("fine_lifter", self.fine_lifter),
                ("n_fine_log_spec", self.n_fine_log_spec),
            ] {
                if n != 0 {
                    return bad(field, format!("{n} must be 0 without the fine STFT (fine_n_fft 0)"));
                }
            }
        } else {
            if self.fine_n_fft < self.hop_length.max(16)
                || self.fine_n_fft > 1 << 14
                || !self.fine_n_fft.is_multiple_of(4)
            {
                return bad(
                    "fine_n_fft",
                    format!("{} must be a multiple of 4 within max(hop_length, 16)..=16384", self.fine_n_fft),
                );
            }
            let fine_bins = self.fine_n_fft / 2 + 1;
            if self.n_fine_structure == 0 && self.n_fine_log_spec == 0 {
                return bad(
                    "fine_n_fft",
                    format!("{}: neither n_fine_structure nor n_fine_log_spec uses it", self.fine_n_fft),
                );
            }
            for (field, n) in [("n_fine_structure", self.n_fine_structure), ("n_fine_log_spec", self.n_fine_log_spec)] {
                if n > fine_bins {
                    return bad(field, format!("{n} must be within 0..=fine_n_fft / 2 + 1 ({fine_bins})"));
                }
            }
            let max_lifter = self.fine_n_fft / 2;
            if self.n_fine_structure > 0 && !(1..=max_lifter).contains(&self.fine_lifter) {
                return bad(
                    "fine_lifter",
                    format!("{} must be within 1..=fine_n_fft / 2 ({max_lifter})", self.fine_lifter),
                );
            }
            if self.n_fine_structure == 0 && self.fine_lifter != 0 {
                return bad("fine_lifter", format!("{} must be 0 without the fine structure", self.fine_lifter));
            }
        }
        // The residual of a frame's central hop reaches `order + 1` samples back: it must stay
        // inside the frame's share of the centre padding.
        let reach = (self.n_fft - self.hop_length) / 2;
        if self.excitation_order > 64 || (self.excitation_order > 0 && self.excitation_order + 1 > reach) {
            return bad(
                "excitation_order",
                format!(
                    "{} must be within 0..=64 and at most (n_fft - hop_length) / 2 - 1 ({})",
                    self.excitation_order,
                    reach.saturating_sub(1)
                ),
            );
        }
        if self.deltas > MAX_DELTA_ORDER {
            return bad("deltas", format!("{} is not implemented (0, 1 or 2)", self.deltas));
        }
        if self.deltas == 0 && self.delta_width != 0 {
            return bad("delta_width", format!("{} must be 0 without deltas (deltas 0)", self.delta_width));
        }
        let n_features = self.n_features();
        if n_features > limits::MAX_FEATURES {
            return bad(
                "n_features",
                format!("{n_features} floats per frame is over the limit MAX_FEATURES ({})", limits::MAX_FEATURES),
            );
        }
        if frames * n_features > limits::MAX_SEGMENT_FLOATS {
            return bad(
                "segment_samples",
                format!(
                    "{frames} frames x {n_features} features is over the limit MAX_SEGMENT_FLOATS ({}) per segment",
                    limits::MAX_SEGMENT_FLOATS
                ),
            );
        }
        if self.deltas > 0 && (self.delta_width < 3 || self.delta_width.is_multiple_of(2) || self.delta_width > frames)
        {
            return bad(
                "delta_width",
                format!("{} must be odd, >= 3 and <= the frames of a segment ({frames})", self.delta_width),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_is_valid_and_has_126_frames_of_96() {
        let s = FeatureSpec::default();
        s.validate().unwrap();
        assert_eq!(s.frames_per_segment(), 126);
        assert_eq!(s.n_features(), 96);
    }

    #[test]
    fn spec_json_round_trips_and_rejects_unknown_fields() {
        let s = FeatureSpec::default();
        let j = serde_json::to_string(&s).unwrap();
        assert!(j.contains("\"window\":\"hann\""), "{j}");
        assert_eq!(serde_json::from_str::<FeatureSpec>(&j).unwrap(), s);
        let extra = j.replacen('{', "{\"bogus\":1,", 1);
        assert!(serde_json::from_str::<FeatureSpec>(&extra).is_err());
    }

    #[test]
    fn segments_apply_the_tail_rule_in_samples() {
        let s = FeatureSpec::default();
        // 4.25 s: two full segments, the 0.25 s tail is under 0.5 s and not scored again.
        assert_eq!(s.segments(68_000, s.segment_samples).len(), 2);
        // 4.5 s: the tail is scored by a full window aligned to the end (2.5..4.5 s).
        let last = s.segments(72_000, s.segment_samples).last().copied().unwrap();
        assert_eq!((last.start, last.valid), (40_000, 32_000));
        // Under a second: too short to judge; 1.5 s: one padded window.
        assert!(s.segments(15_999, s.segment_samples).is_empty());
        let e = s.check_duration(1).unwrap_err();
        assert_eq!(e.name(), "audio_too_short");
        assert_eq!(s.segments(24_000, s.segment_samples), vec![crate::audio::Segment { start: 0, valid: 24_000 }]);
        // Manifests from before `min_audio_seconds` read it as the default.
        let mut old = serde_json::to_value(&s).unwrap();
        old.as_object_mut().unwrap().remove("min_audio_seconds");
        let back: FeatureSpec = serde_json::from_value(old).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn lfcc_deltas_spec_has_156_features_in_the_documented_order() {
        let s = FeatureSpec::lfcc_deltas();
        s.validate().unwrap();
        assert_eq!(s.n_features(), 156);
        let layout: Vec<(&str, std::ops::Range<usize>)> = s.layout().into_iter().map(|b| (b.name, b.columns)).collect();
        assert_eq!(
            layout,
            vec![
                ("mfcc", 0..20),
                ("chroma", 20..32),
                ("log_mel", 32..96),
                ("lfcc", 96..116),
                ("delta_mfcc", 116..136),
                ("delta_lfcc", 136..156)
            ]
        );
        let s2 = FeatureSpec { deltas: 2, ..s.clone() };
        assert_eq!(s2.n_features(), 196);
        assert_eq!(s2.block("delta2_mfcc"), Some(156..176));
        assert_eq!(s2.block("delta2_lfcc"), Some(176..196));
        // Deltas without LFCC: of the MFCC only.
        let d = FeatureSpec { deltas: 1, delta_width: 9, ..FeatureSpec::default() };
        d.validate().unwrap();
        assert_eq!(d.n_features(), 116);
        assert_eq!(d.block("delta_lfcc"), None);
        assert_eq!(d.layout().last().unwrap().columns, 96..116);
        // The seed layout.
        let seed = FeatureSpec::default();
        assert_eq!(seed.layout().iter().map(|b| b.name).collect::<Vec<_>>(), ["mfcc", "chroma", "log_mel"]);
        assert_eq!(seed.layout().last().unwrap().columns.end, seed.n_features());
        // The linear log-spectrogram sits after the LFCC and before the deltas.
        let ls = FeatureSpec::log_spec();
        ls.validate().unwrap();
        assert_eq!(ls.n_features(), 353);
        assert_eq!(ls.block("log_spec"), Some(96..353));
        let all = FeatureSpec { n_log_spec: 129, ..FeatureSpec::lfcc_deltas() };
        all.validate().unwrap();
        assert_eq!(
            all.layout().iter().map(|b| b.name).collect::<Vec<_>>(),
            ["mfcc", "chroma", "log_mel", "lfcc", "log_spec", "delta_mfcc", "delta_lfcc"]
        );
        assert_eq!((all.block("log_spec"), all.n_features()), (Some(116..245), 285));
        let ph = FeatureSpec { n_phase_dev: 30, ..all };
        assert_eq!(
            (ph.block("phase_dev"), ph.block("delta_mfcc"), ph.n_features()),
            (Some(245..275), Some(275..295), 315)
        );
        assert_eq!(FeatureSpec::phase_dev().n_features(), 126);
        // The excitation block comes after the phase deviation and before the deltas.
        let ex = FeatureSpec { excitation_order: 16, ..ph };
        assert_eq!(
            (ex.block("excitation"), ex.block("delta_mfcc"), ex.n_features()),
            (Some(275..277), Some(277..297), 317)
        );
        assert_eq!(FeatureSpec::excitation().n_features(), 98);
        assert_eq!(FeatureSpec::excitation().block("excitation"), Some(96..98));
    }

    #[test]
    fn manifests_without_the_new_fields_parse_to_the_seed_spec_and_serialize_unchanged() {
        // The bundled versions' manifests, verbatim (written before the optional kinds existed).
        for manifest in [
            include_str!("../../../models/vericlip-lstm/1/manifest.json"),
            include_str!("../../../models/vericlip-lstm/2/manifest.json"),
        ] {
            let old = serde_json::from_str::<serde_json::Value>(manifest).unwrap()["feature_spec"].clone();
            let s: FeatureSpec = serde_json::from_value(old.clone()).unwrap();
            assert_eq!(s, FeatureSpec::default());
            assert_eq!((s.n_lfcc, s.n_lfcc_filters, s.deltas, s.delta_width), (0, 0, 0, 0));
            assert_eq!(s.n_features(), 96);
            // The absent kinds are not written: the seed spec's JSON (and the feature cache key
            // derived from it) is what it was, plus `min_audio_seconds`, which these predate.
            let mut j = serde_json::to_value(&s).unwrap();
            assert!(j.as_object_mut().unwrap().remove("min_audio_seconds").is_some());
            assert_eq!(j, old);
        }
        // The rich spec writes them and reads back equal; unknown fields are still refused.
        let rich = serde_json::to_string(&FeatureSpec::lfcc_deltas()).unwrap();
        assert!(rich.contains("\"n_lfcc\":20") && rich.contains("\"delta_width\":9"), "{rich}");
        assert_eq!(serde_json::from_str::<FeatureSpec>(&rich).unwrap(), FeatureSpec::lfcc_deltas());
        assert!(serde_json::from_str::<FeatureSpec>(&rich.replacen("n_lfcc\"", "n_lfccs\"", 1)).is_err());
    }

    #[test]
    fn bundled_manifests_parse_and_write_back_unchanged_and_have_no_fine_kinds() {
        // Versions 1-4 as bundled: the fine kinds' fields are absent, read as 0 and not written.
        for (manifest, want) in [
            (include_str!("../../../models/vericlip-lstm/1/manifest.json"), FeatureSpec::default()),
            (include_str!("../../../models/vericlip-lstm/2/manifest.json"), FeatureSpec::default()),
            (include_str!("../../../models/vericlip-lstm/3/manifest.json"), FeatureSpec::lfcc_deltas()),
            (include_str!("../../../models/vericlip-lstm/4/manifest.json"), FeatureSpec::default()),
        ] {
            let old = serde_json::from_str::<serde_json::Value>(manifest).unwrap()["feature_spec"].clone();
            let s: FeatureSpec = serde_json::from_value(old.clone()).unwrap();
            assert_eq!(s, want);
            assert_eq!((s.fine_n_fft, s.n_fine_structure, s.fine_lifter, s.n_fine_log_spec), (0, 0, 0, 0));
            assert!(s.layout().iter().all(|b| !b.name.starts_with("fine")));
            let mut j = serde_json::to_value(&s).unwrap();
            if old.get("min_audio_seconds").is_none() {
                j.as_object_mut().unwrap().remove("min_audio_seconds");
            }
            assert_eq!(j, old);
        }
    }

    #[test]
    fn fine_kinds_sit_after_the_excitation_and_round_trip_through_json() {
        let fs = FeatureSpec::fine_structure();
        fs.validate().unwrap();
        assert_eq!((fs.n_features(), fs.block("fine_structure")), (609, Some(96..609)));
        assert_eq!(fs.frames_per_segment(), 126, "the seed's frames");
        let fl = FeatureSpec::fine_log_spec();
        fl.validate().unwrap();
        assert_eq!((fl.n_features(), fl.block("fine_log_spec")), (609, Some(96..609)));
        let fp = FeatureSpec::fine_phase();
        fp.validate().unwrap();
        assert_eq!(
            (fp.block("phase_dev"), fp.block("fine_structure"), fp.n_features()),
            (Some(96..126), Some(126..639), 639)
        );
        let all = FeatureSpec {
            n_fine_log_spec: 100,
            excitation_order: 16,
            ..FeatureSpec { deltas: 1, delta_width: 9, ..FeatureSpec::fine_phase() }
        };
        all.validate().unwrap();
        assert_eq!(
            all.layout().iter().map(|b| b.name).collect::<Vec<_>>(),
            ["mfcc", "chroma", "log_mel", "phase_dev", "excitation", "fine_structure", "fine_log_spec", "delta_mfcc"]
        );
        assert_eq!((all.block("fine_log_spec"), all.n_features()), (Some(641..741), 761));
        for s in [fs, fl, fp, all] {
            let j = serde_json::to_string(&s).unwrap();
            assert!(j.contains("\"fine_n_fft\":1024"), "{j}");
            assert_eq!(serde_json::from_str::<FeatureSpec>(&j).unwrap(), s);
        }
    }

    #[test]
    fn invalid_fine_kinds_name_the_field() {
        let field = |s: FeatureSpec| match s.validate() {
            Err(FeatureError::InvalidSpec { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        let fs = FeatureSpec::fine_structure();
        let d = FeatureSpec::default();
        assert_eq!(field(FeatureSpec { n_fine_structure: 10, ..d.clone() }), "n_fine_structure");
        assert_eq!(field(FeatureSpec { fine_lifter: 10, ..d.clone() }), "fine_lifter");
        assert_eq!(field(FeatureSpec { n_fine_log_spec: 10, ..d.clone() }), "n_fine_log_spec");
        assert_eq!(field(FeatureSpec { fine_n_fft: 1024, ..d }), "fine_n_fft");
        assert_eq!(field(FeatureSpec { fine_n_fft: 1023, ..fs.clone() }), "fine_n_fft");
        assert_eq!(field(FeatureSpec { fine_n_fft: 1026, ..fs.clone() }), "fine_n_fft");
        assert_eq!(field(FeatureSpec { fine_n_fft: 128, n_fine_structure: 65, ..fs.clone() }), "fine_n_fft");
        assert_eq!(field(FeatureSpec { fine_n_fft: 1 << 15, ..fs.clone() }), "fine_n_fft");
        assert_eq!(field(FeatureSpec { n_fine_structure: 514, ..fs.clone() }), "n_fine_structure");
        assert_eq!(field(FeatureSpec { n_fine_log_spec: 514, ..fs.clone() }), "n_fine_log_spec");
        assert_eq!(field(FeatureSpec { fine_lifter: 0, ..fs.clone() }), "fine_lifter");
        assert_eq!(field(FeatureSpec { fine_lifter: 513, ..fs.clone() }), "fine_lifter");
        assert_eq!(field(FeatureSpec { fine_lifter: 3, ..FeatureSpec::fine_log_spec() }), "fine_lifter");
        assert_eq!(field(FeatureSpec { n_fine_structure: usize::MAX, ..fs.clone() }), "n_fine_structure");
        FeatureSpec { fine_lifter: 512, n_fine_structure: 20, ..fs }.validate().unwrap();
    }

    #[test]
    fn invalid_optional_kinds_name_the_field() {
        let rich = FeatureSpec::lfcc_deltas();
        let field = |s: FeatureSpec| match s.validate() {
            Err(FeatureError::InvalidSpec { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(FeatureSpec { n_lfcc: 71, ..rich.clone() }), "n_lfcc");
        assert_eq!(field(FeatureSpec { n_lfcc_filters: 0, ..rich.clone() }), "n_lfcc_filters");
        assert_eq!(field(FeatureSpec { n_lfcc: 0, ..rich.clone() }), "n_lfcc_filters");
        assert_eq!(field(FeatureSpec { deltas: 3, ..rich.clone() }), "deltas");
        assert_eq!(field(FeatureSpec { deltas: 0, ..rich.clone() }), "delta_width");
        assert_eq!(field(FeatureSpec { delta_width: 8, ..rich.clone() }), "delta_width");
        assert_eq!(field(FeatureSpec { delta_width: 1, ..rich.clone() }), "delta_width");
        assert_eq!(field(FeatureSpec { delta_width: 127, ..rich.clone() }), "delta_width");
        FeatureSpec { delta_width: 125, ..rich }.validate().unwrap();
        assert_eq!(field(FeatureSpec { n_log_spec: 258, ..FeatureSpec::log_spec() }), "n_log_spec");
        assert_eq!(field(FeatureSpec { n_phase_dev: 258, ..FeatureSpec::phase_dev() }), "n_phase_dev");
        assert_eq!(field(FeatureSpec { excitation_order: 65, ..FeatureSpec::excitation() }), "excitation_order");
        FeatureSpec::excitation().validate().unwrap();
    }

    #[test]
    fn absurd_sizes_are_refused_naming_the_limit_without_overflow() {
        let limit = |s: FeatureSpec| match s.validate() {
            Err(FeatureError::InvalidSpec { field, reason }) => (field, reason),
            other => panic!("{other:?}"),
        };
        let d = FeatureSpec::default();
        for n in [1_000_000_000_000, usize::MAX, limits::MAX_SEGMENT_SAMPLES + 1] {
            let (field, reason) = limit(FeatureSpec { segment_samples: n, ..d.clone() });
            assert_eq!(field, "segment_samples");
            assert!(reason.contains("MAX_SEGMENT_SAMPLES"), "{reason}");
        }
        // 61 s at 16 kHz is under the sample limit but over the seconds one.
        let (_, reason) = limit(FeatureSpec { segment_samples: 61 * 16_000, ..d.clone() });
        assert!(reason.contains("MAX_SEGMENT_SECONDS"), "{reason}");
        let (field, reason) = limit(FeatureSpec { segment_samples: 60 * 16_000, hop_length: 16, ..d.clone() });
        assert_eq!(field, "hop_length");
        assert!(reason.contains("MAX_FRAMES"), "{reason}");
        let (field, reason) = limit(FeatureSpec { n_log_spec: usize::MAX, ..d.clone() });
        assert_eq!(field, "n_log_spec");
        assert!(reason.contains("MAX_FEATURES"), "{reason}");
        // Within every per-block limit, too many floats per segment in all.
        let wide = FeatureSpec {
            segment_samples: 60 * 16_000,
            n_fft: 4096,
            win_length: 4096,
            hop_length: 64,
            n_log_spec: 2049,
            ..d
        };
        let (field, reason) = limit(wide);
        assert_eq!(field, "segment_samples");
        assert!(reason.contains("MAX_SEGMENT_FLOATS"), "{reason}");
    }

    #[test]
    fn invalid_spec_names_the_field() {
        let s = FeatureSpec { n_chroma: 24, ..FeatureSpec::default() };
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("n_chroma"), "{e}");
        let s = FeatureSpec { fmax: 9000.0, ..FeatureSpec::default() };
        assert!(s.validate().unwrap_err().to_string().contains("fmax"));
    }
}
