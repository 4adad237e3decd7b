#!/usr/bin/env bash
# Memory of Legate vs nginx vs HAProxy (bench/proxy.sh calls this unless --no-memory).
#
# usage: bench/memory.sh [--conns N (10000)] [--routes N (100000)] [--quick]
#                        [--targets nginx,haproxy,legate] [--out FILE]
#   --quick: 2000 connections and 10000 routes.
#   --out:   also write the Markdown section to FILE.
# Each proxy is started fresh (one worker/thread, same route as the throughput
# benchmark), and its RSS (VmRSS summed over its process tree) is read:
#   1. idle after start;
#   2. with N idle keep-alive client connections, each having served one request;
#   3. Legate only: after loading R routes (1 manifest per Service, 100 Mappings each).
# env: BENCH_SKIP_LEGATE=1, LEGATE_BUILD=DIR, BENCH_PIN=0, BENCH_KEEP=1 (see proxy.sh)
set -euo pipefail

# shellcheck source=lib.sh disable=SC2154 # PID_<name> variables are set by start_bg
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

CONNS=10000
ROUTES=100000
TARGETS="nginx,haproxy,legate"
OUT=""
HOLD=6
ROUTES_TIMEOUT=600

while [ $# -gt 0 ]; do
	case $1 in
	--conns) CONNS=$2; shift 2 ;;
	--routes) ROUTES=$2; shift 2 ;;
	--quick) CONNS=2000; ROUTES=10000; shift ;;
	--targets) TARGETS=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	-h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "unknown argument: $1" >&2; exit 2 ;;
	esac
done

IFS=, read -r -a TLIST <<<"$TARGETS"
NOTES=()
MT=()
for t in "${TLIST[@]}"; do
	case $t in
	nginx | haproxy) MT+=("$t") ;;
	legate)
		if [ "$BENCH_SKIP_LEGATE" = 1 ]; then
			NOTES+=("Legate skipped (BENCH_SKIP_LEGATE=1).")
		elif legate_available; then
			MT+=(legate)
		else
			die "Legate binaries not found in $LEGATE_BUILD (build them, set LEGATE_BUILD, or BENCH_SKIP_LEGATE=1)"
		fi
		;;
	direct | "") ;;
	*) die "unknown target '$t'" ;;
	esac
done

need_base_tools
bench_init_workdir
bench_traps
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
if [ "$NOFILE" -lt $((CONNS + 200)) ]; then
	NEW=$((NOFILE - 200))
	NOTES+=("RLIMIT_NOFILE is $NOFILE here: idle connections reduced from $CONNS to $NEW.")
	CONNS=$NEW
fi
[[ " ${MT[*]} " == *" legate "* ]] && legate_freeze
check_ports_free "$UP_PORT" "$NGINX_PORT" "$HAPROXY_PORT" "$LEGATE_PORT" "$LEGATE_ADMIN_PORT"
start_upstream

mib() { awk -v k="$1" 'BEGIN {printf "%.1f MiB", k / 1024}'; }

ROWS=()

# measure_conns TARGET: fills ROWS with one Markdown row
measure_conns() {
	local t=$1 pids idle with port out ready="" still ok failed secs per
	port=$(target_port "$t")
	sleep 1
	# shellcheck disable=SC2046
	pids=$(target_pids "$t" | tr '\n' ' ')
	# shellcheck disable=SC2086
	idle=$(rss_kb $pids)
	out="$WORK/idle-$t.out"
	log "$t: opening $CONNS idle keep-alive connections"
	# shellcheck disable=SC2046
	timeout -k 5 $((120 + HOLD)) $(pin_cmd "$CPU_LOAD") python3 "$BENCH_DIR/idle_conns.py" --port "$port" \
		--path /httpbin/ -n "$CONNS" --hold "$HOLD" --timeout 100 >"$out" 2>"$WORK/idle-$t.err" &
	local cpid=$!
	echo "$cpid idle-client" >>"$WORK/pids"
	for _ in $(seq 1 1200); do
		ready=$(grep -m1 '^READY' "$out" 2>/dev/null || true)
		[ -n "$ready" ] && break
		kill -0 "$cpid" 2>/dev/null || break
		sleep 0.1
	done
	if [ -z "$ready" ]; then
		stop_named idle-client
		log "$t: idle-connection client failed: $(cat "$WORK/idle-$t.err")"
		ROWS+=("| $(target_name "$t") | $(mib "$idle") | client failed | - | - |")
		return 0
	fi
	sleep 2
	# shellcheck disable=SC2046
	pids=$(target_pids "$t" | tr '\n' ' ')
	# shellcheck disable=SC2086
	with=$(rss_kb $pids)
	wait "$cpid" 2>/dev/null || true
	stop_named idle-client
	still=$(awk '/^STILL_OPEN/ {print $2}' "$out")
	ok=$(sed -n 's/.*ok=\([0-9]*\).*/\1/p' <<<"$ready")
	failed=$(sed -n 's/.*failed=\([0-9]*\).*/\1/p' <<<"$ready")
	secs=$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' <<<"$ready")
	per="-"
	[ "${ok:-0}" -gt 0 ] && per=$(awk -v a="$idle" -v b="$with" -v n="$ok" 'BEGIN {printf "%.0f B", (b - a) * 1024 / n}')
	log "$t: RSS idle $idle kB, with $ok connections $with kB ($failed failed, ${still:-?} still open after ${HOLD}s)"
	ROWS+=("| $(target_name "$t") | $(mib "$idle") | $(mib "$with") | $per | $ok ok, $failed failed, ${still:-?} still open after ${HOLD}s (opened in ${secs}s) |")
}

ROUTE_ROWS=()
for t in "${MT[@]}"; do
	case $t in
	nginx) start_nginx_proxy ;;
	haproxy) start_haproxy ;;
	legate)
		legate_write_bench_manifest "$WORK/legate-src"
		start_legate "$WORK/legate-src" 30
		wait_legate_route 30 || die "Legate does not route /httpbin/"
		;;
	esac
	verify_route "$t"
	measure_conns "$t"
	case $t in
	nginx) stop_named nginx-proxy ;;
	haproxy) stop_named haproxy ;;
	legate)
		stop_named legate-controller
		stop_named legate-proxy
		;;
	esac
done

# Legate with many routes: a fresh proxy + controller reading a generated source dir.
if [[ " ${MT[*]} " == *" legate "* ]]; then
	src="$WORK/legate-routes"
	python3 "$BENCH_DIR/gen_routes.py" --out "$src" --routes "$ROUTES" --upstream "$HOST:$UP_PORT" >&2
	legate_write_bench_manifest "$src"
	want=$ROUTES # plus the bench route: Legate may or may not count it
	t0=$(date +%s.%N)
	start_legate "$src" 300
	log "waiting (at most ${ROUTES_TIMEOUT}s) for /routes to report $want routes"
	n=""
	deadline=$(($(date +%s) + ROUTES_TIMEOUT))
	while [ "$(date +%s)" -lt "$deadline" ]; do
		n=$(legate_route_count || true)
		[ -n "$n" ] && [ "$n" -ge "$want" ] && break
		kill -0 "$PID_legate_proxy" 2>/dev/null || die "legate-proxy exited while loading routes"
		sleep 2
	done
	t1=$(date +%s.%N)
	load_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')
	if [ -z "$n" ] || [ "$n" -lt "$want" ]; then
		ROUTE_ROWS+=("| Legate, $ROUTES routes | not loaded: /routes reported '${n}' after ${load_s}s | - | - |")
		log "Legate did not report $want routes within ${ROUTES_TIMEOUT}s (last count: '$n')"
	else
		sleep 1
		# shellcheck disable=SC2046
		prss=$(rss_kb $(tree "$PID_legate_proxy"))
		# shellcheck disable=SC2046
		crss=$(rss_kb $(tree "$PID_legate_controller"))
		check="routable"
		probe="/r/$(printf '%05d' $(((ROUTES - 1) / 200)))/$(printf '%03d' 42)/"
		body=$(curl -sS --max-time 5 "http://$HOST:$LEGATE_PORT$probe" 2>/dev/null || true)
		[ "$body" = ok ] || check="WARNING: $probe answered '$body'"
		ROUTE_ROWS+=("| Legate, $ROUTES routes ($n reported) | $(mib "$prss") | $(mib "$crss") | ${load_s}s; $check |")
		log "Legate with $n routes: proxy RSS $prss kB, controller RSS $crss kB, loaded in ${load_s}s"
	fi
	stop_named legate-controller
	stop_named legate-proxy
fi

{
	echo "### RSS with $CONNS idle keep-alive client connections (fresh processes)"
	echo
	echo "| target | RSS after start | RSS with $CONNS idle connections | Δ per connection | connections |"
	echo "|---|---:|---:|---:|---|"
	printf '%s\n' "${ROWS[@]}"
	echo
	echo "RSS: VmRSS from /proc/PID/status summed over the process tree (nginx: master + worker; HAProxy: one process; Legate: legate-proxy, not the controller). Each connection sent one request (GET /httpbin/), read the response and then stayed idle; RSS is read 2 s after the last response. Δ per connection = (RSS with connections − RSS after start) / connections."
	if [ ${#ROUTE_ROWS[@]} -gt 0 ]; then
		echo
		echo "### Legate with many routes"
		echo
		echo "| case | legate-proxy RSS | legate-controller RSS | time from start until /routes reported them |"
		echo "|---|---:|---:|---|"
		printf '%s\n' "${ROUTE_ROWS[@]}"
		echo
		echo "Routes generated by bench/gen_routes.py: one Service per file, 100 Mappings each (prefix /r/<service>/<n>/), plus the benchmark route."
	fi
	if [ -f "$WORK/legate-version.txt" ]; then
		echo
		echo "Legate binary: $(cat "$WORK/legate-version.txt")"
	fi
	for n in "${NOTES[@]}"; do
		echo
		echo "Note: $n"
	done
} >"$WORK/memory.md"

cat "$WORK/memory.md"
[ -z "$OUT" ] || cp "$WORK/memory.md" "$OUT"
