"""Classifies audio files with Vericlip over gRPC and prints one verdict per file, then streams the
first file. Needs the package: `pip install clients/python`.

    python example.py 127.0.0.1:50051 ../../models/samples/real/*.wav
    VERICLIP_API_KEY=secret python example.py dns:///vericlip-server-headless.vericlip.svc.cluster.local:50051 clip.wav
"""

import os
import sys

import grpc

import vericlip_client as vc


def main(target, files):
    failed = False
    with vc.connect(target, api_key=os.environ.get("VERICLIP_API_KEY")) as client:
        for m in client.list_models():
            print(f"model {m.name} v{m.version}{' (serving)' if m.serving else ''}")
        for path in files:
            try:
                r = client.classify_file(path)
            except grpc.RpcError as e:
                print(f"{path}: {e.code().name} {vc.error_name(e)}: {e.details()}", file=sys.stderr)
                failed = True
                continue
            print(f"{path}: {vc.verdict_name(r.verdict)} fake_score={r.fake_score:.4f} threshold={r.threshold:.4f}")
        if files:
            for m in client.stream_file(files[0]):
                if m.HasField("segment"):
                    s = m.segment
                    print(f"  segment {s.index} {s.start_seconds:.1f}-{s.end_seconds:.1f} s: {vc.verdict_name(s.verdict)}")
                else:
                    print(f"  stream summary: {vc.verdict_name(m.summary.verdict)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051", sys.argv[2:]))
