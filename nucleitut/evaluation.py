"""From trained networks to scored results: pipelines, records and the Figure 9 chart.

Book chapter: *Evaluation* (``book/06_evaluation``); command line: ``python -m nucleitut``.

A *pipeline* is what the paper's Figure 9 scores: a single network with its
post-processing, or a two-network combination.

* ``B1`` .. ``B5``: one-channel network, threshold 0.5, connected components;
* ``M1``, ``M2``: three classes (boundary, border), marker-controlled watershed;
* ``M3`` .. ``M7`` alone: the same watershed on the marker network;
* ``M3B1``, ``M6B4``, ...: two networks, markers from M and the mask from B (> 0.3).

Each pipeline runs with or without test-time augmentation (TTA). :func:`evaluate` writes a
self-describing JSON record (hardware, profile, commit, versions, date, training time).
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Sequence

import numpy as np

from . import config, data, metrics, postprocess

__all__ = [
    "Pipeline",
    "get_pipeline",
    "predict_probabilities",
    "Segmenter",
    "evaluate",
    "environment",
    "write_record",
    "read_records",
    "figure9",
    "is_tuned",
    "record_label",
    "tune_postprocessing",
    "POSTPROCESS_DEFAULTS",
    "POSTPROCESS_GRID",
    "RESULTS_DIR",
]

#: The repository's results folder (the book reads the records there).
RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"


#: Post-processing settings of the pipelines: the paper's thresholds plus a size prior.
#: The smallest nucleus of the fixed stage1_train labels has 21 pixels, so objects under 15
#: pixels are noise; marker fragments under 3 pixels would split nuclei. Both sizes were
#: chosen on the validation images of the quick profile, never on test images.
POSTPROCESS_DEFAULTS = {
    "threshold": {"threshold": 0.5, "min_area": 15},
    "watershed": {"mask_threshold": 0.3, "marker_threshold": 0.6, "min_marker_area": 3, "min_area": 15},
    "two_network": {"mask_threshold": 0.3, "marker_threshold": 0.6, "min_marker_area": 3, "min_area": 15},
}

#: Candidate settings for :func:`tune_postprocessing` (every combination is tried).
POSTPROCESS_GRID = {
    "threshold": {"threshold": (0.3, 0.4, 0.5, 0.6, 0.7), "min_area": (15, 30)},
    "watershed": {
        "mask_threshold": (0.3, 0.4, 0.5),
        "marker_threshold": (0.4, 0.5, 0.6, 0.7),
        "min_marker_area": (3, 10),
        "min_area": (15, 30),
    },
}
POSTPROCESS_GRID["two_network"] = POSTPROCESS_GRID["watershed"]


@dataclasses.dataclass(frozen=True)
class Pipeline:
    """A network or a pair of networks and the post-processing that turns them into labels."""

    name: str
    networks: tuple[str, ...]
    method: str  #: 'threshold', 'watershed' or 'two_network'


def get_pipeline(name: str) -> Pipeline:
    """Parse ``B1``, ``M2`` or ``M3B1`` style names (see the module docstring)."""
    key = name.upper()
    if key in config.PAIRS:
        return Pipeline(key, config.PAIRS[key], "two_network")
    match = re.fullmatch(r"(M[1-7])(B[1-5])", key)
    if match:
        return Pipeline(key, (match.group(1), match.group(2)), "two_network")
    spec = config.get_network(key)
    return Pipeline(key, (key,), "threshold" if spec.target == "binary" else "watershed")


def predict_probabilities(model, image: np.ndarray, tta: bool = False, tile_size: int = 256) -> np.ndarray:
    """Network output for an RGB ``uint8`` image of any size, optionally with TTA.

    Returns float32 (H, W, C). With ``tta`` the four transforms of the paper (identity,
    up-down flip, left-right flip, 90° rotation) are used: object channels averaged, the
    border/boundary channel maximised.
    """
    normalised = data.normalize(image)
    blocks = _blocks(model)

    def predict(x):
        return postprocess.predict_image(model, x, tile_size=tile_size, overlap=32, multiple=2**blocks)

    if not tta:
        return predict(normalised)
    channels = model.output_shape[-1]
    return postprocess.tta_predict(predict, normalised, border_channel=2 if channels == 3 else None)


def _blocks(model) -> int:
    pools = [layer for layer in model.layers if "pool" in type(layer).__name__.lower()]
    return max(1, len(pools))


class Segmenter:
    """Instance segmentation with a pipeline's trained networks.

    Parameters
    ----------
    pipeline : str or Pipeline
    profile : str, optional
    models : dict, optional
        Network name -> Keras model; missing ones are loaded (or trained) through
        :func:`nucleitut.training.trained_model`.
    settings : dict, optional
        Post-processing settings replacing some of :data:`POSTPROCESS_DEFAULTS`.
    """

    def __init__(self, pipeline, profile=None, models=None, train_missing=True, verbose=True, settings=None, seed=0):
        from . import training

        self.pipeline = pipeline if isinstance(pipeline, Pipeline) else get_pipeline(pipeline)
        #: Post-processing settings that replace :data:`POSTPROCESS_DEFAULTS` (see
        #: :func:`tune_postprocessing`); ``chosen_on`` says where they come from.
        self.settings = dict(settings or {})
        self.chosen_on = "defaults" if not settings else "given"
        self.profile = config.get_profile(profile).name
        self.seed = int(seed)
        self.models = dict(models or {})
        for network in self.pipeline.networks:
            if network not in self.models:
                directory = training.model_dir(network, self.profile, self.seed)
                if not (directory / "model.keras").exists() and not train_missing:
                    raise FileNotFoundError(f"{directory}: no trained {network} in the {self.profile} profile")
                if not (directory / "model.keras").exists() and verbose:
                    print(f"No trained {network} for the {self.profile} profile yet: training it now.")
                self.models[network] = training.trained_model(network, self.profile, verbose=verbose, seed=self.seed)

    def probabilities(self, image: np.ndarray, tta: bool = False) -> dict[str, np.ndarray]:
        return {n: predict_probabilities(self.models[n], image, tta) for n in self.pipeline.networks}

    def labels_from(self, probs: dict[str, np.ndarray], **params) -> np.ndarray:
        """Instance labels from the networks' outputs; ``params`` override the post-processing
        settings (:data:`POSTPROCESS_DEFAULTS`)."""
        method = self.pipeline.method
        settings = {**POSTPROCESS_DEFAULTS[method], **self.settings, **params}
        if method == "threshold":
            return postprocess.threshold_labels(probs[self.pipeline.networks[0]][..., 0], **settings)
        if method == "watershed":
            return postprocess.watershed_labels(probs[self.pipeline.networks[0]], **settings)
        marker, mask = self.pipeline.networks
        return postprocess.two_network_labels(probs[marker], probs[mask][..., 0], **settings)

    def __call__(self, image: np.ndarray, tta: bool = False, **params) -> np.ndarray:
        """Instance labels (int32, H x W) for an RGB uint8 image."""
        return self.labels_from(self.probabilities(image, tta), **params)


# --------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _git_commit() -> str:
    """The commit of the code this process runs (read once: later commits do not change it)."""
    try:
        root = Path(__file__).resolve().parents[1]
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True, timeout=10)
        commit = out.stdout.strip() or "unknown"
        return commit + ("+changes" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return os.environ.get("NUCLEITUT_COMMIT", "unknown")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict:
    """Hardware, software versions, commit and date, for results records."""
    import keras
    import scipy
    import skimage

    from . import training

    devices = training.available_devices()
    return {
        "hardware": {
            "cpu": _cpu_name(),
            "cpu_cores": os.cpu_count(),
            "accelerators": devices or None,
        },
        "versions": {
            "python": platform.python_version(),
            "keras": keras.__version__,
            "backend": keras.backend.backend(),
            "backend_version": _backend_version(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "scikit-image": skimage.__version__,
        },
        "commit": os.environ.get("NUCLEITUT_COMMIT") or _git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _backend_version() -> str:
    import keras

    backend = keras.backend.backend()
    try:
        module = __import__(backend)
        return module.__version__
    except Exception:
        return "unknown"


def evaluate(
    pipeline: str,
    dataset: "data.Dataset",
    ids: Sequence[str] | None = None,
    tta: bool = False,
    profile: str | None = None,
    segmenter: Segmenter | None = None,
    verbose: bool = True,
) -> dict:
    """Score a pipeline on ``ids`` (default: the test part of the data set's split).

    Returns a JSON-ready record: per-image and mean Kaggle scores, mean precision/recall/F1
    at IoU 0.5 and 0.75, split/merge/missed/spurious totals, the networks' training time per
    crop and epochs, hardware, profile, commit, versions and date.
    """
    _git_commit()  # the record names the commit of the code as it was when scoring started
    segmenter = segmenter or Segmenter(pipeline, profile, verbose=verbose)
    ids = list(ids) if ids is not None else dataset.split().test
    return _score(segmenter, dataset, ids, tta, lambda image_id: segmenter(dataset.get(image_id)[0], tta=tta), verbose)


def _score(segmenter: Segmenter, dataset, ids, tta, labels_of, verbose) -> dict:
    from . import training

    profile_name = segmenter.profile
    per_image = []
    for image_id in ids:
        truth = dataset.get(image_id)[1]
        per_image.append({"id": image_id, **metrics.evaluate_image(truth, labels_of(image_id))})
    keys = ["kaggle_score", "precision_50", "recall_50", "f1_50", "precision_75", "recall_75", "f1_75"]
    networks = {}
    for network in segmenter.pipeline.networks:
        directory = training.model_dir(network, profile_name, segmenter.seed)
        timing = json.loads((directory / "timing.json").read_text()) if (directory / "timing.json").exists() else {}
        cfg = json.loads((directory / "config.json").read_text()) if (directory / "config.json").exists() else {}
        networks[network] = {
            "blocks": cfg.get("blocks"),
            "filters": cfg.get("filters"),
            "epochs": timing.get("epochs"),
            "training_seconds": timing.get("seconds_this_run"),
            "ms_per_crop": timing.get("ms_per_crop_including_validation"),
            "predict_ms_per_crop": timing.get("predict_ms_per_crop"),
            "crop_size": cfg.get("crop_size"),
            "learning_rate": cfg.get("learning_rate"),
            "lr_schedule": cfg.get("lr_schedule"),
            "max_epochs": cfg.get("max_epochs"),
            "time_budget_s": cfg.get("time_budget_s"),
            "trained_on": timing.get("devices"),
        }
    record = {
        "pipeline": segmenter.pipeline.name,
        "method": segmenter.pipeline.method,
        "tta": bool(tta),
        "profile": profile_name,
        "seed": segmenter.seed,
        "data": dataset.describe(),
        "n_images": len(ids),
        "mean": {key: float(np.mean([row[key] for row in per_image])) for key in keys},
        "totals": {key: int(sum(row[key] for row in per_image)) for key in ("split", "merged", "missed", "spurious", "n_gt", "n_pred")},
        "networks": networks,
        "postprocess": {
            "settings": {**POSTPROCESS_DEFAULTS[segmenter.pipeline.method], **segmenter.settings},
            "chosen_on": segmenter.chosen_on,
        },
        "per_image": per_image,
        **environment(),
    }
    if verbose:
        print(f"{record['pipeline']}{' + TTA' if tta else ''}: mean Kaggle score {record['mean']['kaggle_score']:.3f} on {len(ids)} images")
    return record


def tune_postprocessing(
    segmenter: Segmenter,
    probs: dict,
    truths: dict,
    grid: dict | None = None,
) -> dict:
    """Choose a pipeline's post-processing settings on images whose networks' outputs are known.

    Every combination of ``grid`` (default: :data:`POSTPROCESS_GRID` of the pipeline's
    method) is scored with the mean Kaggle score over the images; the best one wins (ties:
    the first in grid order). Use validation images, never the test images you report.

    Parameters
    ----------
    segmenter : Segmenter
    probs : dict
        Image id -> ``{network: output}`` as returned by :meth:`Segmenter.probabilities`.
    truths : dict
        Image id -> true instance labels.
    grid : dict, optional
        Setting name -> candidate values.

    Returns
    -------
    dict
        ``settings`` (the best combination), ``score`` (its mean score), ``default_score``
        (the score of :data:`POSTPROCESS_DEFAULTS`), ``n_images`` and ``table`` (every
        combination with its score).
    """
    import itertools

    if not probs:
        raise ValueError("tune_postprocessing needs at least one image")
    grid = grid or POSTPROCESS_GRID[segmenter.pipeline.method]
    names = list(grid)

    def mean_score(settings):
        return float(np.mean([metrics.kaggle_score(truths[i], segmenter.labels_from(probs[i], **settings)) for i in probs]))

    table = [
        {"settings": dict(zip(names, values)), "score": mean_score(dict(zip(names, values)))}
        for values in itertools.product(*(grid[name] for name in names))
    ]
    best = max(table, key=lambda row: row["score"])  # max keeps the first of equal scores
    return {
        "settings": best["settings"],
        "score": best["score"],
        "default_score": mean_score(POSTPROCESS_DEFAULTS[segmenter.pipeline.method]),
        "n_images": len(probs),
        "table": table,
    }


def evaluate_pipelines(
    names: Sequence[str],
    dataset: "data.Dataset",
    ids: Sequence[str] | None = None,
    tta_values: Sequence[bool] = (False, True),
    profile: str | None = None,
    models: dict | None = None,
    verbose: bool = True,
    tune_on: Sequence[str] | None = None,
    seed: int = 0,
) -> list[dict]:
    """Score several pipelines, each with and without TTA, predicting every network once.

    Two-network pipelines share their networks' outputs with the single-network ones
    (``M3``, ``B1`` and ``M3B1`` cost two networks' predictions, not four).

    With ``tune_on`` (image ids, normally the validation split) each pipeline gets a second
    record: its post-processing settings chosen on those images (:func:`tune_postprocessing`,
    separately with and without TTA) and then used on ``ids``. The records say which
    settings they used and where they come from (``postprocess``); tuned ones are named
    ``..._tuned.json``.
    """
    _git_commit()  # the records name the commit of the code as it was when scoring started
    shared = dict(models or {})
    segmenters = []
    for name in names:
        segmenters.append(Segmenter(name, profile, models=shared, verbose=verbose, seed=seed))
        shared.update(segmenters[-1].models)
    needed = sorted({network for segmenter in segmenters for network in segmenter.pipeline.networks})
    ids = list(ids) if ids is not None else dataset.split().test
    if tune_on is not None:
        tune_on = list(tune_on)
        if not tune_on:
            raise ValueError("tune_on is empty: post-processing settings need validation images to be chosen on")
        if set(tune_on) & set(ids):
            raise ValueError("tune_on and the scored images overlap: choose settings on other images than you score")

    def outputs(image_ids, tta):
        return {i: {n: predict_probabilities(shared[n], dataset.get(i)[0], tta) for n in needed} for i in image_ids}

    records = []
    for tta in tta_values:
        probs = outputs(ids, tta)
        if tune_on is not None:
            tune_probs = outputs(tune_on, tta)
            truths = {i: dataset.get(i)[1] for i in tune_on}
        for segmenter in segmenters:
            labels_of = lambda image_id, s=segmenter: s.labels_from(probs[image_id])  # noqa: E731
            records.append(_score(segmenter, dataset, ids, tta, labels_of, verbose))
            if tune_on is not None:
                tuned = tune_postprocessing(segmenter, tune_probs, truths)
                chosen = Segmenter(
                    segmenter.pipeline, segmenter.profile, models=segmenter.models, settings=tuned["settings"], seed=seed
                )
                chosen.chosen_on = (
                    f"validation: best mean score over {tuned['n_images']} images "
                    f"({tuned['score']:.3f}; defaults {tuned['default_score']:.3f})"
                )
                if verbose:
                    print(f"{chosen.pipeline.name}{' + TTA' if tta else ''}: settings {tuned['settings']} chosen on {chosen.chosen_on}")
                labels_of = lambda image_id, s=chosen: s.labels_from(probs[image_id])  # noqa: E731
                records.append(_score(chosen, dataset, ids, tta, labels_of, verbose))
    return records


def is_tuned(record: dict) -> bool:
    """Whether a record's post-processing settings were chosen on validation images."""
    return record.get("postprocess", {}).get("chosen_on", "defaults").startswith("validation")


def record_label(record: dict) -> str:
    """The pipeline's name as Figure 9 shows it (``M3B1`` or ``M3B1 tuned``)."""
    return record["pipeline"] + (" tuned" if is_tuned(record) else "")


def record_name(record: dict) -> str:
    """``<profile>_<pipeline>[_tta][_tuned][_seed<k>].json`` (no suffix for seed 0)."""
    seed = record.get("seed", 0)
    return (
        f"{record['profile']}_{record['pipeline']}{'_tta' if record['tta'] else ''}"
        f"{'_tuned' if is_tuned(record) else ''}{f'_seed{seed}' if seed else ''}.json"
    )


def write_record(record: dict, results_dir: str | os.PathLike = RESULTS_DIR) -> Path:
    """Write a record as ``<results_dir>/<profile>_<pipeline>[_tta].json``."""
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / record_name(record)
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def read_records(results_dir: str | os.PathLike = RESULTS_DIR, profile: str | None = None) -> list[dict]:
    """All records in ``results_dir`` (optionally of one profile), sorted by pipeline."""
    records = []
    for path in sorted(Path(results_dir).glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not a valid results record ({error})") from None
        if "pipeline" in record and (profile is None or record.get("profile") == profile):
            records.append(record)
    return sorted(records, key=lambda r: (r["profile"], _pipeline_order(record_label(r)), r["tta"]))


def _pipeline_order(name: str):
    base = name.split()[0]
    return (len(base), base, name)


def figure9(records: Sequence[dict], ax=None, title: str | None = None):
    """The paper's Figure 9: mean Kaggle score per pipeline, without and with TTA.

    Records whose post-processing was tuned on validation images get their own bars
    (``M3B1 tuned``)."""
    import matplotlib.pyplot as plt

    names = sorted({record_label(r) for r in records}, key=_pipeline_order)
    if ax is None:
        _, ax = plt.subplots(figsize=(max(4, 0.9 * len(names) + 2), 3.5))
    width = 0.38
    for offset, tta, colour in ((-width / 2, False, "#8da0cb"), (width / 2, True, "#fc8d62")):
        values = []
        for name in names:
            match = [r for r in records if record_label(r) == name and r["tta"] == tta]
            values.append(match[-1]["mean"]["kaggle_score"] if match else np.nan)
        bars = ax.bar(np.arange(len(names)) + offset, values, width, label="with TTA" if tta else "without TTA", color=colour)
        for bar, value in zip(bars, values):
            if np.isfinite(value):
                ax.text(bar.get_x() + bar.get_width() / 2, value + 0.005, f"{value:.3f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(np.arange(len(names)), [name.replace(" ", "\n") for name in names])
    ax.set_ylabel("mean Kaggle score")
    finite = [r["mean"]["kaggle_score"] for r in records]
    ax.set_ylim(0, min(1.0, max(finite + [0.1]) * 1.2))
    ax.legend(loc="upper left", fontsize=8)
    if title:
        ax.set_title(title)
    return ax
