#!/usr/bin/python3
"""Checks that two sweep results files hold the same results: the same
index (every column but the wall-clock ones), and for every point the same
config, summary, requests and time series, bit for bit. Runs are
deterministic, so a local sweep, a parallel one and an MPI one must agree.

usage: compare_results.py A.h5 B.h5     (exit 0 equal, 1 different)"""
import sys

import h5py
import numpy as np

WALL = {"wall_s", "peak_rss_mb"}   # measured, not simulated


def same_table(a, b, what):
    if a.dtype.names != b.dtype.names or a.shape != b.shape:
        return f"{what}: different columns or rows"
    for name in a.dtype.names:
        if name in WALL:
            continue
        x, y = a[name], b[name]
        if x.dtype.kind == "f":
            equal = np.array_equal(x, y, equal_nan=True)
        else:
            equal = np.array_equal(x, y)
        if not equal:
            return f"{what}: column {name} differs"
    return None


def same_group(a, b, where):
    if set(a.keys()) != set(b.keys()):
        return f"{where}: members {sorted(a.keys())} vs {sorted(b.keys())}"
    for key in ("config", "seed", "cost_sources", "error"):
        if a.attrs.get(key) != b.attrs.get(key):
            return f"{where}: attribute {key} differs"
    for name, obj in a.items():
        if isinstance(obj, h5py.Group):
            problem = same_group(obj, b[name], f"{where}/{name}")
        else:
            problem = same_table(obj[()], b[name][()], f"{where}/{name}")
        if problem:
            return problem
    return None


def main(path_a, path_b):
    with h5py.File(path_a, "r") as a, h5py.File(path_b, "r") as b:
        problem = same_table(a["index"][()], b["index"][()], "/index")
        problem = problem or same_group(a["points"], b["points"], "/points")
    if problem:
        print(f"compare_results: {path_a} and {path_b} differ: {problem}")
        return 1
    print(f"compare_results: {path_a} and {path_b} hold the same results")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
