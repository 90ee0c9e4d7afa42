// Types for index.js. The messages and the client's methods are generated from
// proto/vericlip/v1/vericlip.proto into types/ (generate-types.sh, @grpc/proto-loader's
// proto-loader-gen-types, with the options index.js loads the proto with: field names as in the
// .proto, enums as their names, 64-bit integers as numbers, defaults, oneofs); the helpers below
// use them. `Client` is the generated `VericlipClient`: `client.ClassifyStream(...)`,
// `client.GetModel(...)` and every other RPC are typed.
import type { ChannelCredentials, ServiceError, status as grpcStatus } from '@grpc/grpc-js';
import type { VericlipClient } from './types/vericlip/v1/Vericlip';
import type { ClassifyRequest } from './types/vericlip/v1/ClassifyRequest';
import type { ClassifyResponse__Output } from './types/vericlip/v1/ClassifyResponse';
import type { ClassifyStreamResponse__Output } from './types/vericlip/v1/ClassifyStreamResponse';
import type { ModelInfo__Output } from './types/vericlip/v1/ModelInfo';
import type { SegmentScore__Output } from './types/vericlip/v1/SegmentScore';
import type { StageTimings__Output } from './types/vericlip/v1/StageTimings';
import type { Verdict__Output } from './types/vericlip/v1/Verdict';

export type { VericlipClient } from './types/vericlip/v1/Vericlip';
export type { ProtoGrpcType } from './types/vericlip';
export type * from './types/vericlip/v1/ClassifyBatchRequest';
export type * from './types/vericlip/v1/ClassifyBatchResponse';
export type * from './types/vericlip/v1/ClassifyBatchResult';
export type * from './types/vericlip/v1/ClassifyRequest';
export type * from './types/vericlip/v1/ClassifyStreamRequest';
export type * from './types/vericlip/v1/ClipError';
export type * from './types/vericlip/v1/GetModelRequest';
export type * from './types/vericlip/v1/ListModelsRequest';
export type * from './types/vericlip/v1/ListModelsResponse';
export type * from './types/vericlip/v1/PcmFormat';
export type * from './types/vericlip/v1/RawPcm';
export type * from './types/vericlip/v1/RejectedVersion';
export type * from './types/vericlip/v1/StreamConfig';

/** The client createClient returns: the generated VericlipClient (a grpc-js Client). */
export type Client = VericlipClient;
/** "VERDICT_REAL" | "VERDICT_FAKE" | "VERDICT_NO_SPEECH" today; later v1 releases may add values (treat as unknown). */
export type Verdict = Verdict__Output;
/** The messages as the server's answers arrive (every field present, defaults filled in). */
export type SegmentScore = SegmentScore__Output;
export type StageTimings = StageTimings__Output;
export type ClassifyResponse = ClassifyResponse__Output;
export type ModelInfo = ModelInfo__Output;

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
  clips: Array<string | Buffer | Uint8Array | ClassifyRequest>,
  options?: { model?: string; version?: number; seconds?: number },
): Promise<BatchResult[]>;
export function listModels(client: Client, seconds?: number): Promise<ModelInfo[]>;
export function streamFile(
  client: Client,
  file: string,
  options?: { chunkBytes?: number; seconds?: number; model?: string; version?: number },
): Promise<{ segments: SegmentScore[]; summary: ClassifyResponse }>;
export type StreamResponse = ClassifyStreamResponse__Output;
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
