#!/usr/bin/env bash
# Legate in one minute, offline: an echo upstream, legate-proxy and legate-controller on
# a copy of manifests/examples/, then a few requests with the exact curl commands shown.
#
#   scripts/demo.sh [BUILD_DIR]      (make demo calls it after building)
#   DEMO_KEEP=1 scripts/demo.sh      keep everything running until Ctrl-C
#
# Ports: the proxy listens on 127.0.0.1:8080 and the admin on 127.0.0.1:8877; when one is
# taken another free port is used and the demo says so. The demo upstream listens on
# 127.0.0.1:18090, the port manifests/examples/demo.yaml points at.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${1:-$REPO/build}"
case "$BUILD" in /*) ;; *) BUILD="$REPO/$BUILD" ;; esac
PY=/usr/bin/python3
PROXY_BIN="$BUILD/legate-proxy"
CONTROLLER_BIN="$BUILD/legate-controller"

for b in "$PROXY_BIN" "$CONTROLLER_BIN"; do
    if [ ! -x "$b" ]; then
        echo "demo: $b is missing; run make first" >&2
        exit 1
    fi
done

WORK="$(mktemp -d /tmp/legate-demo.XXXXXX)"
SRC="$WORK/examples"
SOCK="$WORK/control.sock"
PIDS=()

cleanup() {
    # Stop in reverse start order; each pid is one we started.
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        kill "${PIDS[i]}" 2>/dev/null || true
    done
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        wait "${PIDS[i]}" 2>/dev/null || true
    done
    rm -f "$SOCK"
    echo
    echo "demo: stopped; logs kept in $WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Prints "yes" when nothing listens on 127.0.0.1:$1.
port_free() {
    "$PY" - "$1" <<'EOF'
import socket, sys
s = socket.socket()
# As the proxy binds: SO_REUSEADDR, so old TIME_WAIT connections do not count as taken.
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
    print("yes")
except OSError:
    print("no")
EOF
}

free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

pick_port() { # pick_port WANTED WHAT
    if [ "$(port_free "$1")" = yes ]; then
        echo "$1"
    else
        local p
        p="$(free_port)"
        echo "demo: port $1 ($2) is taken; using $p instead" >&2
        echo "$p"
    fi
}

# Polls a URL until it answers 200, for at most $2 seconds.
wait_200() {
    local url="$1" deadline=$((SECONDS + $2))
    while [ "$SECONDS" -lt "$deadline" ]; do
        if [ "$(curl -s -o /dev/null -w '%{http_code}' --noproxy '*' "$url" 2>/dev/null)" = 200 ]; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

show() { # show "COMMAND" : echoes the command, then runs it
    echo
    echo "\$ $1"
    bash -c "$1"
}

PORT="$(pick_port 8080 proxy)"
ADMIN="$(pick_port 8877 admin)"
UPSTREAM_PORT="$(pick_port 18090 'demo upstream')"

mkdir -p "$SRC"
cp "$REPO"/manifests/examples/*.yaml "$SRC/"
if [ "$UPSTREAM_PORT" != 18090 ]; then
    sed -i "s/127\.0\.0\.1:18090/127.0.0.1:$UPSTREAM_PORT/" "$SRC/demo.yaml"
fi

echo "demo: starting the echo upstream on 127.0.0.1:$UPSTREAM_PORT"
"$PY" "$REPO/test/upstream/echo.py" --listen "127.0.0.1:$UPSTREAM_PORT" --name demo \
    --log "$WORK/upstream-requests.jsonl" >"$WORK/upstream.log" 2>&1 &
PIDS+=($!)

echo "demo: starting legate-proxy on 127.0.0.1:$PORT (admin 127.0.0.1:$ADMIN)"
"$PROXY_BIN" --listen "127.0.0.1:$PORT" --admin "127.0.0.1:$ADMIN" --control-socket "$SOCK" \
    >"$WORK/proxy.log" 2>&1 &
PIDS+=($!)

echo "demo: starting legate-controller on $SRC"
"$CONTROLLER_BIN" --control-socket "$SOCK" --source-dir "$SRC" >"$WORK/controller.log" 2>&1 &
PIDS+=($!)

if ! wait_200 "http://127.0.0.1:$ADMIN/ready" 15; then
    echo "demo: the proxy did not become ready within 15 s; the logs:" >&2
    tail -n 20 "$WORK"/*.log >&2
    exit 1
fi
# Ready means a first table is in; wait for the one holding /demo/ (the controller may
# have pushed before reading every file).
deadline=$((SECONDS + 10))
has_demo_route() {
    curl -s --noproxy '*' "http://127.0.0.1:$ADMIN/routes" | "$PY" -c '
import json, sys
sys.exit(0 if any(r.get("prefix") == "/demo/" for r in json.load(sys.stdin)["routes"]) else 1)
' 2>/dev/null
}
until has_demo_route; do
    if [ "$SECONDS" -ge "$deadline" ]; then
        echo "demo: /demo/ never showed up in /routes; see $WORK/controller.log" >&2
        exit 1
    fi
    sleep 0.1
done
# Wait until the upstream answers too (it starts in parallel with the proxy).
wait_200 "http://127.0.0.1:$UPSTREAM_PORT/" 10 || true

echo
echo "== a request through Legate: /demo/hello arrives upstream as /hello"
show "curl -s localhost:$PORT/demo/hello"
echo
echo "== the route table the proxy serves (trimmed)"
show "curl -s localhost:$ADMIN/routes | $PY -m json.tool | head -n 40"
echo
echo "== no Mapping matches: the proxy answers 404 itself"
show "curl -s -i localhost:$PORT/no/such/route"

echo
echo "logs: $WORK/proxy.log, $WORK/controller.log, $WORK/upstream.log"

if [ "${DEMO_KEEP:-0}" = 1 ]; then
    cat <<EOF

Legate keeps running (Ctrl-C stops it). To add a route live, edit the controller's copy
of the examples; no restart needed:

    \$EDITOR $SRC/demo.yaml        # e.g. change "prefix: /demo/" to "prefix: /hello/"
    curl -s localhost:$PORT/hello/world
    curl -s localhost:$ADMIN/routes | $PY -m json.tool

or drop a new Service manifest into $SRC.
EOF
    wait
fi
