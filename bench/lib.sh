# shellcheck shell=bash disable=SC2154 # PID_<name> variables are set by start_bg (eval)
# Shared helpers for the Legate benchmark harness (bench/proxy.sh, bench/memory.sh).
# Sourced, not executed. Everything runs on 127.0.0.1 and lives under $WORK
# (a mktemp -d directory); every process started here is recorded in
# $WORK/pids and stopped by bench_cleanup (installed as an EXIT trap).

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
LEGATE_BUILD=${LEGATE_BUILD:-$REPO_DIR/build}
BENCH_PIN=${BENCH_PIN:-1}
BENCH_SKIP_LEGATE=${BENCH_SKIP_LEGATE:-0}

# Ports: upstream, nginx, HAProxy, Legate = base + 0..3; Legate admin apart.
PORT_BASE=${BENCH_PORT_BASE:-18080}
UP_PORT=$PORT_BASE
NGINX_PORT=$((PORT_BASE + 1))
HAPROXY_PORT=$((PORT_BASE + 2))
LEGATE_PORT=$((PORT_BASE + 3))
LEGATE_ADMIN_PORT=${BENCH_ADMIN_PORT:-18877}
HOST=127.0.0.1
# nginx keeps at most this many idle upstream connections. It must cover the
# highest concurrency of the benchmark (256): with a smaller pool nginx closes
# and reopens upstream connections on every request above the pool size.
NGINX_UP_KEEPALIVE=${BENCH_NGINX_KEEPALIVE:-256}

# CPU layout on the 2-core machine (see README.md, "Pinning").
CPU_PROXY=0 # the proxy under test, alone
CPU_LOAD=1  # wrk / h2load / idle-connection client
CPU_UP=1    # upstream nginx and legate-controller (idle during runs)
CLK_TCK=$(getconf CLK_TCK)

log() { printf '[bench] %s\n' "$*" >&2; }
die() {
	printf '[bench] ERROR: %s\n' "$*" >&2
	exit 1
}

pin_description() {
	if [ "$BENCH_PIN" = 1 ]; then
		echo "BENCH_PIN=1: proxy under test on CPU $CPU_PROXY (alone); wrk/h2load/idle client on CPU $CPU_LOAD; upstream nginx and legate-controller on CPU $CPU_UP. The 'direct' target therefore runs upstream and load generator on CPU $CPU_UP only (CPU $CPU_PROXY idle)."
	else
		echo "BENCH_PIN=0: nothing pinned; the kernel schedules all processes on both CPUs."
	fi
}

# ---------------------------------------------------------------- dependencies

# need CMD PACKAGE [optional]: make sure CMD exists, installing PACKAGE with
# apt-get when running as root. Returns 1 (instead of dying) when optional.
need() {
	local cmd=$1 pkg=$2 optional=${3:-}
	command -v "$cmd" >/dev/null 2>&1 && return 0
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		log "$cmd missing: apt-get install -y $pkg"
		if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >&2; then
			DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || true
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >&2 || true
		fi
		command -v "$cmd" >/dev/null 2>&1 && return 0
	fi
	if [ -n "$optional" ]; then
		log "$cmd not available (install with: apt-get install -y $pkg)"
		return 1
	fi
	die "$cmd not found; install it with: apt-get install -y $pkg"
}

need_base_tools() {
	need curl curl
	need python3 python3
	need ss iproute2
	need nginx nginx-light
	need haproxy haproxy
	need wrk wrk
	[ "$BENCH_PIN" = 1 ] && need taskset util-linux
	return 0
}

# ---------------------------------------------------------------- processes

bench_init_workdir() {
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/legate-bench.XXXXXX")
	chmod 755 "$WORK" # nginx workers may run as nobody
	: >"$WORK/pids"
	export WORK
}

# pin_cmd CPU: prefix (as words) that pins a command to CPU when BENCH_PIN=1
pin_cmd() { if [ "$BENCH_PIN" = 1 ]; then echo "taskset -c $1"; fi; }

# start_bg NAME CPU CMD... : start CMD (pinned to CPU when BENCH_PIN=1) in the
# background, stdout/stderr to $WORK/NAME.log. $PID_<name> is the command's own
# pid (taskset execs it).
start_bg() {
	local name=$1 cpu=$2
	shift 2
	# shellcheck disable=SC2046
	$(pin_cmd "$cpu") "$@" >"$WORK/$name.log" 2>&1 &
	local pid=$!
	echo "$pid $name" >>"$WORK/pids"
	eval "PID_${name//-/_}=$pid"
	log "started $name (pid $pid): $*"
}

# run_bounded OUTFILE SECONDS CMD... : run CMD (killed after SECONDS) with
# stdout+stderr to OUTFILE. It runs in the background and is waited for, so
# that Ctrl-C reaches the EXIT trap at once (and the trap stops it too).
# Returns CMD's exit status (124 on timeout).
run_bounded() {
	local outfile=$1 secs=$2 pid rc=0
	shift 2
	timeout -k 5 "$secs" "$@" >"$outfile" 2>&1 &
	pid=$!
	echo "$pid load-$pid" >>"$WORK/pids"
	wait "$pid" || rc=$?
	grep -v "^$pid " "$WORK/pids" >"$WORK/pids.new" || true
	mv "$WORK/pids.new" "$WORK/pids"
	return "$rc"
}

# stop_pid PID: TERM, wait up to 5 s, then KILL. Only our own pids are used.
stop_pid() {
	local pid=$1
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "pid $pid did not stop on TERM; sending KILL"
		# children first (nginx workers), then the process itself
		pkill -KILL -P "$pid" 2>/dev/null || true
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}

# stop_named NAME: stop one process started with start_bg.
stop_named() {
	local name=$1 pid n
	[ -f "$WORK/pids" ] || return 0
	while read -r pid n; do
		[ "$n" = "$name" ] && stop_pid "$pid"
	done <"$WORK/pids"
	grep -v " $name\$" "$WORK/pids" >"$WORK/pids.new" || true
	mv "$WORK/pids.new" "$WORK/pids"
}

stop_all() {
	local pid n
	[ -n "${WORK:-}" ] && [ -f "$WORK/pids" ] || return 0
	# reverse start order: controller before proxy, proxies before upstream
	tac "$WORK/pids" | while read -r pid n; do stop_pid "$pid"; done
	: >"$WORK/pids"
}

bench_cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_all
	if [ -n "${WORK:-}" ] && [ -d "$WORK" ]; then
		if [ "$rc" != 0 ] || [ "${BENCH_KEEP:-0}" = 1 ]; then
			log "work dir kept for inspection: $WORK"
		else
			rm -rf "$WORK"
		fi
	fi
	exit "$rc"
}

bench_traps() {
	trap bench_cleanup EXIT
	trap 'log "interrupted"; exit 130' INT
	trap 'log "terminated"; exit 143' TERM
}

port_in_use() { [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]; }

check_ports_free() {
	local p
	for p in "$@"; do
		port_in_use "$p" && die "port 127.0.0.1:$p is already in use; stop whatever listens there first"
	done
	return 0
}

# wait_http URL SECONDS [PIDNAME]: wait until URL answers 2xx.
wait_http() {
	local url=$1 secs=$2 name=${3:-} pidvar
	for _ in $(seq 1 $((secs * 10))); do
		curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null && return 0
		if [ -n "$name" ]; then
			pidvar="PID_${name//-/_}"
			if ! kill -0 "${!pidvar}" 2>/dev/null; then
				log "$name exited early; its log:"
				tail -n 30 "$WORK/$name.log" >&2
				return 1
			fi
		fi
		sleep 0.1
	done
	log "timed out after ${secs}s waiting for $url"
	[ -n "$name" ] && tail -n 30 "$WORK/$name.log" >&2
	return 1
}

# tree PID: PID and all descendants (one ps call)
tree() {
	ps -e -o pid=,ppid= | awk -v root="$1" '
		{ kids[$2] = kids[$2] " " $1 }
		END {
			q[1] = root; n = 1
			for (i = 1; i <= n; i++) {
				print q[i]
				m = split(kids[q[i]], c, " ")
				for (j = 1; j <= m; j++) q[++n] = c[j]
			}
		}'
}

# rss_kb PID...: sum of VmRSS (kB) of the given pids
rss_kb() {
	local p sum=0 v
	for p in "$@"; do
		v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null)
		sum=$((sum + ${v:-0}))
	done
	echo "$sum"
}

# cpu_ticks PID...: utime+stime (clock ticks) summed over pids (all threads)
cpu_ticks() {
	local p sum=0 v
	for p in "$@"; do
		v=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}')
		sum=$((sum + ${v:-0}))
	done
	echo "$sum"
}

# machine_busy: busy jiffies (user+nice+system+irq+softirq) summed over all CPUs
machine_busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }

# own_cpu_seconds: set OWN_S to the CPU seconds used so far by this script and
# everything it started: live processes from /proc, reaped ones from the
# shell's `times` (which must run in this shell, not in a $(...) subshell).
own_cpu_seconds() {
	local live
	# shellcheck disable=SC2046
	live=$(cpu_ticks $(tree $$))
	times >"$WORK/times.txt"
	OWN_S=$(awk -v live="$live" -v hz="$CLK_TCK" '
		function s(t,  m) { m = t; sub(/m.*/, "", m); sub(/^[0-9]+m/, "", t); sub(/s$/, "", t); return m * 60 + t }
		NR == 2 { printf "%.3f\n", live / hz + s($1) + s($2) }' "$WORK/times.txt")
}

# snapshot_other / other_cpu_seconds: OTHER_S = CPU seconds the machine spent
# on anything but this benchmark since the snapshot (other users' processes,
# plus kernel work not charged to any process).
snapshot_other() {
	SNAP_T=$(date +%s.%N)
	SNAP_BUSY=$(machine_busy)
	own_cpu_seconds
	SNAP_OWN=$OWN_S
}
# shellcheck disable=SC2034 # OTHER_S / OTHER_PCT are read by the callers
# OTHER_PCT = the same as a percentage of one CPU over the snapshot window.
other_cpu_seconds() {
	local busy t
	busy=$(machine_busy)
	t=$(date +%s.%N)
	own_cpu_seconds
	OTHER_S=$(awk -v b0="$SNAP_BUSY" -v b1="$busy" -v o0="$SNAP_OWN" -v o1="$OWN_S" -v hz="$CLK_TCK" \
		'BEGIN { x = (b1 - b0) / hz - (o1 - o0); if (x < 0) x = 0; printf "%.3f\n", x }')
	OTHER_PCT=$(awk -v s="$OTHER_S" -v t0="$SNAP_T" -v t1="$t" 'BEGIN { printf "%.1f\n", 100 * s / (t1 - t0) }')
}

# ---------------------------------------------------------------- upstream

# nginx_conf_head DIR: the part of an nginx.conf (one worker, no access log, long
# keep-alive) that the upstream and the nginx proxy share, up to inside "http {".
nginx_conf_head() {
	local d=$1
	cat <<EOF
worker_processes 1;
worker_rlimit_nofile 20000;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 16384; }
http {
    access_log off;
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    keepalive_requests 100000;
    keepalive_timeout 75s;
EOF
}

start_upstream() {
	local d="$WORK/upstream"
	mkdir -p "$d/tmp"
	{
		echo "# Upstream for the benchmark: one worker, fixed 4-byte body, echoes the Host"
		echo "# and URI it saw so that the harness can check each proxy's rewrite."
		nginx_conf_head "$d"
		cat <<EOF
    server {
        listen $HOST:$UP_PORT;
        location / {
            add_header X-Seen-Host \$host always;
            add_header X-Seen-Uri \$request_uri always;
            default_type text/plain;
            return 200 "ok\n\n";
        }
    }
}
EOF
	} >"$d/nginx.conf"
	start_bg upstream "$CPU_UP" nginx -p "$d/" -c "$d/nginx.conf" -e "$d/error.log" -g 'daemon off;'
	wait_http "http://$HOST:$UP_PORT/" 10 upstream || die "upstream nginx did not start"
}

# ---------------------------------------------------------------- proxies

start_nginx_proxy() {
	local d="$WORK/nginx"
	mkdir -p "$d/tmp"
	{
		echo "# nginx as the reference proxy: one worker, keep-alive pool to the upstream."
		nginx_conf_head "$d"
		cat <<EOF
    upstream up {
        server $HOST:$UP_PORT;
        keepalive $NGINX_UP_KEEPALIVE;
        keepalive_requests 100000;
        keepalive_timeout 60s;
    }
    server {
        listen $HOST:$NGINX_PORT;
        location /httpbin/ {
            proxy_pass http://up/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host httpbin.org;
        }
        location / { return 404; }
    }
}
EOF
	} >"$d/nginx.conf"
	start_bg nginx-proxy "$CPU_PROXY" nginx -p "$d/" -c "$d/nginx.conf" -e "$d/error.log" -g 'daemon off;'
	wait_http "http://$HOST:$NGINX_PORT/httpbin/" 10 nginx-proxy || die "nginx proxy did not start"
}

start_haproxy() {
	local d="$WORK/haproxy"
	mkdir -p "$d"
	cat >"$d/haproxy.cfg" <<EOF
# HAProxy as the reference proxy: one thread, keep-alive and connection reuse
# to the upstream, no logging.
global
    nbthread 1
    # room for the 10 000 idle client connections of bench/memory.sh; HAProxy
    # budgets two fds per connection, which may exceed a 20 000 hard
    # RLIMIT_NOFILE: warn instead of refusing to start (backend connections
    # are reused, so the real need is ~1 fd per client connection).
    maxconn 10500
    no strict-limits

defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    timeout http-keep-alive 60s

frontend fe
    bind $HOST:$HAPROXY_PORT
    http-request return status 404 unless { path_beg /httpbin/ }
    default_backend up

backend up
    http-reuse always
    http-request replace-path ^/httpbin/(.*) /\1
    http-request set-header Host httpbin.org
    server s1 $HOST:$UP_PORT
EOF
	haproxy -c -q -f "$d/haproxy.cfg" >&2 || die "haproxy config check failed"
	start_bg haproxy "$CPU_PROXY" haproxy -f "$d/haproxy.cfg" -db
	wait_http "http://$HOST:$HAPROXY_PORT/httpbin/" 10 haproxy || die "haproxy did not start"
}

legate_available() {
	[ -x "$LEGATE_BUILD/legate-proxy" ] && [ -x "$LEGATE_BUILD/legate-controller" ]
}

# legate_freeze: copy the Legate binaries into $WORK/bin and use the copies, so
# that a rebuild of build/ during the benchmark cannot swap them mid-run.
# Writes what was copied to $WORK/legate-version.txt.
legate_freeze() {
	local src=$LEGATE_BUILD
	mkdir -p "$WORK/bin"
	cp "$src/legate-proxy" "$src/legate-controller" "$WORK/bin/"
	LEGATE_BUILD=$WORK/bin
	"$LEGATE_BUILD/legate-proxy" --version >/dev/null 2>&1 ||
		die "$src/legate-proxy --version fails (is it being rebuilt right now?)"
	printf '%s (%s/legate-proxy sha256 %s, built %s, repo %s)\n' \
		"$("$LEGATE_BUILD/legate-proxy" --version 2>&1 | head -1)" "$src" \
		"$(sha256sum "$LEGATE_BUILD/legate-proxy" | cut -c1-12)" \
		"$(date -r "$src/legate-proxy" '+%F %T')" \
		"$(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null || echo 'no commit')" >"$WORK/legate-version.txt"
}

# legate_write_bench_manifest DIR
legate_write_bench_manifest() {
	mkdir -p "$1"
	cat >"$1/bench.yaml" <<EOF
apiVersion: v1
kind: Service
metadata:
  name: httpbin
  namespace: default
  annotations:
    getambassador.io/config: |
      ---
      apiVersion: ambassador/v1
      kind: Mapping
      name: httpbin_mapping
      prefix: /httpbin/
      service: $HOST:$UP_PORT
      host_rewrite: httpbin.org
spec:
  ports:
  - port: 80
EOF
}

# start_legate SRCDIR [READY_TIMEOUT]: legate-proxy (one worker) + legate-controller
# reading SRCDIR; waits for the admin /ready endpoint.
start_legate() {
	local src=$1 timeout=${2:-30}
	legate_available || die "Legate binaries not found in $LEGATE_BUILD (legate-proxy, legate-controller); build them first (make) or set BENCH_SKIP_LEGATE=1"
	rm -f "$WORK/control.sock"
	start_bg legate-proxy "$CPU_PROXY" "$LEGATE_BUILD/legate-proxy" \
		--listen "$HOST:$LEGATE_PORT" --admin "$HOST:$LEGATE_ADMIN_PORT" \
		--control-socket "$WORK/control.sock" --workers 1 --log-level warn
	start_bg legate-controller "$CPU_UP" "$LEGATE_BUILD/legate-controller" \
		--control-socket "$WORK/control.sock" --source-dir "$src" --log-level warn
	wait_http "http://$HOST:$LEGATE_ADMIN_PORT/ready" "$timeout" legate-proxy ||
		die "legate-proxy did not become ready (admin http://$HOST:$LEGATE_ADMIN_PORT/ready); logs in $WORK/legate-proxy.log, $WORK/legate-controller.log"
	kill -0 "$PID_legate_controller" 2>/dev/null || {
		tail -n 30 "$WORK/legate-controller.log" >&2
		die "legate-controller exited"
	}
}

# wait_legate_route SECONDS: wait until the bench route answers with the
# upstream's body through Legate (the controller may push routes after /ready).
wait_legate_route() {
	local secs=$1 body
	for _ in $(seq 1 $((secs * 10))); do
		body=$(curl -sS --max-time 2 "http://$HOST:$LEGATE_PORT/httpbin/" 2>/dev/null || true)
		[ "$body" = "ok" ] && return 0
		sleep 0.1
	done
	log "Legate does not serve /httpbin/ after ${secs}s (last body: '$body')"
	tail -n 20 "$WORK/legate-proxy.log" "$WORK/legate-controller.log" >&2
	return 1
}

# legate_route_count: number of routes the admin endpoint reports ("" on error)
legate_route_count() {
	curl -sS --max-time 30 "http://$HOST:$LEGATE_ADMIN_PORT/routes" 2>/dev/null | python3 -c '
import json, sys
try:
    d = json.load(sys.stdin)
except Exception:
    sys.exit(0)
r = d.get("routes", d) if isinstance(d, dict) else d
print(len(r) if isinstance(r, list) else "")
'
}

# ---------------------------------------------------------------- targets

# target_url TARGET: the URL the load generator uses
target_url() {
	case $1 in
	direct) echo "http://$HOST:$UP_PORT/" ;;
	nginx) echo "http://$HOST:$NGINX_PORT/httpbin/" ;;
	haproxy) echo "http://$HOST:$HAPROXY_PORT/httpbin/" ;;
	legate) echo "http://$HOST:$LEGATE_PORT/httpbin/" ;;
	esac
}

target_port() {
	case $1 in
	direct) echo "$UP_PORT" ;;
	nginx) echo "$NGINX_PORT" ;;
	haproxy) echo "$HAPROXY_PORT" ;;
	legate) echo "$LEGATE_PORT" ;;
	esac
}

# target_pids TARGET: the processes whose CPU/RSS count for TARGET
target_pids() {
	case $1 in
	direct) tree "$PID_upstream" ;;
	nginx) tree "$PID_nginx_proxy" ;;
	haproxy) tree "$PID_haproxy" ;;
	legate) tree "$PID_legate_proxy" ;;
	esac
}

# target_name TARGET: pretty name
target_name() {
	case $1 in
	direct) echo "direct" ;;
	nginx) echo "nginx" ;;
	haproxy) echo "HAProxy" ;;
	legate) echo "Legate" ;;
	esac
}

# verify_route TARGET: fail loudly unless the upstream saw Host httpbin.org and
# the /httpbin/ prefix replaced by / (direct: the request as sent).
verify_route() {
	local t=$1 path port hdrs host uri body want_host req want_uri ok=1
	port=$(target_port "$t")
	for req in "/httpbin/" "/httpbin/anything/x?y=1"; do
		if [ "$t" = direct ]; then
			want_uri=${req#/httpbin}
			want_host=$HOST
		else
			want_uri=/${req#/httpbin/}
			want_host=httpbin.org
		fi
		path=$req
		[ "$t" = direct ] && path=$want_uri
		hdrs=$(curl -sS --max-time 5 -D - -o "$WORK/verify.body" "http://$HOST:$port$path" 2>&1) || {
			log "$t: request $req failed: $hdrs"
			ok=0
			continue
		}
		host=$(printf '%s\n' "$hdrs" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-seen-host" {print $2}')
		uri=$(printf '%s\n' "$hdrs" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-seen-uri" {print $2}')
		body=$(cat "$WORK/verify.body")
		if [ "$host" != "$want_host" ] || [ "$uri" != "$want_uri" ] || [ "$body" != "ok" ]; then
			log "$t: ROUTING CHECK FAILED for $req: upstream saw Host='$host' URI='$uri' body='$body' (want Host='$want_host' URI='$want_uri' body='ok')"
			ok=0
		fi
	done
	if [ "$t" != direct ]; then
		# Only /httpbin/ is routed; anything else must not reach the upstream.
		hdrs=$(curl -sS --max-time 5 -D - -o /dev/null "http://$HOST:$port/other/" 2>&1 || true)
		if printf '%s\n' "$hdrs" | grep -qi '^x-seen-uri'; then
			log "$t: warning: /other/ reached the upstream although only /httpbin/ is routed"
		fi
	fi
	[ "$ok" = 1 ] || die "$t does not route /httpbin/ -> upstream / with Host httpbin.org"
	log "$t: routing verified (upstream saw Host $want_host, prefix rewritten)"
}
