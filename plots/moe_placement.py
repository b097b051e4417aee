"""Expert placement under routing skew (experiments/moe_placement.json).

Reads a sweep's results file and draws, per EP degree, the mean expert-load
imbalance (max over mean routed tokens per GPU) and the mean TPOT against
the routing skew, static placement against EPLB. Prints the table it draws.

    ./servesim sweep experiments/moe_placement.json --out results/moe_placement.h5
    python3 plots/moe_placement.py results/moe_placement.h5 plots/out/moe_placement.png
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import h5py  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402


def rows(path):
    with h5py.File(path, "r") as f:
        index = f["index"][()]
        first = next(iter(f["points"].values()))
        names = [text(n) for n in first["summary"].attrs["term_names"]]
    a2a = [names.index("a2a_dispatch"), names.index("a2a_combine")]
    out = []
    for r in index:
        if r["status"] != 1:
            continue
        raw = r["cluster.pools"]
        pool = json.loads(raw.decode() if isinstance(raw, bytes) else raw)[0]
        total = sum(r["term_s"]) if "term_s" in index.dtype.names else 0
        out.append({
            "ep": pool["parallel"]["ep"],
            "skew": pool["moe"]["routing"]["skew"],
            "placement": pool["moe"]["placement"]["name"],
            "imbalance": float(r["ep_imbalance"]),
            "tpot_ms": float(r["tpot_s_mean"]) * 1e3,
            "a2a_share": float(sum(r["term_s"][i] for i in a2a)) / total if total else 0,
        })
    return out


def text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    data = rows(sys.argv[1])
    print("ep  skew  placement  imbalance  tpot_ms  a2a_share")
    for d in sorted(data, key=lambda d: (d["ep"], d["skew"], d["placement"])):
        print(f"{d['ep']:>2}  {d['skew']:.2f}  {d['placement']:<9}  {d['imbalance']:.3f}"
              f"      {d['tpot_ms']:.2f}    {d['a2a_share']:.3f}")
    eps = sorted({d["ep"] for d in data})
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    for ep in eps:
        for pl, style in (("static", "--"), ("eplb", "-")):
            pts = sorted((d["skew"], d["imbalance"], d["tpot_ms"]) for d in data
                         if d["ep"] == ep and d["placement"] == pl)
            if not pts:
                continue
            x = [p[0] for p in pts]
            ax[0].plot(x, [p[1] for p in pts], style, marker="o", label=f"EP{ep} {pl}")
            ax[1].plot(x, [p[2] for p in pts], style, marker="o", label=f"EP{ep} {pl}")
    ax[0].set_xlabel("routing skew (Zipf exponent)")
    ax[0].set_ylabel("imbalance: max / mean tokens per GPU")
    ax[1].set_xlabel("routing skew (Zipf exponent)")
    ax[1].set_ylabel("mean TPOT (ms)")
    ax[0].legend()
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=100)


if __name__ == "__main__":
    main()
