'use strict';
// A thin Node client for the Vericlip gRPC API (vericlip.v1), loaded from proto/ at run time with
// @grpc/proto-loader: a channel with the settings docs/OPERATIONS.md recommends, the API key, and
// helpers that classify or stream a file. Types: index.d.ts.

const fs = require('node:fs');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

/** The repository's proto/ folder (override with `protoDir`). */
const DEFAULT_PROTO_DIR = path.join(__dirname, '..', '..', 'proto');

/** The headless Service's DNS name: the resolver returns every ready pod, round robin uses each. */
const IN_CLUSTER_TARGET = 'dns:///vericlip-server-headless.vericlip.svc.cluster.local:50051';

/**
 * Round robin over every address the target resolves to, and a retry (with backoff, on another
 * connection) of a call that failed with UNAVAILABLE: a pod shutting down or not ready yet.
 * Other codes are not retried here; docs/API.md says which a caller may retry.
 */
const SERVICE_CONFIG = {
  loadBalancingConfig: [{ round_robin: {} }],
  methodConfig: [{
    name: [{ service: 'vericlip.v1.Vericlip' }],
    retryPolicy: {
      maxAttempts: 4,
      initialBackoff: '0.2s',
      maxBackoff: '5s',
      backoffMultiplier: 2,
      retryableStatusCodes: ['UNAVAILABLE'],
    },
  }],
};

const CHANNEL_OPTIONS = {
  'grpc.service_config': JSON.stringify(SERVICE_CONFIG),
  // A PING every 60 s on a connection with calls in flight finds a dead peer (a node gone) in
  // 80 s rather than at the TCP timeout.
  'grpc.keepalive_time_ms': 60000,
  'grpc.keepalive_timeout_ms': 20000,
  'grpc.max_receive_message_length': 64 << 20,
  'grpc.max_send_message_length': 64 << 20,
};

function loadProto(protoDir = DEFAULT_PROTO_DIR) {
  const definition = protoLoader.loadSync('vericlip/v1/vericlip.proto', {
    includeDirs: [protoDir],
    // Field names as in the .proto (fake_score), as docs/API.md and the other clients spell them.
    keepCase: true,
    // Enum values as their names ("VERDICT_FAKE"); uint64 as strings would lose nothing, but
    // versions are small, so numbers read better.
    enums: String,
    longs: Number,
    defaults: true,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(definition).vericlip.v1;
}

/** Adds `authorization: Bearer KEY` to every call (works on plaintext channels too). */
function apiKeyInterceptor(apiKey) {
  return (options, nextCall) => new grpc.InterceptingCall(nextCall(options), {
    start(metadata, listener, next) {
      metadata.set('authorization', `Bearer ${apiKey}`);
      next(metadata, listener);
    },
  });
}

/**
 * A Vericlip client. `target`: "127.0.0.1:50051", or IN_CLUSTER_TARGET in Kubernetes.
 * Options: apiKey, credentials (default plaintext), protoDir.
 */
function createClient(target, { apiKey, credentials, protoDir } = {}) {
  const v1 = loadProto(protoDir);
  const options = { ...CHANNEL_OPTIONS };
  if (apiKey) options.interceptors = [apiKeyInterceptor(apiKey)];
  return new v1.Vericlip(target, credentials || grpc.credentials.createInsecure(), options);
}

function deadline(seconds) {
  return new Date(Date.now() + seconds * 1000);
}

/** Calls a unary method as a promise. */
function unary(client, method, request, seconds = 30) {
  return new Promise((resolve, reject) => {
    client[method](request, { deadline: deadline(seconds) }, (err, response) => (err ? reject(err) : resolve(response)));
  });
}

/** Classifies a whole file (WAV, FLAC, MP3, OGG Vorbis). */
function classifyFile(client, file, { model = '', version = 0, seconds = 30 } = {}) {
  return unary(client, 'Classify', { encoded: fs.readFileSync(file), model, version }, seconds);
}

/** The models and versions the server has loaded. */
function listModels(client, seconds = 10) {
  return unary(client, 'ListModels', {}, seconds).then((r) => r.models);
}

/**
 * Streams a file to ClassifyStream in chunks (an encoded file is decoded and scored on
 * half-close); resolves to { segments, summary }.
 */
function streamFile(client, file, { chunkBytes = 16384, seconds = 60, model = '', version = 0 } = {}) {
  const audio = fs.readFileSync(file);
  return new Promise((resolve, reject) => {
    const call = client.ClassifyStream({ deadline: deadline(seconds) });
    const segments = [];
    let summary = null;
    call.on('data', (m) => {
      if (m.segment) segments.push(m.segment);
      if (m.summary) summary = m.summary;
    });
    call.on('error', reject);
    call.on('end', () => (summary ? resolve({ segments, summary }) : reject(new Error('stream ended without a summary'))));
    call.write({ config: { encoded: true, model, version } });
    for (let i = 0; i < audio.length; i += chunkBytes) call.write({ audio: audio.subarray(i, i + chunkBytes) });
    call.end();
  });
}

/** The stable error name (e.g. "undecodable_audio") of a failed call, from its trailers. */
function errorName(err) {
  const v = err && err.metadata ? err.metadata.get('vericlip-error') : [];
  return v.length ? String(v[0]) : '';
}

module.exports = {
  DEFAULT_PROTO_DIR,
  IN_CLUSTER_TARGET,
  SERVICE_CONFIG,
  CHANNEL_OPTIONS,
  createClient,
  classifyFile,
  listModels,
  streamFile,
  errorName,
  status: grpc.status,
};
