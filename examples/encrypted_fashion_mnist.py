"""Runs the committed Fashion-MNIST CNN on 64 test images, encrypted end to end, and plots
the logits against the plaintext executor's.

    PYTHONPATH=build/python /usr/bin/python3 examples/encrypted_fashion_mnist.py [--out logits.png]

Trains nothing: the model and the images are in models/ (models/README.md).
"""

import argparse
import os

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy  # noqa: E402

import heinfer  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="logits.png", help="the plot (PNG)")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()

    model = heinfer.load(os.path.join(ROOT, "models", "fmnist_cnn.onnx"))
    x = numpy.load(os.path.join(ROOT, "models", "fmnist_test64_images.npy"))
    labels = numpy.load(os.path.join(ROOT, "models", "fmnist_test64_labels.npy"))

    encrypted = model.run(x, threads=args.threads, check=True)
    plain = model.run(x, encrypted=False, threads=args.threads)
    s = model.last_summary
    print(f"parameters: {s['parameters']}")
    print(f"{s['samples']} images in {s['seconds']:.2f} s ({s['kernels']} kernels), {s['rounds']} client rounds, "
          f"{(s['bytes_to_server'] + s['bytes_to_client']) / 1e6:.1f} MB of traffic")
    print(f"accuracy: encrypted {(encrypted.argmax(1) == labels).mean():.1%}, "
          f"plaintext {(plain.argmax(1) == labels).mean():.1%}; "
          f"top-1 agreement {s['check']['top1_agreement']:.1%}, max |logit error| {s['check']['max_abs_error']:.2e}")

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(plain.ravel(), encrypted.ravel(), s=4)
    lo, hi = float(plain.min()), float(plain.max())
    ax.plot([lo, hi], [lo, hi], linewidth=0.5, color="gray")
    ax.set_xlabel("plaintext logit")
    ax.set_ylabel("encrypted logit (RNS-CKKS)")
    ax.set_title(f"Fashion-MNIST CNN, {len(x)} images")
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
