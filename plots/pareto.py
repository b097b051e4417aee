#!/usr/bin/python3
"""TTFT versus TBT across a sweep: every point's p90 TTFT against its p90
time between tokens (log scales), coloured by group, with the Pareto front
(points no other point beats on both) drawn through."""
import numpy as np

from common import Sweep, arguments, plt, save, short


def pareto_front(x, y):
    """Indices of the points not dominated (lower is better on both), by x."""
    order = np.lexsort((y, x))
    front, best = [], np.inf
    for i in order:
        if y[i] < best:
            front.append(i)
            best = y[i]
    return front


def main():
    a = arguments(__doc__, lambda ap: ap.add_argument("--by", help="swept path of the colours"))
    sw = Sweep(a.results)
    by = a.by or sw.group_param(sw.rate_param())
    x = sw.index["tbt_s_p90"] * 1e3
    y = sw.index["ttft_s_p90"] * 1e3
    fig, ax = plt.subplots(figsize=(6.5, 5))
    for label, mask in sw.groups(by):
        ax.scatter(x[mask], y[mask], s=18, alpha=0.7, label=label)
    front = pareto_front(x, y)
    ax.plot(x[front], y[front], color="black", lw=1.2, label="Pareto front")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("TBT p90 (ms)")
    ax.set_ylabel("TTFT p90 (ms)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(title=short(by))
    save(fig, a.out, "pareto_ttft_tbt.png")


if __name__ == "__main__":
    main()
