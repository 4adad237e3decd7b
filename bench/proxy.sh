#!/usr/bin/env bash
# Side-by-side proxy benchmark: Legate vs nginx vs HAProxy vs direct-to-upstream.
# Called by `make bench`. See bench/README.md for what is measured and how to
# read the table.
#
# usage: bench/proxy.sh [--duration S] [--rounds N] [--quick] [--out FILE]
#                       [--targets LIST] [--rates LIST] [--no-fixed-rate]
#                       [--no-memory]
# env:   BENCH_PIN=0            do not pin processes to CPUs
#        BENCH_SKIP_LEGATE=1    run without Legate (otherwise missing binaries are an error)
#        LEGATE_BUILD=DIR       where legate-proxy / legate-controller are (default: <repo>/build)
#        BENCH_KEEP=1           keep the temporary work dir (configs, logs, raw results)
#        BENCH_PORT_BASE=P      ports P..P+3 for upstream/nginx/HAProxy/Legate (default 18080)
#        BENCH_ADMIN_PORT=P     Legate admin port (default 18877)
set -euo pipefail

# shellcheck source=lib.sh disable=SC2154 # PID_<name> variables are set by start_bg
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

CMDLINE="$0 $*"
DURATION=10
ROUNDS=2
QUICK=0
OUT=""
TARGETS="direct,nginx,haproxy,legate"
RATES="1000,5000"
RATE_CONNS=32
FIXED_RATE=1
MEMORY=1
WARMUP=2

usage() {
	sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
	exit "${1:-0}"
}

while [ $# -gt 0 ]; do
	case $1 in
	--duration) DURATION=$2; shift 2 ;;
	--duration=*) DURATION=${1#*=}; shift ;;
	--rounds) ROUNDS=$2; shift 2 ;;
	--rounds=*) ROUNDS=${1#*=}; shift ;;
	--quick) QUICK=1; shift ;;
	--out) OUT=$2; shift 2 ;;
	--out=*) OUT=${1#*=}; shift ;;
	--targets) TARGETS=$2; shift 2 ;;
	--targets=*) TARGETS=${1#*=}; shift ;;
	--rates) RATES=$2; shift 2 ;;
	--rates=*) RATES=${1#*=}; shift ;;
	--no-fixed-rate) FIXED_RATE=0; shift ;;
	--no-memory) MEMORY=0; shift ;;
	-h | --help) usage 0 ;;
	*) echo "unknown argument: $1" >&2; usage 2 ;;
	esac
done

if ! [[ $DURATION =~ ^[1-9][0-9]*$ ]]; then die "--duration must be a positive integer (seconds)"; fi
if ! [[ $ROUNDS =~ ^[1-9][0-9]*$ ]]; then die "--rounds must be a positive integer"; fi
if [ "$QUICK" = 1 ]; then
	ROUNDS=1
	RATES=${RATES%%,*}
	WARMUP=1
fi
[ -n "$OUT" ] || OUT="$BENCH_DIR/results/proxy-$(date +%Y%m%d-%H%M%S).md"

# Targets: drop Legate only when explicitly allowed.
IFS=, read -r -a TARGET_LIST <<<"$TARGETS"
for t in "${TARGET_LIST[@]}"; do
	case $t in direct | nginx | haproxy | legate) ;; *) die "unknown target '$t' (direct,nginx,haproxy,legate)" ;; esac
done
LEGATE_NOTE=""
if [[ ",$TARGETS," == *,legate,* ]]; then
	if [ "$BENCH_SKIP_LEGATE" = 1 ]; then
		LEGATE_NOTE="Legate skipped (BENCH_SKIP_LEGATE=1)."
	elif ! legate_available; then
		die "Legate binaries not found: $LEGATE_BUILD/legate-proxy and $LEGATE_BUILD/legate-controller (build them with make, set LEGATE_BUILD, or run with BENCH_SKIP_LEGATE=1)"
	fi
	if [ -n "$LEGATE_NOTE" ]; then
		log "$LEGATE_NOTE"
		TARGET_LIST=("${TARGET_LIST[@]/legate/}")
	fi
fi
TMP_LIST=()
for t in "${TARGET_LIST[@]}"; do [ -n "$t" ] && TMP_LIST+=("$t"); done
TARGET_LIST=("${TMP_LIST[@]}")
[ ${#TARGET_LIST[@]} -gt 0 ] || die "no targets to run"
has_target() { [[ " ${TARGET_LIST[*]} " == *" $1 "* ]]; }

need_base_tools
HAVE_H2LOAD=0
if [ "$FIXED_RATE" = 1 ] && need h2load nghttp2-client optional; then
	HAVE_H2LOAD=1
fi

bench_init_workdir
bench_traps
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
mkdir -p "$WORK/runs" "$(dirname "$OUT")"
log "work dir: $WORK"

check_ports_free "$UP_PORT" "$NGINX_PORT" "$HAPROXY_PORT" "$LEGATE_PORT" "$LEGATE_ADMIN_PORT"

# ---------------------------------------------------------------- start

start_upstream
verify_route direct
has_target nginx && start_nginx_proxy && verify_route nginx
has_target haproxy && start_haproxy && verify_route haproxy
if has_target legate; then
	legate_freeze
	legate_write_bench_manifest "$WORK/legate-src"
	start_legate "$WORK/legate-src" 30
	wait_legate_route 30 || die "Legate does not route /httpbin/ to the upstream"
	verify_route legate
fi

# RSS right after start (and one verification request), before any load.
declare -A RSS_START # read through a nameref in rss_json
# shellcheck disable=SC2034
for t in "${TARGET_LIST[@]}"; do
	# shellcheck disable=SC2046
	RSS_START[$t]=$(rss_kb $(target_pids "$t"))
done

# core_times: "busy steal total" jiffies for each CPU, space separated
core_times() {
	awk '/^cpu[0-9]+ / {busy=$2+$3+$4+$7+$8; total=0; for(i=2;i<=NF;i++) total+=$i; if (NF>=9) steal=$9; else steal=0; printf "%s %d %d %d ", $1, busy, steal, total}' /proc/stat
}

now() { date +%s.%N; }

# run_load KIND SCENARIO TARGET ROUND CONNS [EXTRA]
run_load() {
	local kind=$1 scen=$2 t=$3 round=$4 conns=$5 extra=${6:-} url out pids c0 c1 t0 t1 ct0 ct1 other rc=0
	url=$(target_url "$t")
	out="$WORK/runs/$scen.$t.$round"
	# shellcheck disable=SC2046
	pids=$(target_pids "$t" | tr '\n' ' ')
	# shellcheck disable=SC2086
	c0=$(cpu_ticks $pids)
	snapshot_other
	ct0=$(core_times)
	t0=$(now)
	case $kind in
	wrk)
		local hdr=()
		[ "$extra" = close ] && hdr=(-H 'Connection: close')
		# shellcheck disable=SC2046
		run_bounded "$out.txt" $((DURATION + 30)) $(pin_cmd "$CPU_LOAD") wrk -t1 -c"$conns" -d"${DURATION}s" \
			--timeout 5s --latency -s "$BENCH_DIR/wrk_report.lua" "${hdr[@]}" "$url" || rc=$?
		;;
	h2load)
		# extra = total rate (req/s); h2load's --rps is per connection
		local per
		per=$(python3 -c "print($extra / $conns)")
		# shellcheck disable=SC2046
		run_bounded "$out.txt" $((DURATION + 30)) $(pin_cmd "$CPU_LOAD") h2load --h1 -c "$conns" --rps "$per" \
			-D "$DURATION" -T 10 -N 10 --log-file "$out.log" "$url" || rc=$?
		;;
	esac
	t1=$(now)
	ct1=$(core_times)
	other_cpu_seconds
	other=$OTHER_PCT
	# shellcheck disable=SC2086
	c1=$(cpu_ticks $pids)
	[ "$rc" = 0 ] || log "warning: $kind exited with $rc for $scen/$t round $round (see $out.txt)"
	cat >"$out.json" <<EOF
{"kind":"$kind","scenario":"$scen","target":"$t","round":$round,"conns":$conns,"extra":"$extra",
 "duration_s":$DURATION,"rc":$rc,"wall_s":$(python3 -c "print($t1 - $t0)"),
 "cpu_s":$(python3 -c "print(($c1 - $c0) / $CLK_TCK)"),
 "other_pct":$other,
 "cores_before":"$ct0","cores_after":"$ct1",
 "output":"$out.txt","logfile":"$out.log"}
EOF
}

# The run order is rotated every round so that no target always runs first
# (or right after the same neighbour).
rotated_targets() {
	local round=$1 n=${#TARGET_LIST[@]} i
	for ((i = 0; i < n; i++)); do
		printf '%s ' "${TARGET_LIST[$(((i + round - 1) % n))]}"
	done
}

# ---------------------------------------------------------------- background load

# CPU that other processes on this machine use while nothing is being measured.
snapshot_other
sleep 3
other_cpu_seconds
IDLE_OTHER=${OTHER_PCT%.*}
BUSY_NOTE=""
if [ "$IDLE_OTHER" -ge 10 ]; then
	BUSY_NOTE="Before the runs, other processes on this machine used ${IDLE_OTHER}% of a CPU: expect noisy numbers (see the 'other CPU %' column)."
	log "warning: $BUSY_NOTE"
else
	log "background load from other processes: ${IDLE_OTHER}% of a CPU"
fi

# ---------------------------------------------------------------- warm-up

log "warm-up: ${WARMUP}s per target (not recorded)"
for t in "${TARGET_LIST[@]}"; do
	# shellcheck disable=SC2046
	run_bounded "$WORK/warmup-$t.txt" $((WARMUP + 20)) $(pin_cmd "$CPU_LOAD") wrk -t1 -c32 -d"${WARMUP}s" "$(target_url "$t")" || true
done

# ---------------------------------------------------------------- closed-loop runs

SCENARIOS=("ka-1:1:" "ka-32:32:" "ka-256:256:" "close-32:32:close")
for s in "${SCENARIOS[@]}"; do
	IFS=: read -r scen conns extra <<<"$s"
	for ((round = 1; round <= ROUNDS; round++)); do
		for t in $(rotated_targets "$round"); do
			log "wrk $scen -> $t (round $round/$ROUNDS, ${DURATION}s)"
			run_load wrk "$scen" "$t" "$round" "$conns" "$extra"
		done
	done
done

# ---------------------------------------------------------------- fixed-rate runs

FIXED_NOTE=""
if [ "$FIXED_RATE" = 0 ]; then
	FIXED_NOTE="Fixed-rate runs disabled (--no-fixed-rate)."
elif [ "$HAVE_H2LOAD" = 0 ]; then
	FIXED_NOTE="Fixed-rate runs skipped: h2load (Debian package nghttp2-client) is not available; wrk2 is not packaged in Debian."
else
	IFS=, read -r -a RATE_LIST <<<"$RATES"
	for rate in "${RATE_LIST[@]}"; do
		[[ $rate =~ ^[0-9]+$ ]] || die "--rates: '$rate' is not an integer"
		for ((round = 1; round <= ROUNDS; round++)); do
			for t in $(rotated_targets "$round"); do
				log "h2load rate-$rate -> $t (round $round/$ROUNDS, ${DURATION}s, $RATE_CONNS conns)"
				run_load h2load "rate-$rate" "$t" "$round" "$RATE_CONNS" "$rate"
			done
		done
	done
fi

# Everything stays up until here so that the RSS after load can be reported too.
declare -A RSS_END
for t in "${TARGET_LIST[@]}"; do
	# shellcheck disable=SC2046,SC2034
	RSS_END[$t]=$(rss_kb $(target_pids "$t"))
done
stop_all

# ---------------------------------------------------------------- memory

MEMORY_MD="$WORK/memory.md"
if [ "$MEMORY" = 1 ]; then
	mem_args=(--out "$MEMORY_MD")
	[ "$QUICK" = 1 ] && mem_args+=(--quick)
	mtargets=()
	for t in "${TARGET_LIST[@]}"; do [ "$t" != direct ] && mtargets+=("$t"); done
	if [ ${#mtargets[@]} -gt 0 ]; then
		mem_targets=$(IFS=,; echo "${mtargets[*]}")
		# memory.sh uses the same frozen copy of the Legate binaries
		LEGATE_BUILD=$LEGATE_BUILD "$BENCH_DIR/memory.sh" "${mem_args[@]}" --targets "$mem_targets" >/dev/null ||
			echo "Memory measurement failed (exit $?); see the log above." >"$MEMORY_MD"
	fi
else
	echo "Memory section disabled (--no-memory)." >"$MEMORY_MD"
fi

# ---------------------------------------------------------------- report

versions() {
	echo "nginx: $(nginx -v 2>&1 | sed 's/^nginx version: //')"
	echo "HAProxy: $(haproxy -v 2>/dev/null | head -1 | awk '{print $3}')"
	echo "wrk: $(wrk -v 2>&1 | head -1 | awk '{print $2}')"
	[ "$HAVE_H2LOAD" = 1 ] && echo "h2load: $(h2load --version 2>&1 | head -1 | awk '{print $2}')"
	if has_target legate; then
		echo "Legate: $(cat "$WORK/legate-version.txt")"
	fi
	return 0
}

rss_json() {
	local -n arr=$1
	local first=1 t
	printf '{'
	for t in "${!arr[@]}"; do
		[ $first = 1 ] || printf ','
		first=0
		printf '"%s":%s' "$t" "${arr[$t]}"
	done
	printf '}'
}

python3 - "$WORK/meta.json" <<EOF
import json, sys
meta = {
  "cmdline": $(printf '%s' "$CMDLINE" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()))'),
  "date": "$(date '+%F %T %Z')",
  "nproc": "$(nproc)",
  "cpu": $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read().strip()))'),
  "kernel": "$(uname -sr)",
  "versions": $(versions | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read().strip().splitlines()))'),
  "pinning": $(pin_description | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read().strip()))'),
  "duration": $DURATION, "rounds": $ROUNDS, "quick": $QUICK, "warmup": $WARMUP,
  "targets": $(printf '%s\n' "${TARGET_LIST[@]}" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read().split()))'),
  "notes": [n for n in [$(printf '%s' "$LEGATE_NOTE" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()))'),
                        $(printf '%s' "$FIXED_NOTE" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()))'),
                        $(printf '%s' "$BUSY_NOTE" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()))')] if n],
  "idle_other_pct": $IDLE_OTHER,
  "rate_conns": $RATE_CONNS,
  "rss_start_kb": $(rss_json RSS_START),
  "rss_end_kb": $(rss_json RSS_END),
  "clk_tck": $CLK_TCK,
  "pin": $BENCH_PIN, "cpu_proxy": $CPU_PROXY, "cpu_load": $CPU_LOAD,
}
json.dump(meta, open(sys.argv[1], "w"), indent=1)
EOF

python3 "$BENCH_DIR/summarize.py" --meta "$WORK/meta.json" --runs "$WORK/runs" --memory "$MEMORY_MD" --out "$OUT"
log "report written to $OUT"
