#!/usr/bin/env bash
# fuzz/run.sh BUILD_DIR SECONDS [TARGET...] — run every libFuzzer target of a
# TQ_FUZZ=ON build for SECONDS each (one after another; FUZZ_JOBS=N runs N at
# once), starting from the seed corpus (fuzz/make_seeds.c) plus what earlier
# runs kept in BUILD_DIR/fuzz-corpus/NAME. Crashes, leaks, sanitizer reports
# and failed properties are saved to BUILD_DIR/fuzz-artifacts/ and make the
# script fail; reproduce one with BUILD_DIR/fuzz_NAME FILE (or the plain-main
# build/fuzz_NAME_replay FILE), and keep it as a regression in
# fuzz/regressions/NAME/. A summary line per target: runs, coverage, corpus.
set -euo pipefail
build=${1:?usage: fuzz/run.sh BUILD_DIR SECONDS [TARGET...]}
secs=${2:?usage: fuzz/run.sh BUILD_DIR SECONDS [TARGET...]}
shift 2
here=$(cd "$(dirname "$0")" && pwd)
jobs=${FUZZ_JOBS:-1}

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for f in "$build"/fuzz_*; do
        n=$(basename "$f")
        case "$n" in *_replay|fuzz_make_seeds|fuzz-*) continue ;; esac
        [ -x "$f" ] && targets+=("${n#fuzz_}")
    done
fi
[ ${#targets[@]} -gt 0 ] || { echo "fuzz/run.sh: no fuzz targets in $build (configure with -DTQ_FUZZ=ON)" >&2; exit 2; }

rm -rf "$build/fuzz-seeds"
"$build/fuzz_make_seeds" "$build/fuzz-seeds" >/dev/null
mkdir -p "$build/fuzz-artifacts" "$build/fuzz-logs"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

run_one() {
    local t=$1 corpus="$build/fuzz-corpus/$1"
    mkdir -p "$corpus"
    local dirs=("$corpus" "$build/fuzz-seeds/$t")
    [ -d "$here/regressions/$t" ] && dirs+=("$here/regressions/$t")
    local dict=()
    [ -f "$here/dicts/$t.dict" ] && dict=(-dict="$here/dicts/$t.dict")
    if "$build/fuzz_$t" "${dirs[@]}" "${dict[@]}" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 \
        -max_len=65536 -print_final_stats=1 -artifact_prefix="$build/fuzz-artifacts/$t-" \
        >"$build/fuzz-logs/$t.log" 2>&1; then
        local runs cov
        runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$build/fuzz-logs/$t.log" | grep -o '[0-9]*$' || echo '?')
        cov=$(grep -o 'cov: [0-9]*' "$build/fuzz-logs/$t.log" | tail -1 | grep -o '[0-9]*' || echo '?')
        echo "fuzz $t: ok, ${runs} runs in ${secs} s, coverage ${cov} edges, corpus $(ls "$corpus" | wc -l) files"
    else
        echo "fuzz $t: FAILED — see $build/fuzz-logs/$t.log; inputs in $build/fuzz-artifacts/"
        grep -E 'ERROR|FUZZ_ASSERT|runtime error|SUMMARY' "$build/fuzz-logs/$t.log" | head -5
        return 1
    fi
}

status=0
pids=()
for t in "${targets[@]}"; do
    run_one "$t" &
    pids+=($!)
    if [ ${#pids[@]} -ge "$jobs" ]; then
        wait "${pids[0]}" || status=1
        pids=("${pids[@]:1}")
    fi
done
for p in "${pids[@]}"; do wait "$p" || status=1; done
exit $status
