//! Band-limited resampling to the model rate: a polyphase Kaiser-windowed sinc filter.
//!
//! Output sample `k` is the band-limited interpolation of the input at exactly `k * from / to`
//! (the filter is symmetric around that instant), so resampled audio lines up with audio recorded
//! at the target rate to a fraction of a sample at every frequency. The cutoff sits at 94 % of
//! the lower Nyquist frequency; 64 zero crossings per side and Kaiser beta 10 give a ~100 dB
//! stopband. Each output phase's filter is computed once per call (`to / gcd` phases, capped at
//! [`MAX_PHASES`] with linear interpolation between them for pathological rate pairs).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use super::AudioError;

const ROLLOFF: f64 = 0.94;
const ZERO_CROSSINGS: f64 = 64.0;
const KAISER_BETA: f64 = 10.0;
/// Above this many distinct phases (e.g. 15999 -> 16000 Hz) phases are interpolated from a table.
const MAX_PHASES: usize = 4096;
/// Filters kept per process; past this the cache is cleared (hostile callers cycling through odd
/// rates cost time, never unbounded memory).
const MAX_CACHED_FILTERS: usize = 32;

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Modified Bessel function of the first kind, order 0 (power series; converges fast for x <= 20).
fn bessel_i0(x: f64) -> f64 {
    let (mut sum, mut term, q) = (1.0, 1.0, x * x / 4.0);
    for k in 1..64 {
        term *= q / (k * k) as f64;
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

/// Phase table: row `p` holds the taps for fractional input position `p / phases`.
struct Filter {
    taps: usize,
    half: i64,
    phases: usize,
    table: Vec<f32>,
}

impl Filter {
    fn new(rho: f64, phases: usize) -> Self {
        let half = (ZERO_CROSSINGS / rho).ceil() as i64;
        let taps = 2 * half as usize;
        let i0_beta = bessel_i0(KAISER_BETA);
        let mut table = Vec::with_capacity((phases + 1) * taps);
        for p in 0..=phases {
            let frac = p as f64 / phases as f64;
            let start = table.len();
            for t in 0..taps {
                // Input sample (i0 - half + 1 + t) sits tau input samples from the output instant.
                let tau = (t as i64 - half + 1) as f64 - frac;
                let u = tau / (half as f64);
                let w = if u.abs() < 1.0 { bessel_i0(KAISER_BETA * (1.0 - u * u).sqrt()) / i0_beta } else { 0.0 };
                let x = std::f64::consts::PI * rho * tau;
                let sinc = if x.abs() < 1e-12 { 1.0 } else { x.sin() / x };
                table.push(rho * sinc * w);
            }
            // Unit DC gain for every phase (no ripple on constant offsets).
            let sum: f64 = table[start..].iter().sum();
            table[start..].iter_mut().for_each(|v| *v /= sum);
        }
        Self { taps, half, phases, table: table.into_iter().map(|v| v as f32).collect() }
    }

    fn row(&self, p: usize) -> &[f32] {
        &self.table[p * self.taps..(p + 1) * self.taps]
    }
}

/// The filter for a rate pair, built once per process (building one costs milliseconds of
/// Bessel evaluations; applying it costs far less).
fn cached_filter(from: u32, to: u32, build: impl FnOnce() -> Filter) -> Arc<Filter> {
    type Cache = Mutex<HashMap<(u32, u32), Arc<Filter>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    // A poisoned lock only means another thread panicked mid-insert; the map is still usable.
    if let Some(f) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&(from, to)) {
        return Arc::clone(f);
    }
    let filter = Arc::new(build());
    let mut map = cache.lock().unwrap_or_else(|p| p.into_inner());
    if map.len() >= MAX_CACHED_FILTERS {
        map.clear();
    }
    map.insert((from, to), Arc::clone(&filter));
    filter
}

/// A rate pair's filter and the rational step between output and input samples.
struct Plan {
    filter: Arc<Filter>,
    down: u64,
    up: u64,
    exact: bool,
}

impl Plan {
    fn new(from: u32, to: u32) -> Result<Self, AudioError> {
        if from == 0 || to == 0 {
            return Err(AudioError::Resample { from, to, reason: "sample rates must be positive".into() });
        }
        let g = gcd(u64::from(from), u64::from(to));
        let (down, up) = (u64::from(from) / g, u64::from(to) / g);
        let rho = (f64::from(to) / f64::from(from)).min(1.0) * ROLLOFF;
        let exact = up as usize <= MAX_PHASES;
        let filter = cached_filter(from, to, || Filter::new(rho, if exact { up as usize } else { MAX_PHASES }));
        Ok(Self { filter, down, up, exact })
    }

    /// Absolute input index of the first tap of output sample `k` (may be negative).
    fn first_tap(&self, k: u64) -> i64 {
        (k * self.down / self.up) as i64 - self.filter.half + 1
    }

    /// Output sample `k`; `samples[0]` is input sample `offset`, and input outside `samples` is
    /// zero (callers keep every sample a non-edge output needs).
    fn sample(&self, k: u64, samples: &[f32], offset: u64, mixed: &mut [f32]) -> f32 {
        let filter = &*self.filter;
        let rem = (k * self.down) % self.up;
        let taps: &[f32] = if self.exact {
            filter.row(rem as usize)
        } else {
            let x = rem as f64 * filter.phases as f64 / self.up as f64;
            let (p, w) = (x.floor() as usize, (x - x.floor()) as f32);
            for ((m, a), b) in mixed.iter_mut().zip(filter.row(p)).zip(filter.row(p + 1)) {
                *m = a + (b - a) * w;
            }
            mixed
        };
        let first = self.first_tap(k) - offset as i64;
        if first >= 0 && first as usize + filter.taps <= samples.len() {
            crate::kernels::dot(taps, &samples[first as usize..first as usize + filter.taps])
        } else {
            // Near the edges: samples outside the audio are zero.
            taps.iter()
                .enumerate()
                .filter_map(|(t, h)| samples.get(usize::try_from(first + t as i64).ok()?).map(|s| h * s))
                .sum()
        }
    }
}

/// Output length for `n` input samples: `round(n * to / from)`.
pub(crate) fn output_len(n: u64, from: u32, to: u32) -> u64 {
    (n * u64::from(to) + u64::from(from) / 2) / u64::from(from)
}

/// Resamples mono `samples` from `from` Hz to `to` Hz; the result has `round(n * to / from)` samples.
pub fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>, AudioError> {
    let plan = Plan::new(from, to)?;
    if from == to || samples.is_empty() {
        return Ok(samples.to_vec());
    }
    let out_len = output_len(samples.len() as u64, from, to);
    let mut mixed = vec![0f32; plan.filter.taps];
    Ok((0..out_len).map(|k| plan.sample(k, samples, 0, &mut mixed)).collect())
}

/// [`resample`] for audio that arrives in chunks (streaming): each output sample is produced as
/// soon as every input sample its filter reads has arrived, and only those input samples are
/// kept. The concatenated output of `push`es and `finish` equals `resample` of the whole input,
/// bit for bit.
pub struct StreamResampler {
    plan: Plan,
    from: u32,
    to: u32,
    /// Input samples from absolute index `offset` on.
    buf: Vec<f32>,
    offset: u64,
    received: u64,
    next: u64,
    mixed: Vec<f32>,
}

impl StreamResampler {
    pub fn new(from: u32, to: u32) -> Result<Self, AudioError> {
        let plan = Plan::new(from, to)?;
        let mixed = vec![0f32; plan.filter.taps];
        Ok(Self { plan, from, to, buf: Vec::new(), offset: 0, received: 0, next: 0, mixed })
    }

    /// Takes the next input chunk and appends every output sample that is now complete to `out`.
    pub fn push(&mut self, input: &[f32], out: &mut Vec<f32>) {
        if self.from == self.to {
            out.extend_from_slice(input);
            return;
        }
        self.buf.extend_from_slice(input);
        self.received += input.len() as u64;
        let taps = self.plan.filter.taps as i64;
        while self.plan.first_tap(self.next) + taps <= self.received as i64 {
            out.push(self.plan.sample(self.next, &self.buf, self.offset, &mut self.mixed));
            self.next += 1;
        }
        // Forget input no later output reads; compact only when that is most of the buffer.
        let keep_from = self.plan.first_tap(self.next).max(0) as u64;
        let drop = (keep_from.saturating_sub(self.offset) as usize).min(self.buf.len());
        if drop > self.buf.len() / 2 {
            self.buf.drain(..drop);
            self.offset += drop as u64;
        }
    }

    /// Ends the input (zeros beyond it) and appends the remaining output samples.
    pub fn finish(&mut self, out: &mut Vec<f32>) {
        if self.from == self.to {
            return;
        }
        let total = output_len(self.received, self.from, self.to);
        while self.next < total {
            out.push(self.plan.sample(self.next, &self.buf, self.offset, &mut self.mixed));
            self.next += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, f: f64, seconds: f64) -> Vec<f32> {
        let n = (seconds * f64::from(rate)) as usize;
        (0..n).map(|i| (0.5 * (2.0 * std::f64::consts::PI * f * i as f64 / f64::from(rate)).sin()) as f32).collect()
    }

    #[test]
    fn tones_in_the_passband_land_exactly_on_the_target_grid() {
        for (from, f) in
            [(44_100, 220.0), (44_100, 3000.0), (44_100, 6500.0), (8_000, 3500.0), (22_050, 5000.0), (15_999, 1000.0)]
        {
            let want = tone(16_000, f, 1.0);
            let got = resample(&tone(from, f, 1.0), from, 16_000).unwrap();
            assert!(got.len().abs_diff(want.len()) <= 1);
            let max =
                got[1600..14_400].iter().zip(&want[1600..14_400]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(max < 1e-3, "{from} Hz, {f} Hz tone: max error {max}");
        }
    }

    #[test]
    fn streaming_in_any_chunks_equals_resampling_the_whole() {
        for (from, chunk) in [(44_100, 1), (44_100, 4410), (8_000, 333), (22_050, 100_000), (15_999, 777), (16_000, 50)]
        {
            let input: Vec<f32> =
                (0..from as usize / 2).map(|i| ((i as f32 * 0.37).sin() + (i as f32 * 0.011).cos()) * 0.3).collect();
            let want = resample(&input, from, 16_000).unwrap();
            let mut r = StreamResampler::new(from, 16_000).unwrap();
            let mut got = Vec::new();
            for c in input.chunks(chunk) {
                r.push(c, &mut got);
            }
            r.finish(&mut got);
            assert_eq!(got.len(), want.len(), "{from} Hz in chunks of {chunk}");
            assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "{from} Hz in chunks of {chunk}");
            assert!(r.buf.len() < 2 * chunk + 2 * r.plan.filter.taps + 4, "kept {} input samples", r.buf.len());
        }
    }

    #[test]
    fn content_above_the_target_nyquist_is_removed() {
        let got = resample(&tone(44_100, 12_000.0, 1.0), 44_100, 16_000).unwrap();
        let peak = got[1600..14_400].iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(peak < 1e-4, "12 kHz tone leaked through at {peak}");
    }
}
