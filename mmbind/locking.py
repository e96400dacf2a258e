"""An exclusive lock held through a lock file (``flock``), as the store's writer and a training
run folder use it: the holder's pid is written into the file, and the file is removed on release,
so a lock file left behind means its holder was killed (the kernel still released the lock)."""
from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Callable


class FileLock:
    """``acquire`` takes the lock or raises ``busy(lock_path, holder_pid_text)``; ``release`` drops it."""

    def __init__(self, path: str | Path, busy: Callable[[Path, str], Exception]):
        self.path = Path(path)
        self.busy = busy
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode(errors="replace").strip()
                os.close(fd)
                raise self.busy(self.path, holder) from None
            # The previous holder may have removed the file between our open and our flock: then
            # we locked an unlinked file, and must lock the one at the path instead.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)  # while still holding the lock, so no one else owns it
        os.close(self._fd)  # closing the descriptor releases the flock
        self._fd = None


def holder_alive(path: str | Path) -> bool:
    """True if the lock file ``path`` exists and names a running process (a live holder)."""
    try:
        pid = int(Path(path).read_text().strip() or 0)
    except (FileNotFoundError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


__all__ = ["FileLock", "holder_alive"]
