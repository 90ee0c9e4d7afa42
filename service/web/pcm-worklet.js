// AudioWorklet: mixes the microphone's channels to mono and posts f32 PCM chunks of about
// 100 ms (at the context's sample rate) to the page, which sends them over the WebSocket.
class PcmCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.size = Math.max(128, Math.round(sampleRate / 10 / 128) * 128);
    this.buf = new Float32Array(this.size);
    this.n = 0;
    this.running = true;
    this.port.onmessage = (e) => {
      if (e.data === 'flush' || e.data === 'stop') {
        if (this.n > 0) this.post();
        if (e.data === 'stop') this.running = false;
        this.port.postMessage({ type: 'flushed' });
      }
    };
  }

  post() {
    const chunk = this.buf.slice(0, this.n);
    let peak = 0;
    for (let i = 0; i < chunk.length; i++) peak = Math.max(peak, Math.abs(chunk[i]));
    this.port.postMessage({ type: 'pcm', pcm: chunk, peak }, [chunk.buffer]);
    this.n = 0;
  }

  process(inputs) {
    const input = inputs[0];
    if (!this.running) return false;
    if (!input || input.length === 0) return true;
    const frames = input[0].length;
    const k = 1 / input.length;
    for (let i = 0; i < frames; i++) {
      let s = 0;
      for (let c = 0; c < input.length; c++) s += input[c][i];
      this.buf[this.n++] = s * k;
      if (this.n === this.size) this.post();
    }
    return true;
  }
}

registerProcessor('pcm-capture', PcmCapture);
