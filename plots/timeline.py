#!/usr/bin/python3
"""Timeline of one point (or of a single run's file): waiting and running
requests, KV-cache use and power of each instance over simulated time,
from its /timeseries."""
import h5py
import numpy as np

from common import COMPLETE, arguments, plt, save, text


def options(ap):
    ap.add_argument("--point", help="point id (default: the busiest complete point)")


def find_group(f, point):
    if "timeseries" in f:   # a single run's file
        return f, "run"
    index = f["index"][()]
    done = index[index["status"] == COMPLETE]
    if len(done) == 0:
        raise SystemExit("no complete point")
    if point is None:
        point = text(done["id"][np.argmax(done["kv_peak_fraction"])])
    g = f[f"points/{point}"]
    if "timeseries" not in g:
        raise SystemExit(f"point {point} has no time series (metrics.timeseries_interval_ms = 0?)")
    return g, point


def main():
    a = arguments(__doc__, options)
    with h5py.File(a.results, "r") as f:
        g, name = find_group(f, a.point)
        ts = g["timeseries/instances"][()]
    fig, axes = plt.subplots(4, 1, figsize=(10, 9), sharex=True)
    for inst in np.unique(ts["instance"]):
        s = ts[ts["instance"] == inst]
        t = s["time_ns"] / 1e9
        axes[0].plot(t, s["waiting"], lw=1, label=f"instance {inst}")
        axes[1].plot(t, s["running"], lw=1)
        axes[2].plot(t, 100 * s["kv_used_fraction"], lw=1)
        axes[3].plot(t, s["power_w"], lw=1)
    for ax, label in zip(axes, ["waiting", "running", "KV used (%)", "power (W)"]):
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    axes[-1].set_xlabel("simulated time (s)")
    if len(np.unique(ts["instance"])) <= 8:
        axes[0].legend(fontsize=8)
    fig.suptitle(f"timeline of point {name}")
    save(fig, a.out, "timeline.png")


if __name__ == "__main__":
    main()
