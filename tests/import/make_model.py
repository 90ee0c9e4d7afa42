"""A small "bring your own model" classifier for `vericlip-train import`, built with `onnx`.

`features [N, frames, n_features]` -> ReduceMean over frames -> MatMul(w) + b -> Sigmoid ->
`fake_prob [N]` (or `[N, 1]` with --output-2d; raw logits with --logits). The weights are fixed
(a positive weight on MFCC 0, the log energy, and small ones elsewhere) and also written to
--weights-json so a test can compute the same score independently. Opset 17, IR 8 (ONNX Runtime
1.31 reads both).

Usage: make_model.py OUT.onnx [--frames 126] [--features 96] [--output-2d] [--logits]
                              [--input-name features] [--output-name fake_prob]
                              [--weights-json W.json]
"""

import argparse
import json
import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8


def weights(n_features: int) -> tuple[np.ndarray, float]:
    w = np.array([0.02 * math.sin(1.0 + j) for j in range(n_features)], dtype=np.float32)
    w[0] = 2.0
    return w, -0.25


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--frames", type=int, default=126)
    p.add_argument("--features", type=int, default=96)
    p.add_argument("--output-2d", action="store_true", help="output [N, 1] instead of [N]")
    p.add_argument("--logits", action="store_true", help="leave out the Sigmoid (a wrong model)")
    p.add_argument("--input-name", default="features")
    p.add_argument("--output-name", default="fake_prob")
    p.add_argument("--weights-json")
    a = p.parse_args()

    w, b = weights(a.features)
    last = a.output_name if a.output_2d and a.logits else "logit"
    nodes = [
        helper.make_node("ReduceMean", [a.input_name], ["mean_frame"], axes=[1], keepdims=0),
        helper.make_node("MatMul", ["mean_frame", "W"], ["logit_nobias"]),
        helper.make_node("Add", ["logit_nobias", "B"], [last]),
    ]
    if not a.logits:
        prob = a.output_name if a.output_2d else "prob_column"
        nodes.append(helper.make_node("Sigmoid", [last], [prob]))
        last = prob
    if not a.output_2d:
        nodes.append(helper.make_node("Squeeze", [last, "squeeze_axes"], [a.output_name]))
    out_shape = ["N", 1] if a.output_2d else ["N"]
    graph = helper.make_graph(
        nodes,
        "byo_classifier",
        [helper.make_tensor_value_info(a.input_name, TensorProto.FLOAT, ["N", a.frames, a.features])],
        [helper.make_tensor_value_info(a.output_name, TensorProto.FLOAT, out_shape)],
        initializer=[
            numpy_helper.from_array(w.reshape(a.features, 1), "W"),
            numpy_helper.from_array(np.array([b], dtype=np.float32), "B"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "squeeze_axes"),
        ],
    )
    model = helper.make_model(
        graph, producer_name="vericlip-import-test", opset_imports=[helper.make_opsetid("", OPSET)]
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, a.out)
    if a.weights_json:
        with open(a.weights_json, "w") as f:
            json.dump({"w": [float(v) for v in w], "b": b, "sigmoid": not a.logits}, f)


if __name__ == "__main__":
    main()
