//! Per-clip cost of the core pipeline on a 2 s, 16 kHz clip: WAV decode, features (the seed
//! spec, `FeatureSpec::lfcc_deltas` with first- and second-order deltas, `log_spec` and
//! `phase_dev`, `excitation`, and the fine kinds of issue 31: `fine_structure`, `fine_log_spec`,
//! `fine_phase`), both, and
//! resampling from 44.1 kHz. `cargo bench -p vericlip-core --bench features`.

use std::hint::black_box;
use std::io::Cursor;

use criterion::{Criterion, criterion_group, criterion_main};
use vericlip_core::audio::{AudioInput, AudioLimits, load_mono, resample};
use vericlip_core::{FeatureExtractor, FeatureSpec};

/// A voiced, speech-like 2 s signal: a gliding harmonic series with a little noise.
fn clip(rate: u32) -> Vec<f32> {
    let n = 2 * rate as usize;
    let mut seed = 1u32;
    (0..n)
        .map(|i| {
            let t = i as f32 / rate as f32;
            let f0 = 110.0 + 30.0 * (2.0 * std::f32::consts::PI * 0.7 * t).sin();
            let voiced: f32 = (1..12).map(|h| (2.0 * std::f32::consts::PI * f0 * h as f32 * t).sin() / h as f32).sum();
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            0.2 * voiced + 0.01 * ((seed >> 8) as f32 / 8_388_608.0 - 1.0)
        })
        .collect()
}

fn wav_bytes(samples: &[f32], rate: u32) -> Vec<u8> {
    let spec =
        hound::WavSpec { channels: 1, sample_rate: rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut cursor = Cursor::new(Vec::new());
    let mut w = hound::WavWriter::new(&mut cursor, spec).expect("wav writer");
    for s in samples {
        w.write_sample((s * 32767.0) as i16).expect("write sample");
    }
    w.finalize().expect("finalize");
    cursor.into_inner()
}

fn bench(c: &mut Criterion) {
    let spec = FeatureSpec::default();
    let ex = FeatureExtractor::new(spec.clone()).expect("extractor");
    let samples = clip(16_000);
    let wav = wav_bytes(&samples, 16_000);
    let limits = AudioLimits::default();
    let mut scratch = ex.scratch();
    let mut out = Vec::new();

    c.bench_function("decode_wav_2s", |b| {
        b.iter(|| load_mono(AudioInput::Encoded(black_box(&wav)), 16_000, &limits).expect("decode"))
    });
    c.bench_function("features_2s", |b| {
        b.iter(|| ex.extract_into(black_box(&samples), &mut scratch, &mut out).expect("features"))
    });
    for (name, spec) in [
        ("features_2s_lfcc_deltas", FeatureSpec::lfcc_deltas()),
        ("features_2s_lfcc_deltas2", FeatureSpec { deltas: 2, ..FeatureSpec::lfcc_deltas() }),
        ("features_2s_log_spec", FeatureSpec::log_spec()),
        ("features_2s_phase_dev", FeatureSpec::phase_dev()),
        ("features_2s_excitation", FeatureSpec::excitation()),
        ("features_2s_fine_structure", FeatureSpec::fine_structure()),
        ("features_2s_fine_log_spec", FeatureSpec::fine_log_spec()),
        ("features_2s_fine_phase", FeatureSpec::fine_phase()),
    ] {
        let rich = FeatureExtractor::new(spec).expect("extractor");
        let mut scratch = rich.scratch();
        c.bench_function(name, |b| {
            b.iter(|| rich.extract_into(black_box(&samples), &mut scratch, &mut out).expect("features"))
        });
    }
    c.bench_function("decode_and_features_2s", |b| {
        b.iter(|| {
            let a = load_mono(AudioInput::Encoded(black_box(&wav)), 16_000, &limits).expect("decode");
            ex.extract_into(&a.samples, &mut scratch, &mut out).expect("features");
        })
    });
    let hi = clip(44_100);
    c.bench_function("resample_44k1_to_16k_2s", |b| {
        b.iter(|| resample(black_box(&hi), 44_100, 16_000).expect("resample"))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
