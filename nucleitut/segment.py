"""Segment your own images: reference networks, nucleus size, robust intensities, outputs.

Book chapter: *Your own images*; command line: ``python -m nucleitut segment INPUT OUTPUT``.

Networks trained on BBBC038v1 fail on new images for two reasons more often than for any
other (``MEASUREMENTS.md``; the paper's Figure 11 shows big cells "not present in the training
data", section 4.6): the nuclei have another size than in
training, and the intensities are spread differently (16-bit cameras, dim images, hot
pixels). :func:`segment_image` handles both before the networks see the image:

1. **Intensities** (:func:`prepare_image`). 8-bit images in the brightness range of
   BBBC038v1 go to the networks as they are (the path the networks were trained and scored
   on). 16-bit, float and very dim 8-bit images are stretched between their 1st and 99.8th
   intensity percentiles to 0..255 (as StarDist's ``csbdeep.utils.normalize``), so a few
   hot pixels no longer darken the whole image. ``channel`` picks one channel of a
   multi-channel image as a grey image.
2. **Size** (:func:`estimate_diameter`). A first pass of one network (no TTA) finds the
   foreground; the typical nucleus diameter is the median over its objects of the largest
   inscribed disc (:func:`typical_diameter`), which neither merges of touching nuclei nor a
   nucleus shattered into several markers change much. The image is rescaled so that this
   diameter matches the training images' median (:func:`nucleus_size_statistics`), the
   estimate is repeated once at the new scale, the pipeline segments the rescaled image
   and the labels are mapped back to the original size (nearest neighbour).

The networks are the *reference networks* shipped in ``nucleitut/reference/`` (built by
``python tools/make_reference.py``) unless ``models`` names others. Nothing here trains.

Examples
--------
>>> import nucleitut
>>> labels = nucleitut.segment(image)                          # doctest: +SKIP
>>> result = nucleitut.segment_image(image, diameter=40)       # doctest: +SKIP
>>> print(result.summary())                                    # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy import ndimage as ndi

from . import data

__all__ = [
    "segment",
    "segment_image",
    "SegmentationResult",
    "read_input",
    "prepare_image",
    "percentile_stretch",
    "typical_diameter",
    "estimate_diameter",
    "nucleus_size_statistics",
    "scale_for",
    "rescale_image",
    "rescale_labels",
    "nucleus_table",
    "write_outputs",
    "output_paths",
    "load_networks",
    "load_reference",
    "save_reference",
    "ReferenceMissing",
    "REFERENCE_DIR",
    "TRAINING_DIAMETER",
    "SCALE_RANGE",
    "PERCENTILES",
    "DIM_LEVEL",
    "MIN_SIDE",
    "IMAGE_SUFFIXES",
]

#: Where the reference networks live (package data; built by ``tools/make_reference.py``).
REFERENCE_DIR = Path(__file__).parent / "reference"
#: The command that builds :data:`REFERENCE_DIR` (named in the error when it is missing).
REFERENCE_COMMAND = (
    "python tools/make_reference.py --models DIR --pipeline M6B4 --profile cpu --data ZIP "
    "(networks from `python -m nucleitut train M6 --profile cpu` and `... train B4 --profile cpu`)"
)
#: Percentiles mapped to 0 and 255 by :func:`percentile_stretch` (StarDist's defaults).
PERCENTILES = (1.0, 99.8)
#: An 8-bit image whose 99.8th percentile is below this is stretched like a 16-bit one.
#: This project's choice: the darkest of the 664 BBBC038v1 images reaches 16 at its 99.8th
#: percentile, so no image of the data set the networks were trained and scored on changes.
DIM_LEVEL = 12
#: Bounds of the rescaling factor: beyond them the image would be too coarse to hold
#: nuclei or too large to predict in reasonable time.
SCALE_RANGE = (0.1, 4.0)
#: Estimated scales within this factor of 1 are not applied (interpolation would only blur).
SCALE_TOLERANCE = 1.1
#: :func:`estimate_diameter` trusts its second pass over the first beyond this factor.
SECOND_PASS_DISAGREEMENT = 1.25
#: Smallest image side accepted (a U-Net needs some context; 1x1 images are errors).
MIN_SIDE = 16
#: Median over the training images of :func:`typical_diameter` of their true nuclei, in
#: pixels: ``nucleus_size_statistics(load_dataset("full"), split.train)["median_diameter"]``
#: on the fixed stage1_train (435 training images; 16.3 px, where the median equivalent
#: diameter of the 19,734 nuclei is 19.9 px: nuclei are not round). Used when a models folder
#: carries no statistics of its own; the reference networks record theirs in ``reference.json``.
TRAINING_DIAMETER = 16.3
#: File suffixes the command line picks up in an input folder.
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")


class ReferenceMissing(FileNotFoundError):
    """The reference networks are not installed; the message names the command that builds them."""


# --------------------------------------------------------------------------------------
# Reading and intensities
# --------------------------------------------------------------------------------------


def read_input(path: str | os.PathLike) -> np.ndarray:
    """Read one 2-D image file as it is stored (dtype and channels unchanged).

    PNG, JPEG and BMP through :mod:`imageio.v3`, TIFF through ``tifffile`` (channel-first
    TIFFs, axes ``CYX``, are moved to channel-last).

    Returns
    -------
    ndarray, shape (H, W) or (H, W, C)

    Raises
    ------
    nucleitut.data.DataError
        Naming the file: unreadable or truncated files, 3-D stacks and multi-page TIFFs,
        empty images.
    """
    path = Path(path)
    if not path.is_file():
        raise data.DataError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise data.DataError(f"{path}: empty file (0 bytes)")
    if path.suffix.lower() in (".tif", ".tiff"):
        array = _read_tiff(path)
    else:
        import imageio.v3 as iio

        try:
            array = np.asarray(iio.imread(path, index=0))
        except Exception as error:  # decoders raise many types for broken or truncated files
            raise data.DataError(f"{path}: cannot decode image, unreadable or truncated ({error})") from None
        if array.ndim == 3 and array.shape[-1] not in (1, 2, 3, 4):
            raise data.DataError(f"{path}: unexpected image shape {array.shape}")
    if array.size == 0:
        raise data.DataError(f"{path}: empty image (shape {array.shape})")
    return array


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes, shape = series.axes, series.shape
            array = series.asarray()
    except Exception as error:
        raise data.DataError(f"{path}: cannot decode TIFF, unreadable or truncated ({error})") from None
    stack_axes = [(a, n) for a, n in zip(axes, shape) if a not in "YXCS" and n > 1]
    if stack_axes:
        described = ", ".join(f"{n} along {a}" for a, n in stack_axes)
        raise data.DataError(
            f"{path}: a stack or multi-page TIFF (shape {shape}, axes {axes}: {described}); "
            "segment expects one 2-D image per file: save the planes as separate files "
            "(or see chapter 8 and nucleitut.volume for 3-D stacks)"
        )
    array = np.squeeze(array, axis=tuple(i for i, (a, n) in enumerate(zip(axes, shape)) if n == 1 and a not in "YX"))
    kept = [a for a, n in zip(axes, shape) if n > 1 or a in "YX"]
    if "C" in kept and kept.index("C") == 0 and array.ndim == 3:
        array = np.moveaxis(array, 0, -1)
    return array


def percentile_stretch(image: np.ndarray, low: float = PERCENTILES[0], high: float = PERCENTILES[1]) -> np.ndarray:
    """Map the ``low`` and ``high`` intensity percentiles to 0 and 255 (clipped), as ``uint8``.

    One pair of percentiles for all channels together, so colours keep their balance.

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, C), any real dtype
    low, high : float
        Percentiles in [0, 100]; StarDist's defaults 1 and 99.8.

    Returns
    -------
    ndarray of uint8, same shape

    Raises
    ------
    ValueError
        If the two percentiles are equal (a constant image or one with only outliers).

    Examples
    --------
    >>> image = np.array([[100, 100, 600, 1100, 60000]], np.uint16)
    >>> percentile_stretch(image, 0, 75).tolist()
    [[0, 0, 128, 255, 255]]
    """
    values = np.asarray(image, np.float64)
    lo, hi = np.percentile(values, [low, high])
    if not hi > lo:
        raise ValueError(f"percentiles {low} and {high} of the image are equal ({lo:g}): no contrast to stretch")
    return np.round(np.clip((values - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)


def _select_channel(image: np.ndarray, channel: int | None, name: str) -> np.ndarray:
    if channel is None:
        if image.ndim == 3 and image.shape[-1] > 4:
            raise data.DataError(f"{name}: {image.shape[-1]} channels; choose one with channel=N (--channel N)")
        return image
    channels = 1 if image.ndim == 2 else image.shape[-1]
    if not -channels <= channel < channels:
        raise data.DataError(f"{name}: channel {channel} asked for, but the image has {channels} channel(s) (0..{channels - 1})")
    return image if image.ndim == 2 else image[..., channel]


def prepare_image(image: np.ndarray, channel: int | None = None, normalize: str | bool = "auto", name: str = "image") -> tuple[np.ndarray, str]:
    """Turn an image as stored into the RGB ``uint8`` image the networks expect.

    Channels: ``channel=None`` keeps today's rules of :func:`nucleitut.data.to_rgb_uint8`
    (grey -> three equal channels, alpha dropped); an integer picks that channel as a grey
    image (for example the DAPI channel of a multi-channel image).

    Intensities (``normalize``):

    * ``"auto"`` (default): ``uint8`` (and boolean) images stay as they are unless they are
      dim (99.8th percentile below :data:`DIM_LEVEL`); every other dtype and dim images are
      stretched by :func:`percentile_stretch` (1st and 99.8th percentiles to 0 and 255);
    * ``"always"`` (or True): every image is stretched;
    * ``"never"`` (or False): the old rule, a linear map of the image's own min..max (one hot
      pixel darkens everything) for non-8-bit images; shows the failure this module avoids.

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, C)
    channel : int, optional
    normalize : {'auto', 'always', 'never'} or bool
    name : str
        File name for the error messages.

    Returns
    -------
    rgb : ndarray of uint8, shape (H, W, 3)
    intensity : str
        What was done, for the per-image report.

    Raises
    ------
    nucleitut.data.DataError
        Naming the image: unsupported shapes, a missing channel, constant images, images
        smaller than :data:`MIN_SIDE` pixels.

    Examples
    --------
    >>> rgb, how = prepare_image(np.array([[0, 50], [100, 40000]] * 8, np.uint16).repeat(8, 1))
    >>> rgb.shape, rgb.dtype.name, how
    ((16, 16, 3), 'uint8', 'percentiles 1-99.8')
    """
    mode = {True: "always", False: "never"}.get(normalize, normalize)
    if mode not in ("auto", "always", "never"):
        raise ValueError(f"normalize must be 'auto', 'always' or 'never', got {normalize!r}")
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3):
        raise data.DataError(f"{name}: expected a 2-D image (H, W) or (H, W, C), got shape {image.shape}")
    if min(image.shape[:2]) < MIN_SIDE:
        raise data.DataError(f"{name}: image of {image.shape[0]}x{image.shape[1]} pixels is too small (at least {MIN_SIDE}x{MIN_SIDE})")
    image = _select_channel(image, channel, name)
    if image.ndim == 3 and image.shape[-1] in (2, 4):  # grey + alpha, RGBA: alpha is not intensity
        image = image[..., :1] if image.shape[-1] == 2 else image[..., :3]
        image = image[..., 0] if image.shape[-1] == 1 else image
    if image.dtype.kind not in "uifb":
        raise data.DataError(f"{name}: unsupported pixel type {image.dtype}")
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        raise data.DataError(f"{name}: image holds NaN or infinite values")
    if image.min() == image.max():
        raise data.DataError(f"{name}: constant image (every pixel {image.flat[0]}): nothing to segment")
    eight_bit = image.dtype in (np.uint8, np.bool_)
    if mode == "never" or (mode == "auto" and eight_bit and np.percentile(image, PERCENTILES[1]) >= DIM_LEVEL):
        how = "as is (8-bit)" if eight_bit else "min-max (no normalisation)"
        return data.to_rgb_uint8(image, name), how
    try:
        stretched = percentile_stretch(image)
    except ValueError:  # almost constant: the two percentiles coincide
        raise data.DataError(
            f"{name}: almost constant image (its {PERCENTILES[0]:g}th and {PERCENTILES[1]:g}th percentiles are equal): nothing to segment"
        ) from None
    return data.to_rgb_uint8(stretched, name), f"percentiles {PERCENTILES[0]:g}-{PERCENTILES[1]:g}"


# --------------------------------------------------------------------------------------
# Nucleus size
# --------------------------------------------------------------------------------------


def typical_diameter(mask: np.ndarray, min_diameter: float = 3.0) -> float | None:
    """Typical diameter of the objects of a foreground mask, in pixels.

    Per connected object (holes filled) the diameter of the largest inscribed disc,
    ``2 * max(distance to background)`` (for a digital disc its equivalent diameter within
    a pixel); the median over the objects. Touching nuclei merged into one object keep the inscribed disc of one nucleus,
    so clumps barely bias the estimate. Objects under ``min_diameter`` are noise and ignored.
    Limit: background fully enclosed by a ring of touching nuclei is filled like a hole.

    Parameters
    ----------
    mask : ndarray of bool, shape (H, W)
    min_diameter : float

    Returns
    -------
    float or None
        None when no object is large enough.

    Examples
    --------
    >>> from skimage.morphology import disk
    >>> round(typical_diameter(np.pad(disk(10), 5) > 0), 1)   # equivalent diameter 20.1
    20.1
    """
    filled = ndi.binary_fill_holes(np.asarray(mask, bool))
    objects, n = ndi.label(filled)
    if n == 0:
        return None
    distance = ndi.distance_transform_edt(filled)
    diameters = 2 * np.asarray(ndi.maximum(distance, objects, index=np.arange(1, n + 1)))
    diameters = diameters[diameters >= min_diameter]
    return float(np.median(diameters)) if diameters.size else None


def nucleus_size_statistics(dataset: "data.Dataset", ids: Sequence[str] | None = None) -> dict:
    """Nucleus sizes of a data set's images (default: its training split), in pixels.

    ``median_diameter`` (the target of the size handling) is the median over the images of
    :func:`typical_diameter` of their true foreground, the same measure the estimate uses on
    a new image. Per-nucleus equivalent diameters (``sqrt(4 * area / pi)``) are reported too.

    Returns
    -------
    dict
        ``median_diameter``, ``diameter_quartiles`` (over images), ``median_equivalent_diameter``,
        ``equivalent_diameter_percentiles`` (5, 25, 75, 95; over nuclei), ``n_images``,
        ``n_nuclei``, ``measure``.
    """
    from skimage.measure import regionprops_table

    ids = list(ids) if ids is not None else dataset.split().train
    per_image, equivalent = [], []
    for image_id in ids:
        labels = dataset.get(image_id)[1]
        diameter = typical_diameter(labels > 0)
        if diameter is not None:
            per_image.append(diameter)
        equivalent.extend(regionprops_table(labels, properties=("equivalent_diameter_area",))["equivalent_diameter_area"])
    if not per_image:
        raise ValueError("nucleus_size_statistics: no nuclei in the given images")
    return {
        "median_diameter": float(np.median(per_image)),
        "diameter_quartiles": [float(q) for q in np.percentile(per_image, [25, 75])],
        "median_equivalent_diameter": float(np.median(equivalent)),
        "equivalent_diameter_percentiles": {str(p): float(v) for p, v in zip((5, 25, 75, 95), np.percentile(equivalent, [5, 25, 75, 95]))},
        "n_images": len(ids),
        "n_nuclei": len(equivalent),
        "measure": "median over images of segment.typical_diameter (largest inscribed disc per object) of the true foreground",
    }


def scale_for(diameter: float | None, target: float) -> float:
    """Rescaling factor that brings ``diameter`` to ``target``, within :data:`SCALE_RANGE`.

    1.0 when the diameter is unknown or within :data:`SCALE_TOLERANCE` of the target.

    >>> scale_for(60.0, 20.0), scale_for(21.0, 20.0), scale_for(1.0, 20.0)
    (0.3333333333333333, 1.0, 4.0)
    """
    if diameter is None or diameter <= 0:
        return 1.0
    scale = target / diameter
    if 1 / SCALE_TOLERANCE <= scale <= SCALE_TOLERANCE:
        return 1.0
    return float(np.clip(scale, *SCALE_RANGE))


def rescale_image(image: np.ndarray, scale: float) -> np.ndarray:
    """Rescale an RGB ``uint8`` image (linear interpolation, anti-aliased when shrinking)."""
    from skimage.transform import resize

    if scale == 1.0:
        return image
    shape = tuple(max(1, int(round(n * scale))) for n in image.shape[:2])
    out = resize(image, shape + image.shape[2:], order=1, anti_aliasing=scale < 1, preserve_range=True)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def rescale_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Map labels to another size by nearest neighbour; renumbered ``1..n`` (int32).

    Objects that vanish when shrinking drop out of the numbering.

    >>> rescale_labels(np.array([[1, 2], [0, 2]]), (4, 4))
    array([[1, 1, 2, 2],
           [1, 1, 2, 2],
           [0, 0, 2, 2],
           [0, 0, 2, 2]], dtype=int32)
    """
    from skimage.segmentation import relabel_sequential
    from skimage.transform import resize

    labels = np.asarray(labels)
    if labels.shape != tuple(shape):
        labels = resize(labels, shape, order=0, preserve_range=True, anti_aliasing=False).astype(labels.dtype)
    return relabel_sequential(labels.astype(np.int32))[0].astype(np.int32)


def _foreground(segmenter, image: np.ndarray) -> np.ndarray:
    """The pipeline's foreground mask from one network without TTA (the cheap first pass)."""
    from . import config, predict

    pipeline = segmenter.pipeline
    settings = {**config.POSTPROCESS_DEFAULTS[pipeline.method], **segmenter.settings}
    if pipeline.method == "threshold":
        return predict.predict_probabilities(segmenter.models[pipeline.networks[0]], image)[..., 0] > settings["threshold"]
    if pipeline.method == "two_network":
        return predict.predict_probabilities(segmenter.models[pipeline.networks[1]], image)[..., 0] > settings["mask_threshold"]
    probs = predict.predict_probabilities(segmenter.models[pipeline.networks[0]], image)
    return 1.0 - probs[..., 0] > settings["mask_threshold"]


def estimate_diameter(image: np.ndarray, segmenter, target: float) -> tuple[float | None, float]:
    """Typical nucleus diameter of an RGB ``uint8`` image (pixels) and the scale to use.

    A first pass at the native scale measures :func:`typical_diameter` of the pipeline's
    foreground. When that asks for rescaling, a second pass at the new scale measures again:
    a network sees nuclei of training size best, so when the two estimates disagree by more
    than :data:`SECOND_PASS_DISAGREEMENT` the second one (converted back to the original
    pixels) is used; otherwise the first, measured at the finer resolution.

    Returns
    -------
    diameter : float or None
        None when the first pass finds no nuclei (the image is then not rescaled).
    scale : float
        :func:`scale_for` of the diameter.
    """
    diameter = typical_diameter(_foreground(segmenter, image))
    scale = scale_for(diameter, target)
    if scale != 1.0:
        second = typical_diameter(_foreground(segmenter, rescale_image(image, scale)))
        if second is not None and not 1 / SECOND_PASS_DISAGREEMENT <= (second / scale) / diameter <= SECOND_PASS_DISAGREEMENT:
            diameter = second / scale
            scale = scale_for(diameter, target)
    return diameter, scale


# --------------------------------------------------------------------------------------
# Networks: the shipped reference and other models folders
# --------------------------------------------------------------------------------------


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
        Training images' median nucleus diameter (:data:`TRAINING_DIAMETER` when the models
        carry no statistics of their own).
    """
    from . import config, evaluation, predict

    settings, target = {}, TRAINING_DIAMETER
    if models is None or (not isinstance(models, dict) and (Path(models) / "reference.json").is_file()):
        loaded, info = load_reference(models)
        pipeline = pipeline or info["pipeline"]
        if config.get_pipeline(pipeline).name == config.get_pipeline(info["pipeline"]).name:
            settings = info.get("postprocess", {})
        target = info.get("nucleus_size", {}).get("median_diameter", TRAINING_DIAMETER)
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
    return segmenter, float(target)


# --------------------------------------------------------------------------------------
# Segmentation
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class SegmentationResult:
    """Labels of one image and how they were made."""

    labels: np.ndarray  #: int32 (H, W), 0 = background, nuclei 1..n
    name: str
    diameter: float | None  #: typical nucleus diameter in the image's pixels (estimated or given)
    diameter_source: str  #: 'estimated', 'given', 'not estimated' or 'no nuclei found'
    scale: float  #: factor the image was rescaled by before the networks
    intensity: str  #: what :func:`prepare_image` did
    seconds: float
    image: np.ndarray | None = dataclasses.field(default=None, repr=False)  #: the RGB uint8 image the networks saw (original size)

    @property
    def count(self) -> int:
        return int(self.labels.max()) if self.labels.size else 0

    def summary(self) -> str:
        """One line: count, diameter, scale, intensity handling, time."""
        diameter = f"{self.diameter:.1f} px ({self.diameter_source})" if self.diameter is not None else self.diameter_source
        return (
            f"{self.name}: {self.count} nuclei, diameter {diameter}, scale {self.scale:.3g}, "
            f"intensities {self.intensity}, {self.seconds:.1f} s"
        )


def segment_image(
    image: np.ndarray,
    diameter: float | None = None,
    tta: bool = True,
    models=None,
    pipeline: str | None = None,
    channel: int | None = None,
    normalize: str | bool = "auto",
    size: bool = True,
    scale: float | None = None,
    profile: str | None = None,
    name: str = "image",
    networks=None,
) -> SegmentationResult:
    """Segment one image with size and intensity handling; see :func:`segment`.

    Parameters
    ----------
    scale : float, optional
        A fixed rescaling factor (overrides ``diameter`` and the estimate).
    networks : tuple, optional
        ``(segmenter, target)`` from :func:`load_networks`, to load the networks once for
        many images.

    Returns
    -------
    SegmentationResult
    """
    start = time.perf_counter()
    if diameter is not None and not diameter > 0:
        raise ValueError(f"diameter must be a positive number of pixels, got {diameter}")
    if scale is not None and not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    segmenter, target = networks or load_networks(models, pipeline, profile)
    rgb, intensity = prepare_image(image, channel=channel, normalize=normalize, name=name)
    if scale is not None:
        source = "given scale"
        diameter = None
    elif diameter is not None:
        scale, source = scale_for(diameter, target), "given"
    elif size:
        diameter, scale = estimate_diameter(rgb, segmenter, target)
        source = "estimated" if diameter is not None else "no nuclei found"
    else:
        scale, source = 1.0, "not estimated"
    labels = segmenter(rescale_image(rgb, scale), tta=tta)
    labels = rescale_labels(labels, rgb.shape[:2])
    return SegmentationResult(labels, name, diameter, source, float(scale), intensity, time.perf_counter() - start, rgb)


def segment(
    image: np.ndarray,
    diameter: float | None = None,
    tta: bool = True,
    models=None,
    pipeline: str | None = None,
    channel: int | None = None,
    normalize: str | bool = "auto",
    size: bool = True,
    **kwargs,
) -> np.ndarray:
    """Instance labels of the nuclei in an image, with the reference networks by default.

    Never trains. Intensities are normalised (:func:`prepare_image`) and the image is
    rescaled so that its nuclei have the training images' size (:func:`estimate_diameter`);
    the labels come back at the image's own size.

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, C)
        Grey, RGB(A) or multi-channel; uint8, uint16, other integers or floats.
    diameter : float, optional
        Typical nucleus diameter in pixels; default: estimated per image.
    tta : bool, default True
        Test-time augmentation (paper section 4.2).
    models : None, folder or dict, optional
        Default: the reference networks. See :func:`load_networks`.
    pipeline : str, optional
        For example ``"M6B4"`` or ``"M3"``; default: the reference's.
    channel : int, optional
        Use this channel as a grey image; None: grey/RGB/RGBA rules of
        :func:`nucleitut.data.to_rgb_uint8`.
    normalize : {'auto', 'always', 'never'}, default 'auto'
        Intensity handling, see :func:`prepare_image`.
    size : bool, default True
        Estimate the nucleus size and rescale (False: segment at the native scale).
    **kwargs
        Passed to :func:`segment_image` (``scale``, ``profile``, ``name``, ``networks``).

    Returns
    -------
    ndarray of int32, shape (H, W)
        0 = background, nuclei ``1..n``.

    Raises
    ------
    ReferenceMissing
        Without ``models`` when the reference networks are not installed.
    nucleitut.data.DataError
        For images that cannot be segmented (constant, too small, a missing channel).
    """
    return segment_image(image, diameter, tta, models, pipeline, channel, normalize, size, **kwargs).labels


# --------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------


def nucleus_table(labels: np.ndarray, intensity: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-nucleus measurements (``skimage.measure.regionprops_table``).

    Columns: ``label``, ``area`` (pixels), ``centroid_y``, ``centroid_x``,
    ``equivalent_diameter`` (``sqrt(4 area / pi)``, pixels) and, with ``intensity`` (the
    image in its own units; colour channels averaged), ``mean_intensity``.

    >>> nucleus_table(np.array([[1, 1, 0, 2]]), np.array([[10, 20, 0, 5]]))["mean_intensity"].tolist()
    [15.0, 5.0]
    """
    from skimage.measure import regionprops_table

    labels = np.asarray(labels)
    properties = ["label", "area", "centroid", "equivalent_diameter_area"]
    grey = None
    if intensity is not None:
        grey = np.asarray(intensity, np.float64)
        if grey.ndim == 3:
            grey = grey.mean(axis=-1)
        properties.append("intensity_mean")
    table = regionprops_table(labels, intensity_image=grey, properties=properties)
    names = {"centroid-0": "centroid_y", "centroid-1": "centroid_x", "equivalent_diameter_area": "equivalent_diameter", "intensity_mean": "mean_intensity"}
    return {names.get(key, key): np.asarray(value) for key, value in table.items()}


def output_paths(folder: str | os.PathLike, stem: str) -> dict[str, Path]:
    """The files :func:`write_outputs` writes for an image called ``stem``."""
    folder = Path(folder)
    return {
        "labels_png": folder / f"{stem}_labels.png",
        "labels_tif": folder / f"{stem}_labels.tif",
        "overlay": folder / f"{stem}_overlay.png",
        "table": folder / f"{stem}_nuclei.csv",
    }


def write_outputs(result: SegmentationResult, folder: str | os.PathLike, stem: str, intensity: np.ndarray | None = None, overwrite: bool = False) -> dict[str, Path]:
    """Write labels (16-bit PNG and TIFF), an overlay PNG and the per-nucleus CSV table.

    Raises
    ------
    FileExistsError
        Naming the first existing output when ``overwrite`` is False (nothing is written).
    ValueError
        When more than 65535 nuclei do not fit a 16-bit PNG.
    """
    import csv

    import imageio.v3 as iio
    import tifffile

    from . import plotting

    paths = output_paths(folder, stem)
    existing = [p for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]}: exists; use --overwrite (overwrite=True) to replace it")
    if result.count > 65535:
        raise ValueError(f"{stem}: {result.count} nuclei do not fit a 16-bit label image")
    Path(folder).mkdir(parents=True, exist_ok=True)
    labels16 = result.labels.astype(np.uint16)
    iio.imwrite(paths["labels_png"], labels16)
    tifffile.imwrite(paths["labels_tif"], labels16)
    shown = result.image if result.image is not None else np.zeros(result.labels.shape + (3,), np.uint8)
    iio.imwrite(paths["overlay"], np.round(plotting.overlay(shown, result.labels) * 255).astype(np.uint8))
    table = nucleus_table(result.labels, intensity if intensity is not None else result.image)
    with open(paths["table"], "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(list(table))
        for row in zip(*table.values()):
            writer.writerow([int(v) if float(v).is_integer() else f"{float(v):.3f}" for v in row])
    return paths


class _CallableModule(type(dataclasses)):
    """``nucleitut.segment`` is this module and, called, :func:`segment` (a package attribute
    cannot be both a submodule and a function of the same name otherwise)."""

    def __call__(self, *args, **kwargs):
        return segment(*args, **kwargs)


import sys as _sys  # noqa: E402

_sys.modules[__name__].__class__ = _CallableModule
