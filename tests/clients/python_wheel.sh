#!/usr/bin/env bash
# The Python client as a user installs it: scripts/release-clients.sh builds the wheel, which is
# installed into two fresh venvs outside the repository, one with the lowest runtimes the package
# allows (protobuf 4.21.6, grpcio 1.62.3) and one with the newest tested (protobuf 7.36.2, grpcio
# 1.85.3), from the package registry; in each, the package's example (clients/python/example.py,
# copied out of the repository) classifies the bundled real samples against a real server, and
# a batch goes through `classify_batch`. Passes when both print a verdict for every sample.
# Usage: tests/clients/python_wheel.sh GRPC_ADDR     (VERICLIP_API_KEY: the server's key, if any)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
addr=${1:?usage: python_wheel.sh GRPC_ADDR}
work=$(mktemp -d -t vericlip-py-wheel.XXXXXX)
trap 'rm -rf "$work"' EXIT
version=$(tr -d ' \n' < "$root/clients/VERSION")
bash "$root/scripts/release-clients.sh" "$work/release" 2>/dev/null
wheel=$work/release/vericlip_client-$version-py3-none-any.whl
[ -f "$wheel" ] || { echo "python_wheel: no wheel at $wheel" >&2; exit 1; }
cp "$root/clients/python/example.py" "$work/"
samples=("$root"/models/samples/real/*.wav)
failed=0
for end in "low protobuf==4.21.6 grpcio==1.62.3" "high protobuf==7.36.2 grpcio==1.85.3"; do
    read -r name protobuf grpcio <<<"$end"
    venv=$work/venv-$name
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "$wheel" "$protobuf" "$grpcio"
    got=$("$venv/bin/python" -c 'import google.protobuf, grpc; print(google.protobuf.__version__, grpc.__version__)')
    [ "$got" = "${protobuf#protobuf==} ${grpcio#grpcio==}" ] || { echo "python_wheel: $name: runtimes $got" >&2; failed=1; continue; }
    # From outside the repository: the import can only come from the installed wheel.
    out=$(cd "$work" && "$venv/bin/python" -W error::DeprecationWarning example.py "$addr" "${samples[@]}" 2>&1) \
        || { echo "python_wheel: $name: the example failed: $out" >&2; failed=1; continue; }
    for f in "${samples[@]}"; do
        grep -Eq "^$f: (real|fake|no_speech) fake_score=" <<<"$out" \
            || { echo "python_wheel: $name: no verdict for $f in: $out" >&2; failed=1; }
    done
    batch=$(cd "$work" && "$venv/bin/python" - "$addr" "${samples[@]}" <<'PY'
import os, sys
import vericlip_client as vc
assert os.path.isfile(vc.PROTO_PATH), vc.PROTO_PATH
assert vc.pb2.__name__ == "vericlip_client.v1.vericlip_pb2", vc.pb2.__name__
with vc.connect(sys.argv[1], api_key=os.environ.get("VERICLIP_API_KEY")) as client:
    results = client.classify_batch(sys.argv[2:] + [b"not audio"])
print(" ".join(vc.verdict_name(r.verdict) if isinstance(r, vc.pb2.ClassifyResponse) else r.name for r in results))
PY
    ) || { echo "python_wheel: $name: the batch failed: $batch" >&2; failed=1; continue; }
    grep -Eq "^((real|fake|no_speech) ){${#samples[@]}}undecodable_audio$" <<<"$batch" \
        || { echo "python_wheel: $name: batch printed $batch" >&2; failed=1; }
    (cd "$work" && "$venv/bin/python" -c 'import vericlip' 2>/dev/null) \
        && { echo "python_wheel: $name: the wheel installs a generic top-level \`vericlip\`" >&2; failed=1; }
    echo "python_wheel: $name end ($got): the example and a batch work (${#samples[@]} files)"
done
exit $failed
