"""heinfer.Client against a real `heinfer serve` on 127.0.0.1 with TLS."""

import json
import os
import signal
import subprocess
import threading
import time

import numpy
import pytest

import heinfer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = os.path.join(ROOT, "models")
CLI = os.environ.get("HEINFER_CLI", os.path.join(ROOT, "build", "heinfer"))


serve_lines = []  # [the list of the running server's stdout lines]


def openssl(cwd, *args):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`heinfer serve` of the Fashion-MNIST CNN over TLS (a fresh CA and a certificate for
    127.0.0.1); yields (address, CA path, directory)."""
    d = tmp_path_factory.mktemp("serve")
    openssl(d, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=ca")
    openssl(d, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj",
            "/CN=localhost")
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl(d, "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out",
            "server.pem", "-days", "2", "-extfile", "ext.cnf")
    openssl(d, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other.key", "-out", "other.pem", "-days",
            "2", "-subj", "/CN=other")
    log = open(d / "serve.log", "w")
    # Per-window masks: these tests exercise the Python client (sessions, Ctrl-C, TLS), not
    # the masks; serve's per-sample default costs ~1.7x per batch and is tested in C++
    # (RemoteTest.PerSampleMasksMatchEmbeddedRun) and by the example below.
    p = subprocess.Popen([CLI, "serve", "--listen", "127.0.0.1:0", "--model",
                          "cnn=" + os.path.join(MODELS, "fmnist_cnn.onnx"), "--calibration",
                          "cnn=" + os.path.join(MODELS, "fmnist_test64_images.npy"), "--tls-cert",
                          str(d / "server.pem"), "--tls-key", str(d / "server.key"), "--threads", "2",
                          "--privacy", "activations", "--round-masks", "per-window"],
                         stdout=subprocess.PIPE, stderr=log, text=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
    try:
        address = None
        deadline = time.time() + 120
        while time.time() < deadline and address is None:
            line = p.stdout.readline()
            if not line:
                break
            if line.startswith("listening on "):
                address = line.split()[2]
        assert address, (d / "serve.log").read_text()
        lines = []  # the server's stdout from now on (session opened / closed / dropped)
        threading.Thread(target=lambda: lines.extend(iter(p.stdout.readline, "")), daemon=True).start()
        serve_lines[:] = [lines]
        yield address, str(d / "ca.pem"), d
    finally:
        p.terminate()
        p.wait(30)


def test_remote_inference_over_tls(server):
    address, ca, _ = server
    x = numpy.load(os.path.join(MODELS, "fmnist_test64_images.npy"))
    client = heinfer.Client(address, ca=ca)
    lines = []
    y = client.infer("cnn", x, progress=lines.append)
    plain = heinfer.load(os.path.join(MODELS, "fmnist_cnn.onnx")).run(x, encrypted=False)
    assert y.dtype == numpy.float32 and y.shape == (64, 10)
    assert numpy.array_equal(y.argmax(1), plain.argmax(1))
    assert numpy.abs(y - plain).max() < 1e-2 * numpy.abs(plain).max()
    s = client.last_summary
    assert s["samples"] == 64 and s["rounds"] > 0 and s["bytes_sent"] > 0 and s["bytes_received"] > 0
    assert lines, "progress lines"


def test_remote_errors(server):
    address, _, d = server
    x = numpy.load(os.path.join(MODELS, "fmnist_test64_images.npy"))
    with pytest.raises(RuntimeError):  # a server certificate from another CA: the TLS handshake fails
        heinfer.Client(address, ca=str(d / "other.pem"), timeout=5).infer("cnn", x)
    client = heinfer.Client(address, ca=str(d / "ca.pem"))
    with pytest.raises(RuntimeError, match="nonexistent"):
        client.infer("nonexistent", x)
    with pytest.raises(ValueError, match="NaN"):
        client.infer("cnn", numpy.full_like(x, numpy.nan))
    with pytest.raises(FileNotFoundError):
        heinfer.Client(address, ca=str(d / "missing.pem"))


def test_no_key_material_reaches_python():
    """The package binds no key object: nothing named like one, and its objects do not pickle."""
    import pickle

    names = [n.lower() for n in dir(heinfer._heinfer)]
    for cls in ("Model", "ClientOptions"):
        names += [n.lower() for n in dir(getattr(heinfer._heinfer, cls))]
    assert not [n for n in names if "secret" in n or n in ("keys", "secret_key", "relin_key")]
    with pytest.raises(TypeError):
        pickle.dumps(heinfer.load(os.path.join(MODELS, "fmnist_cnn.onnx"))._m)
    with pytest.raises(TypeError):
        pickle.dumps(heinfer._heinfer.ClientOptions())


def test_models_lists_what_the_server_serves(server):
    address, ca, _ = server
    models = heinfer.Client(address, ca=ca).models()
    assert [m["name"] for m in models] == ["cnn"]
    m = models[0]
    assert m["input_shape"] == (1, 28, 28) and m["output_shape"] == (10,)
    assert m["refused"] is None and m["rounds"] > 0 and m["capacity"] >= 1
    assert m["poly_modulus_degree"] in (4096, 8192, 16384) and 0 < m["modulus_bits"] <= 438
    # The CLI's `client --list --json` gives the same.
    out = subprocess.run([CLI, "client", "--list", "--json", "--server", address, "--tls-ca", ca], check=True,
                         capture_output=True, text=True).stdout
    cli = [json.loads(line) for line in out.splitlines()]
    assert [c["model"] for c in cli] == ["cnn"]
    assert cli[0]["capacity"] == m["capacity"] and cli[0]["description"] == m["description"]
    assert tuple(cli[0]["input_shape"]) == m["input_shape"] and cli[0]["refused"] == ""


def test_keyboard_interrupt_cancels_remote_inference(server):
    """Ctrl-C while the client waits in a round: KeyboardInterrupt within a second, and the
    server drops the session (its memory is freed) without being asked twice."""
    address, ca, _ = server
    x = numpy.load(os.path.join(MODELS, "fmnist_test64_images.npy"))
    x = numpy.ascontiguousarray(numpy.concatenate([x] * 32))  # 2,048 images: a few seconds
    client = heinfer.Client(address, ca=ca)
    sent = []

    def progress(line):
        if "round" in line and not sent:  # mid-run, the server computing the next layer
            sent.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGINT)

    lines = serve_lines[0]
    opened_before = sum("opened" in line for line in lines)
    with pytest.raises(KeyboardInterrupt):
        client.infer("cnn", x, progress=progress)
    assert sent, "the run ended before a round"
    assert time.monotonic() - sent[0] < 1.0
    deadline = time.time() + 10
    while time.time() < deadline:
        opened = [line.split()[1] for line in lines if " opened " in line]
        ended = [line.split()[1] for line in lines if " closed" in line or " dropped" in line]
        if len(opened) > opened_before and opened[-1] in ended:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the server did not free the interrupted session: " + "".join(lines[-5:]))
    # The server serves the next call.
    y = client.infer("cnn", x[:64])
    assert y.shape == (64, 10)



def test_remote_example_runs():
    """examples/remote_fashion_mnist.py end to end: its own server, TLS, 64 images."""
    out = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "examples", "remote_fashion_mnist.py"), "--cli", CLI],
                         check=True, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "OMP_NUM_THREADS": "2"}).stdout
    assert "served: cnn (1, 28, 28) -> (10,)" in out, out
    assert "top-1 agreement 100.0%" in out, out


def test_session_runs_several_inputs_with_one_set_of_keys(server):
    address, ca, _ = server
    x = numpy.load(os.path.join(MODELS, "fmnist_test64_images.npy"))
    plain = heinfer.load(os.path.join(MODELS, "fmnist_cnn.onnx")).run(x, encrypted=False)
    lines = serve_lines[0]
    opened_before = sum(" opened " in line for line in lines)
    with heinfer.Client(address, ca=ca).session("cnn") as s:
        assert s.is_open and s.input_shape == (1, 28, 28) and s.output_shape == (10,)
        y1 = s.infer(x[:40])
        with pytest.raises(ValueError, match="planned input range"):  # refused before sending: still open
            s.infer(numpy.full_like(x[:2], 1e9))
        y2 = s.infer(x[40:])
        assert s.last_summary["samples"] == 24
    assert not s.is_open
    assert numpy.array_equal(numpy.concatenate([y1, y2]).argmax(1), plain.argmax(1))
    with pytest.raises(RuntimeError, match="closed"):
        s.infer(x[:1])
    deadline = time.time() + 10
    while time.time() < deadline and not any(" closed" in line for line in lines[-3:]):
        time.sleep(0.1)
    assert sum(" opened " in line for line in lines) == opened_before + 1, "one session for both inputs"
    assert " closed" in "".join(lines[-3:])
