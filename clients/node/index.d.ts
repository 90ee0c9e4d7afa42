// Types for index.js: the messages as @grpc/proto-loader delivers them (enums as names, 64-bit
// integers as numbers). Fields follow proto/vericlip/v1/vericlip.proto.
import type { ChannelCredentials, Client, ServiceError, status as grpcStatus } from '@grpc/grpc-js';

/** "VERDICT_REAL" | "VERDICT_FAKE" today; later v1 releases may add values (treat as unknown). */
export type Verdict = string;

export interface SegmentScore {
  index: number;
  start_seconds: number;
  end_seconds: number;
  fake_score: number;
  verdict: Verdict;
}

export interface StageTimings {
  decode_ms: number;
  features_ms: number;
  queue_ms: number;
  inference_ms: number;
  total_ms: number;
}

export interface ClassifyResponse {
  verdict: Verdict;
  fake_score: number;
  threshold: number;
  segments: SegmentScore[];
  model: string;
  model_version: number;
  duration_seconds: number;
  timings: StageTimings | null;
  request_id: string;
}

export interface ModelInfo {
  name: string;
  version: number;
  serving: boolean;
  created_at: string;
  sha256: string;
  threshold: number;
  execution_provider: string;
  sample_rate: number;
  segment_seconds: number;
  frames: number;
  features: number;
  test_metrics: Record<string, number>;
  /** Validation-split metrics (unseen voices of trained engines): read beside test_metrics. */
  validation_metrics: Record<string, number>;
  manifest_json: string;
}

export interface ClientOptions {
  apiKey?: string;
  credentials?: ChannelCredentials;
  protoDir?: string;
}

export const DEFAULT_PROTO_DIR: string;
export const IN_CLUSTER_TARGET: string;
export const SERVICE_CONFIG: object;
export const CHANNEL_OPTIONS: Record<string, string | number>;
export const status: typeof grpcStatus;

export function createClient(target: string, options?: ClientOptions): Client;
export function classifyFile(
  client: Client,
  file: string,
  options?: { model?: string; version?: number; seconds?: number },
): Promise<ClassifyResponse>;
export const MAX_BATCH_CLIPS: number;
/** One clip's answer of a batch: its response, or its own error. */
export type BatchResult = { response: ClassifyResponse; error?: undefined } | { error: VericlipError; response?: undefined };
export function classifyBatch(
  client: Client,
  clips: Array<string | Buffer | Uint8Array | object>,
  options?: { model?: string; version?: number; seconds?: number },
): Promise<BatchResult[]>;
export function listModels(client: Client, seconds?: number): Promise<ModelInfo[]>;
export function streamFile(
  client: Client,
  file: string,
  options?: { chunkBytes?: number; seconds?: number; model?: string; version?: number },
): Promise<{ segments: SegmentScore[]; summary: ClassifyResponse }>;
export interface StreamResponse {
  segment?: SegmentScore | null;
  summary?: ClassifyResponse | null;
  message?: 'segment' | 'summary';
}
export interface PcmStream {
  /** Sends one captured chunk of PCM (any size). */
  write(chunk: Buffer | Uint8Array): boolean;
  /** No more audio: the server scores the tail and sends the summary. */
  end(): void;
  cancel(): void;
  /** Each window's verdict as soon as it is in, then the summary. */
  responses: AsyncIterableIterator<StreamResponse>;
}
export function streamPcm(
  client: Client,
  options: {
    sampleRate: number;
    encoding?: 's16le' | 'f32le';
    channels?: number;
    stepSeconds?: number;
    model?: string;
    version?: number;
    seconds?: number;
  },
): PcmStream;
export function errorName(err: ServiceError | Error | null | undefined): string;

/** A failed call as the helpers reject it: grpc-js's error plus what the server said. */
export interface VericlipError extends ServiceError {
  /** The stable error name (google.rpc.ErrorInfo reason), e.g. "queue_full". */
  reason: string;
  /** The request id the server answered with; quote it when reporting a problem. */
  requestId: string;
  /** Seconds the server advises before a retry (RetryInfo); null: a retry does not help. */
  retryDelay: number | null;
}
export function typeError(err: ServiceError): VericlipError;
