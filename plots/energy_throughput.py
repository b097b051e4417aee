#!/usr/bin/python3
"""Energy per output token versus output throughput: one line per group (a
policy by default) through the mean of the seeds at each request rate."""
import numpy as np

from common import Sweep, arguments, plt, save, short


def main():
    a = arguments(__doc__, lambda ap: ap.add_argument("--by", help="swept path of the lines"))
    sw = Sweep(a.results)
    x_p = sw.rate_param()
    by = a.by or sw.group_param(x_p)
    fig, ax = plt.subplots(figsize=(6.5, 5))
    for label, mask in sw.groups(by):
        xs = np.unique(sw.index[x_p][mask])
        tput = [sw.index["throughput_tok_s"][mask & (sw.index[x_p] == v)].mean() for v in xs]
        jpt = [sw.index["energy_per_out_token_j"][mask & (sw.index[x_p] == v)].mean() for v in xs]
        ax.plot(tput, jpt, marker="o", label=label)
    ax.set_xlabel("throughput (output tokens/s)")
    ax.set_ylabel("energy per output token (J)")
    ax.grid(True, alpha=0.3)
    ax.legend(title=short(by))
    save(fig, a.out, "energy_vs_throughput.png")


if __name__ == "__main__":
    main()
