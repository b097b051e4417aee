#!/usr/bin/python3
"""Fits a scorer for the `sampled` eviction policy (policies/evict_sampled.c)
offline from a trace replay, in the spirit of Cold-RL: replay the trace's
prefix blocks through an LRU cache of CAPACITY blocks; at each eviction take
the K least recently used cached blocks as candidates, record their features
(age_s, hits, depth, leaf, rank) and a label: 1 if the block is asked for
again within HORIZON seconds of trace time, else 0; fit the label by least
squares (a linear score: higher means worth keeping) and write
{"features": [...], "weights": [...], "bias": b} for the policy's "model"
param.

Reads Mooncake JSONL (timestamp ms, input_length, hash_ids; 512-token ids)
or servesim's native CSV (arrival_s, ..., prefix_block_tokens,
prefix_blocks). Depth is written in blocks of --block-tokens (the run's
block_size_tokens), so the weights mean the same in the simulator. The
replay is of whole prefix blocks one request at a time (no concurrency, no
recompute cost: its weight is left out), a proxy for the simulated cache.

usage: evict_sampled_fit.py TRACE OUT.json [--capacity 4096] [--candidates 16]
                            [--horizon-s 600] [--block-tokens 16] [--max-rows N]"""
import argparse
import bisect
import csv
import json
from collections import OrderedDict, defaultdict

import numpy as np

FEATURES = ["age_s", "hits", "depth", "leaf", "rank"]


def read_rows(path, max_rows):
    """Yields (time_s, [block ids], tokens per id)."""
    with open(path) as f:
        first = f.readline()
        f.seek(0)
        if first.lstrip().startswith("{"):
            for i, line in enumerate(f):
                if max_rows and i >= max_rows:
                    return
                if line.strip():
                    r = json.loads(line)
                    yield r["timestamp"] / 1e3, list(r.get("hash_ids", [])), 512
        else:
            for i, r in enumerate(csv.DictReader(f)):
                if max_rows and i >= max_rows:
                    return
                ids = [int(x) for x in (r.get("prefix_blocks") or "").split()]
                yield float(r["arrival_s"]), ids, int(r.get("prefix_block_tokens") or 512)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("trace")
    ap.add_argument("out")
    ap.add_argument("--capacity", type=int, default=4096, help="cache size in trace blocks")
    ap.add_argument("--candidates", type=int, default=16)
    ap.add_argument("--horizon-s", type=float, default=600)
    ap.add_argument("--block-tokens", type=int, default=16)
    ap.add_argument("--max-rows", type=int, default=0)
    a = ap.parse_args()

    rows = list(read_rows(a.trace, a.max_rows))
    uses = defaultdict(list)   # block id -> times it is asked for
    for t, ids, _ in rows:
        for h in ids:
            uses[h].append(t)

    cache = OrderedDict()      # id -> [last_access_s, hits, depth, children]
    parent = {}
    X, y = [], []
    for t, ids, id_tokens in rows:
        scale = id_tokens / a.block_tokens
        matching = True
        for j, h in enumerate(ids):
            if matching and h in cache:
                e = cache[h]
                e[0] = t
                e[1] += 1
                cache.move_to_end(h)
                continue
            matching = False
            if h in cache:
                cache[h][0] = t
                cache.move_to_end(h)
                continue
            if len(cache) >= a.capacity:
                cand = []
                for rank, (cid, e) in enumerate(cache.items()):
                    if rank >= a.candidates:
                        break
                    cand.append(cid)
                    times = uses[cid]
                    k = bisect.bisect_right(times, t)
                    label = 1.0 if k < len(times) and times[k] <= t + a.horizon_s else 0.0
                    X.append([t - e[0], e[1], e[2] * scale, 1.0 if e[3] == 0 else 0.0,
                              rank / a.candidates])
                    y.append(label)
                victim = cand[0]   # the replay itself stays LRU
                e = cache.pop(victim)
                p = parent.pop(victim, None)
                if p in cache:
                    cache[p][3] -= 1
            cache[h] = [t, 0, j, 0]
            if j > 0 and ids[j - 1] in cache:
                parent[h] = ids[j - 1]
                cache[ids[j - 1]][3] += 1

    if not X:
        raise SystemExit(f"{a.trace}: no evictions at capacity {a.capacity}: lower --capacity")
    X = np.array(X)
    y = np.array(y)
    mu, sd = X.mean(axis=0), X.std(axis=0)
    sd[sd == 0] = 1
    Z = np.hstack([(X - mu) / sd, np.ones((len(X), 1))])
    coef, *_ = np.linalg.lstsq(Z, y, rcond=None)
    w = coef[:-1] / sd                        # back to raw feature units
    b = coef[-1] - float(np.dot(w, mu))
    pred = X @ w + b
    json.dump({"features": FEATURES, "weights": [float(v) for v in w], "bias": float(b),
               "fit": {"trace": a.trace, "capacity_blocks": a.capacity,
                       "candidates": a.candidates, "horizon_s": a.horizon_s,
                       "samples": int(len(y)), "positive_share": float(y.mean()),
                       "accuracy_at_0.5": float(((pred > 0.5) == (y > 0.5)).mean())}},
              open(a.out, "w"), indent=1)
    print(f"{len(y)} samples, {100 * y.mean():.1f}% reused within {a.horizon_s:g} s; "
          f"weights {dict(zip(FEATURES, np.round(w, 5)))}, bias {b:.4f} -> {a.out}")


if __name__ == "__main__":
    main()
