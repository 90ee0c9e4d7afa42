"""Checks the OpenAPI document (service/src/http/openapi.json) against the running server, route
by route: each request below gets a status the document lists for that operation, a content
type it lists for that status, a body that validates against its schema, and (for errors) the
`vericlip-error` header equal to the body's name and a name the document lists for that status.
The WebSocket route is checked message by message against the WsConfig/Ws*Message schemas.

Two servers: the main one (a model loaded, an API key, small limits so the size errors are
cheap to reach) and an empty one (no model yet, one stream, a short idle time) for the 503s, the
stream limit and a stalled body. At the end every (route, method, status) the document lists was
either seen or is in NOT_TRIGGERED with the reason; anything else fails the check.

usage: check_routes.py --spec FILE --http HOST:PORT --empty-http HOST:PORT --api-key KEY
                       --samples DIR --expect-out FILE.json
Writes FILE.json: each sample's file name -> the fake_score HTTP gave it (the clients' tests
check they get the same).
"""

import argparse
import asyncio
import base64
import glob
import io
import json
import math
import os
import socket
import struct
import sys
import time
import urllib.error
import urllib.request
import wave

import jsonschema
import referencing
import referencing.jsonschema
import websockets
from websockets.exceptions import InvalidStatus

SPEC_URI = "urn:vericlip:openapi"

# Documented statuses this check cannot reach from outside, and why. Everything else must be seen.
NOT_TRIGGERED = {
    ("/v1/classify", "post", "500"): "a server fault (a feature or inference worker gone): no request can cause it",
    ("/v1/classify", "post", "429"): "queue_full / memory_budget_exhausted need a loaded server at capacity: "
                                     "service/tests/load_shedding.rs and memory_budget.rs reach them",
    ("/v1/classify:batch", "post", "429"): "queue_full / memory_budget_exhausted need a loaded server at capacity "
                                           "(the same admission and budget as /v1/classify)",
}


class Checker:
    def __init__(self, spec):
        self.spec = spec
        resource = referencing.Resource.from_contents(spec, default_specification=referencing.jsonschema.DRAFT202012)
        self.registry = referencing.Registry().with_resource(SPEC_URI, resource)
        self.seen = set()
        self.failures = []
        self.passed = 0

    def schema(self, pointer):
        return jsonschema.Draft202012Validator({"$ref": f"{SPEC_URI}{pointer}"}, registry=self.registry)

    def fail(self, what):
        print(f"FAILED: {what}")
        self.failures.append(what)

    def ok(self, what):
        self.passed += 1
        print(f"ok: {what}")

    def validate(self, what, instance, pointer):
        errors = sorted(self.schema(pointer).iter_errors(instance), key=lambda e: list(e.path))
        if errors:
            self.fail(f"{what}: does not match {pointer}: {errors[0].message} at {list(errors[0].path)}")
            return False
        return True

    def response_spec(self, path, method, status):
        """The documented response, and the method it is documented under: a 405 answers a method
        the document does not list, so it is looked up under the route's documented operation."""
        ops = self.spec["paths"].get(path, {})
        if method not in ops and str(status) == "405" and ops:
            method = next(iter(ops))
        op = ops.get(method)
        if op is None:
            return None, None, method
        r = op["responses"].get(str(status))
        pointer = f"#/paths/{path.replace('/', '~1')}/{method}/responses/{status}"
        if r and "$ref" in r:
            pointer = r["$ref"]
            r = self.spec["components"]["responses"][pointer.rsplit("/", 1)[1]]
        return r, pointer, method

    def check(self, what, path, method, status, headers, body, want_status=None, want_name=None):
        """Checks one HTTP answer against the document; returns the parsed JSON body (or None)."""
        if want_status is not None and status != want_status:
            self.fail(f"{what}: status {status}, want {want_status}: {body[:300]!r}")
            return None
        # Every answer carries its request id; a retryable error says when; a 401 how.
        if not headers.get("x-request-id"):
            self.fail(f"{what}: no x-request-id header")
            return None
        if status in (429, 503) and path.startswith("/v1/") and not (headers.get("retry-after") or "").isdigit():
            self.fail(f"{what}: {status} without a Retry-After")
            return None
        if status == 401 and not (headers.get("www-authenticate") or "").startswith("Bearer "):
            self.fail(f"{what}: 401 without a WWW-Authenticate: Bearer challenge")
            return None
        r, pointer, documented = self.response_spec(path, method, status)
        if r is None:
            self.fail(f"{what}: {method.upper()} {path} answered {status}, which the document does not list: {body[:300]!r}")
            return None
        self.seen.add((path, documented, str(status)))
        content = r.get("content")
        ctype = (headers.get("content-type") or "").split(";")[0].strip()
        if not content:
            self.ok(f"{what}: {status}")
            return None
        if ctype not in content:
            self.fail(f"{what}: content-type {ctype!r} is not among the documented {sorted(content)}")
            return None
        if ctype != "application/json":
            if not isinstance(body, (bytes, bytearray)):
                self.fail(f"{what}: body is not bytes")
            self.ok(f"{what}: {status} {ctype}")
            return body
        try:
            data = json.loads(body)
        except ValueError as e:
            self.fail(f"{what}: body is not JSON ({e}): {body[:200]!r}")
            return None
        schema = content[ctype]["schema"]
        schema_pointer = schema["$ref"] if "$ref" in schema else f"{pointer}/content/application~1json/schema"
        if not self.validate(what, data, schema_pointer):
            return None
        names = r.get("x-vericlip-error-names")
        if names is not None:
            name = data["error"]["name"]
            if name not in names:
                self.fail(f"{what}: error name {name!r} is not among those documented for {status}: {names}")
                return None
            if headers.get("vericlip-error") != name:
                self.fail(f"{what}: vericlip-error header {headers.get('vericlip-error')!r} != body name {name!r}")
                return None
            if want_name is not None and name != want_name:
                self.fail(f"{what}: error {name!r}, want {want_name!r} ({data['error']['message']})")
                return None
        self.ok(f"{what}: {status}" + (f" {data['error']['name']}" if names is not None else ""))
        return data


def http(addr, method, target, body=None, headers=None, timeout=60):
    req = urllib.request.Request(f"http://{addr}{target}", data=body, method=method.upper(), headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def wav_bytes(seconds, rate=16000, tone=True):
    n = int(seconds * rate)
    frames = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 220 * i / rate)) if tone else 0) for i in range(n))
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return out.getvalue()


def multipart(parts):
    boundary = "----vericlip-route-check-7d1f"
    out = b""
    for name, filename, data in parts:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disp}\r\nContent-Type: application/octet-stream\r\n\r\n".encode()
        out += data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", out


def stalled_body(addr, path, headers, timeout=30):
    """Sends headers promising 1000 bytes, then 10, and waits for the server's answer."""
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        head = f"POST {path} HTTP/1.1\r\nHost: check\r\nContent-Length: 1000\r\nConnection: close\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        s.sendall(head.encode() + b"0123456789")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if hdrs.get("transfer-encoding") == "chunked":
        raw, body = body, b""
        while raw:
            size, _, raw = raw.partition(b"\r\n")
            n = int(size, 16)
            if n == 0:
                break
            body, raw = body + raw[:n], raw[n + 2:]
    return status, hdrs, body


async def ws_session(c, addr, key, what, config, chunks, end=True, want_error=None):
    """One WebSocket stream; checks every server message against the document."""
    msgs = []
    async with websockets.connect(f"ws://{addr}/v1/stream", additional_headers={"authorization": f"Bearer {key}"},
                                  max_size=None, open_timeout=30) as ws:
        c.seen.add(("/v1/stream", "get", "101"))
        if want_error is None:
            c.validate(f"{what}: client config", json.loads(config), "#/components/schemas/WsConfig")
        await ws.send(config)
        for chunk in chunks:
            await ws.send(chunk)
        if end:
            await ws.send(json.dumps({"type": "end"}))
        try:
            async for m in ws:
                msgs.append(json.loads(m))
        except websockets.ConnectionClosed:
            pass
    kinds = [m.get("type") for m in msgs]
    schemas = {"segment": "WsSegmentMessage", "summary": "WsSummaryMessage", "error": "WsErrorMessage"}
    for i, m in enumerate(msgs):
        if m.get("type") not in schemas:
            c.fail(f"{what}: message {i} has an undocumented type: {m}")
            return msgs
        if not c.validate(f"{what}: message {i}", m, f"#/components/schemas/{schemas[m['type']]}"):
            return msgs
    if want_error:
        if kinds[-1:] != ["error"] or msgs[-1]["error"]["name"] != want_error:
            c.fail(f"{what}: messages {kinds}, want a final error {want_error}: {msgs[-1:]}")
        else:
            c.ok(f"{what}: error message {want_error}")
    elif len(kinds) < 2 or kinds[-1] != "summary" or set(kinds[:-1]) != {"segment"}:
        c.fail(f"{what}: messages {kinds}, want segments then a summary")
    else:
        c.ok(f"{what}: {len(kinds) - 1} segments then a summary, each valid")
    return msgs


async def ws_burst(c, addr, key, what, config, want_name, want_code):
    """Sends a config, a chunk and the end in one burst (before reading anything), then reads:
    the server must answer with the error message and close with `want_code` and the error name
    as the reason, not drop the connection (1006)."""
    async with websockets.connect(f"ws://{addr}/v1/stream", additional_headers={"authorization": f"Bearer {key}"},
                                  max_size=None, open_timeout=30) as ws:
        await asyncio.gather(ws.send(config), ws.send(b"\x00" * 4096), ws.send(json.dumps({"type": "end"})))
        msgs = []
        try:
            async for m in ws:
                msgs.append(json.loads(m))
        except websockets.ConnectionClosed:
            pass
        code, reason = ws.close_code, ws.close_reason
    if not msgs or msgs[-1].get("type") != "error" or msgs[-1]["error"]["name"] != want_name:
        c.fail(f"{what}: messages {msgs}, want a final error {want_name}")
    elif not c.validate(f"{what}: error message", msgs[-1], "#/components/schemas/WsErrorMessage"):
        pass
    elif not msgs[-1].get("request_id"):
        c.fail(f"{what}: the error message has no request_id")
    elif (code, reason) != (want_code, want_name):
        c.fail(f"{what}: closed with {code} {reason!r}, want {want_code} {want_name!r}")
    else:
        c.ok(f"{what}: error message, then close {code} {reason}")


async def ws_refused(c, addr, headers, what, want_status, want_name):
    try:
        async with websockets.connect(f"ws://{addr}/v1/stream", additional_headers=headers, open_timeout=30):
            c.fail(f"{what}: the upgrade succeeded, want {want_status}")
    except InvalidStatus as e:
        r = e.response
        c.check(what, "/v1/stream", "get", r.status_code, {k.lower(): v for k, v in r.headers.raw_items()},
                r.body or b"", want_status, want_name)


def main():
    ap = argparse.ArgumentParser()
    for a in ("--spec", "--http", "--empty-http", "--api-key", "--samples", "--expect-out"):
        ap.add_argument(a, required=True)
    args = ap.parse_args()
    spec = json.load(open(args.spec))
    c = Checker(spec)
    addr, empty, key = args.http, args.empty_http, args.api_key
    auth = {"authorization": f"Bearer {key}"}

    def call(what, method, target, body=None, headers=None, want=None, name=None, server=None):
        path = target.split("?")[0]
        status, hdrs, data = http(server or addr, method, target, body, {**auth, **(headers or {})})
        return c.check(what, path, method, status, hdrs, data, want, name)

    # The served document is the file the check reads.
    status, hdrs, data = http(addr, "get", "/openapi.json")
    served = c.check("GET /openapi.json", "/openapi.json", "get", status, hdrs, data, 200)
    if served != spec:
        c.fail("GET /openapi.json differs from service/src/http/openapi.json")

    # Probes and metrics: open without the key.
    for path, want in (("/healthz", 200), ("/readyz", 200), ("/metrics", 200)):
        status, hdrs, data = http(addr, "get", path)
        c.check(f"GET {path}", path, "get", status, hdrs, data, want)

    # Models.
    models = call("GET /v1/models", "get", "/v1/models", want=200)
    if models is not None:
        served = [m for m in models["models"] if m["name"] == "vericlip-lstm" and m["serving"]]
        if len(served) != 1 or served[0]["traffic_fraction"] != 1 or any(m["canary"] for m in models["models"]):
            c.fail(f"GET /v1/models: want vericlip-lstm with one serving version taking all traffic, no canary: {models}")
    status, hdrs, data = http(addr, "get", "/v1/models")
    c.check("GET /v1/models without the key", "/v1/models", "get", status, hdrs, data, 401, "unauthenticated")
    call("DELETE /v1/models", "delete", "/v1/models", want=405, name="method_not_allowed")

    # Classify: every way to send audio.
    files = sorted(glob.glob(os.path.join(args.samples, "*", "*.wav")))
    if len(files) < 2:
        c.fail(f"no samples under {args.samples}")
    expect = {}
    for path in files:
        audio = open(path, "rb").read()
        name = os.path.basename(path)
        r = call(f"classify {name} (raw body)", "post", "/v1/classify", audio, {"content-type": "audio/wav"}, 200)
        if r is None:
            continue
        expect[name] = r["fake_score"]
        if r["verdict"] != ("fake" if r["fake_score"] >= r["threshold"] else "real"):
            c.fail(f"classify {name}: verdict {r['verdict']} for score {r['fake_score']} / threshold {r['threshold']}")
        ctype, body = multipart([("note", None, b"ignored"), ("file", name, audio)])
        m = call(f"classify {name} (multipart)", "post", "/v1/classify", body, {"content-type": ctype}, 200)
        if m is not None and abs(m["fake_score"] - r["fake_score"]) > 1e-6:
            c.fail(f"classify {name}: multipart score {m['fake_score']} != raw body's {r['fake_score']}")
    with open(args.expect_out, "w") as f:
        json.dump(expect, f, indent=1)
    first = open(files[0], "rb").read()
    j = call("classify (JSON, base64)", "post", "/v1/classify",
             json.dumps({"audio_base64": base64.b64encode(first).decode(), "model": "vericlip-lstm"}).encode(),
             {"content-type": "application/json"}, 200)
    if j is not None and abs(j["fake_score"] - expect.get(os.path.basename(files[0]), -1)) > 1e-6:
        c.fail("classify (JSON): a different score than the raw body's")
    call("classify (application/octet-stream)", "post", "/v1/classify", first, {"content-type": "application/octet-stream"}, 200)
    tone = struct.pack("<32000h", *(int(8000 * math.sin(2 * math.pi * 220 * i / 16000)) for i in range(32000)))
    call("classify PCM s16le 2 s (query)", "post", "/v1/classify?format=s16le&sample_rate=16000&channels=1", tone,
         {"content-type": "application/octet-stream"}, 200)
    silence = call("classify 3 s of silence", "post", "/v1/classify", wav_bytes(3, tone=False),
                   {"content-type": "audio/wav"}, 200)
    if silence is not None and silence["verdict"] != "no_speech":
        c.fail(f"classify 3 s of silence: verdict {silence['verdict']}, want no_speech")

    # Classify: each error class.
    octet = {"content-type": "application/octet-stream"}
    cases = [
        ("not audio", "/v1/classify", b"definitely not audio", octet, 400, "undecodable_audio"),
        ("empty body", "/v1/classify", b"", octet, 400, "empty_audio"),
        ("0.5 s clip", "/v1/classify", wav_bytes(0.5), octet, 400, "audio_too_short"),
        ("over max_audio_seconds", "/v1/classify?format=s16le&sample_rate=8000", bytes(2 * 8000 * 31), octet, 400, "audio_too_long"),
        ("PCM without a rate", "/v1/classify?format=s16le", tone, octet, 400, "missing_pcm_format"),
        ("PCM encoding s24le", "/v1/classify?format=s24le&sample_rate=16000", tone, octet, 400, "invalid_pcm_encoding"),
        ("PCM rate 10 Hz", "/v1/classify?format=s16le&sample_rate=10", tone, octet, 400, "invalid_sample_rate"),
        ("PCM 0 channels", "/v1/classify?format=s16le&sample_rate=16000&channels=0", tone, octet, 400, "invalid_channels"),
        ("PCM of 3 bytes a frame short", "/v1/classify?format=s16le&sample_rate=16000", tone + b"x", octet, 400, "ragged_pcm"),
        ("PCM f32le NaN", "/v1/classify?format=f32le&sample_rate=16000", struct.pack("<f", float("nan")) * 32000, octet, 400, "non_finite_samples"),
        ("bad query", "/v1/classify?version=abc", first, octet, 400, "invalid_query"),
        ("bad model name", "/v1/classify?model=..%2Fetc", first, octet, 400, "invalid_model_name"),
        ("unknown model", "/v1/classify?model=no-such-model", first, octet, 404, "model_not_found"),
        ("unknown version", "/v1/classify?version=999", first, octet, 404, "model_not_found"),
        ("invalid JSON", "/v1/classify", b"{not json", {"content-type": "application/json"}, 400, "invalid_json"),
        ("JSON without audio", "/v1/classify", b"{}", {"content-type": "application/json"}, 400, "missing_audio"),
        ("JSON bad base64", "/v1/classify", b'{"audio_base64": "***"}', {"content-type": "application/json"}, 400, "invalid_base64"),
        ("body over max_message_bytes", "/v1/classify", bytes(5 << 20), octet, 413, "message_too_large"),
    ]
    ctype, body = multipart([("audio", "clip.wav", first)])
    cases.append(("multipart without a `file` part", "/v1/classify", body, {"content-type": ctype}, 400, "missing_file_part"))
    cases.append(("multipart without its boundary", "/v1/classify", body, {"content-type": "multipart/form-data"}, 400,
                  "invalid_multipart"))
    for what, target, body, headers, want, name in cases:
        call(f"classify: {what}", "post", target, body, headers, want, name)
    status, hdrs, data = http(addr, "post", "/v1/classify", first, octet)
    c.check("classify without the key", "/v1/classify", "post", status, hdrs, data, 401, "unauthenticated")
    status, hdrs, data = http(addr, "post", "/v1/classify", first, {**octet, "authorization": "Bearer wrong"})
    c.check("classify with a wrong key", "/v1/classify", "post", status, hdrs, data, 401, "unauthenticated")
    call("GET /v1/classify", "get", "/v1/classify", want=405, name="method_not_allowed")

    # Batches: one result per clip, in order, each as /v1/classify answers it alone; a bad clip
    # fails only itself; whole-batch errors.
    jtype = {"content-type": "application/json"}
    b64 = lambda data: base64.b64encode(data).decode()
    clips = [{"audio_base64": b64(open(f, "rb").read())} for f in files[:2]]
    clips.insert(1, {"audio_base64": b64(b"definitely not audio")})
    clips.append({"audio_base64": b64(tone), "format": "s16le", "sample_rate": 16000})
    b = call("classify:batch (3 files, garbage, PCM)", "post", "/v1/classify:batch", json.dumps({"clips": clips}).encode(),
             jtype, 200)
    if b is not None:
        kinds = [next(iter(r)) for r in b["results"]]
        if kinds != ["response", "error", "response", "response"] or b["results"][1]["error"]["name"] != "undecodable_audio":
            c.fail(f"classify:batch: results {b['results']}, want response, error undecodable_audio, response, response")
        else:
            for i, f in ((0, files[0]), (2, files[1])):
                got, want = b["results"][i]["response"]["fake_score"], expect.get(os.path.basename(f), -1)
                if abs(got - want) > 1e-6:
                    c.fail(f"classify:batch clip {i}: score {got}, /v1/classify said {want}")
            c.ok("classify:batch: per-clip answers match /v1/classify")
    too_many = json.dumps({"clips": [{"audio_base64": b64(tone), "format": "s16le", "sample_rate": 16000}] * 33}).encode()
    for what, body, want, name in [
        ("no clips", b'{"clips": []}', 400, "empty_batch"),
        ("33 clips", too_many, 400, "batch_too_large"),
        ("not JSON", first, 400, "invalid_json"),
        ("over max_message_bytes", b'{"clips": [{"audio_base64": "' + b"A" * (5 << 20) + b'"}]}', 413, "message_too_large"),
    ]:
        call(f"classify:batch: {what}", "post", "/v1/classify:batch", body, jtype, want, name)
    status, hdrs, data = http(addr, "post", "/v1/classify:batch", b'{"clips": []}', jtype)
    c.check("classify:batch without the key", "/v1/classify:batch", "post", status, hdrs, data, 401, "unauthenticated")
    call("GET /v1/classify:batch", "get", "/v1/classify:batch", want=405, name="method_not_allowed")

    # The WebSocket.
    status, hdrs, data = http(addr, "get", "/v1/stream", headers=auth)
    c.check("GET /v1/stream without an upgrade", "/v1/stream", "get", status, hdrs, data, 400, "websocket_required")

    # Unknown routes: the JSON error too (not a route of the document: checked by hand).
    status, hdrs, data = http(addr, "get", "/v1/no-such-route", headers=auth)
    body = json.loads(data or b"null") if hdrs.get("content-type", "").startswith("application/json") else None
    if status != 404 or not body or body["error"]["name"] != "not_found" or not hdrs.get("x-request-id"):
        c.fail(f"GET /v1/no-such-route: {status} {data[:200]!r}, want a JSON 404 not_found with a request id")
    else:
        c.validate("GET /v1/no-such-route", body, "#/components/schemas/ErrorBody") and c.ok("unknown route: JSON 404")
    call("POST /v1/stream", "post", "/v1/stream", b"", None, 405, "method_not_allowed")

    async def websockets_checks():
        await ws_refused(c, addr, {}, "WebSocket without the key", 401, "unauthenticated")
        chunks = [first[i:i + 8192] for i in range(0, len(first), 8192)]
        msgs = await ws_session(c, addr, key, "WebSocket, encoded file", json.dumps({"format": "encoded", "step_seconds": 2.0}), chunks)
        three = tone + tone[:32000]  # 3 s: windows at 0 and 1 s with the default 1 s step
        pcm_chunks = [three[i:i + 3200] for i in range(0, len(three), 3200)]
        pcm = await ws_session(c, addr, key, "WebSocket, s16le PCM", json.dumps({"format": "s16le", "sample_rate": 16000}), pcm_chunks)
        if pcm and pcm[-1].get("type") == "summary" and len(pcm) != 3:
            c.fail(f"WebSocket, 3 s of PCM at step 1 s: {len(pcm) - 1} segments, want 2")
        await ws_session(c, addr, key, "WebSocket, bad config", '{"format": "mp4"}', [], end=False,
                         want_error="invalid_pcm_encoding")
        for attempt in range(3):
            await ws_burst(c, addr, key, f"WebSocket, bad config + chunk + end in one burst (#{attempt + 1})",
                           '{"format": "mp4"}', "invalid_pcm_encoding", 1003)
        await ws_burst(c, addr, key, "WebSocket, unknown model in a burst",
                       json.dumps({"format": "encoded", "model": "nope"}), "model_not_found", 1008)
        await ws_session(c, addr, key, "WebSocket, config not JSON", "hello", [], end=False,
                         want_error="invalid_stream_config")
        await ws_session(c, addr, key, "WebSocket, unknown model", json.dumps({"format": "encoded", "model": "nope"}), [],
                         end=False, want_error="model_not_found")
        # The empty server allows one stream: a second is refused before the upgrade.
        async with websockets.connect(f"ws://{empty}/v1/stream", open_timeout=30):
            await ws_refused(c, empty, {}, "second WebSocket over limits.max_streams", 429, "too_many_streams")
        return msgs

    asyncio.run(websockets_checks())

    # The empty server: no model yet, a short idle time.
    status, hdrs, data = http(empty, "get", "/readyz")
    c.check("GET /readyz before a model is loaded", "/readyz", "get", status, hdrs, data, 503)
    status, hdrs, data = http(empty, "get", "/healthz")
    c.check("GET /healthz before a model is loaded", "/healthz", "get", status, hdrs, data, 200)
    status, hdrs, data = http(empty, "post", "/v1/classify", first, octet)
    c.check("classify before a model is loaded", "/v1/classify", "post", status, hdrs, data, 503, "unavailable")
    status, hdrs, data = stalled_body(empty, "/v1/classify", octet)
    c.check("classify with a stalled body", "/v1/classify", "post", status, hdrs, data, 504, "body_stalled")
    status, hdrs, data = http(empty, "post", "/v1/classify:batch", json.dumps({"clips": [{"audio_base64": b64(first)}]}).encode(), jtype)
    c.check("classify:batch before a model is loaded", "/v1/classify:batch", "post", status, hdrs, data, 503, "unavailable")
    status, hdrs, data = stalled_body(empty, "/v1/classify:batch", jtype)
    c.check("classify:batch with a stalled body", "/v1/classify:batch", "post", status, hdrs, data, 504, "body_stalled")

    # Coverage: every documented (route, method, status) was seen or is excused above.
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for st in op["responses"]:
                k = (path, method, st)
                if k in c.seen:
                    continue
                if k in NOT_TRIGGERED:
                    print(f"not triggered (documented, unreachable from outside): {method.upper()} {path} {st}: {NOT_TRIGGERED[k]}")
                else:
                    c.fail(f"{method.upper()} {path} {st} is documented but no check reached it")

    print(f"route check: {c.passed} ok, {len(c.failures)} failed")
    if c.failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
