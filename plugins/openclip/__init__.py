"""OpenCLIP towers: ``image-openclip`` and ``text-openclip`` (open_clip_torch). A CLIP pair is
an anchor plus a prompt tower, ImageBind's own recipe.

Weights: option ``model`` names an OpenCLIP architecture ("ViT-B-32") with ``pretrained`` a tag
(when a hub is reachable) or a local checkpoint file, or ``model = "local-dir:/path"`` (a folder
with open_clip_config.json and its weights, what OpenCLIP's push_to_hf_hub writes).
Only hook implementations live here; open_clip loads inside the factories.
"""
from __future__ import annotations

import mmbind

PLUGIN_API = 1  # the mmbind plugin contract this plugin is written for


@mmbind.hookimpl
def register_encoders(register):
    E = mmbind.EncoderSpec
    register(E("image-openclip", "image", mmbind.lazy("mmbind_plugins.openclip.encoders:openclip_image"),
               "OpenCLIP image tower (encode_image) from options model=<name or local-dir:PATH>, "
               "pretrained=<tag or file>", pretrained=True))
    register(E("text-openclip", "text", mmbind.lazy("mmbind_plugins.openclip.encoders:openclip_text"),
               "OpenCLIP text tower (encode_text, the model's tokenizer) from options model=<name or "
               "local-dir:PATH>, pretrained=<tag or file>", pretrained=True))
