'use strict';
// Live streaming: feeds a 16-bit mono or stereo WAV file to Vericlip in real time, 100 ms at a
// time (as a microphone would deliver it), and prints each window's verdict the moment it
// arrives, with the seconds of audio sent so far; then the summary.
//   node live_example.js 127.0.0.1:50051 ../../models/samples/fake/espeak_en__computer_voice.wav
const fs = require('node:fs');
const { createClient, streamPcm } = require('.');

/**
 * The PCM of a canonical 16-bit WAV file (RIFF, fmt, data chunks).
 * @param {string} file
 */
function readWav(file) {
  const b = fs.readFileSync(file);
  let at = 12;
  let fmt = null;
  while (at + 8 <= b.length) {
    const id = b.toString('ascii', at, at + 4);
    const size = b.readUInt32LE(at + 4);
    if (id === 'fmt ') fmt = { channels: b.readUInt16LE(at + 10), rate: b.readUInt32LE(at + 12), bits: b.readUInt16LE(at + 22) };
    if (id === 'data' && fmt && fmt.bits === 16) return { ...fmt, pcm: b.subarray(at + 8, at + 8 + size) };
    at += 8 + size + (size % 2);
  }
  throw new Error(`${file}: not a 16-bit PCM WAV file`);
}

/**
 * @param {string} target
 * @param {string} file
 */
async function main(target, file) {
  const { rate, channels, pcm } = readWav(file);
  const client = createClient(target, { apiKey: process.env.VERICLIP_API_KEY });
  const stream = streamPcm(client, { sampleRate: rate, channels });
  const chunk = (rate / 10) * 2 * channels; // 100 ms
  let sent = 0;
  const start = Date.now();
  const feed = (async () => {
    for (let i = 0; i < pcm.length; i += chunk) {
      stream.write(pcm.subarray(i, i + chunk));
      sent = Math.min(pcm.length, i + chunk) / (2 * channels * rate);
      await new Promise((r) => setTimeout(r, Math.max(0, start + sent * 1000 - Date.now())));
    }
    stream.end();
  })();
  try {
    for await (const m of stream.responses) {
      if (m.segment) {
        const s = m.segment;
        console.log(`after ${sent.toFixed(1)} s sent: window ${s.index} ${s.start_seconds.toFixed(1)}-${s.end_seconds.toFixed(1)} s ${s.verdict} ${s.fake_score.toFixed(4)}`);
      } else if (m.summary) {
        console.log(`summary: ${m.summary.verdict} ${m.summary.fake_score.toFixed(4)} request_id=${m.summary.request_id}`);
      }
    }
    await feed;
  } finally {
    client.close();
  }
}

main(process.argv[2] || '127.0.0.1:50051', process.argv[3]).catch((err) => {
  console.error(err.reason ? `${err.reason}: ${err.details} [request_id ${err.requestId}]` : err);
  process.exit(1);
});
