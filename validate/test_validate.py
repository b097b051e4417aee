#!/usr/bin/env python3
"""Tests of validate.py's machinery (make test-validate): the references file parses and is
well formed, configs are built as the setups say, errors and summaries are computed right on
hand-made numbers, and two references run end to end. Nothing here asserts accuracy."""

import io
import math
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import validate as v  # noqa: E402


def ref_by_id(doc, rid):
    return next(r for r in doc["references"] if r["id"] == rid)


class ReferencesFile(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.doc = v.load(v.DEFAULT_REFS)

    def test_references_file_is_well_formed(self):
        self.assertEqual(v.check(self.doc), [])
        values = sum(len(r["metrics"]) for r in self.doc["references"])
        self.assertGreaterEqual(values, 30)
        self.assertLessEqual(values, 80)

    def test_every_reference_cites_a_source_with_a_date(self):
        for r in self.doc["references"]:
            src = self.doc["sources"][r["source"]]
            self.assertTrue(src["date"] and src["url"], r["id"])
            for m in r["metrics"]:
                self.assertTrue(m["read"], r["id"])

    def test_trtllm_a100_rows_above_tp1_are_read_per_gpu(self):
        rows = [r for r in self.doc["references"]
                if r["id"].startswith("trt-a100") and r["setup"]["tp"] > 1
                and r["metrics"][0]["metric"] == "output_throughput"]
        self.assertEqual(len(rows), 5)
        for r in rows:
            self.assertEqual(r["metrics"][0]["unit"], "tok/s/GPU", r["id"])
            self.assertIn("not from servesim", r["caveat"])

    def test_check_reports_malformed_entries(self):
        bad = {"sources": {}, "workloads": {},
               "references": [{"id": "x", "source": "nowhere", "where": "", "engine": {},
                               "setup": {"workload": {"kind": "teleport"},
                                         "engine_settings": {"warp": 9}},
                               "metrics": [{"metric": "ttft", "stat": "p42", "unit": "tok/s",
                                            "value": -1, "read": "r"}]}]}
        errors = "\n".join(v.check(bad))
        for text in ("unknown source", "engine: missing 'generation'", "workload.kind",
                     "not a unit of ttft", "stat: expected", "value: expected > 0",
                     "engine_settings.warp: unknown"):
            self.assertIn(text, errors)


class BuildRun(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.doc = v.load(v.DEFAULT_REFS)

    def test_static_batch_is_a_closed_loop_prefilled_in_one_pass(self):
        ref = ref_by_id(self.doc, "trt-a100-l2-7b-bs384-128-128")
        cfg, stdin = v.build_run(ref, self.doc["workloads"])
        self.assertIsNone(stdin)
        self.assertEqual((cfg["model"], cfg["gpu"], cfg["cluster"]["tp"]),
                         ("Llama-2-7B", "A100-SXM-80GB", 1))
        wl = cfg["workload"]
        self.assertEqual(wl["arrival"], {"process": "closed_loop", "clients": 384})
        self.assertEqual(wl["requests"], 384)
        self.assertEqual(wl["input_tokens"], {"dist": "fixed", "value": 128})
        self.assertEqual(cfg["instance"]["max_seqs"], 384)
        self.assertEqual(cfg["instance"]["max_batched_tokens"], 384 * 128)
        self.assertEqual(cfg["seed"], v.SEED)

    def test_poisson_over_recorded_lengths_is_a_native_trace_on_stdin(self):
        ref = ref_by_id(self.doc, "sgl-a100-l31-8b-rps8")
        cfg, stdin = v.build_run(ref, self.doc["workloads"])
        self.assertEqual(cfg["workload"], {"source": "native", "path": "-",
                                           "arrival": {"process": "poisson", "rate_per_s": 8}})
        rows = stdin.splitlines()
        self.assertEqual(rows[0], "arrival_s,input_tokens,output_tokens")
        self.assertEqual(len(rows) - 1, 2400)
        pairs = v._pairs(self.doc["workloads"]["lambda-h100-llama3-8b-p320"])
        self.assertTrue(all(o > 0 for _, o in pairs))
        self.assertEqual(rows[1], f"0,{pairs[0][0]},{pairs[0][1]}")
        self.assertEqual(rows[1 + len(pairs)], rows[1])  # cycles
        self.assertEqual(cfg["instance"]["gpu_memory_utilization"], 0.88)

    def test_burst_without_count_replays_every_nonempty_row(self):
        ref = ref_by_id(self.doc, "vllm054-h100x2-mixtral-burst320")
        cfg, stdin = v.build_run(ref, self.doc["workloads"])
        self.assertNotIn("arrival", cfg["workload"])
        w = self.doc["workloads"]["lambda-h100x2-mixtral-p320"]
        nonzero = sum(1 for o in w["output_lens"] if o > 0)
        self.assertEqual(len(stdin.splitlines()) - 1, nonzero)
        self.assertEqual(cfg["cluster"]["tp"], 2)

    def test_dtype_becomes_the_run_precision(self):
        cfg, _ = v.build_run(ref_by_id(self.doc, "trt-h100x2-l2-70b-bs1024-128-128-fp8"),
                             self.doc["workloads"])
        self.assertEqual(cfg["precision"], {"weights": "fp8", "activations": "fp8",
                                            "kv_cache": "fp8"})
        cfg, _ = v.build_run(ref_by_id(self.doc, "trt-a100-l2-7b-bs384-128-128"),
                             self.doc["workloads"])
        self.assertEqual(cfg["precision"]["weights"], "fp16")
        cfg, _ = v.build_run(ref_by_id(self.doc, "sgl-a100-l31-8b-rps8"), self.doc["workloads"])
        self.assertNotIn("precision", cfg)   # bf16: the model file's default
        ref = ref_by_id(self.doc, "nim180-h100x2-l33-70b-fp8-c1")
        self.assertEqual(v.ENGINE_PROFILE_OF[ref["engine"]["generation"]], "trtllm")

    def test_engine_overrides_are_applied_by_dotted_path(self):
        ref = ref_by_id(self.doc, "vllm-v1-h100-qwen3-30b-a3b-c10")
        # Every reference runs under its engine's profile.
        self.assertEqual(v.engine_overrides(ref), {"engine.name": "vllm-v1"})
        cfg, _ = v.build_run(ref, self.doc["workloads"])
        self.assertEqual(cfg["engine"], {"name": "vllm-v1"})
        saved = v.engine_overrides
        try:
            v.engine_overrides = lambda r: {"cost.iteration_overhead_us": 1234,
                                            "x.y": r["engine"]["generation"]}
            cfg, _ = v.build_run(ref, self.doc["workloads"])
        finally:
            v.engine_overrides = saved
        self.assertEqual(cfg["cost"]["iteration_overhead_us"], 1234)
        self.assertEqual(cfg["x"]["y"], "vllm-v1")

    def test_each_engine_version_runs_under_its_profile(self):
        want = {"vllm054-h100-l3-8b-burst320": "vllm-v0.5",
                "mlenergy-v2-h100-l31-8b-bs64": "vllm-v0.5",
                "vllm060-a100-l31-8b-rps8": "vllm-v0.6",
                "vllmci-h200-l3-8b-latency-bs8": "vllm-v0.6",
                "trt-a100-l2-7b-bs384-128-128": "trtllm-v0.6",
                "trt-a100-l2-7b-ttft-128": "trtllm-v0.6",
                "sgl-a100-l31-8b-rps8": "sglang",
                "mlenergy-v3-h100-l31-8b-bs64": "vllm-v1",
                "nim180-h100x2-l33-70b-fp8-c1": "trtllm"}
        for rid, profile in want.items():
            self.assertEqual(v.engine_profile_of(ref_by_id(self.doc, rid)), profile, rid)
        for r in self.doc["references"]:   # every profile named exists
            path = os.path.join(v.ENGINES_DIR, v.engine_profile_of(r) + ".json")
            self.assertTrue(os.path.exists(path), path)

    def test_multi_step_divides_the_blocking_cpu_time(self):
        ref = ref_by_id(self.doc, "vllm060-h100x4-l31-70b-rps8")
        self.assertEqual(ref["setup"]["engine_settings"]["num_scheduler_steps"], 10)
        cpu = v._profile_cpu("vllm-v0.6", v.ENGINES_DIR)
        over = v.engine_overrides(ref)
        self.assertEqual(over["engine.name"], "vllm-v0.6")
        self.assertAlmostEqual(over["engine.cpu_overhead.base_us"], cpu["base_us"] / 10)
        self.assertAlmostEqual(over["engine.cpu_overhead.per_seq_us"], cpu["per_seq_us"] / 10)
        cfg, _ = v.build_run(ref, self.doc["workloads"])
        self.assertNotIn("num_scheduler_steps", cfg["instance"])
        self.assertFalse(cpu["overlap"])
        # single-step v0.6 (vLLM CI) keeps the profile's constants
        self.assertNotIn("engine.cpu_overhead.base_us",
                         v.engine_overrides(ref_by_id(self.doc, "vllmci-h200-l3-8b-latency-bs8")))

    def test_offline_benchmarks_have_no_request_path(self):
        cfg, _ = v.build_run(ref_by_id(self.doc, "vllmci-h200-l3-8b-throughput-sharegpt200"),
                             self.doc["workloads"])
        self.assertEqual(cfg["engine"]["request_path"],
                         {"frontend_us": 0, "tokenize_us_per_token": 0, "stream_us": 0})
        cfg, _ = v.build_run(ref_by_id(self.doc, "vllm054-h100-l3-8b-burst320"),
                             self.doc["workloads"])
        self.assertNotIn("request_path", cfg["engine"])   # through the API server
        cfg, _ = v.build_run(ref_by_id(self.doc, "sgl-a100-l31-8b-rps8"), self.doc["workloads"])
        self.assertIs(cfg["instance"]["prefix_caching"], False)   # --disable-radix-cache

    def test_check_reports_unknown_interface_and_profile(self):
        doc = v.load(v.DEFAULT_REFS)
        ref = ref_by_id(doc, "vllm054-h100-l3-8b-burst10")
        ref["setup"]["interface"] = "carrier-pigeon"
        ref["engine"]["generation"] = "tgi"
        errors = "\n".join(v.check(doc))
        self.assertIn("interface: expected one of server, offline", errors)
        self.assertIn("no engine profile for 'tgi'", errors)

    def test_not_runnable_reasons(self):
        fp8 = ref_by_id(self.doc, "trt-h100-l2-7b-ttft-128-fp8")
        self.assertIsNone(v.not_runnable_reason(fp8))
        for rid in ("trt-a100-gptj-6b-bs512-128-128", "trt-a100x8-falcon-180b-bs1024-128-128"):
            self.assertIsNone(v.not_runnable_reason(ref_by_id(self.doc, rid)), rid)
        ref = dict(ref_by_id(self.doc, "trt-a100-l2-7b-ttft-128"))
        self.assertIsNone(v.not_runnable_reason(ref))
        ref["setup"] = dict(ref["setup"], model="No-Such-Model")
        self.assertIn("model missing", v.not_runnable_reason(ref))
        ref["setup"] = dict(ref["setup"], model="Llama-2-7B", dtype="int4")
        self.assertIn("int4", v.not_runnable_reason(ref))


class Errors(unittest.TestCase):
    SUMMARY = {"ttft_s_p50": 0.5, "ttft_s_mean": 0.25, "tpot_s_p50": 0.02, "tbt_s_mean": 0.01,
               "e2e_s_p99": 3.0, "duration_s": 10.0, "output_tokens": 8000, "completed": 40,
               "energy_per_out_token_j": 0.3}
    REF = {"id": "hand", "setup": {"gpus": 4}}

    def value(self, metric, stat, unit):
        return v.sim_value({"metric": metric, "stat": stat, "unit": unit}, self.SUMMARY, self.REF)

    def test_metric_values_in_the_reference_units(self):
        self.assertAlmostEqual(self.value("ttft", "p50", "ms"), 500.0)
        self.assertAlmostEqual(self.value("ttft", "mean", "s"), 0.25)
        self.assertAlmostEqual(self.value("tpot", "p50", "ms"), 20.0)
        self.assertAlmostEqual(self.value("itl", "mean", "ms"), 10.0)
        self.assertAlmostEqual(self.value("e2e", "p99", "s"), 3.0)
        self.assertAlmostEqual(self.value("batch_latency", "mean", "ms"), 10000.0)
        self.assertAlmostEqual(self.value("output_throughput", "mean", "tok/s"), 800.0)
        self.assertAlmostEqual(self.value("output_throughput", "mean", "tok/s/GPU"), 200.0)
        self.assertAlmostEqual(self.value("request_throughput", "mean", "req/s"), 4.0)
        self.assertAlmostEqual(self.value("energy_per_output_token", "mean", "J/token"), 0.3)

    def test_signed_error_is_relative_to_the_reference(self):
        self.assertAlmostEqual(v.signed_error(500.0, 400.0), 0.25)
        self.assertAlmostEqual(v.signed_error(300.0, 400.0), -0.25)

    def test_summary_median_and_worst_per_generation(self):
        rows = [{"id": "a", "generation": "g1", "kind": "ttft", "error": -0.5},
                {"id": "b", "generation": "g1", "kind": "tpot", "error": 0.1},
                {"id": "c", "generation": "g1", "kind": "ttft", "error": 0.2},
                {"id": "d", "generation": "g2", "kind": "ttft", "error": 0.04},
                {"id": "e", "generation": "g2", "kind": "ttft", "error": None}]
        s = v.summarize(rows)
        self.assertEqual(s["g1"]["n"], 3)
        self.assertAlmostEqual(s["g1"]["median_abs"], 0.2)
        self.assertEqual(s["g1"]["worst"]["id"], "a")
        self.assertEqual(s["g2"]["n"], 1)
        self.assertAlmostEqual(s["all"]["median_abs"], 0.15)
        by_metric = v.summarize(rows, "kind")
        self.assertEqual(by_metric["ttft"]["n"], 3)
        self.assertEqual(by_metric["tpot"]["worst"]["id"], "b")


@unittest.skipUnless(os.access(v.DEFAULT_SERVESIM, os.X_OK), "./servesim not built")
class EndToEnd(unittest.TestCase):
    def test_two_references_run_and_report(self):
        out = io.StringIO()
        ids = "trt-a100-l2-7b-ttft-2048,vllm054-h100-l3-8b-burst10"
        self.assertEqual(v.main(["--only", ids, "-j", "2"], out=out), 0)
        text = out.getvalue()
        doc = v.load(v.DEFAULT_REFS)
        rows, skipped, failures = v.evaluate(doc, v.DEFAULT_SERVESIM, 1, set(ids.split(",")))
        self.assertEqual((skipped, failures), ([], []))
        self.assertEqual(len(rows), 4)
        for r in rows:
            self.assertTrue(math.isfinite(r["servesim"]) and r["servesim"] > 0, r)
            self.assertAlmostEqual(r["error"], (r["servesim"] - r["reference"]) / r["reference"])
            self.assertIn(r["id"], text)
        self.assertIn("median |error|", text)


if __name__ == "__main__":
    unittest.main(verbosity=1)
