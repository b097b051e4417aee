#!/usr/bin/python3
"""Speculative decoding speed-up against batch size (experiments/spec_decode.json):
one panel per acceptance rate, one line per method (and draft length, and
policy), the speed-up over the run without speculation at the same batch
size: output-throughput ratio (solid) and TPOT ratio (dotted). Speed-up 1 is
drawn: below it speculation hurts. Also prints the table and, for each
line, the first batch size at which the throughput speed-up falls below 1.
Writes spec_decode_speedup.png."""
import json

import numpy as np

from common import Sweep, arguments, plt, save

SPEC = "instance.speculative"
BATCH = "instance.max_seqs"


def label(s):
    """(line label, acceptance) of a speculative object; ("off", None) for the baseline."""
    if s.get("method", "off") == "off":
        return "off", None
    name = f"{s['method']} K={s.get('k', 4)}"
    if s.get("policy", {}).get("name", "fixed") != "fixed":
        name += f" {s['policy']['name']}"
    return name, s.get("acceptance")


def main():
    a = arguments(__doc__)
    sw = Sweep(a.results)
    for col in (SPEC, BATCH):
        if col not in sw.params:
            raise SystemExit(f"{a.results}: not a speculative-decoding sweep (no swept {col}); "
                             "run experiments/spec_decode.json")
    ix = sw.index
    specs = [label(json.loads(v)) for v in sw.column(SPEC)]
    batch = sw.column(BATCH)
    base = {b: i for i, (s, b) in enumerate(zip(specs, batch)) if s[0] == "off"}
    if not base:
        raise SystemExit(f"{a.results}: no baseline point (method \"off\")")
    lines = {}
    for i, ((name, alpha), b) in enumerate(zip(specs, batch)):
        if name != "off" and b in base:
            lines.setdefault(alpha, {}).setdefault(name, []).append(i)
    alphas = sorted(lines)
    fig, axes = plt.subplots(1, len(alphas), figsize=(6 * len(alphas), 4.5), squeeze=False,
                             sharey=True)
    for ax, alpha in zip(axes[0], alphas):
        print(f"acceptance {alpha}: throughput speed-up (TPOT speed-up)")
        for k, (name, rows) in enumerate(sorted(lines[alpha].items())):
            rows = sorted(rows, key=lambda i: batch[i])
            bs = np.array([batch[i] for i in rows])
            ref = np.array([base[b] for b in bs])
            thr = ix["throughput_tok_s"][rows] / ix["throughput_tok_s"][ref]
            tpot = ix["tpot_s_mean"][ref] / ix["tpot_s_mean"][rows]
            colour = plt.cm.tab10(k % 10)
            ax.plot(bs, thr, "o-", color=colour, label=name)
            ax.plot(bs, tpot, ":", color=colour)
            below = [int(b) for b, s in zip(bs, thr) if s < 1]
            cells = "  ".join(f"B={int(b)}: {s:.2f} ({t:.2f})" for b, s, t in zip(bs, thr, tpot))
            print(f"  {name:24s} {cells}; below 1 from {'B=' + str(below[0]) if below else 'no B'}")
        ax.axhline(1, color="grey", lw=1)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch size B (max_seqs, closed-loop clients)")
        ax.set_title(f"acceptance rate per position {alpha}")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("speed-up over no speculation\n(solid: throughput, dotted: TPOT)")
    axes[0][-1].legend(fontsize=8)
    save(fig, a.out, "spec_decode_speedup.png")


if __name__ == "__main__":
    main()
