//! Band-limited resampling to the model rate with rubato's FFT (sinc-quality) resampler.
//! rubato trims its own start-up delay, so output sample `i` lines up with input time `i / rate_out`.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

use super::AudioError;

/// Input chunk size of the FFT resampler: large enough for good frequency resolution.
const CHUNK: usize = 1024;

pub fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>, AudioError> {
    if from == to || samples.is_empty() {
        return Ok(samples.to_vec());
    }
    let err = |reason: String| AudioError::Resample { from, to, reason };
    let mut r = Fft::<f32>::new(from as usize, to as usize, CHUNK, 1, FixedSync::Input)
        .map_err(|e| err(e.to_string()))?;
    let input = InterleavedSlice::new(samples, 1, samples.len()).map_err(|e| err(e.to_string()))?;
    let needed = r.process_all_needed_output_len(samples.len());
    let mut out = vec![0f32; needed];
    let mut output =
        InterleavedSlice::new_mut(&mut out, 1, needed).map_err(|e| err(e.to_string()))?;
    let (_, produced) = r
        .process_all_into_buffer(&input, &mut output, samples.len(), None)
        .map_err(|e| err(e.to_string()))?;
    // Exactly round(n * to / from) samples: the duration is preserved.
    let want =
        ((samples.len() as u64 * u64::from(to) + u64::from(from) / 2) / u64::from(from)) as usize;
    out.truncate(produced.min(want));
    out.resize(want, 0.0);
    Ok(out)
}
