"""Shared loading and plotting helpers for the scripts in plots/.

A sweep's results file (experiments/README.md, "Sweep results file") has
/index, one row per point with the swept values and every /summary column,
and /points/<id>/ with each point's requests, summary and time series. A
single run's file (servesim run) has the same layout as one point at its
root. Everything here reads with h5py and draws with matplotlib's Agg
backend, so the scripts run headless."""
import argparse
import os

import matplotlib

matplotlib.use("Agg")
import h5py  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

COMPLETE = 1   # /index status: 0 pending, 1 complete, 2 failed


def text(v):
    """A fixed-length string column's value as str."""
    return v.decode() if isinstance(v, bytes) else str(v)


class Sweep:
    """The index of a sweep's results file, complete points only."""

    def __init__(self, path):
        self.path = path
        with h5py.File(path, "r") as f:
            if "index" not in f:
                raise SystemExit(f"{path}: no /index: not a sweep results file "
                                 "(servesim sweep writes one)")
            index = f["index"][()]
            self.params = [text(p) for p in f["index"].attrs.get("params", [])]
        self.index = index[index["status"] == COMPLETE]
        if len(self.index) == 0:
            raise SystemExit(f"{path}: no complete point")

    def column(self, name):
        col = self.index[name]
        return np.array([text(v) for v in col]) if col.dtype.kind == "S" else col

    def rate_param(self):
        """The swept arrival rate, or the first numeric swept path."""
        numeric = [p for p in self.params if self.index[p].dtype.kind in "if"]
        for p in numeric:
            if "rate" in p:
                return p
        if numeric:
            return numeric[0]
        raise SystemExit(f"{self.path}: no numeric swept path to plot against")

    def group_param(self, x=None):
        """What the lines are: the first swept path other than x (a policy, usually)."""
        others = [p for p in self.params if p != x]
        strings = [p for p in others if self.index[p].dtype.kind == "S"]
        return (strings or others or [None])[0]

    def groups(self, by):
        """[(label, boolean mask)] for each value of column `by` (one group if None)."""
        if by is None:
            return [("all", np.ones(len(self.index), bool))]
        col = self.column(by)
        return [(str(v), col == v) for v in dict.fromkeys(col.tolist())]

    def requests(self, point_id):
        with h5py.File(self.path, "r") as f:
            return f[f"points/{text(point_id)}/requests"][()]


def short(param):
    """The last part of a config path, for axis labels and legends."""
    return param.split(".")[-1] if param else ""


def arguments(description, extra=None):
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("results", help="a sweep's results file (servesim sweep)")
    ap.add_argument("--out", default="results/plots", help="folder for the PNG")
    if extra:
        extra(ap)
    return ap.parse_args()


def save(fig, out_dir, name):
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, name)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    print(path)
    return path
