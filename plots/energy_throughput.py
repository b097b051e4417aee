#!/usr/bin/python3
"""Energy per output token versus output throughput: one line per variant
through the mean over seeds at each request rate."""
from common import Sweep, arguments, axis_label, by_x, figure, save


def main():
    a = arguments(__doc__, lambda ap: ap.add_argument("--by", help="swept paths of the lines, "
                                                      "comma-separated"))
    sw = Sweep(a.results)
    x_p = sw.rate_param()
    by = sw.group_params(x_p, a.by)
    fig, axes = figure(a.style, aspect=0.8)
    ax = axes[0][0]
    for label, mask in sw.groups(by):
        _, tput, _ = by_x(sw, mask, x_p, "throughput_tok_s")
        _, jpt, _ = by_x(sw, mask, x_p, "energy_per_out_token_j")
        ax.plot(tput, jpt, marker="o", ms=3, label=label)
    ax.set_xlabel("throughput (output tokens/s)")
    ax.set_ylabel("energy per output token (J)")
    ax.grid(True, alpha=0.3)
    ax.legend(title=", ".join(axis_label(p) for p in by) or None)
    save(fig, a.out, "energy_vs_throughput.png")


if __name__ == "__main__":
    main()
