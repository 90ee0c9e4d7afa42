"""The Python server's segmentation against the Rust tests' cases (core/src/audio/segment.rs).
usage: .vendor/bench-venv/bin/python bench/python_server/test_segments.py"""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from server import segment_plan as plan  # noqa: E402

L, T = 32_000, 8_000
# Current rule: the tail is scored by a full window that ends with the audio.
assert len(plan(64_000, L, L, T)) == 2
assert len(plan(64_000 + 7_999, L, L, T)) == 2
assert plan(64_000 + 8_000, L, L, T)[2] == (40_000, L)
assert plan(100, L, L, T) == [(0, 100)]
assert plan(0, L, L, T) == []
assert [s for s, _ in plan(84_800, L, 16_000, T)] == [0, 16_000, 32_000, 48_000]
assert plan(89_600, L, 16_000, T)[-1] == (57_600, L)
# The rule before it: a zero-padded window at the next step.
assert plan(64_000 + 8_000, L, L, T, "padded")[2] == (64_000, 8_000)
assert plan(89_600, L, 16_000, T, "padded")[-1] == (64_000, 25_600)
assert plan(100, L, L, T, "padded") == [(0, 100)]
print("ok: segment_plan mirrors core/src/audio/segment.rs (both tail rules)")
