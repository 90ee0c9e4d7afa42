#!/usr/bin/env bash
# The Node client as a user installs it: scripts/release-clients.sh builds the npm tarball, then
# clients/node/README.md's own blocks (node-install, node-example as main.js, node-run) run in an
# empty directory outside the repository against a real server. Passes when the program prints a
# verdict and a request id for every sample it was given, and when a small TypeScript consumer of
# the installed package (every RPC of the generated client, the helpers, the message types) passes
# `tsc --noEmit --strict` (the repository's pinned TypeScript and @types/node, clients/node's dev
# dependencies) and a misuse of those types fails it.
# Usage: tests/clients/node_install.sh GRPC_ADDR      (VERICLIP_API_KEY: the server's key, if any)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
addr=${1:?usage: node_install.sh GRPC_ADDR}
work=$(mktemp -d -t vericlip-node-install.XXXXXX)
trap 'rm -rf "$work"' EXIT
readme=$root/clients/node/README.md
block() { python3 "$root/tests/clients/readme_block.py" "$readme" "$1"; }

bash "$root/scripts/release-clients.sh" "$work/release"
place() { sed -e "s#/path/to/vericlip/dist/clients#$work/release#g" -e "s#/path/to/vericlip#$root#g" \
              -e "s#127.0.0.1:50051#$addr#g"; }
{
    echo 'set -euo pipefail'
    block node-install | place
    echo "cat > main.js <<'VERICLIP_EOF'"
    block node-example
    echo 'VERICLIP_EOF'
    block node-run | place
} > "$work/steps.sh"
mkdir "$work/home"
out=$(cd "$work/home" && bash "$work/steps.sh")
echo "$out"
n=0
for f in "$root"/models/samples/real/*.wav; do
    n=$((n + 1))
    grep -E "^$f: VERDICT_(REAL|FAKE|NO_SPEECH) fake_score=[0-9.]+ request_id=[0-9a-f-]+$" <<<"$out" >/dev/null \
        || { echo "node_install: no verdict line for $f" >&2; exit 1; }
done
[ "$n" -gt 0 ] || { echo "node_install: no samples" >&2; exit 1; }

# TypeScript: a consumer of the installed package, checked against its generated types.
cat > "$work/home/myapp/consumer.ts" <<'VERICLIP_EOF'
import { classifyBatch, classifyFile, createClient, listModels, streamPcm } from 'vericlip-client';
import type { ClassifyResponse, ClassifyStreamRequest, Client, ModelInfo, VericlipClient } from 'vericlip-client';

const client: Client = createClient('127.0.0.1:50051', { apiKey: process.env.VERICLIP_API_KEY });
const raw: VericlipClient = client;
// The generated client: every RPC, typed requests and answers.
const stream = raw.ClassifyStream();
const config: ClassifyStreamRequest = { config: { pcm: { encoding: 'PCM_ENCODING_S16LE', sample_rate: 16000, channels: 1 } } };
stream.write(config);
stream.on('data', (m) => { if (m.summary) { const v: string = m.summary.verdict; console.log(v, m.summary.fake_score.toFixed(3)); } });
raw.GetModel({ name: 'vericlip-lstm', version: 0 }, (err, m) => { if (!err && m) console.log(m.canary, m.traffic_fraction); });
raw.ClassifyBatch({ clips: [{ encoded: Buffer.from('x') }] }, (err, r) => {
  if (!err && r) for (const x of r.results) console.log(x.result === 'error' ? x.error?.name : x.response?.fake_score);
});
async function main(): Promise<void> {
  const r: ClassifyResponse = await classifyFile(client, 'clip.wav');
  const segments: number[] = r.segments.map((s) => s.fake_score);
  const models: ModelInfo[] = await listModels(client);
  const canary = models.find((m) => m.canary)?.traffic_fraction ?? 0;
  for (const x of await classifyBatch(client, ['clip.wav', Buffer.from('not audio')])) {
    console.log(x.error ? x.error.reason : x.response.model_version);
  }
  const live = streamPcm(client, { sampleRate: 16000 });
  live.end();
  for await (const m of live.responses) console.log(m.segment?.index, segments.length, canary);
}
void main();
VERICLIP_EOF
# A misuse the types must catch: a field no message has, and a string where a number goes.
cat > "$work/home/myapp/misuse.ts" <<'VERICLIP_EOF'
import { createClient } from 'vericlip-client';
const c = createClient('127.0.0.1:50051');
c.GetModel({ name: 'x', version: 0, no_such_field: 1 }, () => undefined);
c.ListModels({}, (_e, r) => { const n: number = r!.models[0].name; console.log(n); });
VERICLIP_EOF
tsc() { "$root/clients/node/node_modules/.bin/tsc" --noEmit --strict --module commonjs --target es2020 \
    --moduleResolution node --types node --typeRoots "$root/clients/node/node_modules/@types" "$@"; }
(cd "$work/home/myapp" && tsc consumer.ts) || { echo "node_install: the TypeScript consumer does not type-check" >&2; exit 1; }
if (cd "$work/home/myapp" && tsc misuse.ts >/dev/null); then
    echo "node_install: a misuse of the generated types type-checks (the types are too loose)" >&2; exit 1
fi
echo "node_install: the README's install and example work in an empty project ($n files classified); a TypeScript consumer type-checks"
