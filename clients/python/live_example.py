"""Live streaming: feeds a 16-bit WAV file to Vericlip in real time, 100 ms at a time (as a
microphone would deliver it), and prints each window's verdict the moment it arrives, with the
seconds of audio sent so far; then the summary. Needs the package: `pip install clients/python`.

    python live_example.py 127.0.0.1:50051 ../../models/samples/real/ast_es_co__00100_0.wav
"""

import os
import sys
import threading
import time
import wave

import vericlip_client as vc


def main(target, path):
    with wave.open(path, "rb") as w:
        if w.getsampwidth() != 2:
            sys.exit(f"{path}: 16-bit PCM WAV only")
        rate, channels = w.getframerate(), w.getnchannels()
        frames = w.readframes(w.getnframes())
    chunk = rate // 10 * 2 * channels  # 100 ms
    sent = {"seconds": 0.0}
    lock = threading.Lock()

    def captured():
        """What a capture callback would hand over: 100 ms of audio every 100 ms."""
        start = time.monotonic()
        for i in range(0, len(frames), chunk):
            yield frames[i:i + chunk]
            with lock:
                sent["seconds"] = (i + chunk) / (2 * channels * rate)
            time.sleep(max(0.0, start + sent["seconds"] - time.monotonic()))

    with vc.connect(target, api_key=os.environ.get("VERICLIP_API_KEY")) as client:
        for m in client.stream_pcm(captured(), sample_rate=rate, channels=channels, timeout=120):
            with lock:
                at = sent["seconds"]
            if m.HasField("segment"):
                s = m.segment
                print(f"after {at:.1f} s sent: window {s.index} {s.start_seconds:.1f}-{s.end_seconds:.1f} s "
                      f"{vc.verdict_name(s.verdict)} {s.fake_score:.4f}", flush=True)
            else:
                print(f"summary: {vc.verdict_name(m.summary.verdict)} {m.summary.fake_score:.4f} "
                      f"request_id={m.summary.request_id}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
