"""The modality-gap remedy "a shared projection", tried on recipes/fashion.toml, three seeds.

    python benchmarks/shared_projection.py RUN_DIR [--seeds 0 1 2] [--anchor-cache FILE]

RUN_DIR is a finished run of recipes/fashion.toml without its shared projection (e.g. with
``--set bind.shared_projection=false``): its own evaluation is what the first arm must reproduce.
In that recipe both towers are frozen (EfficientNet-Lite0 for the images, MiniLM for the text),
so binding trains only the text head (and the projection), on fixed features. This benchmark
replays that training on the run's own features, for two arms with the same seeds, steps, batch,
loss, temperature and optimiser as the recipe:
- "text head": the anchor's output is the space, a linear text head;
- "shared projection": one more linear map P (dim x dim, starting at the identity), applied to
  the unit embeddings of both towers and trained with the head, then l2-normalised again (what
  ``[bind] shared_projection = true`` builds): a projection the two modalities share (the
  shared-projection remedy for the modality gap, e.g. Eslami and de Melo 2024). It moves the
  anchor's space, so binders trained separately against that anchor no longer share one space;
  it has to help clearly to be worth that.
Training images: the run's anchor cache (all 60,000, as in the run); pairs: each image with a
random training prompt of its class; loss: infonce with label positives. Evaluated on the 10,000
test images of the run's embedding store: zero-shot accuracy through the run's prompt templates,
text->image R@1 (a class prompt's nearest test image is of its class, over the training prompts),
and the gap (mmbind.evaluation.gap: centroid distance, own-neighbour share). The "text head" arm
reproduces the run's own eval (its zero-shot is printed beside it) as a check of the replay.
Writes the figures to --doc (markdown, generated: do not edit by hand); the last line is one
JSON object (benchmarks/results/shared_projection.json).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))

import _common  # noqa: E402

ARMS = ("text head", "shared projection")


def load(run_dir: Path, anchor_cache: Path | None):
    """Frozen features of the run: train images (anchor embeddings), train prompts, test images,
    the class prompts, and the run's recipe settings."""
    from mmbind import Binder
    from mmbind.recipe import load_recipe
    from mmbind.store import EmbeddingStore
    from mmbind.training.anchor_cache import AnchorCache

    recipe = load_recipe(run_dir / "recipe.toml")
    binder = Binder.from_pretrained(run_dir / "model")
    data = recipe.load_data()
    train = data.splits["train"]
    cache_file = anchor_cache or (run_dir / recipe.bind.anchor_cache_file).resolve()
    images = AnchorCache(cache_file).embeddings(binder, list(train[recipe.anchor].inputs)).numpy()
    texts = binder.encode(list(train["text"].inputs), "text", output_value="features", batch_size=64)
    with EmbeddingStore(run_dir / "embeddings.h5", mode="r") as store:
        test_images = store.vectors(recipe.anchor)
        labels_text = store.column(recipe.anchor, "labels")
    names = data.class_names
    test_labels = np.array([names.index(v) for v in labels_text])
    prompts = [[t.format(name) for t in recipe.eval.templates] for name in names]
    prompt_features = binder.encode([p for group in prompts for p in group], "text", output_value="features")
    return {
        "recipe": recipe,
        "images": torch.from_numpy(images), "image_labels": torch.tensor(train[recipe.anchor].labels),
        "texts": torch.from_numpy(texts), "text_labels": torch.tensor(train["text"].labels),
        "test_images": torch.from_numpy(test_images), "test_labels": test_labels,
        "prompt_features": torch.from_numpy(prompt_features).reshape(len(names), len(recipe.eval.templates), -1),
        "in_dim": texts.shape[1], "dim": images.shape[1],
    }


def train(d: dict, arm: str, seed: int) -> dict:
    """The recipe's binding replayed on frozen features; returns the trained maps."""
    import mmbind
    from mmbind.binder import MAX_LOGIT_SCALE
    from mmbind.training.optim import adamw, warmup_cosine_schedule

    recipe = d["recipe"]
    cfg, tower = recipe.bind, recipe.towers["text"]
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    head = torch.nn.Linear(d["in_dim"], d["dim"])
    shared = torch.nn.Linear(d["dim"], d["dim"], bias=False)
    with torch.no_grad():
        shared.weight.copy_(torch.eye(d["dim"]))
    log_scale = torch.nn.Parameter(torch.tensor(float(np.log(1 / tower.temperature))))
    params = list(head.parameters()) + ([log_scale] if tower.learn_temperature else [])
    if arm == "shared projection":
        params += list(shared.parameters())
    loss_fn = mmbind.create_loss(cfg.loss, **recipe.loss_options("text"))
    steps = cfg.epochs * cfg.steps_per_epoch
    optimizer = adamw(params, cfg.lr, cfg.weight_decay)
    schedule = warmup_cosine_schedule(optimizer, cfg.warmup_steps, steps)
    by_class = [torch.nonzero(d["text_labels"] == c).flatten() for c in range(int(d["text_labels"].max()) + 1)]
    for _ in range(steps):
        rows = torch.randint(len(d["images"]), (cfg.batch_size,), generator=generator)
        labels = d["image_labels"][rows]
        picks = torch.stack([by_class[c][torch.randint(len(by_class[c]), (1,), generator=generator)][0]
                             for c in labels.tolist()])
        # unit embeddings of each tower, then (the second arm) the shared map and l2 again, as
        # Binder.embed_features does with [bind] shared_projection
        images, texts = d["images"][rows], F.normalize(head(d["texts"][picks]), dim=-1)
        if arm == "shared projection":
            images, texts = shared(images), shared(texts)
        loss = loss_fn(F.normalize(images, dim=-1), F.normalize(texts, dim=-1), log_scale.exp(), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            log_scale.clamp_(0.0, MAX_LOGIT_SCALE)
    return {"head": head, "shared": shared if arm == "shared projection" else None,
            "temperature": float(1 / log_scale.detach().exp())}


@torch.no_grad()
def evaluate(d: dict, model: dict) -> dict:
    from mmbind.evaluation.gap import modality_gap

    def space(units):
        return F.normalize(model["shared"](units), dim=-1) if model["shared"] is not None else units

    def text_space(features):
        return space(F.normalize(model["head"](features), dim=-1))

    images = space(d["test_images"]).numpy()
    classes = F.normalize(text_space(d["prompt_features"]).mean(dim=1), dim=-1).numpy()
    accuracy = float((np.argmax(images @ classes.T, axis=1) == d["test_labels"]).mean())
    texts = text_space(d["texts"]).numpy()
    nearest = np.argmax(texts @ images.T, axis=1)
    r1 = float((d["test_labels"][nearest] == d["text_labels"].numpy()).mean())
    gap = modality_gap(texts, d["text_labels"].tolist(), images, d["test_labels"].tolist())
    return {"zero_shot": accuracy, "text_to_image_r1": r1, "centroid_distance": gap["centroid_distance"],
            "own_neighbour_share": gap.get("own_neighbour_share"), "temperature": model["temperature"]}


def render(args, d: dict, results: dict[str, list[dict]], mean: dict[str, dict], zero_shot_run: float) -> str:
    command = "python benchmarks/shared_projection.py " + " ".join(sys.argv[1:])
    lines = [
        "# A shared projection, replayed on the Fashion-MNIST recipe", "",
        f"Generated by `{command}` (do not edit by hand: re-run it). Method: the docstring of "
        "benchmarks/shared_projection.py: the binding of recipes/fashion.toml (both towers frozen, a "
        "linear text head trained) replayed on the run's own frozen features, with and without one "
        "linear map shared by the image and text embeddings (`[bind] shared_projection`). Test split, "
        f"{len(d['test_images']):,} images; text→image R@1 and the gap (k = 10) over the "
        f"{len(d['texts'])} training prompts (a run's report takes the eval split's prompts instead).", "",
        "| seed | arm | zero-shot | text→image R@1 | centroid distance | own-neighbour share | learned τ |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm, rows in results.items():
        for seed, r in zip(args.seeds, rows):
            lines.append(f"| {seed} | {arm} | {100 * r['zero_shot']:.1f}% | {100 * r['text_to_image_r1']:.1f}% | "
                         f"{r['centroid_distance']:.3f} | {100 * r['own_neighbour_share']:.1f}% | {r['temperature']:.3f} |")
    for arm, m in mean.items():
        lines.append(f"| mean | {arm} | **{100 * m['zero_shot']:.1f}%** | {100 * m['text_to_image_r1']:.1f}% | "
                     f"{m['centroid_distance']:.3f} | {100 * m['own_neighbour_share']:.1f}% | {m['temperature']:.3f} |")
    lines += ["", f"The run's own evaluation (the framework's training of the same recipe, its seed): zero-shot "
              f"{100 * zero_shot_run:.1f}%, which the replay's text-head arm reproduces.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--anchor-cache", type=Path, default=None)
    parser.add_argument("--doc", type=Path, default=Path(__file__).resolve().parent.parent / "docs" / "shared-projection.md")
    _common.add_threads_option(parser)
    args = parser.parse_args()
    _common.apply_threads(args)
    print = _common.Printer()  # noqa: A001

    start = time.perf_counter()
    d = load(args.run_dir, args.anchor_cache)
    run_eval = json.loads((args.run_dir / "eval.json").read_text())
    print(f"features of {args.run_dir}: {len(d['images'])} training images, {len(d['texts'])} training prompts, "
          f"{len(d['test_images'])} test images ({time.perf_counter() - start:.0f} s)")
    results: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    for seed in args.seeds:
        for arm in ARMS:
            t = time.perf_counter()
            figures = evaluate(d, train(d, arm, seed))
            results[arm].append(figures)
            print(f"seed {seed} {arm:>17}: zero-shot {100 * figures['zero_shot']:.1f}%, text->image R@1 "
                  f"{100 * figures['text_to_image_r1']:.1f}%, centroid distance {figures['centroid_distance']:.3f}, "
                  f"own-neighbour share {100 * figures['own_neighbour_share']:.1f}%, tau {figures['temperature']:.3f} "
                  f"({time.perf_counter() - t:.0f} s)", flush=True)
    mean = {arm: {k: statistics.mean(r[k] for r in rows) for k in rows[0]} for arm, rows in results.items()}
    for arm in ARMS:
        m = mean[arm]
        print(f"mean of {len(args.seeds)} seeds, {arm}: zero-shot {100 * m['zero_shot']:.1f}%, R@1 "
              f"{100 * m['text_to_image_r1']:.1f}%, centroid distance {m['centroid_distance']:.3f}, own-neighbour "
              f"share {100 * m['own_neighbour_share']:.1f}%")
    zero_shot_run = next((r["zero_shot"] for r in run_eval["rows"] if r["modality"] == d["recipe"].anchor
                          and r["split"] == run_eval["split"]), None)
    print(f"the run's own eval (the framework's training, the run's seed): zero-shot {100 * zero_shot_run:.1f}%")
    change = mean["shared projection"]["zero_shot"] - mean["text head"]["zero_shot"]
    args.doc.write_text(render(args, d, results, mean, zero_shot_run), encoding="utf-8")
    print(f"wrote {args.doc}")
    _common.finish("shared_projection", {
        "title": "Shared projection (modality-gap remedy)", "run_dir": str(args.run_dir), "seeds": args.seeds,
        "arms": results, "mean": mean, "zero_shot_change_points": round(100 * change, 2),
        "run_eval_zero_shot": zero_shot_run}, print.lines)


if __name__ == "__main__":
    main()
