#!/usr/bin/python3
"""Writes the workloads of experiments/slo_scheduling.json (servesim's native
trace format). Poisson arrivals at 1 request/s (sweeps scale them with
workload.rate_scale); deterministic (seed 17): rerunning rewrites the same files.

  mixed (default): 80% interactive requests (class 0: lognormal prompts of median
    300 tokens, 32..1024; TTFT target 150 ms), a fifth of them the first call of a
    multi-call (agentic) group of 3 calls, the next ones arriving 1-3 s apart, all
    sharing one deadline 10 s after the first (column group; deadline_ms = the
    group's deadline less the call's offset); 20% batch requests (class 1:
    long-tailed prompts 2,000 + Pareto(1.5) x 1,500 tokens, at most 8,000; TTFT
    target 5 s; end-to-end deadline 60 s). Outputs: lognormal, median 100
    (interactive) and 200 (batch) tokens, 2..1024.
  streamed: the same requests with their prompts streamed (column chunks): a
    prompt of n tokens arrives in ceil(n / 512) chunks (at most 8), one every
    U(50, 150) ms, as context retrieved piece by piece (Stream2LLM's setting).

Usage: experiments/data/gen_slo_scheduling.py [mixed|streamed] [N] > FILE"""
import math
import random
import sys


def requests(n):
    rng = random.Random(17)
    t = 0.0
    rows = []
    group = 0
    while len(rows) < n:
        t += rng.expovariate(1.0)
        if rng.random() < 0.8:
            calls = 3 if rng.random() < 0.2 else 1
            gid = 0
            if calls > 1:
                group += 1
                gid = group
            at = t
            for k in range(calls):
                inp = min(1024, max(32, int(round(math.exp(rng.gauss(math.log(300), 0.6))))))
                outp = min(1024, max(2, int(round(math.exp(rng.gauss(math.log(100), 0.7))))))
                dl = 10000 - (at - t) * 1000 if gid else 0
                rows.append((at, inp, outp, 0, 150, gid, dl))
                at += rng.uniform(1.0, 3.0)
        else:
            inp = min(8000, int(2000 + 1500 * rng.paretovariate(1.5)))
            outp = min(1024, max(2, int(round(math.exp(rng.gauss(math.log(200), 0.7))))))
            rows.append((t, inp, outp, 1, 5000, 0, 60000))
    rows.sort(key=lambda r: r[0])
    return rows[:n]


def chunks(rng, inp):
    k = min(8, max(1, math.ceil(inp / 512)))
    base, extra = divmod(inp, k)
    out, at = [], 0.0
    for i in range(k):
        out.append(f"{at:.3f}:{base + (1 if i < extra else 0)}")
        at += rng.uniform(50, 150)
    return " ".join(out)


def main():
    kind = sys.argv[1] if len(sys.argv) > 1 else "mixed"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    rows = requests(n)
    out = sys.stdout
    if kind == "mixed":
        out.write("arrival_s,input_tokens,output_tokens,slo_class,ttft_slo_ms,group,deadline_ms\n")
        for at, inp, outp, cls, ttft, gid, dl in rows:
            out.write(f"{at:.6f},{inp},{outp},{cls},{ttft},{gid},{dl:.3f}\n")
    else:
        rng = random.Random(19)
        out.write("arrival_s,input_tokens,output_tokens,slo_class,ttft_slo_ms,chunks\n")
        for at, inp, outp, cls, ttft, gid, dl in rows:
            out.write(f"{at:.6f},{inp},{outp},{cls},{ttft},{chunks(rng, inp)}\n")


main()
