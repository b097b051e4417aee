#!/bin/sh
# make bench: simulator speed and memory on the workload Vidur was timed on
# (Llama-2-70B, TP2, A100, Poisson 1 req/s, input/output means 1155/211).
# Vidur, leanest output settings, 2-core machine: 13.5 s / 1.4 GB for 10,000
# requests and 111 s / 2.0 GB for 100,000. Target: 100x faster, flat memory.
# Wall time and peak RSS are of the whole process (start-up, config, writing
# the HDF5 results included), from /usr/bin/time.
set -eu
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
command -v /usr/bin/time >/dev/null || { echo "bench: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
# Two batch policies: vLLM's default (prefill first), and chunked prefill with
# a 512-token budget and at most 128 sequences, the configuration Vidur was
# measured with (so that row is the like-for-like comparison).
chunked="--set policies.batch.name=chunked_prefill --set policies.batch.params.token_budget=512 --set policies.batch.params.max_seqs=128"
printf '%-22s %9s %8s %11s %13s %15s %12s %8s\n' workload requests wall_s iterations iterations/s requests/wall_s peak_rss_MB vs_Vidur
for policy in prefill_first chunked512; do
    for n in 10k 100k; do
        extra=""
        [ "$policy" = chunked512 ] && extra=$chunked
        # shellcheck disable=SC2086
        /usr/bin/time -f '%e %M' -o "$out/time" \
            ./servesim run "experiments/bench_$n.json" $extra --out "$out/bench.h5" > "$out/log"
        case $n in 10k) vidur=13.5 ;; 100k) vidur=111 ;; esac
        awk -v name="$policy/$n" -v vidur="$vidur" -v tf="$out/time" '
            /requests +[0-9]+ completed/ { req = $2 }
            /simulated time/ { iters = $5 }
            END {
                getline t < tf; split(t, a, " "); wall = a[1]; rss = a[2] / 1024
                if (wall < 0.01) wall = 0.01   # /usr/bin/time resolution
                printf "%-22s %9d %8.2f %11d %13.0f %15.0f %12.1f %7.0fx\n",
                       name, req, wall, iters, iters / wall, req / wall, rss, vidur / wall
            }' "$out/log"
    done
done
echo "Vidur (chunked prefill, budget 512, 128 sequences): 13.5 s (1.4 GB) for 10k, 111 s (2.0 GB) for 100k; 100x target: 0.135 s and 1.1 s"

# Trace ingestion: `servesim trace stats` (read, parse, statistics) on
# generated Azure-format files of 1 and 10 million rows (tests/bench/
# gen_azure.c; a week-long 2024 trace has 27 million). Target: at least
# 2 million rows/s, and peak RSS that does not grow with the file.
${CC:-cc} -O2 -o "$out/gen_azure" tests/bench/gen_azure.c -lm
printf '\n%-14s %10s %9s %8s %14s %10s %12s\n' trace rows size_MB wall_s rows/s MB/s peak_rss_MB
for rows in 1000000 10000000; do
    "$out/gen_azure" $rows > "$out/azure_$rows.csv"
    /usr/bin/time -f '%e %M' -o "$out/time_trace_$rows" \
        ./servesim trace stats "$out/azure_$rows.csv" > "$out/log_trace_$rows"
    bytes=$(wc -c < "$out/azure_$rows.csv")
    awk -v tf="$out/time_trace_$rows" -v bytes="$bytes" '
        /^  rows / { rows = $2 }
        END {
            getline t < tf; split(t, a, " "); wall = a[1]; rss = a[2] / 1024
            if (wall < 0.01) wall = 0.01
            printf "%-14s %10d %9.0f %8.2f %14.0f %10.0f %12.1f\n", "azure_csv", rows,
                   bytes / 1e6, wall, rows / wall, bytes / 1e6 / wall, rss
        }' "$out/log_trace_$rows"
    rm -f "$out/azure_$rows.csv"
done
echo "target: >= 2,000,000 rows/s; peak RSS the same at 1M and 10M rows"

# sim/rbtree (the waiting queues' ordered set): ns per remove + insert at a
# steady 10, 1,000 and 100,000 nodes (tests/bench/rbtree_bench.c).
echo
${CC:-cc} -std=c11 -O2 -D_POSIX_C_SOURCE=200809L -I. -o "$out/rbtree_bench" \
    tests/bench/rbtree_bench.c sim/rbtree.c sim/base.c
"$out/rbtree_bench"
