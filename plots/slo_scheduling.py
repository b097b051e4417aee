#!/usr/bin/python3
"""Finer SLO-aware scheduling (experiments/slo_scheduling.json): per policy
variant over load, the goodput (requests/s meeting both their TTFT and TPOT
targets = slo_attain x throughput_req_s), the service goodput (output tokens/s
of the requests meeting both, from the classes table's good_tokens), the
interactive class's p99 TTFT, and for streamed prompts the TTFT from the first
and from the last chunk. Prints, per variant, the max goodput over load, the
highest load whose attainment is at least --attain (90%), and the p99 TTFT
(overall and per class) at that load; writes slo_scheduling.png."""
import h5py
import matplotlib.pyplot as plt
import numpy as np

from common import Sweep, arguments, figure, save, text

RATE = "workload.rate_scale"
VARIANT = "description"


def classes(path, point_id):
    with h5py.File(path, "r") as f:
        return f["points"][point_id]["classes"][()]


def class_value(table, cls, col):
    row = table[table["id"] == cls]
    return float(row[0][col]) if len(row) else float("nan")


def main():
    a = arguments(__doc__, extra=lambda p: p.add_argument(
        "--attain", type=float, default=0.9, help="attainment a load must keep (0.9)"))
    sw = Sweep(a.results)
    ix = sw.index
    fig, axes = figure(a.style, ncols=2, nrows=2, aspect=0.75)
    print(f"{'variant':20s} {'max goodput/s':>13s} {'at x':>5s} {'svc tok/s':>9s} "
          f"{'max x>=' + str(int(a.attain * 100)) + '%':>9s} {'p99 TTFT ms':>11s} "
          f"{'c0 p99':>8s} {'c1 p99':>8s} {'stream first/last p99 ms':>25s}")
    panels = {"good": axes[0][0], "svc": axes[0][1], "p99": axes[1][0], "stream": axes[1][1]}
    colours = plt.get_cmap("tab20").colors
    for n, (label, mask) in enumerate(sw.groups([VARIANT])):
        # colocated solid, prefill pool (P/D) dashed, streamed prompts dotted
        style = {"color": colours[n % len(colours)], "marker": "o", "markersize": 3,
                 "linestyle": "--" if label.startswith("pd_") else
                 ":" if label.startswith("stream") else "-"}
        xs = np.unique(ix[RATE][mask])
        good, svc, p99c0, best = [], [], [], None
        first, last = [], []
        for x in xs:
            rows = ix[mask & (ix[RATE] == x)]
            r = rows[0]
            tab = classes(a.results, text(r["id"]))
            g = float(r["slo_attain"] * r["throughput_req_s"])
            s = float(np.sum(tab["good_tokens"]) / r["duration_s"]) if r["duration_s"] > 0 else 0
            good.append(g)
            svc.append(s)
            p99c0.append(class_value(tab, 0, "ttft_s_p99") * 1e3)
            first.append(float(r["stream_ttft_first_s_p99"]) * 1e3)
            last.append(float(r["stream_ttft_last_s_p99"]) * 1e3)
            if r["slo_attain"] >= a.attain:
                best = (x, r, tab)
        i = int(np.argmax(good))
        if best:
            x, r, tab = best
            tail = (f"{x:9g} {float(r['ttft_s_p99']) * 1e3:11.0f} "
                    f"{class_value(tab, 0, 'ttft_s_p99') * 1e3:8.0f} "
                    f"{class_value(tab, 1, 'ttft_s_p99') * 1e3:8.0f}")
        else:
            tail = f"{'-':>9s} {'-':>11s} {'-':>8s} {'-':>8s}"
        streamed = int(np.max(ix["stream_requests"][mask])) > 0
        st = (f"{first[i]:12.0f}/{last[i]:<12.0f}" if streamed else f"{'':25s}")
        print(f"{label:20s} {good[i]:13.3f} {xs[i]:5g} {svc[i]:9.0f} {tail} {st}")
        panels["good"].plot(xs, good, label=label, **style)
        panels["svc"].plot(xs, svc, label=label, **style)
        panels["p99"].plot(xs, p99c0, label=label, **style)
        if streamed:
            panels["stream"].plot(xs, first, color=style["color"], marker="o", markersize=3,
                                  label=f"{label} (first chunk)")
            panels["stream"].plot(xs, last, color=style["color"], marker="x", linestyle="--",
                                  label=f"{label} (last chunk)")
    titles = {"good": "goodput (req/s meeting both SLOs)",
              "svc": "service goodput (output tok/s meeting both SLOs)",
              "p99": "interactive p99 TTFT (ms)",
              "stream": "streamed prompts: p99 TTFT (ms)"}
    for k, ax in panels.items():
        ax.set_xlabel("load (x rate_scale)")
        ax.set_ylabel(titles[k])
    panels["p99"].set_yscale("log")
    panels["stream"].set_yscale("log")
    panels["good"].legend(fontsize="x-small")
    panels["stream"].legend(fontsize="xx-small")
    save(fig, a.out, "slo_scheduling.png")


if __name__ == "__main__":
    main()
