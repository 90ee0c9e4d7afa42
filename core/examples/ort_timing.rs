//! ONNX Runtime CPU time per 2 s segment of a registry model version, by batch size and
//! session options (issue 11: "ONNX Runtime per-segment cost vs batch size measured; session
//! options chosen by measurement").
//!
//! usage: ort_timing MODEL_DIR [BATCHES] [ROUNDS]
//!   MODEL_DIR: e.g. models/vericlip-lstm/2; BATCHES: comma list (default 1,2,4,8,16,32);
//!   ROUNDS: rounds per cell (default 7).
//!
//! Variants: `server` is core's `ModelSession` exactly as the server builds it; the others are
//! ONNX Runtime sessions built here with one option changed from it. Rounds go round-robin
//! over batch sizes and variants, so load from other jobs on a shared machine falls on every
//! cell alike; each cell is the median round's CPU time per segment (the process's CPU time:
//! one intra-op thread runs on the caller's thread), in microseconds.

// ort's builder methods return its own (large) error type; the closures here pass it through.
#![allow(clippy::result_large_err)]

use std::time::{Duration, Instant};

use ndarray::{Array3, ArrayView3};
use ort::session::Session;
use ort::session::builder::{BuilderResult, GraphOptimizationLevel, SessionBuilder};
use ort::value::TensorRef;
use vericlip_core::registry::load_version;
use vericlip_core::runtime::{self, INPUT_NAME, ModelSession, OUTPUT_NAME};

fn cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_PROCESS_CPUTIME_ID always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

enum Runner {
    Server(ModelSession),
    Raw(Session),
}

impl Runner {
    fn run(&mut self, x: ArrayView3<'_, f32>) -> Vec<f32> {
        match self {
            Runner::Server(s) => s.run(x).expect("inference"),
            Runner::Raw(s) => {
                let input = TensorRef::from_array_view(x).expect("tensor");
                let out = s.run(ort::inputs![INPUT_NAME => input]).expect("inference");
                out[OUTPUT_NAME].try_extract_tensor::<f32>().expect("output").1.to_vec()
            }
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = args.first().ok_or("usage: ort_timing MODEL_DIR [BATCHES] [ROUNDS]")?;
    let batches: Vec<usize> =
        args.get(1).map_or("1,2,4,8,16,32", String::as_str).split(',').map(str::parse).collect::<Result<_, _>>()?;
    let rounds: usize = args.get(2).map_or(Ok(7), |r| r.parse())?;
    let v = load_version(std::path::Path::new(dir))?;
    let spec = &v.manifest.feature_spec;
    let (frames, nf) = (spec.frames_per_segment(), spec.n_features());
    let rt = runtime::init(None)?;
    let env = rt.environment();
    let raw = |f: &dyn Fn(SessionBuilder) -> BuilderResult| -> Result<Session, Box<dyn std::error::Error>> {
        let s = |e: &dyn std::fmt::Display| e.to_string();
        let b = Session::builder(env)?.with_intra_threads(1).map_err(|e| s(&e))?;
        let b = b.with_intra_op_spinning(false).map_err(|e| s(&e))?;
        Ok(f(b).map_err(|e| s(&e))?.commit_from_memory(&v.model_onnx)?)
    };
    type Build<'a> = Box<dyn Fn() -> Result<Runner, Box<dyn std::error::Error>> + 'a>;
    let variants: Vec<(&str, Build)> = vec![
        ("server", Box::new(|| Ok(Runner::Server(ModelSession::from_bytes(rt, &v.model_onnx)?)))),
        ("raw-default", Box::new(|| Ok(Runner::Raw(raw(&Ok)?)))),
        (
            "opt-disable",
            Box::new(|| Ok(Runner::Raw(raw(&|b| b.with_optimization_level(GraphOptimizationLevel::Disable))?))),
        ),
        (
            "opt-level1",
            Box::new(|| Ok(Runner::Raw(raw(&|b| b.with_optimization_level(GraphOptimizationLevel::Level1))?))),
        ),
        ("opt-all", Box::new(|| Ok(Runner::Raw(raw(&|b| b.with_optimization_level(GraphOptimizationLevel::All))?)))),
        ("no-mem-pattern", Box::new(|| Ok(Runner::Raw(raw(&|b| b.with_memory_pattern(false))?)))),
        ("flush-to-zero", Box::new(|| Ok(Runner::Raw(raw(&|b| b.with_flush_to_zero())?)))),
        ("no-prepacking", Box::new(|| Ok(Runner::Raw(raw(&|b| b.with_prepacking(false))?)))),
    ];
    let mut runners: Vec<(&str, Runner)> = variants
        .iter()
        .map(|(name, build)| Ok((*name, build()?)))
        .collect::<Result<_, Box<dyn std::error::Error>>>()?;
    // Deterministic pseudo-features (normalized scale).
    let mut seed = 7u32;
    let max_b = batches.iter().copied().max().unwrap_or(1);
    let all = Array3::from_shape_fn((max_b, frames, nf), |_| {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (seed >> 8) as f32 / 8_388_608.0 - 1.0
    });
    println!("model {dir}: [{frames}][{nf}]; us CPU per segment (median of {rounds} interleaved rounds)");
    print!("{:>16}", "variant \\ batch");
    for b in &batches {
        print!("{b:>9}");
    }
    println!();
    let mut table = vec![vec![Vec::new(); batches.len()]; runners.len()];
    // Calls per round for each batch size: about 40 ms of the server variant's time.
    let mut calls = Vec::with_capacity(batches.len());
    for &b in &batches {
        let x = all.slice(ndarray::s![..b, .., ..]);
        for (_, r) in runners.iter_mut() {
            std::hint::black_box(r.run(x));
        }
        let t0 = Instant::now();
        let mut n = 0usize;
        while t0.elapsed() < Duration::from_millis(40) || n < 3 {
            std::hint::black_box(runners[0].1.run(x));
            n += 1;
        }
        calls.push(n);
    }
    // Rounds outermost, then batch sizes, then variants: every cell sees the same mix of load.
    for _ in 0..rounds {
        for (bi, &b) in batches.iter().enumerate() {
            let x = all.slice(ndarray::s![..b, .., ..]);
            for (vi, (_, r)) in runners.iter_mut().enumerate() {
                let c0 = cpu_time();
                for _ in 0..calls[bi] {
                    std::hint::black_box(r.run(x));
                }
                table[vi][bi].push((cpu_time() - c0).as_secs_f64() * 1e6 / (calls[bi] * b) as f64);
            }
        }
    }
    // Every variant must agree with the server's scores.
    let x = all.slice(ndarray::s![..max_b.min(8), .., ..]);
    let want = runners[0].1.run(x);
    for (name, r) in runners.iter_mut().skip(1) {
        let got = r.run(x);
        let diff = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        if diff > 1e-5 {
            eprintln!("warning: {name} differs from the server's scores by {diff:e}");
        }
    }
    for (vi, (name, _)) in runners.iter().enumerate() {
        print!("{name:>16}");
        for cell in &mut table[vi] {
            cell.sort_by(f64::total_cmp);
            print!("{:>9.1}", cell[cell.len() / 2]);
        }
        println!();
    }
    Ok(())
}
