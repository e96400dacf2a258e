"""ImageBind checkpoint import: time and peak memory of importing only vision+audio, against
importing every tower and against loading the whole model with ImageBind's own code.

    python benchmarks/imagebind_import.py [--scale 4] [--repeats 2] [--threads 1]

A randomly initialised ImageBindModel is built with ImageBind's code (imagebind-packaged,
installed by scripts/setup.sh) at imagebind_huge's widths, heads and key layout, with each
trunk's block count divided by SCALE (1: the full 4.5 GB imagebind_huge; the default 4 fits a
shared machine), and saved with torch.save as the released checkpoint is. Then, each in a fresh
process and with the file in the page cache, interleaved REPEATS rounds: ``mmbind import
imagebind`` of vision+audio and of all six towers (memory-mapped, only the asked tensors read,
written as safetensors), and ImageBind's way to load it (``ImageBindModel(...)`` then
``load_state_dict(torch.load(path))``, as ``imagebind_huge(pretrained=True)`` does). Peak memory
is the process's peak resident set (VmHWM) above its resident set once the libraries are
imported; times are medians. Ratio: vision+audio import's peak memory over ImageBind's; target:
at most the vision+audio share of the checkpoint's bytes (holding any other tower's weights would
exceed it). The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))  # imagebind_reference: ImageBind's code, loaded as the tests do

import _common  # noqa: E402

# imagebind_huge (ImageBind's imagebind_model.imagebind_huge) and its block counts.
HUGE = dict(vision_embed_dim=1280, vision_num_heads=16, text_embed_dim=1024, text_num_heads=16, out_embed_dim=1024,
            audio_drop_path=0.1, imu_drop_path=0.7)
BLOCKS = {"vision": 32, "text": 24, "audio": 12, "depth": 12, "thermal": 12, "imu": 6}
KINDS = {"mmbind vision+audio": "vision,audio", "mmbind all towers": "vision,text,audio,depth,thermal,imu",
         "ImageBind whole model": None}


def model_config(scale: int) -> dict:
    return {**HUGE, **{f"{m}_num_blocks": max(1, round(n / scale)) for m, n in BLOCKS.items()}}


def make_checkpoint(path: Path, scale: int) -> dict[str, int]:
    """Save the random model's state dict; returns the bytes per tower (by ImageBind's key)."""
    import torch

    import imagebind_reference

    torch.manual_seed(0)
    state = imagebind_reference.model_module().ImageBindModel(**model_config(scale)).state_dict()
    torch.save(state, path)
    sizes: dict[str, int] = {}
    for key, tensor in state.items():
        modality = key.split(".")[1]
        sizes[modality] = sizes.get(modality, 0) + tensor.numel() * tensor.element_size()
    return sizes


def status_kib(field: str) -> int:
    """A memory figure of this process from /proc/self/status: VmRSS (now) or VmHWM (its peak;
    unlike ru_maxrss it starts afresh at exec, not at the parent's size when it forked)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure(kind: str, checkpoint: Path, out: Path, scale: int) -> dict:
    """In this (fresh) process: one import or load; seconds and peak memory above the baseline."""
    import torch

    import imagebind_reference
    import mmbind
    from mmbind_plugins.imagebind.convert import import_imagebind

    # the libraries both sides use are loaded before the baseline: only the work is measured
    module = imagebind_reference.model_module()
    with torch.device("meta"):
        mmbind.get_encoder("imagebind-text").factory(depth=1)
    baseline = status_kib("VmRSS")
    start = time.perf_counter()
    if KINDS[kind] is None:
        model = module.ImageBindModel(**model_config(scale))
        model.load_state_dict(torch.load(checkpoint, map_location="cpu"))
    else:
        import_imagebind(checkpoint, out, modalities=KINDS[kind].split(","))  # imagebind_huge's head counts
    seconds = time.perf_counter() - start
    peak = status_kib("VmHWM")
    return {"seconds": seconds, "peak_above_baseline_mib": (peak - baseline) / 1024, "baseline_mib": baseline / 1024}


def child(*args: str) -> str:
    """Run this script with ``args`` in a fresh process; its last output line."""
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env={**os.environ})
    if done.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=4, help="divide every trunk's block count by this (1: full size)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--make", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--measure", choices=list(KINDS), help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    _common.add_threads_option(parser)
    args = parser.parse_args()
    _common.apply_threads(args)
    if args.make:
        print(json.dumps(make_checkpoint(args.make, args.scale)))
        return
    if args.measure:
        print(json.dumps(measure(args.measure, args.checkpoint, args.out, args.scale)))
        return

    out = _common.Printer()
    with tempfile.TemporaryDirectory(prefix="imagebind-bench-") as tmp:
        checkpoint = Path(tmp) / "imagebind_huge_layout.pth"
        sizes = json.loads(child("--make", str(checkpoint), "--scale", str(args.scale)))  # the parent stays small
        total_mib = checkpoint.stat().st_size / 2**20
        share = (sizes["vision"] + sizes["audio"]) / sum(sizes.values())
        out(f"checkpoint: imagebind_huge's layout, blocks / {args.scale}: {total_mib:.0f} MiB; "
            f"vision+audio {share:.1%} of its tensor bytes")
        checkpoint.read_bytes()  # in the page cache for every reader alike
        runs: dict[str, list[dict]] = {kind: [] for kind in KINDS}
        for round_ in range(args.repeats):
            for kind in KINDS:
                runs[kind].append(json.loads(child(
                    "--measure", kind, "--checkpoint", str(checkpoint), "--out", str(Path(tmp) / f"out-{round_}"),
                    "--scale", str(args.scale), "--threads", str(args.threads))))
        summary = {kind: {"median_seconds": round(_common.median(r["seconds"] for r in rs), 3),
                          "peak_memory_mib": round(max(r["peak_above_baseline_mib"] for r in rs), 1)}
                   for kind, rs in runs.items()}
    for kind, s in summary.items():
        out(f"{kind:24s} {s['median_seconds']:7.2f} s   peak memory {s['peak_memory_mib']:8.1f} MiB above the "
            f"interpreter with the libraries loaded")
    reference = summary["ImageBind whole model"]
    ours = summary["mmbind vision+audio"]
    ratio = ours["peak_memory_mib"] / reference["peak_memory_mib"]
    time_ratio = ours["median_seconds"] / reference["median_seconds"]
    out(f"vision+audio import / ImageBind's whole-model load: memory {ratio:.3f}, time {time_ratio:.3f}")
    _common.finish("imagebind_import", {
        "title": "ImageBind checkpoint import",
        "ratio": round(ratio, 3),
        "target": f"<= {share:.3f} (the vision+audio share of the checkpoint's bytes)",
        "met": ratio <= share,
        "ratio_meaning": "peak memory of importing vision+audio / of loading the whole model with ImageBind's code",
        "time_ratio": round(time_ratio, 3),
        "setup": {"checkpoint": f"imagebind_huge layout and widths, trunk blocks / {args.scale} "
                                f"({', '.join(f'{m} {max(1, round(n / args.scale))}' for m, n in BLOCKS.items())})",
                  "checkpoint_mib": round(total_mib, 1), "vision_audio_share": round(share, 3),
                  "repeats": args.repeats, "machine": "shared by several engineers; times are noisy"},
        "results": summary,
    }, out.lines)


if __name__ == "__main__":
    main()
