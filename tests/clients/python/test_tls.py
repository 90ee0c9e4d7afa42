"""The Python grpcio client over TLS (and mutual TLS) with an API key, against a running
vericlip-server configured with `[tls]` and `[auth]`. Exits non-zero with the reason on any
mismatch.

usage: test_tls.py --addr HOST:PORT --ca ca.pem --api-key KEY --clip FILE
                   [--client-cert c.pem --client-key c.key]
"""

import argparse
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from test_client import check, pb2, pb2_grpc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    # Unused: the stubs come from the client package (clients/python); accepted for old callers.
    ap.add_argument("--proto-dir")
    ap.add_argument("--ca", required=True)
    ap.add_argument("--api-key", required=True)
    ap.add_argument("--clip", required=True)
    ap.add_argument("--client-cert")
    ap.add_argument("--client-key")
    args = ap.parse_args()
    root = open(args.ca, "rb").read()
    mutual = args.client_cert is not None
    chain = open(args.client_cert, "rb").read() if mutual else None
    key = open(args.client_key, "rb").read() if mutual else None

    creds = grpc.ssl_channel_credentials(root_certificates=root, private_key=key, certificate_chain=chain)
    # The test certificate is issued to "localhost"; the address is 127.0.0.1.
    options = [("grpc.ssl_target_name_override", "localhost")]
    channel = grpc.secure_channel(args.addr, creds, options=options)
    grpc.channel_ready_future(channel).result(timeout=30)

    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    check(health.status == health_pb2.HealthCheckResponse.SERVING, "health over TLS needs no API key")

    stub = pb2_grpc.VericlipStub(channel)
    request = pb2.ClassifyRequest(encoded=open(args.clip, "rb").read())
    try:
        stub.Classify(request, timeout=30)
        check(False, "a call without an API key is refused")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.UNAUTHENTICATED, f"no key -> UNAUTHENTICATED ({e.code()})")
    try:
        stub.Classify(request, timeout=30, metadata=[("authorization", "Bearer wrong")])
        check(False, "a call with a wrong API key is refused")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.UNAUTHENTICATED, f"wrong key -> UNAUTHENTICATED ({e.code()})")
    r = stub.Classify(request, timeout=30, metadata=[("authorization", f"Bearer {args.api_key}")])
    check(len(r.segments) >= 1 and 0.0 <= r.fake_score <= 1.0, "the right key classifies over TLS")

    print(f"python tls client: all checks passed (mutual TLS: {mutual})")


if __name__ == "__main__":
    sys.exit(main())
