#!/usr/bin/python3
"""SLO attainment, p99 TTFT and p99 TPOT versus request rate: one line per
variant (the values of the other swept paths, or --by PATH[,PATH]), the mean
over seeds with its 95% confidence band, the SLO targets as labelled lines."""
from common import Sweep, arguments, axis_label, band, figure, save, slo_line


def main():
    a = arguments(__doc__, lambda ap: ap.add_argument("--by", help="swept paths of the lines, "
                                                      "comma-separated"))
    sw = Sweep(a.results)
    x_p = sw.rate_param()
    by = sw.group_params(x_p, a.by)
    fig, axes = figure(a.style, ncols=3, aspect=0.8)
    axes = axes[0]
    for label, mask in sw.groups(by):
        band(axes[0], sw, mask, x_p, "slo_attain", label, 100)
        band(axes[1], sw, mask, x_p, "ttft_s_p99", label, 1e3)
        band(axes[2], sw, mask, x_p, "tpot_s_p99", label, 1e3)
    first = sw.index[0]
    slo_line(axes[1], first["slo_ttft_s"] * 1e3, "TTFT")
    slo_line(axes[2], first["slo_tpot_s"] * 1e3, "TPOT")
    axes[0].set_ylabel("SLO attainment (%)")
    axes[1].set_ylabel("TTFT p99 (ms)")
    axes[2].set_ylabel("TPOT p99 (ms)")
    for ax in axes:
        ax.set_xlabel(axis_label(x_p))
        ax.grid(True, alpha=0.3)
    axes[1].set_yscale("log")
    axes[2].set_yscale("log")
    axes[0].legend(title=", ".join(axis_label(p) for p in by) or None)
    axes[1].legend(handles=[axes[1].get_lines()[-1]], loc="upper left")
    axes[2].legend(handles=[axes[2].get_lines()[-1]], loc="upper left")
    save(fig, a.out, "slo_vs_rate.png")


if __name__ == "__main__":
    main()
