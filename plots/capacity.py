#!/usr/bin/python3
"""A capacity search's probes (servesim capacity ... --out probes.h5): SLO
attainment and each bounded statistic (ms) against the value searched, every
probe marked pass or fail, the SLO bounds and the capacity found as labelled
lines. Writes capacity.png."""
import json

import h5py
import numpy as np

from common import arguments, axis_label, fail, figure, save, text

NAMES = {"ttft": "TTFT", "tbt": "TBT", "tpot": "TPOT", "e2e": "E2E", "queue": "queueing"}


def main():
    a = arguments(__doc__)
    with h5py.File(a.results, "r") as f:
        if "probes" not in f:
            fail(f"{a.results}: no /probes: not a capacity file (servesim capacity --out)")
        p = f["probes"][()]
        attrs = {k: f.attrs[k] for k in f.attrs}
    if len(p) == 0:
        fail(f"{a.results}: no probe")
    over, slo = text(attrs["over"]), text(attrs["slo"])
    bounds = [b.split("=") for b in slo.split(",") if b]
    order = np.argsort(p["value"])
    p = p[order]
    fig, axes = figure(a.style, ncols=1 + len(bounds), aspect=0.8)
    axes = axes[0]
    passed = p["pass"] == 1
    cols = [("slo_attain", 100, "SLO attainment (%)", float(attrs["attain"]) * 100, "attainment")]
    for name, limit in bounds:
        metric, stat = name.split("_")
        cols.append((f"{metric}_s_{stat}", 1e3, f"{NAMES[metric]} {stat} (ms)",
                     float(limit.rstrip("ms")), f"{NAMES[metric]} {stat}"))
    cap = float(attrs["capacity"])
    for ax, (col, scale, ylabel, bound, bname) in zip(axes, cols):
        ax.plot(p["value"], p[col] * scale, color="grey", lw=0.8, label="_probes")
        ax.plot(p["value"][passed], p[col][passed] * scale, "o", color="tab:green", ms=4,
                label="pass")
        ax.plot(p["value"][~passed], p[col][~passed] * scale, "x", color="tab:red", ms=5,
                label="fail")
        if bound > 0:
            ax.axhline(bound, color="grey", ls="--", lw=1,
                       label=f"{bname} SLO {bound:g}{'%' if col == 'slo_attain' else ' ms'}")
        if np.isfinite(cap):
            ax.axvline(cap, color="black", ls=":", lw=1, label=f"capacity {cap:.4g}")
        ax.set_xlabel(axis_label(over))
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    cfg = json.loads(text(attrs["config"]))
    save(fig, a.out, "capacity.png", f"capacity of {cfg['model']} on {cfg['gpu']}: SLO {slo}, "
         f"{int(attrs['seeds'])} seed(s) per probe")


if __name__ == "__main__":
    main()
