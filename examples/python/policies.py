"""Example servesim policies in Python, run through the Python bridge
(plugins/servesim_py.c, built as build/plugins/libservesim_py.so):

    "policies": {
      "order":   {"name": "servesim_py:python",
                  "params": {"module": "policies", "class": "SJF", "path": "examples/python"}},
      "routing": {"name": "servesim_py:python",
                  "params": {"module": "policies", "class": "LeastOutstandingTokens",
                             "path": "examples/python"}}}

SJF, LeastOutstandingTokens and PrefillFirst (batch formation, "batch":
{"name": "servesim_py:python", ...}) are copies of the built-ins sjf,
least_outstanding_tokens and vllm_prefill_first and reproduce their results
bit for bit (tests/test_plugin.c). Each class takes (args, seed, setup) and
provides the family's method: key(req) for ordering, route(now_ns, inst,
candidates, req) for routing, form(view) for batch formation. See plugins/README.md for what the arguments hold. Keep a
policy's state in its instance: module globals outlive a run."""
import random
import struct

import servesim

# inst holds each instance's inst_view as servesim.INST_WORDS 64-bit words;
# inst[i * W + OUT] is instance i's outstanding tokens.
W = servesim.INST_WORDS
OUT = servesim.OUTSTANDING_TOKENS
_INST = struct.Struct(servesim.INST_FORMAT)   # a whole inst_view, for the int32 fields


class SJF:
    """Shortest job first on the true output length: tokens still to generate."""

    def __init__(self, args, seed, setup):
        if args:
            raise ValueError(f"SJF takes no args, got {sorted(args)}")

    def key(self, req):
        return req.output_tokens - req.generated_tokens


class LeastOutstandingTokens:
    """The candidate with the fewest tokens assigned and not yet processed;
    ties to the lowest index."""

    def __init__(self, args, seed, setup):
        if args:
            raise ValueError(f"LeastOutstandingTokens takes no args, got {sorted(args)}")

    def route(self, now_ns, inst, candidates, req):
        best = candidates[0]
        best_out = inst[best * W + OUT]
        for i in candidates:
            out = inst[i * W + OUT]
            if out < best_out:
                best, best_out = i, out
        return best


class PowerOfTwo:
    """Power of two choices: two candidates drawn at random, the one with
    fewer outstanding tokens wins. Random draws come from the seed servesim
    passes, so runs are deterministic."""

    def __init__(self, args, seed, setup):
        self.rng = random.Random(seed)

    def route(self, now_ns, inst, candidates, req):
        a, b = self.rng.choice(candidates), self.rng.choice(candidates)
        return a if inst[a * W + OUT] <= inst[b * W + OUT] else b


class LeastLoadedActive:
    """Reads whole inst_views with struct: the candidate with the fewest
    waiting plus running requests (ties to the lowest index)."""

    def __init__(self, args, seed, setup):
        pass

    def route(self, now_ns, inst, candidates, req):
        def load(i):
            pool, state, n_waiting, n_running = _INST.unpack_from(inst, i * _INST.size)[:4]
            return n_waiting + n_running
        return min(candidates, key=lambda i: (load(i), i))


class First:
    """The first candidate: no work, to measure the bridge's own cost."""

    def __init__(self, args, seed, setup):
        pass

    def route(self, now_ns, inst, candidates, req):
        return candidates[0]


class Zero:
    """Key 0 (arrival order, as fcfs): no work, to measure the bridge's cost."""

    def __init__(self, args, seed, setup):
        pass

    def key(self, req):
        return 0


class Broken:
    """Raises, to test that a policy's exception aborts the run."""

    def __init__(self, args, seed, setup):
        self.fail_in_init = bool(args.get("fail_in_init"))
        if self.fail_in_init:
            raise RuntimeError("asked to fail")

    def key(self, req):
        raise RuntimeError("asked to fail")


class PrefillFirst:
    """Batch formation: a copy of the built-in vllm_prefill_first (vLLM V0's
    scheduler). An iteration prefills whole prompts in queue order while
    they fit (token budget, sequence limit, KV less the watermark), or, if
    none can be admitted, decodes every running request, preempting by the
    engine's victim rule when a decode finds no free KV block. Called every
    iteration with the whole running set: the expensive family to write in
    Python (plugins/README.md)."""

    def __init__(self, args, seed, setup):
        unknown = set(args) - {"watermark_fraction"}
        if unknown:
            raise ValueError(f"unknown args {sorted(unknown)}")
        rules = setup["rules"]
        watermark = args.get("watermark_fraction", rules["watermark_fraction"])
        if setup["max_batched_tokens"] < setup["max_context_tokens"]:
            raise ValueError("prefill-first needs max_batched_tokens >= max_context_tokens")
        self.watermark_blocks = int(watermark * setup["kv_total_blocks"])
        self.budget = setup["max_batched_tokens"]
        self.max_seqs = setup["max_seqs"]
        self.check_only = rules["reserve_check_only"]
        self.newest = rules["victim"] == "newest"

    def form(self, view):
        if view.n_waiting and self.admit_prefills(view):
            return
        self.decodes(view)

    def admit_prefills(self, view):
        budget, seqs, kept = self.budget, view.n_running, view.n_running
        for r in view.waiting:
            tokens = view.todo_tokens(r)
            if tokens > budget or seqs >= self.max_seqs:
                break
            want = view.admit_tokens(r, tokens)
            if not view.admit_fits(kept, view.kv_need(r, want), self.watermark_blocks):
                break
            take = tokens if self.check_only else want
            view.add(r, tokens, 0, take if take > tokens else 0)
            view.kv_take(r, take)
            budget -= tokens
            seqs += 1
        return view.n_items

    def victim(self, running, preempted, start):
        """The engine's victim among running[start:] not yet preempted."""
        best = -1
        for j in range(len(running) - 1, start - 1, -1):
            r = running[j]
            if j in preempted:
                continue
            if self.newest:
                return j
            if best < 0 or self.fewer_outputs(r, running[best]):
                best = j
        return best

    @staticmethod
    def fewer_outputs(a, b):
        if a.generated_tokens != b.generated_tokens:
            return a.generated_tokens < b.generated_tokens
        if a.input_tokens != b.input_tokens:
            return a.input_tokens > b.input_tokens
        return a.admit_seq > b.admit_seq

    def decodes(self, view):
        running, preempted, budget = view.running, set(), self.budget
        for i, r in enumerate(running):
            if budget <= 0:
                break
            if not r.is_decode or i in preempted:
                continue
            self_preempted = False
            while view.kv_need(r, 1) > view.kv_free() and not self_preempted:
                j = self.victim(running, preempted, i)
                view.preempt(running[j])
                preempted.add(j)
                self_preempted = j == i
            if self_preempted:
                break
            view.add(r, 1)
            view.kv_take(r, 1)
            budget -= 1
