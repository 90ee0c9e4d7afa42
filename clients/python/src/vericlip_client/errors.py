"""Typed errors: a failed call as the server described it, one exception class per stable error
name (docs/API.md's table), all subclasses of `VericlipError`:

    try:
        client.classify_file("clip.wav")
    except vc.QueueFullError as e:        # or vc.VericlipError, and e.name == "queue_full"
        time.sleep(e.retry_delay or 1)

Each carries `name`, `message`, `request_id` (quote it when reporting a problem) and
`retry_delay` (seconds the server advises before a retry; None: a retry does not help), and is a
grpc.RpcError with the call's `code()`, `details()` and metadata, so code written against grpc's
errors keeps working. The name and delay come from the `google.rpc.Status` details (`ErrorInfo`, `RetryInfo`)
in the `grpc-status-details-bin` trailer, decoded here without another dependency.
"""

from __future__ import annotations

from typing import Dict, Iterable, Optional, Tuple, Type

import grpc

ERROR_DOMAIN = "vericlip"


class VericlipError(grpc.RpcError):
    """A failed Vericlip call; `cause` is the grpc.RpcError it came from (None if it had none)."""

    name = ""

    def __init__(self, code: Optional[grpc.StatusCode], name: str, message: str,
                 request_id: str = "", retry_delay: Optional[float] = None,
                 cause: Optional[grpc.RpcError] = None):
        super().__init__(f"{code.name if code else '?'} ({name}): {message} [request_id {request_id}]")
        self._code, self.name, self.message = code, name, message
        self.request_id, self.retry_delay, self.cause = request_id, retry_delay, cause

    def code(self) -> Optional[grpc.StatusCode]:
        return self._code

    def details(self) -> str:
        return self.message

    def trailing_metadata(self):
        return self.cause.trailing_metadata() if hasattr(self.cause, "trailing_metadata") else ()

    def initial_metadata(self):
        return self.cause.initial_metadata() if hasattr(self.cause, "initial_metadata") else ()


#: Every stable name the server uses (docs/API.md); a name this client predates still gives a
#: VericlipError with that name.
NAMES = (
    "empty_audio", "undecodable_audio", "unsupported_audio", "non_finite_samples", "invalid_sample_rate",
    "invalid_channels", "audio_too_long", "audio_too_short", "ragged_pcm", "resample_failed",
    "invalid_pcm_encoding", "missing_pcm_format", "missing_audio", "invalid_model_name", "model_required",
    "missing_stream_config", "missing_stream_format", "repeated_stream_config", "invalid_step",
    "stream_too_large", "stream_error", "model_not_found", "unauthenticated", "queue_full",
    "memory_budget_exhausted", "too_many_streams", "message_too_large", "deadline_exceeded", "stream_idle",
    "body_stalled", "unavailable", "internal", "audio_io", "empty_batch", "batch_too_large",
)


def _class_name(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_")) + "Error"


#: name -> exception class (QueueFullError, UndecodableAudioError, ...).
ERROR_CLASSES: Dict[str, Type[VericlipError]] = {
    n: type(_class_name(n), (VericlipError,), {"name": n, "__doc__": f"The server's `{n}` error."}) for n in NAMES
}
globals().update({cls.__name__: cls for cls in ERROR_CLASSES.values()})


def _varint(data: bytes, i: int) -> Tuple[int, int]:
    shift = value = 0
    while True:
        if i >= len(data):
            raise ValueError("truncated varint")
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def _fields(data: bytes) -> Iterable[Tuple[int, object]]:
    """(field number, int or bytes) of a protobuf message's fields (wire types 0, 1, 2, 5)."""
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(data, i)
        elif wire == 2:
            n, i = _varint(data, i)
            value, i = data[i:i + n], i + n
        elif wire == 1:
            value, i = data[i:i + 8], i + 8
        elif wire == 5:
            value, i = data[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire}")
        yield number, value


def status_details(raw: bytes) -> Tuple[str, Optional[float]]:
    """(ErrorInfo reason in our domain, RetryInfo delay in seconds) from a serialized
    google.rpc.Status; ("", None) for what is absent or cannot be read."""
    reason, delay = "", None
    try:
        for number, any_msg in _fields(raw):
            if number != 3 or not isinstance(any_msg, bytes):
                continue
            parts = dict(_fields(any_msg))
            type_url, value = bytes(parts.get(1, b"")).decode(), bytes(parts.get(2, b""))
            if type_url.endswith("/google.rpc.ErrorInfo"):
                info = dict(_fields(value))
                if bytes(info.get(2, b"")).decode() == ERROR_DOMAIN:
                    reason = bytes(info.get(1, b"")).decode()
            elif type_url.endswith("/google.rpc.RetryInfo"):
                duration = dict(_fields(bytes(dict(_fields(value)).get(1, b""))))
                seconds, nanos = int(duration.get(1, 0)), int(duration.get(2, 0))
                delay = seconds + nanos / 1e9
    except (ValueError, UnicodeDecodeError):
        return "", None
    return reason, delay


def from_rpc_error(err: grpc.RpcError) -> VericlipError:
    """The typed error for a failed call (grpc.RpcError that is also a grpc.Call)."""
    trailers = dict(err.trailing_metadata() or ()) if hasattr(err, "trailing_metadata") else {}
    headers = dict(err.initial_metadata() or ()) if hasattr(err, "initial_metadata") else {}
    name, delay = status_details(trailers.get("grpc-status-details-bin", b""))
    name = name or trailers.get("vericlip-error", "")
    request_id = trailers.get("x-request-id") or headers.get("x-request-id", "")
    code = err.code() if hasattr(err, "code") else None
    message = err.details() if hasattr(err, "details") else str(err)
    cls = ERROR_CLASSES.get(name, VericlipError)
    return cls(code, name, message or "", request_id, delay, err)


def from_clip_error(clip_error, request_id: str = "") -> VericlipError:
    """The typed error of one clip of a batch (a `ClipError`: name, status code name, message)."""
    code = getattr(grpc.StatusCode, clip_error.code, None) if clip_error.code else None
    cls = ERROR_CLASSES.get(clip_error.name, VericlipError)
    return cls(code, clip_error.name, clip_error.message, request_id, None, None)
