from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PcmEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PCM_ENCODING_UNSPECIFIED: _ClassVar[PcmEncoding]
    PCM_ENCODING_S16LE: _ClassVar[PcmEncoding]
    PCM_ENCODING_F32LE: _ClassVar[PcmEncoding]

class Verdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERDICT_UNSPECIFIED: _ClassVar[Verdict]
    VERDICT_REAL: _ClassVar[Verdict]
    VERDICT_FAKE: _ClassVar[Verdict]
    VERDICT_NO_SPEECH: _ClassVar[Verdict]
PCM_ENCODING_UNSPECIFIED: PcmEncoding
PCM_ENCODING_S16LE: PcmEncoding
PCM_ENCODING_F32LE: PcmEncoding
VERDICT_UNSPECIFIED: Verdict
VERDICT_REAL: Verdict
VERDICT_FAKE: Verdict
VERDICT_NO_SPEECH: Verdict

class PcmFormat(_message.Message):
    __slots__ = ("encoding", "sample_rate", "channels")
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    encoding: PcmEncoding
    sample_rate: int
    channels: int
    def __init__(self, encoding: _Optional[_Union[PcmEncoding, str]] = ..., sample_rate: _Optional[int] = ..., channels: _Optional[int] = ...) -> None: ...

class RawPcm(_message.Message):
    __slots__ = ("data", "format")
    DATA_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    format: PcmFormat
    def __init__(self, data: _Optional[bytes] = ..., format: _Optional[_Union[PcmFormat, _Mapping]] = ...) -> None: ...

class ClassifyRequest(_message.Message):
    __slots__ = ("encoded", "pcm", "model", "version")
    ENCODED_FIELD_NUMBER: _ClassVar[int]
    PCM_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    encoded: bytes
    pcm: RawPcm
    model: str
    version: int
    def __init__(self, encoded: _Optional[bytes] = ..., pcm: _Optional[_Union[RawPcm, _Mapping]] = ..., model: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class ClassifyBatchRequest(_message.Message):
    __slots__ = ("clips",)
    CLIPS_FIELD_NUMBER: _ClassVar[int]
    clips: _containers.RepeatedCompositeFieldContainer[ClassifyRequest]
    def __init__(self, clips: _Optional[_Iterable[_Union[ClassifyRequest, _Mapping]]] = ...) -> None: ...

class ClassifyBatchResponse(_message.Message):
    __slots__ = ("results", "request_id")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ClassifyBatchResult]
    request_id: str
    def __init__(self, results: _Optional[_Iterable[_Union[ClassifyBatchResult, _Mapping]]] = ..., request_id: _Optional[str] = ...) -> None: ...

class ClassifyBatchResult(_message.Message):
    __slots__ = ("response", "error")
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    response: ClassifyResponse
    error: ClipError
    def __init__(self, response: _Optional[_Union[ClassifyResponse, _Mapping]] = ..., error: _Optional[_Union[ClipError, _Mapping]] = ...) -> None: ...

class ClipError(_message.Message):
    __slots__ = ("name", "code", "message")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    name: str
    code: str
    message: str
    def __init__(self, name: _Optional[str] = ..., code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class SegmentScore(_message.Message):
    __slots__ = ("index", "start_seconds", "end_seconds", "fake_score", "verdict")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    START_SECONDS_FIELD_NUMBER: _ClassVar[int]
    END_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FAKE_SCORE_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    index: int
    start_seconds: float
    end_seconds: float
    fake_score: float
    verdict: Verdict
    def __init__(self, index: _Optional[int] = ..., start_seconds: _Optional[float] = ..., end_seconds: _Optional[float] = ..., fake_score: _Optional[float] = ..., verdict: _Optional[_Union[Verdict, str]] = ...) -> None: ...

class StageTimings(_message.Message):
    __slots__ = ("decode_ms", "features_ms", "queue_ms", "inference_ms", "total_ms")
    DECODE_MS_FIELD_NUMBER: _ClassVar[int]
    FEATURES_MS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_MS_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    decode_ms: float
    features_ms: float
    queue_ms: float
    inference_ms: float
    total_ms: float
    def __init__(self, decode_ms: _Optional[float] = ..., features_ms: _Optional[float] = ..., queue_ms: _Optional[float] = ..., inference_ms: _Optional[float] = ..., total_ms: _Optional[float] = ...) -> None: ...

class ClassifyResponse(_message.Message):
    __slots__ = ("verdict", "fake_score", "threshold", "segments", "model", "model_version", "duration_seconds", "timings", "request_id")
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    FAKE_SCORE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    verdict: Verdict
    fake_score: float
    threshold: float
    segments: _containers.RepeatedCompositeFieldContainer[SegmentScore]
    model: str
    model_version: int
    duration_seconds: float
    timings: StageTimings
    request_id: str
    def __init__(self, verdict: _Optional[_Union[Verdict, str]] = ..., fake_score: _Optional[float] = ..., threshold: _Optional[float] = ..., segments: _Optional[_Iterable[_Union[SegmentScore, _Mapping]]] = ..., model: _Optional[str] = ..., model_version: _Optional[int] = ..., duration_seconds: _Optional[float] = ..., timings: _Optional[_Union[StageTimings, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class StreamConfig(_message.Message):
    __slots__ = ("pcm", "encoded", "step_seconds", "model", "version")
    PCM_FIELD_NUMBER: _ClassVar[int]
    ENCODED_FIELD_NUMBER: _ClassVar[int]
    STEP_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    pcm: PcmFormat
    encoded: bool
    step_seconds: float
    model: str
    version: int
    def __init__(self, pcm: _Optional[_Union[PcmFormat, _Mapping]] = ..., encoded: bool = ..., step_seconds: _Optional[float] = ..., model: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class ClassifyStreamRequest(_message.Message):
    __slots__ = ("config", "audio")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    config: StreamConfig
    audio: bytes
    def __init__(self, config: _Optional[_Union[StreamConfig, _Mapping]] = ..., audio: _Optional[bytes] = ...) -> None: ...

class ClassifyStreamResponse(_message.Message):
    __slots__ = ("segment", "summary")
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    segment: SegmentScore
    summary: ClassifyResponse
    def __init__(self, segment: _Optional[_Union[SegmentScore, _Mapping]] = ..., summary: _Optional[_Union[ClassifyResponse, _Mapping]] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ("include_manifest",)
    INCLUDE_MANIFEST_FIELD_NUMBER: _ClassVar[int]
    include_manifest: bool
    def __init__(self, include_manifest: bool = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "rejected", "manifests_omitted")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    MANIFESTS_OMITTED_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    rejected: _containers.RepeatedCompositeFieldContainer[RejectedVersion]
    manifests_omitted: int
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ..., rejected: _Optional[_Iterable[_Union[RejectedVersion, _Mapping]]] = ..., manifests_omitted: _Optional[int] = ...) -> None: ...

class RejectedVersion(_message.Message):
    __slots__ = ("name", "version", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    reason: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class GetModelRequest(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "version", "serving", "created_at", "sha256", "threshold", "execution_provider", "sample_rate", "segment_seconds", "frames", "features", "test_metrics", "manifest_json", "manifest_bytes", "validation_metrics", "canary", "traffic_fraction")
    class TestMetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class ValidationMetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SERVING_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_PROVIDER_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    TEST_METRICS_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_JSON_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_BYTES_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_METRICS_FIELD_NUMBER: _ClassVar[int]
    CANARY_FIELD_NUMBER: _ClassVar[int]
    TRAFFIC_FRACTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    serving: bool
    created_at: str
    sha256: str
    threshold: float
    execution_provider: str
    sample_rate: int
    segment_seconds: float
    frames: int
    features: int
    test_metrics: _containers.ScalarMap[str, float]
    manifest_json: str
    manifest_bytes: int
    validation_metrics: _containers.ScalarMap[str, float]
    canary: bool
    traffic_fraction: float
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ..., serving: bool = ..., created_at: _Optional[str] = ..., sha256: _Optional[str] = ..., threshold: _Optional[float] = ..., execution_provider: _Optional[str] = ..., sample_rate: _Optional[int] = ..., segment_seconds: _Optional[float] = ..., frames: _Optional[int] = ..., features: _Optional[int] = ..., test_metrics: _Optional[_Mapping[str, float]] = ..., manifest_json: _Optional[str] = ..., manifest_bytes: _Optional[int] = ..., validation_metrics: _Optional[_Mapping[str, float]] = ..., canary: bool = ..., traffic_fraction: _Optional[float] = ...) -> None: ...
