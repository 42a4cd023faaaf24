#!/usr/bin/python3
"""Export small models that use the idioms PyTorch writes into ONNX graphs.

    /usr/bin/python3 tools/export_idioms.py --idiom view --out /tmp/view.onnx [--opset 13] \\
        [--input-npy X.npy --count K --logits-npy Y.npy] [--seed 0]
    /usr/bin/python3 tools/export_idioms.py --list

Each idiom is a few layers around the construct as users write it, exported with the
symbolic batch (input `input` [batch,3,8,8], output `logits`): the importer must evaluate
the shape arithmetic the exporter emits (Shape, Gather, Unsqueeze, Concat, ConstantOfShape,
Slice, Where, ...) at load time and run the data movement and activations on the data.
    view     x.view(x.size(0), -1) before a Linear
    pad      F.pad(x, (1, 1, 1, 1)) before a Conv (the exporter's ConstantOfShape idiom)
    silu     F.silu, torch.sigmoid gating and tanh
    shuffle  ShuffleNet's channel shuffle (view / transpose / view), chunk, cat, mean
    refl     ReflectionPad2d and ReplicationPad2d
    hswish   Hardswish and a squeeze-and-excitation gate with Hardsigmoid
    upsample F.interpolate: nearest by a scale factor, bilinear to a size (Resize)
    gelu     GELU in the exact (Erf) form and a Softplus
Outputs: float32 inputs and float64 PyTorch reference outputs for --count samples.
"""

import argparse
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import onnx_export  # noqa: E402


class View(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4 * 6 * 6, 5)

    def forward(self, x):
        y = self.conv(x)
        return self.fc(y.view(y.size(0), -1))


class Pad(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return self.conv(F.pad(x, (1, 1, 1, 1)))


class Silu(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        y = self.conv(x)
        return F.silu(y) + torch.sigmoid(y) * torch.tanh(y)


class Shuffle(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        y = self.conv(x)
        b, c, h, w = y.size()
        y = y.view(b, 2, c // 2, h, w).transpose(1, 2).contiguous().view(b, -1, h, w)
        first, second = y.chunk(2, dim=1)
        return torch.cat([first * 2, second], 1).mean([2, 3])


class Reflect(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.reflect = nn.ReflectionPad2d(1)
        self.replicate = nn.ReplicationPad2d(2)

    def forward(self, x):
        return self.replicate(self.reflect(self.conv(x))).flatten(1)


class HardSwish(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc1 = nn.Conv2d(4, 2, 1)
        self.fc2 = nn.Conv2d(2, 4, 1)

    def forward(self, x):
        y = F.hardswish(self.conv(x))
        s = F.hardsigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(y, 1)))))
        return y * s


class Upsample(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.head = nn.Conv2d(4, 2, 3)

    def forward(self, x):
        y = F.interpolate(self.conv(x), scale_factor=2, mode="nearest")
        y = F.interpolate(y, size=(9, 7), mode="bilinear", align_corners=False)
        return self.head(y).flatten(1)


class Gelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4 * 6 * 6, 5)

    def forward(self, x):
        y = F.gelu(self.conv(x))
        return F.softplus(self.fc(y.flatten(1)))


IDIOMS = {"view": View, "pad": Pad, "silu": Silu, "shuffle": Shuffle, "refl": Reflect, "hswish": HardSwish,
          "upsample": Upsample, "gelu": Gelu}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--idiom", choices=sorted(IDIOMS))
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--out")
    ap.add_argument("--opset", type=int, default=onnx_export.OPSET)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--input-npy")
    ap.add_argument("--count", type=int, default=3)
    ap.add_argument("--logits-npy")
    a = ap.parse_args(argv)
    if a.list:
        print("\n".join(IDIOMS))
        return
    if not a.idiom or not a.out:
        ap.error("--idiom and --out are required")
    if a.logits_npy and not a.input_npy:
        ap.error("--logits-npy needs --input-npy")
    torch.set_num_threads(1)
    onnx_export.seed_everything(a.seed)
    model = IDIOMS[a.idiom]().eval()
    onnx_export.export_onnx(model, torch.zeros(1, 3, 8, 8), a.out, opset=a.opset)
    if a.input_npy:
        g = torch.Generator().manual_seed(a.seed + 2000)
        x = torch.randn(a.count, 3, 8, 8, generator=g)
        onnx_export.save_npy(a.input_npy, x.numpy().astype(np.float32))
        if a.logits_npy:
            with torch.no_grad():
                y = model.double()(x.double()).numpy()
            onnx_export.save_npy(a.logits_npy, y)


if __name__ == "__main__":
    main()
