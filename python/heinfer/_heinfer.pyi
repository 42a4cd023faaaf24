"""Type stub of the extension module heinfer._heinfer (python/heinfer_module.cpp).

Private: use the heinfer package (heinfer.load, heinfer.Model), which wraps these.
"""

from typing import Callable, Optional

import numpy

class InputError(ValueError):
    """A bad input array: dtype, shape, NaN/Inf (the CLI's messages, named 'input array')."""

class Model:
    path: str
    input_shape: tuple  # per sample
    output_shape: tuple  # per sample
    nodes: int  # nodes after the load-time passes
    def _run(
        self,
        x: numpy.ndarray,
        encrypted: bool,
        privacy: str,
        dram_budget: int,
        pmem_dir: str,
        threads: int,
        progress_lines: bool,
        check: bool,
        limb_words: str,
        round_masks: str,
        batch: int,
        callback: Optional[Callable[[dict], None]],
    ) -> tuple[numpy.ndarray, dict]: ...

def _load(path: str) -> Model: ...
def _inspect(
    model: Model, batch: int, resolution: str, threads: int, time: bool, limb_words: int, round_masks: str
) -> str: ...

class ClientOptions:
    """Connection options of heinfer.Client (protocol::ClientOptions)."""

    server: str  # HOST:PORT
    tls_ca: str  # PEM roots ("" : the system's)
    tls_cert: str  # client certificate, PEM (mutual TLS; "" : none)
    tls_key: str
    key_dir: str  # "" : the secret key is kept in memory only
    insecure: bool
    connect_timeout_s: int
    def __init__(self) -> None: ...

def _list_models(options: ClientOptions) -> list[dict]: ...
class Session:
    """protocol::RemoteSession: one open session with a served model."""

    is_open: bool
    input_shape: tuple  # per sample
    output_shape: tuple  # per sample
    capacity: int  # samples per batch
    description: str  # the server's plan
    _open_bytes: tuple[int, int]  # protobuf bytes sent / received opening the session
    def __init__(self, options: ClientOptions, model: str, progress: Optional[Callable[[str], None]]) -> None: ...
    def infer(self, x: numpy.ndarray, progress: Optional[Callable[[str], None]]) -> tuple[numpy.ndarray, dict]: ...
    def close(self) -> None: ...
