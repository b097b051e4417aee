#!/usr/bin/python3
"""For experiments/prefix_cache.json: prefix-cache hit ratio (HBM and lower
tiers together, share of prompt tokens) and p50/p99 TTFT against the HBM
given to the KV cache, one line per eviction policy, solid without and
dashed with the host DRAM tier, one row per workload, for one routing
policy (--routing, default prefix_llmd). With --table, also prints every
point's figures (the numbers behind the plot)."""
import json

import numpy as np

from common import Sweep, arguments, plt, save, text


def workload_name(v):
    try:
        w = json.loads(text(v))
    except ValueError:
        return text(v)[:20]
    if w.get("prefix"):
        return f"synthetic {w['prefix'].get('kind', '')}"
    return w.get("source", "?")


def main():
    def extra(ap):
        ap.add_argument("--routing", default="prefix_llmd")
        ap.add_argument("--table", action="store_true", help="print every point's figures")
    a = arguments(__doc__, extra)
    sw = Sweep(a.results)
    ix = sw.index
    need = ["workload", "policies.routing.name", "instance.kv_tiers",
            "instance.gpu_memory_utilization", "policies.eviction.name"]
    for p in need:
        if p not in sw.params:
            raise SystemExit(f"{a.results}: not a prefix_cache sweep (no swept {p})")
    wl = np.array([workload_name(v) for v in ix["workload"]])
    route = sw.column("policies.routing.name")
    tier = np.array(["dram" if "dram" in text(v) else "none" for v in ix["instance.kv_tiers"]])
    util = ix["instance.gpu_memory_utilization"]
    evict = sw.column("policies.eviction.name")
    looked = np.maximum(ix["kv_lookup_tokens"].astype(float), 1)
    hit = (ix["kv_hit_tokens"].astype(float) + ix["kv_tier_hit_tokens"]) / looked
    workloads = list(dict.fromkeys(wl.tolist()))
    policies = list(dict.fromkeys(evict.tolist()))
    fig, axes = plt.subplots(len(workloads), 3, figsize=(15, 4.2 * len(workloads)), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for r, w in enumerate(workloads):
        for k, pol in enumerate(policies):
            for t, style in (("none", "-"), ("dram", "--")):
                m = (wl == w) & (route == a.routing) & (evict == pol) & (tier == t)
                if not m.any():
                    continue
                order = np.argsort(util[m])
                xs = util[m][order]
                lab = f"{pol}" + (" + DRAM" if t == "dram" else "")
                c = colours[k % len(colours)]
                axes[r][0].plot(xs, 100 * hit[m][order], style, marker="o", color=c, label=lab)
                axes[r][1].plot(xs, 1e3 * ix["ttft_s_p50"][m][order], style, marker="o", color=c)
                axes[r][2].plot(xs, 1e3 * ix["ttft_s_p99"][m][order], style, marker="o", color=c)
        axes[r][0].set_ylabel(f"{w}\nprompt tokens hit (%)")
        axes[r][1].set_ylabel("TTFT p50 (ms)")
        axes[r][2].set_ylabel("TTFT p99 (ms)")
        for ax in axes[r]:
            ax.set_xlabel("gpu_memory_utilization (HBM for weights + KV)")
            ax.grid(True, alpha=0.3)
        axes[r][1].set_yscale("log")
        axes[r][2].set_yscale("log")
    axes[0][0].legend(fontsize=8, ncol=2)
    fig.suptitle(f"prefix caching: eviction policy x cache size, routing {a.routing}")
    fig.subplots_adjust(wspace=0.35)
    save(fig, a.out, "prefix_cache.png")
    if a.table:
        print("workload\trouting\ttier\tutil\teviction\thit%\tttft_p50_ms\tttft_p99_ms\t"
              "tok_s\tevictions")
        rows = sorted(range(len(ix)), key=lambda i: (wl[i], route[i], tier[i], util[i], evict[i]))
        for i in rows:
            print(f"{wl[i]}\t{route[i]}\t{tier[i]}\t{util[i]:g}\t{evict[i]}\t{100 * hit[i]:.2f}\t"
                  f"{1e3 * ix['ttft_s_p50'][i]:.1f}\t{1e3 * ix['ttft_s_p99'][i]:.1f}\t"
                  f"{ix['throughput_tok_s'][i]:.1f}\t{int(ix['kv_evictions'][i])}")


if __name__ == "__main__":
    main()
