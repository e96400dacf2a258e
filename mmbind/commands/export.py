"""`mmbind export` (a tower to ONNX or TorchScript) and `mmbind export-projector` (a collection
for TensorBoard's embedding projector). torch, onnx and h5py load inside the commands."""
from __future__ import annotations

import json

import click


@click.command()
@click.argument("binder_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--modality", "-m", required=True, help="The tower to export (a modality of the binder).")
@click.option("--format", "fmt", type=click.Choice(["onnx", "torchscript"]), default="onnx", show_default=True)
@click.option("--device", default="cpu", show_default=True, help="Trace on auto, cpu, cuda[:N] or mps.")
@click.option("--input", "inputs", multiple=True,
              help="An input to trace and check with (repeatable); default: the modality's example inputs.")
def export(binder_dir: str, out: str, modality: str, fmt: str, device: str, inputs: tuple[str, ...]) -> None:
    """Write one tower of the binder in BINDER_DIR (encoder, head, l2 normalisation) to OUT.

    Preprocessing stays outside the graph: its inputs are the tensors of Binder.prepare(inputs,
    modality) (text: input_ids, attention_mask, ...), its output `embedding` is (batch, dim) unit
    vectors. The written file is run on the modality's example inputs and compared with mmbind.
    """
    from mmbind.binder import Binder
    from mmbind.devices import resolve_device
    from mmbind.export.tower import example_batch, export_tower, run_exported

    binder = Binder.from_pretrained(binder_dir, device=resolve_device(device))
    if modality not in binder.encoders:  # before reading any input: the clearer message
        from mmbind.errors import ExportError

        raise ExportError(f"this binder has no {modality!r} tower; it has {', '.join(binder.modalities)}")
    batch = binder.prepare(list(inputs), modality) if inputs else example_batch(binder, modality)
    metadata = export_tower(binder, modality, out, fmt, batch=batch)
    import torch

    from mmbind.binder import to_device

    with torch.no_grad():
        expected = binder(to_device(batch, next(binder.parameters()).device), modality).float().cpu()
    difference = float((run_exported(out, batch) - expected).abs().max())
    click.echo(json.dumps({"file": out, "format": fmt, "modality": modality, "encoder": metadata.encoder,
                           "inputs": metadata.inputs, "output": f"embedding (batch, {metadata.dim})",
                           "fingerprint": metadata.fingerprint, "max_abs_difference": difference}))


@click.command(name="export-projector")
@click.argument("store", type=click.Path(exists=True, dir_okay=False))
@click.argument("collection")
@click.argument("out", type=click.Path(file_okay=False))
def export_projector(store: str, collection: str, out: str) -> None:
    """Write COLLECTION of STORE to the folder OUT in TensorBoard's projector format
    (tensors.tsv, metadata.tsv, projector_config.pbtxt); view with `tensorboard --logdir OUT`."""
    from mmbind.export.projector import export_projector as write
    from mmbind.store import EmbeddingStore

    with EmbeddingStore(store, mode="r") as handle:
        click.echo(json.dumps(write(handle, collection, out)))


def register(cli: click.Group) -> None:
    """Add ``export`` and ``export-projector`` to the CLI."""
    for command in (export, export_projector):
        cli.add_command(command)
