#!/usr/bin/python3
"""SLO attainment and p99 latencies versus request rate: one line per
value of the grouping path (a policy by default), the mean over seeds with
the range across seeds shaded."""
import numpy as np

from common import Sweep, arguments, plt, save, short


def band(ax, sw, mask, x_p, col, label, scale=1.0):
    xs = np.unique(sw.index[x_p][mask])
    rows = [sw.index[col][mask & (sw.index[x_p] == x)] * scale for x in xs]
    mean = np.array([r.mean() for r in rows])
    ax.plot(xs, mean, marker="o", label=label)
    ax.fill_between(xs, [r.min() for r in rows], [r.max() for r in rows], alpha=0.2)


def main():
    a = arguments(__doc__, lambda ap: ap.add_argument("--by", help="swept path of the lines"))
    sw = Sweep(a.results)
    x_p = sw.rate_param()
    by = a.by or sw.group_param(x_p)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for label, mask in sw.groups(by):
        band(axes[0], sw, mask, x_p, "slo_attain", label, 100)
        band(axes[1], sw, mask, x_p, "ttft_s_p99", label, 1e3)
        band(axes[2], sw, mask, x_p, "tpot_s_p99", label, 1e3)
    slo = sw.index[0]
    axes[0].set_ylabel("SLO attainment (%)")
    axes[1].set_ylabel("TTFT p99 (ms)")
    axes[2].set_ylabel("TPOT p99 (ms)")
    axes[1].axhline(slo["slo_ttft_s"] * 1e3, color="grey", ls="--", lw=1)
    axes[2].axhline(slo["slo_tpot_s"] * 1e3, color="grey", ls="--", lw=1)
    for ax in axes:
        ax.set_xlabel(short(x_p))
        ax.grid(True, alpha=0.3)
    axes[1].set_yscale("log")
    axes[2].set_yscale("log")
    axes[0].legend(title=short(by))
    save(fig, a.out, "slo_vs_rate.png")


if __name__ == "__main__":
    main()
