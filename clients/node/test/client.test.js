'use strict';
// Runs against a real vericlip-server: tests/api/run.sh starts one with an API key and sets the
// environment below. Without a server the tests fail and say so; they never skip.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const {
  MAX_BATCH_CLIPS, SERVICE_CONFIG, classifyBatch, classifyFile, createClient, errorName, listModels, status, streamFile,
} = require('..');

function env(key) {
  const v = process.env[key];
  assert.ok(v, `${key} is not set: run tests/api/run.sh, which starts a server and sets it`);
  return v;
}

function samples() {
  const root = env('VERICLIP_SAMPLES');
  const files = ['real', 'fake'].flatMap((d) => fs.readdirSync(path.join(root, d))
    .filter((f) => f.endsWith('.wav')).map((f) => path.join(root, d, f)));
  assert.ok(files.length >= 2, `no samples under ${root}`);
  return files.sort();
}

function client(apiKey = env('VERICLIP_API_KEY')) {
  return createClient(env('VERICLIP_GRPC_ADDR'), { apiKey });
}

test('ListModels shows exactly one served vericlip-lstm version', async () => {
  const c = client();
  try {
    const models = await listModels(c);
    const served = models.filter((m) => m.name === 'vericlip-lstm' && m.serving);
    assert.equal(served.length, 1, JSON.stringify(models.map((m) => [m.name, m.version, m.serving])));
    assert.ok(served[0].threshold > 0 && served[0].threshold < 1 && served[0].sha256.length === 64);
  } finally {
    c.close();
  }
});

test('Classify gives every bundled sample the score the HTTP API gave', async () => {
  const want = JSON.parse(fs.readFileSync(env('VERICLIP_EXPECT'), 'utf8'));
  const c = client();
  try {
    for (const file of samples()) {
      const name = path.basename(file);
      const r = await classifyFile(c, file);
      assert.ok(name in want, `${name}: no expected score`);
      assert.ok(Math.abs(r.fake_score - want[name]) < 1e-5, `${name}: ${r.fake_score} vs ${want[name]}`);
      assert.equal(r.verdict, r.fake_score >= r.threshold ? 'VERDICT_FAKE' : 'VERDICT_REAL', name);
      assert.equal(r.model, 'vericlip-lstm');
      assert.ok(r.model_version >= 1 && r.segments.length >= 1, name);
    }
  } finally {
    c.close();
  }
});

test('ClassifyBatch answers each clip in order; a bad clip is its own error', async () => {
  const want = JSON.parse(fs.readFileSync(env('VERICLIP_EXPECT'), 'utf8'));
  const files = samples();
  const c = client();
  try {
    const results = await classifyBatch(c, [files[0], Buffer.from('definitely not audio'), fs.readFileSync(files[1])]);
    assert.equal(results.length, 3);
    for (const [i, file] of [[0, files[0]], [2, files[1]]]) {
      const r = results[i].response;
      assert.ok(r && Math.abs(r.fake_score - want[path.basename(file)]) < 1e-5, `clip ${i}: ${JSON.stringify(results[i])}`);
    }
    const e = results[1].error;
    assert.ok(e instanceof Error, JSON.stringify(results[1]));
    assert.equal(e.code, status.INVALID_ARGUMENT);
    assert.equal(e.reason, 'undecodable_audio');
    assert.equal(e.requestId, results[0].response.request_id);
    await assert.rejects(classifyBatch(c, Array(MAX_BATCH_CLIPS + 1).fill(Buffer.from('x'))),
      (err) => err.code === status.INVALID_ARGUMENT && err.reason === 'batch_too_large');
  } finally {
    c.close();
  }
});

test('ClassifyStream of a file sends its segments in order, then a summary', async () => {
  const file = samples()[0];
  const c = client();
  try {
    const whole = await classifyFile(c, file);
    const { segments, summary } = await streamFile(c, file, { chunkBytes: 4096 });
    assert.ok(segments.length >= 1);
    assert.deepEqual(segments.map((s) => s.index), segments.map((_, i) => i));
    assert.equal(summary.segments.length, segments.length);
    assert.equal(summary.duration_seconds, whole.duration_seconds);
    assert.equal(summary.model, whole.model);
  } finally {
    c.close();
  }
});

test('errors carry their status code and stable name', async () => {
  const c = client();
  try {
    await assert.rejects(
      new Promise((resolve, reject) => c.Classify({ encoded: Buffer.from('definitely not audio') },
        (err, r) => (err ? reject(err) : resolve(r)))),
      (err) => err.code === status.INVALID_ARGUMENT && errorName(err) === 'undecodable_audio',
    );
  } finally {
    c.close();
  }
  const noKey = client('');
  try {
    await assert.rejects(listModels(noKey),
      (err) => err.code === status.UNAUTHENTICATED && errorName(err) === 'unauthenticated');
  } finally {
    noKey.close();
  }
});

test('a failed call rejects with its reason, request id and retry advice', async () => {
  const c = client();
  try {
    await assert.rejects(classifyFile(c, '/dev/null'), (err) => {
      assert.equal(err.code, status.INVALID_ARGUMENT);
      assert.equal(err.reason, 'empty_audio');
      assert.ok(err.requestId.length > 0, 'a request id');
      assert.equal(err.retryDelay, null);
      return true;
    });
  } finally {
    c.close();
  }
});

/** The empty server's count of Classify calls it answered UNAVAILABLE. */
async function attempts() {
  const text = await (await fetch(`http://${env('VERICLIP_EMPTY_HTTP')}/metrics`)).text();
  const series = 'vericlip_requests_total{rpc="Classify",code="UNAVAILABLE"} ';
  const line = text.split('\n').find((l) => l.startsWith(series));
  return line ? Number(line.slice(series.length)) : 0;
}

test('UNAVAILABLE is retried by the service config: the server sees maxAttempts calls', async () => {
  const c = createClient(env('VERICLIP_EMPTY_GRPC_ADDR'));
  try {
    const before = await attempts();
    await assert.rejects(classifyFile(c, samples()[0]), (err) => {
      assert.equal(err.reason, 'unavailable');
      assert.ok(err.retryDelay > 0, `retry advice ${err.retryDelay}`);
      return true;
    });
    assert.equal(await attempts() - before, SERVICE_CONFIG.methodConfig[0].retryPolicy.maxAttempts);
  } finally {
    c.close();
  }
});
