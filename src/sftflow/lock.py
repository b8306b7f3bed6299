"""One writer per output folder: `prepare`, `train` and `synth` hold an exclusive lock on theirs.

Two runs writing into the same data/ or runs/<name>/ folder would interleave their files
(and `train --resume` would continue the wrong checkpoint), so the second one stops at once
with the holder's PID. The lock is `fcntl.flock` on a small file in the folder: the kernel
drops it when the holder exits, even after kill -9, so a crash never leaves a stale lock.
The lock file itself stays (removing it would race with a new holder) and holds the PID and
command of the last holder, for the message.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from sftflow.errors import SftflowError

LOCK_NAME = ".sftflow.lock"


class FolderInUse(SftflowError):
    pass


@contextlib.contextmanager
def hold(folder: Path, command: str, name: str = LOCK_NAME) -> Iterator[Path]:
    """Hold the lock file `folder/name` (folder created if missing) while the block runs.

    One output file shares its folder with others (synth's candidates.jsonl): it gets its own `name`.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            raise FolderInUse(f"{folder} is in use by {holder}; wait for it to finish (or stop it) — two runs "
                              "must not write into the same folder") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"sftflow {command} (pid {os.getpid()})\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the flock
