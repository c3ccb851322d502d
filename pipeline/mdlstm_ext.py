"""Building and loading the C++ 2D-LSTM scan (pipeline/csrc/mdlstm.cpp).

The scan compiles on first use with ``torch.utils.cpp_extension`` (~30 s) into a cache shared
by every checkout (``$DROPOUT_HTR_EXT_DIR`` or ``~/.cache/dropout-htr/torch_extensions``),
under a name made of the source hash, the compiler flags and the torch version, so two
checkouts of different versions never load each other's build.  When the build fails (no
compiler, no ninja, no headers) :func:`extension_error` keeps one telling line and
:mod:`pipeline.mdlstm` falls back to the wavefront scan with one warning.
"""
from __future__ import annotations

import hashlib
import os
import sys
import time
import warnings
from pathlib import Path

import torch

CSRC = Path(__file__).resolve().parent / "csrc" / "mdlstm.cpp"
EXT_NAME = "dropout_htr_mdlstm"

_EXTENSION = None
_EXTENSION_ERROR: str | None = None
_WARNED: set[str] = set()


def extension_dir() -> Path:
    """Build cache of the C++ scan: $DROPOUT_HTR_EXT_DIR or ~/.cache/dropout-htr/torch_extensions."""
    default = Path.home() / ".cache" / "dropout-htr" / "torch_extensions"
    return Path(os.environ.get("DROPOUT_HTR_EXT_DIR", default))


def build_key(flags: list[str]) -> str:
    """Name of the compiled scan: the source hash, the compiler flags and the torch version.

    Two checkouts of different versions (or CPUs with different vector units) sharing one
    cache directory get different names, so neither rebuilds nor loads the other's build.
    """
    digest = hashlib.sha256(CSRC.read_bytes())
    digest.update(" ".join(flags).encode())
    digest.update(torch.__version__.encode())
    return f"{EXT_NAME}_{digest.hexdigest()[:12]}"


def compiler_flags() -> list[str]:
    """-O3 and OpenMP; AVX2 + FMA where the CPU has them (the lane loops become FMA vectors)."""
    flags = ["-O3", "-fopenmp"]
    if torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):
        flags += ["-mavx2", "-mfma"]
    return flags


def load_extension():
    """Compile (first use, ~30 s) or load the cached C++ scan; None if that fails."""
    global _EXTENSION, _EXTENSION_ERROR
    if _EXTENSION is None and _EXTENSION_ERROR is None:
        try:
            from torch.utils import cpp_extension

            flags = compiler_flags()
            name = build_key(flags)
            build = extension_dir() / name
            build.mkdir(parents=True, exist_ok=True)
            clear_stale_lock(build / "lock")
            if not (build / f"{name}.so").exists():
                print(f"MDLSTM2d: compiling the C++ scan into {build} (first use, ~30 s)",
                      file=sys.stderr, flush=True)
            _EXTENSION = cpp_extension.load(
                name=name, sources=[str(CSRC)], build_directory=str(build),
                extra_cflags=flags, extra_ldflags=["-fopenmp"], verbose=False)
        except Exception as err:  # no compiler, no ninja, no headers: use the wavefront
            _EXTENSION_ERROR = failure_reason(err)
    return _EXTENSION


def clear_stale_lock(lock: Path, max_age_s: float = 600.0) -> None:
    """torch waits forever on the lock file of a build that was killed; drop an old one."""
    try:
        if time.time() - lock.stat().st_mtime > max_age_s:
            lock.unlink()
            warn_once(f"MDLSTM2d: removed a stale build lock {lock}")
    except FileNotFoundError:
        pass


def failure_reason(err: Exception) -> str:
    """One line out of a build error: the last line that says what went wrong."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    telling = [line for line in lines if len(line) < 300 and not line.startswith("ninja: build stopped")
               and any(word in line.lower() for word in ("error", "not found", "required", "no such"))]
    return f"{type(err).__name__}: {(telling or lines or ['(no message)'])[-1][:200]}"


def cpp_available() -> bool:
    """True when the C++ scan compiles/loads on this machine."""
    return load_extension() is not None


def warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def extension_error() -> str | None:
    """Why the C++ scan could not be built or loaded (None when it loaded or was not tried)."""
    return _EXTENSION_ERROR
