"""From trained networks to scored results: pipelines, records and the Figure 9 chart.

Book chapter: *Evaluation* (``book/06_evaluation``); command line: ``python -m nucleitut``.

A *pipeline* is what the paper's Figure 9 scores: a single network with its
post-processing, or a two-network combination.

* ``B1`` .. ``B5``: one-channel network, threshold 0.5 (this project's choice; the paper
  only says a fixed threshold is "fine most of the time", section 3.6), connected components;
* ``M1``, ``M2``: three classes (boundary, border), marker-controlled watershed;
* ``M3`` .. ``M7`` alone: the same watershed on the marker network;
* ``M3B1``, ``M6B4``, ...: two networks, markers from M and the mask from B (> 0.3).

Each pipeline runs with or without test-time augmentation (TTA). :func:`evaluate` writes a
self-describing JSON record (hardware, profile, commit, versions, date, training time).
:class:`SeedEnsemble` and :func:`evaluate_seed_ensemble`: a pipeline whose networks are each
the ensemble of their repeated trainings (seeds).
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Sequence

import numpy as np

from . import blocks, config, data, metrics, postprocess, predict, records, sizing

__all__ = [
    "Segmenter",
    "SeedEnsemble",
    "evaluate",
    "evaluate_pipelines",
    "evaluate_seed_ensemble",
    "seed_ensemble_record_name",
    "evaluate_classical",
    "tune_postprocessing",
]


class Segmenter:
    """Instance segmentation with a pipeline's trained networks.

    Parameters
    ----------
    pipeline : str or Pipeline
    profile : str, optional
    models : dict, optional
        Network name -> Keras model; missing ones are loaded from
        :func:`nucleitut.config.model_dir` (never trained here: a missing network is an
        error that names the command that trains it).
    settings : dict, optional
        Post-processing settings replacing some of :data:`config.POSTPROCESS_DEFAULTS`.
    seed : int
        Which of repeated trainings to load (0: the one the chapters use).
    """

    def __init__(self, pipeline, profile=None, models=None, verbose=True, settings=None, seed=0):
        self.pipeline = pipeline if isinstance(pipeline, config.Pipeline) else config.get_pipeline(pipeline)
        #: Post-processing settings that replace :data:`config.POSTPROCESS_DEFAULTS` (see
        #: :func:`tune_postprocessing`); ``chosen_on`` says where they come from.
        self.settings = dict(settings or {})
        self.chosen_on = "defaults" if not settings else "given"
        self.profile = config.get_profile(profile).name
        self.seed = int(seed)
        self.models = dict(models or {})
        for network in self.pipeline.networks:
            if network not in self.models:
                directory = config.model_dir(network, self.profile, self.seed)
                if not (directory / "model.keras").exists():
                    seed_option = f" --seed {self.seed}" if self.seed else ""
                    raise FileNotFoundError(
                        f"{directory}: no trained {network} ({self.profile} profile, seed {self.seed}); train it with "
                        f"`python -m nucleitut train {network} --profile {self.profile}{seed_option}` "
                        f"or training.trained_model({network!r}, {self.profile!r})"
                    )
                if verbose:
                    print(f"Loading {network} ({self.profile} profile) from {directory.name}")
                self.models[network] = predict.load_network(directory)
        sizes = {getattr(getattr(self.models[n], "nucleitut_config", None), "size_target", None) for n in self.pipeline.networks}
        if len(sizes) > 1:
            raise ValueError(f"pipeline {self.pipeline.name}: its networks were trained at different nucleus sizes ({sizes})")
        #: The nucleus diameter every training image was rescaled to (``TrainingConfig.size_target``),
        #: or None for networks trained on images as they are (the paper's way).
        self.size_target = sizes.pop()
        #: Diameters :func:`nucleitut.segment.segment_image` leaves as they are
        #: (:data:`nucleitut.sizing.TRAINING_SIZE_BAND`); None for size-normalised networks, which
        #: get every image rescaled to their size.
        self.size_band = None if self.size_target else sizing.TRAINING_SIZE_BAND

    def probabilities(self, image: np.ndarray, tta: bool = False, as_is: dict[str, np.ndarray] | None = None,
                      fuse_scales: bool = False) -> dict[str, np.ndarray]:
        """Each network's output; ``as_is``: outputs without TTA already made, by network
        (:func:`nucleitut.predict.predict_probabilities`). ``fuse_scales``: also predict the
        image rescaled by :data:`nucleitut.sizing.NEIGHBOUR_SCALES` (a neighbour whose shorter
        side would fall under 32 pixels is skipped), bring those outputs back to the image's
        grid and fuse them with its own by the TTA rule (:func:`nucleitut.predict.combine_predictions`)."""
        as_is = as_is or {}
        probs = {n: predict.predict_probabilities(self.models[n], image, tta, as_is=as_is.get(n)) for n in self.pipeline.networks}
        if not fuse_scales:
            return probs
        views = [probs]
        for factor in sizing.NEIGHBOUR_SCALES:
            if min(image.shape[:2]) * factor >= 32:
                other = self.probabilities(sizing.rescale_image(image, factor), tta)
                views.append({n: sizing.resize_output(p, image.shape[:2]) for n, p in other.items()})
        return {n: predict.combine_predictions([view[n] for view in views]) for n in self.pipeline.networks}

    def labels_from(self, probs: dict[str, np.ndarray], **params) -> np.ndarray:
        """Instance labels from the networks' outputs; ``params`` override the post-processing
        settings (:data:`config.POSTPROCESS_DEFAULTS`)."""
        method = self.pipeline.method
        settings = {**config.POSTPROCESS_DEFAULTS[method], **self.settings, **params}
        if method == "threshold":
            return postprocess.threshold_labels(probs[self.pipeline.networks[0]][..., 0], **settings)
        if method == "watershed":
            return postprocess.watershed_labels(probs[self.pipeline.networks[0]], **settings)
        marker, mask = self.pipeline.networks
        return postprocess.two_network_labels(probs[marker], probs[mask][..., 0], **settings)

    def __call__(self, image: np.ndarray, tta: bool = False, as_is: dict[str, np.ndarray] | None = None,
                 fuse_scales: bool = False, **params) -> np.ndarray:
        """Instance labels (int32, H x W) for an RGB uint8 image; a large one in blocks
        (:func:`nucleitut.blocks.label_in_blocks`), so memory stays bounded. ``as_is`` and
        ``fuse_scales``: see :meth:`probabilities` (``as_is`` is not used for an image in blocks)."""
        if blocks.needs_blocks(image.shape):
            return blocks.label_in_blocks(lambda block: self(block, tta, fuse_scales=fuse_scales, **params), image)
        return self.labels_from(self.probabilities(image, tta, as_is, fuse_scales), **params)


# --------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------


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
    records.git_commit()  # the record names the commit of the code as it was when scoring started
    segmenter = segmenter or Segmenter(pipeline, profile, verbose=verbose)
    ids = list(ids) if ids is not None else dataset.split().test
    return _score(segmenter, dataset, ids, tta, lambda image_id: segmenter(dataset.get(image_id)[0], tta=tta), verbose)


def _network_facts(segmenter: Segmenter) -> dict:
    """Training facts of a pipeline's networks, from their saved folders."""
    facts = {}
    for network in segmenter.pipeline.networks:
        directory = config.model_dir(network, segmenter.profile, segmenter.seed)
        timing = json.loads((directory / "timing.json").read_text()) if (directory / "timing.json").exists() else {}
        cfg = json.loads((directory / "config.json").read_text()) if (directory / "config.json").exists() else {}
        facts[network] = {
            "blocks": cfg.get("blocks"),
            "filters": cfg.get("filters"),
            "epochs": timing.get("epochs"),
            # all finished epochs of all runs where timing.json has them (a training resumed
            # after a stop); older folders only know the last run's time
            "training_seconds": timing.get("seconds_all_epochs") or timing.get("seconds_this_run"),
            "ms_per_crop": timing.get("ms_per_crop_including_validation"),
            "predict_ms_per_crop": timing.get("predict_ms_per_crop"),
            "crop_size": cfg.get("crop_size"),
            "learning_rate": cfg.get("learning_rate"),
            "lr_schedule": cfg.get("lr_schedule"),
            "max_epochs": cfg.get("max_epochs"),
            "time_budget_s": cfg.get("time_budget_s"),
            "trained_on": timing.get("devices"),
        }
    return facts


def _score(segmenter: Segmenter, dataset, ids, tta, labels_of, verbose) -> dict:
    postprocess_info = {
        "settings": {**config.POSTPROCESS_DEFAULTS[segmenter.pipeline.method], **segmenter.settings},
        "chosen_on": segmenter.chosen_on,
    }
    return _record(segmenter.pipeline.name, segmenter.pipeline.method, tta, segmenter.profile, segmenter.seed,
                   dataset, ids, labels_of, _network_facts(segmenter), postprocess_info, verbose)


def _record(name, method, tta, profile, seed, dataset, ids, labels_of, networks, postprocess_info, verbose) -> dict:
    per_image = []
    for image_id in ids:
        truth = dataset.get(image_id)[1]
        per_image.append({"id": image_id, **metrics.evaluate_image(truth, labels_of(image_id))})
    keys = ["kaggle_score", "precision_50", "recall_50", "f1_50", "precision_75", "recall_75", "f1_75"]
    record = {
        "pipeline": name,
        "method": method,
        "tta": bool(tta),
        "profile": profile,
        "seed": seed,
        "data": dataset.describe(),
        "n_images": len(ids),
        "mean": {key: float(np.mean([row[key] for row in per_image])) for key in keys},
        "totals": {key: int(sum(row[key] for row in per_image)) for key in ("split", "merged", "missed", "spurious", "n_gt", "n_pred")},
        "networks": networks,
        "postprocess": postprocess_info,
        "per_image": per_image,
        **records.environment(),
    }
    if verbose:
        print(f"{name}{' + TTA' if tta else ''}: mean Kaggle score {record['mean']['kaggle_score']:.3f} on {len(ids)} images")
    return record


def evaluate_classical(dataset: "data.Dataset", ids: Sequence[str] | None = None, profile: str | None = None,
                       verbose: bool = True) -> dict:
    """Score the classical reference (:func:`nucleitut.classical.segment`, untuned) like a
    pipeline: a record named ``<profile>_classical.json`` that Figure 9 draws as a line."""
    from . import classical

    records.git_commit()
    ids = list(ids) if ids is not None else dataset.split().test
    info = {"settings": {"method": "gaussian(1) + Otsu + distance-transform watershed", "untuned": True}, "chosen_on": "defaults"}
    return _record("classical", "classical", False, config.get_profile(profile).name, 0, dataset, ids,
                   lambda i: classical.segment(dataset.get(i)[0]), {}, info, verbose)


def tune_postprocessing(
    segmenter: Segmenter,
    probs: dict,
    truths: dict,
    grid: dict | None = None,
) -> dict:
    """Choose a pipeline's post-processing settings on images whose networks' outputs are known.

    Every combination of ``grid`` (default: :data:`config.POSTPROCESS_GRID` of the pipeline's
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
        (the score of :data:`config.POSTPROCESS_DEFAULTS`), ``n_images`` and ``table`` (every
        combination with its score).
    """
    import itertools

    if not probs:
        raise ValueError("tune_postprocessing needs at least one image")
    grid = grid or config.POSTPROCESS_GRID[segmenter.pipeline.method]
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
        "default_score": mean_score(config.POSTPROCESS_DEFAULTS[segmenter.pipeline.method]),
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
    records.git_commit()  # the records name the commit of the code as it was when scoring started
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
        return {i: {n: predict.predict_probabilities(shared[n], dataset.get(i)[0], tta) for n in needed} for i in image_ids}

    scored = []
    for tta in tta_values:
        probs = outputs(ids, tta)
        if tune_on is not None:
            tune_probs = outputs(tune_on, tta)
            truths = {i: dataset.get(i)[1] for i in tune_on}
        for segmenter in segmenters:
            labels_of = lambda image_id, s=segmenter: s.labels_from(probs[image_id])  # noqa: E731
            scored.append(_score(segmenter, dataset, ids, tta, labels_of, verbose))
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
                scored.append(_score(chosen, dataset, ids, tta, labels_of, verbose))
    return scored


class SeedEnsemble:
    """A pipeline whose every network is the ensemble of its trainings with ``seeds``.

    The paper describes ensembles as "the averaged output of multiple networks" (section 4.2)
    and reports none. Here each network of the pipeline (for M3B1: M3 and B1) is predicted by
    each of its trainings, with or without TTA, and the outputs are fused by
    :func:`nucleitut.predict.combine_predictions` (channels averaged, the border channel of a
    three-class network by maximum: this project's rule); the post-processing then runs once on
    the fused outputs. Fusing the TTA outputs of each training equals fusing all (training,
    view) predictions at once (mean of equal-sized means, max of maxima).

    Parameters
    ----------
    pipeline : str
    seeds : sequence of int
        At least two different trainings (:func:`nucleitut.config.model_dir`) of every network.
    profile : str, optional
    models : dict, optional
        Seed -> ``{network: model}``; missing ones are loaded as :class:`Segmenter` does.
    """

    def __init__(self, pipeline, seeds: Sequence[int], profile=None, models=None, verbose=True):
        self.seeds = [int(seed) for seed in seeds]
        if len(self.seeds) < 2 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"a seed ensemble needs at least two different seeds, got {list(seeds)}")
        #: One :class:`Segmenter` per training; the first one's post-processing is used.
        self.members = [Segmenter(pipeline, profile, models=(models or {}).get(seed), verbose=verbose, seed=seed)
                        for seed in self.seeds]
        self.pipeline = self.members[0].pipeline
        self.profile = self.members[0].profile

    def probabilities(self, image: np.ndarray, tta: bool = False) -> dict[str, np.ndarray]:
        """Each network's output fused over its trainings."""
        outputs = [member.probabilities(image, tta) for member in self.members]
        return {n: predict.combine_predictions([output[n] for output in outputs]) for n in self.pipeline.networks}

    def labels_from(self, probs: dict[str, np.ndarray], **params) -> np.ndarray:
        """Instance labels from fused outputs (:meth:`Segmenter.labels_from`)."""
        return self.members[0].labels_from(probs, **params)

    def __call__(self, image: np.ndarray, tta: bool = False, **params) -> np.ndarray:
        """Instance labels (int32, H x W) for an RGB uint8 image (no blocks: images of the data set's size)."""
        return self.labels_from(self.probabilities(image, tta), **params)


def evaluate_seed_ensemble(
    pipeline: str,
    dataset: "data.Dataset",
    seeds: Sequence[int],
    ids: Sequence[str] | None = None,
    tta_values: Sequence[bool] = (False, True),
    profile: str | None = None,
    models: dict | None = None,
    verbose: bool = True,
) -> list[dict]:
    """Score a :class:`SeedEnsemble` with the default (the paper's) post-processing settings
    on ``ids`` (default: the test part of the data set's split).

    Returns
    -------
    list of dict
        One record per value of ``tta_values``, like :func:`evaluate_pipelines`' but with
        ``seed`` and ``ensemble_of_seeds`` the list of seeds and ``networks`` keyed
        ``"<network> seed <k>"``. Write them under :func:`seed_ensemble_record_name`, not to the
        folder Figure 9 reads: they are not single trainings.
    """
    records.git_commit()  # the records name the commit of the code as it was when scoring started
    ensemble = SeedEnsemble(pipeline, seeds, profile, models, verbose)
    ids = list(ids) if ids is not None else dataset.split().test
    networks = {f"{network} seed {m.seed}": facts for m in ensemble.members for network, facts in _network_facts(m).items()}
    postprocess_info = {"settings": dict(config.POSTPROCESS_DEFAULTS[ensemble.pipeline.method]), "chosen_on": "defaults"}
    scored = []
    for tta in tta_values:
        record = _record(ensemble.pipeline.name, ensemble.pipeline.method, tta, ensemble.profile, ensemble.seeds,
                         dataset, ids, lambda image_id, tta=tta: ensemble(dataset.get(image_id)[0], tta), networks,
                         postprocess_info, verbose=False)
        record["ensemble_of_seeds"] = ensemble.seeds
        if verbose:
            print(f"{ensemble.pipeline.name} ensemble of seeds {ensemble.seeds}{' + TTA' if tta else ''}: "
                  f"mean Kaggle score {record['mean']['kaggle_score']:.3f} on {len(ids)} images", flush=True)
        scored.append(record)
    return scored


def seed_ensemble_record_name(record: dict) -> str:
    """``<profile>_<pipeline>[_tta]_seeds<k>-<k>-....json`` for a record of :func:`evaluate_seed_ensemble`.

    >>> seed_ensemble_record_name({"profile": "cpu", "pipeline": "M3B1", "tta": True, "ensemble_of_seeds": [0, 1, 2]})
    'cpu_M3B1_tta_seeds0-1-2.json'
    """
    seeds = "-".join(str(seed) for seed in record["ensemble_of_seeds"])
    return f"{record['profile']}_{record['pipeline']}{'_tta' if record['tta'] else ''}_seeds{seeds}.json"
