"""Python policies for tests/test_plugin.c (not examples): checks that what
the bridge passes cannot be used after the call it was passed to."""


class KeepsViews:
    """Routes to the first candidate; every call checks that the request and
    the views kept from the previous call refuse to be read."""

    def __init__(self, args, seed, setup):
        self.kept = None
        self.checked = 0

    def route(self, now_ns, inst, candidates, req):
        if self.kept is not None:
            old_inst, old_cand, old_req = self.kept
            for what, read, error in (("inst", lambda: old_inst[0], ValueError),
                                      ("candidates", lambda: old_cand[0], ValueError),
                                      ("req", lambda: old_req.id, RuntimeError)):
                try:
                    read()
                except error:
                    continue
                raise AssertionError(f"a kept {what} could still be read after its call")
            self.checked += 1
        assert req.input_tokens > 0 and req.output_tokens > 0
        assert len(candidates) >= 1 and len(inst) >= 6 * len(candidates)
        self.kept = (inst, candidates, req)
        return candidates[0]
