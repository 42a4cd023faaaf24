#!/usr/bin/python3
"""Prints the Markdown table of docs/models.md: every torchvision classifier, what heinfer runs.

    /usr/bin/python3 tools/models_table.py --work DIR [--heinfer build/heinfer] [--resolution 224]

Per architecture (tools/export_torchvision.py --list; seeded weights, opset 13 and 17 at
its smallest input side): the plaintext check (heinfer run --plain against PyTorch, max
error relative to the largest |logit|, at both opsets), whether the encrypted plan exists
(client-aided mode; Sigmoid & co. need unmasked rounds), and
`heinfer inspect --resolution R --batch 8192 --allow-unmasked-rounds --json`'s prediction
for one batch at R x R: ring degree, coefficient moduli, peak ciphertext memory without a
budget and with streaming, and the time at 2 threads. Exports and JSON are kept in --work
(re-used when present). Takes about 20 minutes on 2 cores (the 224 x 224 calibrations).
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd, log):
    with open(log, "w") as f:
        return subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode


def last_line(path):
    with open(path) as f:
        lines = [l.strip() for l in f if l.strip()]
    return lines[-1] if lines else ""


def why_not(error):
    """The short reason of an `inspect` failure for the table."""
    if "exceeds the 128-bit bound" in error:
        return "too deep without a client round (" + error.split("log2(QP) = ")[1].split(" bits")[0] + "-bit Q)"
    if "does not run encrypted yet" in error:
        return error.split("): ")[1].split(" does not")[0]
    return error.split(": ", 2)[-1][:90]


def gib(b):
    return f"{b / 2**30:,.0f} GiB" if b >= 2**30 else f"{b / 2**20:,.0f} MiB"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", required=True)
    ap.add_argument("--heinfer", default=os.path.join(HERE, "..", "build", "heinfer"))
    ap.add_argument("--resolution", type=int, default=224)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    tool = os.path.join(HERE, "export_torchvision.py")
    archs = [l.split() for l in subprocess.check_output([sys.executable, tool, "--list"], text=True).splitlines()]
    print(f"| architecture | plaintext vs PyTorch (opset 13 / 17) | encrypted, client-aided | "
          f"N, coefficient moduli (bits) | peak ciphertexts at {a.resolution}: all / streamed | "
          f"time per batch of 8,192 at {a.resolution}, 2 threads |")
    print("|---|---|---|---|---|---|")
    for arch, side in archs:
        cells = [arch]
        plain = []
        for opset in (13, 17):
            base = os.path.join(a.work, f"{arch}_{opset}")
            x, y = os.path.join(a.work, f"{arch}_x.npy"), os.path.join(a.work, f"{arch}_y.npy")
            if not os.path.exists(base + ".onnx"):
                run([sys.executable, tool, "--arch", arch, "--resolution", side, "--opset", str(opset),
                     "--out", base + ".onnx", "--input-npy", x, "--count", "2", "--logits-npy", y,
                     "--logits-dtype", "float64"], base + ".export.log")
            out = base + "_plain.npy"
            if run([a.heinfer, "run", base + ".onnx", "--plain", "--input", x, "--output", out], base + ".plain.log") == 0:
                got, ref = np.load(out).astype(float), np.load(y)
                plain.append(f"{np.abs(got - ref).max() / np.abs(ref).max():.0e}")
            else:
                plain.append("fails: " + last_line(base + ".plain.log")[:80])
        cells.append(" / ".join(plain))
        base = os.path.join(a.work, f"{arch}_13")
        js = base + f".inspect{a.resolution}.json"
        if not os.path.exists(js):
            run([a.heinfer, "inspect", base + ".onnx", "--batch", "8192", "--resolution", str(a.resolution),
                 "--threads", "2", "--allow-unmasked-rounds", "--json", js], base + ".inspect.log")
        if os.path.exists(js):
            d = json.load(open(js))
            p, m, t = d["params"], d["memory"], d["time"]
            with open(base + ".inspect.log") as f:
                unmasked = "unmasked-round" in f.read()
            cells += ["with --allow-unmasked-rounds" if unmasked else "yes", f"{p['n']}, {p['coeff_bits']} + {p['special_bits']}",
                      f"{gib(m['peak_bytes'])} / {gib(m['peak_streamed_bytes'])}",
                      f"{t['batch_seconds'] / 3600:.1f} h"]
        else:
            cells += ["not yet: " + why_not(last_line(base + ".inspect.log")), "", "", ""]
        print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
