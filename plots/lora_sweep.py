#!/usr/bin/python3
"""Multi-LoRA sweep (experiments/lora_sweep.json): output throughput and
median TTFT against the number of adapters, one column per routing policy,
one line per GPU adapter slot count (max_loras), solid for Zipf popularity,
dashed for uniform. Also prints the table. Writes lora_sweep.png."""
import json

import numpy as np

from common import Sweep, arguments, plt, save

LORA = "instance.lora"
SLOTS = "instance.lora.max_loras"
ROUTE = "policies.routing.name"


def main():
    a = arguments(__doc__)
    sw = Sweep(a.results)
    for col in (LORA, SLOTS):
        if col not in sw.params:
            raise SystemExit(f"{a.results}: not a LoRA sweep (no swept {col}); "
                             "run experiments/lora_sweep.json")
    ix = sw.index
    cfg = [json.loads(v) for v in sw.column(LORA)]
    n = np.array([c["adapters"] for c in cfg])
    skew = np.array([c.get("popularity_zipf", 1.0) for c in cfg])
    slots = sw.column(SLOTS)
    route = sw.column(ROUTE) if ROUTE in sw.params else np.array(["-"] * len(ix))
    routes = list(dict.fromkeys(route.tolist()))
    fig, axes = plt.subplots(2, len(routes), figsize=(6 * len(routes), 8), squeeze=False,
                             sharey="row")
    print(f"{'routing':>14} {'skew':>5} {'slots':>5} {'adapters':>8} {'tok/s':>8} "
          f"{'TTFT p50 ms':>12} {'adapters/batch':>14} {'loads':>7} {'held back':>10}")
    for ri, rt in enumerate(routes):
        for si, s in enumerate(sorted(set(slots))):
            for z in sorted(set(skew), reverse=True):
                rows = np.where((slots == s) & (skew == z) & (route == rt))[0]
                rows = rows[np.argsort(n[rows])]
                style = "-" if z > 0 else "--"
                lab = f"max_loras {s}, {'Zipf ' + str(z) if z > 0 else 'uniform'}"
                colour = plt.cm.viridis(si / max(1, len(set(slots)) - 1))
                axes[0][ri].plot(n[rows], ix["throughput_tok_s"][rows], style, marker="o",
                                 color=colour, label=lab)
                axes[1][ri].plot(n[rows], ix["ttft_s_p50"][rows] * 1e3, style, marker="o",
                                 color=colour)
                for i in rows:
                    print(f"{rt:>14} {z:5.1f} {s:5d} {n[i]:8d} {ix['throughput_tok_s'][i]:8.1f} "
                          f"{ix['ttft_s_p50'][i] * 1e3:12.1f} "
                          f"{ix['lora_adapters_per_batch'][i]:14.2f} {ix['lora_loads'][i]:7d} "
                          f"{ix['lora_skipped'][i]:10d}")
        axes[0][ri].set_title(f"routing: {rt}")
        for ax in (axes[0][ri], axes[1][ri]):
            ax.set_xscale("log", base=2)
            ax.set_xlabel("adapters")
            ax.grid(alpha=0.3)
        axes[1][ri].set_yscale("log")
    axes[0][0].set_ylabel("output tokens/s")
    axes[1][0].set_ylabel("TTFT p50 (ms)")
    axes[0][-1].legend(fontsize=7)
    save(fig, a.out, "lora_sweep.png")


if __name__ == "__main__":
    main()
