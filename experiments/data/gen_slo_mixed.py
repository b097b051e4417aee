#!/usr/bin/python3
"""Writes experiments/data/slo_mixed.csv (servesim's native trace format), the
mixed-SLO workload of experiments/slo_sched.json: Poisson arrivals at 1 request/s
(sweeps scale it with workload.rate_scale), 80% interactive requests (class 0:
lognormal prompts of median 300 tokens, 32..1024; TTFT target 150 ms) and 20%
batch requests (class 1: long-tailed prompts, 2,000 + Pareto(1.5) x 1,500 tokens,
at most 8,000; TTFT target 5 s). Outputs: lognormal, median 100 (interactive) and
200 (batch) tokens, 2..1024. Deterministic (seed 13): rerunning rewrites the
same file. Usage: experiments/data/gen_slo_mixed.py [N] > experiments/data/slo_mixed.csv"""
import math
import random
import sys

def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    rng = random.Random(13)
    t = 0.0
    out = sys.stdout
    out.write("arrival_s,input_tokens,output_tokens,slo_class,ttft_slo_ms\n")
    for _ in range(n):
        t += rng.expovariate(1.0)
        if rng.random() < 0.8:
            cls, ttft = 0, 150
            inp = min(1024, max(32, int(round(math.exp(rng.gauss(math.log(300), 0.6))))))
            outp = min(1024, max(2, int(round(math.exp(rng.gauss(math.log(100), 0.7))))))
        else:
            cls, ttft = 1, 5000
            inp = min(8000, int(2000 + 1500 * rng.paretovariate(1.5)))
            outp = min(1024, max(2, int(round(math.exp(rng.gauss(math.log(200), 0.7))))))
        out.write(f"{t:.6f},{inp},{outp},{cls},{ttft}\n")

main()
