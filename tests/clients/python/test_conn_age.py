"""Continuous unary calls from the Python grpcio client for a while; prints how many succeeded
and failed. Run against a server with a short `grpc.max_connection_age_seconds`: the server
recycles the connection (GOAWAY) and grpcio reconnects, retrying transparently the calls that
never reached the server, so none may fail.

usage: test_conn_age.py --addr HOST:PORT --clip FILE --seconds 5
"""

import argparse
import sys
import time

import grpc

from test_client import pb2, pb2_grpc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    # Unused: the stubs come from the client package (clients/python); accepted for old callers.
    ap.add_argument("--proto-dir")
    ap.add_argument("--clip", required=True)
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    channel = grpc.insecure_channel(args.addr)
    stub = pb2_grpc.VericlipStub(channel)
    request = pb2.ClassifyRequest(encoded=open(args.clip, "rb").read())
    ok, failed, first_error = 0, 0, None
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        try:
            stub.Classify(request, timeout=10)
            ok += 1
        except grpc.RpcError as e:
            failed += 1
            first_error = first_error or f"{e.code()}: {e.details()}"
    print(f"conn age: ok={ok} failed={failed} first_error={first_error}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
