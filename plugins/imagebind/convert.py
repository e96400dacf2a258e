"""Import an ImageBind checkpoint (imagebind_huge.pth or any ``ImageBindModel`` state dict) as an
mmbind binder folder: config.json + model.safetensors.

The checkpoint is memory-mapped (``torch.load(weights_only=True, mmap=True)``: nothing is
unpickled but tensors) and only the requested modalities' tensors are read and written, so
importing vision and audio from the 4.5 GB file never holds the other towers' weights in memory.
No model is built either: the tensors are renamed onto the layout of mmbind's towers
(plugins/imagebind/towers.py), checked against a binder built on the meta device (names and
shapes, no memory), and streamed into the safetensors file.

ImageBind's layout: ``modality_preprocessors.<m>`` (stems), ``modality_trunks.<m>``,
``modality_heads.<m>`` and ``modality_postprocessors.<m>`` (the logit scales), for
m in vision, text, audio, depth, thermal, imu. Vision becomes the anchor (mmbind modality
"image"); each other modality a bound tower with ImageBind's logit scale as its temperature.
"video" is ImageBind's vision tower applied to clips (a copy of the vision weights).
"""
from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch

from mmbind.binder import CONFIG_NAME, WEIGHTS_NAME, Binder, BinderConfig, TowerConfig
from mmbind.errors import CheckpointError
from mmbind.weights import load_torch_file

log = logging.getLogger(__name__)

MODALITIES = ("vision", "text", "audio", "depth", "thermal", "imu")
CHOICES = (*MODALITIES, "video")
MMBIND_MODALITY = {"vision": "image", "text": "text", "audio": "audio", "depth": "depth",
                   "thermal": "thermal", "imu": "imu", "video": "video"}
ENCODER = {m: f"imagebind-{m}" for m in CHOICES}
# Not stored in a state dict: imagebind_huge's head counts (override with num_heads=...).
HUGE_HEADS = {"vision": 16, "text": 16, "audio": 12, "depth": 8, "thermal": 12, "imu": 8}
# Preprocessing options of the imported towers, over the modalities' defaults (ImageBind's
# sizes): images resized by Pillow and audio clips centred in place, as ImageBind's data module
# does, so that files give its tensors to the bit.
PREPROCESS = {"vision": {"resize_backend": "pil"}, "audio": {"center": "imagebind"}}
FROZEN = ("vision", "text")  # OpenCLIP's towers, frozen in ImageBind's training

_BLOCK_RULES = [
    (r"blocks\.(\d+)\.attn\.in_proj_weight", r"trunk.blocks.\1.attn.qkv.weight"),
    (r"blocks\.(\d+)\.attn\.in_proj_bias", r"trunk.blocks.\1.attn.qkv.bias"),
    (r"blocks\.(\d+)\.attn\.bias_([kv])", r"trunk.blocks.\1.attn.bias_\2"),
    (r"blocks\.(\d+)\.attn\.out_proj\.(weight|bias)", r"trunk.blocks.\1.attn.proj.\2"),
    (r"blocks\.(\d+)\.norm_([12])\.(weight|bias)", r"trunk.blocks.\1.norm\2.\3"),
    (r"blocks\.(\d+)\.mlp\.(fc[12])\.(weight|bias)", r"trunk.blocks.\1.mlp.\2.\3"),
    (r"pre_transformer_layer\.0\.(weight|bias)", r"trunk.norm_pre.\1"),
]
_STEM = [(r"cls_token", "stem.cls_token"), (r"pos_embedding_helper\.pos_embed", "stem.pos_embed")]
_RULES: dict[str, dict[str, list[tuple[str, str]]]] = {
    "vision": {"preprocessors": [(r"rgbt_stem\.proj\.1\.weight", "stem.proj.weight"), *_STEM],
               "heads": [(r"0\.(weight|bias)", r"head.norm.\1"), (r"2\.weight", "head.proj.weight")]},
    "text": {"preprocessors": [(r"token_embedding\.weight", "stem.token_embedding.weight"),
                               (r"pos_embed", "stem.pos_embed"), (r"mask", "")],  # the causal mask: a constant
             "heads": [(r"proj\.0\.(weight|bias)", r"head.norm.\1"), (r"proj\.1\.weight", "head.proj.weight")]},
    "imu": {"preprocessors": [(r"imu_stem\.proj\.weight", "stem.proj.weight"),
                              (r"imu_stem\.norm_layer\.(weight|bias)", r"stem.norm.\1"),
                              (r"cls_token", "stem.cls_token"), (r"pos_embed", "stem.pos_embed")],
            "heads": [(r"0\.(weight|bias)", r"head.norm.\1"), (r"3\.weight", "head.proj.weight")]},
}
# ImageBind's audio and thermal preprocessors keep their stem under the name "rgbt_stem"
for _m, _stem in (("audio", "rgbt_stem"), ("thermal", "rgbt_stem"), ("depth", "depth_stem")):
    _RULES[_m] = {"preprocessors": [(rf"{_stem}\.proj\.weight", "stem.proj.weight"),
                                    (rf"{_stem}\.norm_layer\.(weight|bias)", r"stem.norm.\1"), *_STEM],
                  "heads": [(r"0\.(weight|bias)", r"head.norm.\1"), (r"2\.weight", "head.proj.weight")]}


def mmbind_name(imagebind_key: str) -> str | None:
    """ImageBind's state-dict key -> the key inside an mmbind tower (``stem...``, ``trunk...``,
    ``head...``); "" for keys that carry no weight (the text causal mask, logit scales); None if
    the key is not ImageBind's."""
    match = re.fullmatch(r"modality_(preprocessors|trunks|heads|postprocessors)\.(\w+)\.(.+)", imagebind_key)
    if match is None or match.group(2) not in MODALITIES:
        return None
    group, modality, rest = match.groups()
    if group == "postprocessors":
        return ""
    rules = _BLOCK_RULES if group == "trunks" else _RULES[modality][group]
    for pattern, replacement in rules:
        if re.fullmatch(pattern, rest):
            return re.sub(pattern, replacement, rest)
    return None


def load_state_dict(path: str | Path) -> Mapping[str, torch.Tensor]:
    """The checkpoint's tensors, memory-mapped: nothing is read until a tensor is used."""
    path = Path(path)
    state = load_torch_file(path, mmap=True)
    for wrapper in ("model", "state_dict"):  # a state dict saved inside a training checkpoint
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not any(str(k).startswith("modality_trunks.") for k in state):
        raise CheckpointError(f"{path}: holds no ImageBind weights (no 'modality_trunks.*' keys); expected "
                              f"the state dict of an ImageBindModel")
    return state


def _tower_tensors(state: Mapping[str, torch.Tensor], modality: str) -> dict[str, torch.Tensor]:
    prefixes = tuple(f"modality_{g}.{modality}." for g in ("preprocessors", "trunks", "heads"))
    out = {}
    for key, tensor in state.items():
        if key.startswith(prefixes):
            name = mmbind_name(key)
            if name is None:
                raise CheckpointError(f"checkpoint key {key!r} is not part of ImageBind's {modality} tower "
                                      f"layout this importer knows")
            if name:
                out[name] = tensor
    if not out:
        raise CheckpointError(f"the checkpoint has no {modality} tower (no 'modality_trunks.{modality}.*' keys)")
    return out


def _blocks(tensors: Mapping[str, torch.Tensor]) -> int:
    return 1 + max(int(k.split(".")[2]) for k in tensors if k.startswith("trunk.blocks."))


def _side(tokens: int, what: str) -> int:
    side = math.isqrt(tokens)
    if side * side != tokens:
        raise CheckpointError(f"{what}: {tokens} position embeddings are not a square grid of patches")
    return side


def tower_options(modality: str, tensors: Mapping[str, torch.Tensor], num_heads: int,
                  audio: Mapping[str, int] | None = None) -> dict[str, Any]:
    """The encoder options of one tower, read from its tensors' shapes (sizes, depth) plus the
    ones a state dict does not hold (heads; audio stride and spectrogram size)."""
    key = "imagebind-vision" if modality == "video" else ENCODER[modality]
    dim = int(tensors["stem.pos_embed"].shape[-1])
    tokens = int(tensors["stem.pos_embed"].shape[1])
    options: dict[str, Any] = {"embed_dim": dim, "depth": _blocks(tensors), "num_heads": int(num_heads),
                               "output_dim": int(tensors["head.proj.weight"].shape[0])}
    if dim % num_heads:
        raise CheckpointError(f"{modality}: width {dim} is not divisible by {num_heads} heads; "
                              f"pass the model's head count (num_heads / --heads {modality}=N)")
    proj = tensors.get("stem.proj.weight")
    if modality in ("vision", "video"):
        patch = int(proj.shape[-1])
        options.update(img_size=_side(tokens - 1, key) * patch, patch_size=patch, frames=int(proj.shape[2]))
    elif modality == "text":
        vocab = tensors["stem.token_embedding.weight"].shape[0]
        options.update(context_length=tokens, vocab_size=int(vocab))
    elif modality == "audio":
        patch = int(proj.shape[-1])
        sizes = {"mel_bins": 128, "target_frames": 204, "stride": 10, **(audio or {})}
        grid = [(sizes[s] - patch) // sizes["stride"] + 1 for s in ("mel_bins", "target_frames")]
        if grid[0] * grid[1] != tokens - 1:
            raise CheckpointError(f"audio: {tokens - 1} position embeddings do not fit {sizes} with "
                                  f"{patch}x{patch} patches; pass the model's audio sizes")
        options.update(mel_bins=sizes["mel_bins"], target_frames=sizes["target_frames"], patch_size=patch,
                       stride=sizes["stride"], drop_path=0.1)
    elif modality in ("depth", "thermal"):
        patch = int(proj.shape[-1])
        options.update(img_size=_side(tokens - 1, key) * patch, patch_size=patch)
    elif modality == "imu":
        channels = 6
        window = int(proj.shape[1]) // channels
        options.update(length=(tokens - 1) * window, window=window, channels=channels, drop_path=0.7,
                       head_dropout=0.5)
    return options


def temperature(state: Mapping[str, torch.Tensor], modality: str) -> tuple[float, bool]:
    """ImageBind's logit scale of a modality as (tau, learnable): 1 / min(exp(log scale), 100).
    Vision (and video) outputs are not scaled: tau 1."""
    scale = state.get(f"modality_postprocessors.{modality}.1.log_logit_scale")
    if scale is None:
        return 1.0, False
    return 1.0 / min(math.exp(float(scale)), 100.0), modality == "text"


def import_imagebind(checkpoint: str | Path, out: str | Path, modalities: Iterable[str] = MODALITIES,
                     num_heads: Mapping[str, int] | None = None,
                     audio: Mapping[str, int] | None = None) -> Path:
    """Write the binder folder ``out`` from ImageBind's ``checkpoint``, with the towers of
    ``modalities`` (ImageBind's names: vision, text, audio, depth, thermal, imu, plus video);
    vision is always the anchor. ``num_heads`` overrides imagebind_huge's head counts per
    modality (a state dict does not record them). Returns ``out``."""
    from safetensors.torch import save_file

    wanted = list(dict.fromkeys(["vision", *modalities]))
    unknown = [m for m in wanted if m not in CHOICES]
    if unknown:
        raise ValueError(f"unknown ImageBind modality {', '.join(map(repr, unknown))}; choose from {', '.join(CHOICES)}")
    heads = {**HUGE_HEADS, **(num_heads or {})}
    state = load_state_dict(checkpoint)
    towers: dict[str, TowerConfig] = {}
    tensors: dict[str, torch.Tensor] = {}
    for modality in wanted:
        source = "vision" if modality == "video" else modality
        part = _tower_tensors(state, source)
        options = tower_options(modality, part, heads[source], audio)
        tau, learnable = temperature(state, source)
        name = MMBIND_MODALITY[modality]
        towers[name] = TowerConfig(
            encoder=ENCODER[modality], options=options, preprocess=dict(PREPROCESS.get(modality, {})),
            head="none", temperature=tau, learn_temperature=learnable, freeze_encoder=source in FROZEN)
        # video shares vision's tensors in memory; the file needs its own copy
        tensors.update({f"encoders.{name}.{k}": (v.clone() if modality == "video" else v) for k, v in part.items()})
        tensors[f"log_scales.{name}"] = torch.tensor(math.log(1.0 / tau), dtype=torch.float32)
        log.info("imagebind %s -> %s tower %s (%d tensors, tau %.4g)", modality, name, options, len(part), tau)
    config = BinderConfig("image", towers)
    dim = _check_layout(config, tensors)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = config.to_dict()
    data.update(dim=dim, anchor_frozen=True, imported_from={"imagebind": Path(checkpoint).name, "modalities": wanted})
    (out / CONFIG_NAME).write_text(json.dumps(data, indent=2) + "\n")
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(out / WEIGHTS_NAME), metadata={"format": "pt"})
    return out


def _check_layout(config: BinderConfig, tensors: Mapping[str, torch.Tensor]) -> int:
    """Build the binder on the meta device (no memory) and check that the renamed tensors are
    exactly its state dict, names and shapes; returns the embedding dimension."""
    with torch.device("meta"):
        expected = Binder(config, pretrained=False)
    wanted = {k: tuple(v.shape) for k, v in expected.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in tensors.items()}
    missing, extra = sorted(set(wanted) - set(got)), sorted(set(got) - set(wanted))
    wrong = sorted(k for k in set(wanted) & set(got) if wanted[k] != got[k])
    if missing or extra or wrong:
        detail = "; ".join(f"{label}: {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
                           for label, keys in (("missing", missing), ("unexpected", extra),
                                               ("wrong shape", [f"{k} {got[k]} != {wanted[k]}" for k in wrong]))
                           if keys)
        raise CheckpointError(f"the checkpoint does not map onto mmbind's ImageBind towers ({detail})")
    return int(expected.dim)
