"""A fitted LightGBM booster compiled to native code (lleaves, on LLVM), cached by its digest.

lleaves turns each tree into machine code: on the benchmark's 300 trees of 15
leaves it predicts 1.55 microseconds a row on one core, against 5.3 for
XGBoost's predictor on the rewritten trees
(:mod:`creditops.inference.lightgbm_trees`) and 10 for LightGBM's own, and it
is exact in double (LightGBM's probabilities to 1e-15). Compiling costs
seconds (0.13 s for 40 trees of 7 leaves, 3.6 s for 300 of 15), so the
machine code is kept in a cache folder, one file per (model, lleaves, LLVM,
CPU), and a model seen before loads in milliseconds.

The cache holds code this process runs: it is used only when it is a folder
of this user's that nobody else can write to (created ``0700``), like SSH's
keys. Otherwise the model is compiled for this process alone, with a warning.
The folder is ``$CREDITOPS_NATIVE_CACHE``, else ``$XDG_CACHE_HOME/creditops/native``,
else ``~/.cache/creditops/native``.

:func:`compile_text` compiles any model written in LightGBM's text format
through the same cache: :mod:`creditops.inference.native_paths` writes one
whose trees give the leaf a row reaches, for the decision-path contributions.

lleaves needs llvmlite below 0.45 (the legacy pass manager), which has no
wheel for Python 3.14 and later: without it :func:`compile_booster` raises
:class:`NativeUnavailableError` and the scorer uses XGBoost's predictor.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from creditops.inference.raw import Matrix

if TYPE_CHECKING:
    import lightgbm
    import lleaves

log = logging.getLogger(__name__)

CACHE_ENV = "CREDITOPS_NATIVE_CACHE"
# batches up to this many rows are predicted holding the interpreter lock (about 100 us)
HELD_ROWS = 64


class NativeUnavailableError(Exception):
    """lleaves cannot compile here (not installed, or LLVM refused the model)."""


def cache_folder() -> Path:
    """Where compiled models are kept (see the module's docstring)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "creditops" / "native"


def private_folder(folder: Path) -> bool:
    """Create ``folder`` (``0700``) if absent; whether it is ours and nobody else can write to it."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = folder.stat()
    except OSError as exc:
        log.warning("native model cache %s cannot be created (%s): not cached", folder, exc)
        return False
    if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        log.warning(
            "native model cache %s is not private (owner uid %d, mode %o): not cached; "
            "it holds code this process runs, so it must be this user's and mode 0700",
            folder,
            info.st_uid,
            stat.S_IMODE(info.st_mode),
        )
        return False
    return True


def _key(model_text: str, raw_score: bool = False, inline: bool = True) -> str:
    """The cache key: the model and everything the machine code depends on."""
    import llvmlite.binding as llvm

    parts = [
        model_text,
        *(["raw_score"] if raw_score else []),
        *([] if inline else ["not inlined"]),
        metadata.version("lleaves"),
        metadata.version("llvmlite"),
        llvm.get_host_cpu_name(),
        llvm.get_host_cpu_features().flatten(),
    ]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def compile_booster(
    booster: lightgbm.Booster, folder: Path | None = None
) -> Callable[[Matrix], Matrix]:
    """P(class 1) of transformed rows by the booster's trees compiled to machine code.

    Args:
        booster: a fitted LightGBM booster.
        folder: the cache folder (default :func:`cache_folder`).

    Raises:
        NativeUnavailableError: lleaves is not installed, or cannot compile the model.
    """
    model = compile_text(booster.model_to_string(), folder)
    small = held_entry(model)

    def predict(x: Matrix) -> Matrix:
        data = np.ascontiguousarray(x, dtype=np.float64)
        if small is not None and len(data) <= HELD_ROWS:
            return small(data)
        return model.predict(data, n_jobs=1)  # type: ignore[no-any-return]

    return predict


def compile_text(
    text: str, folder: Path | None = None, *, raw_score: bool = False, inline: bool = True
) -> lleaves.Model:
    """A model in LightGBM's text format compiled by lleaves, through the cache.

    Args:
        text: the model (``Booster.model_to_string()``, or one written in that format).
        folder: the cache folder (default :func:`cache_folder`).
        raw_score: the trees' sums without the objective's transform.
        inline: each tree's code inlined into the forest's loop (lleaves' default):
            faster to run, several times slower to compile.

    Raises:
        NativeUnavailableError: lleaves is not installed, or cannot compile the model.
    """
    try:
        import lleaves
    except ImportError as exc:  # Python 3.14+: no llvmlite wheel lleaves can use
        raise NativeUnavailableError(f"lleaves is not installed ({exc})") from exc
    folder = cache_folder() if folder is None else folder
    with tempfile.TemporaryDirectory(prefix="creditops-native-") as scratch:
        model_file = Path(scratch) / "model.txt"
        model_file.write_text(text)
        try:
            model = lleaves.Model(model_file=str(model_file))
            if private_folder(folder):
                cached = folder / f"{_key(text, raw_score, inline)}.o"
                if cached.exists():
                    model.compile(cache=str(cached), raw_score=raw_score, finline=inline)
                else:  # compiled into a file of this process's, then moved in whole
                    partial = folder / f".{cached.name}.{os.getpid()}.{id(model):x}.partial"
                    try:
                        model.compile(cache=str(partial), raw_score=raw_score, finline=inline)
                        os.replace(partial, cached)
                    finally:
                        partial.unlink(missing_ok=True)
            else:
                model.compile(raw_score=raw_score, finline=inline)
        except Exception as exc:  # LLVM's errors have no common type
            raise NativeUnavailableError(f"lleaves cannot compile the model: {exc}") from exc
    return model


def held_entry(model: lleaves.Model) -> Callable[[Matrix], Matrix] | None:
    """The compiled trees called without releasing the interpreter lock (a few rows only).

    lleaves calls its machine code through a ``ctypes.CFUNCTYPE``, which releases
    the interpreter lock for the call. For a few rows the call takes a few
    microseconds, but taking the lock back makes the scoring thread wait for
    whichever thread took it meanwhile (the service's event loop, its log
    writer): a hand-over of the lock for microseconds of work. The same entry
    point declared as ``ctypes.PYFUNCTYPE`` keeps the lock. None when this
    lleaves has no such entry point (its ``Model.predict`` is used then).
    """
    import ctypes

    entry = getattr(model, "_c_entry_func", None)
    classes = getattr(model, "_n_classes", None)
    if entry is None or not isinstance(classes, int) or not getattr(model, "use_fp64", True):
        return None
    address = ctypes.cast(entry, ctypes.c_void_p).value
    if not address:
        return None
    pointer = ctypes.POINTER(ctypes.c_double)
    held = ctypes.PYFUNCTYPE(None, pointer, pointer, ctypes.c_int32, ctypes.c_int32)(address)
    width = model.num_feature()

    def predict(data: Matrix) -> Matrix:
        if data.ndim != 2 or data.shape[1] != width:
            raise ValueError(f"Data must be of dimension (N, {width}), is {data.shape}.")
        rows = len(data)
        out = np.zeros(rows if classes == 1 else (rows, classes), dtype=np.float64)
        held(data.ctypes.data_as(pointer), out.ctypes.data_as(pointer), 0, rows)
        return out

    return predict
