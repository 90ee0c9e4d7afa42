"""Cross-language check: the Python client package (clients/python: generated stubs and the
vericlip_client helpers) talks to a running vericlip-server. Exits non-zero (with the reason) on
any mismatch.

usage: test_client.py --addr HOST:PORT --samples models/samples --expect FILE.json [--api-key KEY]
where FILE.json maps each sample's file name to the fake_score another client computed for it.
Uses the installed package (`pip install clients/python`; tests/api/run.sh does) or, when none
is installed, the tree's copy (service/tests/python_client.rs, security.rs).
"""

import argparse
import glob
import json
import os
import sys
import urllib.request

import grpc
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

try:
    import vericlip_client as vc
except ImportError:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "clients", "python", "src"))
    import vericlip_client as vc
from vericlip_client import pb2, pb2_grpc  # noqa: F401 (test_tls.py and test_conn_age.py use them)


def check(cond, what):
    if not cond:
        sys.exit(f"FAILED: {what}")
    print(f"ok: {what}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--samples", required=True)
    ap.add_argument("--expect", required=True)
    ap.add_argument("--api-key", default="")
    ap.add_argument("--empty-addr", default="", help="gRPC address of a server with no model (retry check)")
    ap.add_argument("--empty-http", default="", help="its HTTP address (metrics)")
    ap.add_argument("--http", default="", help="the server's HTTP address (GET /v1/models against ListModels)")
    args = ap.parse_args()
    expected = json.load(open(args.expect))
    files = sorted(glob.glob(os.path.join(args.samples, "*", "*.wav")))
    check(len(files) >= 2 and {os.path.basename(f) for f in files} <= set(expected),
          f"{len(files)} samples, each with an expected score")

    print(f"vericlip_client from {os.path.dirname(vc.__file__)}")
    with vc.connect(args.addr, api_key=args.api_key or None) as client:
        grpc.channel_ready_future(client.channel).result(timeout=30)

        health = health_pb2_grpc.HealthStub(client.channel)
        for service in ("", "vericlip.v1.Vericlip"):
            status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status
            check(status == health_pb2.HealthCheckResponse.SERVING, f"health({service!r}) is SERVING")

        reflection = reflection_pb2_grpc.ServerReflectionStub(client.channel)
        responses = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        services = {s.name for r in responses for s in r.list_services_response.service}
        check("vericlip.v1.Vericlip" in services, f"reflection lists vericlip.v1.Vericlip ({sorted(services)})")
        check("grpc.health.v1.Health" in services, "reflection lists grpc.health.v1.Health")

        models = client.list_models()
        check(sum(m.name == "vericlip-lstm" and m.serving for m in models) == 1, "ListModels shows the served model")
        if args.http:
            # GET /v1/models is the proto's JSON mapping of ListModelsResponse: a strict protobuf
            # JSON parser reads it (no unknown field) into what gRPC ListModels answers.
            req = urllib.request.Request(f"http://{args.http}/v1/models",
                                         headers={"authorization": f"Bearer {args.api_key}"} if args.api_key else {})
            body = urllib.request.urlopen(req, timeout=10).read()
            over_http = json_format.Parse(body, pb2.ListModelsResponse())
            check(over_http == client.stub.ListModels(pb2.ListModelsRequest(), timeout=10),
                  "GET /v1/models parses as the ListModelsResponse gRPC answers")

        for path in files:
            name = os.path.basename(path)
            want = expected[name]
            r = client.classify_file(path)
            verdict = vc.verdict_name(r.verdict)
            check(abs(r.fake_score - want) < 1e-5, f"{name}: fake_score {r.fake_score:.6f} == {want:.6f}")
            check(verdict == ("fake" if r.fake_score >= r.threshold else "real"), f"verdict {verdict}")
            check(r.model == "vericlip-lstm" and r.model_version >= 1, "answering model named")

        # A batch: one answer per clip in order, each the score Classify gives it alone; a bad
        # clip is its own typed error; a batch over the limit fails whole.
        pcm_request = pb2.ClassifyRequest(pcm=pb2.RawPcm(data=bytes(2 * 16000 * 2), format=pb2.PcmFormat(
            encoding=pb2.PCM_ENCODING_S16LE, sample_rate=16000, channels=1)))
        results = client.classify_batch([files[0], b"definitely not audio", open(files[1], "rb").read(), pcm_request])
        check(len(results) == 4, f"batch: {len(results)} results for 4 clips")
        for i, path in ((0, files[0]), (2, files[1])):
            want = expected[os.path.basename(path)]
            check(isinstance(results[i], pb2.ClassifyResponse) and abs(results[i].fake_score - want) < 1e-5,
                  f"batch clip {i}: the score Classify gives {os.path.basename(path)}")
        check(isinstance(results[1], vc.UndecodableAudioError) and results[1].code() == grpc.StatusCode.INVALID_ARGUMENT
              and results[1].request_id == results[0].request_id, f"batch clip 1: {results[1]!r}")
        check(vc.verdict_name(results[3].verdict) == "no_speech", "batch clip 3 (PCM silence): no_speech")
        try:
            client.classify_batch([b"x"] * (vc.MAX_BATCH_CLIPS + 1))
            check(False, "a batch over the limit is refused")
        except vc.BatchTooLargeError as e:
            check(e.code() == grpc.StatusCode.INVALID_ARGUMENT, f"batch over the limit -> {e.code()} {e.name}")

        # Streaming a file: its segments in order, then a summary of the same clip.
        whole = client.classify_file(files[0])
        messages = list(client.stream_file(files[0], chunk_bytes=4096))
        kinds = [m.WhichOneof("message") for m in messages]
        check(len(kinds) >= 2 and kinds[-1] == "summary" and set(kinds[:-1]) == {"segment"}, f"stream messages {kinds}")
        summary = messages[-1].summary
        check([m.segment.index for m in messages[:-1]] == list(range(len(messages) - 1)), "segments in order")
        check(summary.duration_seconds == whole.duration_seconds and len(summary.segments) == len(messages) - 1,
              "summary covers the whole file")

        try:
            client.stub.Classify(pb2.ClassifyRequest(encoded=b"definitely not audio"), timeout=10)
            check(False, "garbage is rejected")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.INVALID_ARGUMENT, f"garbage -> {e.code()}")
            check(vc.error_name(e) == "undecodable_audio", f"error name {vc.error_name(e)}")

        try:
            client.stub.GetModel(pb2.GetModelRequest(name="vericlip-lstm", version=999), timeout=10)
            check(False, "unknown version is NOT_FOUND")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.NOT_FOUND, f"unknown version -> {e.code()}")

        # Streaming PCM: 16 kHz s16le in chunks; one verdict per window, then a summary.
        pcm = bytes(3 * 16000 * 2)  # 3 s of silence
        config = pb2.StreamConfig(pcm=pb2.PcmFormat(encoding=pb2.PCM_ENCODING_S16LE, sample_rate=16000, channels=1),
                                  step_seconds=1.0)

        def requests():
            yield pb2.ClassifyStreamRequest(config=config)
            for i in range(0, len(pcm), 3200):
                yield pb2.ClassifyStreamRequest(audio=pcm[i:i + 3200])
        replies = list(client.stub.ClassifyStream(requests(), timeout=30))
        kinds = [r.WhichOneof("message") for r in replies]
        check(kinds == ["segment", "segment", "summary"], f"stream messages {kinds}")
        # Silence is not judged: every window and the summary say no_speech.
        verdicts = [vc.verdict_name(r.segment.verdict if r.HasField("segment") else r.summary.verdict)
                    for r in replies]
        check(verdicts == ["no_speech"] * 3, f"silence verdicts {verdicts}")

        # Typed errors: a class per name, the request id, the retry advice.
        try:
            client.classify_file(os.devnull)
            check(False, "an empty file is rejected")
        except vc.EmptyAudioError as e:
            check(isinstance(e, vc.VericlipError) and isinstance(e, grpc.RpcError), "EmptyAudioError is a VericlipError")
            check(e.code() == grpc.StatusCode.INVALID_ARGUMENT and e.name == "empty_audio", f"{e.code()} {e.name}")
            check(len(e.request_id) > 0 and e.retry_delay is None, f"request id {e.request_id!r}, no retry advice")
        # The request id sent is the one answered.
        r, call = client.stub.Classify.with_call(pb2.ClassifyRequest(encoded=open(files[0], "rb").read()),
                                                 metadata=[("x-request-id", "py-client-1")], timeout=30)
        check(r.request_id == "py-client-1", f"request id kept: {r.request_id}")
        check(dict(call.initial_metadata()).get("x-request-id") == "py-client-1", "request id in the headers")
        check(dict(call.trailing_metadata()).get("x-request-id") == "py-client-1", "request id in the trailers")

    if args.empty_addr:
        # A server with no model: UNAVAILABLE, retried by the service config; the server counts
        # every attempt (its metrics), which must be the policy's maxAttempts.
        def attempts():
            text = urllib.request.urlopen(f"http://{args.empty_http}/metrics", timeout=10).read().decode()
            series = 'vericlip_requests_total{rpc="Classify",code="UNAVAILABLE"} '
            return next((int(float(line[len(series):])) for line in text.splitlines() if line.startswith(series)), 0)
        before = attempts()
        with vc.connect(args.empty_addr) as empty:
            try:
                empty.classify_file(files[0])
                check(False, "a server with no model is UNAVAILABLE")
            except vc.UnavailableError as e:
                check(e.retry_delay is not None and e.retry_delay > 0, f"unavailable advises a retry ({e.retry_delay})")
        want = vc.SERVICE_CONFIG["methodConfig"][0]["retryPolicy"]["maxAttempts"]
        check(attempts() - before == want, f"the server saw {attempts() - before} attempts, want {want}")

    if args.api_key:
        with vc.connect(args.addr) as anonymous:
            # docs/API.md's rule: with a key, only health is open; reflection needs the key.
            status = health_pb2_grpc.HealthStub(anonymous.channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
            check(status.status == health_pb2.HealthCheckResponse.SERVING, "health needs no key")
            try:
                reflection = reflection_pb2_grpc.ServerReflectionStub(anonymous.channel)
                list(reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                                     timeout=10))
                check(False, "reflection without the key is refused")
            except grpc.RpcError as e:
                check(e.code() == grpc.StatusCode.UNAUTHENTICATED, f"reflection without the key -> {e.code()}")
            try:
                anonymous.list_models()
                check(False, "a call without the API key is refused")
            except grpc.RpcError as e:
                check(e.code() == grpc.StatusCode.UNAUTHENTICATED and vc.error_name(e) == "unauthenticated",
                      f"without the API key -> {e.code()} {vc.error_name(e)}")
    print("python client: all checks passed")


if __name__ == "__main__":
    main()
