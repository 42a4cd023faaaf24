"""Reader for the Fashion-MNIST IDX files (gzip-compressed) shipped by Debian's
dataset-fashion-mnist package.

    images, labels = load("t10k")    # float32 [N,1,28,28] in [0,1], int64 [N]

Only numpy is needed. Every file is validated (magic number, dimensions, payload
size, label range); a problem raises FashionMnistError with the file name.
"""

import gzip
import os

import numpy as np

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
SPLITS = {"train": 60000, "t10k": 10000}
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

_IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
_LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension


class FashionMnistError(RuntimeError):
    pass


def _read_gz(path):
    if not os.path.isfile(path):
        raise FashionMnistError(
            f"{path}: not found (install Debian's dataset-fashion-mnist or pass --data-dir)")
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError) as e:
        raise FashionMnistError(f"{path}: cannot decompress: {e}") from e


def _header(path, data, magic, ndims):
    need = 4 + 4 * ndims
    if len(data) < need:
        raise FashionMnistError(f"{path}: truncated header ({len(data)} bytes)")
    got = int.from_bytes(data[0:4], "big")
    if got != magic:
        raise FashionMnistError(f"{path}: bad magic 0x{got:08x}, expected 0x{magic:08x}")
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndims)]
    return dims, need


def read_images(path):
    """uint8 [N,28,28] from an idx3-ubyte.gz file."""
    data = _read_gz(path)
    (n, rows, cols), off = _header(path, data, _IMAGES_MAGIC, 3)
    if (rows, cols) != (28, 28):
        raise FashionMnistError(f"{path}: images are {rows}x{cols}, expected 28x28")
    if len(data) - off != n * rows * cols:
        raise FashionMnistError(
            f"{path}: payload is {len(data) - off} bytes, header says {n}*{rows}*{cols}")
    return np.frombuffer(data, dtype=np.uint8, offset=off).reshape(n, rows, cols)


def read_labels(path):
    """uint8 [N] from an idx1-ubyte.gz file."""
    data = _read_gz(path)
    (n,), off = _header(path, data, _LABELS_MAGIC, 1)
    if len(data) - off != n:
        raise FashionMnistError(f"{path}: payload is {len(data) - off} bytes, header says {n}")
    labels = np.frombuffer(data, dtype=np.uint8, offset=off)
    if n and labels.max() >= len(CLASSES):
        raise FashionMnistError(f"{path}: label {int(labels.max())} out of range 0..9")
    return labels


def load(split="t10k", data_dir=DEFAULT_DIR):
    """(images float32 [N,1,28,28] in [0,1], labels int64 [N]) for split 'train' or 't10k'."""
    if split not in SPLITS:
        raise FashionMnistError(f"unknown split {split!r}; use one of {sorted(SPLITS)}")
    ipath = os.path.join(data_dir, f"{split}-images-idx3-ubyte.gz")
    lpath = os.path.join(data_dir, f"{split}-labels-idx1-ubyte.gz")
    images = read_images(ipath)
    labels = read_labels(lpath)
    if len(images) != len(labels):
        raise FashionMnistError(
            f"{split}: {len(images)} images but {len(labels)} labels")
    if len(images) != SPLITS[split]:
        raise FashionMnistError(
            f"{split}: {len(images)} examples, expected {SPLITS[split]}")
    x = (images.astype(np.float32) / np.float32(255.0)).reshape(-1, 1, 28, 28)
    return np.ascontiguousarray(x), labels.astype(np.int64)


if __name__ == "__main__":
    for s in SPLITS:
        x, y = load(s)
        print(s, x.shape, x.dtype, float(x.min()), float(x.max()), y.shape, y.dtype,
              np.bincount(y).tolist())
