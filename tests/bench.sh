#!/bin/sh
# make bench: simulator speed and memory on the workload Vidur was timed on
# (Llama-2-70B, TP2, A100, Poisson 1 req/s, input/output means 1155/211).
# Vidur, leanest output settings, 2-core machine: 13.5 s / 1.4 GB for 10,000
# requests and 111 s / 2.0 GB for 100,000. Target: 100x faster, flat memory.
set -eu
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
printf '%-14s %10s %12s %14s %16s %12s\n' workload requests wall_s iterations/s requests/wall_s peak_rss_MB
for n in 10k 100k; do
    ./servesim run "experiments/bench_$n.json" --out "$out/bench_$n.h5" > "$out/log_$n"
    awk -v name="bench_$n" '
        /requests +[0-9]+ completed/ { req = $2 }
        /^  wall/ { wall = $2; ips = $4; rps = $6; rss = $11 }
        END { printf "%-14s %10s %12s %14s %16s %12s\n", name, req, wall, ips, rps, rss }
    ' "$out/log_$n"
done
echo "(Vidur: 13.5 s for 10k and 111 s for 100k requests; 100x target: 0.135 s and 1.1 s)"
