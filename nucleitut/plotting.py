"""Figures as in the paper: colour-coded instance labels, overlays, side-by-side crops.

Used by every chapter. Functions draw into matplotlib axes and return them.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = [
    "label_colours", "colour_labels", "overlay", "show_row", "error_image", "ERROR_COLOURS", "window", "busiest_window",
    "nucleus_centres",
]


def label_colours(n: int, seed: int = 7) -> np.ndarray:
    """Colours (float RGB) for labels 1..n; label i gets the same colour whatever n is.

    Hues step by the golden ratio so that neighbouring ids differ strongly.
    """
    import matplotlib.colors as mcolors

    ids = np.arange(1, n + 1)
    hues = (ids * 0.618033988749895 + 0.1 * seed) % 1.0
    saturation = 0.55 + 0.4 * ((ids * 0.7548776662) % 1.0)
    value = 0.75 + 0.25 * ((ids * 0.5698402910) % 1.0)
    return mcolors.hsv_to_rgb(np.stack([hues, saturation, value], axis=-1))


def colour_labels(labels: np.ndarray, background=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Instance labels (H, W) as an RGB float image, one colour per object."""
    labels = np.asarray(labels)
    n = int(labels.max()) if labels.size else 0
    palette = np.vstack([np.asarray(background, float)[None], label_colours(max(n, 1))])
    return palette[labels]


def overlay(image: np.ndarray, labels: np.ndarray, alpha: float = 0.35, outline=(1.0, 1.0, 0.0)) -> np.ndarray:
    """Image with coloured objects blended in and their outlines drawn (float RGB).

    The one overlay of the project: the chapters and ``python -m nucleitut segment`` use it.
    Outlines by ``skimage.segmentation.mark_boundaries``; the objects are blended into the
    image's own colours (``skimage.color.label2rgb`` would turn stained tissue grey).

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, 3); uint8 or float in [0, 1]
    labels : ndarray of int, shape (H, W)

    Returns
    -------
    ndarray of float64 in [0, 1], shape (H, W, 3)
    """
    from skimage.segmentation import mark_boundaries

    base = np.asarray(image, float)
    if base.max() > 1:
        base = base / 255.0
    if base.ndim == 2:
        base = np.stack([base] * 3, -1)
    coloured = colour_labels(labels)
    mask = labels > 0
    out = base.copy()
    out[mask] = (1 - alpha) * base[mask] + alpha * coloured[mask]
    if outline is not None:
        out = mark_boundaries(np.clip(out, 0, 1), labels, color=outline, mode="inner")
    return np.clip(out, 0, 1)


#: Colours of the error image: correct, split, merged, missed, spurious.
ERROR_COLOURS = {
    "matched": (0.3, 0.75, 0.3),
    "missed": (0.95, 0.2, 0.2),
    "spurious": (0.2, 0.5, 1.0),
}


def error_image(truth: np.ndarray, prediction: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """RGB picture of the errors at an IoU threshold.

    Green: predicted objects matched to a nucleus (IoU > threshold); red: nuclei without a
    match (missed, or lost in a merge or split); blue: predicted objects without a match.
    """
    from . import metrics

    iou, gt_ids, pred_ids = metrics.iou_matrix(truth, prediction)
    matched = iou > threshold
    gt_ok = set(gt_ids[matched.any(axis=1)].tolist()) if iou.size else set()
    pred_ok = set(pred_ids[matched.any(axis=0)].tolist()) if iou.size else set()
    out = np.zeros(truth.shape + (3,))
    missed = (truth > 0) & ~np.isin(truth, list(gt_ok))
    spurious = (prediction > 0) & ~np.isin(prediction, list(pred_ok))
    good = (prediction > 0) & np.isin(prediction, list(pred_ok))
    out[good] = ERROR_COLOURS["matched"]
    out[spurious] = ERROR_COLOURS["spurious"]
    out[missed & ~good] = ERROR_COLOURS["missed"]
    return out


def show_row(panels: Sequence[np.ndarray], titles: Sequence[str] = (), size: float = 3.0, cmap="gray", axes=None):
    """Show images side by side without axes; 2-D arrays use ``cmap`` (with a 0-1 range
    for probability maps)."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, len(panels), figsize=(size * len(panels), size), squeeze=False)
        axes = axes[0]
    for ax, panel, title in zip(axes, panels, list(titles) + [""] * len(panels)):
        panel = np.asarray(panel)
        if panel.ndim == 2 and panel.dtype.kind == "f":
            ax.imshow(panel, cmap="magma", vmin=0, vmax=1, interpolation="nearest")
        elif panel.ndim == 2:
            ax.imshow(panel, cmap=cmap, interpolation="nearest")
        else:
            ax.imshow(panel, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    return axes


# --------------------------------------------------------------------------------------
# Where to look: windows for side-by-side crops
# --------------------------------------------------------------------------------------


def window(shape, centre, size: int = 96) -> tuple[slice, slice]:
    """Slices of a ``size`` x ``size`` window around ``centre``, shifted to lie inside an
    image of ``shape`` (smaller where the image is smaller).

    >>> window((100, 50), (95, 10), size=40)
    (slice(60, 100, None), slice(0, 40, None))
    """
    height, width = min(size, shape[0]), min(size, shape[1])
    y0 = int(np.clip(centre[0] - height // 2, 0, shape[0] - height))
    x0 = int(np.clip(centre[1] - width // 2, 0, shape[1] - width))
    return np.s_[y0 : y0 + height, x0 : x0 + width]


def busiest_window(masks, size: int = 96) -> tuple[int, tuple[slice, slice]]:
    """Index ``k`` and window of the ``size`` x ``size`` window that holds the most pixels of
    ``masks[k]`` (one mask or a list of masks, e.g. the pixels where two results differ).

    >>> mask = np.zeros((50, 60), bool); mask[40:45, 50:55] = True
    >>> busiest_window([np.zeros((50, 60), bool), mask], size=20)
    (1, (slice(25, 45, None), slice(35, 55, None)))
    """
    from scipy import ndimage

    masks = [masks] if isinstance(masks, np.ndarray) else list(masks)
    best = []
    for mask in masks:
        extent = (min(size, mask.shape[0]), min(size, mask.shape[1]))
        density = ndimage.uniform_filter(np.asarray(mask, np.float32), extent, mode="constant")
        centre = np.unravel_index(np.argmax(density), density.shape)
        best.append((density[centre], centre))
    k = int(np.argmax([value for value, _ in best]))
    return k, window(masks[k].shape, best[k][1], size)


def nucleus_centres(labels: np.ndarray, ids) -> np.ndarray:
    """A float image with a 1 at the centre of mass of each object in ``ids`` (give it to
    :func:`busiest_window` to find the window with most of them).

    >>> labels = np.zeros((5, 5), int); labels[1:4, 1:4] = 3
    >>> np.argwhere(nucleus_centres(labels, [3])).tolist()
    [[2, 2]]
    """
    from scipy import ndimage

    centres = np.zeros(labels.shape, np.float32)
    ids = list(ids)
    if ids:
        for y, x in ndimage.center_of_mass(np.ones(labels.shape), labels, ids):
            centres[int(round(y)), int(round(x))] = 1
    return centres
