"""Training targets derived from instance label images.

Every function takes an instance label image (integer array of shape ``(H, W)``, 0 for the
background, one positive id per nucleus) and returns a float32 target the networks are trained
on. Multi-class targets are one-hot with the channels last and summing to exactly one in every
pixel. The channel order is fixed for the whole project:

====  ==========================  ==========================  ===========================
ch.   ``boundary``                ``border``                  ``marker``
====  ==========================  ==========================  ===========================
0     background                  background                  background
1     interior                    object                      eroded object (marker)
2     boundary                    border                      dilated border
====  ==========================  ==========================  ===========================

The ``binary`` target has a single channel (1 = nucleus). The names follow Scherr et al.
(2018), "Best Practices in Deep Learning-Based Segmentation of Microscopy Images": a
*boundary* outlines every nucleus, a *border* lies only between touching (or very close)
nuclei, and *markers* are shrunken nuclei used as watershed seeds by the two-network
approach (Sec. 4.1). The paper gives no sizes (border neighbourhood, border thickness,
erosion and dilation radii): the defaults here are this project's choice.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import disk
from skimage.segmentation import find_boundaries

__all__ = [
    "TARGET_CHANNELS",
    "binary_target",
    "boundary_target",
    "border_target",
    "marker_target",
    "weight_map",
    "make_target",
]

#: Number of channels of each target kind (the network's ``out_channels``).
TARGET_CHANNELS = {"binary": 1, "boundary": 3, "border": 3, "marker": 3}

# Classes of the three-class targets, i.e. the channel index in the one-hot encoding.
BACKGROUND, OBJECT, BORDER = 0, 1, 2


# --------------------------------------------------------------------------- validation


def _check_labels(labels) -> np.ndarray:
    """Return ``labels`` as an ndarray after checking it is a 2-D non-negative integer image."""
    if not isinstance(labels, np.ndarray):
        raise TypeError(f"labels must be a numpy array, got {type(labels).__name__}")
    # bool is not an integer dtype for numpy; a binary mask is not an instance image anyway
    # and must be labelled first (e.g. skimage.measure.label).
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(
            f"labels must be an integer instance label image, got dtype {labels.dtype}; "
            "label a binary mask first, e.g. with skimage.measure.label"
        )
    if labels.ndim != 2:
        raise ValueError(f"labels must be a 2-D (H, W) image, got shape {labels.shape}")
    if labels.size and labels.min() < 0:
        raise ValueError("labels must be non-negative (0 = background)")
    return labels


def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _one_hot(classes: np.ndarray, n_classes: int) -> np.ndarray:
    """(H, W) class indices -> (H, W, n_classes) float32 one-hot."""
    return np.eye(n_classes, dtype=np.float32)[classes]


# --------------------------------------------------------------------------- targets


def binary_target(labels: np.ndarray) -> np.ndarray:
    """Foreground/background target (Scherr et al. 2018: one output channel, networks B1-B5).

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
        Instance label image, 0 = background.

    Returns
    -------
    ndarray of float32, shape (H, W, 1)
        1 on nuclei, 0 on background.
    """
    labels = _check_labels(labels)
    return (labels > 0).astype(np.float32)[..., np.newaxis]


def boundary_target(labels: np.ndarray, width: int = 1) -> np.ndarray:
    """Background / interior / boundary target (Scherr et al. 2018, section 3.6: network M1).

    The boundary is the inner outline of *every* nucleus
    (:func:`skimage.segmentation.find_boundaries` with ``mode='inner'``, 4-connected), so an
    isolated nucleus is outlined as well; where two nuclei touch, both sides of the contact
    are boundary. For ``width > 1`` the outline is thickened inwards by a disk of radius
    ``width - 1``, so an 11 x 11 square with ``width=2`` keeps a 7 x 7 interior.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
        Instance label image, 0 = background.
    width : int, default 1
        Thickness of the boundary in pixels (>= 1).

    Returns
    -------
    ndarray of float32, shape (H, W, 3)
        One-hot: channel 0 background, 1 interior, 2 boundary.
    """
    labels = _check_labels(labels)
    width = _check_int(width, "width", 1)
    foreground = labels > 0
    boundary = find_boundaries(labels, mode="inner")
    if width > 1:
        # Only grow into nuclei: the boundary class belongs to the object, the background
        # around an isolated nucleus stays background.
        boundary = ndi.binary_dilation(boundary, structure=disk(width - 1)) & foreground
    classes = np.where(boundary, BORDER, np.where(foreground, OBJECT, BACKGROUND))
    return _one_hot(classes, 3)


def _touching_border(labels: np.ndarray, neighbourhood: int, dilation: int) -> np.ndarray:
    """Boolean (H, W) mask of the pixels between touching nuclei, see :func:`border_target`."""
    neighbourhood = _check_int(neighbourhood, "neighbourhood", 3)
    if neighbourhood % 2 == 0:
        # An even window has no centre pixel: the border would shift by half a pixel.
        raise ValueError(f"neighbourhood must be odd, got {neighbourhood}")
    dilation = _check_int(dilation, "dilation", 0)

    window = (neighbourhood, neighbourhood)
    # Largest label in the window, and smallest *non-zero* one: the background must not count
    # as a label, so it is replaced by a value above every id before taking the minimum.
    # 'nearest' padding only repeats labels already next to the edge: it adds no new ids.
    # (Not the dtype's maximum: scipy's min/max filters overflow on it.)
    labels = labels.astype(np.int64)
    largest = ndi.grey_dilation(labels, size=window, mode="nearest")
    above_all = int(labels.max(initial=0)) + 1
    labels_no_bg = np.where(labels > 0, labels, above_all)
    smallest = ndi.grey_erosion(labels_no_bg, size=window, mode="nearest")
    # smallest == above_all: no label in the window; largest == smallest: a single label.
    border = (smallest != above_all) & (largest != smallest)
    if dilation > 0:
        # Thicken the border into the nuclei only: growing it into the background would
        # paint border far from any contact, where nothing has to be separated.
        grown = ndi.binary_dilation(border, structure=disk(dilation))
        border |= grown & (labels > 0)
    return border


def border_target(labels: np.ndarray, neighbourhood: int = 3, dilation: int = 1) -> np.ndarray:
    """Background / object / border target (Scherr et al. 2018, section 3.6: the border method).

    The border marks only the pixels *between* touching or very close nuclei, the idea of the
    Data Science Bowl 2018 winners ("background, object, border between touching objects").
    How the border is found and thickened is this project's choice: a pixel is border when its ``neighbourhood`` x
    ``neighbourhood`` window holds two different non-zero labels (computed as the grey
    dilation and erosion of the labels, the background excluded). Such pixels may lie on
    either nucleus or in a narrow background gap between them. An isolated nucleus gets no
    border pixel, its outline stays object (in contrast to :func:`boundary_target`).

    The border is then thickened by a disk of radius ``dilation``, into the nuclei only (the
    background stays background). Border is a class of its own: a border pixel is not object.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
        Instance label image, 0 = background.
    neighbourhood : int, default 3
        Odd side length (>= 3) of the square window in which two labels must meet; 3 marks
        contacts and gaps of one pixel, 5 gaps up to three pixels.
    dilation : int, default 1
        Radius of the disk by which the border grows into the nuclei; 0 keeps it thin.

    Returns
    -------
    ndarray of float32, shape (H, W, 3)
        One-hot: channel 0 background, 1 object, 2 border.

    Notes
    -----
    Cost: two grey-level filters and one binary dilation over the image, O(H W k^2).
    """
    labels = _check_labels(labels)
    border = _touching_border(labels, neighbourhood, dilation)
    classes = np.where(border, BORDER, np.where(labels > 0, OBJECT, BACKGROUND))
    return _one_hot(classes, 3)


def _eroded_objects(labels: np.ndarray, erosion: int) -> np.ndarray:
    """Boolean (H, W) mask of every nucleus eroded on its own by ``disk(erosion)``."""
    markers = np.zeros(labels.shape, dtype=bool)
    if erosion == 0:
        return labels > 0
    footprint = disk(erosion)
    pad = erosion + 1
    height, width = labels.shape
    for index, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None:  # ids need not be consecutive
            continue
        # Bounding box grown by the erosion radius, clipped to the image.
        rows = slice(max(box[0].start - pad, 0), min(box[0].stop + pad, height))
        cols = slice(max(box[1].start - pad, 0), min(box[1].stop + pad, width))
        mask = labels[rows, cols] == index
        # Eroding each nucleus on its own keeps touching nuclei apart (eroding the union
        # would not). border_value=1: a nucleus cut by the image edge continues beyond it,
        # so it is not eroded from the edge.
        eroded = ndi.binary_erosion(mask, structure=footprint, border_value=1)
        if not eroded.any():
            # Too small for the erosion: keep its centre, the pixels farthest from the
            # background, so that every nucleus still gets a marker.
            distance = ndi.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
            eroded = distance == distance.max()
        markers[rows, cols] |= eroded
    return markers


def marker_target(
    labels: np.ndarray, erosion: int = 2, border_dilation: int = 2, neighbourhood: int = 3
) -> np.ndarray:
    """Background / marker / border target of the two-network approach (Scherr et al. 2018,
    Sec. 4.1, networks M3-M7: "morphologically dilated borders and eroded objects").

    The paper gives no sizes; the default radii 2 and the treatment of small nuclei are this
    project's choice.

    Markers are the nuclei eroded one by one by a disk of radius ``erosion``; a nucleus too
    small to survive the erosion keeps its centre pixel(s), those with the largest Euclidean
    distance to the background (for a thin object this can be its whole medial line), so no
    nucleus loses its seed. Nuclei touching the image edge are not eroded from the edge. The
    border between touching nuclei (as in :func:`border_target`) is thickened by
    ``border_dilation`` and wins over markers, which keeps the seeds of touching nuclei apart.
    Pixels of a nucleus that are neither marker nor border are background in this target (a
    second network, trained on :func:`binary_target`, supplies the nucleus extent).

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
        Instance label image, 0 = background.
    erosion : int, default 2
        Radius of the disk each nucleus is eroded by; 0 keeps the nuclei whole.
    border_dilation : int, default 2
        Radius of the disk by which the border grows into the nuclei.
    neighbourhood : int, default 3
        Odd window size of the border detection, see :func:`border_target`.

    Returns
    -------
    ndarray of float32, shape (H, W, 3)
        One-hot: channel 0 background, 1 eroded nucleus (marker), 2 dilated border.

    Notes
    -----
    The erosion runs per nucleus on its bounding box grown by ``erosion + 1``
    (:func:`scipy.ndimage.find_objects`), so the cost is the summed box areas, not the
    number of nuclei times the image area.
    """
    labels = _check_labels(labels)
    erosion = _check_int(erosion, "erosion", 0)
    border = _touching_border(labels, neighbourhood, border_dilation)
    markers = _eroded_objects(labels, erosion)
    classes = np.where(border, BORDER, np.where(markers, OBJECT, BACKGROUND))
    return _one_hot(classes, 3)


# --------------------------------------------------------------------------- weights


def weight_map(labels: np.ndarray, w0: float = 10.0, sigma: float = 5.0) -> np.ndarray:
    """Pixel weights of Ronneberger et al. (2015), used by the weighted losses.

    The paper mentions such weight maps as one way "to force the network to learn small
    separation borders" (section 3.6) but trains none of its networks with them.

    ``w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))**2 / (2 sigma**2))`` where ``d1`` and ``d2``
    are the distances to the nearest and the second-nearest nucleus. The class-balance term
    ``w_c`` gives each of the two classes the same total weight, ``w_c = N / (2 N_c)`` with
    ``N`` pixels in the image of which ``N_c`` belong to the pixel's class (foreground or
    background), so the mean of ``w_c`` is one; with one class only it is 1. The separation
    term is added to background pixels only (inside a nucleus ``d1`` would be 0) and needs two
    nuclei, so it peaks in narrow gaps between nuclei (cf. Ronneberger et al., Fig. 3d).

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
        Instance label image, 0 = background.
    w0 : float, default 10.0
        Height of the separation term.
    sigma : float, default 5.0
        Width (pixels) of the separation term.

    Returns
    -------
    ndarray of float32, shape (H, W)
        Positive weights; pass them to the weighted losses with
        :func:`nucleitut.losses.with_weights`.

    Notes
    -----
    Distances are computed per nucleus with :func:`scipy.ndimage.distance_transform_edt` but
    only inside its bounding box grown by ``sigma * sqrt(2 ln(w0 / 1e-6))`` pixels (28 for the
    defaults): farther away the separation term is below 1e-6 and is dropped. The cost is the
    summed areas of these boxes (about 15 ms for a 256 x 256 crop with 100 nuclei on one CPU
    core) instead of one full-image transform per nucleus.
    """
    labels = _check_labels(labels)
    w0, sigma = float(w0), float(sigma)
    if w0 < 0:
        raise ValueError(f"w0 must be >= 0, got {w0}")
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")

    foreground = labels > 0
    n_pixels, n_foreground = labels.size, int(foreground.sum())
    weights = np.ones(labels.shape, dtype=np.float64)
    if 0 < n_foreground < n_pixels:
        weights[foreground] = n_pixels / (2.0 * n_foreground)
        weights[~foreground] = n_pixels / (2.0 * (n_pixels - n_foreground))

    boxes = ndi.find_objects(labels)
    if w0 == 0 or sum(box is not None for box in boxes) < 2:
        return weights.astype(np.float32)

    tolerance = 1e-6
    margin = math.ceil(sigma * math.sqrt(2.0 * math.log(max(w0 / tolerance, 1.0)))) + 1
    height, width = labels.shape
    nearest = np.full(labels.shape, np.inf)
    second = np.full(labels.shape, np.inf)
    for index, box in enumerate(boxes, start=1):
        if box is None:
            continue
        rows = slice(max(box[0].start - margin, 0), min(box[0].stop + margin, height))
        cols = slice(max(box[1].start - margin, 0), min(box[1].stop + margin, width))
        distance = ndi.distance_transform_edt(labels[rows, cols] != index)
        # Keep the two smallest distances seen so far in every pixel of the box.
        d1, d2 = nearest[rows, cols], second[rows, cols]
        second[rows, cols] = np.minimum(d2, np.maximum(d1, distance))
        nearest[rows, cols] = np.minimum(d1, distance)

    # Outside all but one box the second distance exceeds the margin: the term is < tolerance.
    separation = w0 * np.exp(-((nearest + second) ** 2) / (2.0 * sigma**2))
    weights += np.where(foreground, 0.0, separation)
    return weights.astype(np.float32)


# --------------------------------------------------------------------------- dispatch

_TARGETS = {
    "binary": binary_target,
    "boundary": boundary_target,
    "border": border_target,
    "marker": marker_target,
}


def make_target(labels: np.ndarray, kind: str, **params) -> np.ndarray:
    """Build the target of the given ``kind`` from an instance label image.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
        Instance label image, 0 = background.
    kind : {'binary', 'boundary', 'border', 'marker'}
        Target type; ``TARGET_CHANNELS[kind]`` gives its number of channels.
    **params
        Passed to the target function (e.g. ``width`` for 'boundary', ``neighbourhood`` and
        ``dilation`` for 'border', ``erosion`` and ``border_dilation`` for 'marker').

    Returns
    -------
    ndarray of float32, shape (H, W, TARGET_CHANNELS[kind])
    """
    try:
        function = _TARGETS[kind]
    except (KeyError, TypeError):
        message = f"unknown target kind {kind!r}; choose one of {sorted(_TARGETS)}"
        raise ValueError(message) from None
    return function(labels, **params)
