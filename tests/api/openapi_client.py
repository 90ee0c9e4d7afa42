"""A client generated from the OpenAPI document works against a real server: openapi-python-client
(pinned in tests/api/openapi-client-requirements.txt) generates a Python package from
service/src/http/openapi.json into a temporary folder, and this script calls the server through
it: classify as a raw body, as multipart and as JSON, a refused upload (the typed error body),
a batch (a result and an error), and the models listing. Each answer must parse into the generated models and agree with the
scores the route check recorded.

usage: openapi_client.py --spec FILE --http HOST:PORT --api-key KEY --samples DIR --expect FILE.json
(run with tests/api/.oapi-venv's python: the generator and the generated code's dependencies)
"""

import argparse
import base64
import glob
import importlib
import json
import os
import subprocess
import sys
import tempfile


def check(cond, what):
    if not cond:
        sys.exit(f"FAILED: {what}")
    print(f"ok: {what}")


def main():
    ap = argparse.ArgumentParser()
    for a in ("--spec", "--http", "--api-key", "--samples", "--expect"):
        ap.add_argument(a, required=True)
    args = ap.parse_args()
    expected = json.load(open(args.expect))
    files = sorted(glob.glob(os.path.join(args.samples, "*", "*.wav")))
    check(len(files) >= 2, f"{len(files)} samples")

    out = tempfile.mkdtemp(prefix="vericlip-openapi-client-")
    generator = os.path.join(os.path.dirname(sys.executable), "openapi-python-client")
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    gen = subprocess.run([generator, "generate", "--path", args.spec, "--meta", "none",
                          "--output-path", os.path.join(out, "vericlip_http")],
                         capture_output=True, text=True, env=env, check=False)
    check(gen.returncode == 0, f"openapi-python-client generated a client (exit {gen.returncode}): {gen.stderr[-2000:]}")
    sys.path.insert(0, out)
    client_mod = importlib.import_module("vericlip_http.client")
    classify = importlib.import_module("vericlip_http.api.classify.classify")
    list_models = importlib.import_module("vericlip_http.api.models.list_models")
    models = importlib.import_module("vericlip_http.models")
    types = importlib.import_module("vericlip_http.types")

    client = client_mod.AuthenticatedClient(base_url=f"http://{args.http}", token=args.api_key, timeout=60.0)
    for path in files:
        name = os.path.basename(path)
        audio = open(path, "rb").read()
        want = expected[name]
        raw = classify.sync_detailed(client=client, body=types.File(payload=audio, mime_type="application/octet-stream"))
        check(raw.status_code == 200 and isinstance(raw.parsed, models.ClassifyResult),
              f"{name}: raw body -> {raw.status_code} {type(raw.parsed).__name__}")
        check(abs(raw.parsed.fake_score - want) < 1e-6, f"{name}: raw body score {raw.parsed.fake_score} == {want}")
        check(raw.headers.get("x-request-id") == raw.parsed.request_id, "the request id header is the body's")
        form = classify.sync_detailed(client=client, body=models.ClassifyFilesBody(
            file=types.File(payload=audio, file_name=name, mime_type="audio/wav")))
        check(form.status_code == 200 and abs(form.parsed.fake_score - want) < 1e-6,
              f"{name}: multipart -> {form.status_code} {getattr(form.parsed, 'fake_score', form.content[:200])}")
        js = classify.sync_detailed(client=client, body=models.ClassifyJsonRequest(
            audio_base64=base64.b64encode(audio).decode()))
        check(js.status_code == 200 and abs(js.parsed.fake_score - want) < 1e-6,
              f"{name}: JSON -> {js.status_code} {getattr(js.parsed, 'fake_score', js.content[:200])}")

    bad = classify.sync_detailed(client=client, body=types.File(payload=b"definitely not audio"))
    check(bad.status_code == 400 and isinstance(bad.parsed, models.ErrorBody),
          f"garbage -> {bad.status_code} {type(bad.parsed).__name__}")
    check(bad.parsed.error.name == "undecodable_audio", f"error name {bad.parsed.error.name}")

    # A batch: one result per clip, a clip's error in its own result.
    classify_batch = importlib.import_module("vericlip_http.api.classify.classify_batch")
    clips = [models.ClassifyJsonRequest(audio_base64=base64.b64encode(open(files[0], "rb").read()).decode()),
             models.ClassifyJsonRequest(audio_base64=base64.b64encode(b"definitely not audio").decode())]
    batch = classify_batch.sync_detailed(client=client, body=models.ClassifyBatchRequest(clips=clips))
    check(batch.status_code == 200 and isinstance(batch.parsed, models.ClassifyBatchResponse),
          f"batch -> {batch.status_code} {type(batch.parsed).__name__}: {batch.content[:200]}")
    first, second = batch.parsed.results
    check(isinstance(getattr(first, "response", None), models.ClassifyResult)
          and abs(first.response.fake_score - expected[os.path.basename(files[0])]) < 1e-6,
          f"batch clip 0: {first}")
    check(getattr(getattr(second, "error", None), "name", None) == "undecodable_audio", f"batch clip 1: {second}")

    listed = list_models.sync(client=client)
    check(listed is not None and any(m.name == "vericlip-lstm" for m in listed.models),
          f"models: {[m.name for m in listed.models] if listed else listed}")
    print("openapi generated client: all checks passed")


if __name__ == "__main__":
    main()
