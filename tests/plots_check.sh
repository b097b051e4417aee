#!/bin/sh
# make test's plot step: runs every script in plots/ headless on a small
# sweep (experiments/plots_demo.json), the batch-policy figures on
# experiments/batch_policies.json and the timeline on a single run's file,
# then checks what they drew (tests/plots_check.py: the series against the
# results files, readable labels, ms, labelled SLO lines, an empty
# selection an error). Run from the repository root after `make servesim`.
set -u
PYTHON=${PYTHON:-/usr/bin/python3}
dir=$(mktemp -d /tmp/servesim-plots-XXXXXX)
trap 'rm -rf "$dir"' EXIT
export MPLBACKEND=Agg MPLCONFIGDIR="$dir/mpl"

./servesim sweep experiments/plots_demo.json --out "$dir/demo.h5" --quiet || exit 1
"$PYTHON" plots/all.py "$dir/demo.h5" --out "$dir/sweep" >/dev/null || exit 1
# The batch-policy figures need their own sweep (70 small points, about a second).
./servesim sweep experiments/batch_policies.json --out "$dir/batch.h5" --quiet || exit 1
"$PYTHON" plots/batch_policies.py "$dir/batch.h5" --out "$dir/batch" >/dev/null || exit 1
# The autoscaling figures: two points of the cold-start sweep (a few seconds).
./servesim sweep experiments/autoscale_coldstart.json --limit 2 --out "$dir/scale.h5" --quiet || exit 1
"$PYTHON" plots/autoscale.py "$dir/scale.h5" --out "$dir/scale" >/dev/null || exit 1
for png in autoscale_cost_slo autoscale_replicas; do
    test -s "$dir/scale/$png.png" || { echo "plots: FAILED: $dir/scale/$png.png missing"; exit 1; }
done
# The speculative-decoding figure needs its own sweep (105 small points, a few seconds).
./servesim sweep experiments/spec_decode.json --out "$dir/spec.h5" --quiet || exit 1
"$PYTHON" plots/spec_decode.py "$dir/spec.h5" --out "$dir/spec" >/dev/null
check_png "$dir/spec/spec_decode_speedup.png"
./servesim sweep experiments/lora_sweep.json --out "$dir/lora.h5" --quiet || exit 1
"$PYTHON" plots/lora_sweep.py "$dir/lora.h5" --out "$dir/lora" >/dev/null
check_png "$dir/lora/lora_sweep.png"
./servesim run experiments/quickstart.json --set workload.requests=500 --out "$dir/run.h5" --quiet || exit 1
"$PYTHON" plots/timeline.py "$dir/run.h5" --out "$dir/run" >/dev/null || exit 1
# The capacity figure: a short search's probes (exit 1 would be no bracket).
./servesim capacity experiments/quickstart.json --slo ttft_p90=300ms,tpot_p90=40ms \
    --set workload.requests=300 -j 2 --out "$dir/cap.h5" --quiet || exit 1
"$PYTHON" plots/capacity.py "$dir/cap.h5" --out "$dir/cap" >/dev/null || exit 1
"$PYTHON" tests/plots_check.py "$dir" "$dir/demo.h5" "$dir/batch.h5" "$dir/run.h5" "$dir/cap.h5"
