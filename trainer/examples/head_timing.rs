//! ONNX Runtime CPU time per 2 s segment for every model head, through core's `ModelSession`
//! (one intra-op thread, as the server runs it).
//!
//! `cargo run -p vericlip-train --example head_timing [-- --hidden 64 --rounds 7]`
//!
//! For each head (last / mean / attention, uni- and bidirectional), F = 96 and 156 features and
//! F = 353 (`log-spec`) behind a conv front-end of 64 channels x 3 frames,
//! batch 1 and 16: `rounds` rounds of runs lasting about 0.3 s each; prints the median over
//! rounds of the CPU time (all of the process's threads, from /proc; ONNX Runtime with one
//! intra-op thread runs on the caller's) and of the wall time per segment (batch time / batch),
//! in microseconds. The time is ONNX
//! Runtime's (a shared library) and core's, which the dev profile already optimizes, so a debug
//! build measures the same as a release one.

use std::time::{Duration, Instant};

use ndarray::Array3;
use vericlip_core::runtime::{self, ModelSession};
use vericlip_train::model::onnx::export_network;
use vericlip_train::model::{Head, LstmRecipe};

const FRAMES: usize = 126;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} takes a number")))
        .unwrap_or(default)
}

/// CPU time of this process so far (every thread's, from `/proc/self/task/*/schedstat`, in
/// nanoseconds): on a busy machine wall time measures the other jobs too.
fn cpu_ns() -> Option<u64> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// (CPU, wall) microseconds per segment for each round.
fn time(session: &mut ModelSession, x: &Array3<f32>, rounds: usize) -> Vec<(f64, f64)> {
    let batch = x.shape()[0];
    // Warm-up, and how many runs fill about 0.3 s.
    let t0 = Instant::now();
    let mut warm = 0usize;
    while t0.elapsed() < Duration::from_millis(150) || warm < 3 {
        std::hint::black_box(session.run(x.view()).expect("inference"));
        warm += 1;
    }
    let per_round = (warm * 2).max(3);
    let per_segment = |d: f64| d / (per_round * batch) as f64;
    (0..rounds)
        .map(|_| {
            let (t, c) = (Instant::now(), cpu_ns());
            for _ in 0..per_round {
                std::hint::black_box(session.run(x.view()).expect("inference"));
            }
            let wall = t.elapsed().as_secs_f64() * 1e6;
            let cpu = match (c, cpu_ns()) {
                (Some(a), Some(b)) => (b - a) as f64 / 1e3,
                _ => f64::NAN,
            };
            (per_segment(cpu), per_segment(wall))
        })
        .collect()
}

fn main() {
    let hidden = arg("--hidden", 64);
    let rounds = arg("--rounds", 7).max(1);
    let rt = runtime::init(None).expect("ONNX Runtime (run scripts/setup.sh)");
    println!(
        "hidden {hidden}, {FRAMES} frames, one intra-op thread; microseconds per segment, median of {rounds} rounds: CPU time (wall time)"
    );
    println!("| head | BiLSTM | F | batch 1 | batch 16 |");
    println!("|---|---|---|---|---|");
    for (head, bidirectional) in [
        (Head::Last, false),
        (Head::Mean, false),
        (Head::Attention, false),
        (Head::Last, true),
        (Head::Mean, true),
        (Head::Attention, true),
    ] {
        for (features, conv) in [(96, None), (156, None), (353, Some((64, 3)))] {
            let weights =
                LstmRecipe { input: features, hidden, head, bidirectional, conv, segment_mean_norm: true }.seeded(1);
            let mut session = ModelSession::from_bytes(rt, &export_network(&weights, &[])).expect("session");
            let cells: Vec<String> = [1, 16]
                .iter()
                .map(|&batch| {
                    let x = Array3::from_shape_fn((batch, FRAMES, features), |(b, t, f)| {
                        (((b * 31 + t * 17 + f * 7) % 23) as f32 - 11.0) / 11.0
                    });
                    let rounds = time(&mut session, &x, rounds);
                    let median = |mut v: Vec<f64>| {
                        v.sort_by(f64::total_cmp);
                        v[v.len() / 2]
                    };
                    let cpu = median(rounds.iter().map(|r| r.0).collect());
                    let wall = median(rounds.iter().map(|r| r.1).collect());
                    format!("{cpu:.0} ({wall:.0})")
                })
                .collect();
            let input = match conv {
                Some((c, k)) => format!("{features}, conv {c} x {k}"),
                None => features.to_string(),
            };
            println!(
                "| {} | {} | {input} | {} | {} |",
                head.name(),
                if bidirectional { "yes" } else { "no" },
                cells[0],
                cells[1]
            );
        }
    }
}
