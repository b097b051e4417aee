#!/bin/bash
# calib/h200_run.sh: the whole GPU session of calib/ in one command, from the
# repository root, writing everything under OUT as it goes:
#
#   bash calib/h200_run.sh OUT        (or OUT=... bash calib/h200_run.sh)
#
# 1. builds servesim-calib for sm_90 without -Werror (a new compiler's warning
#    must not cost the session); if that fails, uses the prebuilt binary
#    carried from the development machine (build/calib/servesim-calib);
# 2. runs --check (kernels and cuBLASLt against float64), and goes on either way;
# 3. measures the session plan the schedule names (plan_file: the entries of
#    the full plan that one session has time for, most valuable first, made
#    by `calib-tool plan --schedule`; calib/session.c), every family as its
#    own invocation (a crash or a hang costs one family), in the order of
#    calib/plans/h200.schedule (calib/budget.c: quick and simple first, the
#    code most likely to fail last), each capped so that
#    all of it fits one deadline (deadline_s, from the start of this script):
#    a step may take its planned cap, less what the later steps reserve; when
#    the session runs late, the steps left share what remains in proportion to
#    their reserves. The program stops itself at its --time-limit (margin_s
#    under the cap), `timeout` sends SIGTERM at the cap and SIGKILL kill_s later; a
#    table is valid whatever stops it (calib/runner.c);
# 4. measures the whole layers (the last step of the schedule);
# 5. with time left, completes the families that were cut short (from their
#    resume entry) or killed or failed (from the entry after the one that hung
#    or failed), as separate tables for `calib-tool merge`.
#
# OUT gets: run.log (what happened, with times), summary.tsv (per step: the
# planned estimate and cap, the cap it got, the time it took, its exit status
# and state), tables/<family>.json and .status, tables/<family>.resumed.json
# (a completion; it sorts after the first, as merge wants it), layers.json,
# check.txt, logs/, gpu-before.txt and gpu-after.txt (nvidia-smi -q: read
# only; no GPU setting is ever changed).
#
# Times are integer milliseconds from bash's clock (no process per reading, so
# the script's own cost stays out of the budget). Dry runs (make test:
# tests/calib_run_check.sh) set CALIB_TIME_SCALE (real seconds per planned
# second), CALIB_PREBUILT (the stub, calib/stub.c) and CALIB_MAKE=false (the
# build fails, the fallback is taken); every duration here is in planned
# seconds, only `timeout` and the clock are scaled. Also: CALIB_SCHEDULE (a
# later session's, from `calib-tool plan --skip-covered`), CALIB_PLAN (instead
# of the schedule's plan_file), CALIB_DEADLINE_S.
set -u

OUT=${1:-${OUT:-}}
if [ -z "$OUT" ]; then
    echo "usage: bash calib/h200_run.sh OUT_DIR (or set OUT)" >&2
    exit 2
fi
SCHEDULE=${CALIB_SCHEDULE:-calib/plans/h200.schedule}
SCALE=${CALIB_TIME_SCALE:-1}
MAKE_CMD=${CALIB_MAKE:-make}
PREBUILT=${CALIB_PREBUILT:-build/calib/servesim-calib}
BUILD_DIR=build/calib-h200
mkdir -p "$OUT/tables" "$OUT/logs" || exit 1
[ -r "$SCHEDULE" ] || { echo "h200_run: $SCHEDULE: cannot read" >&2; exit 1; }
read -r first < "$SCHEDULE"
if [ "$first" != "servesim-calib-schedule 1" ]; then
    echo "h200_run: $SCHEDULE:1: expected \"servesim-calib-schedule 1\", got \"$first\"" >&2
    exit 1
fi

# The schedule, in milliseconds: one awk, then shell arrays.
declare -a NAME EST RES CAP
eval "$(awk '
    function ms(v) { return sprintf("%d", v * 1000 + 0.5) }
    $1 == "plan_file" { print "PLAN_FILE=\047" $2 "\047" }
    $1 == "deadline_s" { print "DEADLINE_MS=" ms($2) }
    $1 == "startup_s" { print "STARTUP_MS=" ms($2) }
    $1 == "margin_s" { print "MARGIN_MS=" ms($2) }
    $1 == "build_s" { print "BUILD_MS=" ms($2) }
    $1 == "check_s" { print "CHECK_MS=" ms($2) }
    $1 == "kill_s" { print "KILL_MS=" ms($2) }
    $1 == "step" { printf "NAME[%d]=%s EST[%d]=%s RES[%d]=%s CAP[%d]=%s\n", n, $2, n, ms($3), n, ms($4), n, ms($5); n++ }
    END { print "N_STEPS=" n + 0 }' "$SCHEDULE")"
if [ -n "${CALIB_DEADLINE_S:-}" ]; then
    DEADLINE_MS=$(awk -v d="$CALIB_DEADLINE_S" 'BEGIN { printf "%d", d * 1000 }')
fi
for v in DEADLINE_MS STARTUP_MS MARGIN_MS BUILD_MS CHECK_MS KILL_MS; do
    [ -n "${!v:-}" ] || { echo "h200_run: $SCHEDULE: no ${v%_MS} line" >&2; exit 1; }
done
[ "$N_STEPS" -gt 0 ] || { echo "h200_run: $SCHEDULE: no step lines" >&2; exit 1; }
PLAN=${CALIB_PLAN:-${PLAN_FILE:-}}
[ -n "$PLAN" ] || { echo "h200_run: $SCHEDULE: no plan_file line (or set CALIB_PLAN)" >&2; exit 1; }
[ -r "$PLAN" ] || { echo "h200_run: $PLAN: cannot read" >&2; exit 1; }
SCALE_PPM=$(awk -v s="$SCALE" 'BEGIN { printf "%d", s * 1e6 }')
[ "$SCALE_PPM" -gt 0 ] || { echo "h200_run: CALIB_TIME_SCALE: expected a number > 0" >&2; exit 1; }

T0_US=${EPOCHREALTIME/./}
# E: planned milliseconds since the start
elapsed() { E=$(( (${EPOCHREALTIME/./} - T0_US) * 1000 / SCALE_PPM )); }
# S: milliseconds as seconds, one decimal
sec() { if [ "$1" -lt 0 ]; then S=-$(( -$1 / 1000 )).$(( -$1 % 1000 / 100 )); else S=$(( $1 / 1000 )).$(( $1 % 1000 / 100 )); fi; }
# R: planned milliseconds as real seconds for timeout
realsec() { local us=$(( $1 * SCALE_PPM / 1000 )); printf -v R '%d.%06d' $(( us / 1000000 )) $(( us % 1000000 )); }
log() { elapsed; sec $E; echo "[$S s] $*"; echo "[$S s] $*" >> "$OUT/run.log"; }
# ST_state, ST_resume from a status file
read_status() {
    ST_state= ST_resume=
    [ -r "$1" ] || return 0
    while IFS='=' read -r k v; do
        case $k in state) ST_state=$v ;; resume_entry) ST_resume=$v ;; esac
    done < "$1"
}

printf 'step\tplanned_est_s\tplanned_cap_s\tcap_s\tused_s\texit\tstate\n' > "$OUT/summary.tsv"
# summary STEP EST_MS|- PCAP_MS|- CAP_MS USED_MS EXIT STATE
summary() {
    local e=- p=-
    [ "$2" = - ] || { sec "$2"; e=$S; }
    [ "$3" = - ] || { sec "$3"; p=$S; }
    sec "$4"; local c=$S
    sec "$5"; local u=$S
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$e" "$p" "$c" "$u" "$6" "$7" >> "$OUT/summary.tsv"
}

# run_capped NAME CAP_MS LOG CMD...: CMD under `timeout`, SIGTERM at the cap,
# SIGKILL KILL_MS later; sets RC and USED (ms).
run_capped() {
    local name=$1 cap=$2 logf=$3 t
    shift 3
    sec "$cap"
    log "$name: start, cap $S s"
    elapsed; t=$E
    realsec "$KILL_MS"; local kill=$R
    realsec "$cap"
    timeout -k "$kill" "$R" "$@" > "$logf" 2>&1
    RC=$?
    elapsed; USED=$(( E - t ))
    sec $USED
    case $RC in
    124) log "$name: stopped at its cap after $S s (SIGTERM)" ;;
    137) log "$name: killed ${KILL_MS} ms after its cap ($S s)" ;;
    *) log "$name: exit $RC after $S s" ;;
    esac
}

# LEFT: what is left before the deadline, less the SIGKILL grace, so that a
# step killed at its cap still ends in time.
time_left() { elapsed; LEFT=$(( DEADLINE_MS - KILL_MS - E )); }

# C: the cap step i gets now: min(planned cap, time left - later reserves),
# or, when the session runs late, its share of what is left.
cap_now() {
    local i=$1 j later=0 from=0 left avail share
    for (( j = i; j < N_STEPS; j++ )); do
        from=$(( from + RES[j] ))
        [ "$j" -gt "$i" ] && later=$(( later + RES[j] ))
    done
    time_left
    left=$LEFT
    avail=$(( left - later ))
    share=$(( from > 0 ? left * RES[i] / from : 0 ))
    C=$(( avail > share ? avail : share ))
    C=$(( C > CAP[i] ? CAP[i] : C ))
    C=$(( C < 0 ? 0 : C ))
}

gpu_state() {
    if command -v nvidia-smi > /dev/null 2>&1; then
        timeout 20 nvidia-smi -q > "$OUT/$1" 2>&1 || true
    fi
}

sec "$DEADLINE_MS"
log "h200_run: deadline $S s, schedule $SCHEDULE ($N_STEPS steps), plan $PLAN, time scale $SCALE"
gpu_state gpu-before.txt
{ uname -a; command -v nvcc > /dev/null 2>&1 && nvcc --version; } > "$OUT/logs/system.txt" 2>&1

# ---- 1. build ---------------------------------------------------------------
BIN=
jobs=$(nproc 2> /dev/null || echo 4)
run_capped build "$BUILD_MS" "$OUT/logs/build.log" \
    $MAKE_CMD -f calib/calib.mk -j"$jobs" CALIB_ARCHS=90 CALIB_WERROR= \
    CALIB_BUILD=$BUILD_DIR $BUILD_DIR/servesim-calib
summary build - - "$BUILD_MS" "$USED" "$RC" -
if [ "$RC" = 0 ] && [ -x "$BUILD_DIR/servesim-calib" ]; then
    BIN=$BUILD_DIR/servesim-calib
elif [ -x "$PREBUILT" ]; then
    log "build failed (logs/build.log): using the prebuilt $PREBUILT"
    BIN=$PREBUILT
else
    log "build failed (logs/build.log) and no prebuilt binary at $PREBUILT: nothing to run"
    exit 1
fi
if ! "$BIN" --dry-run --plan "$PLAN" > "$OUT/logs/dry-run.log" 2>&1; then
    log "$BIN cannot run (logs/dry-run.log)"
    exit 1
fi

# ---- 2. self-check ----------------------------------------------------------
run_capped check "$CHECK_MS" "$OUT/check.txt" "$BIN" --check
summary check - - "$CHECK_MS" "$USED" "$RC" -
[ "$RC" = 0 ] || log "check: FAILED or did not finish (check.txt); measuring anyway"

# ---- 3 and 4. families, then layers -------------------------------------------
for (( i = 0; i < N_STEPS; i++ )); do
    step=${NAME[i]}
    cap_now "$i"
    if [ "$C" -le $(( STARTUP_MS + MARGIN_MS + 1000 )) ]; then
        sec "$C"
        log "$step: skipped: $S s left for it"
        summary "$step" "${EST[i]}" "${CAP[i]}" "$C" 0 - skipped
        continue
    fi
    sec $(( C - MARGIN_MS )); limit=$S
    if [ "$step" = layer ]; then
        run_capped layer "$C" "$OUT/logs/layer.log" "$BIN" --plan "$PLAN" --layer \
            --out "$OUT/layers.json" --status "$OUT/layers.status" --time-limit "$limit"
        read_status "$OUT/layers.status"
    else
        run_capped "$step" "$C" "$OUT/logs/$step.log" "$BIN" --plan "$PLAN" --only "$step" \
            --out "$OUT/tables/$step.json" --status "$OUT/tables/$step.status" \
            --time-limit "$limit"
        read_status "$OUT/tables/$step.status"
    fi
    [ "$RC" = 137 ] && ST_state=killed
    summary "$step" "${EST[i]}" "${CAP[i]}" "$C" "$USED" "$RC" "${ST_state:-none}"
done

# ---- 5. completions -------------------------------------------------------------
for (( i = 0; i < N_STEPS; i++ )); do
    step=${NAME[i]}
    [ "$step" != layer ] || continue
    read_status "$OUT/tables/$step.status"
    [[ "$ST_resume" =~ ^[0-9]+$ ]] || continue
    case $ST_state in
    cut_short) from=$ST_resume ;;
    running | failed) from=$(( ST_resume + 1 )) ;;   # killed or failed there: skip it
    *) continue ;;
    esac
    time_left
    left=$LEFT
    if [ "$left" -le $(( STARTUP_MS + MARGIN_MS + 5000 )) ]; then
        log "$step: $ST_state at entry $ST_resume, no time left to complete it"
        continue
    fi
    log "$step: $ST_state at entry $ST_resume: completing from entry $from"
    sec $(( left - MARGIN_MS ))
    run_capped "$step.resumed" "$left" "$OUT/logs/$step.resumed.log" "$BIN" --plan "$PLAN" \
        --only "$step" --start "$from" --out "$OUT/tables/$step.resumed.json" \
        --status "$OUT/tables/$step.resumed.status" --time-limit "$S"
    read_status "$OUT/tables/$step.resumed.status"
    [ "$RC" = 137 ] && ST_state=killed
    summary "$step.resumed" - - "$left" "$USED" "$RC" "${ST_state:-none}"
done

gpu_state gpu-after.txt
elapsed; sec $E; used=$S; sec "$DEADLINE_MS"
log "h200_run: done in $used s of $S s; merge on the development machine:"
log "  build/calib-tool merge --out calib/tables/H200-141GB.json $OUT/tables/*.json"
log "and plan the next session from what is still missing (calib/README.md, Sessions):"
log "  build/calib-tool plan --layer --gpu H200-141GB --skip-covered calib/tables/H200-141GB.json \\"
log "      --out next.plan --schedule next.schedule --session next-session.plan"
column -t -s $'\t' "$OUT/summary.tsv" 2> /dev/null || cat "$OUT/summary.tsv"
exit 0
