"""Reading servesim results files: h5py (and numpy, which it needs) only.

    from servesim_results import load
    r = load("results/sweep.h5")          # a sweep's file or a single run's
    r.index                               # numpy structured array: one row per point
    r.complete()                          # the complete points only
    req = r.requests(r.index["id"][0])    # one point's /requests (+ in_window)
    r.label(row, ["policies.batch.name", "policies.batch.params"])   # "chunked_prefill 512"
    for label, rows in r.groups(["policies.batch.name", "policies.batch.params"]): ...
    mean, half = mean_ci(values)          # mean and 95% confidence half-width over seeds
    r.to_pandas(r.index)                  # a DataFrame, when pandas is installed

A single run's file (servesim run) reads as a sweep of one point whose id is
"" (its data at the file's root), so the same code plots both. Layouts:
tool/OUTPUT.md (a run) and experiments/README.md (a sweep)."""
import json
import math

import h5py
import numpy as np

PENDING, COMPLETE, FAILED, INFEASIBLE = 0, 1, 2, 3

# Two-sided 95% Student t critical values by degrees of freedom (1..30); the
# normal value beyond. Kept here so that the reader needs no scipy.
_T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042]

# Readable names and units of the columns and paths the plots use.
UNITS = {
    "workload.arrival.rate_per_s": "request rate (req/s)",
    "workload.rate_scale": "trace rate scale (x)",
    "workload.arrival.clients": "clients",
    "cluster.instances": "instances",
    "cluster.tp": "tensor parallelism",
    "policies.batch.name": "batch policy",
    "policies.order.name": "queue order",
    "policies.routing.name": "routing",
    "throughput_req_s": "throughput (req/s)",
    "throughput_tok_s": "throughput (output tokens/s)",
    "slo_attain": "SLO attainment (%)",
    "energy_per_out_token_j": "energy per output token (J)",
}


def text(v):
    """A fixed-length string value as str."""
    return v.decode() if isinstance(v, bytes) else str(v)


def axis_label(path):
    """A readable axis label for a config path or column."""
    if path in UNITS:
        return UNITS[path]
    for metric, name in (("ttft", "TTFT"), ("tpot", "TPOT"), ("tbt", "TBT"), ("e2e", "E2E"),
                         ("queue", "queueing")):
        if path.startswith(metric + "_s_"):
            return f"{name} {path.split('_')[-1]} (ms)"
    return path.split(".")[-1].replace("_", " ")


def mean_ci(values, level=0.95):
    """(mean, half-width of the 95% confidence interval) of the values: a
    Student t interval over independent seeds; half-width 0 for one value."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return math.nan, math.nan
    if len(v) == 1:
        return float(v[0]), 0.0
    assert level == 0.95, "only 95% intervals are tabulated"
    t = _T95[len(v) - 2] if len(v) - 1 <= len(_T95) else 1.960
    return float(v.mean()), float(t * v.std(ddof=1) / math.sqrt(len(v)))


def value_label(path, value):
    """One swept value as a legend reads it: policy names without the
    vllm_ prefix, parameter objects as "key=value" pairs, numbers plain."""
    value = text(value)
    if value.startswith("{"):
        try:
            params = json.loads(value)
        except ValueError:
            return value
        return ", ".join(f"{k}={params[k]}" for k in sorted(params))
    if path.endswith(".name"):
        return value.replace("vllm_", "").replace("_", " ")
    return value


class Results:
    """A results file: its index (one row per point) and each point's data."""

    def __init__(self, path):
        self.path = path
        with h5py.File(path, "r") as f:
            if "index" in f:
                self.kind = "sweep"
                self.index = f["index"][()]
                self.params = [text(p) for p in f["index"].attrs.get("params", [])]
            elif "summary" in f:
                self.kind = "run"
                self.index = self._run_index(f)
                self.params = []
            else:
                raise SystemExit(f"{path}: neither a sweep's nor a run's results file "
                                 "(no /index, no /summary)")

    @staticmethod
    def _run_index(f):
        s = f["summary"][()]
        names = ["id", "status"] + list(s.dtype.names)
        dt = [("id", "S16"), ("status", "i1")] + [(n, s.dtype[n]) for n in s.dtype.names]
        row = np.zeros(1, dtype=dt)
        row["status"] = COMPLETE
        for n in s.dtype.names:
            row[n] = s[n][0]
        return row[names]

    def complete(self, rows=None):
        """The complete points (of `rows`, a boolean mask or index array)."""
        ix = self.index if rows is None else self.index[rows]
        return ix[ix["status"] == COMPLETE]

    def _group(self, f, point_id):
        pid = text(point_id)
        return f if self.kind == "run" or not pid else f[f"points/{pid}"]

    def requests(self, point_id=""):
        """A point's /requests, with a boolean in_window column: whether the
        request is in the summary's statistics (metrics.warmup_s,
        metrics.cooldown_s; every request when they are 0)."""
        with h5py.File(self.path, "r") as f:
            g = self._group(f, point_id)
            req = g["requests"][()]
            s = g["summary"][0]
        names = s.dtype.names
        lo = s["window_start_s"] * 1e9 if "window_start_s" in names else -math.inf
        hi = s["window_end_s"] * 1e9 if "window_end_s" in names else math.inf
        win = (req["arrival_ns"] >= lo) & (req["arrival_ns"] <= hi)
        out = np.zeros(len(req), dtype=req.dtype.descr + [("in_window", "?")])
        for n in req.dtype.names:
            out[n] = req[n]
        out["in_window"] = win
        return out

    def timeseries(self, point_id="", table="instances"):
        with h5py.File(self.path, "r") as f:
            g = self._group(f, point_id)
            if "timeseries" not in g:
                raise SystemExit(f"{self.path}: point {text(point_id) or '(the run)'} has no "
                                 "time series (metrics.timeseries_interval_ms = 0?)")
            return g[f"timeseries/{table}"][()]

    def config(self, point_id=""):
        """A point's effective config, as a dict."""
        with h5py.File(self.path, "r") as f:
            return json.loads(text(self._group(f, point_id).attrs["config"]))

    def label(self, row, paths):
        """A readable name of a point's variant along `paths`: "chunked
        prefill 512", "round robin, 2 instances"."""
        parts = [value_label(p, row[p]) for p in paths]
        return " ".join(p for p in parts if p) or "all"

    def groups(self, paths, rows=None):
        """[(label, boolean mask over the index)] for each distinct
        combination of the values at `paths` (a list, or one path), in
        index order; [("all", everything)] for no paths."""
        if isinstance(paths, str):
            paths = [p for p in paths.split(",") if p]
        base = np.ones(len(self.index), bool) if rows is None else rows
        if not paths:
            return [("all", base)]
        keys = [tuple(text(self.index[p][i]) for p in paths) for i in range(len(self.index))]
        out = []
        for key in dict.fromkeys(k for k, b in zip(keys, base) if b):
            mask = base & np.array([k == key for k in keys])
            out.append((self.label(self.index[np.argmax(mask)], paths), mask))
        return out

    def to_pandas(self, array):
        """array as a pandas DataFrame (byte strings decoded); pandas must be installed."""
        import pandas as pd
        df = pd.DataFrame({n: array[n] if array.dtype[n].kind != "S"
                           else [text(v) for v in array[n]] for n in array.dtype.names
                           if array.dtype[n].shape == ()})
        return df


def load(path):
    return Results(path)
