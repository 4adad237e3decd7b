#!/usr/bin/env bash
# Where the proxies' time goes: system calls per request (strace -c), the cost
# of one system call on this machine, user/system CPU per request, a perf
# profile and a callgrind profile of legate-proxy, side by side with nginx and
# HAProxy. Called by `make profile`. See bench/README.md ("Profile").
#
# usage: bench/profile.sh [--quick] [--duration S] [--rounds N] [--out FILE]
# env:   LEGATE_BUILD=DIR       where legate-proxy / legate-controller are (default: <repo>/build)
#        BENCH_PIN=0            do not pin processes to CPUs
#        BENCH_KEEP=1           keep the work dir (raw strace, perf and callgrind output)
#        BENCH_PORT_BASE=P      ports P..P+3 for upstream/nginx/HAProxy/Legate (default 18080)
#        BENCH_ADMIN_PORT=P     Legate admin port (default 18877)
set -euo pipefail

# The exact command for the report, with the settings that came from the
# environment (read before lib.sh fills in defaults).
CMDLINE=""
for v in LEGATE_BUILD BENCH_PIN BENCH_KEEP BENCH_PORT_BASE BENCH_ADMIN_PORT; do
	[ -n "${!v:-}" ] && CMDLINE+="$v=${!v} "
done
CMDLINE+="$0${*:+ $*}"

# shellcheck source=lib.sh disable=SC2154 # PID_<name> variables are set by start_bg
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

DURATION=5     # seconds per strace / CPU / perf load run
ROUNDS=3       # CPU-per-request rounds (median)
CG_DURATION=10 # seconds of load under callgrind
WARMUP=2       # seconds of unrecorded load per target before the first run
OUT=""

usage() {
	sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
	exit "${1:-0}"
}

while [ $# -gt 0 ]; do
	opt=$1
	shift
	# --opt=VALUE is read as --opt VALUE
	case $opt in --*=*) set -- "${opt#*=}" "$@" && opt=${opt%%=*} ;; esac
	case $opt in
	--quick) DURATION=2 ROUNDS=1 CG_DURATION=3 WARMUP=1 ;;
	--duration) DURATION=${1:-} && shift $(($# > 0)) ;;
	--rounds) ROUNDS=${1:-} && shift $(($# > 0)) ;;
	--out) OUT=${1:?--out needs a file name} && shift ;;
	-h | --help) usage 0 ;;
	*) echo "unknown argument: $opt" >&2 && usage 2 ;;
	esac
done
if ! [[ $DURATION =~ ^[1-9][0-9]*$ ]]; then die "--duration must be a positive integer (seconds)"; fi
if ! [[ $ROUNDS =~ ^[1-9][0-9]*$ ]]; then die "--rounds must be a positive integer"; fi
[ -n "$OUT" ] || OUT="$BENCH_DIR/results/profile-$(date +%Y%m%d-%H%M%S).md"
legate_available || die "Legate binaries not found: $LEGATE_BUILD/legate-proxy and $LEGATE_BUILD/legate-controller (build them with make or set LEGATE_BUILD)"

need_base_tools
need strace strace
need cc gcc
NOTES=()
HAVE_PERF=0
if need perf linux-perf optional; then HAVE_PERF=1; else NOTES+=("perf is not installed (Debian package linux-perf): section 5 skipped."); fi
HAVE_VALGRIND=0
if need valgrind valgrind optional && need callgrind_annotate valgrind optional; then
	HAVE_VALGRIND=1
else
	NOTES+=("valgrind is not installed (Debian package valgrind): section 6 skipped.")
fi

bench_init_workdir
bench_traps
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
RAW=$WORK/profile
mkdir -p "$RAW" "$(dirname "$OUT")"
log "work dir: $WORK"
check_ports_free "$UP_PORT" "$NGINX_PORT" "$HAPROXY_PORT" "$LEGATE_PORT" "$LEGATE_ADMIN_PORT"

if [ "$HAVE_PERF" = 1 ] && ! perf record -q -o "$RAW/perf-probe.data" -- true >"$RAW/perf-probe.log" 2>&1; then
	HAVE_PERF=0
	NOTES+=("perf record does not work here ($(head -1 "$RAW/perf-probe.log")): section 5 skipped.")
fi

# ---------------------------------------------------------------- start (as make bench does)

TARGETS=(legate nginx haproxy)
start_upstream
verify_route direct
start_nginx_proxy
verify_route nginx
start_haproxy
verify_route haproxy
legate_freeze
FROZEN_BUILD=$LEGATE_BUILD
legate_write_bench_manifest "$WORK/legate-src"
start_legate "$WORK/legate-src" 30
wait_legate_route 30 || die "Legate does not route /httpbin/ to the upstream"
verify_route legate

# worker_pids TARGET: the processes that serve requests (nginx: the worker, not the master)
# shellcheck disable=SC2154 # PID_<name> variables are set by start_bg
worker_pids() {
	case $1 in
	nginx) pgrep -P "$PID_nginx_proxy" ;;
	haproxy) echo "$PID_haproxy" ;;
	legate) echo "$PID_legate_proxy" ;;
	esac
}

# load OUTFILE SECONDS TARGET [close]: one bounded wrk -t1 -c32 run on the load CPU
load() {
	local out=$1 secs=$2 t=$3 hdr=()
	[ "${4:-}" = close ] && hdr=(-H 'Connection: close')
	# shellcheck disable=SC2046
	run_bounded "$out" $((secs + 30)) $(pin_cmd "$CPU_LOAD") wrk -t1 -c32 -d"${secs}s" --timeout 5s \
		-s "$BENCH_DIR/wrk_report.lua" "${hdr[@]}" "$(target_url "$t")" ||
		log "warning: wrk exited with $? against $t (see $out)"
}

# wait_traced PID...: wait (at most 10 s) until every thread of PID... has a tracer
wait_traced() {
	local p s all
	for _ in $(seq 1 100); do
		all=1
		for p in "$@"; do
			for s in /proc/"$p"/task/*/status; do
				awk '/^TracerPid:/ { exit ($2 == 0) }' "$s" 2>/dev/null || all=0
			done
		done
		[ "$all" = 1 ] && return 0
		sleep 0.1
	done
	return 1
}

# user_sys_ticks PID...: "user system" clock ticks summed over PID... (all threads)
user_sys_ticks() {
	local p
	for p in "$@"; do sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null || true; done |
		awk '{ u += $12; s += $13 } END { printf "%d %d\n", u, s }'
}

# write_report [NOTE]: meta.txt from what ran so far, then the report (with NOTE added)
write_report() {
	local dirty n
	dirty=$(git -C "$REPO_DIR" status --porcelain -- proxy common 2>/dev/null | wc -l)
	{
		echo "cmdline=$CMDLINE"
		echo "date=$(date '+%F %T %Z')"
		echo "nproc=$(nproc)"
		echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
		echo "kernel=$(uname -sr)"
		echo "version=nginx $(nginx -v 2>&1 | sed 's/^nginx version: nginx\///')"
		echo "version=HAProxy $(haproxy -v 2>/dev/null | head -1 | awk '{print $3}')"
		echo "version=wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}')"
		echo "version=strace $(strace -V | head -1 | awk '{print $NF}')"
		[ "$HAVE_PERF" = 1 ] && echo "version=perf $(perf --version | awk '{print $3}')"
		[ "$HAVE_VALGRIND" = 1 ] && echo "version=valgrind $(valgrind --version | sed 's/^valgrind-//')"
		echo "version=$(cc --version | head -1)"
		echo "legate=$(cat "$WORK/legate-version.txt"); working tree: $dirty uncommitted changes under proxy/ and common/ when the profile ran (the binary may include them)"
		echo "pinning=$(pin_description) Here: strace runs on CPU $CPU_PROXY beside the proxy it traces, perf on CPU $CPU_LOAD, legate-proxy under valgrind on CPU $CPU_PROXY."
		echo "other_pct=$OTHER_PCT"
		echo "duration=$DURATION"
		echo "rounds=$ROUNDS"
		echo "cg_duration=$CG_DURATION"
		echo "clk_tck=$CLK_TCK"
		echo "have_perf=$HAVE_PERF"
		echo "have_valgrind=$HAVE_VALGRIND"
		for n in "${NOTES[@]}" ${1:+"$1"}; do echo "note=$n"; done
	} >"$RAW/meta.txt"
	python3 "$BENCH_DIR/profile_report.py" --raw "$RAW" --out "$OUT"
}

# CPU that other sessions take from the machine during the measurements (lib.sh)
snapshot_other
log "warm-up: ${WARMUP}s per target (not recorded)"
for t in "${TARGETS[@]}"; do load "$RAW/warmup-$t.txt" "$WARMUP" "$t"; done

# ---------------------------------------------------------------- 3. cost of one system call
# (measured first, while the proxies are idle)

cat >"$WORK/syscall_cost.c" <<'EOF'
/* Times 1e6 getppid() through syscall(2): the bare cost of entering and leaving the kernel. */
#include <stdio.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
int main(void) {
    enum { N = 1000000 };
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < N; i++)
        syscall(SYS_getppid);
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%.1f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / N);
    return 0;
}
EOF
cc -O2 -o "$WORK/syscall_cost" "$WORK/syscall_cost.c" || die "cannot compile $WORK/syscall_cost.c"
: >"$RAW/syscall_ns.txt"
for _ in 1 2 3 4 5; do
	# shellcheck disable=SC2046
	$(pin_cmd "$CPU_PROXY") timeout 60 "$WORK/syscall_cost" >>"$RAW/syscall_ns.txt"
done
log "one system call: $(tr '\n' ' ' <"$RAW/syscall_ns.txt")ns (5 runs)"

# ---------------------------------------------------------------- 2. system calls per request

for mode in ka close; do
	for t in "${TARGETS[@]}"; do
		log "strace -c: $t, $mode, ${DURATION}s"
		pids=$(worker_pids "$t")
		args=()
		for p in $pids; do args+=(-p "$p"); done
		start_bg "strace-$mode-$t" "$CPU_PROXY" strace -c -f -o "$RAW/strace-$mode-$t.txt" "${args[@]}"
		# shellcheck disable=SC2086
		wait_traced $pids || die "strace did not attach to $t ($pids); see $WORK/strace-$mode-$t.log"
		load "$RAW/strace-$mode-$t.wrk" "$DURATION" "$t" "$mode"
		stop_named "strace-$mode-$t" # strace detaches on TERM and writes its summary
	done
done

# ---------------------------------------------------------------- 4. CPU per request, user/system

: >"$RAW/cpu.txt"
for ((round = 1; round <= ROUNDS; round++)); do
	for ((i = 0; i < ${#TARGETS[@]}; i++)); do
		t=${TARGETS[$(((i + round - 1) % ${#TARGETS[@]}))]}
		log "CPU per request: $t (round $round/$ROUNDS, ${DURATION}s)"
		# shellcheck disable=SC2046
		before=$(user_sys_ticks $(target_pids "$t"))
		load "$RAW/cpu-$t-$round.wrk" "$DURATION" "$t"
		# shellcheck disable=SC2046
		after=$(user_sys_ticks $(target_pids "$t"))
		echo "$t $round $before $after $RAW/cpu-$t-$round.wrk" >>"$RAW/cpu.txt"
	done
done

# ---------------------------------------------------------------- 5. perf

if [ "$HAVE_PERF" = 1 ]; then
	for t in "${TARGETS[@]}"; do
		log "perf record -g: $t, ${DURATION}s"
		pids=$(worker_pids "$t" | paste -sd, -)
		start_bg "perf-$t" "$CPU_LOAD" perf record -g -o "$RAW/perf-$t.data" -p "$pids" -- sleep "$DURATION"
		# perf's window (DURATION s) lies inside the load run (DURATION + 1 s)
		load "$RAW/perf-$t.wrk" $((DURATION + 1)) "$t"
		pidvar=PID_perf_$t
		for _ in $(seq 1 300); do kill -0 "${!pidvar}" 2>/dev/null || break; sleep 0.1; done
		stop_named "perf-$t"
		timeout 300 perf report -i "$RAW/perf-$t.data" --no-children --sort dso,sym --stdio -g none \
			>"$RAW/perf-$t.txt" 2>"$RAW/perf-$t.err" || log "warning: perf report failed for $t"
	done
fi

other_cpu_seconds
log "other processes used ${OTHER_PCT}% of a CPU during sections 2-5"

# A report of sections 1-5 now, so that a failure under valgrind does not lose them.
write_report "The script stopped during section 6 (callgrind); this report has no callgrind data."

# ---------------------------------------------------------------- 6. callgrind

if [ "$HAVE_VALGRIND" = 1 ]; then
	log "callgrind: legate-proxy under valgrind, ${CG_DURATION}s of wrk -c32"
	stop_named legate-controller
	stop_named legate-proxy
	# start_legate runs $LEGATE_BUILD/legate-proxy: point it at a wrapper that
	# runs the frozen binary under callgrind, with the same flags and pinning.
	mkdir -p "$WORK/cgbin"
	cat >"$WORK/cgbin/legate-proxy" <<EOF
#!/bin/sh
exec valgrind --tool=callgrind --callgrind-out-file="$RAW/callgrind.out" "$FROZEN_BUILD/legate-proxy" "\$@"
EOF
	chmod +x "$WORK/cgbin/legate-proxy"
	ln -s "$FROZEN_BUILD/legate-controller" "$WORK/cgbin/legate-controller"
	LEGATE_BUILD=$WORK/cgbin
	start_legate "$WORK/legate-src" 120
	LEGATE_BUILD=$FROZEN_BUILD
	wait_legate_route 60 || die "Legate under valgrind does not route /httpbin/"
	load "$RAW/callgrind-warmup.wrk" 1 legate
	# Count only the measured run: zero the counters, load, dump (callgrind.out.1).
	cg_ok=0
	if timeout 60 callgrind_control -z "$PID_legate_proxy" >"$RAW/callgrind_control.log" 2>&1; then
		load "$RAW/callgrind.wrk" "$CG_DURATION" legate
		timeout 60 callgrind_control -d "$PID_legate_proxy" >>"$RAW/callgrind_control.log" 2>&1 && cg_ok=1
	fi
	stop_named legate-controller
	stop_named legate-proxy
	if [ "$cg_ok" = 1 ] && [ -s "$RAW/callgrind.out.1" ]; then
		# Calls already running when the counters were zeroed are written as
		# "calls=0"; callgrind_annotate 3.19 then books their inclusive cost as
		# the caller's self cost. The count does not enter self costs.
		sed 's/^calls=0 /calls=1 /' "$RAW/callgrind.out.1" >"$RAW/callgrind.measured"
		timeout 300 callgrind_annotate "$RAW/callgrind.measured" >"$RAW/callgrind.txt" 2>&1 ||
			log "warning: callgrind_annotate failed"
	else
		NOTES+=("callgrind_control could not zero or dump the counters ($(tail -1 "$RAW/callgrind_control.log")): section 6 is empty.")
	fi
fi
stop_all

write_report
log "report written to $OUT"
