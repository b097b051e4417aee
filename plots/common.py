"""Shared helpers for the scripts in plots/, on the reader servesim_results.py.

Every figure: readable labels (a variant's name from its swept values, not
raw JSON or config paths), lines grouped by one or several swept paths
(--by a,b), the mean over seeds with its 95% confidence band, times in ms,
SLO targets drawn as labelled lines, --style one|two for a one- or
two-column paper figure, and a clear error (exit 2) when a selection is
empty. Beside each PNG, save() writes NAME.json: every series drawn (label,
x, y) and the axis labels, which the plot tests check (tests/plots_check.py)."""
import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from servesim_results import (COMPLETE, Results, axis_label, mean_ci,  # noqa: E402,F401
                              text)

# Figure widths of a one- and a two-column paper figure, inches.
STYLES = {"one": (3.5, 7), "two": (7.2, 9), "screen": (None, 10)}


def fail(msg):
    """A clear error, exit status 2 (bad selection or input)."""
    print(f"plots: error: {msg}", file=sys.stderr)
    sys.exit(2)


class Sweep(Results):
    """A results file with its complete points as `index`."""

    def __init__(self, path):
        super().__init__(path)
        self.all = self.index
        self.index = self.index[self.index["status"] == COMPLETE]
        if len(self.index) == 0:
            fail(f"{path}: no complete point")

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
        fail(f"{self.path}: no numeric swept path to plot against")

    def group_params(self, x=None, by=None):
        """The paths whose values make the lines: --by (comma-separated), or
        every swept path other than x."""
        if by:
            paths = [p for p in by.split(",") if p]
            for p in paths:
                if p not in self.params:
                    fail(f"--by {p}: not a swept path of {self.path} (swept: "
                         f"{', '.join(self.params) or 'none'})")
            return paths
        return [p for p in self.params if p != x]

    def at(self, path, value):
        """The mask of points whose `path` is `value`; an error listing the
        values there are when none is."""
        col = self.index[path]
        mask = np.isclose(col, value) if col.dtype.kind in "if" else col == value
        if not mask.any():
            have = ", ".join(f"{v:g}" if col.dtype.kind in "if" else text(v)
                             for v in np.unique(col))
            fail(f"{path} = {value:g}: no complete point there; the sweep has {have}")
        return mask


def by_x(sw, mask, x_p, col, scale=1.0):
    """Per value of x: the mean over seeds of column `col` and its 95% CI
    half-width: (xs, means, halves)."""
    xs = np.unique(sw.index[x_p][mask])
    stats = [mean_ci(sw.index[col][mask & (sw.index[x_p] == x)] * scale) for x in xs]
    return xs, np.array([s[0] for s in stats]), np.array([s[1] for s in stats])


def band(ax, sw, mask, x_p, col, label, scale=1.0, **kw):
    """A line through the means over seeds, the 95% confidence band shaded."""
    xs, mean, half = by_x(sw, mask, x_p, col, scale)
    line, = ax.plot(xs, mean, marker="o", ms=3, label=label, **kw)
    if np.any(half > 0):
        ax.fill_between(xs, mean - half, mean + half, alpha=0.2, color=line.get_color(), lw=0)
    return line


def slo_line(ax, value_ms, name):
    """A labelled SLO target."""
    ax.axhline(value_ms, color="grey", ls="--", lw=1, label=f"{name} SLO {value_ms:g} ms")


def arguments(description, extra=None):
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("results", help="a results file (servesim sweep, or servesim run)")
    ap.add_argument("--out", default="results/plots", help="folder for the PNG")
    ap.add_argument("--style", choices=sorted(STYLES), default="screen",
                    help="one: a one-column paper figure (3.5 in), two: two columns (7.2 in)")
    if extra:
        extra(ap)
    a = ap.parse_args()
    if a.style != "screen":
        plt.rcParams.update({"font.size": 7 if a.style == "one" else 8, "lines.linewidth": 1,
                             "legend.fontsize": 6 if a.style == "one" else 7})
    return a


def figure(style, ncols=1, nrows=1, aspect=0.75, **kw):
    """A figure of the style's width holding nrows x ncols panels."""
    width = STYLES[style][0] or (4.8 * ncols if ncols > 1 else 9 if nrows > 1 else 6)
    height = width * aspect * nrows / ncols
    return plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False,
                        constrained_layout=True, **kw)


def series_of(fig):
    """Everything drawn: per axes, its labels and each line's and scatter's
    points (the SLO lines included, as horizontal lines)."""
    out = []
    for ax in fig.axes:
        entry = {"title": ax.get_title(), "xlabel": ax.get_xlabel(), "ylabel": ax.get_ylabel(),
                 "series": []}
        for line in ax.get_lines():
            if line.get_label().startswith("_"):
                continue   # matplotlib's helpers (error-bar caps)
            x, y = line.get_xdata(), line.get_ydata()
            entry["series"].append({"label": line.get_label(), "kind": "line",
                                    "x": [float(v) for v in np.asarray(x, float)],
                                    "y": [float(v) for v in np.asarray(y, float)]})
        for coll in ax.collections:
            off = coll.get_offsets()
            if len(off) and coll.get_label() and not coll.get_label().startswith("_"):
                entry["series"].append({"label": coll.get_label(), "kind": "scatter",
                                        "x": [float(v) for v in off[:, 0]],
                                        "y": [float(v) for v in off[:, 1]]})
        out.append(entry)
    return out


def save(fig, out_dir, name, title=None):
    os.makedirs(out_dir, exist_ok=True)
    if title:
        fig.suptitle(title)
    path = os.path.join(out_dir, name)
    fig.savefig(path, dpi=150)
    with open(os.path.splitext(path)[0] + ".json", "w") as f:
        json.dump({"figure": name, "suptitle": title or "", "axes": series_of(fig)}, f, indent=1)
    plt.close(fig)
    print(path)
    return path
