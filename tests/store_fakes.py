"""A tiny fake binder for the store tests, and a writer process the crash tests kill.

FakeBinder has the Binder API the store code uses (.encode/.dim/.fingerprint()/.temperature/
.modalities) and maps each input to a deterministic unit vector (a hash-seeded Gaussian),
so two runs over the same inputs produce identical stores.

Run as a script it is the writer the kill tests SIGKILL:
    python store_fakes.py STORE N_ITEMS BATCH [--sleep S] [--dim D] [--collection NAME] [--max-file-size B]
It embeds N_ITEMS simulated text inputs through ``embed_inputs`` (the code behind
``mmbind embed``) and prints ``committed <count>`` after every commit has been flushed.
"""
from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

import numpy as np


class FakeBinder:
    def __init__(self, dim: int = 16, seed: int = 0, modalities: tuple[str, ...] = ("image", "text", "audio")):
        self.dim = dim
        self.seed = seed
        self.modalities = list(modalities)
        self.anchor_modality = modalities[0]
        self.encoded = 0  # how many inputs went through encode (resume must not redo work)

    def fingerprint(self) -> str:
        return f"fake-{self.dim}-{self.seed}"

    def temperature(self, modality: str) -> float:
        return 0.05

    def vector(self, x: object, modality: str) -> np.ndarray:
        if isinstance(x, (str, Path)) and modality != "text" and Path(x).is_file():
            x = Path(x).read_bytes()
        data = x if isinstance(x, bytes) else repr(x).encode()
        seed = int.from_bytes(hashlib.sha256(f"{self.seed}|{modality}|".encode() + data).digest()[:8], "little")
        v = np.random.default_rng(seed).standard_normal(self.dim)
        return (v / np.linalg.norm(v)).astype(np.float32)

    def encode(self, inputs, modality: str, batch_size: int = 32, **kwargs) -> np.ndarray:
        inputs = list(inputs)
        self.encoded += len(inputs)
        if not inputs:
            return np.empty((0, self.dim), np.float32)
        return np.stack([self.vector(x, modality) for x in inputs])


def items(n: int) -> list[dict]:
    """Simulated text inputs with labels and metadata."""
    return [{"input": f"simulated text {i}", "label": i % 10, "meta": {"i": i, "even": i % 2 == 0}}
            for i in range(n)]


def status_flags(path: str | Path) -> int:
    """The HDF5 superblock's file consistency flags: set while a writer has the file open (and
    after it was killed), 0 once closed cleanly. The store's superblock (v2 or v3) starts the
    file: signature (8 bytes), version, two sizes, then the flags byte."""
    with open(path, "rb") as fh:
        head = fh.read(12)
    return head[11] if len(head) == 12 and head[8] >= 2 else 0


def main(argv: list[str]) -> None:
    import argparse

    from mmbind.store import EmbeddingStore, embed_inputs

    parser = argparse.ArgumentParser()
    parser.add_argument("store")
    parser.add_argument("n", type=int)
    parser.add_argument("batch", type=int)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--collection", default="texts")
    parser.add_argument("--max-file-size", type=int, default=0, help="RLIMIT_FSIZE: a disk that fills up")
    args = parser.parse_args(argv)
    if args.max_file_size:
        import resource
        import signal

        resource.setrlimit(resource.RLIMIT_FSIZE, (args.max_file_size, args.max_file_size))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG, as on a full disk

    def report(result, count):
        print(f"committed {count}", flush=True)
        if args.sleep:
            time.sleep(args.sleep)

    binder = FakeBinder(dim=args.dim)
    # a killed writer's flags are still set; opening the store must clear them (HDF5 refuses otherwise)
    killed_writer = Path(args.store).is_file() and status_flags(args.store) != 0
    with EmbeddingStore(args.store) as store:
        print(f"opened recovered={killed_writer}", flush=True)
        total = embed_inputs(store, binder, args.collection, items(args.n), modality="text", batch_size=args.batch,
                             on_commit=report)
    print(f"done added={total.added} skipped={total.skipped} encoded={binder.encoded}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
