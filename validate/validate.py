#!/usr/bin/env python3
"""servesim's validation suite: servesim against published end-to-end measurements.

Every reference in references.json is one published setup (model, GPU, parallelism, engine,
workload) with one or more measured values (TTFT, TPOT, ITL, end-to-end latency, throughput,
energy per token), each cited down to the table cell. For each runnable reference this script
builds a run config that reproduces the setup as closely as servesim's keys allow, runs
`./servesim run`, reads the results file with h5py and prints the signed relative error
(servesim - reference) / reference of every value, then the median |error| and the worst case
per engine generation.

These results are for validation only. No constant of servesim may be fitted to them: constants
come from operator-level and engine-overhead measurements (see validate/README.md).

Design:
- `engine_profile_of(ref)` maps a reference's engine (generation and version as stated) to an
  engine profile of models/engines/ (`VERSION_PROFILES`, else the generation's profile), and
  `engine_overrides(ref)` is the one place that turns it into config overrides: the profile,
  the stated engine options that change its CPU model (`num_scheduler_steps`), and no request
  path for offline benchmarks (`interface` "offline": no API server, tokenizer or streaming).
- The setup's own stated settings (TP, gpu_memory_utilization, max_num_seqs, max_model_len,
  a static batch) are applied by `build_run`; engine defaults (scheduler rules, CPU overhead)
  are not: they belong to the engine profile.
- Runs are deterministic (seed 1 everywhere), nothing is cached between invocations, and
  results print in the file's order whatever the pool size.

Usage: validate/validate.py [--refs FILE] [--servesim PATH] [-j N] [--only ID,ID] [--markdown]
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_REFS = os.path.join(ROOT, "validate", "references.json")
DEFAULT_SERVESIM = os.path.join(ROOT, "servesim")
MODELS_DIR = os.environ.get("SERVESIM_MODELS_DIR", os.path.join(ROOT, "models"))
SEED = 1

# A setup's stated `dtype` -> the run config's `precision` (weights, activations, KV cache).
# "fp8" is FP8 weights, activations and KV cache (TensorRT-LLM's and NIM's FP8 engines quantise
# all three); a setup may give `precision` itself where it differs. bf16 is the models' default.
PRECISION_OF = {
    "bf16": None,
    "fp16": {"weights": "fp16", "activations": "fp16", "kv_cache": "fp16"},
    "fp8": {"weights": "fp8", "activations": "fp8", "kv_cache": "fp8"},
}
RUNNABLE_DTYPES = tuple(PRECISION_OF)
STATS = ("mean", "p50", "p90", "p99")
# metric -> the units it may be stated in
METRIC_UNITS = {
    "ttft": ("ms", "s"),
    "tpot": ("ms", "s"),
    "itl": ("ms", "s"),
    "e2e": ("ms", "s"),
    "batch_latency": ("ms", "s"),
    "output_throughput": ("tok/s", "tok/s/GPU"),
    "request_throughput": ("req/s",),
    "energy_per_output_token": ("J/token",),
}
# latency metric -> summary column prefix
LATENCY_COLUMNS = {"ttft": "ttft", "tpot": "tpot", "itl": "tbt", "e2e": "e2e"}
WORKLOAD_KINDS = ("batch", "closed_loop", "poisson", "burst")
# engine settings a source may state, each an instance.* key of the run config
ENGINE_SETTINGS = ("gpu_memory_utilization", "max_seqs", "max_context_tokens", "max_batched_tokens",
                   "prefix_caching")
# engine options a source may state that change the engine profile, not an instance key
PROFILE_SETTINGS = ("num_scheduler_steps",)
# how the benchmark reached the engine: through its API server, or in-process (offline)
INTERFACES = ("server", "offline")
ENGINES_DIR = os.path.join(MODELS_DIR, "engines")


class RefError(Exception):
    """A malformed references file."""


# Each generation's engine profile (models/engines/<name>.json).
# "nim": NVIDIA NIM does not state its backend; its optimised profiles for Llama models on
# H100 are TensorRT-LLM engines, so it runs under trtllm (an assumption, said in the reference).
ENGINE_PROFILE_OF = {"vllm-v1": "vllm-v1", "vllm-v0": "vllm-v0", "sglang": "sglang",
                     "trtllm": "trtllm", "nim": "trtllm"}

# Engine versions with a profile of their own: (generation, start of the stated version,
# profile). The first match wins; a reference matching none runs under its generation's.
# The profiles' constants come from engine-overhead measurements and source defaults only
# (each file's "source"), never from these references.
VERSION_PROFILES = (
    ("vllm-v0", "0.5.4", "vllm-v0.5"),           # API server in its own process from 0.5.4
    ("vllm-v0", "0.5.5", "vllm-v0.5"),
    ("vllm-v0", "0.6", "vllm-v0.6"),             # async output processing from 0.6.0
    ("vllm-v0", "main, late October 2024 (v0.6.3", "vllm-v0.6"),
    ("trtllm", "v0.5", "trtllm-v0.6"),           # 2023 C++ GptSession engines
    ("trtllm", "v0.6", "trtllm-v0.6"),
)


def engine_profile_of(ref):
    """The engine profile (models/engines/<name>.json) a reference runs under."""
    eng = ref["engine"]
    for gen, version, profile in VERSION_PROFILES:
        if eng["generation"] == gen and eng["version"].startswith(version):
            return profile
    return ENGINE_PROFILE_OF[eng["generation"]]


def _profile_cpu(profile, engines_dir):
    with open(os.path.join(engines_dir, profile + ".json"), encoding="utf-8") as f:
        return json.load(f)["cpu_overhead"]


def engine_overrides(ref, engines_dir=ENGINES_DIR):
    """Config overrides (dotted path -> value) for a reference's engine: its engine profile
    (scheduler rules, CUDA graphs, CPU overhead, request path), adjusted for what the setup
    states about the engine:
    - num_scheduler_steps n (vLLM 0.6's multi-step scheduling): scheduling and input
      preparation run once per n steps, so the profile's blocking CPU time per iteration
      (base_us, per_seq_us) is divided by n (models/engines/vllm-v0.6.json, cpu_overhead);
    - interface "offline" (gptSessionBenchmark, vLLM's benchmark_latency/_throughput): the
      benchmark calls the engine in-process, so there is no request path."""
    profile = engine_profile_of(ref)
    out = {"engine.name": profile}
    setup = ref["setup"]
    steps = setup.get("engine_settings", {}).get("num_scheduler_steps", 1)
    if steps > 1:
        cpu = _profile_cpu(profile, engines_dir)
        out["engine.cpu_overhead.base_us"] = cpu["base_us"] / steps
        out["engine.cpu_overhead.per_seq_us"] = cpu["per_seq_us"] / steps
    if setup.get("interface", "server") == "offline":
        for key in ("frontend_us", "tokenize_us_per_token", "stream_us"):
            out["engine.request_path." + key] = 0
    return out


# ---- loading and checking ------------------------------------------------------------------

def load(path):
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    errors = check(doc)
    if errors:
        raise RefError(path + ":\n  " + "\n  ".join(errors))
    return doc


def _need(obj, key, kind, where, errors):
    if not isinstance(obj, dict) or key not in obj:
        errors.append(f"{where}: missing '{key}'")
        return None
    v = obj[key]
    if kind is not None and not isinstance(v, kind):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        errors.append(f"{where}.{key}: expected {' or '.join(k.__name__ for k in kinds)}")
        return None
    return v


def check(doc):
    """Returns a list of problems (empty when the file is well formed)."""
    errors = []
    sources = _need(doc, "sources", dict, "$", errors) or {}
    workloads = _need(doc, "workloads", dict, "$", errors) or {}
    refs = _need(doc, "references", list, "$", errors) or []
    for sid, s in sources.items():
        for key in ("title", "url", "date", "method"):
            _need(s, key, str, f"$.sources.{sid}", errors)
    for wid, w in workloads.items():
        where = f"$.workloads.{wid}"
        _need(w, "source", str, where, errors)
        ins = _need(w, "input_lens", list, where, errors)
        outs = _need(w, "output_lens", list, where, errors)
        if ins is not None and outs is not None and len(ins) != len(outs):
            errors.append(f"{where}: input_lens and output_lens differ in length")
        if w.get("source") not in sources:
            errors.append(f"{where}.source: unknown source {w.get('source')!r}")
    seen = set()
    for k, r in enumerate(refs):
        where = f"$.references[{k}]"
        rid = _need(r, "id", str, where, errors)
        if rid in seen:
            errors.append(f"{where}.id: duplicate {rid!r}")
        seen.add(rid)
        if _need(r, "source", str, where, errors) not in sources:
            errors.append(f"{where}.source: unknown source {r.get('source')!r}")
        _need(r, "where", str, where, errors)
        eng = _need(r, "engine", dict, where, errors) or {}
        for key in ("name", "version", "generation"):
            _need(eng, key, str, where + ".engine", errors)
        setup = _need(r, "setup", dict, where, errors) or {}
        for key in ("model", "gpu", "dtype"):
            _need(setup, key, str, where + ".setup", errors)
        for key in ("gpus", "tp"):
            _need(setup, key, int, where + ".setup", errors)
        wl = _need(setup, "workload", dict, where + ".setup", errors) or {}
        kind = wl.get("kind")
        if kind not in WORKLOAD_KINDS:
            errors.append(f"{where}.setup.workload.kind: expected one of "
                          f"{', '.join(WORKLOAD_KINDS)}")
        if "lengths" in wl and wl["lengths"] not in workloads:
            errors.append(f"{where}.setup.workload.lengths: unknown workload {wl['lengths']!r}")
        if "lengths" not in wl and not ("input_tokens" in wl and "output_tokens" in wl):
            errors.append(f"{where}.setup.workload: needs 'lengths', or 'input_tokens' and "
                          "'output_tokens'")
        for key in setup.get("engine_settings", {}):
            if key not in ENGINE_SETTINGS + PROFILE_SETTINGS:
                errors.append(f"{where}.setup.engine_settings.{key}: unknown; expected one of "
                              f"{', '.join(ENGINE_SETTINGS + PROFILE_SETTINGS)}")
        if setup.get("interface", "server") not in INTERFACES:
            errors.append(f"{where}.setup.interface: expected one of {', '.join(INTERFACES)}")
        if eng.get("generation") is not None and eng.get("version") is not None:
            try:
                profile = engine_profile_of(r)
            except KeyError:
                errors.append(f"{where}.engine.generation: no engine profile for "
                              f"{eng['generation']!r}")
            else:
                if not os.path.exists(os.path.join(ENGINES_DIR, profile + ".json")):
                    errors.append(f"{where}.engine: profile {profile!r} missing in models/engines")
        mets = _need(r, "metrics", list, where, errors) or []
        if not mets:
            errors.append(f"{where}.metrics: empty")
        for j, m in enumerate(mets):
            mw = f"{where}.metrics[{j}]"
            name = _need(m, "metric", str, mw, errors)
            if name is not None and name not in METRIC_UNITS:
                errors.append(f"{mw}.metric: unknown {name!r}; expected one of "
                              f"{', '.join(METRIC_UNITS)}")
            elif name is not None and m.get("unit") not in METRIC_UNITS[name]:
                errors.append(f"{mw}.unit: {m.get('unit')!r} is not a unit of {name}")
            if m.get("stat") not in STATS:
                errors.append(f"{mw}.stat: expected one of {', '.join(STATS)}")
            v = _need(m, "value", (int, float), mw, errors)
            if v is not None and not v > 0:
                errors.append(f"{mw}.value: expected > 0")
            _need(m, "read", str, mw, errors)
    return errors


# ---- from a reference to a run ---------------------------------------------------------------

def not_runnable_reason(ref, models_dir=MODELS_DIR):
    """Why servesim cannot run this reference yet, or None."""
    if ref.get("not_runnable"):
        return ref["not_runnable"]
    setup = ref["setup"]
    if setup["dtype"] not in RUNNABLE_DTYPES:
        return (f"{setup['dtype']} cannot be expressed (servesim prices "
                f"{'/'.join(RUNNABLE_DTYPES)} only)")
    if not os.path.exists(os.path.join(models_dir, "llm", setup["model"] + ".json")):
        return f"model missing: no models/llm/{setup['model']}.json"
    if not os.path.exists(os.path.join(models_dir, "gpu", setup["gpu"] + ".json")):
        return f"GPU missing: no models/gpu/{setup['gpu']}.json"
    return None


def _pairs(workload):
    """(input, output) pairs of a length workload, leaving out rows that produced nothing."""
    return [(i, o) for i, o in zip(workload["input_lens"], workload["output_lens"]) if o > 0]


def _trace(pairs, n):
    """Native CSV of n requests cycling through pairs, all at time 0 (an arrival process may
    replace the times)."""
    rows = ["arrival_s,input_tokens,output_tokens"]
    rows += [f"0,{pairs[k % len(pairs)][0]},{pairs[k % len(pairs)][1]}" for k in range(n)]
    return "\n".join(rows) + "\n"


def _set_path(cfg, dotted, value):
    node = cfg
    parts = dotted.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value


def build_run(ref, workloads):
    """Returns (config dict, text for standard input or None)."""
    setup = ref["setup"]
    wl = setup["workload"]
    kind = wl["kind"]
    cfg = {
        "description": f"validation reference {ref['id']}",
        "seed": SEED,
        "model": setup["model"],
        "gpu": setup["gpu"],
        "cluster": {"instances": 1, "tp": setup["tp"]},
        "instance": {},
        "metrics": {"timeseries_interval_ms": 0},
    }
    precision = setup.get("precision", PRECISION_OF[setup["dtype"]])
    if precision:
        cfg["precision"] = dict(precision)
    inst = cfg["instance"]
    settings = setup.get("engine_settings", {})
    for key in ENGINE_SETTINGS:
        if key in settings:
            inst[key] = settings[key]
    stdin = None
    if "lengths" in wl:
        pairs = _pairs(workloads[wl["lengths"]])
        n = wl.get("requests", len(pairs))
        stdin = _trace(pairs, n)
        cfg["workload"] = {"source": "native", "path": "-"}
        if kind == "poisson":
            cfg["workload"]["arrival"] = {"process": "poisson", "rate_per_s": wl["rate_per_s"]}
        elif kind in ("closed_loop", "batch"):
            clients = wl["clients"] if kind == "closed_loop" else wl["batch"]
            cfg["workload"]["arrival"] = {"process": "closed_loop", "clients": clients}
        # burst: every row arrives at 0, as written
    else:
        lengths = {"input_tokens": {"dist": "fixed", "value": wl["input_tokens"]},
                   "output_tokens": {"dist": "fixed", "value": wl["output_tokens"]}}
        if kind == "poisson":
            arrival = {"process": "poisson", "rate_per_s": wl["rate_per_s"]}
            n = wl["requests"]
        else:
            clients = {"batch": wl.get("batch"), "closed_loop": wl.get("clients"),
                       "burst": wl.get("requests")}[kind]
            arrival = {"process": "closed_loop", "clients": clients}
            n = wl["batch"] if kind == "batch" else wl["requests"]
        cfg["workload"] = dict(source="synthetic", requests=n, arrival=arrival, **lengths)
    if kind == "batch":
        # Every request of the batch runs at once: room for all of them.
        inst["max_seqs"] = max(inst.get("max_seqs", 256), wl["batch"])
        if wl.get("static"):
            # A static batch (TensorRT-LLM's gptSessionBenchmark) prefills the whole batch in
            # one pass; the engine is built for these lengths.
            length = wl["input_tokens"] + wl["output_tokens"]
            inst["max_context_tokens"] = length
            inst["max_batched_tokens"] = max(wl["batch"] * wl["input_tokens"], length,
                                             inst["max_seqs"])
    for path, value in engine_overrides(ref).items():
        _set_path(cfg, path, value)
    return cfg, stdin


# ---- running and reading -------------------------------------------------------------------

def read_summary(path):
    import h5py  # Debian's python3-h5py; imported here so that --help works without it
    with h5py.File(path, "r") as f:
        row = f["summary"][0]
        # Scalars as Python numbers; array columns (per-operator terms, per-position
        # rates, ...) are not compared and are left out.
        return {name: row[name].item() for name in row.dtype.names
                if getattr(row[name], "size", 1) == 1 and hasattr(row[name], "item")}


def run_one(servesim, ref, workloads):
    """Runs one reference; returns (summary dict, None) or (None, error text)."""
    cfg, stdin = build_run(ref, workloads)
    with tempfile.TemporaryDirectory(prefix="servesim-validate-") as tmp:
        cfg_path = os.path.join(tmp, "config.json")
        out_path = os.path.join(tmp, "run.h5")
        with open(cfg_path, "w", encoding="utf-8") as f:
            json.dump(cfg, f)
        proc = subprocess.run([servesim, "run", cfg_path, "--out", out_path, "--quiet"],
                              input=stdin, capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            lines = (proc.stderr or proc.stdout).strip().splitlines()
            return None, (lines[-1] if lines else f"exit status {proc.returncode}")
        return read_summary(out_path), None


def sim_value(metric, summary, ref):
    """servesim's value of one metric entry, in the entry's unit."""
    name, stat, unit = metric["metric"], metric["stat"], metric["unit"]
    to_unit = 1000.0 if unit == "ms" else 1.0
    if name in LATENCY_COLUMNS:
        return summary[f"{LATENCY_COLUMNS[name]}_s_{stat}"] * to_unit
    if name == "batch_latency":
        return summary["duration_s"] * to_unit
    if name == "output_throughput":
        v = summary["output_tokens"] / summary["duration_s"]
        return v / ref["setup"]["gpus"] if unit == "tok/s/GPU" else v
    if name == "request_throughput":
        return summary["completed"] / summary["duration_s"]
    if name == "energy_per_output_token":
        return summary["energy_per_out_token_j"]
    raise RefError(f"{ref['id']}: no servesim value for metric {name!r}")


def signed_error(sim, ref_value):
    """(servesim - reference) / reference."""
    return (sim - ref_value) / ref_value


def summarize(rows, key="generation"):
    """Per value of `key` (engine generation, or metric kind) and over 'all': count,
    median |error| and the worst row (largest |error|)."""
    groups = {}
    for r in rows:
        if r.get("error") is None:
            continue
        groups.setdefault(r[key], []).append(r)
        groups.setdefault("all", []).append(r)
    out = {}
    for gen, rs in groups.items():
        worst = max(rs, key=lambda r: (abs(r["error"]), r["id"]))
        out[gen] = {"n": len(rs), "median_abs": statistics.median(abs(r["error"]) for r in rs),
                    "worst": worst}
    return out


def describe_setup(ref):
    """The setup in a few words: model, GPUs, precision, load, lengths."""
    s = ref["setup"]
    wl = s["workload"]
    kind = wl["kind"]
    if kind == "batch":
        load = ("static batch " if wl.get("static") else "batch ") + str(wl["batch"])
    elif kind == "poisson":
        load = f"Poisson {wl['rate_per_s']:g}/s"
    elif kind == "closed_loop":
        load = f"{wl['clients']} clients"
    else:
        load = f"{wl['requests']} at once" if "requests" in wl else "all at once"
    lengths = "ShareGPT" if "lengths" in wl else f"{wl['input_tokens']}/{wl['output_tokens']}"
    gpus = f"{s['gpus']}x{s['gpu'].split('-')[0]}"
    return f"{s['model']}, {gpus}, {s['dtype']}, {load}, {lengths}"


def evaluate(doc, servesim, jobs, only=None):
    """Runs every runnable reference; returns (rows, not_runnable, failures)."""
    refs = [r for r in doc["references"] if only is None or r["id"] in only]
    runnable, skipped = [], []
    for r in refs:
        reason = not_runnable_reason(r)
        (skipped if reason else runnable).append((r, reason))
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(lambda rr: run_one(servesim, rr[0], doc["workloads"]), runnable))
    rows, failures = [], []
    for (ref, _), (summary, err) in zip(runnable, results):
        if err is not None:
            failures.append((ref, err))
            continue
        for m in ref["metrics"]:
            sim = sim_value(m, summary, ref)
            error = signed_error(sim, m["value"]) if math.isfinite(sim) else None
            rows.append({"id": ref["id"], "source": ref["source"],
                         "generation": ref["engine"]["generation"],
                         "profile": engine_profile_of(ref),
                         "setup": describe_setup(ref),
                         "metric": f"{m['metric']} {m['stat']} ({m['unit']})",
                         "kind": m["metric"],
                         "reference": m["value"], "servesim": sim, "error": error,
                         "caveat": ref.get("caveat")})
    return rows, skipped, failures


# ---- printing ------------------------------------------------------------------------------

def _num(v):
    if v is None or not math.isfinite(v):
        return "nan"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def _err(e):
    return "n/a" if e is None else f"{e * 100:+.1f}%"


def _print_summary(summary, title, markdown, out):
    order = sorted(g for g in summary if g != "all") + (["all"] if "all" in summary else [])
    head = [title, "values", "median |error|", "worst case"]
    lines = [[g, str(summary[g]["n"]), f"{summary[g]['median_abs'] * 100:.1f}%",
              f"{_err(summary[g]['worst']['error'])} ({summary[g]['worst']['id']}, "
              f"{summary[g]['worst']['metric']})"] for g in order]
    if markdown:
        head[2] = "median \\|error\\|"
        print("| " + " | ".join(head) + " |", file=out)
        print("|" + "|".join(" --- " for _ in head) + "|", file=out)
        for line in lines:
            print("| " + " | ".join(line) + " |", file=out)
    else:
        widths = [max(len(h), *(len(x[k]) for x in lines)) if lines else len(h)
                  for k, h in enumerate(head)]
        print("  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip(), file=out)
        for line in lines:
            print("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip(), file=out)


def print_report(rows, skipped, failures, markdown, out=sys.stdout):
    cols = ["reference", "source", "setup", "metric", "reference value", "servesim", "error"]
    table = [[r["id"] + (" *" if r.get("caveat") else ""), r["source"], r["setup"], r["metric"],
              _num(r["reference"]),
              _num(r["servesim"]), _err(r["error"])] for r in rows]
    if markdown:
        print("| " + " | ".join(cols) + " |", file=out)
        print("|" + "|".join(" --- " for _ in cols) + "|", file=out)
        for t in table:
            print("| " + " | ".join(t) + " |", file=out)
    else:
        widths = [max(len(c), *(len(t[k]) for t in table)) if table else len(c)
                  for k, c in enumerate(cols)]
        print("  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip(), file=out)
        for t in table:
            print("  ".join(v.ljust(w) for v, w in zip(t, widths)).rstrip(), file=out)
    caveats = {r["id"]: r["caveat"] for r in rows if r.get("caveat")}
    if caveats:
        print(file=out)
        print("* with a caveat:", file=out)
        for rid, text in caveats.items():
            print(f"{'- ' if markdown else '  '}{rid}: {text}", file=out)
    for key, title in (("generation", "engine generation"), ("profile", "engine profile"),
                       ("kind", "metric")):
        print(file=out)
        _print_summary(summarize(rows, key), title, markdown, out)
    if skipped:
        print(file=out)
        print(f"not runnable yet ({len(skipped)} references, "
              f"{sum(len(r['metrics']) for r, _ in skipped)} values):", file=out)
        for ref, reason in skipped:
            print(f"{'- ' if markdown else '  '}{ref['id']}: {reason}", file=out)
    if failures:
        print(file=out)
        print(f"FAILED ({len(failures)} references):", file=out)
        for ref, err in failures:
            print(f"  {ref['id']}: {err}", file=out)


def main(argv=None, out=sys.stdout):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--refs", default=DEFAULT_REFS, help="references file (default: %(default)s)")
    ap.add_argument("--servesim", default=DEFAULT_SERVESIM, help="servesim binary")
    ap.add_argument("-j", "--jobs", type=int, default=2, help="runs at once (default 2)")
    ap.add_argument("--only", help="comma-separated reference ids")
    ap.add_argument("--markdown", action="store_true", help="print Markdown tables")
    args = ap.parse_args(argv)
    try:
        doc = load(args.refs)
    except (OSError, ValueError, RefError) as e:
        print(f"validate: {e}", file=sys.stderr)
        return 2
    only = None
    if args.only:
        only = set(args.only.split(","))
        unknown = only - {r["id"] for r in doc["references"]}
        if unknown:
            print(f"validate: unknown reference ids: {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
    if not os.access(args.servesim, os.X_OK):
        print(f"validate: {args.servesim}: not an executable; run `make servesim` first",
              file=sys.stderr)
        return 2
    rows, skipped, failures = evaluate(doc, args.servesim, args.jobs, only)
    print_report(rows, skipped, failures, args.markdown, out)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
