#!/usr/bin/python3
"""For experiments/agent_sessions.json: session completion time (p50, p99),
resume delay (a later turn's gap end to its first token, p50 and p99), the
per-turn KV hit ratio (mean over turns after the first) and affinity breaks
(turns served elsewhere than their session's previous turn, share of later
turns) against session concurrency, one line per routing policy, solid with
0.9 and dashed with 0.3 of the HBM (gpu_memory_utilization), circles for
KV retention "release", crosses for "pin_ttl", triangles for "min_waste", squares for
"offload". With --table, also prints
every point's figures."""
import numpy as np

from common import Sweep, arguments, plt, save


def main():
    def extra(ap):
        ap.add_argument("--table", action="store_true", help="print every point's figures")
    a = arguments(__doc__, extra)
    sw = Sweep(a.results)
    ix = sw.index
    for p in ["workload.arrival.clients", "policies.routing.name",
              "instance.gpu_memory_utilization"]:
        if p not in sw.params:
            raise SystemExit(f"{a.results}: not an agent_sessions sweep (no swept {p})")
    lanes = ix["workload.arrival.clients"]
    route = sw.column("policies.routing.name")
    util = ix["instance.gpu_memory_utilization"]
    retain = (sw.column("policies.retention.name") if "policies.retention.name" in sw.params
              else np.array(["release"] * len(ix)))
    later = np.maximum(ix["session_turns"].astype(float) - ix["sessions_completed"], 1)
    breaks = ix["affinity_breaks"].astype(float) / later
    panels = [("session_s_p50", 1, "session time p50 (s)"),
              ("session_s_p99", 1, "session time p99 (s)"),
              ("resume_s_p50", 1e3, "resume delay p50 (ms)"),
              ("resume_s_p99", 1e3, "resume delay p99 (ms)"),
              ("turn_hit_ratio", 100, "later turns' prompt hit (%)")]
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(4.2 * (len(panels) + 1), 4))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, pol in enumerate(dict.fromkeys(route.tolist())):
        for u, style in ((0.9, "-"), (0.3, "--")):
            for ret, mk in (("release", "o"), ("pin_ttl", "x"), ("min_waste", "^"),
                            ("offload", "s")):
                m = (route == pol) & np.isclose(util, u) & (retain == ret)
                if not m.any():
                    continue
                o = np.argsort(lanes[m])
                c = colours[k % len(colours)]
                lab = f"{pol}, HBM {u:g}, {ret}"
                for ax, (col, scale, _) in zip(axes, panels):
                    ax.plot(lanes[m][o], scale * ix[col][m][o], style, marker=mk, color=c,
                            label=lab)
                axes[-1].plot(lanes[m][o], 100 * breaks[m][o], style, marker=mk, color=c)
    for ax, (_, _, name) in zip(axes, panels + [(None, None, "affinity breaks (% of later turns)")]):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent sessions (closed-loop lanes)")
        ax.set_ylabel(name)
        ax.grid(True, alpha=0.3)
    for ax in axes[:4]:
        ax.set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.suptitle("agentic sessions: routing x HBM under rising session concurrency")
    save(fig, a.out, "agent_sessions.png")
    if a.table:
        print("lanes\trouting\tutil\tretention\tsessions\tsess_p50_s\tsess_p99_s\tresume_p50_ms\t"
              "resume_p99_ms\tturn_hit%\tsession_hit%\tbreaks%\tevictions\tpins\texpired")
        rows = sorted(range(len(ix)), key=lambda i: (lanes[i], util[i], route[i], retain[i]))
        for i in rows:
            print(f"{lanes[i]}\t{route[i]}\t{util[i]:g}\t{retain[i]}\t"
                  f"{int(ix['sessions_completed'][i])}\t"
                  f"{ix['session_s_p50'][i]:.2f}\t{ix['session_s_p99'][i]:.2f}\t"
                  f"{1e3 * ix['resume_s_p50'][i]:.1f}\t{1e3 * ix['resume_s_p99'][i]:.1f}\t"
                  f"{100 * ix['turn_hit_ratio'][i]:.1f}\t{100 * ix['session_hit_ratio'][i]:.1f}\t"
                  f"{100 * breaks[i]:.1f}\t{int(ix['kv_evictions'][i])}\t{int(ix['pins'][i])}\t"
                  f"{int(ix['pin_expiries'][i])}")


if __name__ == "__main__":
    main()
