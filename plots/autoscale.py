#!/usr/bin/python3
"""Autoscaling (experiments/autoscale.json, experiments/autoscale_coldstart.json):
GPU-hours against SLO attainment, one panel per workload, one marker per
policy (and cold-start source); and, for each point of one workload, the
instances by lifecycle state over time with the arrival rate. Prints a table
per point: SLO attainment, GPU-hours, cost, peak instances and, on a step
(a piecewise arrival rate that rises), the reaction latency: from the step to
the first new instance active. Writes autoscale_cost_slo.png and
autoscale_replicas.png."""
import json

import h5py
import numpy as np

from common import Sweep, arguments, plt, save, text

STATES = ["provisioning", "loading", "warming", "active", "draining", "stopped"]


def describe(cfg):
    """(workload, policy, source) of a point's effective config."""
    arrival = cfg["workload"].get("arrival", {})
    workload = arrival.get("process", cfg["workload"].get("source", "?"))
    pool = cfg["cluster"]["pools"][0]
    scale = cfg.get("policies", {}).get("scale")
    if not scale or pool["max_instances"] == pool["min_instances"]:
        policy = f"static{pool['max_instances']}"
    else:
        policy = scale["name"]
        if policy == "hpa":
            policy += "-" + scale.get("params", {}).get("metric", "concurrency")
    source = pool.get("lifecycle", {}).get("source", "storage")
    return workload, policy, source


def step_time(cfg):
    """The first rise of a piecewise rate, in seconds, or None."""
    arrival = cfg["workload"].get("arrival", {})
    segs = arrival.get("segments") if arrival.get("process") == "piecewise" else None
    if not segs:
        return None
    for (t0, r0), (t1, r1) in zip(segs, segs[1:]):
        if r1 > r0:
            return t1
    return None


def load_point(f, pid):
    p = f[f"points/{pid}"]
    cfg = json.loads(text(p.attrs["config"]))
    ts = p["timeseries/cluster"][()]
    req = p["requests"]["arrival_ns"]
    return cfg, p["summary"][0], ts, req


def main():
    a = arguments(__doc__, lambda ap: ap.add_argument(
        "--workload", default=None, help="the workload whose timelines to draw "
        "(default: the one with a step, else the first)"))
    sw = Sweep(a.results)
    rows = []
    with h5py.File(a.results, "r") as f:
        for pid in sw.column("id"):
            cfg, s, ts, arrivals = load_point(f, pid)
            wl, pol, src = describe(cfg)
            t = ts["time_ns"] / 1e9
            states = ts["state_instances"]
            live = states[:, :5].sum(axis=1)
            step = step_time(cfg)
            reaction = None
            if step is not None:
                before = states[t <= step, 3]
                base = before[-1] if len(before) else states[0, 3]
                up = np.nonzero((t > step) & (states[:, 3] > base))[0]
                reaction = t[up[0]] - step if len(up) else None
            rows.append(dict(id=pid, workload=wl, policy=pol, source=src, cfg=cfg,
                             slo=s["slo_attain"], gpu_h=s["gpu_held_s"] / 3600,
                             busy_h=s["gpu_busy_s"] / 3600, cost=s["cost_usd"],
                             ttft_p90=s["ttft_s_p90"], peak=int(live.max()),
                             reaction=reaction, t=t, states=states,
                             arrivals=np.sort(arrivals) / 1e9))

    print(f"{'workload':10} {'policy':16} {'source':8} {'SLO':>6} {'GPU-h':>7} {'busy':>7} "
          f"{'$':>7} {'TTFT p90 s':>10} {'peak':>4} {'reaction s':>10}")
    for r in rows:
        react = f"{r['reaction']:.0f}" if r["reaction"] is not None else "-"
        print(f"{r['workload']:10} {r['policy']:16} {r['source']:8} {r['slo']:6.3f} "
              f"{r['gpu_h']:7.3f} {r['busy_h']:7.3f} {r['cost']:7.2f} {r['ttft_p90']:10.2f} "
              f"{r['peak']:4d} {react:>10}")

    workloads = list(dict.fromkeys(r["workload"] for r in rows))
    sources = list(dict.fromkeys(r["source"] for r in rows))
    policies = list(dict.fromkeys(r["policy"] for r in rows))
    colours = {p: plt.cm.tab10(i) for i, p in enumerate(policies)}
    markers = {s: m for s, m in zip(sources, "osD^v")}
    fig, axes = plt.subplots(1, len(workloads), figsize=(5.5 * len(workloads), 4.5),
                             squeeze=False)
    for ax, wl in zip(axes[0], workloads):
        for r in rows:
            if r["workload"] != wl:
                continue
            label = r["policy"] + (f" ({r['source']})" if len(sources) > 1 else "")
            ax.scatter(r["gpu_h"], 100 * r["slo"], color=colours[r["policy"]],
                       marker=markers[r["source"]], s=60, label=label)
        ax.set_title(wl)
        ax.set_xlabel("GPU-hours held")
        ax.set_ylabel("SLO attainment (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    save(fig, a.out, "autoscale_cost_slo.png")

    wl = a.workload or next((r["workload"] for r in rows if step_time(r["cfg"]) is not None),
                            workloads[0])
    mine = [r for r in rows if r["workload"] == wl]
    fig, axes = plt.subplots(len(mine), 1, figsize=(9, 2.2 * len(mine)), sharex=True,
                             squeeze=False)
    for ax, r in zip(axes[:, 0], mine):
        s = r["states"]
        starting = s[:, 0] + s[:, 1] + s[:, 2]
        ax.stackplot(r["t"], starting, s[:, 3], s[:, 4],
                     labels=["starting", "active", "draining"],
                     colors=["#f2b134", "#3a7dc9", "#b0b0b0"], alpha=0.85)
        ax.set_ylabel("instances")
        title = f"{r['policy']}" + (f", {r['source']}" if len(sources) > 1 else "")
        ax.set_title(f"{title}: SLO {100 * r['slo']:.1f}%, {r['gpu_h']:.2f} GPU-h", fontsize=9)
        rate = ax.twinx()
        edges = np.arange(0, r["t"][-1] + 10, 10)
        counts, _ = np.histogram(r["arrivals"], bins=edges)
        rate.plot(edges[:-1], counts / 10, color="black", lw=0.8, label="arrivals/s")
        rate.set_ylabel("req/s")
    axes[0, 0].legend(loc="upper left", fontsize=7)
    axes[-1, 0].set_xlabel("time (s)")
    save(fig, a.out, "autoscale_replicas.png")


if __name__ == "__main__":
    main()
