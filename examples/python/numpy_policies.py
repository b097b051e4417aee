"""A routing policy with numpy, through servesim's Python bridge: the views
are buffers, so numpy reads the core's arrays in place with no copy.

    "routing": {"name": "servesim_py:python",
                "params": {"module": "numpy_policies", "class": "LeastOutstandingTokens",
                           "path": "examples/python"}}

A copy of the built-in least_outstanding_tokens (it reproduces its results
bit for bit): argmin over the candidates' outstanding tokens, ties to the
lowest index (np.argmin returns the first minimum, and candidates are in
index order)."""
import numpy as np

import servesim


class LeastOutstandingTokens:
    def __init__(self, args, seed, setup):
        pass

    def route(self, now_ns, inst, candidates, req):
        loads = np.frombuffer(inst, dtype=np.int64).reshape(-1, servesim.INST_WORDS)
        cand = np.frombuffer(candidates, dtype=np.int32)
        return int(cand[np.argmin(loads[cand, servesim.OUTSTANDING_TOKENS])])
