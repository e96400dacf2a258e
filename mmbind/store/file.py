"""The store's HDF5 file over its life: the writer lock, opening as an SWMR reader or writer,
recovering a killed writer's file, and structural changes made on a copy.

Crash safety (a killed writer leaves a readable file holding every finished batch):
  * the writer runs in HDF5 SWMR mode, which orders metadata writes so the file opens at any
    moment; after a SIGKILL the superblock still says "open for write", and the next writer
    (holding the store's lock file, so no live writer exists) clears that flag (recovery.py)
    and cuts the rows of the batch that never committed (Collection.truncate).
  * structural changes (a new file, a new collection) are made on a copy that atomically
    replaces the store, because SWMR forbids creating objects and a non-SWMR writer is not
    crash-safe.
Concurrency: one writer (``<store>.lock``), any number of readers (SWMR readers) in other
processes; a reader reopens the file when the writer has swapped in a copy.
"""
from __future__ import annotations

import fcntl
import glob
import logging
import os
import shutil
from pathlib import Path
from typing import Callable

import h5py

from mmbind.store.collection import Collection
from mmbind.store.errors import StoreError, StoreLockedError
from mmbind.store.recovery import clear_status_flags
from mmbind.store.schema import LIBVER, check_store, init_store

log = logging.getLogger(__name__)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _open_swmr_writer(path: Path) -> h5py.File:
    # h5py.File cannot open straight into SWMR-write mode; the low-level call can, which leaves
    # no moment in which a kill would leave a non-SWMR (unreadable) file. HDF5's own file lock is
    # off: the writer lock file excludes other writers, and readers opened earlier must not block us.
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_V110, h5py.h5f.LIBVER_LATEST)
    fapl.set_file_locking(False, True)
    fid = h5py.h5f.open(os.fsencode(path), h5py.h5f.ACC_RDWR | h5py.h5f.ACC_SWMR_WRITE, fapl=fapl)
    return h5py.File(fid)


def _open_reader(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r", libver=LIBVER, swmr=True)
    except OSError as swmr_error:
        try:
            return h5py.File(path, "r")
        except OSError:
            raise StoreError(f"{path}: cannot open as an HDF5 embedding store ({swmr_error})") from swmr_error


class StoreFile:
    """The open HDF5 file of a store: ``mode="a"`` holds the writer lock, ``mode="r"`` reads."""

    def __init__(self, path: Path, mode: str):
        self.path = path
        self.mode = mode
        self._lock_fd: int | None = None
        self._h5: h5py.File | None = None
        self._inode = 0
        if mode == "r":
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no such embedding store")
            self._open_read()
            return
        self._acquire_lock()
        try:
            self._open_write()
        except BaseException:
            self.close()
            raise

    @property
    def h5(self) -> h5py.File:
        """The h5py file (StoreError once closed)."""
        if self._h5 is None:
            raise StoreError(f"{self.path}: the store is closed")
        return self._h5

    def _acquire_lock(self) -> None:
        lock_path = self.path.with_name(self.path.name + ".lock")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreLockedError(
                f"{self.path}: another process is appending to this store (it holds {lock_path}); "
                "open it with mode='r' to read while it writes"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def _open_read(self) -> None:
        self._h5 = _open_reader(self.path)
        self._inode = os.stat(self.path).st_ino
        check_store(self._h5, self.path)

    def _open_write(self) -> None:
        # Copies left by a writer killed during a structural change; we hold the lock, so no
        # live writer is making one.
        for stale in self.path.parent.glob(f"{glob.escape(self.path.name)}.tmp-*"):
            stale.unlink(missing_ok=True)
        if not self.path.exists():
            self.change(None)
            return
        try:
            if clear_status_flags(self.path):
                log.info("%s: cleared the flags a killed writer left in the superblock", self.path)
        except ValueError as error:
            raise StoreError(f"cannot open as an HDF5 embedding store: {error}") from error
        try:
            self._h5 = _open_swmr_writer(self.path)
        except OSError as error:
            raise StoreError(f"{self.path}: cannot open for appending as an HDF5 embedding store "
                             f"(expected a store written by mmbind; HDF5 says: {error})") from error
        check_store(self._h5, self.path)
        cut = [Collection(group, reader=False).truncate() for group in self._h5["collections"].values()]
        if any(cut):  # rows beyond the committed count belong to a batch that never finished
            self._h5.flush()

    def change(self, edit: Callable[[h5py.File], None] | None) -> None:
        """Apply a structural change (``None``: create the store) on a copy that atomically
        replaces the file, then reopen it as the SWMR writer (the old file if ``edit`` failed)."""
        tmp = self.path.with_name(f"{self.path.name}.tmp-{os.getpid()}")
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None
        try:
            if self.path.exists():
                shutil.copyfile(self.path, tmp)
                handle = h5py.File(tmp, "r+", libver=LIBVER, locking=False)
            else:
                handle = h5py.File(tmp, "w", libver=LIBVER, locking=False)
                init_store(handle)
            with handle:
                if edit is not None:
                    edit(handle)
            _fsync_path(tmp)
            os.replace(tmp, self.path)
            _fsync_path(self.path.parent)
        finally:
            tmp.unlink(missing_ok=True)
            if self.path.exists():
                self._h5 = _open_swmr_writer(self.path)

    def reopen_if_replaced(self) -> bool:
        """Readers: reopen if the writer swapped in a copy (a new collection); True if so."""
        if self.mode != "r":
            return False
        try:
            inode = os.stat(self.path).st_ino
        except FileNotFoundError:
            return False
        if inode == self._inode:
            return False
        if self._h5 is not None:
            self._h5.close()
        self._open_read()
        return True

    def close(self) -> None:
        """Close the file and release the writer lock."""
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None


__all__ = ["StoreFile"]
