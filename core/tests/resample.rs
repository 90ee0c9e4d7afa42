//! Resampling quality: the same band-limited signal generated at 44.1 kHz and at 8 kHz, resampled
//! to 16 kHz, must equal that signal generated at 16 kHz, sample for sample and in its features.

use vericlip_core::audio::resample;
use vericlip_core::{FeatureExtractor, FeatureSpec};

/// Tones and a slow chirp, all below 3.6 kHz so an 8 kHz recording holds the whole signal.
fn signal(rate: u32, seconds: f64) -> Vec<f32> {
    let n = (seconds * f64::from(rate)).round() as usize;
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            let chirp = (2.0 * std::f64::consts::PI * (300.0 * t + 400.0 * t * t)).sin();
            (0.3 * (2.0 * std::f64::consts::PI * 220.0 * t).sin()
                + 0.2 * (2.0 * std::f64::consts::PI * 1234.5 * t).sin()
                + 0.1 * (2.0 * std::f64::consts::PI * 3300.0 * t).sin()
                + 0.2 * chirp) as f32
        })
        .collect()
}

#[test]
fn resampled_audio_matches_native_16k() {
    let want = signal(16_000, 3.0);
    let ex = FeatureExtractor::new(FeatureSpec::default()).unwrap();
    let want_feats = ex.extract(&want[8_000..40_000]).unwrap();
    for rate in [44_100, 8_000, 22_050, 48_000] {
        let got = resample(&signal(rate, 3.0), rate, 16_000).unwrap();
        assert_eq!(got.len(), want.len(), "{rate} Hz: length");
        // Ignore the first/last 50 ms, where the resampler sees the signal's hard edges.
        let (a, b) = (&got[800..got.len() - 800], &want[800..want.len() - 800]);
        let max = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(max < 2e-3, "{rate} Hz -> 16 kHz: max sample error {max}");
        let got_feats = ex.extract(&got[8_000..40_000]).unwrap();
        let logmel_err = got_feats
            .rows()
            .into_iter()
            .zip(want_feats.rows())
            .flat_map(|(g, w)| (32..96).filter(|&c| w[c] > -40.0).map(|c| (g[c] - w[c]).abs()).collect::<Vec<_>>())
            .fold(0f32, f32::max);
        assert!(logmel_err < 0.1, "{rate} Hz: log-mel error {logmel_err} dB in bands within 40 dB of 0 dB");
    }
}

#[test]
fn same_rate_is_untouched() {
    let x = signal(16_000, 0.1);
    assert_eq!(resample(&x, 16_000, 16_000).unwrap(), x);
}
