"""A tiny CLIP checkpoint + BPE tokenizer written to a folder, so the real transformers loading
code of the image-clip and text-clip encoders is tested without any download."""
from __future__ import annotations

import json
from pathlib import Path

WORDS = ["seven", "three", "photo", "number", "of", "the", "a"]


def write_tiny_clip(folder: Path, projection_dim: int = 16, image_size: int = 32) -> Path:
    """CLIPModel (2 layers, 32-d towers) + CLIPTokenizer over letters and a few merged words."""
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab: dict[str, int] = {}
    for ch in letters:
        vocab[ch] = len(vocab)
    for ch in letters:
        vocab[ch + "</w>"] = len(vocab)
    merges: list[str] = []
    for word in WORDS:  # merge each word left to right into a single token
        current = word[0]
        for i, ch in enumerate(word[1:], start=1):
            right = ch + ("</w>" if i == len(word) - 1 else "")
            merges.append(f"{current} {right}")
            current = current + right
            vocab.setdefault(current, len(vocab))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(dict.fromkeys(merges)) + "\n")
    tokenizer = CLIPTokenizer(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"))
    towers = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  projection_dim=projection_dim)
    text = dict(towers, vocab_size=len(vocab), max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    vision = dict(towers, image_size=image_size, patch_size=8)
    torch.manual_seed(0)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection_dim))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# A tiny OpenCLIP architecture (ViT image tower on 64x64, 2-block text tower), random weights.
TINY_OPENCLIP = {"embed_dim": 32,
                 "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
                 "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}}


def write_tiny_openclip(folder: Path):
    """An OpenCLIP model in OpenCLIP's local-dir layout (open_clip_config.json + safetensors) in
    ``folder``, plus the same weights as a bare checkpoint ``tiny.pt``; returns the model (eval).
    Its preprocessing statistics are not CLIP's, so image-openclip's renormalisation is exercised."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    config = {"model_cfg": TINY_OPENCLIP, "preprocess_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}}
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    torch.manual_seed(0)
    model = open_clip.create_model(f"local-dir:{folder}", load_weights=False).eval()
    save_file(model.state_dict(), str(folder / "open_clip_model.safetensors"))
    torch.save(model.state_dict(), folder / "tiny.pt")
    return model
