"""What a binder is built from: one TowerConfig per modality, the anchor's among them.

A recipe's [anchor] and [modalities.<name>] tables become TowerConfigs, and a saved binder's
config.json holds them (``BinderConfig.to_dict``), so one schema describes both.
"""
from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationError, model_validator

import mmbind
from mmbind.recipe.errors import explain
from mmbind.recipe.model import ConfigModel

Head = Literal["linear", "mlp", "none"]
# The logit scale 1/tau is clamped to [1, 100] while training (as OpenCLIP does), so a temperature
# outside [0.01, 1] would be silently changed at the first step.
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.01, 1.0


class TowerConfig(ConfigModel):
    """One modality's tower: its encoder and options, its transform's settings, the head, the temperature."""

    positional_fields: ClassVar[tuple[str, ...]] = ("encoder",)

    encoder: str = Field(min_length=1, description="A registered encoder for this modality (`mmbind list encoders`).")
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword arguments of the encoder factory, timm-style (output_dim, width, grad_checkpointing, ...).")
    preprocess: dict[str, Any] = Field(
        default_factory=dict,
        description="Options of the modality's transform (sizes, clip lengths, normalisation); "
                    "recorded in the model's config.json.")
    head: Head = Field("linear", description='Projection head: "linear", "mlp", or "none" (the encoder output '
                                             "is the embedding; its output_dim must equal the anchor's).")
    temperature: float = Field(0.07, ge=MIN_TEMPERATURE, le=MAX_TEMPERATURE,
                               description="Initial tau of this modality's logits (logit scale 1/tau).")
    learn_temperature: bool = Field(True, description="Learn tau (its logit scale clamped to [1, 100], as "
                                                      "OpenCLIP) or keep it fixed (as ImageBind).")
    freeze_encoder: bool = Field(False, description="Keep the encoder's weights; only the head trains.")
    augment: bool = Field(True, description="Use the transform's train-time augmentation while binding.")
    loss_options: dict[str, Any] = Field(default_factory=dict,
                                         description="This tower's loss options, over [bind] loss_options.")


class BinderConfig(ConfigModel):
    """A binder's towers and which of them is the anchor: what config.json of a saved binder holds."""

    positional_fields: ClassVar[tuple[str, ...]] = ("anchor", "towers")

    anchor: str = Field(min_length=1, description="The anchor's modality, a key of towers.")
    towers: dict[str, TowerConfig] = Field(description="Every tower, the anchor's included, by modality.")

    @model_validator(mode="after")
    def _anchor_is_a_tower(self) -> "BinderConfig":
        if self.anchor not in self.towers:
            raise ValueError(f"the anchor {self.anchor!r} has no tower; towers: {', '.join(self.towers)}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"mmbind_version": mmbind.__version__, **self.model_dump()}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config.json") -> "BinderConfig":
        """Read what ``to_dict`` wrote (other keys of config.json, such as dim, are the Binder's)."""
        try:
            return cls.model_validate({key: data[key] for key in ("anchor", "towers") if key in data})
        except ValidationError as error:
            raise explain(error, cls, source, root="config") from None
