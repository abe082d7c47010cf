"""Segment your own images: reference networks, nucleus size, robust intensities, outputs.

Book chapter: *Your own images*; command line: ``python -m nucleitut segment INPUT OUTPUT``.

Networks trained on BBBC038v1 fail on new images for two reasons more often than for any
other (``MEASUREMENTS.md``; the paper's Figure 11 shows big cells "not present in the training
data", section 4.6): the nuclei have another size than in
training, and the intensities are spread differently (16-bit cameras, dim images, hot
pixels). :func:`segment_image` handles both before the networks see the image:

1. **Intensities** (:func:`nucleitut.images.prepare_image`). 8-bit images in the brightness
   range of BBBC038v1 go to the networks as they are (the path the networks were trained and
   scored on). 16-bit, float and very dim 8-bit images are stretched between their 1st and
   99.8th intensity percentiles to 0..255 (as StarDist's ``csbdeep.utils.normalize``), so a
   few hot pixels no longer darken the whole image. ``channel`` picks one channel of a
   multi-channel image as a grey image.
2. **Size** (:func:`nucleitut.sizing.estimate_diameter`). First passes of one network (no
   TTA) find the foreground at the native scale, halved and quartered; the typical nucleus
   diameter is the median over the objects of the largest inscribed disc
   (:func:`nucleitut.sizing.typical_diameter`), which neither merges of touching nuclei nor a
   nucleus shattered into several markers change much, and the median over the three probes
   (the native one alone when the nuclei vanish in the shrunk ones) is the estimate. An
   image whose diameter lies within the sizes of the training images
   (:data:`nucleitut.sizing.TRAINING_SIZE_BAND`: their quartiles) is left as it
   is; any other image is rescaled so that its diameter goes halfway from the nearest end
   of the band to the training images' median (:func:`nucleitut.sizing.scale_for`), the
   estimate is repeated once at the new scale, the pipeline segments the rescaled image and
   the labels are mapped back to the original size (nearest neighbour). A ``diameter`` given
   by the user is always rescaled to the median. Networks trained on images rescaled to one
   nucleus size (this project's option ``TrainingConfig.size_target``,
   ``tools/finetune_reference.py``) have no band: every image is rescaled to their size.
3. **Large images.** The size of an image with a side over 2048 pixels is estimated in four
   windows of 1024x1024 (:func:`nucleitut.sizing.estimate_windows`), and an image with a
   side over 2304 pixels at the networks' scale is segmented in overlapping blocks
   (:func:`nucleitut.blocks.label_in_blocks`), so memory grows with the image and its
   labels only, not with the networks' outputs.

The networks are the *reference networks* shipped in ``nucleitut/reference/`` (built by
``python tools/make_reference.py``; loaded by :mod:`nucleitut.pretrained`) unless ``models``
names others. Nothing here trains. This module puts the steps together
(:func:`segment`, :func:`segment_image`) and writes the outputs of the command line
(:func:`write_outputs`).

Examples
--------
>>> import nucleitut
>>> labels = nucleitut.segment(image)                          # doctest: +SKIP
>>> result = nucleitut.segment_image(image, diameter=40)       # doctest: +SKIP
>>> print(result.summary())                                    # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import numpy as np

from . import images, pretrained, sizing

__all__ = [
    "segment",
    "segment_image",
    "SegmentationResult",
    "nucleus_table",
    "write_outputs",
    "output_paths",
]


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
    intensity: str  #: what :func:`nucleitut.images.prepare_image` did
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
    fuse_scales: bool = False,
) -> SegmentationResult:
    """Segment one image with size and intensity handling; see :func:`segment`.

    Parameters
    ----------
    scale : float, optional
        A fixed rescaling factor (overrides ``diameter`` and the estimate).
    networks : tuple, optional
        ``(segmenter, target)`` from :func:`nucleitut.pretrained.load_networks`, to load the
        networks once for many images.
    fuse_scales : bool, default False
        Fuse the networks' outputs at the chosen scale with those at the neighbouring scales
        (:data:`nucleitut.sizing.NEIGHBOUR_SCALES`; :meth:`nucleitut.evaluation.Segmenter.probabilities`):
        less sensitive to a scale the estimate got wrong (halved images: +0.018 on 30
        validation images, +0.006 on 60 test images with TTA; native ones unchanged), for
        3.5 times the pixels to predict (results/benchmarks/README.md).

    Returns
    -------
    SegmentationResult
    """
    start = time.perf_counter()
    if diameter is not None and not diameter > 0:
        raise ValueError(f"diameter must be a positive number of pixels, got {diameter}")
    if scale is not None and not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    segmenter, target = networks or pretrained.load_networks(models, pipeline, profile)
    rgb, intensity = images.prepare_image(image, channel=channel, normalize=normalize, name=name)
    first_pass = {}
    if scale is not None:
        source = "given scale"
        diameter = None
    elif diameter is not None:
        scale, source = sizing.scale_for(diameter, target, band=None), "given"
    elif size:
        diameter, scale = sizing.estimate_diameter(rgb, segmenter, target, band=segmenter.size_band, first_pass=first_pass)
        source = "estimated" if diameter is not None else "no nuclei found"
    else:
        scale, source = 1.0, "not estimated"
    # The estimate's first pass over the image as it is is one of the segmentation's views
    # when the image is not rescaled: reused, not predicted again.
    labels = segmenter(sizing.rescale_image(rgb, scale), tta=tta, as_is=first_pass if scale == 1.0 else None, fuse_scales=fuse_scales)
    labels = sizing.rescale_labels(labels, rgb.shape[:2])
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

    Never trains. Intensities are normalised (:func:`nucleitut.images.prepare_image`) and the
    image is rescaled so that its nuclei have the training images' size when they lie outside
    the training images' sizes
    (:func:`nucleitut.sizing.estimate_diameter`); the labels come back at the image's own size.

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, C)
        Grey, RGB(A) or multi-channel; uint8, uint16, other integers or floats.
    diameter : float, optional
        Typical nucleus diameter in pixels; default: estimated per image.
    tta : bool, default True
        Test-time augmentation (paper section 4.2).
    models : None, folder or dict, optional
        Default: the reference networks. See :func:`nucleitut.pretrained.load_networks`.
    pipeline : str, optional
        For example ``"M6B4"`` or ``"M3"``; default: the reference's.
    channel : int, optional
        Use this channel as a grey image; None: grey/RGB/RGBA rules of
        :func:`nucleitut.images.to_rgb_uint8`.
    normalize : {'auto', 'always', 'never'}, default 'auto'
        Intensity handling, see :func:`nucleitut.images.prepare_image`.
    size : bool, default True
        Estimate the nucleus size and rescale (False: segment at the native scale).
    **kwargs
        Passed to :func:`segment_image` (``scale``, ``profile``, ``name``, ``networks``,
        ``fuse_scales``).

    Returns
    -------
    ndarray of int32, shape (H, W)
        0 = background, nuclei ``1..n``.

    Raises
    ------
    nucleitut.pretrained.ReferenceMissing
        Without ``models`` when the reference networks are not installed.
    nucleitut.images.DataError
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
