#!/bin/sh
# make test's plot step: runs every script in plots/ headless on a small
# sweep (experiments/plots_demo.json), the batch-policy figures on
# experiments/batch_policies.json and the timeline on a single run's file,
# and checks that each PNG is written, non-empty and a PNG. Run from
# the repository root after `make servesim`.
set -u
PYTHON=${PYTHON:-/usr/bin/python3}
dir=$(mktemp -d /tmp/servesim-plots-XXXXXX)
trap 'rm -rf "$dir"' EXIT
export MPLBACKEND=Agg MPLCONFIGDIR="$dir/mpl"
passed=0
failed=0
check_png() {
    if "$PYTHON" -c 'import sys; d = open(sys.argv[1], "rb").read(); sys.exit(len(d) < 1000 or d[:8] != b"\x89PNG\r\n\x1a\n")' "$1" 2>/dev/null; then
        passed=$((passed + 1))
    else
        echo "plots: FAILED: $1 missing, empty or not a PNG"
        failed=$((failed + 1))
    fi
}

./servesim sweep experiments/plots_demo.json --out "$dir/demo.h5" --quiet || exit 1
"$PYTHON" plots/all.py "$dir/demo.h5" --out "$dir/sweep" >/dev/null
for png in latency_cdf slo_vs_rate pareto_ttft_tbt energy_vs_throughput timeline; do
    check_png "$dir/sweep/$png.png"
done
# The batch-policy figures need their own sweep (70 small points, about a second).
./servesim sweep experiments/batch_policies.json --out "$dir/batch.h5" --quiet || exit 1
"$PYTHON" plots/batch_policies.py "$dir/batch.h5" --out "$dir/batch" >/dev/null
for png in batch_policies_tradeoff batch_policies_energy; do
    check_png "$dir/batch/$png.png"
done
# The speculative-decoding figure needs its own sweep (105 small points, a few seconds).
./servesim sweep experiments/spec_decode.json --out "$dir/spec.h5" --quiet || exit 1
"$PYTHON" plots/spec_decode.py "$dir/spec.h5" --out "$dir/spec" >/dev/null
check_png "$dir/spec/spec_decode_speedup.png"
./servesim sweep experiments/lora_sweep.json --out "$dir/lora.h5" --quiet || exit 1
"$PYTHON" plots/lora_sweep.py "$dir/lora.h5" --out "$dir/lora" >/dev/null
check_png "$dir/lora/lora_sweep.png"
./servesim run experiments/quickstart.json --set workload.requests=500 --out "$dir/run.h5" --quiet || exit 1
"$PYTHON" plots/timeline.py "$dir/run.h5" --out "$dir/run" >/dev/null
check_png "$dir/run/timeline.png"
echo "plots: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
