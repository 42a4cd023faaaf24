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
