"""The modality gap against the temperature, and one remedy (centring), measured on the eval split.

    python benchmarks/modality_gap.py recipes/fashion.toml --temperatures 0.01 0.02 0.05 0.1 0.2 \\
        [--set KEY=VALUE ...] [--output-root runs/gap] [--runs RUN ...] [--results docs/modality-gap.md]

For each temperature the recipe is trained from scratch with every bound tower's temperature
fixed at that value (learn_temperature = false), same seed, into <output-root>/<recipe>/tau<T>;
``--runs`` adds finished run folders (a recipe's own runs, e.g. benchmarks/quality.py's) as they
are. Per run and bound modality, on the eval split (mmbind.evaluation.gap, k = 10):
- the gap: centroid distance to the anchor's centroid, the share of own-modality nearest
  neighbours (beside the share if perfectly mixed);
- what it costs: zero-shot accuracy through the prompts (every evaluated modality, the anchor's
  too) and R@1 to the anchor (a sample's nearest anchor sample shares its class or pairing key);
- the remedy "centring" (Liang et al. 2022 shift the modalities' centres together): each
  modality's embeddings minus that modality's mean over (at most 2000, class-balanced) TRAINING
  samples, the prompts minus the prompt tower's training mean, renormalised; the same numbers
  again. The means come from the train split, so nothing is tuned on the eval split.
Writes the tables to --results (markdown, generated: do not edit by hand) and the last line is
one JSON object (benchmarks/results/modality_gap.json).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

import _common  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MEAN_SAMPLES = 2000  # training samples per modality for its centre


def measure(binder, data, recipe, anchor_cache: dict[str, Any]) -> dict[str, Any]:
    """The gap, zero-shot and R@1 of every evaluated modality, raw and centred (module docstring)."""
    from mmbind.evaluation.gap import modality_gap
    from mmbind.evaluation.metrics import retrieval_metrics
    from mmbind.evaluation.sampling import balanced_sample
    from mmbind.evaluation.zero_shot import class_embeddings, prompt_modality, zero_shot_predict
    from mmbind.search.topk import normalize_rows as unit

    split, train = data.splits[recipe.eval.split], data.splits["train"]
    anchor = binder.anchor_modality
    prompts = prompt_modality(binder, recipe.eval.text_modality or None)
    modalities = [m for m in binder.modalities if m in split and len(split[m])]

    def embed(samples, m, key):
        # a frozen anchor gives the same vectors in every run: embed it once per fingerprint
        cache_key = (binder.fingerprint(modality=m), key) if m == anchor else None
        if cache_key in anchor_cache:
            return anchor_cache[cache_key]
        out = binder.encode(list(samples.inputs), m, batch_size=64)
        if cache_key:
            anchor_cache[cache_key] = out
        return out

    evaluated = {m: embed(split[m], m, "eval") for m in modalities}
    means = {}
    for m in dict.fromkeys([*modalities, prompts]):
        pick = balanced_sample(train[m].labels, MEAN_SAMPLES, recipe.seed)
        chosen = type(train[m])([train[m].inputs[i] for i in pick], [train[m].labels[i] for i in pick],
                                [train[m].keys[i] for i in pick])
        means[m] = embed(chosen, m, "train-sample").mean(0)
    classes = class_embeddings(binder, data.class_names, recipe.eval.templates, prompts)

    rows = []
    for m in modalities:
        labels = np.asarray(split[m].labels)
        row: dict[str, Any] = {"modality": m, "n": len(labels),
                               "temperature": binder.temperature(m) if m != anchor else None}
        for variant in ("raw", "centred"):
            shift = variant == "centred"
            x = unit(evaluated[m] - means[m]) if shift else evaluated[m]
            a = unit(evaluated[anchor] - means[anchor]) if shift else evaluated[anchor]
            c = unit(classes - means[prompts]) if shift else classes
            row[f"zero_shot_{variant}"] = float((zero_shot_predict(x, c) == labels).mean())
            if m != anchor:
                r = retrieval_metrics(x, split[m].keys, a, split[anchor].keys, (1,))
                row[f"R@1_{variant}"] = r.get("R@1")
                gap = modality_gap(x, labels, a, split[anchor].labels, seed=recipe.seed)
                row[f"centroid_distance_{variant}"] = gap["centroid_distance"]
                row[f"own_neighbour_share_{variant}"] = gap.get("own_neighbour_share")
                row["mixed_share"] = gap.get("mixed_share")
        rows.append(row)
    return {"prompt_modality": prompts, "rows": rows}


def pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def markdown(results: list[dict[str, Any]], command: str) -> str:
    lines = ["# The modality gap against the temperature, and centring",
             "",
             f"Generated by `{command}`; every number below was computed by that run (do not edit by hand: "
             "re-run the benchmark). Method: benchmarks/modality_gap.py's docstring. Eval split; "
             "*raw* is the embedding as trained, *centred* subtracts each modality's mean over training samples.",
             "",
             "| run | τ | modality | centroid distance raw → centred | own-neighbour share raw → centred (mixed) "
             "| zero-shot raw → centred | R@1 → anchor raw → centred |",
             "|---|---|---|---|---|---|---|"]
    for result in results:
        for row in result["rows"]:
            tau = "anchor" if row["temperature"] is None else f"{row['temperature']:.3g}"
            if row["temperature"] is None:
                gap, share, r1 = "–", "–", "–"
            else:
                gap = f"{row['centroid_distance_raw']:.3f} → {row['centroid_distance_centred']:.3f}"
                share = (f"{pct(row['own_neighbour_share_raw'])} → {pct(row['own_neighbour_share_centred'])} "
                         f"({pct(row['mixed_share'])})")
                r1 = f"{pct(row['R@1_raw'])} → {pct(row['R@1_centred'])}"
            zs = f"{pct(row['zero_shot_raw'])} → {pct(row['zero_shot_centred'])}"
            lines.append(f"| {result['label']} | {tau} | {row['modality']} | {gap} | {share} | {zs} | {r1} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("recipe", type=Path, nargs="?")
    parser.add_argument("--temperatures", type=float, nargs="*", default=[])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--output-root", type=Path, default=ROOT / "runs" / "gap")
    parser.add_argument("--runs", type=Path, nargs="*", default=[], help="finished run folders to measure as they are")
    parser.add_argument("--results", type=Path, default=ROOT / "docs" / "modality-gap.md")
    args = parser.parse_args()
    if args.temperatures and args.recipe is None:
        parser.error("--temperatures needs a recipe to train")

    from mmbind.binder import Binder
    from mmbind.pipeline import train_recipe
    from mmbind.recipe import load_recipe, parse_assignments

    overrides = parse_assignments(args.overrides, "--set")
    anchor_cache: dict[str, Any] = {}
    results, printed = [], _common.Printer()
    for run in args.runs:
        recipe = load_recipe(run / "recipe.toml", {"output_dir": str(run)})
        binder = Binder.from_pretrained(run / "model")
        results.append({"label": f"{recipe.name} {run.name} (as trained)", "run_dir": str(run),
                        **measure(binder, recipe.load_data(), recipe, anchor_cache)})
        printed(json.dumps(results[-1]))
    if args.temperatures:
        bound = load_recipe(args.recipe, overrides).bound
        for tau in args.temperatures:
            run_dir = args.output_root / args.recipe.stem / f"tau{tau:g}"
            fixed = {f"modalities.{m}.{key}": value for m in bound
                     for key, value in (("temperature", tau), ("learn_temperature", False))}
            recipe = load_recipe(args.recipe, {**overrides, **fixed, "output_dir": str(run_dir)})
            binder, data = train_recipe(recipe, overwrite=True)
            results.append({"label": f"{recipe.name} τ fixed", "run_dir": str(run_dir),
                            **measure(binder, data, recipe, anchor_cache)})
            printed(json.dumps(results[-1]))
    command = " ".join(["python", "benchmarks/modality_gap.py", *sys.argv[1:]])
    args.results.write_text(markdown(results, command))
    printed(f"wrote {args.results}")
    _common.finish("modality_gap", {"runs": results}, printed.lines)


if __name__ == "__main__":
    main()
