#!/usr/bin/python3
"""Latency CDFs: TTFT, TPOT and end-to-end latency of every request in the
summary's window (metrics.warmup_s, cooldown_s), pooled over the seeds, in
ms, one line per variant, at one request rate (--rate; default the middle
one; a rate the sweep does not have is an error)."""
import numpy as np

from common import Sweep, arguments, axis_label, figure, save


def options(ap):
    ap.add_argument("--rate", type=float, help="the rate to plot (default: the middle one)")
    ap.add_argument("--by", help="swept paths of the lines, comma-separated")


def main():
    a = arguments(__doc__, options)
    sw = Sweep(a.results)
    rate_p = sw.rate_param()
    rates = np.unique(sw.index[rate_p])
    rate = a.rate if a.rate is not None else rates[len(rates) // 2]
    at_rate = sw.at(rate_p, rate)
    by = sw.group_params(rate_p, a.by)
    fig, axes = figure(a.style, ncols=3, aspect=0.8)
    axes = axes[0]
    cols = [("ttft_ns", "TTFT (ms)"), ("tpot_ns", "TPOT (ms)"), ("e2e_ns", "end-to-end (ms)")]
    for label, mask in sw.groups(by, at_rate):
        req = np.concatenate([sw.requests(i) for i in sw.index["id"][mask]])
        req = req[req["in_window"]]
        for ax, (col, name) in zip(axes, cols):
            v = req[col] / 1e6
            if col == "tpot_ns":
                v = v[req["output_tokens"] > 1]   # one token: no TPOT
            v = np.sort(v)
            ax.plot(v, np.arange(1, len(v) + 1) / len(v), label=label)
            ax.set_xlabel(name)
    axes[0].set_ylabel("fraction of requests")
    for ax in axes:
        ax.set_xscale("log")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(title=", ".join(axis_label(p) for p in by) or None)
    save(fig, a.out, "latency_cdf.png", f"latency CDFs at {axis_label(rate_p)} = {rate:g}")


if __name__ == "__main__":
    main()
