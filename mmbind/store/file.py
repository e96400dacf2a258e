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
  * a file shorter than its superblock says is refused (cut short), or, when a writer left it so
    because its disk filled up, grown back, verified and resumed by the next writer; a failed
    write drops HDF5's handle without letting it write more (``abandon``).
Concurrency: one writer (``<store>.lock``), any number of readers (SWMR readers) in other
processes; a reader reopens the file when the writer has swapped in a copy.
"""
from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Callable

import h5py

from mmbind.locking import FileLock, holder_alive
from mmbind.store.collection import Collection
from mmbind.store.errors import StoreError, StoreLockedError
from mmbind.store.recovery import clear_status_flags, extend_to_eoa, read_superblock
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


RECOVER = ("To recover: restore the file from a backup or an intact copy, or delete it and embed "
           "again (an embed run rebuilds a store; docs/reliability.md)")


def check_whole(path: Path, reading: bool) -> None:
    """StoreError if the file is shorter than its superblock says: cut short (a copy or download
    that stopped) or left short by a writer that stopped on a full disk. A reader refuses both
    (HDF5 would retry reads of the missing metadata for many minutes); a live writer, which
    extends the file as it goes, is not a fault."""
    try:
        info = read_superblock(path)
    except ValueError as error:
        raise StoreError(f"cannot open as an HDF5 embedding store: {error}. {RECOVER}") from None
    if info is None or not info.missing_bytes:
        return
    lock = path.with_name(path.name + ".lock")
    if info.flags and reading and holder_alive(lock):
        return
    where = (f"{path}: the file is {info.file_size} bytes but its HDF5 superblock says "
             f"{info.base_address + info.eoa}")
    if info.flags:
        raise StoreError(f"{where}: its writer stopped while extending it (a full disk?). Free disk space, "
                         "then open it for appending (run the same `mmbind embed` again, or "
                         "EmbeddingStore(path)): that repairs it at its last commit and verifies every entry")
    raise StoreError(f"{where}: it was cut short (an incomplete copy or download?) and its last "
                     f"{info.missing_bytes} bytes are missing. {RECOVER}")


def repair_short_file(path: Path) -> bool:
    """Writers: grow a file a stopped writer left short back to the length its superblock says
    (the missing tail held only its unfinished batch); True if grown. A short file that no writer
    had open (flags clear) was cut short afterwards: StoreError (check_whole)."""
    try:
        info = read_superblock(path)
    except ValueError:
        return False  # the open that follows names the problem
    if info is None or not info.missing_bytes:
        return False
    if not info.flags:
        check_whole(path, reading=False)
    return extend_to_eoa(path) > 0


class StoreFile:
    """The open HDF5 file of a store: ``mode="a"`` holds the writer lock, ``mode="r"`` reads."""

    def __init__(self, path: Path, mode: str):
        self.path = path
        self.mode = mode
        self._lock: FileLock | None = None
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
        def busy(lock_path: Path, holder: str) -> StoreLockedError:
            return StoreLockedError(
                f"{self.path}: another process is appending to this store (pid {holder or 'unknown'} holds "
                f"{lock_path}); open it with mode='r' to read while it writes")

        self._lock = FileLock(self.path.with_name(self.path.name + ".lock"), busy)
        self._lock.acquire()

    def _open_read(self) -> None:
        check_whole(self.path, reading=True)
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
        size = self.path.stat().st_size
        grown = repair_short_file(self.path)  # a writer stopped by a full disk; ours to repair
        try:
            self._open_and_recover(verify=grown)
        except (OSError, RuntimeError, KeyError, StoreError) as error:
            if self._h5 is not None:
                with contextlib.suppress(OSError, RuntimeError):
                    self._h5.close()
                self._h5 = None
            if grown:
                os.truncate(self.path, size)  # put the file back as we found it
                raise StoreError(f"{self.path}: the file is shorter than its HDF5 superblock says, and the "
                                 f"missing part held committed entries ({error}). {RECOVER}") from error
            if isinstance(error, StoreError):
                raise
            raise StoreError(f"{self.path}: cannot open for appending as an HDF5 embedding store "
                             f"(expected a store written by mmbind; HDF5 says: {error})") from error
        if grown:
            log.warning("%s: repaired the store a writer left short (disk full?): every committed entry "
                        "reads back", self.path)

    def _open_and_recover(self, verify: bool) -> None:
        """Open as the SWMR writer after a killed writer (its flags cleared, its unfinished batch
        cut); with ``verify``, first check that every committed entry reads back."""
        try:
            if clear_status_flags(self.path):
                log.info("%s: cleared the flags a killed writer left in the superblock", self.path)
        except ValueError as error:
            raise StoreError(f"cannot open as an HDF5 embedding store: {error}") from error
        self._h5 = _open_swmr_writer(self.path)
        check_store(self._h5, self.path)
        collections = [Collection(group, reader=False) for group in self._h5["collections"].values()]
        damaged = [f"{part.name}: {problem}" for part in collections if verify and (problem := part.verify())]
        if damaged:
            raise StoreError("; ".join(damaged))
        cut = [part.truncate() for part in collections]
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
        except (OSError, RuntimeError) as error:  # a full disk, mostly: the store is left as it was
            raise StoreError(f"{self.path}: cannot write the changed copy {tmp.name} beside the store "
                             f"({error}); the store is unchanged. Free disk space and retry") from error
        finally:
            tmp.unlink(missing_ok=True)
            if self.path.exists():
                self._h5 = _open_swmr_writer(self.path)

    def abandon(self, error: BaseException) -> StoreError:
        """After a failed write (a full disk): drop the file without HDF5 writing anything more
        (its flushes would fail again, and HDF5 then crashes the process), release the lock and
        return the StoreError to raise. The file on disk keeps its last commit; the next writer
        to open it repairs what the failed batch left."""
        if self._h5 is not None:
            # HDF5 still holds dirty metadata it cannot write: point its descriptor at /dev/null,
            # so closing "succeeds" without touching the file.
            null = os.open(os.devnull, os.O_RDWR)
            try:
                os.dup2(null, self._h5.id.get_vfd_handle())
            finally:
                os.close(null)
            try:
                self._h5.close()
            except (OSError, RuntimeError):
                pass
            self._h5 = None
        self.close()
        # HDF5's message spans lines and buffer addresses; the system's reason is what matters
        system = re.search(r"error message = '([^']+)'", str(error))
        reason = system.group(1) if system else " ".join(str(error).split())
        return StoreError(f"{self.path}: writing failed ({reason}); the store keeps every batch committed "
                          "before this one. Free disk space, then run the same command again: it repairs "
                          "the file and resumes")

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
        if self._lock is not None:
            self._lock.release()
            self._lock = None


__all__ = ["StoreFile"]
