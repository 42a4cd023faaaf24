#!/usr/bin/python3
"""Train a small Fashion-MNIST model, evaluate it and export it to ONNX.

    /usr/bin/python3 tools/train_fashion_mnist.py --arch cryptonets --out models/fmnist_cryptonets.onnx
    /usr/bin/python3 tools/train_fashion_mnist.py --arch cnn        --out models/fmnist_cnn.onnx

Trains on the 60,000 training images (inputs in [0,1], no normalisation layer),
evaluates float32 accuracy on all 10,000 test images, exports ONNX opset 13
(input `input` [batch,1,28,28], output `logits` [batch,10], batch symbolic),
records the result in models/accuracy.json and writes float64 reference logits of
the first 64 test images. Fully seeded and deterministic on CPU.
"""

import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fashion_mnist  # noqa: E402
import onnx_export  # noqa: E402


class Square(nn.Module):
    """x * x, exported as ONNX Mul(x, x)."""

    def forward(self, x):
        return x * x


class CryptoNets(nn.Module):
    """Gilad-Bachrach et al. 2016: Conv 5x5/2 (5 maps) -> square -> FC 100 -> square -> FC 10."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 5, kernel_size=5, stride=2, padding=1)  # -> 5x13x13 = 845
        self.sq1 = Square()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(845, 100)
        self.sq2 = Square()
        self.fc2 = nn.Linear(100, 10)

    def forward(self, x):
        return self.fc2(self.sq2(self.fc1(self.flatten(self.sq1(self.conv(x))))))

    def probes(self):
        return ["conv", "sq1", "fc1", "sq2", "fc2"]


class SmallCNN(nn.Module):
    """Conv3x3(8)+BN+ReLU -> MaxPool2 -> Conv3x3(16)+BN+ReLU -> AvgPool2 -> Flatten -> FC 10."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)                     # -> 8x14x14
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1, bias=True)
        self.bn2 = nn.BatchNorm2d(16)
        self.relu2 = nn.ReLU()
        # count_include_pad=False: same result (no padding) but torch 1.13 would otherwise
        # export a no-op Pad (pads from a Constant node) before the AveragePool.
        self.pool2 = nn.AvgPool2d(2, count_include_pad=False)  # -> 16x7x7 = 784
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(16 * 7 * 7, 10)

    def forward(self, x):
        x = self.pool1(self.relu1(self.bn1(self.conv1(x))))
        x = self.pool2(self.relu2(self.bn2(self.conv2(x))))
        return self.fc(self.flatten(x))

    def probes(self):
        return ["conv1", "bn1", "pool1", "conv2", "bn2", "pool2", "fc"]


# epochs, batch size, peak learning rate, weight decay, gradient-clip norm
RECIPES = {
    "cryptonets": dict(model=CryptoNets, epochs=12, batch=64, lr=1e-3, wd=1e-4, clip=1.0),
    "cnn": dict(model=SmallCNN, epochs=10, batch=128, lr=3e-3, wd=1e-4, clip=None),
}


def evaluate(model, x, y, batch=1000):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            correct += int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
    return correct


def activation_ranges(model, x, batch=1000):
    """max |value| of each probed layer's output over x (float32), for CKKS scale planning."""
    model.eval()
    ranges = {name: 0.0 for name in model.probes()}
    hooks = []
    for name in model.probes():
        def hook(_m, _i, out, name=name):
            ranges[name] = max(ranges[name], float(out.abs().max()))
        hooks.append(getattr(model, name).register_forward_hook(hook))
    with torch.no_grad():
        for i in range(0, len(x), batch):
            model(x[i:i + batch])
    for h in hooks:
        h.remove()
    return {k: round(v, 4) for k, v in ranges.items()}


def train(arch, xtr, ytr, xte, yte, seed, epochs=None, log=print):
    r = RECIPES[arch]
    epochs = r["epochs"] if epochs is None else epochs
    onnx_export.seed_everything(seed)
    model = r["model"]()
    opt = torch.optim.Adam(model.parameters(), lr=r["lr"], weight_decay=r["wd"])
    steps_per_epoch = (len(xtr) + r["batch"] - 1) // r["batch"]
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=r["lr"], epochs=epochs, steps_per_epoch=steps_per_epoch, pct_start=0.15)
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        model.train()
        t0 = time.time()
        perm = torch.randperm(len(xtr), generator=gen)
        total, seen = 0.0, 0
        for i in range(0, len(xtr), r["batch"]):
            idx = perm[i:i + r["batch"]]
            loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
            if not torch.isfinite(loss):
                raise RuntimeError(f"{arch}: loss became {float(loss)} in epoch {epoch + 1}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if r["clip"]:
                nn.utils.clip_grad_norm_(model.parameters(), r["clip"])
            opt.step()
            sched.step()
            total += float(loss) * len(idx)
            seen += len(idx)
        acc = evaluate(model, xte, yte) / len(xte)
        log(f"epoch {epoch + 1}/{epochs}: train loss {total / seen:.4f}, "
            f"test acc {acc:.4f} ({time.time() - t0:.1f} s)")
    model.eval()
    return model, epochs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", required=True, choices=sorted(RECIPES))
    ap.add_argument("--out", required=True, help="ONNX file to write")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data-dir", default=fashion_mnist.DEFAULT_DIR)
    ap.add_argument("--accuracy-json", default=None,
                    help="JSON file to update (default: accuracy.json next to --out)")
    ap.add_argument("--logits", default=None,
                    help="float64-reference logits of the first --slice test images "
                         "(default: fmnist_<arch>_test64_logits.npy next to --out)")
    ap.add_argument("--slice", type=int, default=64)
    ap.add_argument("--fuse-bn", action="store_true",
                    help="let the exporter fold BatchNormalization into Conv")
    a = ap.parse_args(argv)

    torch.set_num_threads(a.threads)
    outdir = os.path.dirname(os.path.abspath(a.out))
    acc_path = a.accuracy_json or os.path.join(outdir, "accuracy.json")
    logits_path = a.logits or os.path.join(outdir, f"fmnist_{a.arch}_test{a.slice}_logits.npy")

    try:
        xtr, ytr = fashion_mnist.load("train", a.data_dir)
        xte, yte = fashion_mnist.load("t10k", a.data_dir)
    except fashion_mnist.FashionMnistError as e:
        ap.exit(2, f"error: {e}\n")
    xtr, ytr, xte, yte = map(torch.from_numpy, (xtr, ytr, xte, yte))

    t0 = time.time()
    model, epochs = train(a.arch, xtr, ytr, xte, yte, a.seed, a.epochs)
    train_s = time.time() - t0
    correct = evaluate(model, xte, yte)
    ranges = activation_ranges(model, xte)
    print(f"{a.arch}: float32 test accuracy {correct / len(xte):.4f} ({correct}/{len(xte)}), "
          f"{epochs} epochs, {train_s:.0f} s; activation max |x|: {ranges}")

    m = onnx_export.export_onnx(model, torch.zeros(1, 1, 28, 28), a.out, keep_bn=not a.fuse_bn,
                                constant_folding=True)
    if a.arch == "cnn" and not a.fuse_bn:
        assert "BatchNormalization" in onnx_export.op_types(m), "BN was folded by the exporter"
    for line in onnx_export.describe(m):
        print("  " + line)

    # float64 reference logits of the committed slice; if the slice's images are next to
    # --out (tools/prepare_fashion_mnist.py --prefix fmnist_test64), make sure they match.
    slice_images = os.path.join(outdir, f"fmnist_test{a.slice}_images.npy")
    if os.path.exists(slice_images) and not np.array_equal(
            np.load(slice_images), xte[:a.slice].numpy()):
        raise SystemExit(f"error: {slice_images} is not the first {a.slice} test images")
    ref = model.double()
    with torch.no_grad():
        logits64 = ref(xte[:a.slice].double()).numpy()
    model.float()
    onnx_export.save_npy(logits_path, logits64.astype(np.float32))
    slice_correct = int((logits64.argmax(1) == yte[:a.slice].numpy()).sum())

    results = {}
    if os.path.exists(acc_path):
        import json
        with open(acc_path) as f:
            results = json.load(f)
    results[os.path.basename(a.out)] = {
        "arch": a.arch,
        "test_accuracy": round(correct / len(xte), 6),
        "test_correct": correct,
        "test_total": len(xte),
        "framework": f"torch {torch.__version__} float32 (CPU)",
        "epochs": epochs,
        "seed": a.seed,
        "train_seconds": round(train_s, 1),
        "recipe": {k: v for k, v in RECIPES[a.arch].items() if k != "model"} | {"epochs": epochs},
        "onnx_sha256": onnx_export.sha256(a.out),
        "onnx_bytes": os.path.getsize(a.out),
        "onnx_opset": onnx_export.OPSET,
        "onnx_ops": onnx_export.op_counts(m),
        "activation_max_abs_test": ranges,
        "reference_logits": {
            "file": os.path.basename(logits_path),
            "images": f"first {a.slice} test images",
            "computed_in": "float64",
            "argmax_correct": slice_correct,
        },
    }
    onnx_export.save_json(acc_path, results)
    print(f"wrote {a.out} ({os.path.getsize(a.out)} bytes), {logits_path}, updated {acc_path}; "
          f"{slice_correct}/{a.slice} of the slice correct")


if __name__ == "__main__":
    main()
