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


class KeepsBatchView:
    """A simple batch policy (one prompt at a time when nothing runs, else
    every decode that fits) that checks the view and the request kept from
    the previous call refuse to be read."""

    def __init__(self, args, seed, setup):
        self.kept = None

    def form(self, view):
        if self.kept is not None:
            old_view, old_req = self.kept
            checks = [("view", lambda: old_view.n_running, RuntimeError),
                      ("view", lambda: old_view.kv_free(), RuntimeError)]
            if old_req is not None:
                checks.append(("req", lambda: old_req.id, RuntimeError))
            for what, read, error in checks:
                try:
                    read()
                except error:
                    continue
                raise AssertionError(f"a kept {what} could still be read after its call")
        first = None
        for r in view.waiting:
            first = r
            break
        if view.n_running == 0 and first is not None:
            tokens = view.todo_tokens(first)
            if view.kv_need(first, tokens) <= view.kv_free():
                view.add(first, tokens)
                view.kv_take(first, tokens)
        for r in view.running:
            if r.is_decode and view.kv_need(r, 1) <= view.kv_free():
                view.add(r, 1)
                view.kv_take(r, 1)
        running = view.running
        self.kept = (view, first if first is not None else (running[0] if running else None))
