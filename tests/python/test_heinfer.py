"""The Python package against the CLI: same results, same errors, clean interrupts.

Run by CTest (python.pytest) with PYTHONPATH=BUILD/python and HEINFER_CLI=BUILD/heinfer.
"""

import os
import signal
import subprocess
import threading

import numpy
import pytest

import heinfer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = os.path.join(ROOT, "models")
CNN = os.path.join(MODELS, "fmnist_cnn.onnx")
IMAGES = os.path.join(MODELS, "fmnist_test64_images.npy")
CLI = os.environ.get("HEINFER_CLI", os.path.join(ROOT, "build", "heinfer"))


def cli(*args):
    """Runs the CLI; returns (exit status, stdout + stderr)."""
    p = subprocess.run([CLI, *args], capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
    return p.returncode, p.stdout + p.stderr


@pytest.fixture(scope="module")
def cnn():
    return heinfer.load(CNN)


@pytest.fixture(scope="module")
def images():
    return numpy.load(IMAGES)


def test_load_reports_shapes(cnn):
    assert cnn.input_shape == (1, 28, 28)
    assert cnn.output_shape == (10,)
    assert "fmnist_cnn.onnx" in repr(cnn)


def test_plaintext_run_equals_the_cli(cnn, images, tmp_path):
    out = tmp_path / "y.npy"
    status, text = cli("run", CNN, "--input", IMAGES, "--output", str(out), "--plain", "--threads", "2")
    assert status == 0, text
    y = cnn.run(images, encrypted=False, threads=2)
    assert y.dtype == numpy.float32 and y.shape == (64, 10)
    numpy.testing.assert_array_equal(y, numpy.load(out))


def test_encrypted_run_equals_the_cli(cnn, images, tmp_path):
    out = tmp_path / "y.npy"
    status, text = cli("run", CNN, "--input", IMAGES, "--output", str(out), "--threads", "2", "--quiet")
    assert status == 0, text
    events = []
    y = cnn.run(images, threads=2, progress=False, check=True, callback=events.append)
    ref = numpy.load(out)
    assert y.dtype == numpy.float32 and y.shape == ref.shape
    # Fresh encryption noise in each run: equal within CKKS error, the same predictions.
    assert numpy.array_equal(y.argmax(1), ref.argmax(1))
    assert numpy.abs(y - ref).max() < 1e-3 * numpy.abs(ref).max()
    s = cnn.last_summary
    cli_params = next(l for l in text.splitlines() if l.startswith("parameters       "))
    assert cli_params.split(None, 1)[1] == s["parameters"], "the same plan as the CLI's"
    assert s["samples"] == 64 and s["rounds"] > 0 and s["seconds"] > 0
    assert s["bytes_to_server"] > 0 and s["bytes_to_client"] > 0
    assert s["check"]["top1_agreement"] == 1.0 and s["check"]["max_abs_error"] < 1e-2
    assert [e["index"] for e in events] == list(range(len(events))) and len(events) == len(s["layers"])
    assert events[-1]["nodes"] == len(events)


def test_float64_input_gives_the_float32_result(cnn, images):
    a = cnn.run(images, encrypted=False)
    b = cnn.run(images.astype(numpy.float64), encrypted=False)
    numpy.testing.assert_array_equal(a, b)


def cli_message(path):
    """The CLI's error for an input file, without its 'input 'PATH'' name."""
    status, text = cli("run", CNN, "--input", str(path), "--output", str(path) + ".out", "--plain")
    assert status != 0
    line = next(l for l in text.splitlines() if "input '" in l)
    return line.split(f"input '{path}'", 1)[1]


@pytest.mark.parametrize("case", ["dtype", "shape", "nan", "empty"])
def test_bad_inputs_raise_the_clis_message(cnn, images, tmp_path, case):
    x = {
        "dtype": images.astype(numpy.int64),
        "shape": images.reshape(64, 28, 28),
        "nan": numpy.where(numpy.arange(64)[:, None, None, None] == 5, numpy.nan, images).astype(numpy.float32),
        "empty": images[:0],
    }[case]
    path = tmp_path / "bad.npy"
    numpy.save(path, x)
    expected = cli_message(path)
    with pytest.raises(ValueError) as e:
        cnn.run(x, encrypted=False)
    assert isinstance(e.value, heinfer.InputError)
    assert str(e.value) == "input array" + expected


def test_non_contiguous_and_non_arrays_are_refused(cnn, images):
    with pytest.raises(ValueError, match="not C-contiguous"):
        cnn.run(numpy.asfortranarray(images), encrypted=False)
    with pytest.raises(TypeError, match="numpy.ndarray"):
        cnn.run(images.tolist())
    with pytest.raises(ValueError, match="privacy="):
        cnn.run(images, privacy="everything")
    with pytest.raises(ValueError, match="cannot read the size"):
        cnn.run(images, dram_budget="lots")


def test_missing_and_malformed_models(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        heinfer.load(str(tmp_path / "none.onnx"))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf at all")
    status, text = cli("inspect", str(bad))
    assert status != 0
    with pytest.raises(ValueError) as e:
        heinfer.load(str(bad))
    assert str(e.value) in text, "the loader's message, as the CLI prints it"


def test_callback_exception_stops_the_run(cnn, images, tmp_path):
    tier = tmp_path / "tier"
    tier.mkdir()

    def stop(event):
        if event["index"] == 2:
            raise RuntimeError("enough")

    with pytest.raises(RuntimeError, match="enough"):
        cnn.run(images, progress=False, dram_budget="64M", pmem_dir=str(tier), callback=stop)
    assert list(tier.iterdir()) == []


def test_keyboard_interrupt_stops_the_run_cleanly(cnn, images, tmp_path):
    tier = tmp_path / "tier"
    tier.mkdir()
    started = threading.Event()
    events = []

    def layer(event):
        events.append(event)
        if event["index"] == 0:
            started.set()

    timer = threading.Thread(target=lambda: started.wait(120) and os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        cnn.run(images, progress=False, dram_budget="64M", pmem_dir=str(tier), callback=layer)
    timer.join()
    assert started.is_set()
    assert len(events) < events[0]["nodes"], "the run was not interrupted before its end"
    assert list(tier.iterdir()) == [], "the tier file outlived the interrupted run"
    assert not [p for p in tmp_path.iterdir() if p.name != "tier"], "temporary files left"


def test_inspect_equals_the_clis_json(cnn, tmp_path):
    out = tmp_path / "p.json"
    status, text = cli("inspect", CNN, "--batch", "64", "--no-time", "--json", str(out))
    assert status == 0, text
    import json
    ref = json.loads(out.read_text())
    got = cnn.inspect(64, time=False)
    assert got["params"] == ref["params"] and got["memory"] == ref["memory"]
    assert [l["ciphertexts"] for l in got["layers"]] == [l["ciphertexts"] for l in ref["layers"]]
    assert got["time"] is None
    assert cnn.inspect(time=False)["batch"] == ref["params"]["capacity"]
    with pytest.raises(ValueError, match="resolution"):
        cnn.inspect(64, resolution="big", time=False)


def test_model_private_run_matches_the_plaintext_model(tmp_path):
    # privacy="model": the Relu evaluated on the server as a polynomial, the in-process
    # client only refreshing masked ciphertexts; the outputs are the model's within the
    # approximation's error (η = 2^-7 of its bound).
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = numpy.random.default_rng(5)
    w1 = numpy_helper.from_array(rng.normal(size=(6, 4)).astype(numpy.float32) / 2, "w1")
    w2 = numpy_helper.from_array(rng.normal(size=(4, 3)).astype(numpy.float32) / 2, "w2")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("MatMul", ["r", "w2"], ["y"])],
        "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], [w1, w2])
    path = tmp_path / "tiny.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    m = heinfer.load(str(path))
    x = rng.normal(size=(16, 6)).astype(numpy.float32)
    y = m.run(x, privacy="model", threads=2, progress=False)
    ref = m.run(x, encrypted=False)
    assert "privacy=model" in m.last_summary["parameters"]
    assert m.last_summary["rounds"] > 0
    assert numpy.abs(y - ref).max() < 3e-2 * (1 + numpy.abs(ref).max())
