#!/usr/bin/python3
"""Export a torchvision image classifier with seeded random weights to ONNX.

    /usr/bin/python3 tools/export_torchvision.py --arch mobilenet_v2 --width 0.35 \\
        --resolution 32 --out /tmp/mnv2.onnx [--seed 0] [--opset 13] \\
        [--input-npy /tmp/x.npy --count 4 --logits-npy /tmp/y.npy]
    /usr/bin/python3 tools/export_torchvision.py --list

--arch is any classifier of torchvision 0.14 (--list prints them with the smallest input
side each exports at: alexnet and vgg need 224 for their adaptive pooling, inception_v3 75).

Nothing is downloaded (weights=None). The weights come from torchvision's own
initialisation under torch.manual_seed(seed); every BatchNorm layer then gets a random
affine (gamma in [0.5,1.5], beta ~ N(0,0.1)) and non-trivial running statistics, so the
importer's BatchNorm folding has real work to do. --bn-stats calibrated (default)
measures the running mean/var on seeded random inputs and perturbs them (keeps
activations O(1) through 50 layers); --bn-stats random draws them (mean ~ N(0,0.2),
var in [0.5,2]) and lets activations drift. Exported in eval mode, ONNX opset --opset (13 by default),
input `input` [batch,3,H,W], output `logits` [batch,1000], batch symbolic.
"""

import argparse
import os
import re
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import onnx_export  # noqa: E402


def parse_resolution(text):
    m = re.fullmatch(r"(\d+)(?:x(\d+))?", text)
    if not m:
        raise argparse.ArgumentTypeError(f"resolution {text!r}: use H or HxW, e.g. 224 or 160x128")
    h = int(m.group(1))
    w = int(m.group(2)) if m.group(2) else h
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError("resolution must be positive")
    return h, w


# Classifier -> smallest input side it exports at (adaptive pooling to 6x6 / 7x7 needs an
# exact multiple: alexnet and vgg export at 224 only).
ARCHS = {
    "alexnet": 224, "vgg11_bn": 224, "resnet18": 32, "resnet50": 32, "resnext50_32x4d": 32,
    "wide_resnet50_2": 32, "densenet121": 32, "squeezenet1_1": 32, "shufflenet_v2_x1_0": 32,
    "mobilenet_v2": 32, "mobilenet_v3_small": 32, "mobilenet_v3_large": 32, "mnasnet1_0": 32,
    "efficientnet_b0": 32, "regnet_y_400mf": 32, "googlenet": 32, "inception_v3": 75,
}


def build(arch, width):
    if arch not in ARCHS:
        raise SystemExit(f"error: unknown arch {arch}; one of: {', '.join(ARCHS)}")
    if width != 1.0 and arch != "mobilenet_v2":
        raise SystemExit("error: --width applies to mobilenet_v2 only")
    kwargs = {}
    if arch == "mobilenet_v2":
        kwargs["width_mult"] = width
    if arch in ("googlenet", "inception_v3"):
        kwargs.update(aux_logits=False, init_weights=True)
    return torchvision.models.get_model(arch, weights=None, **kwargs)


def bn_layers(model):
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def randomize_bn(model, mode, seed, shape, calib_batch):
    g = torch.Generator().manual_seed(seed + 1000)
    bns = bn_layers(model)
    with torch.no_grad():
        for bn in bns:
            c = bn.num_features
            bn.weight.copy_(torch.rand(c, generator=g) + 0.5)
            bn.bias.copy_(torch.randn(c, generator=g) * 0.1)
            if mode == "random":
                bn.running_mean.copy_(torch.randn(c, generator=g) * 0.2)
                bn.running_var.copy_(torch.rand(c, generator=g) * 1.5 + 0.5)
    if mode == "calibrated":
        # cumulative batch statistics of seeded random inputs (train mode, momentum=None)
        saved = [bn.momentum for bn in bns]
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None
        model.train()
        x = torch.randn(calib_batch, *shape, generator=g).clamp_(-3, 3)
        with torch.no_grad():
            model(x)
        for bn, mom in zip(bns, saved):
            bn.momentum = mom
            c = bn.num_features
            with torch.no_grad():
                # perturb so that the stats are not exactly the batch's (and never zero)
                bn.running_mean.add_(torch.randn(c, generator=g) * 0.05)
                bn.running_var.mul_(torch.rand(c, generator=g) * 0.4 + 0.8).add_(1e-3)
    model.eval()
    return len(bns)


def random_inputs(count, shape, seed):
    g = torch.Generator().manual_seed(seed + 2000)
    return torch.randn(count, *shape, generator=g).clamp_(-3, 3)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", choices=sorted(ARCHS))
    ap.add_argument("--list", action="store_true", help="print the architectures and their smallest input side")
    ap.add_argument("--opset", type=int, default=onnx_export.OPSET)
    ap.add_argument("--width", type=float, default=1.0,
                    help="MobileNetV2 width multiplier (e.g. 0.35, 1.0)")
    ap.add_argument("--resolution", type=parse_resolution, default=(224, 224),
                    help="input H or HxW (default 224)")
    ap.add_argument("--out", help="ONNX file to write")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bn-stats", choices=["calibrated", "random"], default="calibrated")
    ap.add_argument("--calib-batch", type=int, default=8)
    ap.add_argument("--fuse-bn", action="store_true",
                    help="let the exporter fold BatchNormalization into Conv")
    ap.add_argument("--input-npy", help="write seeded random inputs float32 [K,3,H,W] here")
    ap.add_argument("--count", type=int, default=1, help="K for --input-npy")
    ap.add_argument("--logits-npy", help="write PyTorch float64 reference outputs for the inputs")
    ap.add_argument("--logits-dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    if a.list:
        for arch, side in ARCHS.items():
            print(arch, side)
        return
    if not a.arch or not a.out:
        ap.error("--arch and --out are required")
    if a.logits_npy and not a.input_npy:
        ap.error("--logits-npy needs --input-npy")
    if a.count < 1:
        ap.error("--count must be at least 1")

    torch.set_num_threads(a.threads)
    onnx_export.seed_everything(a.seed)
    h, w = a.resolution
    shape = (3, h, w)
    t0 = time.time()
    model = build(a.arch, a.width)
    n_bn = randomize_bn(model, a.bn_stats, a.seed, shape, a.calib_batch)
    params = sum(p.numel() for p in model.parameters())

    m = onnx_export.export_onnx(model, torch.zeros(1, *shape), a.out, keep_bn=not a.fuse_bn, opset=a.opset)
    print(f"{a.arch} width {a.width} at {h}x{w}: {params} parameters, {n_bn} BatchNorm layers "
          f"({a.bn_stats} stats), exported in {time.time() - t0:.1f} s -> {a.out} "
          f"({os.path.getsize(a.out)} bytes)")
    for line in onnx_export.describe(m):
        print("  " + line)
    print("  op types: " + " ".join(onnx_export.op_types(m)))

    if a.input_npy:
        x = random_inputs(a.count, shape, a.seed)
        onnx_export.save_npy(a.input_npy, x.numpy().astype(np.float32))
        msg = f"wrote {a.input_npy} {tuple(x.shape)} float32"
        if a.logits_npy:
            ref = model.double().eval()
            with torch.no_grad():
                y = ref(x.double()).numpy()
            onnx_export.save_npy(a.logits_npy, y.astype(a.logits_dtype))
            msg += (f", {a.logits_npy} {y.shape} {a.logits_dtype} (float64 reference; "
                    f"|logit| max {np.abs(y).max():.3g}, std {y.std():.3g})")
        print(msg)


if __name__ == "__main__":
    main()
