#!/usr/bin/python3
"""TTFT versus TBT at one load level (--rate; default the middle one): each
variant's p90 TTFT against its p90 time between tokens, the mean over seeds
with 95% confidence bars, and the Pareto front (variants no other beats on
both) drawn through."""
import numpy as np

from common import Sweep, arguments, axis_label, figure, mean_ci, save


def pareto_front(x, y):
    """Indices of the points not dominated (lower is better on both), by x."""
    order = np.lexsort((y, x))
    front, best = [], np.inf
    for i in order:
        if y[i] < best:
            front.append(i)
            best = y[i]
    return front


def options(ap):
    ap.add_argument("--rate", type=float, help="the load level (default: the middle rate)")
    ap.add_argument("--by", help="swept paths of the variants, comma-separated")


def main():
    a = arguments(__doc__, options)
    sw = Sweep(a.results)
    rate_p = sw.rate_param()
    rates = np.unique(sw.index[rate_p])
    rate = a.rate if a.rate is not None else rates[len(rates) // 2]
    at_rate = sw.at(rate_p, rate)
    by = sw.group_params(rate_p, a.by)
    fig, axes = figure(a.style, aspect=0.8)
    ax = axes[0][0]
    xs, ys = [], []
    for label, mask in sw.groups(by, at_rate):
        x, xh = mean_ci(sw.index["tbt_s_p90"][mask] * 1e3)
        y, yh = mean_ci(sw.index["ttft_s_p90"][mask] * 1e3)
        point, = ax.plot([x], [y], "o", ms=4, label=label)
        ax.errorbar([x], [y], xerr=[xh], yerr=[yh], fmt="none", capsize=2,
                    ecolor=point.get_color())
        xs.append(x)
        ys.append(y)
    front = pareto_front(np.array(xs), np.array(ys))
    ax.plot(np.array(xs)[front], np.array(ys)[front], color="black", lw=1, label="Pareto front")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("TBT p90 (ms)")
    ax.set_ylabel("TTFT p90 (ms)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(title=", ".join(axis_label(p) for p in by) or None)
    save(fig, a.out, "pareto_ttft_tbt.png", f"at {axis_label(rate_p)} = {rate:g}")


if __name__ == "__main__":
    main()
