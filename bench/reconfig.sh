#!/usr/bin/env bash
# Reconfiguration latency through the Kubernetes API source: from `kubectl annotate`
# returning to the new route answering 200 through legate-proxy, p50/p99 over >= 50 changes,
# with 10 and with 1 000 annotated Services present (target: p99 < 100 ms at 1 000).
# Uses the test API server (test/kubeapi), the real kubectl and the built binaries.
# Not part of `make test`.
#
# usage: bench/reconfig.sh [--services 10,1000] [--changes 60] [--out FILE|-] [--keep]
#        (results: bench/results/reconfig-YYYYmmdd-HHMMSS.json unless --out)
# env:   LEGATE_BUILD=DIR   where legate-proxy / legate-controller are (default: <repo>/build)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
command -v kubectl >/dev/null || { echo "reconfig: kubectl is needed" >&2; exit 1; }
exec /usr/bin/python3 "$here/reconfig.py" "$@"
