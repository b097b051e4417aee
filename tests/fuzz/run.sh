#!/bin/sh
# make fuzz (or make fuzz-NAME for one target, see the Makefile): runs each
# libFuzzer target for SECONDS on a corpus started from
# tests/fuzz/seeds/<group> (copied under build/fuzz/corpus, so new inputs do
# not land in the repository). Crashes, leaks and timeouts are kept in
# build/fuzz/artifacts/<target>-*. Prints one line per target; exits 1 if
# any target found something.
# usage: run.sh SECONDS TARGET...
set -u
seconds=$1
shift
root=$(dirname "$0")
failed=0
printf '%-26s %8s %10s %8s %s\n' target seconds execs corpus result
for target in "$@"; do
    name=$(basename "$target")
    case $name in
        fuzz_trace_auto|fuzz_source) groups="azure mooncake burstgpt lengths native_csv native_jsonl" ;;
        fuzz_trace_*) groups=${name#fuzz_trace_} ;;
        fuzz_config) groups=config ;;
        fuzz_experiment) groups=experiment ;;
        fuzz_set) groups=set ;;
        fuzz_cost_table) groups=cost_table ;;
        *) groups="" ;;
    esac
    corpus=build/fuzz/corpus/$name
    artifacts=build/fuzz/artifacts
    mkdir -p "$corpus" "$artifacts"
    for g in $groups; do cp "$root/seeds/$g/"* "$corpus/"; done
    log=build/fuzz/$name.log
    start=$(date +%s)
    "$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$artifacts/$name-" "$corpus" > "$log" 2>&1
    rc=$?
    took=$(( $(date +%s) - start ))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    size=$(ls "$corpus" | wc -l)
    if [ $rc -eq 0 ]; then
        result="nothing found"
    else
        result="FOUND (exit $rc): $(grep -m1 -E 'ERROR|SUMMARY|deadly|timeout' "$log")"
        failed=1
    fi
    printf '%-26s %8s %10s %8s %s\n' "$name" "$took" "${execs:-?}" "$size" "$result"
done
exit $failed
