"""The command line's outputs per image: labels (16-bit PNG and TIFF), an overlay, a table.

Book chapter: *Your own images*; command line: ``python -m nucleitut segment INPUT OUTPUT``,
which writes, for each image, what :func:`write_outputs` writes of its
:class:`nucleitut.pipeline.Segmentation`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import plotting

__all__ = ["nucleus_table", "write_outputs", "output_paths"]


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


def write_outputs(result, folder: str | os.PathLike, stem: str, intensity: np.ndarray | None = None, overwrite: bool = False) -> dict[str, Path]:
    """Write labels (16-bit PNG and TIFF), an overlay PNG and the per-nucleus CSV table.

    ``result`` is a :class:`nucleitut.pipeline.Segmentation`; ``intensity`` the image in its
    own units for the table's ``mean_intensity`` (default: the image the networks saw).

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
