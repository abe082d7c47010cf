"""Fine-tune the reference networks on a few annotated images of your own.

Book chapter: *Your own images* ("When it still fails"); command line:
``python -m nucleitut finetune MY_ANNOTATED_FOLDER MY_NETWORKS``.

The paper's recommendation 8 for images unlike the training data is more training data
("Look for additional training data sets", section 6). With a handful of annotated images a
network trained from scratch learns little; starting from the reference networks' weights
and training a few epochs with a lower learning rate (this project's choice) keeps what they
already know. Measured on this book's data (``experiments/check_finetune_tissue.py``,
results/benchmarks/finetune_tissue*.json): fine-tuned on stained-tissue images the
reference had mostly seen already, no variant improved the tissue test images; networks
fine-tuned on tissue alone lost much of their fluorescence score, and mixed with as many
images of other types they kept it. The steps, with the defaults chosen from that measurement:

1. the annotated images (Kaggle layout: ``<id>/images/<id>.png``, ``<id>/masks/*.png``),
   with as many BBBC038v1 images mixed in (the command's default; Python: ``mix=`` of
   :func:`images_to_mix`, from the training and validation images of the reference's data,
   never its test images), are split into
   training and validation images (:func:`holdout_split`: there is no test set; score on
   other images you annotate);
2. each network of the reference pipeline trains from its reference weights
   (:func:`finetune_networks`) on the images as they are, with the reference's augmentation
   and a tenth of its learning rate (this project's choices);
3. the networks are stored as a reference folder (:func:`nucleitut.pretrained.save_reference`:
   float16 weights, the reference's post-processing settings), which ``segment --models``
   reads, with the reference's size handling.

>>> holdout_split([f"img{i}" for i in range(6)]).sizes()
(5, 1, 0)
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from . import pretrained, training
from .data import Split

__all__ = ["holdout_split", "images_to_mix", "finetune_networks", "finetune_reference", "LR_FACTOR", "EPOCHS"]

#: Times the reference's learning rate (this project's choice for fine-tuning).
LR_FACTOR = 0.1
#: Epochs of fine-tuning (this project's choice; early stopping may end sooner).
EPOCHS = 10


def holdout_split(ids: Sequence[str], val_fraction: float = 0.2, seed: int = 0):
    """Training and validation images of a small annotated set (no test images).

    ``val_fraction`` of the images (at least one), drawn with a fixed seed, are validation.

    Raises
    ------
    ValueError
        With fewer than two images: one to train on and one to check the training.
    """
    ordered = sorted(ids)
    if len(ordered) < 2:
        raise ValueError(f"fine-tuning needs at least 2 annotated images (one to train on, one to check), got {len(ordered)}")
    n_val = min(len(ordered) - 1, max(1, int(round(val_fraction * len(ordered)))))
    order = np.random.default_rng(seed).permutation(len(ordered))
    return Split(sorted(ordered[i] for i in order[n_val:]), sorted(ordered[i] for i in order[:n_val]), [])


def images_to_mix(dataset, count: int, exclude: Sequence[str] = (), seed: int = 0):
    """``count`` images of ``dataset``'s training and validation split, drawn with ``seed``.

    Mixed into a fine-tuning, they keep the networks from forgetting the images they were
    trained on; the test images of the split are never drawn, so the reference's test
    scores stay comparable. Images whose id is in ``exclude`` are skipped; when fewer than
    ``count`` remain, all of them are used.

    >>> from nucleitut import data
    >>> sample = data.load_dataset("sample", verbose=False)
    >>> mixed = images_to_mix(sample, 5)
    >>> len(mixed), set(mixed.ids) & set(sample.split().test)
    (5, set())
    """
    split = dataset.split()
    skip = set(exclude)
    candidates = [i for i in split.train + split.val if i not in skip]
    count = min(count, len(candidates))
    chosen = np.random.default_rng(seed).choice(candidates, size=count, replace=False).tolist() if count else []
    return dataset.subset(sorted(chosen))


def finetune_networks(
    networks: dict,
    dataset,
    folder: str | os.PathLike,
    split=None,
    epochs: int = EPOCHS,
    lr_factor: float = LR_FACTOR,
    augmentation: str | None = None,
    verbose: bool = True,
) -> dict:
    """Train each network of ``networks`` (name -> :class:`nucleitut.training.Network`)
    further, from its weights; ``{name: TrainResult}``.

    Each network's training configuration is kept except for ``max_epochs``, the learning
    rate (times ``lr_factor``) and, when given, ``augmentation``; no time budget. The networks
    go to ``<folder>/<profile>/<NET>/`` (the layout of a models folder); an interrupted run
    resumes there (training's own backup).
    """
    results = {}
    for name, network in networks.items():
        cfg = network.config
        cfg = dataclasses.replace(cfg, max_epochs=epochs, learning_rate=cfg.learning_rate * lr_factor,
                                  time_budget_s=None, augmentation=augmentation or cfg.augmentation)
        directory = Path(folder) / cfg.profile / name
        if verbose:
            print(f"[{name}] fine-tuning for {epochs} epochs, augmentation {cfg.augmentation}, "
                  f"learning rate {cfg.learning_rate:g} -> {directory}", flush=True)
        results[name] = training.train(cfg, dataset, directory, split=split, initial_model=network.model, verbose=verbose)
        if verbose:
            result = results[name]
            print(f"[{name}] {result.epochs} epochs, best val_loss {result.best_val_loss:.4f}", flush=True)
    return results


def finetune_reference(
    dataset,
    out: str | os.PathLike,
    epochs: int = EPOCHS,
    lr_factor: float = LR_FACTOR,
    reference: str | os.PathLike | None = None,
    val_fraction: float = 0.2,
    mix=None,
    verbose: bool = True,
) -> Path:
    """Fine-tune a reference pipeline on annotated images and store it as a reference folder.

    Parameters
    ----------
    dataset : nucleitut.data.Dataset
        The annotated images (:func:`nucleitut.data.load_dataset` of a Kaggle-layout folder).
    out : path
        Receives the reference folder (``reference.json``, ``<NET>/weights.npz``) and the
        training folders under ``out/training``.
    reference : path, optional
        The reference folder to start from (default: the shipped one).
    mix : nucleitut.data.Dataset, optional
        Images trained on together with ``dataset`` (e.g. :func:`images_to_mix` of BBBC038v1),
        so that the networks keep what they know of them.

    Returns
    -------
    Path of the written ``reference.json``.
    """
    models, info = pretrained.load_reference(reference)
    annotated = dataset
    holdout_split(annotated.ids)  # at least two images of yours, whatever is mixed in
    if mix is not None and len(mix):
        dataset = dataset.joined(mix)
    split = holdout_split(dataset.ids, val_fraction)
    results = finetune_networks(models, dataset, Path(out) / "training", split, epochs, lr_factor, verbose=verbose)
    trained = {name: training.load_network(result.directory) for name, result in results.items()}
    return pretrained.save_reference(
        out, trained, info["pipeline"], info.get("postprocess", {}), info["nucleus_size"],
        profile=info.get("profile"),
        postprocess_chosen_on=f"kept from the reference it was fine-tuned from ({info.get('postprocess_chosen_on', 'not recorded')})",
        trained={
            "where": "fine-tuned from a reference (nucleitut.finetune)",
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "data": dataset.describe(),
            "annotated_images": len(annotated),
            "mixed_in": mix.describe() if mix is not None and len(mix) else None,
            "images": {"train": len(split.train), "val": len(split.val)},
            "networks": {name: {"epochs": r.epochs, "best_val_loss": r.best_val_loss, "learning_rate": trained[name].config.learning_rate}
                         for name, r in results.items()},
            "from": info.get("trained"),
        },
    )
