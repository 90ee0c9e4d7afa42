//! Cutting mono audio into fixed-length model segments.
//!
//! Windows start every `step` samples. Audio left after the last full window (the tail) is
//! scored when it is at least `min_tail` samples long, by one more window aligned to the end of
//! the audio: it overlaps the previous window and holds only real audio, so a clip's score is
//! never diluted by padding (a 0.5 s tail padded with 75 % zeros used to weigh as much as a full
//! segment). Audio shorter than one window is one zero-padded window (callers refuse audio
//! under the spec's minimum first). With `step == len` this is DESIGN.md's non-overlapping
//! rule; smaller steps slide (streaming).

use std::borrow::Cow;

/// One window: `start..start + valid` of the audio, zero-padded up to the segment length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub start: usize,
    pub valid: usize,
}

impl Segment {
    /// The window's samples, borrowed when it lies inside the audio, padded otherwise.
    pub fn samples<'a>(&self, audio: &'a [f32], len: usize) -> Cow<'a, [f32]> {
        let data = &audio[self.start..self.start + self.valid];
        if self.valid == len {
            Cow::Borrowed(data)
        } else {
            let mut v = Vec::with_capacity(len);
            v.extend_from_slice(data);
            v.resize(len, 0.0);
            Cow::Owned(v)
        }
    }

    pub fn start_seconds(&self, rate: u32) -> f64 {
        self.start as f64 / f64::from(rate)
    }

    pub fn end_seconds(&self, rate: u32) -> f64 {
        (self.start + self.valid) as f64 / f64::from(rate)
    }
}

/// Windows over `n` samples: `len` long, every `step` samples, tail rule as above.
/// `step` and `len` must be > 0 (a zero is treated as 1).
pub fn segment_plan(n: usize, len: usize, step: usize, min_tail: usize) -> Vec<Segment> {
    let (len, step) = (len.max(1), step.max(1));
    let mut out = Vec::new();
    let mut start = 0;
    while start + len <= n {
        out.push(Segment { start, valid: len });
        start += step;
    }
    let covered = out.last().map_or(0, |s| s.start + s.valid);
    if out.is_empty() {
        if n > 0 {
            out.push(Segment { start: 0, valid: n });
        }
    } else if n > covered && n - covered >= min_tail {
        out.push(Segment { start: n - len, valid: len });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: usize = 32_000;
    const TAIL: usize = 8_000;

    #[test]
    fn non_overlapping_with_tail_rule() {
        assert_eq!(segment_plan(64_000, L, L, TAIL).len(), 2);
        // 0.49 s tail not scored again; a 0.5 s tail is scored by a window ending with the audio.
        assert_eq!(segment_plan(64_000 + 7_999, L, L, TAIL).len(), 2);
        let p = segment_plan(64_000 + 8_000, L, L, TAIL);
        assert_eq!(p[2], Segment { start: 40_000, valid: L });
        // Short audio is the only window: kept, however short.
        assert_eq!(segment_plan(100, L, L, TAIL), vec![Segment { start: 0, valid: 100 }]);
        assert!(segment_plan(0, L, L, TAIL).is_empty());
        let audio = vec![1.0f32; 100];
        let s = segment_plan(100, L, L, TAIL)[0].samples(&audio, L);
        assert_eq!(s.len(), L);
        assert_eq!(s[99], 1.0);
        assert_eq!(s[100], 0.0);
    }

    #[test]
    fn sliding_windows_cover_the_audio() {
        // 5.3 s with 1 s steps: full windows at 0,1,2,3 s; 0.3 s uncovered -> no tail.
        let p = segment_plan(84_800, L, 16_000, TAIL);
        assert_eq!(p.iter().map(|s| s.start).collect::<Vec<_>>(), vec![0, 16_000, 32_000, 48_000]);
        // 5.6 s: 0.6 s uncovered -> a tail window ending with the audio (3.6..5.6 s).
        let p = segment_plan(89_600, L, 16_000, TAIL);
        assert_eq!(p.last(), Some(&Segment { start: 57_600, valid: L }));
        assert!(p.iter().all(|s| s.valid == L && s.start + s.valid <= 89_600));
    }
}
