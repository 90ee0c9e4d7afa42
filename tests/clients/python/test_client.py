"""Cross-language check: a Python grpcio client, generated from proto/ at test time, talks to a
running vericlip-server. Exits non-zero (with the reason) on any mismatch.

usage: test_client.py --addr HOST:PORT --proto-dir proto --samples models/samples --expect FILE.json
where FILE.json maps sample paths to the fake_score the Rust side computed for them.
"""

import argparse
import importlib
import json
import os
import sys
import tempfile

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_tools import protoc


def generate(proto_dir: str, out_dir: str):
    import grpc_tools

    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    rc = protoc.main([
        "protoc",
        f"-I{proto_dir}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        os.path.join(proto_dir, "vericlip/v1/vericlip.proto"),
    ])
    if rc != 0:
        sys.exit(f"protoc failed with {rc}")
    sys.path.insert(0, out_dir)
    pb2 = importlib.import_module("vericlip.v1.vericlip_pb2")
    pb2_grpc = importlib.import_module("vericlip.v1.vericlip_pb2_grpc")
    return pb2, pb2_grpc


def check(cond, what):
    if not cond:
        sys.exit(f"FAILED: {what}")
    print(f"ok: {what}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--proto-dir", required=True)
    ap.add_argument("--expect", required=True)
    args = ap.parse_args()
    expected = json.load(open(args.expect))

    with tempfile.TemporaryDirectory() as out:
        pb2, pb2_grpc = generate(args.proto_dir, out)
        channel = grpc.insecure_channel(args.addr)
        grpc.channel_ready_future(channel).result(timeout=30)

        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "vericlip.v1.Vericlip"):
            status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status
            check(status == health_pb2.HealthCheckResponse.SERVING, f"health({service!r}) is SERVING")

        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        services = {s.name for r in responses for s in r.list_services_response.service}
        check("vericlip.v1.Vericlip" in services, f"reflection lists vericlip.v1.Vericlip ({sorted(services)})")
        check("grpc.health.v1.Health" in services, "reflection lists grpc.health.v1.Health")

        stub = pb2_grpc.VericlipStub(channel)
        models = stub.ListModels(pb2.ListModelsRequest(), timeout=10).models
        check(any(m.name == "vericlip-lstm" and m.serving for m in models), "ListModels shows the served model")

        for path, want in sorted(expected.items()):
            with open(path, "rb") as f:
                audio = f.read()
            r = stub.Classify(pb2.ClassifyRequest(encoded=audio), timeout=30)
            verdict = pb2.Verdict.Name(r.verdict)
            check(abs(r.fake_score - want) < 1e-5, f"{os.path.basename(path)}: fake_score {r.fake_score:.6f} == {want:.6f}")
            check(verdict == ("VERDICT_FAKE" if r.fake_score >= r.threshold else "VERDICT_REAL"), f"verdict {verdict}")
            check(r.model == "vericlip-lstm" and r.model_version >= 1, "answering model named")

        try:
            stub.Classify(pb2.ClassifyRequest(encoded=b"definitely not audio"), timeout=10)
            check(False, "garbage is rejected")
        except grpc.RpcError as e:
            names = dict(e.trailing_metadata() or ())
            check(e.code() == grpc.StatusCode.INVALID_ARGUMENT, f"garbage -> {e.code()}")
            check(names.get("vericlip-error") == "undecodable_audio", f"error name {names.get('vericlip-error')}")

        try:
            stub.GetModel(pb2.GetModelRequest(name="vericlip-lstm", version=999), timeout=10)
            check(False, "unknown version is NOT_FOUND")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.NOT_FOUND, f"unknown version -> {e.code()}")

        # Streaming: 16 kHz s16le PCM in chunks; one verdict per window, then a summary.
        pcm = bytes(3 * 16000 * 2)  # 3 s of silence
        config = pb2.StreamConfig(pcm=pb2.PcmFormat(encoding=pb2.PCM_ENCODING_S16LE, sample_rate=16000, channels=1),
                                  step_seconds=1.0)
        def requests():
            yield pb2.ClassifyStreamRequest(config=config)
            for i in range(0, len(pcm), 3200):
                yield pb2.ClassifyStreamRequest(audio=pcm[i:i + 3200])
        replies = list(stub.ClassifyStream(requests(), timeout=30))
        kinds = [r.WhichOneof("message") for r in replies]
        check(kinds == ["segment", "segment", "summary"], f"stream messages {kinds}")
        # Silence is not judged: every window and the summary say VERDICT_NO_SPEECH.
        verdicts = [pb2.Verdict.Name(r.segment.verdict if r.HasField("segment") else r.summary.verdict)
                    for r in replies]
        check(verdicts == ["VERDICT_NO_SPEECH"] * 3, f"silence verdicts {verdicts}")
    print("python client: all checks passed")


if __name__ == "__main__":
    main()
