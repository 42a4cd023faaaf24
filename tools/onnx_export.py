"""Shared helpers for the export tools: ONNX export with a symbolic batch dimension,
checking, op listing, atomic writes, sha256.

Exports keep BatchNormalization nodes visible by default. torch 1.13 runs its
`eval_peephole` pass (which fuses Conv+BatchNormalization into the Conv) whenever
`training=TrainingMode.EVAL`, whatever `do_constant_folding` says; the only way to
keep BN in the graph is `training=TrainingMode.PRESERVE` with the model in eval mode,
which exports exactly the same inference-mode graph minus that fusion.
"""

import hashlib
import json
import os
import tempfile
import warnings

import numpy as np
import onnx
import torch
import torch.nn as nn

OPSET = 13


def _tmp_in(path, suffix):
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=d)
    os.close(fd)
    return tmp


def _publish(tmp, path):
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def export_onnx(model, example, path, keep_bn=True, constant_folding=True, opset=OPSET):
    """Export `model` (put in eval mode) to `path` (opset `opset`, input `input`,
    output `logits`, dim 0 of both symbolic `batch`), check it, return the ModelProto."""
    model.eval()
    has_bn = any(isinstance(mod, nn.modules.batchnorm._BatchNorm) for mod in model.modules())
    preserve = keep_bn and has_bn
    mode = torch.onnx.TrainingMode.PRESERVE if preserve else torch.onnx.TrainingMode.EVAL
    tmp = _tmp_in(path, ".onnx")
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # PRESERVE with an eval-mode model exports the inference graph; the warning
            # about constant folding concerns models exported in training mode.
            warnings.filterwarnings("ignore", message="It is recommended that constant folding")
            torch.onnx.export(
                model, example, tmp,
                export_params=True,
                opset_version=opset,
                do_constant_folding=constant_folding,
                training=mode,
                input_names=["input"],
                output_names=["logits"],
                dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            )
        m = onnx.load(tmp)
        onnx.checker.check_model(m, full_check=True)
        _publish(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return m


def op_types(m):
    """Sorted list of the op types of the main graph."""
    return sorted({n.op_type for n in m.graph.node})


def op_counts(m):
    c = {}
    for n in m.graph.node:
        c[n.op_type] = c.get(n.op_type, 0) + 1
    return dict(sorted(c.items()))


def describe(m):
    """Lines describing the graph interface and anything an importer should note."""
    def dims(vi):
        return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]
    out = [f"opset {[(o.domain or 'ai.onnx', o.version) for o in m.opset_import]}, "
           f"ir_version {m.ir_version}, producer {m.producer_name} {m.producer_version}",
           "inputs " + ", ".join(f"{i.name}{dims(i)}" for i in m.graph.input),
           "outputs " + ", ".join(f"{o.name}{dims(o)}" for o in m.graph.output),
           f"{len(m.graph.node)} nodes, {len(m.graph.initializer)} initializers: {op_counts(m)}"]
    return out


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_npy(path, array):
    tmp = _tmp_in(path, ".npy")
    try:
        with open(tmp, "wb") as f:
            np.save(f, np.ascontiguousarray(array), allow_pickle=False)
        _publish(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_json(path, obj):
    tmp = _tmp_in(path, ".json")
    try:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True)
            f.write("\n")
        _publish(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def seed_everything(seed):
    import random
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
