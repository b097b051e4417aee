#!/usr/bin/python3
"""Batch formation policies across load (experiments/batch_policies.json):
the p99 TTFT versus p99 TBT trade-off, one line per policy variant through
the request rates, and energy per output token and weight bytes read per
output token versus request rate; one column per model. Every point is the
mean over the seeds. Writes batch_policies_tradeoff.png and
batch_policies_energy.png."""
import numpy as np

from common import Sweep, arguments, by_x, figure, plt, save

NAME = "policies.batch.name"
PARAMS = "policies.batch.params"
RATE = "workload.arrival.rate_per_s"


def style(label, variants):
    """Colour families per policy kind, so that a kind's variants read as one
    family: the k-th variant of a kind a little darker."""
    kind = label.split(" ")[0]
    same = [v for v in variants if v.split(" ")[0] == kind]
    k = same.index(label)
    cmap = {"chunked": plt.cm.Blues, "layered": plt.cm.Oranges}.get(kind)
    if cmap is None:
        return {"color": "black"}
    return {"color": cmap(0.45 + 0.5 * k / max(len(same) - 1, 1))}


def main():
    a = arguments(__doc__)
    sw = Sweep(a.results)
    for col in (NAME, PARAMS, RATE, "model"):
        if col not in sw.params:
            from common import fail
            fail(f"{a.results}: not a batch-policy sweep (no swept {col}); "
                 "run experiments/batch_policies.json")
    models = list(dict.fromkeys(sw.column("model").tolist()))
    ix = sw.index

    fig, axes = figure(a.style, ncols=len(models), aspect=0.8)
    fig2, axes2 = figure(a.style, ncols=len(models), nrows=2, aspect=0.7, sharex=True)
    for col, model in enumerate(models):
        in_model = sw.column("model") == model
        groups = sw.groups([NAME, PARAMS], in_model)
        variants = [g[0] for g in groups]
        ax = axes[0][col]
        for label, mask in groups:
            rates, tbt, _ = by_x(sw, mask, RATE, "tbt_s_p99", 1e3)
            _, ttft, _ = by_x(sw, mask, RATE, "ttft_s_p99", 1e3)
            ax.plot(tbt, ttft, marker="o", ms=3, label=label, **style(label, variants))
            ax.annotate(f"{rates[-1]:g}/s", (tbt[-1], ttft[-1]), fontsize=6,
                        xytext=(3, 3), textcoords="offset points")
            _, jpt, _ = by_x(sw, mask, RATE, "energy_per_out_token_j")
            per_token = ix["weight_bytes"] / np.maximum(ix["output_tokens"], 1) / 1e9
            xs = np.unique(ix[RATE][mask])
            wpt = [per_token[mask & (ix[RATE] == x)].mean() for x in xs]
            axes2[0][col].plot(rates, jpt, marker="o", ms=3, label=label, **style(label, variants))
            axes2[1][col].plot(xs, wpt, marker="o", ms=3, label=label, **style(label, variants))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("TBT p99 (ms)")
        ax.set_ylabel("TTFT p99 (ms)")
        in_rates = ix[RATE][in_model]
        ax.set_title(f"{model}: {in_rates.min():g} to {in_rates.max():g} req/s")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(title="batch policy")
        axes2[0][col].set_title(model)
        axes2[0][col].set_ylabel("energy per output token (J)")
        axes2[1][col].set_ylabel("HBM weight reads per output token (GB)")
        axes2[1][col].set_xlabel("request rate (req/s)")
        for a2 in axes2[:, col]:
            a2.grid(True, alpha=0.3)
        axes2[0][col].legend(title="batch policy")
    save(fig, a.out, "batch_policies_tradeoff.png")
    save(fig2, a.out, "batch_policies_energy.png")


if __name__ == "__main__":
    main()
