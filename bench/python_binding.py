"""Overhead of the Python package against the CLI on the same encrypted run.

    PYTHONPATH=build/python /usr/bin/python3 bench/python_binding.py [--cli build/heinfer]
        [--model models/fmnist_cnn.onnx] [--input data/fmnist_test_images.npy] [--repeats 3]

Alternates `heinfer run` and heinfer.Model.run on the same model and batch (one process
per CLI run; the Python runs in this process) and prints one JSON line: per repeat the
run's own time (the summary's "total", the executor loop) and the wall time of the call
(CLI: the process; Python: model.run including the input conversion and the output
array), their medians, and the Python/CLI ratios.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import tempfile
import time

import numpy

import heinfer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", default="build/heinfer")
    ap.add_argument("--model", default="models/fmnist_cnn.onnx")
    ap.add_argument("--input", default="data/fmnist_test_images.npy")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads)}
    model = heinfer.load(a.model)
    x = numpy.load(a.input)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "y.npy")
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            p = subprocess.run([a.cli, "run", a.model, "--input", a.input, "--output", out, "--threads",
                                str(a.threads), "--quiet"], capture_output=True, text=True, env=env, check=True)
            cli_wall = time.perf_counter() - t0
            cli_run = float(re.search(r"^total\s+([\d.]+) s", p.stdout, re.M).group(1))
            t0 = time.perf_counter()
            model.run(x, threads=a.threads, progress=False)
            py_wall = time.perf_counter() - t0
            rows.append({"cli_run_s": cli_run, "cli_wall_s": cli_wall,
                         "python_run_s": model.last_summary["seconds"], "python_wall_s": py_wall})
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    print(json.dumps({"bench": "python_binding", "model": a.model, "samples": int(x.shape[0]),
                      "threads": a.threads, "kernels": model.last_summary["kernels"], "repeats": rows,
                      "median": med, "ratio_run": med["python_run_s"] / med["cli_run_s"],
                      "ratio_wall": med["python_wall_s"] / med["cli_wall_s"]}))


if __name__ == "__main__":
    main()
