"""Two parties on one machine: starts a local `heinfer serve` of the Fashion-MNIST CNN over
TLS, then runs 64 test images through it with heinfer.Client, encrypted, and compares the
predictions with the plaintext executor's.

    PYTHONPATH=build/python /usr/bin/python3 examples/remote_fashion_mnist.py [--cli build/heinfer]

The server's certificate comes from a throwaway CA made here with Debian's `openssl`, in a
temporary directory removed at the end. In a real deployment the model owner runs
`heinfer serve --tls-cert ... --tls-key ...` on its machine and gives the data owner the
CA (docs/remote_inference.md); only the address and the CA change below.
"""

import argparse
import os
import subprocess
import tempfile
import time

import numpy

import heinfer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_certificates(d):
    """A CA and a server certificate for 127.0.0.1 signed by it (2 days); returns the
    paths of the CA, the server certificate and its key."""
    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=heinfer example CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj",
            "/CN=localhost")
    with open(os.path.join(d, "san.cnf"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out",
            "server.pem", "-days", "2", "-extfile", "san.cnf")
    return [os.path.join(d, name) for name in ("ca.pem", "server.pem", "server.key")]


def start_server(cli, d, cert, key, threads):
    """`heinfer serve` of the CNN on a free port of 127.0.0.1; returns (process, address)."""
    log = open(os.path.join(d, "serve.log"), "w")
    p = subprocess.Popen([cli, "serve", "--listen", "127.0.0.1:0",
                          "--model", "cnn=" + os.path.join(ROOT, "models", "fmnist_cnn.onnx"),
                          "--calibration", "cnn=" + os.path.join(ROOT, "models", "fmnist_test64_images.npy"),
                          "--tls-cert", cert, "--tls-key", key, "--threads", str(threads),
                          # Client-aided rounds: seconds for the 64 images. The model-private
                          # default evaluates every Relu and MaxPool on the server (hours
                          # for a full batch of the CNN on two cores).
                          "--privacy", "activations"],
                         stdout=subprocess.PIPE, stderr=log, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        line = p.stdout.readline()
        if not line:
            break
        if line.startswith("listening on "):
            return p, line.split()[2]
    p.terminate()
    raise RuntimeError("heinfer serve did not start: " + open(os.path.join(d, "serve.log")).read())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cli", default=os.path.join(ROOT, "build", "heinfer"), help="the heinfer executable")
    ap.add_argument("--threads", type=int, default=2, help="the server's OpenMP threads")
    args = ap.parse_args()

    x = numpy.load(os.path.join(ROOT, "models", "fmnist_test64_images.npy"))
    labels = numpy.load(os.path.join(ROOT, "models", "fmnist_test64_labels.npy"))
    with tempfile.TemporaryDirectory(prefix="heinfer_example_") as d:
        ca, cert, key = make_certificates(d)
        server, address = start_server(args.cli, d, cert, key, args.threads)
        try:
            client = heinfer.Client(address, ca=ca)  # TLS, the server verified against the CA
            for m in client.models():
                print(f"served: {m['name']} {m['input_shape']} -> {m['output_shape']}, {m['capacity']} images per "
                      f"batch, {m['rounds']} client rounds; {m['description']}")
            y = client.infer("cnn", x, progress=None)
            s = client.last_summary
        finally:
            server.terminate()
            server.wait(30)
    plain = heinfer.load(os.path.join(ROOT, "models", "fmnist_cnn.onnx")).run(x, encrypted=False)
    print(f"{s['samples']} images in {s['seconds']:.2f} s ({s['server_seconds']:.2f} s on the server), "
          f"{s['rounds']} rounds, sent {s['bytes_sent'] / 1e6:.1f} MB, received {s['bytes_received'] / 1e6:.1f} MB")
    print(f"accuracy: remote encrypted {(y.argmax(1) == labels).mean():.1%}, "
          f"plaintext {(plain.argmax(1) == labels).mean():.1%}; "
          f"top-1 agreement {(y.argmax(1) == plain.argmax(1)).mean():.1%}, "
          f"max |logit error| {numpy.abs(y - plain).max():.2e}")


if __name__ == "__main__":
    main()
