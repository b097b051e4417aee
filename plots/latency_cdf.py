#!/usr/bin/python3
"""Latency CDFs per policy: TTFT, TPOT and end-to-end latency of every
request, pooled over the seeds, one line per value of the grouping path (a
policy by default), at one request rate (the middle one by default)."""
import numpy as np

from common import Sweep, arguments, plt, save, short


def options(ap):
    ap.add_argument("--rate", type=float, help="the rate to plot (default: the middle one)")
    ap.add_argument("--by", help="swept path whose values are the lines (default: the policy)")


def main():
    a = arguments(__doc__, options)
    sw = Sweep(a.results)
    rate_p = sw.rate_param()
    rates = np.unique(sw.index[rate_p])
    rate = a.rate if a.rate is not None else rates[len(rates) // 2]
    by = a.by or sw.group_param(rate_p)
    at_rate = sw.index[rate_p] == rate
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    cols = [("ttft_ns", "TTFT (s)"), ("tpot_ns", "TPOT (s)"), ("e2e_ns", "end-to-end (s)")]
    for label, mask in sw.groups(by):
        ids = sw.index["id"][mask & at_rate]
        if len(ids) == 0:
            continue
        req = np.concatenate([sw.requests(i) for i in ids])
        for ax, (col, name) in zip(axes, cols):
            v = np.sort(req[col] / 1e9)
            ax.plot(v, np.arange(1, len(v) + 1) / len(v), label=label)
            ax.set_xlabel(name)
    axes[0].set_ylabel("fraction of requests")
    for ax in axes:
        ax.set_xscale("log")
        ax.grid(True, alpha=0.3)
    axes[0].legend(title=short(by))
    fig.suptitle(f"latency CDFs at {short(rate_p)} = {rate:g}")
    save(fig, a.out, "latency_cdf.png")


if __name__ == "__main__":
    main()
