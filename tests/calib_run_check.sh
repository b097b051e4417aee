#!/bin/sh
# Dry runs of calib/h200_run.sh with the stub GPU program (calib/stub.c), at
# 1/20 of real time, both at once (the stub mostly sleeps):
#  A. nominal: every family and the layers complete, inside the deadline;
#  B. faults: one family runs slow (cut short by its time limit), one hangs
#     (killed at its cap), one hits a sticky error, points fail here and
#     there; the session still ends inside its deadline, every family ran
#     under a cap, every table left behind (the killed family's too) is
#     valid, and the time left over completes families from their resume
#     entries.
#  C. the next session: `calib-tool plan --skip-covered` with each run's
#     merged table leaves what the schedule left for later, plus (faults)
#     the points that failed and the entries the completions stepped over.
# In both the build fails and the prebuilt binary (the stub) is used.
# Every table is validated by calib-tool merge (which loads each with the
# simulator's loader). Prints the planned and simulated time per step.
set -u
SCALE=0.05
DEADLINE=510
STUB=build/calib/servesim-calib-stub
TOOL=build/calib-tool
SCHEDULE=calib/plans/h200.schedule
# the session's plan (the entries of the full plan it has time for)
PLAN=$(sed -n 's/^plan_file //p' $SCHEDULE)
PY=${PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d /tmp/calib_run_check.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
failed=0
fail() { echo "calib run check: FAIL: $*"; failed=$((failed + 1)); }

dry_run() {   # NAME ENV...
    name=$1
    shift
    (
        t0=$(date +%s.%N)
        env CALIB_TIME_SCALE=$SCALE SERVESIM_STUB_SCALE=$SCALE CALIB_MAKE=false \
            CALIB_PREBUILT=$STUB CALIB_DEADLINE_S=$DEADLINE "$@" \
            bash calib/h200_run.sh "$tmp/$name" > "$tmp/$name.out" 2>&1
        echo $? > "$tmp/$name.rc"
        awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f\n", b - a }' > "$tmp/$name.wall"
    ) &
}

dry_run nominal
dry_run faults SERVESIM_STUB_SLOW=sample:3 SERVESIM_STUB_HANG=embed:0.5 \
    SERVESIM_STUB_FATAL=attn_decode:0.1 SERVESIM_STUB_SKIP_EVERY=97
wait

# state of STEP in summary.tsv of run $1, and a column
col() { awk -F'\t' -v s="$2" -v c="$3" '$1 == s { print $c }' "$tmp/$1/summary.tsv"; }
entries() {   # entries of family $2 in table $1, or -1
    "$PY" -c 'import json, sys
t = json.load(open(sys.argv[1]))
print(len(t["families"].get(sys.argv[2], {"entries": []})["entries"]))' "$1" "$2" 2>/dev/null || echo -1
}

for run in nominal faults; do
    d=$tmp/$run
    [ "$(cat "$tmp/$run.rc")" = 0 ] || fail "$run: h200_run.sh exited $(cat "$tmp/$run.rc")"
    wall=$(cat "$tmp/$run.wall")
    limit=$(awk -v d=$DEADLINE -v s=$SCALE 'BEGIN { printf "%.2f", d * s + 1 }')
    awk -v w="$wall" -v l="$limit" 'BEGIN { exit !(w <= l) }' ||
        fail "$run: took $wall s of real time, over the deadline ($limit s at scale $SCALE)"
    done_s=$(sed -n 's/.*h200_run: done in \([0-9.]*\) s of.*/\1/p' "$d/run.log")
    awk -v x="${done_s:-9999}" -v d=$DEADLINE 'BEGIN { exit !(x <= d) }' ||
        fail "$run: done in ${done_s:-?} planned s, over the deadline of $DEADLINE"
    grep -q "using the prebuilt $STUB" "$d/run.log" || fail "$run: the build fallback was not taken"
    [ "$(col $run build 6)" != 0 ] || fail "$run: the failing build reported success"
    [ "$(col $run check 6)" = 0 ] || fail "$run: --check failed"
    # every step ran, under a cap it did not overrun by more than the kill grace
    for step in $(sed -n 's/^step \([a-z_]*\) .*/\1/p' $SCHEDULE); do
        cap=$(col $run "$step" 4)
        used=$(col $run "$step" 5)
        [ -n "$cap" ] || { fail "$run: $step: no summary row"; continue; }
        # SIGKILL comes kill_s (5 s) after the cap; 3 planned s more (150 ms
        # of real time) for reaping it on a loaded machine (make -j2 test runs
        # the sanitizer suites beside this)
        awk -v c="$cap" -v u="$used" 'BEGIN { exit !(c > 0 && u <= c + 8) }' ||
            fail "$run: $step: cap $cap s, used $used s"
        [ "$(col $run "$step" 7)" != skipped ] || fail "$run: $step: skipped"
    done
    "$TOOL" merge --out "$d/merged.json" "$d"/tables/*.json > "$d/merge.out" 2>&1 ||
        fail "$run: the tables do not merge: $(cat "$d/merge.out")"
    echo "calib run check: $run: $wall s real, $done_s of $DEADLINE planned s"
    column -t -s "$(printf '\t')" "$d/summary.tsv" | sed 's/^/    /'
done

# A: everything complete, and the merged table holds every entry of the
# session's plan
[ -r "$PLAN" ] || fail "$SCHEDULE: plan_file \"$PLAN\": cannot read"
for step in $(sed -n 's/^step \([a-z_]*\) .*/\1/p' $SCHEDULE); do
    [ "$(col nominal "$step" 7)" = complete ] || fail "nominal: $step: $(col nominal "$step" 7)"
done
n=$(sed -n 's/.*, \([0-9]*\) entries$/\1/p' "$tmp/nominal/merge.out")
want=$(grep -c '^entry ' "$PLAN")
[ "$n" = "$want" ] || fail "nominal: merged $n entries, the plan has $want"

# B: each fault as planned, and what it left behind valid
f=$tmp/faults
[ "$(col faults sample 7)" = cut_short ] || fail "faults: sample: $(col faults sample 7)"
[ "$(col faults embed 6)" = 137 ] && [ "$(col faults embed 7)" = killed ] ||
    fail "faults: embed was not killed: $(col faults embed 6) $(col faults embed 7)"
"$TOOL" merge --out "$f/killed.json" "$f/tables/embed.json" > /dev/null 2>&1 ||
    fail "faults: the killed family's table is not valid"
[ "$(entries "$f/tables/embed.json" embed)" -gt 0 ] ||
    fail "faults: the killed family's table holds nothing"
grep -q '^state=running' "$f/tables/embed.status" ||
    fail "faults: the killed family's status does not say it was running"
[ "$(col faults attn_decode 7)" = failed ] || fail "faults: attn_decode: $(col faults attn_decode 7)"
[ "$(entries "$f/tables/attn_decode.json" attn_decode)" -gt 0 ] ||
    fail "faults: the failed family's table holds nothing"
grep -q 'points_skipped=[1-9]' "$f/tables/gemm.status" || fail "faults: no point was skipped"
# completions go in schedule order while time lasts: the first two fit
for step in embed sample; do
    [ "$(col faults "$step.resumed" 7)" = complete ] ||
        fail "faults: $step was not completed from its resume entry: $(col faults "$step.resumed" 7)"
done
# the cut family, completed: every entry of the plan's sample family
n=$(entries "$f/merged.json" sample)
want=$(grep -c '^entry sample ' "$PLAN")
[ "$n" = "$want" ] || fail "faults: sample: $n entries after merging the completion, want $want"

# C: the next session: what a run's merged table has not covered, planned
# with --skip-covered, is what the schedule left for later (nominal), and
# that plus the points that failed (faults: entries partly measured)
for run in nominal faults; do
    "$TOOL" plan --plan calib/plans/full.plan --gpu H200-141GB \
        --skip-covered "$tmp/$run/merged.json" --out "$tmp/$run/next.plan" \
        > "$tmp/$run/next.out" 2>&1 || fail "$run: plan --skip-covered: $(cat "$tmp/$run/next.out")"
done
n=$(grep -c '^entry ' "$tmp/nominal/next.plan")
want=$(sed -n 's/^later_entries //p' $SCHEDULE)
[ "$n" = "$want" ] || fail "nominal: the next plan has $n entries, the schedule left $want"
# faults: the entries with failed points are left partly measured, and
# besides what was left for later at most the two entries the completions
# stepped over (where embed hung and attn_decode failed) are missing
partial=$(sed -n 's/.*left: \([0-9]*\) entries partly measured.*/\1/p' "$tmp/faults/next.out")
missing=$(sed -n 's/.*partly measured, \([0-9]*\) not at all.*/\1/p' "$tmp/faults/next.out")
n=$(grep -c '^entry ' "$tmp/faults/next.plan")
[ "${partial:-0}" -gt 0 ] && [ "${missing:-0}" -ge "$want" ] &&
    [ "${missing:-0}" -le $((want + 2)) ] && [ "$n" = $((partial + missing)) ] ||
    fail "faults: the next plan has $n entries: ${partial:-?} partly measured, ${missing:-?} not at all (left for later: $want)"
sed 's/^/calib run check: next session: /' "$tmp/faults/next.out" | head -1

if [ $failed -eq 0 ]; then
    echo "calib run check: 3 passed, 0 failed"
else
    echo "calib run check: logs:"
    for run in nominal faults; do sed "s/^/    $run: /" "$tmp/$run/run.log" 2>/dev/null; done
    echo "calib run check: $failed failed"
    exit 1
fi
