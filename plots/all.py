#!/usr/bin/python3
"""Runs every plot script on one sweep results file: what `make plots` does.

usage: all.py RESULTS.h5 [--out results/plots]"""
import os
import subprocess
import sys

SCRIPTS = ["latency_cdf.py", "slo_vs_rate.py", "pareto.py", "energy_throughput.py",
           "timeline.py"]


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    failed = 0
    for script in SCRIPTS:
        rc = subprocess.call([sys.executable, os.path.join(here, script)] + argv)
        failed += rc != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
