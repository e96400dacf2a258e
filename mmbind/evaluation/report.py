"""The run report: report.md plus PNG figures, made only from the run folder's own files.

Inputs (written by the trainer and the pipeline): ``eval.json`` (required), ``metrics.jsonl``,
``model/config.json``, ``embeddings.h5`` (the store; read with plain h5py as docs/store.md
describes) and ``embeddings-sample.npz`` (written by evaluate_run; used when the store is absent,
and for the points of extra splits such as held-out real recordings).

Figures: loss curves per modality with learned temperatures, the joint space (UMAP, cosine, all
modalities at once), R@1 for every modality pair with emergent pairs marked, and a zero-shot
confusion matrix per modality. matplotlib runs on the Agg backend; umap is imported lazily.
"""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from mmbind.evaluation.results import modality_label, percent, r1_matrix
from mmbind.evaluation.run import SAMPLE_NAME
from mmbind.evaluation.sampling import balanced_sample
from mmbind.search.topk import normalize_rows

REPORT_DIR = "report"
FIGURES = {"loss": "loss.png", "space": "joint_space.png", "retrieval": "retrieval_r1.png",
           "confusion": "confusion.png"}
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">", "p"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# --- reading the run folder ---------------------------------------------------------------------
def load_metrics(path: Path) -> list[dict]:
    """The records of metrics.jsonl; a bad line is reported with its number."""
    if not path.is_file():
        return []
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not a JSON object ({error})") from None
    return records


def load_results(run_dir: Path) -> dict:
    path = run_dir / "eval.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run the recipe's eval stage (mmbind run, or mmbind eval) first")
    return json.loads(path.read_text())


def _label_index(label: str | None, class_names: list[str]) -> int:
    if label is None or label == "":
        return -1
    if label in class_names:
        return class_names.index(label)
    return int(label) if label.lstrip("-").isdigit() and int(label) < len(class_names) else -1


def read_store(path: Path, class_names: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """Per modality: (unit vectors, class index or -1) of the committed rows of every collection;
    None if the file is missing or not an embedding store (docs/store.md)."""
    if not path.is_file():
        return None
    from mmbind.store import EmbeddingStore

    out: dict[str, tuple[list, list]] = {}
    try:
        # a reader also opens a store whose writer was killed (see docs/store.md)
        with EmbeddingStore(path, mode="r") as store:
            for name in store.collections():
                info = store.info(name)
                if info.count == 0:
                    continue
                labels = [entry["label"] for entry in store.entries(name, None)]
                vectors, index = out.setdefault(info.modality, ([], []))
                vectors.append(store.vectors(name))
                index.append(np.array([_label_index(label, class_names) for label in labels], dtype=np.int64))
    except (OSError, KeyError, ValueError) as error:
        warnings.warn(f"{path}: cannot read the embedding store ({error}); using {SAMPLE_NAME} instead")
        return None
    return {m: (np.concatenate(v), np.concatenate(i)) for m, (v, i) in out.items() if v} or None


def joint_space_sample(run_dir: Path, results: dict, per_modality: int = 200, seed: int = 0) -> dict[str, Any]:
    """Points for the joint-space picture: the store's vectors (else the npz sample) of the eval
    split, plus the npz sample's points of extra splits, shown as "<modality> (<split>)"."""
    class_names = list(results.get("class_names", []))
    groups: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    source = "embeddings.h5"
    store = read_store(run_dir / "embeddings.h5", class_names)
    sample_path = run_dir / SAMPLE_NAME
    sample = None
    if sample_path.is_file():
        with np.load(sample_path, allow_pickle=False) as f:
            sample = {k: f[k] for k in f.files}
    main = results.get("split")
    if store is not None:
        groups.update(store)
    elif sample is not None:
        source = SAMPLE_NAME
    else:
        raise FileNotFoundError(f"{run_dir}: neither embeddings.h5 nor {SAMPLE_NAME}: nothing to draw the joint space from")
    if sample is not None:
        for split in dict.fromkeys(sample["split"].tolist()):
            if split == main and store is not None:
                continue
            for m in dict.fromkeys(sample["modality"][sample["split"] == split].tolist()):
                pick = (sample["split"] == split) & (sample["modality"] == m)
                label = m if split == main else f"{m} ({split})"
                groups[label] = (sample["embeddings"][pick], sample["labels"][pick])
    names, vectors, labels = [], [], []
    for name, (v, y) in groups.items():
        index = balanced_sample(y, per_modality, seed)
        names += [name] * len(index)
        vectors.append(v[index])
        labels.append(y[index])
    return {"modality": np.array(names), "embeddings": np.concatenate(vectors).astype(np.float32),
            "labels": np.concatenate(labels), "source": source}


def cosine_knn(vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, None]:
    """Exact k nearest neighbours by cosine distance, each point first (UMAP's precomputed_knn).
    What UMAP computes itself for a few thousand points, without the ~10 s of numba compilation
    its own nearest-neighbour code costs in every new process."""
    unit = normalize_rows(vectors, "embeddings")
    distance = np.maximum(1.0 - unit @ unit.T, 0.0)
    np.fill_diagonal(distance, -1.0)  # itself first, whatever the ties
    index = np.argsort(distance, axis=1, kind="stable")[:, :k]
    nearest = np.take_along_axis(distance, index, axis=1)
    nearest[:, 0] = 0.0
    return index, nearest.astype(np.float32), None


def project_2d(vectors: np.ndarray, method: str = "umap", seed: int = 0) -> np.ndarray:
    """2-D coordinates: UMAP with the cosine metric (default) or PCA of the unit vectors (fast)."""
    if method == "umap":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # umap warns that a fixed seed disables parallelism
            import umap

            k = min(15, len(vectors) - 1)
            reducer = umap.UMAP(n_neighbors=k, min_dist=0.1, metric="cosine", random_state=seed,
                                precomputed_knn=cosine_knn(vectors, k))
            return reducer.fit_transform(vectors)
    if method == "pca":
        centred = vectors - vectors.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        return centred @ vt[:2].T
    raise ValueError(f"unknown projection {method!r}; expected 'umap' or 'pca'")


# --- figures ------------------------------------------------------------------------------------
def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(values) < window:
        return values
    kernel = np.ones(window) / window
    padded = np.concatenate([np.full(window - 1, values[0]), values])
    return np.convolve(padded, kernel, mode="valid")


def plot_losses(records: list[dict], learned: dict[str, bool], path: Path) -> Path | None:
    """Bind loss per modality (smoothed, raw faint), learned temperatures, and the anchor's
    pretraining loss when there was a pretraining stage."""
    bind = [r for r in records if r.get("stage") == "bind"]
    pretrain = [r for r in records if r.get("stage") == "pretrain"]
    if not bind and not pretrain:
        return None
    modalities = list(dict.fromkeys(k.split("/", 1)[1] for r in bind for k in r if k.startswith("loss/")))
    with_tau = [m for m in modalities if learned.get(m, False)]
    panels = ["loss"] * bool(bind) + ["tau"] * bool(with_tau) + ["pretrain"] * bool(pretrain)
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
    colours = plt.get_cmap("tab10")
    window = max(1, len(bind) // 40)
    for ax, panel in zip(axes[0], panels):
        if panel in ("loss", "tau"):
            for i, m in enumerate(modalities):
                key = f"loss/{m}" if panel == "loss" else f"temperature/{m}"
                if panel == "tau" and m not in with_tau:
                    continue
                steps = np.array([r["step"] for r in bind if key in r])
                values = np.array([r[key] for r in bind if key in r], dtype=float)
                if panel == "loss":
                    ax.plot(steps, values, color=colours(i % 10), alpha=0.2, linewidth=0.8)
                    values = _smooth(values, window)
                ax.plot(steps, values, color=colours(i % 10), linewidth=1.8, label=m)
            ax.set_xlabel("step")
            if panel == "loss":
                ax.set_title("binding loss per modality" + (f" (moving mean of {window})" if window > 1 else ""))
                ax.set_ylabel("loss")
            else:
                ax.set_title("learned temperature (tau)")
                ax.set_ylabel("tau")
            ax.legend(fontsize=9)
        else:
            values = np.array([r["loss"] for r in pretrain], dtype=float)
            w = max(1, len(values) // 40)
            ax.plot(np.arange(1, len(values) + 1), values, color="grey", alpha=0.3, linewidth=0.8)
            ax.plot(np.arange(1, len(values) + 1), _smooth(values, w), color="black", linewidth=1.8)
            ax.set_title("anchor pretraining loss")
            ax.set_xlabel("step")
            ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_joint_space(points: dict[str, Any], coords: np.ndarray, results: dict, path: Path,
                     method: str) -> Path:
    """The joint space in 2-D: colour = class, marker = modality; simulated modalities say so."""
    plt = _pyplot()
    from matplotlib.lines import Line2D

    class_names = list(results.get("class_names", []))
    colours = plt.get_cmap("tab10" if len(class_names) <= 10 else "tab20")
    fig, ax = plt.subplots(figsize=(9.5, 7.5))
    names = list(dict.fromkeys(points["modality"].tolist()))
    for i, name in enumerate(names):
        pick = points["modality"] == name
        labels = points["labels"][pick]
        colour = [colours(int(y) % colours.N) if y >= 0 else (0.6, 0.6, 0.6, 1.0) for y in labels]
        extra = " (" in name  # points of an extra split (real recordings): few, so drawn larger
        ax.scatter(coords[pick, 0], coords[pick, 1], c=colour, marker=MARKERS[i % len(MARKERS)],
                   s=70 if extra else 26, alpha=0.9 if extra else 0.7, linewidths=0.8 if extra else 0.3,
                   edgecolors="black" if extra else "white", zorder=3 if extra else 2)
    base = lambda name: name.split(" (")[0]
    modality_handles = [
        Line2D([], [], linestyle="", marker=MARKERS[i % len(MARKERS)], color="dimgrey", markersize=8,
               label=modality_label(base(n), results) + (n[len(base(n)):] if n != base(n) else ""))
        for i, n in enumerate(names)]
    class_handles = [Line2D([], [], linestyle="", marker="o", color=colours(c % colours.N), markersize=8,
                            label=name) for c, name in enumerate(class_names)]
    first = ax.legend(handles=modality_handles, title="modality", loc="upper left",
                      bbox_to_anchor=(1.01, 1.0), fontsize=9, title_fontsize=10)
    ax.add_artist(first)
    legends = [first]
    if class_handles:
        legends.append(ax.legend(handles=class_handles, title="class", loc="lower left", bbox_to_anchor=(1.01, 0.0),
                                 fontsize=9, title_fontsize=10, ncol=1 if len(class_handles) <= 12 else 2))
    title = "UMAP (cosine)" if method == "umap" else "PCA"
    ax.set_title(f"Joint embedding space, {title}: colour = class, marker = modality")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    # Legends outside the axes: name them so that the tight bounding box keeps them whole.
    fig.savefig(path, dpi=110, bbox_inches="tight", bbox_extra_artists=legends)
    plt.close(fig)
    return path


def plot_retrieval(results: dict, path: Path) -> Path | None:
    """R@1 for every ordered modality pair; emergent pairs (never trained together) outlined."""
    matrix = r1_matrix(results)
    if not matrix["queries"]:
        return None
    plt = _pyplot()
    from matplotlib.patches import Rectangle

    values = np.array([[np.nan if c is None else c[0] for c in row] for row in matrix["cells"]], dtype=float)
    nq, ng = values.shape
    fig, ax = plt.subplots(figsize=(1.3 * ng + 3.2, 0.75 * nq + 2.2))
    image = ax.imshow(np.ma.masked_invalid(values), cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_facecolor("#dddddd")
    for i, row in enumerate(matrix["cells"]):
        for j, cell in enumerate(row):
            if cell is None:
                ax.text(j, i, "-", ha="center", va="center", color="dimgrey", fontsize=11)
                continue
            value, kind = cell
            ax.text(j, i, f"{100 * value:.0f}" + ("*" if kind == "emergent" else ""), ha="center", va="center",
                    fontsize=11, fontweight="bold", color="black" if value > 0.6 else "white")
            if kind == "emergent":
                ax.add_patch(Rectangle((j - 0.46, i - 0.46), 0.92, 0.92, fill=False, edgecolor="white",
                                       linestyle=(0, (3, 2)), linewidth=1.6))
    ax.set_xticks(range(ng), [modality_label(g, results).replace(" (simulated)", "\n(sim.)")
                              for g in matrix["galleries"]], fontsize=10)
    ax.set_yticks(range(nq), [q.replace(" (", "\n(") for q in matrix["queries"]], fontsize=10)
    ax.set_xlabel("gallery modality")
    ax.set_ylabel("query modality")
    ax.set_title(f"Retrieval R@1 (%) on the {results.get('split', 'test')} split\n"
                 "* dashed outline = emergent pair (never trained together)", fontsize=11)
    fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02, label="R@1")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_confusions(results: dict, path: Path) -> Path | None:
    """One zero-shot confusion matrix per (split, modality), rows normalised to the true class."""
    rows = [r for r in results.get("rows", []) if r.get("confusion")]
    if not rows:
        return None
    plt = _pyplot()
    class_names = [str(c)[:6] for c in results.get("class_names", [])]
    cols = min(4, len(rows))
    lines = math.ceil(len(rows) / cols)
    fig, axes = plt.subplots(lines, cols, figsize=(3.9 * cols, 3.9 * lines), squeeze=False)
    annotate = len(class_names) <= 12
    for ax, row in zip(axes.flat, rows):
        counts = np.array(row["confusion"], dtype=float)
        share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        if annotate:
            for i in range(len(counts)):
                for j in range(len(counts)):
                    if counts[i, j]:
                        ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=7,
                                color="white" if share[i, j] > 0.5 else "black")
        ticks = range(len(class_names))
        ax.set_xticks(ticks, class_names, fontsize=7, rotation=90 if max(map(len, class_names or [""])) > 2 else 0)
        ax.set_yticks(ticks, class_names, fontsize=7)
        split = "" if row["split"] == results.get("split") else f" [{row['split']}]"
        ax.set_title(f"{modality_label(row['modality'], results)}{split}\nzero-shot {percent(row.get('zero_shot'))}",
                     fontsize=10)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("true", fontsize=8)
    for ax in list(axes.flat)[len(rows):]:
        ax.axis("off")
    fig.suptitle("Zero-shot confusion matrices (counts; colour = share of the true class)", fontsize=12)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# --- markdown -----------------------------------------------------------------------------------
def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _learned_temperatures(run_dir: Path) -> dict[str, bool]:
    path = run_dir / "model" / "config.json"
    if not path.is_file():
        return {}
    config = json.loads(path.read_text())
    anchor = config.get("anchor")
    return {m: bool(t.get("learn_temperature", True)) and m != anchor for m, t in config.get("towers", {}).items()}


def render_markdown(run_dir: Path, results: dict, records: list[dict], figures: dict[str, Path | None],
                    learned: dict[str, bool], space_source: str | None, projection: str) -> str:
    anchor = results.get("anchor", "anchor")
    main = results.get("split", "test")
    simulated = results.get("simulated", [])
    out = [f"# mmbind report: {results.get('recipe', run_dir.name)}", ""]
    out.append(f"Run folder `{run_dir}`; dataset `{results.get('dataset', '?')}`; anchor `{anchor}`; "
               f"seed {results.get('seed')}; model fingerprint `{results.get('fingerprint', '?')}`. "
               "Everything below is made from the run folder's own files "
               "(eval.json, metrics.jsonl, model/config.json, embeddings).")
    if simulated:
        out += ["", f"**Simulated modalities:** {', '.join(simulated)}. Their data is simulated (no real "
                "recordings of them exist in this dataset); they are marked *simulated* throughout."]
    out += ["", "## Summary", "",
            f"Zero-shot: each sample is given the class whose averaged text-prompt embedding is nearest "
            f"({len(results.get('templates', []))} templates). R@1 → {anchor}: a sample's nearest {anchor} "
            "sample shares its pairing key. Bound: the better of a linear probe on the tower's frozen "
            "encoder features and a same-size encoder trained with labels; \"of bound\" is zero-shot as "
            "a share of it.", ""]
    head = ["split", "modality", "n", "zero-shot", f"R@1 → {anchor}", "linear probe", "supervised",
            "zero-shot of bound", "chance"]
    rows = []
    for row in results.get("rows", []):
        r1 = "(anchor)" if row["modality"] == anchor and row["split"] == main else percent(row.get("R@1_to_anchor"))
        rows.append([row["split"], modality_label(row["modality"], results), str(row["n"]),
                     percent(row.get("zero_shot")), r1, percent(row.get("linear_probe")), percent(row.get("supervised")),
                     percent(row.get("zero_shot_of_bound"), 0), percent(row.get("chance"))])
    out += _table(head, rows)

    grouped = [row for row in results.get("rows", []) if row.get("groups")]
    if grouped:
        out += ["", "## Accuracy by group", ""]
        for row in grouped:
            where = f"{modality_label(row['modality'], results)}, split `{row['split']}`"
            out.append(f"{where} ({row['n']} samples):")
            out.append("")
            table = []
            for field, values in row["groups"].items():
                for value, scores in values.items():
                    table.append([field, value, str(scores["n"]), percent(scores.get("zero_shot")),
                                  percent(scores.get("linear_probe")), percent(scores.get("supervised"))])
            out += _table(["group", "value", "n", "zero-shot", "linear probe", "supervised"], table) + [""]

    out += ["", "## Retrieval between every pair of modalities", ""]
    if figures.get("retrieval"):
        out += [f"![R@1 heatmap]({figures['retrieval'].name})", ""]
    out.append("Relevant = pairing keys match (e.g. the same digit). *Paired*: trained together (one side is "
               f"the anchor, {anchor}); *emergent*: never trained together, aligned only through the anchor. "
               "Chance is the expected R@K of a random ranking.")
    out.append("")
    ks = results.get("recall_k", [1, 5, 10])
    table = []
    for r in sorted(results.get("retrieval", []), key=lambda r: (r["split"] != main, r["kind"], r["query"], r["gallery"])):
        query = modality_label(r["query"], results) + ("" if r["split"] == main else f" [{r['split']}]")
        table.append([f"{query} → {modality_label(r['gallery'], results)}", r["kind"],
                      *[percent(r.get(f"R@{k}")) for k in ks], percent(r.get("chance_R@1")), str(r.get("n_queries", "-"))])
    out += _table(["query → gallery", "kind", *[f"R@{k}" for k in ks], "chance R@1", "queries"], table)

    gaps = results.get("modality_gap") or []
    if gaps:
        out += ["", "## The modality gap", "",
                f"How far each bound modality sits from the anchor ({anchor}) in the joint space, even where "
                "retrieval works: the distance between the two centroids of unit embeddings (0 = one centre), "
                f"and, with equal class-balanced samples of both pooled, the share of a sample's k nearest "
                f"neighbours that are of its own modality (\"mixed\" is that share if the two were perfectly "
                f"mixed; 100% means an island apart from {anchor}). tau is the tower's temperature.", ""]
        table = [[g["split"], modality_label(g["modality"], results), f"{g['centroid_distance']:.3f}",
                  percent(g.get("own_neighbour_share")), percent(g.get("mixed_share")), str(g.get("k", "-")),
                  str(g.get("n", "-")), "-" if g.get("temperature") is None else f"{g['temperature']:.4f}"]
                 for g in gaps]
        out += _table(["split", "modality", "centroid distance", "own neighbours", "mixed", "k", "n per side", "tau"],
                      table)

    out += ["", "## Training", ""]
    if figures.get("loss"):
        out += [f"![loss curves]({figures['loss'].name})", ""]
        bind = [r for r in records if r.get("stage") == "bind"]
        if bind:
            last = bind[-1]
            table = []
            for key in [k for k in last if k.startswith("loss/")]:
                m = key.split("/", 1)[1]
                first = next(r[key] for r in bind if key in r)
                tau = last.get(f"temperature/{m}")
                table.append([modality_label(m, results), f"{first:.3f}", f"{last[key]:.3f}",
                              "-" if tau is None else f"{tau:.4f}", "learned" if learned.get(m) else "fixed"])
            out += _table(["modality", "first loss", "last loss", "tau", "tau is"], table)
            out.append("")
            out.append(f"{len(bind)} binding steps over {last.get('epoch')} epochs.")
    else:
        out.append("No metrics.jsonl in the run folder: no loss curves.")

    out += ["", "## The joint space", ""]
    if figures.get("space"):
        what = "UMAP with the cosine metric" if projection == "umap" else "PCA (a linear projection)"
        out += [f"![joint space]({figures['space'].name})", "",
                f"All modalities projected together ({what}) from `{space_source}`; colour is the class, "
                "marker the modality. Points of a class from every modality should share one cluster."]
    out += ["", "## Zero-shot confusion", ""]
    if figures.get("confusion"):
        out += [f"![confusion matrices]({figures['confusion'].name})"]
    else:
        out.append("No zero-shot results (the binder has no text tower or the dataset no class names).")

    out += ["", "## Setup", "", f"Templates: {', '.join(f'`{t}`' for t in results.get('templates', []))}.", ""]
    sizes = results.get("data_sizes", {})
    modalities = list(dict.fromkeys(m for split in sizes.values() for m in split))
    out += _table(["split", *[modality_label(m, results) for m in modalities]],
                  [[s, *[str(v.get(m, "-")) for m in modalities]] for s, v in sizes.items()])
    info = results.get("supervised_info", {})
    if info:
        out += ["", "Supervised baselines (trained on the train split):", ""]
        table = []
        for m, i in info.items():
            sup = i.get("supervised_skipped") or i.get("skipped") or (
                f"{i.get('encoder')}, {i.get('parameters', 0):,} parameters "
                f"({i.get('trainable_parameters', 0):,} trained incl. classifier), {i.get('epochs')} epochs, "
                f"{i.get('steps', '?')} steps" + (", stopped by the time cap" if i.get("time_limited") else ""))
            table.append([modality_label(m, results), str(i.get("train_samples", "-")), sup])
        out += _table(["modality", "train samples", "same-size encoder"], table)
    versions = results.get("versions", {})
    timing = {**results.get("timing", {}), "eval_seconds": results.get("eval_seconds")}
    out += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
            "Timing: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in timing.items() if v is not None) + "."]
    return "\n".join(out) + "\n"


def write_report(run_dir: str | Path, projection: str = "umap", output: str | Path | None = None) -> Path:
    """Write ``<run>/report/report.md`` and its figures from the run folder; returns report.md's path."""
    run_dir = Path(run_dir)
    results = load_results(run_dir)
    records = load_metrics(run_dir / "metrics.jsonl")
    learned = _learned_temperatures(run_dir)
    if not learned:  # no model config: a temperature that changed was learned
        for key in {k for r in records for k in r if k.startswith("temperature/")}:
            learned[key.split("/", 1)[1]] = len({r[key] for r in records if key in r}) > 1
    folder = Path(output) if output is not None else run_dir / REPORT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Path | None] = {
        "loss": plot_losses(records, learned, folder / FIGURES["loss"]),
        "retrieval": plot_retrieval(results, folder / FIGURES["retrieval"]),
        "confusion": plot_confusions(results, folder / FIGURES["confusion"]),
    }
    points = joint_space_sample(run_dir, results, seed=int(results.get("seed") or 0))
    coords = project_2d(points["embeddings"], projection, seed=int(results.get("seed") or 0))
    figures["space"] = plot_joint_space(points, coords, results, folder / FIGURES["space"], projection)
    path = folder / "report.md"
    path.write_text(render_markdown(run_dir, results, records, figures, learned, points["source"], projection))
    return path
