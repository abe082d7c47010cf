"""From network outputs to instance labels: thresholding and the marker-controlled watershed.

Channel convention (fixed across the project)
---------------------------------------------
Three-class outputs have shape (H, W, 3):

* channel 0 -- background,
* channel 1 -- object (border target) or cell interior (boundary target),
* channel 2 -- border between touching nuclei (border target) or boundary (boundary target).

One-channel outputs (e.g. the binary or distance-like targets, the networks B of the paper) have
shape (H, W) or (H, W, 1). Probabilities are floats in [0, 1]; every comparison with a
threshold is strict (``p > threshold``), in line with :mod:`nucleitut.metrics`.

Label images returned here are int32 with ids ``1..n`` and 0 as background. Objects are
4-connected by default (``connectivity=1``): two nuclei that only touch at a corner stay apart,
which matches how thin predicted borders cut touching nuclei.

Pure numpy/scipy/scikit-image: probabilities in, labels out. Getting the probabilities
(tiling, test-time augmentation, ensembles) is :mod:`nucleitut.predict`.
"""

from __future__ import annotations


import numpy as np
from scipy import ndimage
from skimage.measure import label as connected_components
from skimage.segmentation import relabel_sequential, watershed

from . import images

__all__ = [
    "BACKGROUND",
    "OBJECT",
    "BORDER",
    "threshold_labels",
    "remove_small_labels",
    "marker_watershed",
    "seed_markers",
    "watershed_labels",
    "two_network_labels",
]

#: Channel indices of three-class outputs.
BACKGROUND, OBJECT, BORDER = 0, 1, 2


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------



def _one_channel(prob, name: str = "prob") -> np.ndarray:
    prob = images.check_real(prob, name)
    if prob.ndim == 3 and prob.shape[-1] == 1:
        prob = prob[..., 0]
    if prob.ndim != 2:
        raise ValueError(f"{name} must have shape (H, W) or (H, W, 1), got {prob.shape}")
    return prob


def _three_channels(probs, name: str = "probs") -> np.ndarray:
    probs = images.check_real(probs, name)
    if probs.ndim != 3 or probs.shape[-1] != 3:
        raise ValueError(
            f"{name} must have shape (H, W, 3) (background, object/interior, border/boundary), "
            f"got {probs.shape}"
        )
    return probs


def _check_connectivity(connectivity: int) -> int:
    if connectivity not in (1, 2):
        raise ValueError(
            f"connectivity must be 1 (4-neighbours) or 2 (8-neighbours), got {connectivity}"
        )
    return connectivity


# --------------------------------------------------------------------------------------------
# Labelling
# --------------------------------------------------------------------------------------------


def remove_small_labels(labels: np.ndarray, min_area: int) -> np.ndarray:
    """Remove objects with fewer than ``min_area`` pixels and renumber the rest ``1..n``.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
        Label image, 0 = background.
    min_area : int
        Smallest area (in pixels) an object keeps; 0 or 1 keeps everything.

    Returns
    -------
    ndarray of int32, shape (H, W)
        Sequentially numbered labels.

    Examples
    --------
    >>> remove_small_labels(np.array([[5, 5, 0, 9]]), min_area=2)
    array([[1, 1, 0, 0]], dtype=int32)
    """
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"labels must have an integer dtype, got {labels.dtype}")
    if min_area < 0:
        raise ValueError(f"min_area must be >= 0, got {min_area}")
    # Written with bincount instead of skimage's remove_small_objects because its size argument
    # changed meaning in 0.26 (min_size -> max_size) and the supported range spans both.
    if min_area > 1 and labels.size:
        areas = np.bincount(labels.ravel().astype(np.intp, copy=False))
        too_small = areas < min_area
        too_small[0] = False
        labels = np.where(too_small[labels], 0, labels)
    relabelled, _, _ = relabel_sequential(labels)
    return relabelled.astype(np.int32, copy=False)


def threshold_labels(
    prob,
    threshold: float = 0.5,
    min_area: int = 0,
    fill_holes: bool = False,
    connectivity: int = 1,
) -> np.ndarray:
    """Instance labels from a one-channel probability map by thresholding and connected components.

    The plain post-processing of the binary (boundary-free) approach: touching nuclei end up as
    one object because nothing separates them.

    Parameters
    ----------
    prob : ndarray of float, shape (H, W) or (H, W, 1)
        Foreground probability.
    threshold : float, default 0.5
        A pixel is foreground when ``prob > threshold``.
    min_area : int, default 0
        Objects with fewer pixels are removed (after filling holes).
    fill_holes : bool, default False
        Fill holes (background fully enclosed by an object) before labelling.
    connectivity : {1, 2}, default 1
        1: pixels sharing an edge are connected (4-neighbourhood); 2: also diagonal neighbours.

    Returns
    -------
    ndarray of int32, shape (H, W)
        Labels ``1..n``, 0 = background.

    Examples
    --------
    >>> prob = np.array([[0.9, 0.8, 0.1, 0.7],
    ...                  [0.2, 0.1, 0.1, 0.6]])
    >>> threshold_labels(prob)
    array([[1, 1, 0, 2],
           [0, 0, 0, 2]], dtype=int32)
    """
    prob = _one_channel(prob)
    connectivity = _check_connectivity(connectivity)
    mask = prob > threshold
    if fill_holes:
        mask = ndimage.binary_fill_holes(mask)
    labels = connected_components(mask, connectivity=connectivity)
    return remove_small_labels(labels, min_area)


# --------------------------------------------------------------------------------------------
# Marker-controlled watershed (paper sections 3.6 and 4.1)
# --------------------------------------------------------------------------------------------


def marker_watershed(
    elevation: np.ndarray,
    markers: np.ndarray,
    mask: np.ndarray,
    min_area: int = 0,
    connectivity: int = 1,
) -> np.ndarray:
    """Grow markers over ``elevation`` inside ``mask``; unmarked mask components become objects too.

    Keeping unmarked mask components as objects is this project's choice; the paper only
    describes a "marker-controlled watershed post-processing" (section 3.6).

    The watershed floods ``elevation`` from the markers and stops at the mask edge and where
    two floods meet, so touching nuclei that have a marker each are separated. A connected
    component of the mask that holds no marker would stay background in a plain watershed;
    here it becomes an object of its own, so a nucleus whose marker was too weak is still
    found (as one object) rather than lost.

    Parameters
    ----------
    elevation : ndarray of float, shape (H, W)
        Landscape to flood; low values are reached first (e.g. the negative marker map).
    markers : ndarray of int, shape (H, W)
        Seed labels, 0 = no seed. Seeds outside ``mask`` are ignored.
    mask : ndarray of bool, shape (H, W)
        Pixels that belong to some object.
    min_area : int, default 0
        Objects with fewer pixels are removed at the end.
    connectivity : {1, 2}, default 1
        Neighbourhood of the flooding and of the mask components.

    Returns
    -------
    ndarray of int32, shape (H, W)
        Labels ``1..n``, 0 = background; exactly the pixels of ``mask`` are labelled when
        ``min_area`` is 0.

    Examples
    --------
    >>> mask = np.array([[1, 1, 1, 1, 1, 0, 1]], dtype=bool)
    >>> markers = np.array([[1, 0, 0, 0, 2, 0, 0]])
    >>> elevation = np.array([[0., 1., 3., 1., 0., 0., 0.]])
    >>> marker_watershed(elevation, markers, mask)
    array([[1, 1, 1, 2, 2, 0, 3]], dtype=int32)
    """
    elevation = np.asarray(elevation, dtype=np.float64)
    markers = np.asarray(markers)
    mask = np.asarray(mask, dtype=bool)
    if not elevation.shape == markers.shape == mask.shape:
        raise ValueError(
            f"elevation, markers and mask must share a shape, got {elevation.shape}, "
            f"{markers.shape} and {mask.shape}"
        )
    connectivity = _check_connectivity(connectivity)
    markers = np.where(mask, markers, 0)
    labels = watershed(elevation, markers=markers, mask=mask, connectivity=connectivity)
    unmarked = mask & (labels == 0)
    if unmarked.any():
        extra = connected_components(unmarked, connectivity=connectivity)
        labels = np.where(extra > 0, extra + labels.max(), labels)
    return remove_small_labels(labels, min_area)


def seed_markers(
    probs,
    marker_threshold: float = 0.6,
    min_marker_area: int = 0,
    connectivity: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Seeds for the watershed from a three-class output (paper eq. 2, section 3.6).

    The paper: "a thresholded (th = 0.6) with the border channel B processed object channel O
    as markers", ``o'_ij = o_ij * (1 - b_ij)``.

    The marker map ``object * (1 - border)`` is high in the middle of a nucleus and low on the
    predicted borders, so thresholding it yields one seed per nucleus even where nuclei touch.

    Parameters
    ----------
    probs : ndarray of float, shape (H, W, 3)
        Background, object/interior and border/boundary probabilities.
    marker_threshold : float, default 0.6
        A pixel is a seed pixel when the marker map exceeds it.
    min_marker_area : int, default 0
        Seeds with fewer pixels are dropped (they tend to be noise on a border).
    connectivity : {1, 2}, default 1
        Neighbourhood used to group seed pixels.

    Returns
    -------
    markers : ndarray of int32, shape (H, W)
        Seed labels ``1..n``.
    marker_map : ndarray of float64, shape (H, W)
        ``object * (1 - border)``.
    """
    probs = _three_channels(probs)
    connectivity = _check_connectivity(connectivity)
    marker_map = probs[..., OBJECT].astype(np.float64) * (1.0 - probs[..., BORDER])
    markers = connected_components(marker_map > marker_threshold, connectivity=connectivity)
    return remove_small_labels(markers, min_marker_area), marker_map


def watershed_labels(
    probs,
    mask_threshold: float = 0.3,
    marker_threshold: float = 0.6,
    min_marker_area: int = 0,
    min_area: int = 0,
    connectivity: int = 1,
) -> np.ndarray:
    """Instance labels from a three-class output by a marker-controlled watershed (paper 3.6).

    The paper: "The thresholded (th = 0.3), inverted background channel was used as input
    image and a thresholded (th = 0.6) with the border channel B processed object channel O as
    markers" (section 3.6, eq. 2). Here:

    * mask: ``1 - background > mask_threshold`` (object or border: the full nucleus),
    * markers: connected components of ``object * (1 - border) > marker_threshold``,
    * flooding (this project's choice; the paper does not name the elevation): the watershed
      runs on ``-object * (1 - border)`` inside the mask, so the floods of neighbouring
      markers meet on the predicted border between touching nuclei.

    Mask components without a marker become objects of their own (this project's choice, see
    :func:`marker_watershed`), so weakly predicted nuclei are not lost.

    Parameters
    ----------
    probs : ndarray of float, shape (H, W, 3)
        Background, object/interior and border/boundary probabilities.
    mask_threshold : float, default 0.3
        Foreground when ``1 - background`` exceeds it.
    marker_threshold : float, default 0.6
        Seed pixel when ``object * (1 - border)`` exceeds it.
    min_marker_area : int, default 0
        Seeds with fewer pixels are dropped.
    min_area : int, default 0
        Objects with fewer pixels are removed.
    connectivity : {1, 2}, default 1
        Neighbourhood of seeds, flooding and mask components.

    Returns
    -------
    ndarray of int32, shape (H, W)
        Labels ``1..n``, 0 = background.

    Examples
    --------
    Two nuclei touching along a predicted border two pixels wide:

    >>> obj = np.array([[1., 1., 0., 0., 1., 1.]])
    >>> border = np.array([[0., 0., 1., 1., 0., 0.]])
    >>> probs = np.stack([1 - obj - border, obj, border], axis=-1)
    >>> watershed_labels(probs)
    array([[1, 1, 1, 2, 2, 2]], dtype=int32)
    """
    probs = _three_channels(probs)
    markers, marker_map = seed_markers(probs, marker_threshold, min_marker_area, connectivity)
    mask = (1.0 - probs[..., BACKGROUND]) > mask_threshold
    return marker_watershed(-marker_map, markers, mask, min_area, connectivity)


def two_network_labels(
    marker_probs,
    mask_prob,
    mask_threshold: float = 0.3,
    marker_threshold: float = 0.6,
    min_marker_area: int = 0,
    min_area: int = 0,
    connectivity: int = 1,
) -> np.ndarray:
    """Instance labels from two networks: seeds from network M, extent from network B (paper 4.1).

    Network M is trained on eroded objects with dilated borders, so its seeds are well separated
    but too small; network B predicts the binary foreground at full size ("The thresholded
    (th = 0.3) output of this network can then be used for the post-processing", section 4.1).
    The watershed grows M's seeds (``object * (1 - border) > marker_threshold``) over
    ``-object * (1 - border)`` of M inside B's mask (``mask_prob > mask_threshold``), so every
    nucleus regains its real size. The elevation and keeping mask components without a seed
    as objects of their own are this project's choices.

    Parameters
    ----------
    marker_probs : ndarray of float, shape (H, W, 3)
        Three-class output of network M.
    mask_prob : ndarray of float, shape (H, W) or (H, W, 1)
        Foreground probability of network B.
    mask_threshold : float, default 0.3
        Foreground when ``mask_prob`` exceeds it.
    marker_threshold : float, default 0.6
        Seed pixel when M's ``object * (1 - border)`` exceeds it.
    min_marker_area, min_area : int, default 0
        Seeds / objects with fewer pixels are dropped.
    connectivity : {1, 2}, default 1
        Neighbourhood of seeds, flooding and mask components.

    Returns
    -------
    ndarray of int32, shape (H, W)
        Labels ``1..n``, 0 = background.
    """
    marker_probs = _three_channels(marker_probs, "marker_probs")
    mask_prob = _one_channel(mask_prob, "mask_prob")
    if mask_prob.shape != marker_probs.shape[:2]:
        raise ValueError(
            f"mask_prob {mask_prob.shape} and marker_probs {marker_probs.shape} must cover the "
            "same (H, W)"
        )
    markers, marker_map = seed_markers(marker_probs, marker_threshold, min_marker_area, connectivity)
    mask = mask_prob > mask_threshold
    return marker_watershed(-marker_map, markers, mask, min_area, connectivity)
