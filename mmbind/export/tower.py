"""One modality's tower (encoder, head, shared projection if any, l2 normalisation) as an ONNX
or TorchScript graph.

Preprocessing stays outside the graph: the graph's inputs are the tensors of the collated batch
that ``Binder.prepare(inputs, modality)`` makes (load, transform, collate; text towers tokenise in
collate), in a fixed order with fixed names, and its one output ``embedding`` is (B, dim) unit
vectors. Dimension 0 of every input is the batch; integer and boolean inputs (token ids and
masks) also vary in dimension 1, the sequence. The graph carries mmbind's metadata (modality,
the binder's fingerprint, input names, preprocess options) so a deployment can rebuild the
preprocessing and match the vectors to a store's collection.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

import mmbind
from mmbind.binder import Binder
from mmbind.errors import ExportError

Format = Literal["onnx", "torchscript"]
FORMATS = ("onnx", "torchscript")
OUTPUT_NAME = "embedding"
METADATA_KEY = "mmbind"  # the ONNX metadata_props key / the TorchScript extra file holding TowerMetadata
ONNX_OPSET = 18


@dataclass
class TowerMetadata:
    """What a deployment needs beside the graph to feed it and to trust its vectors."""

    modality: str
    encoder: str
    dim: int
    fingerprint: str  # Binder.fingerprint(): the one a store collection of these vectors records
    inputs: list[str]
    preprocess: dict[str, Any] = field(default_factory=dict)
    mmbind_version: str = mmbind.__version__

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


class ExportedTower(nn.Module):
    """encoder -> head (-> a shared projection) -> l2 normalisation, called with the collated
    batch's tensors in order."""

    def __init__(self, binder: Binder, modality: str, names: list[str], structure: str) -> None:
        super().__init__()
        self.encoder = binder.encoders[modality]
        self.head = binder.heads[modality]
        self.projected = binder.projection is not None
        self.projection = binder.projection if binder.projection is not None else nn.Identity()
        self.names = names
        self.structure = structure  # "tensor", "dict" or "tuple": how the encoder takes its batch

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        if self.structure == "tensor":
            batch: Any = tensors[0]
        elif self.structure == "dict":
            batch = dict(zip(self.names, tensors))
        else:
            batch = tuple(tensors)
        embeddings = self.head(self.encoder(batch))
        if self.projected:
            embeddings = self.projection(F.normalize(embeddings, dim=-1))
        return F.normalize(embeddings, dim=-1)


def flatten_batch(batch: Any, modality: str, encoder: str) -> tuple[list[str], list[torch.Tensor], str]:
    """(names, tensors, structure) of a collated batch; ExportError when it is not tensors."""
    if isinstance(batch, torch.Tensor):
        return ["input"], [batch], "tensor"
    if isinstance(batch, dict) and batch and all(isinstance(v, torch.Tensor) for v in batch.values()):
        return list(batch), list(batch.values()), "dict"
    if isinstance(batch, tuple) and batch and all(isinstance(v, torch.Tensor) for v in batch):
        return [f"input_{i}" for i in range(len(batch))], list(batch), "tuple"
    kind = type(batch).__name__
    if isinstance(batch, (list, tuple)) and batch:
        kind += f" of {type(batch[0]).__name__}"
    raise ExportError(
        f"the {modality} tower cannot be exported: its collated batch is a {kind}, not tensors, so its "
        f"encoder {encoder!r} turns raw items into tensors inside forward; expected an encoder whose "
        f"collate(items) returns a tensor or a dict/tuple of tensors (as the built-in text encoders "
        f"tokenise in collate)")


def example_batch(binder: Binder, modality: str) -> Any:
    """A collated batch of two of the modality's example inputs (two, so the batch stays dynamic)."""
    spec = mmbind.get_modality(modality)
    try:
        examples = list(spec.example_inputs()) if spec.example_inputs is not None else []
    except ImportError as error:  # e.g. example photos from a package of the [demo] extra
        raise ExportError(f"the {modality} modality's example inputs need a package that is not installed "
                          f"({error}); trace with inputs of yours (mmbind export --input FILE) or pip install "
                          f"'mmbind[demo]'") from None
    if not examples:
        raise ExportError(f"the {modality} modality has no example_inputs(): the exporter traces the tower "
                          f"on a real batch; expected the plugin to provide example inputs")
    examples = (examples * 2)[:2]
    return binder.prepare(examples, modality)


def _dynamic_axes(names: list[str], tensors: list[torch.Tensor]) -> dict[str, dict[int, str]]:
    axes = {}
    for name, tensor in zip(names, tensors):
        axes[name] = {0: "batch"}
        if tensor.dim() >= 2 and not tensor.is_floating_point():
            axes[name][1] = "sequence"
    axes[OUTPUT_NAME] = {0: "batch"}
    return axes


def export_tower(binder: Binder, modality: str, out: str | Path, format: Format = "onnx",
                 batch: Any = None) -> TowerMetadata:
    """Write ``modality``'s tower to ``out`` as ONNX or TorchScript and return its metadata.

    ``batch``: the collated batch to trace with (default: two of the modality's example inputs).
    Raises ExportError, naming the tower and the reason, for a tower that cannot be exported.
    """
    if format not in FORMATS:
        raise ExportError(f"format {format!r}: expected one of {', '.join(FORMATS)}")
    if modality not in binder.encoders:
        raise ExportError(f"this binder has no {modality!r} tower; it has {', '.join(binder.modalities)}")
    tower_config = binder.config.towers[modality]
    binder.eval()
    batch = example_batch(binder, modality) if batch is None else batch
    names, tensors, structure = flatten_batch(batch, modality, tower_config.encoder)
    device = next(binder.parameters()).device
    tensors = [t.to(device) for t in tensors]
    tower = ExportedTower(binder, modality, names, structure).eval()
    metadata = TowerMetadata(modality, tower_config.encoder, binder.dim, binder.fingerprint(), names,
                             dict(tower_config.preprocess))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.stem}.partial{out.suffix}")  # renamed over ``out`` only once complete
    try:
        with torch.no_grad():
            if format == "onnx":
                _to_onnx(tower, tensors, names, partial, metadata)
            else:
                _to_torchscript(tower, tensors, partial, metadata)
        partial.replace(out)
    except ExportError:
        raise
    except Exception as error:  # the exporter's own message says which operation failed
        raise ExportError(f"the {modality} tower (encoder {tower_config.encoder!r}) cannot be exported to "
                          f"{format}: {type(error).__name__}: {str(error).strip().splitlines()[0]}") from error
    finally:
        partial.unlink(missing_ok=True)
    return metadata


def _to_onnx(tower: nn.Module, tensors: list[torch.Tensor], names: list[str], out: Path,
             metadata: TowerMetadata) -> None:
    try:
        import onnx
    except ImportError:
        raise ExportError("ONNX export needs the onnx package: pip install 'mmbind[export]'") from None

    axes = _dynamic_axes(names, tensors)
    try:
        # The TorchScript-based exporter first: fast, and it needs no onnxscript.
        torch.onnx.export(tower, tuple(tensors), str(out), input_names=names, output_names=[OUTPUT_NAME],
                          dynamic_axes=axes, opset_version=ONNX_OPSET, dynamo=False)
    except Exception as first:  # e.g. an adaptive pool whose output size does not divide its input
        # torch.export decomposes what the older exporter cannot; *tensors is one varargs parameter.
        dims = {label: torch.export.Dim.AUTO for label in ("batch", "sequence")}
        shapes = ((tuple({axis: dims[label] for axis, label in axes[n].items()} for n in names)),)
        try:
            torch.onnx.export(tower, tuple(tensors), str(out), input_names=names, output_names=[OUTPUT_NAME],
                              dynamic_shapes=shapes, opset_version=ONNX_OPSET, dynamo=True, verbose=False)
        except Exception as second:
            raise second from first
    model = onnx.load(str(out))
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, metadata.to_json()
    onnx.save(model, str(out))


def _to_torchscript(tower: nn.Module, tensors: list[torch.Tensor], out: Path, metadata: TowerMetadata) -> None:
    traced = torch.jit.trace(tower, tuple(tensors), strict=False, check_trace=False)
    torch.jit.save(traced, str(out), _extra_files={METADATA_KEY: metadata.to_json()})


def read_metadata(path: str | Path) -> TowerMetadata:
    """The mmbind metadata of an exported .onnx or TorchScript file."""
    path = Path(path)
    if path.suffix == ".onnx":
        import onnx

        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        text = props.get(METADATA_KEY)
    else:  # a TorchScript file is a zip archive: read the extra file without loading the program
        import zipfile

        with zipfile.ZipFile(path) as archive:
            member = next((n for n in archive.namelist() if n.endswith(f"/extra/{METADATA_KEY}")), None)
            text = archive.read(member).decode() if member else None
    if text is None:
        raise ExportError(f"{path}: no mmbind metadata; expected a file written by mmbind export")
    return TowerMetadata(**json.loads(text))


def run_exported(path: str | Path, batch: Any) -> torch.Tensor:
    """The embeddings an exported file gives for a collated batch: onnxruntime for .onnx, the
    TorchScript runtime otherwise (on the CPU)."""
    path = Path(path)
    metadata = read_metadata(path)
    names, tensors, _ = flatten_batch(batch, metadata.modality, metadata.encoder)
    tensors = [t.detach().cpu() for t in tensors]
    if path.suffix == ".onnx":
        try:
            import onnxruntime
        except ImportError:
            raise ExportError("running an ONNX tower needs onnxruntime: pip install 'mmbind[export]'") from None
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        wanted = {i.name for i in session.get_inputs()}  # an input the graph ignores is pruned away
        return torch.from_numpy(session.run([OUTPUT_NAME], {n: t.numpy() for n, t in zip(names, tensors)
                                                            if n in wanted})[0])
    with torch.no_grad():
        return torch.jit.load(str(path), map_location="cpu")(*tensors)
