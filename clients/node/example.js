'use strict';
// Classifies audio files with Vericlip over gRPC and prints one verdict per file.
//   node example.js 127.0.0.1:50051 ../../models/samples/real/*.wav
//   VERICLIP_API_KEY=secret node example.js dns:///vericlip-server-headless.vericlip.svc.cluster.local:50051 clip.wav
const { classifyFile, createClient, errorName, listModels } = require('./index');

/** @param {string} target @param {string[]} files */
async function main(target, files) {
  const client = createClient(target, { apiKey: process.env.VERICLIP_API_KEY });
  const models = await listModels(client);
  console.log(`models: ${models.map((m) => `${m.name} v${m.version}${m.serving ? ' (serving)' : ''}`).join(', ')}`);
  for (const file of files) {
    try {
      const r = await classifyFile(client, file);
      console.log(`${file}: ${r.verdict} fake_score=${r.fake_score.toFixed(4)} threshold=${r.threshold.toFixed(4)}`);
    } catch (e) {
      const err = /** @type {Error} */ (e);
      console.error(`${file}: ${errorName(err)}: ${err.message}`);
      process.exitCode = 1;
    }
  }
  client.close();
}

main(process.argv[2] || '127.0.0.1:50051', process.argv.slice(3));
