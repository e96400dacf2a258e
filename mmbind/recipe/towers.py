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
# Tower fields added after binders were first saved, with their defaults: config.json gets them
# only when set, so a binder saved before keeps its fingerprint (and the stores keyed by it).
LATER_FIELDS: dict[str, Any] = {"train_last_blocks": 0, "lora": {}}


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
    train_last_blocks: int = Field(0, ge=0, description="> 0: only the encoder's last N blocks (and the layers "
                                                        "after them) train; 0: every block.")
    lora: dict[str, Any] = Field(default_factory=dict,
                                 description="LoRA adapters through peft ({rank, alpha, target_modules, dropout}); "
                                             "the encoder's own weights stay frozen.")
    augment: bool = Field(True, description="Use the transform's train-time augmentation while binding.")
    loss_options: dict[str, Any] = Field(default_factory=dict,
                                         description="This tower's loss options, over [bind] loss_options.")


    @model_validator(mode="after")
    def _one_way_to_tune(self) -> "TowerConfig":
        from mmbind.finetune import check_tuning  # torch: only when a tower is validated

        check_tuning(self)
        return self


class BinderConfig(ConfigModel):
    """A binder's towers and which of them is the anchor: what config.json of a saved binder holds."""

    positional_fields: ClassVar[tuple[str, ...]] = ("anchor", "towers")

    anchor: str = Field(min_length=1, description="The anchor's modality, a key of towers.")
    towers: dict[str, TowerConfig] = Field(description="Every tower, the anchor's included, by modality.")
    shared_projection: bool = Field(False, description="A linear map shared by every modality, the anchor's "
                                                       "included, applied to each unit embedding (identity at "
                                                       "the start, trained while binding).")

    @model_validator(mode="after")
    def _anchor_is_a_tower(self) -> "BinderConfig":
        if self.anchor not in self.towers:
            raise ValueError(f"the anchor {self.anchor!r} has no tower; towers: {', '.join(self.towers)}")
        return self

    def to_dict(self) -> dict[str, Any]:
        data = self.model_dump()
        if not data["shared_projection"]:  # written only when set, as LATER_FIELDS
            del data["shared_projection"]
        for tower in data["towers"].values():  # written only when set: see LATER_FIELDS
            for key, default in LATER_FIELDS.items():
                if tower.get(key) == default:
                    del tower[key]
        return {"mmbind_version": mmbind.__version__, **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config.json") -> "BinderConfig":
        """Read what ``to_dict`` wrote (other keys of config.json, such as dim, are the Binder's)."""
        try:
            fields = ("anchor", "towers", "shared_projection")
            return cls.model_validate({key: data[key] for key in fields if key in data})
        except ValidationError as error:
            raise explain(error, cls, source, root="config") from None
