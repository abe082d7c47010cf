"""Trained networks without training: the shipped reference networks and other models folders.

Book chapters: *Evaluation* and *Your own images*. :func:`load_networks` gives the
:class:`nucleitut.evaluation.Segmenter` that :func:`nucleitut.segment.segment_image` uses.

The *reference networks* live in ``nucleitut/reference/`` (:data:`REFERENCE_DIR`), built by
``python tools/make_reference.py`` with :func:`save_reference` in a compact form: float16
weights keyed by Keras weight paths, each network's training configuration, and
``reference.json`` with the pipeline, its post-processing settings and the training images'
nucleus sizes (:func:`nucleitut.sizing.nucleus_size_statistics`). :func:`load_reference`
rebuilds the U-Nets from it. Nothing here trains.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from . import sizing

__all__ = [
    "load_networks",
    "load_reference",
    "save_reference",
    "ReferenceMissing",
    "REFERENCE_DIR",
    "REFERENCE_COMMAND",
]

#: Where the reference networks live (package data; built by ``tools/make_reference.py``).
REFERENCE_DIR = Path(__file__).parent / "reference"
#: The command that builds :data:`REFERENCE_DIR` (named in the error when it is missing).
REFERENCE_COMMAND = (
    "python tools/make_reference.py --models DIR --pipeline M3B1 --profile cpu --data ZIP --settings-from-record "
    "(networks from `python -m nucleitut train M3 --profile cpu` and `... train B1 --profile cpu`, "
    "settings from results/cpu_M3B1_tta_tuned.json)"
)


class ReferenceMissing(FileNotFoundError):
    """The reference networks are not installed; the message names the command that builds them."""


def _weight_key(path: str) -> str:
    return path.replace("/", ":")


def save_reference(
    folder: str | os.PathLike,
    models: dict,
    configs: dict,
    pipeline: str,
    settings: dict,
    size_statistics: dict,
    **info,
) -> Path:
    """Store networks in the compact reference form (float16 weights, no optimiser).

    Writes ``<folder>/<NET>/weights.npz`` (float16, keyed by Keras weight paths),
    ``<folder>/<NET>/config.json`` (the training configuration) and ``<folder>/reference.json``
    (pipeline, post-processing settings, nucleus size statistics and ``info``: where and how
    the networks were trained, the results record summary, ...).

    Parameters
    ----------
    models : dict
        Network name -> Keras model.
    configs : dict
        Network name -> :class:`nucleitut.config.TrainingConfig` or its dict.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    networks = {}
    for name, model in models.items():
        cfg = configs[name]
        cfg = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
        weights = {}
        for variable in model.weights:
            value = np.asarray(variable.numpy() if hasattr(variable, "numpy") else variable, np.float32)
            half = value.astype(np.float16)
            if not np.isfinite(half).all():
                raise ValueError(f"{name}: weight {variable.path} does not fit float16")
            weights[_weight_key(variable.path)] = half
        (folder / name).mkdir(exist_ok=True)
        np.savez_compressed(folder / name / "weights.npz", **weights)
        (folder / name / "config.json").write_text(json.dumps(cfg, indent=1) + "\n")
        networks[name] = {
            "config": f"{name}/config.json",
            "weights": f"{name}/weights.npz",
            "parameters": int(model.count_params()),
            "dtype": "float16",
        }
    record = {
        "format": 1,
        "pipeline": pipeline,
        "networks": networks,
        "postprocess": dict(settings),
        "nucleus_size": size_statistics,
        **info,
    }
    (folder / "reference.json").write_text(json.dumps(record, indent=1) + "\n")
    return folder / "reference.json"


def load_reference(folder: str | os.PathLike | None = None) -> tuple[dict, dict]:
    """Load the reference networks without training: ``(models, info)``.

    Each U-Net is built from its saved configuration (:func:`nucleitut.unet.build_unet`) and
    gets its float16 weights cast to float32. ``info`` is ``reference.json``.

    Raises
    ------
    ReferenceMissing
        When ``folder`` (default :data:`REFERENCE_DIR`) holds no ``reference.json``; the
        message names the command that builds it.
    """
    from . import config, unet

    folder = Path(folder) if folder is not None else REFERENCE_DIR
    if not (folder / "reference.json").is_file():
        raise ReferenceMissing(f"{folder}: no reference networks (reference.json) here; build them with {REFERENCE_COMMAND}")
    info = json.loads((folder / "reference.json").read_text())
    models = {}
    for name, entry in info["networks"].items():
        cfg = config.TrainingConfig.from_dict(json.loads((folder / entry["config"]).read_text()))
        model = unet.build_unet(blocks=cfg.blocks, filters=cfg.filters, out_channels=cfg.out_channels, name=f"{name}_reference")
        with np.load(folder / entry["weights"]) as stored:
            keys = {_weight_key(v.path) for v in model.weights}
            if keys != set(stored.files):
                raise ValueError(
                    f"{folder / entry['weights']}: weights do not match a U-Net of {cfg.blocks} blocks, F={cfg.filters} "
                    f"({len(keys ^ set(stored.files))} names differ)"
                )
            for variable in model.weights:
                variable.assign(stored[_weight_key(variable.path)].astype(np.float32))
        model.nucleitut_config = cfg  # what predict.network_config reads (U-Net depth for tiling)
        models[name] = model
    return models, info


def load_networks(models=None, pipeline: str | None = None, profile: str | None = None):
    """A :class:`nucleitut.evaluation.Segmenter` and the training nucleus diameter, never training.

    Parameters
    ----------
    models : None, str, Path or dict
        None: the reference networks (:data:`REFERENCE_DIR`). A folder: a reference folder
        (with ``reference.json``), or trained networks as ``<folder>/<NET>/model.keras`` or
        ``<folder>/<profile>/<NET>/model.keras`` (the layout of ``NUCLEITUT_MODELS``). A dict:
        network name -> Keras model (loaded by :func:`nucleitut.predict.load_network`, or with
        a ``nucleitut_config`` attribute: the U-Net depth comes from the training configuration).
    pipeline : str, optional
        Default: the reference's pipeline, else ``M6B4``.

    Returns
    -------
    segmenter : nucleitut.evaluation.Segmenter
    target : float
        Training images' median nucleus diameter (:data:`nucleitut.sizing.TRAINING_DIAMETER`
        when the models carry no statistics of their own), or for size-normalised networks the
        diameter they were trained at (``segmenter.size_target``; ``segmenter.size_band`` is
        then None: every image is rescaled to it).
    """
    from . import config, evaluation, predict

    settings, target = {}, sizing.TRAINING_DIAMETER
    if models is None or (not isinstance(models, dict) and (Path(models) / "reference.json").is_file()):
        loaded, info = load_reference(models)
        pipeline = pipeline or info["pipeline"]
        if config.get_pipeline(pipeline).name == config.get_pipeline(info["pipeline"]).name:
            settings = info.get("postprocess", {})
        target = info.get("nucleus_size", {}).get("median_diameter", sizing.TRAINING_DIAMETER)
        models = loaded
    elif not isinstance(models, dict):
        folder = Path(models)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such models folder")
        chosen = config.get_pipeline(pipeline or "M6B4")
        profile_name = config.get_profile(profile).name
        loaded = {}
        for network in chosen.networks:
            for candidate in (folder / network, folder / profile_name / network):
                if (candidate / "model.keras").is_file():
                    loaded[network] = predict.load_network(candidate)
                    break
            else:
                raise FileNotFoundError(
                    f"{folder}: no trained {network} (looked for {network}/model.keras and {profile_name}/{network}/model.keras); "
                    f"train it with `python -m nucleitut train {network} --profile {profile_name}`"
                )
        models, pipeline = loaded, chosen.name
    chosen = config.get_pipeline(pipeline or "M6B4")
    missing = [n for n in chosen.networks if n not in models]
    if missing:
        raise FileNotFoundError(f"pipeline {chosen.name} needs {', '.join(missing)}, which the given models lack")
    segmenter = evaluation.Segmenter(chosen, profile, models=models, verbose=False, settings=settings or None)
    if settings:
        segmenter.chosen_on = "reference.json"
    if segmenter.size_target:  # size-normalised networks: their own training size is the target
        target = segmenter.size_target
    return segmenter, float(target)

