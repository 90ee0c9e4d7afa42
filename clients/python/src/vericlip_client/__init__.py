"""A thin Python client for the Vericlip gRPC API (vericlip.v1).

    import vericlip_client as vc
    with vc.connect("127.0.0.1:50051", api_key="KEY") as client:
        r = client.classify_file("clip.wav")
        print(vc.verdict_name(r.verdict), r.fake_score)

`connect` opens a channel with the settings docs/OPERATIONS.md recommends (round robin over every
address the target resolves to, keepalive, retries through the service config) and adds the API
key to every call. The helpers raise typed errors (`errors`: `VericlipError` and a subclass per
stable name, e.g. `QueueFullError`), with the request id and the advised retry delay. The generated
stubs are `vericlip_client.v1.vericlip_pb2` / `vericlip_pb2_grpc` (also `vc.pb2`, `vc.pb2_grpc`),
for anything the helpers do not cover; the .proto they come from is `PROTO_PATH`.
"""

from __future__ import annotations

import json
import os
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import grpc

from .v1 import vericlip_pb2 as pb2
from .v1 import vericlip_pb2_grpc as pb2_grpc

from . import errors
from .errors import ERROR_CLASSES, VericlipError, from_clip_error, from_rpc_error

globals().update({cls.__name__: cls for cls in ERROR_CLASSES.values()})

__all__ = ["pb2", "pb2_grpc", "Client", "connect", "error_name", "verdict_name", "IN_CLUSTER_TARGET",
           "SERVICE_CONFIG", "CHANNEL_OPTIONS", "errors", "VericlipError", "from_rpc_error",
           "MAX_BATCH_CLIPS", "PROTO_PATH"] + [
    cls.__name__ for cls in ERROR_CLASSES.values()]

#: The .proto the stubs were generated from, shipped inside the package (for other tools).
PROTO_PATH = os.path.join(os.path.dirname(__file__), "proto", "vericlip", "v1", "vericlip.proto")

#: The headless Service's DNS name: the resolver returns every ready pod, round robin uses each.
IN_CLUSTER_TARGET = "dns:///vericlip-server-headless.vericlip.svc.cluster.local:50051"

#: Round robin over every resolved address, and a retry (with backoff, on another connection) of a
#: call that failed with UNAVAILABLE (a pod shutting down or not ready yet) or RESOURCE_EXHAUSTED
#: when the server advises a retry (`queue_full`: its `grpc-retry-pushback-ms` trailer gives the
#: delay; `message_too_large` sends -1, which ends the retries).
SERVICE_CONFIG = {
    "loadBalancingConfig": [{"round_robin": {}}],
    "methodConfig": [{
        "name": [{"service": "vericlip.v1.Vericlip"}],
        "retryPolicy": {
            "maxAttempts": 4,
            "initialBackoff": "0.2s",
            "maxBackoff": "5s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE", "RESOURCE_EXHAUSTED"],
        },
    }],
}

CHANNEL_OPTIONS: Sequence[Tuple[str, object]] = (
    ("grpc.service_config", json.dumps(SERVICE_CONFIG)),
    ("grpc.enable_retries", 1),
    # A PING every 60 s on a connection with calls in flight finds a dead peer (a node gone) in
    # 80 s rather than at the TCP timeout.
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.max_receive_message_length", 64 << 20),
    ("grpc.max_send_message_length", 64 << 20),
)


class _ApiKey(grpc.UnaryUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds `authorization: Bearer KEY` to every call (works on plaintext channels too)."""

    def __init__(self, key: str):
        self._header = ("authorization", f"Bearer {key}")

    def _details(self, details):
        return _Details(details, list(details.metadata or ()) + [self._header])

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_stream_stream(self, continuation, details, request_iterator):
        return continuation(self._details(details), request_iterator)


class _Details(grpc.ClientCallDetails):
    def __init__(self, d, metadata):
        self.method, self.timeout, self.credentials = d.method, d.timeout, d.credentials
        self.wait_for_ready, self.compression = d.wait_for_ready, d.compression
        self.metadata = metadata


def error_name(err: grpc.RpcError) -> str:
    """The stable error name (e.g. "undecodable_audio") from a failed call's trailers."""
    for key, value in err.trailing_metadata() or ():
        if key == "vericlip-error":
            return value
    return ""


def verdict_name(verdict: int) -> str:
    """"real", "fake", ... for a Verdict value; "unknown(N)" for one this client predates."""
    try:
        return pb2.Verdict.Name(verdict).removeprefix("VERDICT_").lower()
    except ValueError:
        return f"unknown({verdict})"


class Client:
    """A channel and the Vericlip stub; a context manager that closes the channel."""

    def __init__(self, channel: grpc.Channel):
        self.channel = channel
        self.stub = pb2_grpc.VericlipStub(channel)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    def list_models(self, timeout: float = 10.0):
        try:
            return self.stub.ListModels(pb2.ListModelsRequest(), timeout=timeout).models
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    def classify_file(self, path: str, model: str = "", version: int = 0, timeout: float = 30.0):
        """Classifies a whole file (WAV, FLAC, MP3, OGG Vorbis); returns a ClassifyResponse.
        Raises a VericlipError subclass when the server refuses it."""
        with open(path, "rb") as f:
            audio = f.read()
        try:
            return self.stub.Classify(pb2.ClassifyRequest(encoded=audio, model=model, version=version),
                                      timeout=timeout)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    def classify_batch(self, clips: Sequence[Union[str, os.PathLike, bytes, pb2.ClassifyRequest]],
                       model: str = "", version: int = 0,
                       timeout: float = 60.0) -> List[Union[pb2.ClassifyResponse, VericlipError]]:
        """Classifies up to MAX_BATCH_CLIPS clips in one ClassifyBatch call: each a file path, a
        whole file's bytes, or a ClassifyRequest (e.g. raw PCM). Returns one entry per clip, in
        order: its ClassifyResponse, or the typed error of that clip alone (returned, not raised).
        Raises a VericlipError when the batch as a whole is refused (`batch_too_large`,
        `empty_batch`, `queue_full` after the retries, ...)."""
        requests = []
        for clip in clips:
            if isinstance(clip, pb2.ClassifyRequest):
                requests.append(clip)
                continue
            if not isinstance(clip, (bytes, bytearray)):
                with open(clip, "rb") as f:
                    clip = f.read()
            requests.append(pb2.ClassifyRequest(encoded=bytes(clip), model=model, version=version))
        try:
            reply = self.stub.ClassifyBatch(pb2.ClassifyBatchRequest(clips=requests), timeout=timeout)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        return [r.response if r.WhichOneof("result") == "response" else from_clip_error(r.error, reply.request_id)
                for r in reply.results]

    def stream_file(self, path: str, chunk_bytes: int = 16384, model: str = "", version: int = 0,
                    timeout: float = 60.0) -> Iterator[pb2.ClassifyStreamResponse]:
        """Streams a file to ClassifyStream in chunks (an encoded file is decoded and scored on
        half-close); yields each ClassifyStreamResponse: segments in order, then the summary."""
        with open(path, "rb") as f:
            audio = f.read()

        def requests():
            yield pb2.ClassifyStreamRequest(config=pb2.StreamConfig(encoded=True, model=model, version=version))
            for i in range(0, len(audio), chunk_bytes):
                yield pb2.ClassifyStreamRequest(audio=audio[i:i + chunk_bytes])

        try:
            yield from self.stub.ClassifyStream(requests(), timeout=timeout)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    def stream_pcm(self, chunks: Iterable[bytes], sample_rate: int, encoding: str = "s16le", channels: int = 1,
                   step_seconds: float = 0.0, model: str = "", version: int = 0,
                   timeout: Optional[float] = None) -> Iterator[pb2.ClassifyStreamResponse]:
        """Live streaming: sends each PCM chunk from `chunks` (e.g. a microphone's, as it is
        captured; any size) and yields each window's verdict as soon as the server has it (a
        `segment` every `step_seconds` once 2 s are in), then the `summary` when `chunks` ends.
        `encoding`: "s16le" or "f32le" (interleaved when `channels` > 1)."""
        return _stream_pcm(self.stub, chunks, sample_rate, encoding, channels, step_seconds, model, version,
                           timeout)


#: The most clips one ClassifyBatch carries (a server with a smaller queue takes fewer: its
#: `batch_too_large` error says how many).
MAX_BATCH_CLIPS = 32

#: PCM encodings by the names HTTP and the WebSocket use.
PCM_ENCODINGS = {"s16le": pb2.PCM_ENCODING_S16LE, "f32le": pb2.PCM_ENCODING_F32LE}


def _stream_pcm(stub, chunks: Iterable[bytes], sample_rate: int, encoding: str, channels: int,
                step_seconds: float, model: str, version: int, timeout: Optional[float]):
    if encoding not in PCM_ENCODINGS:
        raise ValueError(f"encoding {encoding!r}: use one of {sorted(PCM_ENCODINGS)}")
    config = pb2.StreamConfig(pcm=pb2.PcmFormat(encoding=PCM_ENCODINGS[encoding], sample_rate=sample_rate,
                                                channels=channels),
                              step_seconds=step_seconds, model=model, version=version)

    def requests():
        yield pb2.ClassifyStreamRequest(config=config)
        for chunk in chunks:
            yield pb2.ClassifyStreamRequest(audio=bytes(chunk))

    try:
        # gRPC sends from `chunks` on a thread of its own while this yields what arrives.
        yield from stub.ClassifyStream(requests(), timeout=timeout)
    except grpc.RpcError as e:
        raise from_rpc_error(e) from None


def connect(target: str, api_key: Optional[str] = None,
            credentials: Optional[grpc.ChannelCredentials] = None) -> Client:
    """A client for `target` ("127.0.0.1:50051", or IN_CLUSTER_TARGET in Kubernetes); plaintext
    unless `credentials` (e.g. grpc.ssl_channel_credentials()) is given."""
    options = list(CHANNEL_OPTIONS)
    if credentials is None:
        channel = grpc.insecure_channel(target, options=options)
    else:
        channel = grpc.secure_channel(target, credentials, options=options)
    if api_key:
        channel = grpc.intercept_channel(channel, _ApiKey(api_key))
    return Client(channel)
