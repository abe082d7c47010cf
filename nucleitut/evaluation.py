"""Scoring pipelines: the Kaggle metric over test images, written as self-describing records.

Book chapter: *Evaluation* (``book/06_evaluation``); command line: ``python -m nucleitut evaluate``.

A *pipeline* (:class:`nucleitut.pipeline.Pipeline`) is what the paper's Figure 9 scores: a
single network with its post-processing, or a two-network combination.

* ``B1`` .. ``B5``: one-channel network, threshold 0.5 (this project's choice; the paper
  only says a fixed threshold is "fine most of the time", section 3.6), connected components;
* ``M1``, ``M2``: three classes (boundary, border), marker-controlled watershed;
* ``M3`` .. ``M7`` alone: the same watershed on the marker network;
* ``M3B1``, ``M6B4``, ...: two networks, markers from M and the mask from B (> 0.3).

Each pipeline runs with or without test-time augmentation (TTA). :func:`evaluate` writes a
self-describing JSON record (hardware, profile, commit, versions, date, training time).
:func:`evaluate_seed_ensemble` scores a :class:`nucleitut.pipeline.SeedEnsemble`: a pipeline whose
networks are each the ensemble of their repeated trainings (seeds).
"""

from __future__ import annotations

import json
from typing import Sequence

import numpy as np

from . import classical, config, data, metrics, predict, records, training
from .pipeline import Pipeline, SeedEnsemble, as_networks

__all__ = [
    "evaluate",
    "evaluate_pipelines",
    "evaluate_seed_ensemble",
    "seed_ensemble_record_name",
    "evaluate_classical",
    "tune_postprocessing",
]


# --------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------


def evaluate(
    pipeline: "str | Pipeline",
    dataset: "data.Dataset",
    ids: Sequence[str] | None = None,
    tta: bool = False,
    profile: str | None = None,
    verbose: bool = True,
) -> dict:
    """Score a pipeline on ``ids`` (default: the test part of the data set's split).

    ``pipeline``: a :class:`nucleitut.pipeline.Pipeline`, or a name whose trained networks
    :meth:`nucleitut.pipeline.Pipeline.trained` loads.

    Returns a JSON-ready record: per-image and mean Kaggle scores, mean precision/recall/F1
    at IoU 0.5 and 0.75, split/merge/missed/spurious totals, the networks' training time per
    crop and epochs, hardware, profile, commit, versions and date.
    """
    records.git_commit()  # the record names the commit of the code as it was when scoring started
    pipe = pipeline if isinstance(pipeline, Pipeline) else Pipeline.trained(pipeline, profile, verbose=verbose)
    ids = list(ids) if ids is not None else dataset.split().test
    return _score(pipe, dataset, ids, tta, lambda image_id: pipe(dataset.get(image_id)[0], tta=tta), verbose)


def _network_facts(pipe: Pipeline) -> dict:
    """Training facts of a pipeline's networks, from their saved folders."""
    facts = {}
    for network in pipe.spec.networks:
        directory = config.model_dir(network, pipe.profile, pipe.seed, pipe.root)
        timing = json.loads((directory / "timing.json").read_text()) if (directory / "timing.json").exists() else {}
        cfg = json.loads((directory / "config.json").read_text()) if (directory / "config.json").exists() else {}
        facts[network] = {
            "blocks": cfg.get("blocks"),
            "filters": cfg.get("filters"),
            "epochs": timing.get("epochs"),
            "training_seconds": training.training_seconds(timing),
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


def _score(pipe: Pipeline, dataset, ids, tta, labels_of, verbose) -> dict:
    postprocess_info = {
        "settings": pipe.postprocess_settings,
        "chosen_on": pipe.chosen_on,
    }
    return _record(pipe.name, pipe.method, tta, pipe.profile, pipe.seed,
                   dataset, ids, labels_of, _network_facts(pipe), postprocess_info, verbose)


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
    records.git_commit()
    ids = list(ids) if ids is not None else dataset.split().test
    info = {"settings": {"method": "gaussian(1) + Otsu + distance-transform watershed", "untuned": True}, "chosen_on": "defaults"}
    return _record("classical", "classical", False, config.get_profile(profile).name, 0, dataset, ids,
                   lambda i: classical.segment(dataset.get(i)[0]), {}, info, verbose)


def tune_postprocessing(
    pipe: Pipeline,
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
    pipe : nucleitut.pipeline.Pipeline
    probs : dict
        Image id -> ``{network: output}`` as returned by :meth:`nucleitut.pipeline.Pipeline.probabilities`.
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
    grid = grid or config.POSTPROCESS_GRID[pipe.method]
    names = list(grid)

    def mean_score(settings):
        return float(np.mean([metrics.kaggle_score(truths[i], pipe.labels_from(probs[i], **settings)) for i in probs]))

    table = [
        {"settings": dict(zip(names, values)), "score": mean_score(dict(zip(names, values)))}
        for values in itertools.product(*(grid[name] for name in names))
    ]
    best = max(table, key=lambda row: row["score"])  # max keeps the first of equal scores
    return {
        "settings": best["settings"],
        "score": best["score"],
        "default_score": mean_score(config.POSTPROCESS_DEFAULTS[pipe.method]),
        "n_images": len(probs),
        "table": table,
    }


def evaluate_pipelines(
    names: Sequence[str],
    dataset: "data.Dataset",
    ids: Sequence[str] | None = None,
    tta_values: Sequence[bool] = (False, True),
    profile: str | None = None,
    networks: dict | None = None,
    verbose: bool = True,
    tune_on: Sequence[str] | None = None,
    seed: int = 0,
    root=None,
) -> list[dict]:
    """Score several pipelines, each with and without TTA, predicting every network once.

    Two-network pipelines share their networks' outputs with the single-network ones
    (``M3``, ``B1`` and ``M3B1`` cost two networks' predictions, not four). ``networks``: the
    networks at hand, by name (Keras models or :class:`nucleitut.training.Network`; see
    :func:`nucleitut.pipeline.as_networks`); the others are loaded from ``root`` (default
    :func:`nucleitut.config.models_dir`).

    With ``tune_on`` (image ids, normally the validation split) each pipeline gets a second
    record: its post-processing settings chosen on those images (:func:`tune_postprocessing`,
    separately with and without TTA) and then used on ``ids``. The records say which
    settings they used and where they come from (``postprocess``); tuned ones are named
    ``..._tuned.json``.
    """
    records.git_commit()  # the records name the commit of the code as it was when scoring started
    shared = as_networks(networks or {}, profile, seed)
    pipelines = []
    for name in names:
        pipelines.append(Pipeline.trained(name, profile, seed, reuse=shared, verbose=verbose, root=root))
        shared.update(pipelines[-1].networks)
    needed = sorted({network for pipe in pipelines for network in pipe.spec.networks})
    ids = list(ids) if ids is not None else dataset.split().test
    if tune_on is not None:
        tune_on = list(tune_on)
        if not tune_on:
            raise ValueError("tune_on is empty: post-processing settings need validation images to be chosen on")
        if set(tune_on) & set(ids):
            raise ValueError("tune_on and the scored images overlap: choose settings on other images than you score")

    def outputs(image_ids, tta):
        return {i: {n: predict.predict_probabilities(shared[n].model, dataset.get(i)[0], tta) for n in needed} for i in image_ids}

    scored = []
    for tta in tta_values:
        probs = outputs(ids, tta)
        if tune_on is not None:
            tune_probs = outputs(tune_on, tta)
            truths = {i: dataset.get(i)[1] for i in tune_on}
        for pipe in pipelines:
            labels_of = lambda image_id, s=pipe: s.labels_from(probs[image_id])  # noqa: E731
            scored.append(_score(pipe, dataset, ids, tta, labels_of, verbose))
            if tune_on is not None:
                tuned = tune_postprocessing(pipe, tune_probs, truths)
                chosen = pipe.with_settings(
                    tuned["settings"],
                    f"validation: best mean score over {tuned['n_images']} images "
                    f"({tuned['score']:.3f}; defaults {tuned['default_score']:.3f})",
                )
                if verbose:
                    print(f"{chosen.name}{' + TTA' if tta else ''}: settings {tuned['settings']} chosen on {chosen.chosen_on}")
                labels_of = lambda image_id, s=chosen: s.labels_from(probs[image_id])  # noqa: E731
                scored.append(_score(chosen, dataset, ids, tta, labels_of, verbose))
    return scored


def evaluate_seed_ensemble(
    pipeline: str,
    dataset: "data.Dataset",
    seeds: Sequence[int],
    ids: Sequence[str] | None = None,
    tta_values: Sequence[bool] = (False, True),
    profile: str | None = None,
    networks: dict | None = None,
    verbose: bool = True,
    root=None,
) -> list[dict]:
    """Score a :class:`nucleitut.pipeline.SeedEnsemble` with the default (the paper's) post-processing settings
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
    ensemble = SeedEnsemble(pipeline, seeds, profile, networks, verbose, root)
    ids = list(ids) if ids is not None else dataset.split().test
    networks = {f"{network} seed {m.seed}": facts for m in ensemble.members for network, facts in _network_facts(m).items()}
    postprocess_info = {"settings": dict(config.POSTPROCESS_DEFAULTS[ensemble.spec.method]), "chosen_on": "defaults"}
    scored = []
    for tta in tta_values:
        record = _record(ensemble.name, ensemble.spec.method, tta, ensemble.profile, ensemble.seeds,
                         dataset, ids, lambda image_id, tta=tta: ensemble(dataset.get(image_id)[0], tta), networks,
                         postprocess_info, verbose=False)
        record["ensemble_of_seeds"] = ensemble.seeds
        if verbose:
            print(f"{ensemble.name} ensemble of seeds {ensemble.seeds}{' + TTA' if tta else ''}: "
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
