#!/usr/bin/python3
"""make test's plot checks, on content: every figure's series (the JSON
plots/common.py writes beside each PNG) are compared with values computed
here straight from the results files with h5py, the labels must be readable
(no raw JSON or config paths), times in ms, SLO lines labelled, an empty
selection an error. Usage: plots_check.py DIR DEMO.h5 BATCH.h5 RUN.h5 CAP.h5,
where DIR holds sweep/, batch/, run/ and cap/ as tests/plots_check.sh made them."""
import json
import math
import os
import subprocess
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "plots"))
import servesim_results  # noqa: E402

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print(f"plots: FAILED: {what}")


def figure(path):
    check(os.path.exists(path), f"{path} written")
    with open(path, "rb") as f:
        check(f.read(8) == b"\x89PNG\r\n\x1a\n", f"{path} is a PNG")
    with open(os.path.splitext(path)[0] + ".json") as f:
        return json.load(f)


def readable(label):
    return label and "{" not in label and "_" not in label.replace("token_budget", "")


def index(path):
    with h5py.File(path, "r") as f:
        ix = f["index"][()]
    return ix[ix["status"] == 1]


def means(ix, mask, x, col, scale):
    xs = np.unique(ix[x][mask])
    return xs, [float(np.mean(ix[col][mask & (ix[x] == v)]) * scale) for v in xs]


def close(a, b):
    return len(a) == len(b) and all(math.isclose(u, v, rel_tol=1e-9, abs_tol=1e-9)
                                    for u, v in zip(a, b))


def check_slo_vs_rate(d, demo):
    fig = figure(os.path.join(d, "sweep", "slo_vs_rate.png"))
    ix = index(demo)
    rate = "workload.arrival.rate_per_s"
    routing = np.array([v.decode() for v in ix["policies.routing.name"]])
    names = {"round_robin": "round robin", "least_outstanding_tokens": "least outstanding tokens"}
    axes = fig["axes"]
    check(len(axes) == 3, "slo_vs_rate has three panels")
    check(axes[1]["ylabel"] == "TTFT p99 (ms)" and axes[2]["ylabel"] == "TPOT p99 (ms)",
          f"slo_vs_rate latencies in ms: {axes[1]['ylabel']}, {axes[2]['ylabel']}")
    check(axes[0]["xlabel"] == "request rate (req/s)", f"x axis named: {axes[0]['xlabel']}")
    for ax, col, scale in ((axes[0], "slo_attain", 100), (axes[1], "ttft_s_p99", 1e3),
                           (axes[2], "tpot_s_p99", 1e3)):
        series = {s["label"]: s for s in ax["series"]}
        for raw, label in names.items():
            check(label in series, f"slo_vs_rate {col}: a line labelled {label!r}: "
                  f"{sorted(series)}")
            if label in series:
                xs, ys = means(ix, routing == raw, rate, col, scale)
                check(close(series[label]["x"], list(xs)) and close(series[label]["y"], ys),
                      f"slo_vs_rate {col} {label}: the mean over seeds per rate")
    slo = ix[0]["slo_ttft_s"] * 1e3
    labels = [s["label"] for s in axes[1]["series"]]
    check(f"TTFT SLO {slo:g} ms" in labels, f"TTFT SLO line labelled: {labels}")


def check_cdf(d, demo):
    fig = figure(os.path.join(d, "sweep", "latency_cdf.png"))
    ix = index(demo)
    rate = "workload.arrival.rate_per_s"
    middle = np.unique(ix[rate])[len(np.unique(ix[rate])) // 2]
    ax = fig["axes"][0]
    check(ax["xlabel"] == "TTFT (ms)", f"CDF in ms: {ax['xlabel']}")
    routing = np.array([v.decode() for v in ix["policies.routing.name"]])
    with h5py.File(demo, "r") as f:
        rows = ix[(routing == "round_robin") & (ix[rate] == middle)]
        ttft = np.concatenate([f[f"points/{i.decode()}/requests"]["ttft_ns"] for i in rows["id"]])
    s = {x["label"]: x for x in ax["series"]}.get("round robin")
    check(s is not None, "CDF line labelled 'round robin'")
    if s:
        check(len(s["x"]) == len(ttft), f"CDF has every request: {len(s['x'])} vs {len(ttft)}")
        check(math.isclose(max(s["x"]), ttft.max() / 1e6), "CDF's largest TTFT, in ms")
        check(s["y"][-1] == 1.0, "CDF ends at 1")
    rc = subprocess.run([sys.executable, "plots/latency_cdf.py", demo, "--rate", "7", "--out",
                         os.path.join(d, "empty")], capture_output=True, text=True)
    check(rc.returncode == 2 and "no complete point there" in rc.stderr,
          f"an unswept --rate is an error (exit {rc.returncode}: {rc.stderr.strip()})")
    check(not os.path.exists(os.path.join(d, "empty", "latency_cdf.png")),
          "no figure for an empty selection")


def check_pareto(d, demo):
    fig = figure(os.path.join(d, "sweep", "pareto_ttft_tbt.png"))
    ax = fig["axes"][0]
    points = [s for s in ax["series"] if s["label"] != "Pareto front" and len(s["x"]) == 1]
    check(len(points) == 2, f"pareto: one point per variant at one rate: {len(points)}")
    check(any(s["label"] == "Pareto front" for s in ax["series"]), "pareto: front drawn")
    check("request rate" in fig["suptitle"], f"pareto names its load: {fig['suptitle']}")


def check_timeline(d):
    fig = figure(os.path.join(d, "sweep", "timeline.png"))
    title = fig["suptitle"]
    check("routing" in title and "seed" in title, f"timeline titled by its variant: {title}")
    waiting = fig["axes"][0]["series"]
    check(waiting and all(float(v).is_integer() for s in waiting for v in s["y"]),
          "timeline: waiting requests are whole numbers")
    run = figure(os.path.join(d, "run", "timeline.png"))
    check("Llama-3-8B" in run["suptitle"], f"run timeline titled: {run['suptitle']}")


def check_batch(d, batch):
    fig = figure(os.path.join(d, "batch", "batch_policies_tradeoff.png"))
    ix = index(batch)
    ax = fig["axes"][0]
    labels = [s["label"] for s in ax["series"]]
    want = ["prefill first", "chunked prefill token_budget=256",
            "chunked prefill token_budget=512", "chunked prefill token_budget=2048",
            "layered prefill groups=2", "layered prefill groups=4", "layered prefill groups=8"]
    check(labels == want, f"batch policy variants each their own line: {labels}")
    check(all(readable(lb) for lb in labels), f"readable labels: {labels}")
    model = np.array([v.decode() for v in ix["model"]])
    names = np.array([v.decode() for v in ix["policies.batch.name"]])
    params = np.array([v.decode() for v in ix["policies.batch.params"]])
    first = model == model[0]
    mask = first & (names == "chunked_prefill") & (params == '{"token_budget":512}')
    xs, tbt = means(ix, mask, "workload.arrival.rate_per_s", "tbt_s_p99", 1e3)
    s = ax["series"][2]
    check(close(s["x"], tbt), "batch tradeoff: x is the mean p99 TBT over seeds per rate (ms)")
    check(len(s["x"]) == len(xs), "batch tradeoff: one point per rate, not per seed")
    figure(os.path.join(d, "batch", "batch_policies_energy.png"))


def check_reader(run):
    r = servesim_results.load(run)
    check(r.kind == "run" and len(r.index) == 1, "reader: a run's file is one point")
    req = r.requests()
    check(req["in_window"].all(), "reader: without a window every request is in it")
    m, h = servesim_results.mean_ci([1.0, 2.0, 3.0])
    check(m == 2.0 and math.isclose(h, 4.303 / math.sqrt(3)), "reader: 95% t interval")
    check(servesim_results.value_label("policies.batch.params", '{"token_budget":512}')
          == "token_budget=512", "reader: parameter objects as key=value")


def check_capacity(d, cap):
    fig = figure(os.path.join(d, "cap", "capacity.png"))
    with h5py.File(cap, "r") as f:
        p = f["probes"][()]
        capacity = float(f.attrs["capacity"])
    p = p[np.argsort(p["value"])]
    axes = fig["axes"]
    check(len(axes) == 3, f"capacity: attainment and two bounds: {len(axes)} panels")
    check(axes[1]["ylabel"] == "TTFT p90 (ms)", f"capacity in ms: {axes[1]['ylabel']}")
    for ax, col, scale in ((axes[0], "slo_attain", 100), (axes[1], "ttft_s_p90", 1e3)):
        s = {x["label"]: x for x in ax["series"]}
        ok = p["pass"] == 1
        check("pass" in s and close(s["pass"]["x"], list(p["value"][ok])) and
              close(s["pass"]["y"], list(p[col][ok] * scale)), f"capacity {col}: passing probes")
        check("fail" in s and close(s["fail"]["x"], list(p["value"][~ok])),
              f"capacity {col}: failing probes")
        check(f"capacity {capacity:.4g}" in s, f"capacity line labelled: {sorted(s)}")
    check("TTFT p90 SLO 300 ms" in [x["label"] for x in axes[1]["series"]], "TTFT bound labelled")


def main(d, demo, batch, run, cap):
    check_capacity(d, cap)
    check_slo_vs_rate(d, demo)
    check_cdf(d, demo)
    check_pareto(d, demo)
    check_timeline(d)
    check_batch(d, batch)
    check_reader(run)
    figure(os.path.join(d, "sweep", "energy_vs_throughput.png"))
    print(f"plots: content checks: {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:6]))
