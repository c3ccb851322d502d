"""One writer per output: a run holds a lock on its ``--out`` while it writes.

Every output file is already written atomically (temp file + rename), so two runs on the
same ``--out`` never mix their files; without a lock the last writer would silently win.
:func:`claim_output` takes an exclusive ``flock`` on ``DIR/.htr.lock`` (an output folder)
or ``.NAME.lock`` beside an output file; a second run fails at once with one line naming
the output, the process that holds it and the fix.  The kernel drops the lock when its
process ends, however it ends (``kill -9`` included), so a lock is never left stale; the
lock file itself is removed on a normal exit.
"""
from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

try:
    import fcntl
except ImportError:  # Windows: no flock; outputs are still atomic, just not locked
    fcntl = None


class OutputError(RuntimeError):
    """The output cannot be claimed: busy, or not writable."""


class OutputBusy(OutputError):
    """Another run is writing the same output."""


def lock_path(output: Path, folder: bool) -> Path:
    output = Path(output)
    return output / ".htr.lock" if folder else output.with_name(f".{output.name}.lock")


@contextmanager
def claim_output(output: Path, command: str, folder: bool = False) -> Iterator[None]:
    """Hold the output ``output`` (a folder when ``folder``) for the ``with`` block;
    raises :class:`OutputBusy` if another live process holds it, :class:`OutputError` if
    it cannot be written at all."""
    if fcntl is None:
        yield
        return
    path = lock_path(output, folder)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = _acquire(path, output, command)
    except OSError as error:
        raise OutputError(f"{output}: cannot write there ({error.strerror or error}); choose another --out") from None
    try:
        yield
    finally:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        os.close(fd)


def _acquire(path: Path, output: Path, command: str) -> int:
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 300).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise OutputBusy(f"{output}: another run is writing it ({holder}); wait for it to finish "
                             f"or give this one another --out (lock: {path})") from None
        try:  # the holder we waited for may have removed the file: lock the current one
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, f"{command}, pid {os.getpid()} on {socket.gethostname()}".encode())
    return fd

