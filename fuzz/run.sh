#!/usr/bin/env bash
# Runs the libFuzzer targets built by `make fuzz-build` (fuzz/fuzz.mk, docs/fuzzing.md).
#
#   fuzz/run.sh run TARGET SECONDS   fuzz TARGET on build/fuzz/corpus-work/TARGET (a copy of
#                                    fuzz/corpus/TARGET that keeps what earlier runs found);
#                                    log in build/fuzz/logs/TARGET.log, one summary line
#   fuzz/run.sh smoke TARGET SECONDS replay fuzz/corpus/TARGET and fuzz/regressions/TARGET,
#                                    then fuzz for SECONDS from a fresh copy of the corpus
#   fuzz/run.sh report TARGET...     the summary lines of the last runs; fails if one failed
#
# Exit status: 0, or 1 when a crash, leak or timeout was found (the input is saved under
# build/fuzz/artifacts/TARGET/). FUZZ_OUT overrides build/fuzz; FUZZ_MAX_LEN overrides the
# per-target input cap; FUZZ_NICE (e.g. "nice -n 10") prefixes the fuzzer; FUZZ_ARGS adds
# libFuzzer flags.
set -u

out=${FUZZ_OUT:-build/fuzz}
mode=${1:?usage: fuzz/run.sh run|smoke|report TARGET...}
shift

# Inputs larger than the parsers' interesting structure only slow the search down.
max_len_of() {
    if [ -n "${FUZZ_MAX_LEN:-}" ]; then
        echo "$FUZZ_MAX_LEN"
        return
    fi
    case "$1" in
    annotation | snapshot | watch_split) echo 16384 ;;
    request_head) echo 12288 ;;
    *) echo 8192 ;;
    esac
}

# Flags every run shares. -close_fd_mask=2 discards what the code under test writes to stderr
# (the targets log at debug level on purpose) while libFuzzer and the sanitizers keep
# reporting on a duplicate of it.
common_flags() {
    local t=$1
    local flags=(-timeout=10 -rss_limit_mb=2048 -max_len="$(max_len_of "$t")" -close_fd_mask=2
        -print_final_stats=1 -artifact_prefix="$out/artifacts/$t/")
    [ -f "fuzz/dict/$t.dict" ] && flags+=(-dict="fuzz/dict/$t.dict")
    printf '%s\n' "${flags[@]}"
}

summary() {
    local t=$1 log="$out/logs/$1.log" rc secs
    rc=$(cat "$out/logs/$t.rc" 2>/dev/null || echo "?")
    secs=$(cat "$out/logs/$t.secs" 2>/dev/null || echo "?")
    local execs cov ft corp
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" 2>/dev/null | tail -n 1)
    local last
    last=$(grep -E '^#[0-9]+.*cov: ' "$log" 2>/dev/null | tail -n 1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
    local status="ok"
    if [ "$rc" != "0" ]; then
        local art
        art=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
        status="FAILED rc=$rc ${art:+artifact=$art }log=$log"
    fi
    printf 'fuzz %-14s %5ss execs=%-10s cov=%-6s ft=%-7s corpus=%-6s %s\n' "$t" "$secs" \
        "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$status"
}

run() {
    local t=$1 secs=$2 bin="$out/fuzz_$1" work="$out/corpus-work/$1"
    mkdir -p "$work" "$out/artifacts/$t" "$out/logs"
    if [ -d "fuzz/corpus/$t" ]; then
        cp -n fuzz/corpus/"$t"/* "$work"/ 2>/dev/null
    fi
    local flags
    mapfile -t flags < <(common_flags "$t")
    # shellcheck disable=SC2086
    ${FUZZ_NICE:-} "$bin" "${flags[@]}" -max_total_time="$secs" ${FUZZ_ARGS:-} "$work" \
        >"$out/logs/$t.log" 2>&1
    local rc=$?
    echo "$rc" >"$out/logs/$t.rc"
    echo "$secs" >"$out/logs/$t.secs"
    summary "$t"
    [ "$rc" = 0 ]
}

smoke() {
    local t=$1 secs=$2 bin="$out/fuzz_$1" work="$out/smoke/$1"
    mkdir -p "$out/artifacts/$t" "$out/logs"
    local flags
    mapfile -t flags < <(common_flags "$t")
    # Stored inputs first, each run once: a crash there is a regression.
    local files=()
    for f in fuzz/corpus/"$t"/* fuzz/regressions/"$t"/*; do
        [ -f "$f" ] && files+=("$f")
    done
    if [ ${#files[@]} -gt 0 ]; then
        if ! "$bin" "${flags[@]}" "${files[@]}" >"$out/logs/$t.replay.log" 2>&1; then
            local log="$out/logs/$t.replay.log"
            echo "fuzz $t: a stored input fails: $(grep -E '^Running: ' "$log" | tail -n 1 |
                cut -d' ' -f2-) (log: $log)"
            grep -E 'invariant failed|ERROR: AddressSanitizer|runtime error' "$log" | head -n 2
            return 1
        fi
    fi
    rm -rf "$work"
    mkdir -p "$work"
    [ -d "fuzz/corpus/$t" ] && cp fuzz/corpus/"$t"/* "$work"/ 2>/dev/null
    "$bin" "${flags[@]}" -max_total_time="$secs" "$work" >"$out/logs/$t.log" 2>&1
    local rc=$?
    echo "$rc" >"$out/logs/$t.rc"
    echo "$secs" >"$out/logs/$t.secs"
    summary "$t"
    [ "$rc" = 0 ]
}

case "$mode" in
run) run "$1" "$2" ;;
smoke) smoke "$1" "$2" ;;
report)
    fail=0
    for t in "$@"; do
        summary "$t"
        [ "$(cat "$out/logs/$t.rc" 2>/dev/null)" = 0 ] || fail=1
    done
    exit $fail
    ;;
*)
    echo "usage: fuzz/run.sh run|smoke|report TARGET..." >&2
    exit 2
    ;;
esac
