#!/usr/bin/python3
"""Independent float64 numpy interpreter for the ONNX op subset heinfer uses.

    /usr/bin/python3 tools/onnx_ref.py MODEL.onnx --input X.npy [--output Y.npy]
        [--compare REF.npy] [--labels L.npy] [--batch 500]

Runs the exported graph itself (not the PyTorch module), so it checks an export end to
end: --compare prints the max |difference| from reference logits, --labels the
accuracy. Ops: Conv (groups, pads, strides, dilations), BatchNormalization, Relu, Clip,
MaxPool, AveragePool, GlobalAveragePool, Flatten, Reshape, Gemm, MatMul, Add, Sub, Mul,
Div, Pow, Pad (constant), Constant, Identity, Dropout, Softmax.
"""

import argparse
import sys

import numpy as np
import onnx
from onnx import numpy_helper


def _attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _pad_spatial(x, pads, value=0.0):
    k = len(pads) // 2
    if not any(pads):
        return x
    width = [(0, 0)] * (x.ndim - k) + [(pads[i], pads[i + k]) for i in range(k)]
    return np.pad(x, width, mode="constant", constant_values=value)


def _out_size(n, k, s, d, ceil_mode=False):
    eff = d * (k - 1) + 1
    if ceil_mode:
        o = -(-(n - eff) // s) + 1
        if (o - 1) * s >= n:  # last window must start inside the (left-padded) input
            o -= 1
        return o
    return (n - eff) // s + 1


def _windows(xp, kh, kw, sh, sw, dh, dw, oh, ow):
    """yield (ky, kx, view [N,C,oh,ow]) for each kernel offset."""
    for ky in range(kh):
        for kx in range(kw):
            y0, x0 = ky * dh, kx * dw
            yield ky, kx, xp[:, :, y0:y0 + sh * (oh - 1) + 1:sh, x0:x0 + sw * (ow - 1) + 1:sw]


def conv(x, w, b, a):
    g = a.get("group", 1)
    kh, kw = w.shape[2:]
    sh, sw = a.get("strides", [1, 1])
    dh, dw = a.get("dilations", [1, 1])
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise NotImplementedError("Conv auto_pad")
    xp = _pad_spatial(x, a.get("pads", [0, 0, 0, 0]))
    n, c, h, wd = xp.shape
    oh, ow = _out_size(h, kh, sh, dh), _out_size(wd, kw, sw, dw)
    co = w.shape[0]
    wg = w.reshape(g, co // g, c // g, kh, kw)
    out = np.zeros((n, g, co // g, oh, ow))
    for ky, kx, v in _windows(xp, kh, kw, sh, sw, dh, dw, oh, ow):
        out += np.einsum("ngchw,goc->ngohw", v.reshape(n, g, c // g, oh, ow), wg[:, :, :, ky, kx],
                         optimize=True)
    out = out.reshape(n, co, oh, ow)
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out


def pool(x, a, kind):
    kh, kw = a["kernel_shape"]
    sh, sw = a.get("strides", [1, 1])
    dh, dw = a.get("dilations", [1, 1])
    pads = list(a.get("pads", [0, 0, 0, 0]))
    ceil_mode = bool(a.get("ceil_mode", 0))
    n, c, h, wd = x.shape
    oh = _out_size(h + pads[0] + pads[2], kh, sh, dh, ceil_mode)
    ow = _out_size(wd + pads[1] + pads[3], kw, sw, dw, ceil_mode)
    # extra bottom/right padding that ceil_mode windows may reach
    need_h = (oh - 1) * sh + dh * (kh - 1) + 1 - (h + pads[0] + pads[2])
    need_w = (ow - 1) * sw + dw * (kw - 1) + 1 - (wd + pads[1] + pads[3])
    full = [pads[0], pads[1], pads[2] + max(0, need_h), pads[3] + max(0, need_w)]
    if kind == "max":
        xp = _pad_spatial(x, full, -np.inf)
        out = np.full((n, c, oh, ow), -np.inf)
        for _, _, v in _windows(xp, kh, kw, sh, sw, dh, dw, oh, ow):
            np.maximum(out, v, out=out)
        return out
    xp = _pad_spatial(x, full, 0.0)
    # count: padded cells count only if count_include_pad (ceil_mode overhang never counts)
    ones = np.ones((1, 1, h, wd))
    if a.get("count_include_pad", 0):
        ones = _pad_spatial(ones, pads, 1.0)
        ones = _pad_spatial(ones, [0, 0, max(0, need_h), max(0, need_w)], 0.0)
    else:
        ones = _pad_spatial(ones, full, 0.0)
    out = np.zeros((n, c, oh, ow))
    cnt = np.zeros((1, 1, oh, ow))
    for ky, kx, v in _windows(xp, kh, kw, sh, sw, dh, dw, oh, ow):
        out += v
    for _, _, v in _windows(ones, kh, kw, sh, sw, dh, dw, oh, ow):
        cnt += v
    return out / cnt


def run(model, x):
    env = {t.name: numpy_helper.to_array(t).astype(np.float64)
           if numpy_helper.to_array(t).dtype.kind == "f" else numpy_helper.to_array(t)
           for t in model.graph.initializer}
    init_names = set(env)
    real_inputs = [i.name for i in model.graph.input if i.name not in init_names]
    if len(real_inputs) != 1:
        raise NotImplementedError(f"expected one graph input, got {real_inputs}")
    env[real_inputs[0]] = x.astype(np.float64)

    def get(name):
        return env[name] if name else None

    for node in model.graph.node:
        op, a = node.op_type, _attrs(node)
        ins = [get(i) for i in node.input]
        if op == "Constant":
            v = numpy_helper.to_array(a["value"]) if "value" in a else None
            if v is None:
                raise NotImplementedError(f"Constant without tensor value: {list(a)}")
            y = v.astype(np.float64) if v.dtype.kind == "f" else v
        elif op == "Conv":
            y = conv(ins[0], ins[1], ins[2] if len(ins) > 2 else None, a)
        elif op == "BatchNormalization":
            xx, s, bb, m, v = ins
            sh = (1, -1) + (1,) * (xx.ndim - 2)
            y = (xx - m.reshape(sh)) / np.sqrt(v.reshape(sh) + a.get("epsilon", 1e-5)) \
                * s.reshape(sh) + bb.reshape(sh)
        elif op == "Relu":
            y = np.maximum(ins[0], 0)
        elif op == "Clip":
            lo = ins[1] if len(ins) > 1 and ins[1] is not None else -np.inf
            hi = ins[2] if len(ins) > 2 and ins[2] is not None else np.inf
            y = np.clip(ins[0], lo, hi)
        elif op == "MaxPool":
            if len(node.output) > 1 and node.output[1]:
                raise NotImplementedError("MaxPool Indices output")
            y = pool(ins[0], a, "max")
        elif op == "AveragePool":
            y = pool(ins[0], a, "avg")
        elif op == "GlobalAveragePool":
            y = ins[0].mean(axis=tuple(range(2, ins[0].ndim)), keepdims=True)
        elif op == "Flatten":
            ax = a.get("axis", 1)
            ax = ax + ins[0].ndim if ax < 0 else ax
            y = ins[0].reshape(int(np.prod(ins[0].shape[:ax])), -1)
        elif op == "Reshape":
            shape = [int(s) for s in ins[1]]
            shape = [ins[0].shape[i] if s == 0 and not a.get("allowzero", 0) else s
                     for i, s in enumerate(shape)]
            y = ins[0].reshape(shape)
        elif op == "Gemm":
            A = ins[0].T if a.get("transA", 0) else ins[0]
            B = ins[1].T if a.get("transB", 0) else ins[1]
            y = a.get("alpha", 1.0) * (A @ B)
            if len(ins) > 2 and ins[2] is not None:
                y = y + a.get("beta", 1.0) * ins[2]
        elif op == "MatMul":
            y = ins[0] @ ins[1]
        elif op in ("Add", "Sub", "Mul", "Div", "Pow"):
            f = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide,
                 "Pow": np.power}[op]
            y = f(ins[0], ins[1])
        elif op == "Pad":
            mode = a.get("mode", b"constant")
            if mode not in (b"constant", "constant"):
                raise NotImplementedError(f"Pad mode {mode}")
            pads = [int(p) for p in ins[1]]
            val = float(ins[2]) if len(ins) > 2 and ins[2] is not None else 0.0
            r = ins[0].ndim
            if any(p < 0 for p in pads):
                raise NotImplementedError("negative Pad")
            y = np.pad(ins[0], [(pads[i], pads[i + r]) for i in range(r)],
                       mode="constant", constant_values=val)
        elif op in ("Identity", "Dropout"):
            y = ins[0]
        elif op == "Softmax":
            ax = a.get("axis", -1)
            e = np.exp(ins[0] - ins[0].max(axis=ax, keepdims=True))
            y = e / e.sum(axis=ax, keepdims=True)
        else:
            raise NotImplementedError(f"op {op} ({node.name})")
        env[node.output[0]] = y
    return env[model.graph.output[0].name]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--input", required=True)
    ap.add_argument("--output")
    ap.add_argument("--compare", help="reference outputs (.npy) to compare with")
    ap.add_argument("--labels", help="int labels (.npy) for accuracy")
    ap.add_argument("--batch", type=int, default=500)
    a = ap.parse_args(argv)

    model = onnx.load(a.model)
    onnx.checker.check_model(model)
    x = np.load(a.input)
    outs = [run(model, x[i:i + a.batch]) for i in range(0, len(x), a.batch)]
    y = np.concatenate(outs)
    print(f"{a.model}: {x.shape} -> {y.shape}, |y| max {np.abs(y).max():.4g}")
    rc = 0
    if a.output:
        np.save(a.output, y.astype(np.float32))
    if a.compare:
        ref = np.load(a.compare)
        if ref.shape != y.shape:
            print(f"shape mismatch: reference {ref.shape}, ours {y.shape}")
            return 1
        diff = np.abs(ref.astype(np.float64) - y)
        rel = diff.max() / max(np.abs(ref).max(), 1e-30)
        same = int((ref.argmax(-1) == y.argmax(-1)).sum()) if y.ndim == 2 else -1
        print(f"vs {a.compare}: max |diff| {diff.max():.3g} (relative {rel:.3g}), "
              f"argmax agrees on {same}/{len(y)}")
        rc = 0 if rel < 1e-4 else 1
    if a.labels:
        lab = np.load(a.labels)
        correct = int((y.argmax(-1) == lab[:len(y)]).sum())
        print(f"accuracy {correct / len(y):.4f} ({correct}/{len(y)})")
    return rc


if __name__ == "__main__":
    sys.exit(main())
