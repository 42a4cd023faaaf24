#!/usr/bin/python3
"""Write a slice of the Fashion-MNIST test set as .npy files for `heinfer run`.

    /usr/bin/python3 tools/prepare_fashion_mnist.py --out DIR [--count K] [--offset O]

Writes DIR/fmnist_test_images.npy (float32 [K,1,28,28], C order, values in [0,1])
and DIR/fmnist_test_labels.npy (int64 [K]); each file is written to a temporary
name in DIR and renamed into place.
"""

import argparse
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fashion_mnist  # noqa: E402


def save_npy_atomic(path, array):
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npy", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="output folder (created if missing)")
    ap.add_argument("--count", type=int, default=None, help="number of images (default: all)")
    ap.add_argument("--offset", type=int, default=0, help="index of the first test image")
    ap.add_argument("--data-dir", default=fashion_mnist.DEFAULT_DIR)
    ap.add_argument("--prefix", default="fmnist_test",
                    help="file name prefix (default fmnist_test)")
    a = ap.parse_args(argv)

    try:
        x, y = fashion_mnist.load("t10k", a.data_dir)
    except fashion_mnist.FashionMnistError as e:
        ap.exit(2, f"error: {e}\n")
    n = len(x)
    count = n - a.offset if a.count is None else a.count
    if a.offset < 0 or a.offset >= n:
        ap.error(f"--offset must be in 0..{n - 1}")
    if count <= 0 or a.offset + count > n:
        ap.error(f"--count must be in 1..{n - a.offset} for --offset {a.offset}")

    xs = np.ascontiguousarray(x[a.offset:a.offset + count], dtype=np.float32)
    ys = np.ascontiguousarray(y[a.offset:a.offset + count], dtype=np.int64)
    os.makedirs(a.out, exist_ok=True)
    ip = os.path.join(a.out, f"{a.prefix}_images.npy")
    lp = os.path.join(a.out, f"{a.prefix}_labels.npy")
    save_npy_atomic(ip, xs)
    save_npy_atomic(lp, ys)
    print(f"wrote {ip} {xs.shape} {xs.dtype} and {lp} {ys.shape} {ys.dtype} "
          f"(test images {a.offset}..{a.offset + count - 1})")


if __name__ == "__main__":
    main()
