"""Training the paper's networks: input pipeline, augmentation, callbacks, saved models.

Book chapters: *First results* (training a network), *Improving training* (augmentation
sets, plateau schedule).

Everything here is Keras 3 and runs unchanged on the TensorFlow backend (CPUs, CI) and on
the JAX backend (the GPU machines). TensorFlow-specific code (``MirroredStrategy``) sits
behind a backend check.

The settings come from :func:`nucleitut.config.training_config`. From the paper: Adam with
AMSGrad, beta1 0.9, beta2 0.99, batch 8 (section 3.4); the learning rate of each Table 3 row
(1e-4, or 2e-4 for the starred rows, which quarter it after 5 plateau epochs); early
stopping after 10 epochs without improvement of the validation loss (Table 3 caption).
This project's choices: keeping the best weights, the loss history as CSV, a backup that
lets a killed run resume at its last epoch, mixed precision on GPUs in the full profile, and
the profiles' smaller networks, higher rates and cosine schedule.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy import ndimage as ndi
from skimage import measure

import keras

from . import config as config_module
from . import data as data_module
from . import losses, targets, unet

__all__ = [
    "AUGMENTATION_SETS",
    "crop_positions",
    "training_crops",
    "augment",
    "CropSequence",
    "build_model",
    "train",
    "TrainResult",
    "trained_model",
    "changed_settings",
    "Network",
    "load_network",
    "read_history",
    "distribution_scope",
]

#: The paper's augmentation sets (Table 3, footnotes a and b). Set a: flips, 90° rotation,
#: noise, scaling and blur; set b: only the geometric ones that never change pixel values.
#: The paper names the operations only; probabilities and ranges (see :func:`augment`) are
#: this project's choice.
#:
#: ``robust`` is not the paper's: this project's set for images unlike the training data
#: (other microscopes, stains, cameras, file formats): set a's operations and the ways other
#: people's images differ, ``colour`` (grey conversion, stain jitter in HED space, channel
#: order), ``invert`` (bright background), ``intensity`` (dimming to a few % of the range,
#: offset, gamma) and ``jpeg`` (compression), applied in the order an image is made.
AUGMENTATION_SETS: dict[str, tuple[str, ...]] = {
    "none": (),
    "a": ("flip_lr", "flip_ud", "rot90", "noise", "scale", "blur"),
    "b": ("flip_lr", "flip_ud", "rot90"),
    "robust": ("flip_lr", "flip_ud", "rot90", "scale", "colour", "invert", "intensity", "blur", "noise", "jpeg"),
}
#: Range of the scale factors of ``scale`` (uniform).
SCALE_RANGE = (0.8, 1.25)
#: Probability of each operation of a set, where it is not 0.5 (:func:`augment`). The
#: ``robust`` set applies each of its operations but the flips and rotations more rarely than
#: set a, so that about a fifth of the crops keep the training images' look (this project's
#: choice: the first fine-tuning, with set a's 0.5 for noise, blur and scale and 0.2-0.3 for
#: the others, left one crop in 25 as it was and cost the validation images as they are 0.03).
SET_PROBABILITIES: dict[str, dict[str, float]] = {
    "robust": {"scale": 0.2, "colour": 0.25, "invert": 0.2, "intensity": 0.25, "blur": 0.2, "noise": 0.2, "jpeg": 0.15},
}
#: Ranges of the ``robust`` set's operations (this project's choice, see :func:`augment`).
ROBUST_RANGES = {
    "gain": (0.05, 1.0),  # log-uniform: dimmed down to 5 % of the range
    "offset": (0.0, 40.0),  # grey levels added (camera offset, background)
    "gamma": (0.6, 1.6),  # log-uniform
    "hed_scale": (0.8, 1.2),  # per stain channel
    "hed_shift": (-0.02, 0.02),  # per stain channel
    "jpeg_quality": (20, 80),
}


def _rescale(image: np.ndarray, labels: np.ndarray, factor: float, rng: np.random.Generator):
    """Zoom image (linear) and labels (nearest) by ``factor``; crop or pad back to size.

    A shrunk crop is padded by mirroring, image and labels alike, so that a nucleus seen in
    the mirrored margin is labelled there too; each mirrored copy becomes an object of its
    own (``skimage.measure.label`` of equal-valued regions), and a nucleus cut by the edge
    joins its mirror image into one object, as the image shows it.
    """
    size = labels.shape
    zoomed_image = ndi.zoom(image, (factor, factor, 1), order=1)
    zoomed_labels = ndi.zoom(labels, (factor, factor), order=0)
    if factor >= 1:
        y = int(rng.integers(0, zoomed_labels.shape[0] - size[0] + 1))
        x = int(rng.integers(0, zoomed_labels.shape[1] - size[1] + 1))
        return zoomed_image[y : y + size[0], x : x + size[1]], zoomed_labels[y : y + size[0], x : x + size[1]]
    pads = [(0, size[0] - zoomed_labels.shape[0]), (0, size[1] - zoomed_labels.shape[1])]
    padded_labels = measure.label(np.pad(zoomed_labels, pads, mode="reflect"), background=0, connectivity=1)
    return np.pad(zoomed_image, pads + [(0, 0)], mode="reflect"), padded_labels.astype(labels.dtype)


def _colour(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Grey conversion, stain jitter in HED space or another channel order (colour crops;
    a grey crop stays as it is). ``image``: float (H, W, 3) in [0, 255]."""
    from skimage import color

    if np.ptp(image, axis=-1).max() == 0:
        return image
    kind = rng.choice(["grey", "stain", "channels"], p=[0.4, 0.4, 0.2])
    if kind == "grey":
        return np.repeat(image.mean(axis=-1, keepdims=True), 3, axis=-1)
    if kind == "channels":
        return image[..., rng.permutation(3)]
    hed = color.rgb2hed(image / 255.0)
    hed = hed * rng.uniform(*ROBUST_RANGES["hed_scale"], size=3) + rng.uniform(*ROBUST_RANGES["hed_shift"], size=3)
    return np.clip(color.hed2rgb(hed), 0, 1) * 255.0


def _intensity(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gamma, then dimming (gain) and an offset: ``offset + gain * 255 (A / 255) ** gamma``."""
    log_uniform = lambda low, high: float(np.exp(rng.uniform(np.log(low), np.log(high))))  # noqa: E731
    gamma, gain = log_uniform(*ROBUST_RANGES["gamma"]), log_uniform(*ROBUST_RANGES["gain"])
    return float(rng.uniform(*ROBUST_RANGES["offset"])) + gain * 255.0 * (image / 255.0) ** gamma


def _jpeg(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Compressed and decoded again (Pillow), quality drawn from ``ROBUST_RANGES``."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    quality = int(rng.integers(ROBUST_RANGES["jpeg_quality"][0], ROBUST_RANGES["jpeg_quality"][1] + 1))
    Image.fromarray(np.clip(np.round(image), 0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"), np.float32)


#: The ``robust`` set's operations on pixel values: float (H, W, 3) in [0, 255] -> same.
_PHOTOMETRIC = {"colour": _colour, "invert": lambda image, rng: 255.0 - image, "intensity": _intensity, "jpeg": _jpeg}


def augment(
    image: np.ndarray, labels: np.ndarray, operations: Sequence[str], rng: np.random.Generator,
    probabilities: dict[str, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Randomly augment a crop and its labels together (Table 3's sets a and b; section 4.4).

    Geometric operations (``flip_lr``, ``flip_ud``, ``rot90``, ``scale``) move image and
    labels alike, so targets computed afterwards stay consistent; ``noise`` and ``blur``
    change only the image. This project's choices (the paper gives none): each operation is
    applied with probability 0.5, rotations by 90, 180 or 270 degrees, scale factors 0.8-1.25
    blur sigma 0.5-1.5 px, noise standard deviation 0.01-0.08 (on the [-1, 1] scale).
    The ``robust`` set's own operations (this project's, not the paper's) change only the
    image, with the ranges of :data:`ROBUST_RANGES`; each works on 8-bit levels and rounds to
    them, as a camera would. ``probabilities`` (operation -> probability, 0.5 where missing;
    a set's own in :data:`SET_PROBABILITIES`) change how often each operation is applied.

    Parameters
    ----------
    image : ndarray float32 (H, W, 3)
        Normalised crop (see :func:`nucleitut.data.normalize`).
    labels : ndarray int32 (H, W)
    operations : sequence of str
        Names from :data:`AUGMENTATION_SETS`.
    rng : numpy Generator
    probabilities : dict, optional

    Returns
    -------
    image, labels : augmented copies of the same shapes
    """
    unknown = set(operations) - {op for ops in AUGMENTATION_SETS.values() for op in ops}
    if unknown:
        raise ValueError(f"unknown augmentation(s) {sorted(unknown)}")
    for op in operations:
        if rng.random() >= (probabilities or {}).get(op, 0.5):
            continue
        if op in _PHOTOMETRIC:
            image = _PHOTOMETRIC[op](data_module.denormalize(image).astype(np.float32), rng)
            image = data_module.normalize(np.clip(np.round(image), 0, 255))
            continue
        if op == "flip_lr":
            image, labels = image[:, ::-1], labels[:, ::-1]
        elif op == "flip_ud":
            image, labels = image[::-1], labels[::-1]
        elif op == "rot90":
            k = int(rng.integers(1, 4)) if image.shape[0] == image.shape[1] else 2
            image, labels = np.rot90(image, k), np.rot90(labels, k)
        elif op == "scale":
            image, labels = _rescale(image, labels, float(rng.uniform(*SCALE_RANGE)), rng)
        elif op == "blur":
            image = ndi.gaussian_filter(image, sigma=(float(rng.uniform(0.5, 1.5)),) * 2 + (0,))
        elif op == "noise":
            image = image + rng.normal(0, float(rng.uniform(0.01, 0.08)), size=image.shape).astype(np.float32)
    return np.ascontiguousarray(image, np.float32), np.ascontiguousarray(labels)


def crop_positions(length: int, size: int) -> list[int]:
    """Start positions of crops of ``size`` covering ``[0, length)`` with the least overlap.

    >>> crop_positions(360, 256), crop_positions(256, 256), crop_positions(520, 256)
    ([0, 104], [0], [0, 132, 264])
    """
    if length <= size:
        return [0]
    n = int(np.ceil(length / size))
    return [int(round(i * (length - size) / (n - 1))) for i in range(n)]


def training_crops(
    images: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    size: int = 256,
    min_nuclei: int = 2,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Cut every image into ``size`` x ``size`` sub-images (paper sections 3.2 and 3.5).

    The paper fixes the input to 256 x 256 px, the smallest image size of the data set (3.2),
    crops larger images into subimages and excludes "subimages with less than two objects"
    (3.5). This project's choices: the fewest crops that cover an image, and reflection
    padding (image and labels alike) of smaller images (the paper suggests zero padding as an
    option). Crops holding fewer than ``min_nuclei`` nuclei are excluded. Labels are
    relabelled 1..n per crop.

    Returns
    -------
    crops : list of uint8 (size, size, 3)
    crop_labels : list of int32 (size, size)
    """
    from skimage.segmentation import relabel_sequential

    out_images, out_labels = [], []
    for image, label in zip(images, labels):
        image = data_module.pad_to(image, size, size)
        label = data_module.pad_to(label, size, size)
        for y in crop_positions(image.shape[0], size):
            for x in crop_positions(image.shape[1], size):
                crop_label = label[y : y + size, x : x + size]
                present = np.unique(crop_label)
                if np.count_nonzero(present) < min_nuclei:
                    continue
                out_images.append(np.ascontiguousarray(image[y : y + size, x : x + size]))
                out_labels.append(relabel_sequential(crop_label)[0].astype(np.int32))
    return out_images, out_labels


class CropSequence(keras.utils.PyDataset):
    """Batches of augmented crops and their targets for ``model.fit``.

    Targets are computed after augmentation from the augmented labels. The order of crops
    and every random draw depend only on ``seed``, the epoch and the batch index, so a run
    is repeatable also with worker processes.

    Parameters
    ----------
    crops : list of uint8 (S, S, 3)
    crop_labels : list of int32 (S, S)
    cfg : TrainingConfig
    training : bool
        Shuffle and augment (training) or not (validation).
    drop_remainder : bool, optional
        Leave out the last incomplete batch (default: when training). Batch normalisation
        learns little from tiny batches, and data-parallel replicas must not get empty ones.
    """

    def __init__(self, crops, crop_labels, cfg, training=True, seed=0, drop_remainder=None, **kwargs):
        super().__init__(**kwargs)
        if len(crops) == 0:
            raise ValueError("no training crops: every crop held fewer than two nuclei")
        self.crops = crops
        self.crop_labels = crop_labels
        self.cfg = cfg
        self.training = training
        self.seed = seed
        self.epoch = 0
        self.operations = AUGMENTATION_SETS[cfg.augmentation] if training else ()
        self.drop_remainder = training if drop_remainder is None else drop_remainder
        # Without augmentation a crop's target never changes: compute it once.
        self._targets: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        if self.drop_remainder:
            return max(1, len(self.crops) // self.cfg.batch_size)
        return math.ceil(len(self.crops) / self.cfg.batch_size)

    def _order(self) -> np.ndarray:
        if not self.training:
            return np.arange(len(self.crops))
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.crops))

    def __getitem__(self, index: int):
        order = self._order()
        picks = order[index * self.cfg.batch_size : (index + 1) * self.cfg.batch_size]
        rng = np.random.default_rng([self.seed, self.epoch, index, 1])
        xs, ys = [], []
        for i in picks:
            image = data_module.normalize(self.crops[i])
            if not self.operations:
                if i not in self._targets:
                    self._targets[i] = targets.make_target(self.crop_labels[i], self.cfg.target, **self.cfg.target_params)
                xs.append(image)
                ys.append(self._targets[i])
                continue
            image, labels = augment(image, self.crop_labels[i], self.operations, rng, SET_PROBABILITIES.get(self.cfg.augmentation))
            xs.append(image)
            ys.append(targets.make_target(labels, self.cfg.target, **self.cfg.target_params))
        return np.stack(xs), np.stack(ys).astype(np.float32)

    def on_epoch_end(self):
        if self.training:
            self.epoch += 1


def build_model(cfg, steps_per_epoch: int | None = None) -> keras.Model:
    """U-Net and optimiser for a :class:`~nucleitut.config.TrainingConfig`, compiled.

    ``steps_per_epoch`` is needed by the ``cosine`` learning-rate schedule."""
    model = unet.build_unet(
        blocks=cfg.blocks, filters=cfg.filters, out_channels=cfg.out_channels, name=f"{cfg.network}_{cfg.profile}"
    )
    rate = cfg.learning_rate
    if cfg.lr_schedule == "cosine":
        if not steps_per_epoch:
            raise ValueError(f"{cfg.network} ({cfg.profile} profile): the cosine schedule needs steps_per_epoch")
        rate = cosine_schedule(cfg, steps_per_epoch)
    optimizer = keras.optimizers.Adam(learning_rate=rate, beta_1=cfg.beta_1, beta_2=cfg.beta_2, amsgrad=cfg.amsgrad)
    model.compile(optimizer=optimizer, loss=losses.get_loss(cfg.loss), metrics=[losses.DiceCoefficient(name="dice")])
    return model


class TimeBudget(keras.callbacks.Callback):
    """Stop training after ``seconds`` (checked after every batch)."""

    def __init__(self, seconds: float | None):
        super().__init__()
        self.seconds = seconds
        self.start = None
        self.stopped = False

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if self.seconds is not None and time.perf_counter() - self.start > self.seconds:
            self.model.stop_training = True
            self.stopped = True


def cosine_schedule(cfg, steps_per_epoch: int):
    """The ``cosine`` learning-rate schedule: half a cosine over ``cfg.max_epochs`` epochs.

    ``lr(step) = base * (0.01 + 0.99 * (1 + cos(pi * step / total)) / 2)``: the full rate at
    the start, 1 % of it after the last batch. This project's choice for short CPU trainings
    (the cpu profile), where too few epochs pass for the paper's plateau rule to act. Keras
    keeps the step count in the optimizer, so a resumed run continues on the same curve.

    >>> from nucleitut import config
    >>> schedule = cosine_schedule(config.training_config("M6", "cpu"), steps_per_epoch=10)
    >>> round(float(schedule(0)), 6), round(float(schedule(80)), 6)
    (0.002, 2e-05)
    """
    return keras.optimizers.schedules.CosineDecay(
        cfg.learning_rate, decay_steps=max(1, cfg.max_epochs * steps_per_epoch), alpha=0.01
    )


class LearningRateLog(keras.callbacks.Callback):
    """Adds the current learning rate to the epoch logs (and so to ``history.csv``)."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


class EpochLog(keras.callbacks.Callback):
    """Times every epoch (training and validation) into the logs as ``epoch_seconds``, so
    ``history.csv`` keeps the time of every epoch of every run, resumed ones included; with
    ``verbose``, one short line per epoch, readable in notebooks and in logs."""

    def __init__(self, verbose: bool = True):
        super().__init__()
        self.verbose = verbose
        self.times: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._start
        self.times.append(seconds)
        if logs is not None:
            logs["epoch_seconds"] = round(seconds, 2)
        if not self.verbose:
            return
        logs = logs or {}
        lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        print(
            f"epoch {epoch + 1:3d}  loss {logs.get('loss', float('nan')):.4f}  "
            f"val_loss {logs.get('val_loss', float('nan')):.4f}  val_dice {logs.get('val_dice', float('nan')):.3f}  "
            f"lr {lr:.2g}  {seconds:.1f} s",
            flush=True,
        )


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` leaves behind (also written to ``timing.json``)."""

    model: keras.Model
    directory: Path
    epochs: int
    seconds: float
    ms_per_crop: float
    best_val_loss: float
    history: dict
    config: "config_module.TrainingConfig | None" = None

    @property
    def network(self) -> "Network":
        """The trained network with its configuration."""
        return Network(self.model, self.config)


@contextlib.contextmanager
def distribution_scope(devices: int | None = None):
    """Data-parallel training on several devices through the backend's own engine.

    TensorFlow: ``tf.distribute.MirroredStrategy``; JAX: ``keras.distribution.DataParallel``.
    ``devices=None`` or 1 does nothing. Build and compile the model inside the scope. Used
    with CPUs split into logical devices in the tests.
    """
    if not devices or devices <= 1:
        yield None
        return
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        kind = "GPU" if tf.config.list_logical_devices("GPU") else "CPU"
        names = [d.name for d in tf.config.list_logical_devices(kind)][:devices]
        strategy = tf.distribute.MirroredStrategy(names)
        with strategy.scope():
            yield strategy
    elif backend == "jax":
        import jax

        chosen = keras.distribution.list_devices()[:devices]
        distribution = keras.distribution.DataParallel(devices=chosen)
        previous = keras.distribution.distribution()
        keras.distribution.set_distribution(distribution)
        try:
            yield distribution
        finally:
            keras.distribution.set_distribution(previous)
    else:
        raise NotImplementedError(f"data-parallel training is not set up for the {backend} backend")


def _set_precision(cfg) -> None:
    use_mixed = cfg.mixed_precision and bool(config_module.available_devices())
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if use_mixed else "float32")


def train(
    cfg,
    dataset: "data_module.Dataset",
    directory: str | os.PathLike,
    split: "data_module.Split | None" = None,
    devices: int | None = None,
    workers: int = 1,
    verbose: bool = True,
    initial_model: keras.Model | None = None,
) -> TrainResult:
    """Train one network; resume if ``directory`` holds an interrupted run.

    Parameters
    ----------
    cfg : TrainingConfig
    dataset : Dataset
        Images and labels; ``split`` (default ``dataset.split()``) picks training and
        validation images.
    directory : path
        Receives ``model.keras`` (best weights), ``config.json``, ``history.csv``,
        ``timing.json`` and, while running, ``backup/`` for resuming.
    devices : int, optional
        Data-parallel training on this many devices (see :func:`distribution_scope`).
    workers : int
        Worker processes of the input pipeline (1: in the training process).
    initial_model : keras.Model, optional
        Start from this network's weights (fine-tuning; same architecture) instead of a
        random initialisation; a resumed run continues from its backup as always.

    Returns
    -------
    TrainResult
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if not (directory / "backup").exists():
        # A fresh run (not a resumed one): earlier files in this folder belong to another run.
        for name in ("history.csv", "best.weights.h5", "timing.json", "model.keras"):
            (directory / name).unlink(missing_ok=True)
    split = split or dataset.split()
    keras.utils.set_random_seed(cfg.seed)
    _set_precision(cfg)

    def crops_of(ids):
        pairs = [dataset.get(i) for i in ids]
        return training_crops([p[0] for p in pairs], [p[1] for p in pairs], size=cfg.crop_size)

    train_crops, train_labels = crops_of(split.train)
    val_crops, val_labels = crops_of(split.val)
    pipeline = {"workers": workers, "use_multiprocessing": workers > 1}
    train_seq = CropSequence(train_crops, train_labels, cfg, training=True, seed=cfg.seed, **pipeline)
    val_seq = CropSequence(
        val_crops, val_labels, cfg, training=False, seed=cfg.seed, drop_remainder=bool(devices and devices > 1), **pipeline
    )
    (directory / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1) + "\n")

    with distribution_scope(devices):
        model = build_model(cfg, steps_per_epoch=len(train_seq))
        if initial_model is not None:
            model.set_weights(initial_model.get_weights())
    if verbose:
        print(
            f"Training {cfg.network} ({cfg.profile} profile): {cfg.blocks} blocks, F={cfg.filters}, "
            f"{model.count_params():,} parameters, target {cfg.target}, loss {cfg.loss}, "
            f"augmentation {cfg.augmentation}; {len(train_crops)} training / {len(val_crops)} validation "
            f"crops of {cfg.crop_size}x{cfg.crop_size}",
            flush=True,
        )
    budget = TimeBudget(cfg.time_budget_s)
    epoch_log = EpochLog(verbose)
    callbacks = [
        keras.callbacks.BackupAndRestore(str(directory / "backup")),
        LearningRateLog(),
        epoch_log,  # before CSVLogger, which writes the epoch_seconds it adds
        keras.callbacks.ModelCheckpoint(str(directory / "best.weights.h5"), save_best_only=True, save_weights_only=True),
        keras.callbacks.CSVLogger(str(directory / "history.csv"), append=True),
        keras.callbacks.EarlyStopping(patience=cfg.early_stopping_patience),
        budget,
    ]
    if cfg.lr_schedule == "paper" and cfg.plateau:
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(factor=cfg.plateau_factor, patience=cfg.plateau_patience, verbose=0)
        )
    start = time.perf_counter()
    history = model.fit(
        train_seq, validation_data=val_seq, epochs=cfg.max_epochs, shuffle=False, callbacks=callbacks, verbose=0
    )
    seconds = time.perf_counter() - start
    best = directory / "best.weights.h5"
    if best.exists():
        model.load_weights(str(best))
    model.save(directory / "model.keras")
    rows = read_history(directory / "history.csv")
    epochs = len(rows.get("epoch", []))
    trained_crops = len(train_crops) * max(1, len(history.epoch))
    ms_per_crop = 1000 * sum(epoch_log.times) / trained_crops if epoch_log.times else 1000 * seconds / trained_crops
    result = TrainResult(
        model=model,
        directory=directory,
        epochs=epochs,
        seconds=seconds,
        ms_per_crop=ms_per_crop,
        best_val_loss=float(np.min(rows["val_loss"])) if len(rows.get("val_loss", [])) else math.nan,
        history=rows,
        config=cfg,
    )
    epoch_seconds = [float(v) for v in rows.get("epoch_seconds", [])]
    timing = {
        "epochs": epochs,
        "seconds_this_run": round(seconds, 1),
        # Every finished epoch of every run (a resumed training's earlier runs included); an
        # epoch cut short by a stop is lost, as its weights are.
        "seconds_all_epochs": round(sum(epoch_seconds), 1) if len(epoch_seconds) == epochs else None,
        "ms_per_crop_including_validation": round(ms_per_crop, 2),
        "stopped_by_time_budget": budget.stopped,
        "training_crops": len(train_crops),
        "validation_crops": len(val_crops),
        "backend": keras.backend.backend(),
        "devices": config_module.available_devices() or ["cpu"],
        "data": dataset.describe(),
        "predict_ms_per_crop": round(predict_ms_per_crop(model, cfg.crop_size), 2),
    }
    (directory / "timing.json").write_text(json.dumps(timing, indent=1) + "\n")
    return result


def predict_ms_per_crop(model, size: int, batch_size: int = 8, repeats: int = 3) -> float:
    """Prediction time per ``size`` x ``size`` crop in batches of ``batch_size`` (best of
    ``repeats`` after one warm-up batch), in milliseconds."""
    batch = np.zeros((batch_size, size, size, 3), np.float32)
    model.predict_on_batch(batch)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict_on_batch(batch)
        best = min(best, time.perf_counter() - start)
    return 1000 * best / batch_size


def read_history(path: str | os.PathLike) -> dict:
    """The loss history of a training (``history.csv`` or its folder) as ``{column: array}``."""
    import csv

    path = Path(path)
    if path.is_dir():
        path = path / "history.csv"
    if not path.exists():
        return {}
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    return {
        key: np.array([float(row[key]) for row in rows if row.get(key) not in (None, "")]) for key in (rows[0] if rows else {})
    }


def training_seconds(timing: dict) -> float | None:
    """Seconds a training took, from its ``timing.json``: every finished epoch of every run
    where the file has them (a training resumed after a stop), else the last run's time
    (older folders, or a run whose history lost an epoch).

    >>> training_seconds({"seconds_this_run": 20.0, "seconds_all_epochs": 310.5})
    310.5
    >>> training_seconds({"seconds_this_run": 20.0, "seconds_all_epochs": None})
    20.0
    """
    seconds = timing.get("seconds_all_epochs")
    return seconds if seconds is not None else timing.get("seconds_this_run")


# --------------------------------------------------------------------------------------
# Saved networks
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Network:
    """A trained network and the configuration it was trained with."""

    model: keras.Model
    config: config_module.TrainingConfig

    @property
    def name(self) -> str:
        return self.config.network

    @property
    def blocks(self) -> int:
        """The U-Net's depth: inputs must be divisible by ``2 ** blocks``."""
        return self.config.blocks


def load_network(directory: str | os.PathLike) -> Network:
    """Load a network saved by :func:`train` (``model.keras``, ``safe_mode=True``) with its
    training configuration (``config.json``).

    Raises
    ------
    FileNotFoundError
        Naming the folder and the command that trains the network.
    """
    directory = Path(directory)
    if not (directory / "model.keras").exists() or not (directory / "config.json").exists():
        raise FileNotFoundError(
            f"{directory}: no trained network (model.keras and config.json); train it with "
            f"`python -m nucleitut train {directory.name}` or `training.trained_model({directory.name!r})`"
        )
    model = keras.models.load_model(directory / "model.keras", safe_mode=True)
    cfg = config_module.TrainingConfig.from_dict(json.loads((directory / "config.json").read_text()))
    return Network(model, cfg)


def changed_settings(reference, variant) -> dict[str, tuple]:
    """``{setting: (reference value, variant value)}`` for every setting in which two training
    configurations differ, the time budget left out (it says how long, not how to train).

    >>> a = config_module.training_config("B1", "quick")
    >>> changed_settings(a, dataclasses.replace(a, filters=16, time_budget_s=None))
    {'filters': (8, 16)}
    """
    return {
        field.name: (getattr(reference, field.name), getattr(variant, field.name))
        for field in dataclasses.fields(reference)
        if field.name != "time_budget_s" and getattr(reference, field.name) != getattr(variant, field.name)
    }


def trained_model(
    network: str,
    profile: str | None = None,
    dataset: "data_module.Dataset | None" = None,
    retrain: bool = False,
    verbose: bool = True,
    seed: int = 0,
) -> keras.Model:
    """The trained network ``network`` of ``profile``: loaded if saved, else trained now.

    Chapters call this so that the book trains every network once and later chapters reuse
    it. The saved files live in :func:`nucleitut.config.model_dir`; ``seed`` picks one of repeated trainings.
    A saved network trained with other settings than the profile's today (for example by an
    earlier version of this book) is trained again.
    """
    directory = config_module.model_dir(network, profile, seed)
    cfg = config_module.training_config(network, profile, seed=seed)
    if not retrain and (directory / "model.keras").exists() and (directory / "timing.json").exists():
        saved = load_network(directory)
        changed = changed_settings(saved.config, cfg)
        if not changed:
            if verbose:
                print(f"Loading {network.upper()} ({cfg.profile} profile) from the models folder "
                      f"({directory.relative_to(config_module.models_dir())})")
            return saved.model
        if verbose:
            text = ", ".join(f"{name} {old!r} -> {new!r}" for name, (old, new) in changed.items())
            print(f"{network.upper()} in the models folder was trained with other settings ({text}): training it again")
    if dataset is None:
        dataset = data_module.load_dataset(profile=profile, verbose=verbose)
    return train(cfg, dataset, directory, verbose=verbose).model
