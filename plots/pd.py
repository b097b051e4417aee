#!/usr/bin/python3
"""For experiments/pd_disagg.json and experiments/pd_migration.json: SLO
attainment, p99 TTFT, p99 TPOT and preemptions versus request rate, one line
per configuration (the swept `description`), one row per value of another
swept path (`--rows`, default the first swept path that is neither the rate
nor the description nor the config object zipped with it, if any): the mean
over seeds. Writes pd_disagg.png or pd_migration.png (`--name`)."""
import json

import numpy as np

from common import Sweep, arguments, plt, save, short


def row_label(v):
    """A swept value for a row title: a length distribution as its mean."""
    try:
        o = json.loads(v)
        if isinstance(o, dict) and "mean" in o:
            return f"mean {o['mean']:g}"
        return v
    except (TypeError, ValueError):
        return str(v)


def main():
    def extra(ap):
        ap.add_argument("--rows", help="swept path of the rows")
        ap.add_argument("--name", default=None, help="PNG name")
    a = arguments(__doc__, extra)
    sw = Sweep(a.results)
    x_p = sw.rate_param()
    skip = {x_p, "description", "cluster", "policies.control"}
    rows_p = a.rows or next((p for p in sw.params if p not in skip), None)
    rows = sw.groups(rows_p)
    cols = [("slo_attain", 100, "SLO attainment (%)"), ("ttft_s_p99", 1e3, "TTFT p99 (ms)"),
            ("tpot_s_p99", 1e3, "TPOT p99 (ms)"), ("preemptions", 1, "preemptions")]
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(18, 3.8 * len(rows)),
                             squeeze=False)
    x = sw.index[x_p]
    for ri, (rlabel, rmask) in enumerate(rows):
        for label, mask in sw.groups("description"):
            m = mask & rmask
            xs = np.unique(x[m])
            for ci, (col, scale, _) in enumerate(cols):
                ys = [sw.index[col][m & (x == v)].mean() * scale for v in xs]
                axes[ri][ci].plot(xs, ys, marker="o", label=label)
        for ci, (col, _, ylabel) in enumerate(cols):
            ax = axes[ri][ci]
            ax.set_xlabel(short(x_p))
            ax.set_ylabel(ylabel)
            ax.grid(True, alpha=0.3)
            if col in ("ttft_s_p99", "tpot_s_p99"):
                ax.set_yscale("log")
        slo = sw.index[0]
        axes[ri][1].axhline(slo["slo_ttft_s"] * 1e3, color="grey", ls="--", lw=1)
        axes[ri][2].axhline(slo["slo_tpot_s"] * 1e3, color="grey", ls="--", lw=1)
        if rows_p:
            axes[ri][0].set_title(f"{short(rows_p)}: {row_label(rlabel)}", loc="left")
    axes[0][0].legend()
    fig.tight_layout()
    name = a.name or ("pd_migration.png" if "control" in " ".join(sw.params) else "pd_disagg.png")
    save(fig, a.out, name)


if __name__ == "__main__":
    main()
