#!/usr/bin/python3
"""SLO-aware scheduling on a mixed-SLO workload (experiments/slo_sched.json):
per policy variant (batch policy, its params, queue order) over load, the
goodput (requests/s meeting both their TTFT and TPOT targets = slo_attain x
throughput_req_s), the TTFT attainment of the interactive class (0) and of
the batch class (1), and the interactive class's p99 TTFT. Prints the table
and writes slo_sched.png. Every point is the mean over the seeds."""
import h5py
import numpy as np

from common import Sweep, arguments, figure, save, text

NAME, PARAMS, ORDER = "policies.batch.name", "policies.batch.params", "policies.order.name"
RATE = "workload.rate_scale"


def class_row(path, point_id, cls):
    with h5py.File(path, "r") as f:
        c = f["points"][point_id]["classes"][()]
    row = c[c["id"] == cls]
    return row[0] if len(row) else None


def main():
    a = arguments(__doc__)
    sw = Sweep(a.results)
    ix = sw.index
    fig, axes = figure(a.style, ncols=2, nrows=2, aspect=0.75)
    print(f"{'variant':38s} {'x':>4s} {'goodput/s':>9s} {'attain':>7s} "
          f"{'c0 ttft%':>8s} {'c1 ttft%':>8s} {'c0 p99 ms':>9s} {'c1 p99 ms':>9s}")
    for label, mask in sw.groups([NAME, PARAMS, ORDER]):
        xs = np.unique(ix[RATE][mask])
        series = {k: [] for k in ("good", "c0", "c1", "p99")}
        for x in xs:
            rows = ix[mask & (ix[RATE] == x)]
            good = np.mean(rows["slo_attain"] * rows["throughput_req_s"])
            c0 = [class_row(a.results, text(r["id"]), 0) for r in rows]
            c1 = [class_row(a.results, text(r["id"]), 1) for r in rows]
            c0a = np.mean([c["slo_attain_ttft"] for c in c0]) * 100
            c1a = np.mean([c["slo_attain_ttft"] for c in c1]) * 100
            p99 = np.mean([c["ttft_s_p99"] for c in c0]) * 1e3
            p99b = np.mean([c["ttft_s_p99"] for c in c1]) * 1e3
            for k, v in (("good", good), ("c0", c0a), ("c1", c1a), ("p99", p99)):
                series[k].append(v)
            print(f"{label:38s} {x:4g} {good:9.3f} {np.mean(rows['slo_attain'])*100:6.1f}% "
                  f"{c0a:7.1f}% {c1a:7.1f}% {p99:9.0f} {p99b:9.0f}")
        for ax, k in zip(axes.flat, ("good", "c0", "c1", "p99")):
            ax.plot(xs, series[k], marker="o", label=label)
    titles = {"good": "goodput (req/s meeting both SLOs)",
              "c0": "interactive TTFT attainment (%)",
              "c1": "batch TTFT attainment (%)", "p99": "interactive p99 TTFT (ms)"}
    for ax, k in zip(axes.flat, ("good", "c0", "c1", "p99")):
        ax.set_xlabel("load (x 1 req/s)")
        ax.set_ylabel(titles[k])
    axes[1][1].set_yscale("log")
    axes[0][0].legend(fontsize="x-small")
    save(fig, a.out, "slo_sched.png")


if __name__ == "__main__":
    main()
