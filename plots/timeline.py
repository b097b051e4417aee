#!/usr/bin/python3
"""Timeline of one point (--point ID; default the one with the highest KV
peak) or of a single run's file: waiting and running requests, KV-cache use
and power of each instance over simulated time, from its /timeseries."""
import numpy as np
from matplotlib.ticker import MaxNLocator

from common import Sweep, arguments, axis_label, figure, save, text


def options(ap):
    ap.add_argument("--point", help="point id (default: the busiest complete point)")


def main():
    a = arguments(__doc__, options)
    sw = Sweep(a.results)
    if sw.kind == "run":
        point, row = "", sw.index[0]
        cfg = sw.config()
        name = f"{cfg['model']} on {cfg['gpu']}, seed {cfg['seed']}"
    else:
        if a.point is None:
            row = sw.index[np.argmax(sw.index["kv_peak_fraction"])]
        else:
            rows = sw.index[sw.column("id") == a.point]
            if len(rows) == 0:
                from common import fail
                fail(f"--point {a.point}: no complete point with that id")
            row = rows[0]
        point = text(row["id"])
        name = ", ".join(f"{axis_label(p)} {sw.label(row, [p])}" for p in sw.params)
        name += f", seed {row['seed']}"
    ts = sw.timeseries(point)
    fig, axes = figure(a.style, nrows=4, aspect=0.22, sharex=True)
    axes = axes[:, 0]
    for inst in np.unique(ts["instance"]):
        s = ts[ts["instance"] == inst]
        t = s["time_ns"] / 1e9
        axes[0].plot(t, s["waiting"], lw=1, label=f"instance {inst}")
        axes[1].plot(t, s["running"], lw=1, label=f"instance {inst}")
        axes[2].plot(t, 100 * s["kv_used_fraction"], lw=1, label=f"instance {inst}")
        axes[3].plot(t, s["power_w"], lw=1, label=f"instance {inst}")
    for ax, label in zip(axes, ["waiting requests", "running requests", "KV used (%)",
                                "power (W)"]):
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    for ax in axes[:2]:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes[-1].set_xlabel("simulated time (s)")
    if len(np.unique(ts["instance"])) <= 8:
        axes[0].legend(fontsize=7)
    save(fig, a.out, "timeline.png", f"timeline: {name}")


if __name__ == "__main__":
    main()
