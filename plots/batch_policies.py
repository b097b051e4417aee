#!/usr/bin/python3
"""Batch formation policies across load (experiments/batch_policies.json):
the p99 TTFT versus p99 TBT trade-off, one line per policy through the
request rates, and energy per output token and weight bytes read per output
token versus request rate; one column per model. Writes
batch_policies_tradeoff.png and batch_policies_energy.png."""
import json

import numpy as np

from common import Sweep, arguments, plt, save

NAME = "policies.batch.name"
PARAMS = "policies.batch.params"
RATE = "workload.arrival.rate_per_s"


def policy_label(name, params):
    """"prefill first", "chunked 512", "layered G=4"."""
    p = json.loads(params) if params else {}
    if name == "chunked_prefill":
        return f"chunked {p.get('token_budget', 512)}"
    if name == "layered_prefill":
        return f"layered G={p.get('groups', 4)}"
    return name.replace("vllm_", "").replace("_", " ")


def series(sw):
    """{model: {label: row indices sorted by rate}}, policies in sweep order."""
    models, names, params = sw.column("model"), sw.column(NAME), sw.column(PARAMS)
    rates = sw.column(RATE)
    out = {}
    for i in np.argsort(rates, kind="stable"):
        out.setdefault(models[i], {}).setdefault(policy_label(names[i], params[i]), []).append(i)
    return out


def style(label):
    """Colour families per policy kind, so variants read as one family."""
    if label.startswith("chunked"):
        return {"color": plt.cm.Blues(0.45 + 0.18 * "256 512 2048".split().index(label.split()[1]))}
    if label.startswith("layered"):
        return {"color": plt.cm.Oranges(0.45 + 0.18 * [2, 4, 8].index(int(label.split("=")[1])))}
    return {"color": "black"}


def main():
    a = arguments(__doc__)
    sw = Sweep(a.results)
    for col in (NAME, PARAMS, RATE, "model"):
        if col not in sw.params:
            raise SystemExit(f"{a.results}: not a batch-policy sweep (no swept {col}); "
                             "run experiments/batch_policies.json")
    by_model = series(sw)
    ix = sw.index

    fig, axes = plt.subplots(1, len(by_model), figsize=(6 * len(by_model), 5), squeeze=False)
    for ax, (model, lines) in zip(axes[0], by_model.items()):
        for label, rows in lines.items():
            x, y = ix["tbt_s_p99"][rows] * 1e3, ix["ttft_s_p99"][rows] * 1e3
            ax.plot(x, y, marker="o", ms=4, lw=1.2, label=label, **style(label))
            ax.annotate(f"{ix[RATE][rows[-1]]:g}/s", (x[-1], y[-1]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("TBT p99 (ms)")
        ax.set_ylabel("TTFT p99 (ms)")
        ax.set_title(f"{model}: rates {ix[RATE].min():g} to {ix[RATE].max():g} req/s")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    save(fig, a.out, "batch_policies_tradeoff.png")

    fig, axes = plt.subplots(2, len(by_model), figsize=(6 * len(by_model), 8), squeeze=False,
                             sharex=True)
    for col, (model, lines) in enumerate(by_model.items()):
        for label, rows in lines.items():
            rate = ix[RATE][rows]
            axes[0][col].plot(rate, ix["energy_per_out_token_j"][rows], marker="o", ms=4,
                              label=label, **style(label))
            per_token = ix["weight_bytes"][rows] / np.maximum(ix["output_tokens"][rows], 1)
            axes[1][col].plot(rate, per_token / 1e9, marker="o", ms=4, label=label,
                              **style(label))
        axes[0][col].set_title(model)
        axes[0][col].set_ylabel("energy per output token (J)")
        axes[1][col].set_ylabel("weights read from HBM per output token (GB)")
        axes[1][col].set_xlabel("request rate (req/s)")
        for ax in axes[:, col]:
            ax.grid(True, alpha=0.3)
        axes[0][col].legend(fontsize=8)
    save(fig, a.out, "batch_policies_energy.png")


if __name__ == "__main__":
    main()
