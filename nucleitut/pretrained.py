"""The shipped reference networks: storing and loading them, without training.

Book chapters: *Evaluation* and *Your own images*. :meth:`nucleitut.pipeline.Pipeline.reference`
and :meth:`nucleitut.pipeline.Pipeline.load` read what :func:`load_reference` returns.

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

from . import config, training, unet

__all__ = [
    "load_reference",
    "save_reference",
    "ReferenceMissing",
    "REFERENCE_DIR",
    "ROBUST_DIR",
    "REFERENCE_COMMAND",
]

#: Where the reference networks live (package data; built by ``tools/make_reference.py``).
REFERENCE_DIR = Path(__file__).parent / "reference"
#: M3B1 trained from scratch with the ``robust`` augmentation set (issue 31; 35 epochs each on
#: 2 CPU cores), stored like the reference by ``tools/make_reference.py --no-record``. It lives
#: in the repository beside the package, not in it (the package ships one reference), and is
#: not the default: on the validation images it scored 0.029 lower on images as they are, far
#: higher on inverted, dim and grey-tissue ones (results/benchmarks/README.md). Use it with
#: ``Pipeline.load(ROBUST_DIR)`` or ``segment ... --models networks/robust``.
ROBUST_DIR = Path(__file__).resolve().parents[1] / "networks" / "robust"
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
    networks: dict,
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
    networks : dict
        Network name -> :class:`nucleitut.training.Network` (a Keras model and its training
        configuration).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stored = {}
    for name, network in networks.items():
        model, cfg = network.model, network.config.to_dict()
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
        stored[name] = {
            "config": f"{name}/config.json",
            "weights": f"{name}/weights.npz",
            "parameters": int(model.count_params()),
            "dtype": "float16",
        }
    record = {
        "format": 1,
        "pipeline": pipeline,
        "networks": stored,
        "postprocess": dict(settings),
        "nucleus_size": size_statistics,
        **info,
    }
    (folder / "reference.json").write_text(json.dumps(record, indent=1) + "\n")
    return folder / "reference.json"


def load_reference(folder: str | os.PathLike | None = None) -> tuple[dict, dict]:
    """Load the reference networks without training: ``(networks, info)``.

    ``networks`` maps a name to a :class:`nucleitut.training.Network`: each U-Net is built from
    its saved configuration (:func:`nucleitut.unet.build_unet`) and gets its float16 weights
    cast to float32. ``info`` is ``reference.json``.

    Raises
    ------
    ReferenceMissing
        When ``folder`` (default :data:`REFERENCE_DIR`) holds no ``reference.json``; the
        message names the command that builds it.
    """
    folder = Path(folder) if folder is not None else REFERENCE_DIR
    if not (folder / "reference.json").is_file():
        raise ReferenceMissing(f"{folder}: no reference networks (reference.json) here; build them with {REFERENCE_COMMAND}")
    info = json.loads((folder / "reference.json").read_text())
    models = {}
    for name, entry in info["networks"].items():
        cfg = config.TrainingConfig.from_dict(json.loads((folder / entry["config"]).read_text()))
        model = unet.build_unet(blocks=cfg.blocks, filters=cfg.filters, out_channels=cfg.out_channels, name=f"{name}_reference")
        with np.load(folder / entry["weights"]) as stored:
            shapes = {_weight_key(v.path): tuple(v.shape) for v in model.weights}
            if set(shapes) != set(stored.files):
                raise ValueError(
                    f"{folder / entry['weights']}: weights do not match a U-Net of {cfg.blocks} blocks, F={cfg.filters} "
                    f"({len(set(shapes) ^ set(stored.files))} names differ)"
                )
            wrong = [key for key, shape in shapes.items() if stored[key].shape != shape]
            if wrong:
                raise ValueError(
                    f"{folder / entry['weights']}: weights do not match a U-Net of {cfg.blocks} blocks, F={cfg.filters} "
                    f"({len(wrong)} shapes differ, first {wrong[0]}: {stored[wrong[0]].shape} stored, {shapes[wrong[0]]} built)"
                )
            for variable in model.weights:
                variable.assign(stored[_weight_key(variable.path)].astype(np.float32))
        models[name] = training.Network(model, cfg)
    return models, info
