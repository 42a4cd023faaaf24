"""heinfer: private inference of ONNX models on RNS-CKKS encrypted data, from Python.

    import numpy, heinfer
    model = heinfer.load("models/fmnist_cnn.onnx")
    x = numpy.load("models/fmnist_test64_images.npy")     # float32 [N, 1, 28, 28]
    y = model.run(x)                                       # float32 [N, 10], encrypted end to end
    model.last_summary["seconds"], model.last_summary["rounds"]

The client (this process) holds the secret key: it calibrates the ranges on the batch,
chooses 128-bit parameters, encrypts, answers the server's masked rounds and decrypts,
as `heinfer run` does (the same code: heinfer's session layer). Keys never become
Python objects.
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import Any, Callable, List, Optional, Union

import numpy

from . import _heinfer

__all__ = ["load", "Model", "Client", "Session", "InputError"]

InputError = _heinfer.InputError

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B?)\s*$", re.IGNORECASE)


def _bytes(size: Union[int, str, None], name: str) -> int:
    """Bytes of a size given as an int or as the CLI writes it ("16G", "512MiB"; K = 1024)."""
    if size is None:
        return 0
    if isinstance(size, bool) or not isinstance(size, (int, str)):
        raise TypeError(f"{name} must be an int (bytes) or a string such as '16G', not {type(size).__name__}")
    if isinstance(size, int):
        if size < 0:
            raise ValueError(f"{name} must be >= 0 bytes")
        return size
    m = _SIZE.match(size)
    if not m:
        raise ValueError(f"{name}: cannot read the size '{size}' (e.g. 16G, 512MiB, 1048576)")
    scale = 1024 ** " KMGT".index(m.group(2).upper() or " ")
    return int(float(m.group(1)) * scale)


def _progress_bar(total: int, enabled: bool):
    """A tqdm bar over the layers when tqdm is installed and `enabled`; else None."""
    if not enabled:
        return None
    try:
        from tqdm import tqdm  # Debian: python3-tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="layer", desc="heinfer")


class Model:
    """An ONNX model loaded by heinfer (one input, one output).

    Attributes:
        path: the model file.
        input_shape: the per-sample input shape (tuple, e.g. (1, 28, 28)).
        output_shape: the per-sample output shape (tuple, e.g. (10,)).
        last_summary: the summary of the last encrypted run (dict; see `run`), or None.
    """

    def __init__(self, handle: Any):
        self._m = handle
        self.last_summary: Optional[dict] = None

    @property
    def path(self) -> str:
        return self._m.path

    @property
    def input_shape(self) -> tuple:
        return self._m.input_shape

    @property
    def output_shape(self) -> tuple:
        return self._m.output_shape

    def __repr__(self) -> str:
        return f"heinfer.Model({self.path!r}, input {self.input_shape}, output {self.output_shape})"

    def inspect(
        self,
        batch: Optional[int] = None,
        resolution: Union[int, str, None] = None,
        *,
        time: bool = True,
        threads: Optional[int] = None,
        limb_words: int = 64,
        round_masks: str = "per-window",
    ) -> dict:
        """Predicts an encrypted run without data, as `heinfer inspect --batch B --json`.

        batch: samples (None: one encrypted batch, the parameters' capacity).
        resolution: replaces the input's spatial dims: 224 or "224x224" (image models).
        time: also predict the time (a few seconds of cost calibration); False: memory only.
        limb_words: 32 or 64, the stored ciphertext words the memory figures assume.

        Returns a dict: "params" (n, coeff_bits, scale_bits, levels, packing, capacity),
        "memory" (bytes: peak_bytes and peak_streamed_bytes with their nodes, key and
        weight bytes), "layers" (per node: kind, ciphertexts, level, bytes, seconds),
        "time" (seconds: batch_seconds, total_seconds; None when time=False), "ranges".
        Raises ValueError for a bad resolution or batch, or when no parameters fit.
        """
        if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
            raise ValueError("batch must be an int >= 1")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 0):
            raise ValueError("threads must be an int >= 0")
        text = _heinfer._inspect(self._m, batch or 1, "" if resolution is None else str(resolution), threads or 0,
                                 time, limb_words, round_masks)
        prediction = json.loads(text)
        if batch is None:
            prediction["batch"] = prediction["params"]["capacity"]
        return prediction

    def run(
        self,
        x: numpy.ndarray,
        *,
        encrypted: bool = True,
        privacy: str = "activations",
        dram_budget: Union[int, str, None] = None,
        pmem_dir: Optional[str] = None,
        threads: Optional[int] = None,
        progress: bool = True,
        check: bool = False,
        limb_words: str = "auto",
        round_masks: str = "per-window",
        batch: Optional[int] = None,
        callback: Optional[Callable[[dict], None]] = None,
    ) -> numpy.ndarray:
        """Runs the model on a batch; returns float32 outputs of shape [N, *output_shape].

        x: float32 or float64, C-contiguous, shape [N, *input_shape], finite.
        encrypted: False runs the plaintext float64 reference executor instead.
        privacy: "activations" (client-aided rounds on masked activations: fast, the client
            sees masked pre-activations) or "model" (Relu, Clip, LeakyRelu and MaxPool
            evaluated homomorphically, the client only refreshes uniformly masked
            ciphertexts: about 0.2 s per activation element and batch on two cores);
            docs/security.md.
        dram_budget: bytes of ciphertexts kept in DRAM (int, or "16G"); beyond it they go to
            pmem_dir (a directory on persistent memory or an SSD), or the run stops.
        threads: OpenMP threads (None: the default).
        progress: a tqdm bar over the layers when tqdm is installed (silent otherwise).
        check: also keep the plaintext executor's outputs and report the top-1 agreement
            and largest |logit error| in last_summary["check"].
        limb_words: "32", "64" or "auto" (32 under a DRAM budget): stored ciphertext words.
        round_masks: "per-window" or "per-sample" (docs/security.md).
        batch: samples per encrypted batch (None: one ciphertext's slots).
        callback: called after every layer with a dict (index, nodes, name, op, seconds,
            ciphertexts, level, dram_bytes, tier_bytes); an exception it raises stops the
            run and is re-raised.

        Raises ValueError (heinfer.InputError for the input array) with the CLI's message
        for a wrong dtype, shape, NaN/Inf or a non-contiguous array, KeyboardInterrupt when
        interrupted (the run stops at the next step; its tier files are removed).
        The run's summary (time, rounds, traffic, memory per tier, per-layer figures) is
        left in `last_summary`. The GIL is released while the run computes.
        """
        if not isinstance(x, numpy.ndarray):
            raise TypeError(f"x must be a numpy.ndarray, not {type(x).__name__}")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 0):
            raise ValueError("threads must be an int >= 0")
        if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch <= 0):
            raise ValueError("batch must be an int >= 1")
        if limb_words not in ("auto", "32", "64"):
            raise ValueError(f"limb_words must be 'auto', '32' or '64', not {limb_words!r}")
        if round_masks not in ("per-window", "per-sample"):
            raise ValueError(f"round_masks must be 'per-window' or 'per-sample', not {round_masks!r}")
        bars = []  # created at the first layer, after the inputs were accepted

        def on_layer(event: dict) -> None:
            if progress and not bars:
                bars.append(_progress_bar(event["nodes"], True))
            if bars and bars[0] is not None:
                bars[0].update(1)
                bars[0].set_postfix_str(event["name"][-24:])
            if callback is not None:
                callback(event)

        try:
            y, summary = self._m._run(
                x, encrypted, privacy, _bytes(dram_budget, "dram_budget"), pmem_dir or "", threads or 0,
                False, check, limb_words, round_masks, batch or 0, on_layer)
        finally:
            if bars and bars[0] is not None:
                bars[0].close()
        if encrypted:
            self.last_summary = summary
        return y


def load(path: str) -> Model:
    """Loads an ONNX model (checked and prepared as `heinfer run` does).

    Raises FileNotFoundError when the file does not exist and ValueError when it is not a
    model heinfer runs (the loader's message: the op, the node and why).
    """
    return Model(_heinfer._load(str(path)))


class Client:
    """The data owner's side of a remote `heinfer serve` (gRPC over TLS).

        client = heinfer.Client("127.0.0.1:50051", ca="ca.pem")
        y = client.infer("cnn", x)        # x: float32 [N, ...]; y: float32 [N, ...]

    The secret key is generated in this process for each call and never leaves it (with
    key_dir, it is also kept there, mode 0600). The client checks every message of the
    server against the announced schedule (docs/security.md).

    server: "HOST:PORT". ca: PEM roots that verify the server (None: the system's).
    cert, key: a client certificate for mutual TLS. insecure: no TLS (loopback tests only).
    timeout: seconds to wait for the connection.
    """

    def __init__(self, server: str, *, ca: Optional[str] = None, cert: Optional[str] = None,
                 key: Optional[str] = None, key_dir: Optional[str] = None, insecure: bool = False,
                 timeout: int = 20):
        if (cert is None) != (key is None):
            raise ValueError("cert and key go together (mutual TLS)")
        for name, path in (("ca", ca), ("cert", cert), ("key", key)):
            if path is not None and not os.path.isfile(path):
                raise FileNotFoundError(f"{name} '{path}' does not exist")
        o = _heinfer.ClientOptions()
        o.server = server
        o.tls_ca = ca or ""
        o.tls_cert = cert or ""
        o.tls_key = key or ""
        o.key_dir = key_dir or ""
        o.insecure = insecure
        o.connect_timeout_s = int(timeout)
        self._o = o
        self.last_summary: Optional[dict] = None

    def __repr__(self) -> str:
        return f"heinfer.Client({self._o.server!r})"

    def models(self) -> List[dict]:
        """The models the server serves, sorted by name: one dict each with name,
        input_name, input_shape and output_shape (per sample), capacity (samples per
        batch), poly_modulus_degree, modulus_bits (log2 of the modulus), complex_packing,
        rounds (client-aided rounds per batch), description (the server's plan) and
        refused (None, or why this client would refuse the model's parameters).

        Raises RuntimeError with the server's status when the call fails or the reply is
        malformed; KeyboardInterrupt (Ctrl-C) cancels the call.
        """
        return _heinfer._list_models(self._o)

    def session(self, model: str, *, progress: Optional[Callable[[str], None]] = None) -> "Session":
        """Opens a session with `model` (its name on the server): the keys are made here
        and the evaluation keys sent once, for any number of infer calls. Use it as a
        context manager (the session is closed at the end of the block) or close() it:
        the server holds memory for it until then.

            with client.session("cnn") as s:
                for x in batches:
                    y = s.infer(x)

        progress: called with one line per event while the session opens. Raises
        RuntimeError with the server's status (unknown model, TLS failure, unreachable
        server, no memory on the server) or naming refused parameters; KeyboardInterrupt
        (Ctrl-C) cancels the call.
        """
        return Session(_heinfer.Session(self._o, model, progress))

    def infer(self, model: str, x: numpy.ndarray, *, progress: Optional[Callable[[str], None]] = None) -> numpy.ndarray:
        """Runs `model` (its name on the server) on x, encrypted, in a session of its own;
        returns float32 [N, ...].

        x: float32 or float64, C-contiguous, [N, *the model's input shape], finite.
        progress: called with one line per event (session opened, each round, outputs).
        The summary (time, rounds, traffic including the keys, per-layer server figures)
        goes to last_summary. Raises ValueError for a bad array, RuntimeError with the
        server's status for a refused or failed call (unknown model, TLS failure,
        unreachable server). KeyboardInterrupt (Ctrl-C) cancels the call within about
        0.1 s: the Infer stream is cancelled and the session closed (the server frees its
        memory).
        """
        if not isinstance(x, numpy.ndarray):
            raise TypeError(f"x must be a numpy.ndarray, not {type(x).__name__}")
        t0 = time.monotonic()
        with self.session(model, progress=progress) as s:
            y = s.infer(x, progress=progress)
            summary = s.last_summary
            sent, received = s._s._open_bytes
        summary["seconds"] = time.monotonic() - t0
        summary["bytes_sent"] += sent
        summary["bytes_received"] += received
        self.last_summary = summary
        return y


class Session:
    """An open session with one model of a `heinfer serve` (from Client.session).

    input_shape, output_shape: per sample. capacity: samples per batch (a batch of fewer
    costs the same). description: the server's plan. last_summary: the last infer's.
    """

    def __init__(self, s: "_heinfer.Session"):
        self._s = s
        self.last_summary: Optional[dict] = None

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.close()
        else:  # the block failed: close without hiding its exception
            try:
                self.close()
            except Exception:  # noqa: BLE001 - the block's exception is the one to see
                pass

    def __repr__(self) -> str:
        return f"heinfer.Session({self.description!r}, {'open' if self.is_open else 'closed'})"

    @property
    def is_open(self) -> bool:
        return self._s.is_open

    @property
    def input_shape(self) -> tuple:
        return self._s.input_shape

    @property
    def output_shape(self) -> tuple:
        return self._s.output_shape

    @property
    def capacity(self) -> int:
        return self._s.capacity

    @property
    def description(self) -> str:
        return self._s.description

    def infer(self, x: numpy.ndarray, *, progress: Optional[Callable[[str], None]] = None) -> numpy.ndarray:
        """Runs x ([N, *input_shape], float32/float64, C-contiguous, finite) in this
        session; returns float32 [N, *output_shape]. The summary (this call's time, rounds,
        traffic, per-layer server figures) goes to last_summary.

        Raises ValueError for a bad array or an input outside the model's planned range
        (nothing is sent; the session stays open); RuntimeError when the server fails the
        call or breaks the announced schedule, and KeyboardInterrupt (Ctrl-C), after
        which the session is closed; RuntimeError on a closed session.
        """
        if not isinstance(x, numpy.ndarray):
            raise TypeError(f"x must be a numpy.ndarray, not {type(x).__name__}")
        y, self.last_summary = self._s.infer(x, progress)
        return y

    def close(self) -> None:
        """Closes the session (the server frees its memory). Idempotent."""
        self._s.close()
