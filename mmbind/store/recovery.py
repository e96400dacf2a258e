"""Make an HDF5 file left behind by a killed SWMR writer writable again (what ``h5clear -s -i`` does).

A writer that opens an HDF5 file (superblock version 2 or 3) sets "file consistency flags" in the
superblock and clears them on a clean close. After a SIGKILL the flags stay set, and HDF5 then
refuses every open except a SWMR read ("file is already open for write"). The content itself is
consistent, because a SWMR writer orders its metadata writes so that readers can always open
the file. Once the process that held the store's writer lock is gone, it is safe to clear the
flags. We also raise the end-of-allocation address to the real file size, so space the killed
writer had already used (but not yet recorded) is never handed out twice.

Superblock v2/v3 layout (HDF5 file format spec, section II.A):
signature(8) version(1) size_of_offsets(1) size_of_lengths(1) consistency_flags(1)
base_address(O) extension_address(O) end_of_file_address(O) root_object_header(O) checksum(4),
where the checksum is Jenkins' lookup3 ``hashlittle`` (seed 0) over everything before it.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import BinaryIO, NamedTuple

SIGNATURE = b"\x89HDF\r\n\x1a\n"
_M = 0xFFFFFFFF  # lookup3 computes in 32-bit unsigned words
_LENGTH = 12 + 4 * 8  # the superblock's bytes before its checksum (8-byte offsets)
_EOA_AT = 12 + 2 * 8  # where the end-of-file address is


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _M


def _mix(a: int, b: int, c: int) -> tuple[int, int, int]:
    a = (a - c) & _M; a ^= _rot(c, 4); c = (c + b) & _M  # noqa: E702
    b = (b - a) & _M; b ^= _rot(a, 6); a = (a + c) & _M  # noqa: E702
    c = (c - b) & _M; c ^= _rot(b, 8); b = (b + a) & _M  # noqa: E702
    a = (a - c) & _M; a ^= _rot(c, 16); c = (c + b) & _M  # noqa: E702
    b = (b - a) & _M; b ^= _rot(a, 19); a = (a + c) & _M  # noqa: E702
    c = (c - b) & _M; c ^= _rot(b, 4); b = (b + a) & _M  # noqa: E702
    return a, b, c


def _final(a: int, b: int, c: int) -> int:
    c ^= b; c = (c - _rot(b, 14)) & _M  # noqa: E702
    a ^= c; a = (a - _rot(c, 11)) & _M  # noqa: E702
    b ^= a; b = (b - _rot(a, 25)) & _M  # noqa: E702
    c ^= b; c = (c - _rot(b, 16)) & _M  # noqa: E702
    a ^= c; a = (a - _rot(c, 4)) & _M  # noqa: E702
    b ^= a; b = (b - _rot(a, 14)) & _M  # noqa: E702
    c ^= b; c = (c - _rot(b, 24)) & _M  # noqa: E702
    return c


def lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' lookup3 ``hashlittle``, the checksum HDF5 uses for its metadata."""
    n = len(data)
    a = b = c = (0xDEADBEEF + n + initval) & _M
    i = 0
    while n - i > 12:
        a = (a + int.from_bytes(data[i:i + 4], "little")) & _M
        b = (b + int.from_bytes(data[i + 4:i + 8], "little")) & _M
        c = (c + int.from_bytes(data[i + 8:i + 12], "little")) & _M
        a, b, c = _mix(a, b, c)
        i += 12
    rest = data[i:]
    if not rest:
        return c
    rest = rest + bytes(12 - len(rest))
    a = (a + int.from_bytes(rest[0:4], "little")) & _M
    b = (b + int.from_bytes(rest[4:8], "little")) & _M
    c = (c + int.from_bytes(rest[8:12], "little")) & _M
    return _final(a, b, c)


def _find_superblock(fh: BinaryIO) -> int:
    # The superblock sits at 0 or after a user block of 512, 1024, 2048, ... bytes.
    size = os.fstat(fh.fileno()).st_size
    offset = 0
    while offset + 8 <= size:
        fh.seek(offset)
        if fh.read(8) == SIGNATURE:
            return offset
        offset = 512 if offset == 0 else offset * 2
    raise ValueError(f"{fh.name}: no HDF5 superblock found (expected an HDF5 file)")


class Superblock(NamedTuple):
    """What the superblock (v2/v3) says about the file, and the file's real size."""

    version: int
    flags: int  # consistency flags: non-zero while a writer has the file open (or died with it open)
    base_address: int
    eoa: int  # end of allocated space, relative to base_address: the file must be at least this long
    file_size: int

    @property
    def missing_bytes(self) -> int:
        """How many bytes the file lacks to hold what its superblock says it holds (0 if whole)."""
        return max(0, self.base_address + self.eoa - self.file_size)


def _read_superblock(fh: BinaryIO) -> tuple[int, bytearray] | None:
    """(offset, the superblock's bytes up to and with its checksum), checked; None for v0/v1."""
    base = _find_superblock(fh)
    fh.seek(base)
    head = fh.read(12)
    if len(head) < 12:
        raise ValueError(f"{fh.name}: the HDF5 superblock is cut short (the file is truncated)")
    version, size_of_offsets = head[8], head[9]
    if version < 2:
        return None  # superblocks v0/v1 have no flags (and no SWMR); mmbind never writes them
    if size_of_offsets != 8:
        raise ValueError(f"{fh.name}: unsupported HDF5 superblock (offsets of {size_of_offsets} bytes, expected 8)")
    fh.seek(base)
    block = bytearray(fh.read(_LENGTH + 4))
    if len(block) < _LENGTH + 4:
        raise ValueError(f"{fh.name}: the HDF5 superblock is cut short (the file is truncated)")
    if lookup3(bytes(block[:_LENGTH])) != struct.unpack_from("<I", block, _LENGTH)[0]:
        raise ValueError(f"{fh.name}: HDF5 superblock checksum mismatch; the file is damaged")
    return base, block


def read_superblock(path: str | Path) -> Superblock | None:
    """The superblock of an HDF5 file (None for v0/v1 superblocks, which mmbind never writes);
    ValueError if there is none or it is damaged."""
    with open(path, "rb") as fh:
        found = _read_superblock(fh)
        if found is None:
            return None
        _, block = found
        base_address, _, eoa = struct.unpack_from("<QQQ", block, 12)
        return Superblock(block[8], block[11], base_address, eoa, os.fstat(fh.fileno()).st_size)


def extend_to_eoa(path: str | Path) -> int:
    """Grow a file its superblock says is longer to that length (the new tail reads as zeros and,
    on most file systems, takes no disk space); returns the bytes added."""
    info = read_superblock(path)
    if info is None or not info.missing_bytes:
        return 0
    os.truncate(path, info.file_size + info.missing_bytes)
    return info.missing_bytes


def clear_status_flags(path: str | Path) -> bool:
    """Clear the consistency flags of a file whose writer died; return True if they were set.

    Only call this while holding the store's writer lock (so no live writer owns the flags).
    """
    path = Path(path)
    with open(path, "r+b") as fh:
        found = _read_superblock(fh)
        if found is None:
            return False
        base, block = found
        if block[11] == 0:
            return False
        block[11] = 0
        base_address = struct.unpack_from("<Q", block, 12)[0]
        eoa = struct.unpack_from("<Q", block, _EOA_AT)[0]
        file_end = os.fstat(fh.fileno()).st_size - base_address
        struct.pack_into("<Q", block, _EOA_AT, max(eoa, file_end))
        struct.pack_into("<I", block, _LENGTH, lookup3(bytes(block[:_LENGTH])))
        # One small write inside the first sector: it lands whole or not at all.
        fh.seek(base)
        fh.write(block)
        fh.flush()
        os.fsync(fh.fileno())
    return True
