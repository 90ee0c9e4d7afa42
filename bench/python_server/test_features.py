"""The Python server computes the features of whatever feature_spec the served manifest has:
the seed spec through reference_features.py, LFCC + deltas through reference_features_ext.py.
Checked against the goldens that tests/golden/make_goldens.py wrote from the same references
(run it first), with the manifest JSON of the bundled version 2 (seed) and the goldens' own spec
(FeatureSpec::lfcc_deltas, 156 per frame); the filter-bank cache must not change a bit.
usage: .vendor/bench-venv/bin/python bench/python_server/test_features.py"""
import json
import os
import sys

import numpy as np
import soundfile as sf

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
from server import cache_filterbanks, features_for_spec  # noqa: E402

OUT = os.path.join(ROOT, "tests", "golden", "out")
seed_spec = json.load(open(os.path.join(ROOT, "models", "vericlip-lstm", "2", "manifest.json")))["feature_spec"]
golden_seed = json.load(open(os.path.join(OUT, "goldens.json")))
golden_ext = json.load(open(os.path.join(OUT, "goldens_lfcc_deltas.json")))


def clip(name):
    y, _ = sf.read(os.path.join(OUT, "clips", f"{name}.wav"), dtype="float32", always_2d=True)
    return y.mean(axis=1)[:32_000]


def check(spec, golden, width):
    f = features_for_spec(spec)
    for name in ("speech", "sweep", "noise"):
        got = f(clip(name))
        want = np.asarray(golden["features"][name] if "features" in golden else golden[name], dtype=np.float32)
        assert got.shape == (126, width), got.shape
        assert np.array_equal(got, want), f"{name}: max diff {np.abs(got - want).max()}"


for cached in (False, True):
    if cached:
        cache_filterbanks()
    check(seed_spec, golden_seed, 96)
    check(dict(golden_ext["spec"], min_tail_seconds=0.5), golden_ext, 156)
try:
    features_for_spec(dict(seed_spec, n_mels=40))
    raise AssertionError("a spec the references do not implement must be refused")
except SystemExit as e:
    assert "n_mels" in str(e), e
print("ok: the Python server's features follow the manifest's feature_spec (seed 96, lfcc_deltas 156)")
