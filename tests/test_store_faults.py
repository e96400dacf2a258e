"""Store faults (issue 16): a truncated file, a disk that fills up during an append or while a
collection is created. Each is followed by open, verify and resume; none may hang. (SIGKILL at
random moments: test_store.py's kill loop.)"""
from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from store_fakes import FakeBinder, items, status_flags
from test_store import WRITER, assert_same_store, check_prefix, committed_lines, expected_columns

from mmbind.store import EmbeddingStore, StoreError, embed_inputs


@contextmanager
def deadline(seconds: int):
    """Fail instead of hanging (HDF5 retries reads of missing metadata for many minutes)."""
    def expired(*_):
        raise TimeoutError(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def whole_store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("whole") / "whole.h5"
    with EmbeddingStore(path) as store:
        embed_inputs(store, FakeBinder(dim=16), "texts", items(3000), modality="text", batch_size=500)
        embed_inputs(store, FakeBinder(dim=16), "more", items(200), modality="text", batch_size=100)
    return path


def cut_copy(source: Path, folder: Path, size: int) -> Path:
    copy = folder / f"cut-{size}.h5"
    shutil.copyfile(source, copy)
    with open(copy, "r+b") as fh:
        fh.truncate(size)
    return copy


def test_a_truncated_store_is_refused_at_every_offset_and_never_hangs(whole_store, tmp_path):
    size = whole_store.stat().st_size
    for offset in (0, 5, 30, 60, 2048, size // 3, size // 2, size - 4096, size - 1):
        copy = cut_copy(whole_store, tmp_path, offset)
        with deadline(30):
            with pytest.raises(StoreError) as read_error:
                EmbeddingStore(copy, mode="r")
            with pytest.raises(StoreError) as write_error:
                EmbeddingStore(copy)
        for error in (read_error.value, write_error.value):
            message = str(error)
            assert str(copy) in message or copy.name in message, message
            if offset >= 60:  # the superblock is whole: the file says how long it should be
                assert f"the file is {offset} bytes but its HDF5 superblock says {size}" in message
                assert "cut short" in message and "restore the file from a backup" in message
        assert copy.stat().st_size == offset  # refusing changed nothing
        assert not copy.with_name(copy.name + ".lock").exists()


def test_search_on_a_truncated_store_is_one_clean_line(whole_store, tmp_path):
    copy = cut_copy(whole_store, tmp_path, whole_store.stat().st_size // 2)
    done = subprocess.run([sys.executable, "-m", "mmbind", "search", str(copy), "id:texts/#0", "-c", "texts"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "cut short" in done.stderr and "Traceback" not in done.stderr


def run_writer(path: Path, n: int, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(WRITER), str(path), str(n), "50", "--dim", "64", *extra],
                          capture_output=True, text=True, timeout=300)


def test_disk_full_during_an_append_stops_cleanly_and_the_rerun_repairs_and_resumes(tmp_path):
    n = 6000
    path = tmp_path / "full.h5"
    full = run_writer(path, n, "--max-file-size", str(2_500_000))  # room for about 4000 entries of 64-d
    assert full.returncode == 1, full.stderr[-2000:]  # an error exit, not HDF5's segfault (139)
    assert "writing failed" in full.stderr and "File too large" in full.stderr
    assert "Free disk space, then run the same command again" in full.stderr
    committed = max(committed_lines(full.stdout))
    assert 0 < committed < n
    assert not path.with_name(path.name + ".lock").exists()  # the lock was released
    assert status_flags(path) != 0  # HDF5 could not close the file: the next writer repairs it

    with pytest.raises(StoreError, match="its writer stopped while extending it .a full disk.*repairs it"):
        EmbeddingStore(path, mode="r")
    expected = expected_columns(n, dim=64)

    resumed = run_writer(path, n)  # the same command with space again
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "repaired the store a writer left short" in resumed.stderr
    assert f"done added={n - committed} skipped={committed}" in resumed.stdout
    check_prefix(path, expected, n)
    reference = tmp_path / "reference.h5"
    assert run_writer(reference, n).returncode == 0
    assert_same_store(path, reference)


def test_a_short_file_whose_committed_data_is_gone_is_refused_and_left_as_found(whole_store, tmp_path):
    copy = cut_copy(whole_store, tmp_path, whole_store.stat().st_size // 2)
    with open(copy, "r+b") as fh:  # as if its writer had died with the file open
        fh.seek(11)
        fh.write(b"\x05")
    from mmbind.store.recovery import lookup3, read_superblock

    data = bytearray(copy.read_bytes()[:48])  # superblock v3: 44 bytes, then their checksum
    data[44:48] = lookup3(bytes(data[:44])).to_bytes(4, "little")
    with open(copy, "r+b") as fh:
        fh.write(data)
    assert read_superblock(copy).flags
    size = copy.stat().st_size
    with deadline(60), pytest.raises(StoreError, match="the missing part held committed entries .*restore the file from a backup"):
        EmbeddingStore(copy)
    assert copy.stat().st_size == size


CREATE = """
import resource, signal, sys
from mmbind.store import EmbeddingStore, StoreError
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
try:
    with EmbeddingStore(sys.argv[1]) as store:
        store.create_collection("new", modality="text", dim=16, fingerprint="fake-16-0")
except StoreError as error:
    print(error)
    sys.exit(1)
"""


def test_disk_full_while_creating_a_collection_is_a_store_error_and_loses_nothing(whole_store, tmp_path):
    path = tmp_path / "s.h5"
    shutil.copyfile(whole_store, path)
    before = path.read_bytes()
    done = subprocess.run([sys.executable, "-c", CREATE, str(path), str(len(before) // 2)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert f"{path}: cannot write the changed copy" in done.stdout and "the store is unchanged" in done.stdout
    assert "Traceback" not in done.stderr
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]  # no copy, no lock file left
    with EmbeddingStore(path) as store:
        store.create_collection("new", modality="text", dim=16, fingerprint="fake-16-0")
        assert store.count("texts") == 3000 and store.count("new") == 0
        np.testing.assert_allclose(np.linalg.norm(store.vectors("texts"), axis=1), 1, rtol=1e-5)
