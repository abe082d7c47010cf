"""Outlook to 3D: segment a stack slice by slice and fuse the 2D objects into 3D objects.

Book chapter: *Outlook to 3D* (``book/08_outlook_3d``).

The paper's section 5 names, as one approach for 3D data, "to apply 2D segmentation slice by
slice and to fuse the segments afterwards". This module does that with a 2D network unchanged:
segment every slice of a stack (``segment_slices``), then link each 2D object to the object it
overlaps most in the previous slice (``fuse_slices``; this linking rule is this project's
choice, the paper gives none). Objects
that are linked from slice to slice form one 3D object; an object without a good partner in
the previous slice starts a new one. Overlap is the IoU by default; the share of the smaller
object (``measure="smaller"``) also keeps the small top and bottom caps of a nucleus
attached, which IoU cuts off.

BBBC038v1 holds 2D images only, so there is no annotated 3D stack to try this on.
:func:`synthetic_stack` *constructs* one instead: ellipsoid nuclei with known 3D labels,
rendered as a fluorescence-like image. It is a test bed for the fusion, not a stand-in for
real microscopy data.

The 3D objects are scored with the same Kaggle score as the 2D images (IoU matching, now of
voxel sets): :mod:`nucleitut.metrics` flattens label arrays of any shape, so
:func:`evaluate_volume` only checks that it gets volumes. :func:`match_ids` renumbers a
segmentation so that pictures show found nuclei in the colours of the ground truth.

Example
-------
>>> import numpy as np
>>> discs = np.zeros((3, 12, 16), np.int32)
>>> yy, xx = np.mgrid[:12, :16]
>>> for z, (label, x) in enumerate([(4, 5), (1, 6), (7, 11)]):  # 2D ids, centre column
...     discs[z][(yy - 6) ** 2 + (xx - x) ** 2 <= 16] = label
>>> [np.unique(s[s > 0]).tolist() for s in fuse_slices(discs)]  # the third disc moved away
[[1], [1], [2]]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import ndimage

from . import metrics

__all__ = ["segment_slices", "fuse_slices", "synthetic_stack", "evaluate_volume", "volume_score", "match_ids"]


def _check_volume(labels, name: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"{name} must be a stack of label slices with shape (Z, Y, X), got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"{name} must have an integer dtype, got {labels.dtype}")
    if labels.size and labels.min() < 0:
        raise ValueError(f"{name} contains negative labels; labels must be >= 0 (0 = background)")
    return labels


def segment_slices(
    segment: Callable[[np.ndarray], np.ndarray], stack: Sequence[np.ndarray] | np.ndarray, scale: float = 1.0
) -> np.ndarray:
    """Apply a 2D instance segmentation to every slice of a stack.

    Parameters
    ----------
    segment : callable
        Maps one slice (for example an RGB ``uint8`` image of shape (Y, X, 3)) to an integer
        label image of shape (Y, X), such as a :class:`nucleitut.pipeline.Pipeline` or
        :func:`nucleitut.classical.segment`.
    stack : ndarray, shape (Z, Y, X) or (Z, Y, X, C), or a sequence of slices
    scale : float, default 1.0
        Zoom every slice by this factor before segmenting it (linear interpolation) and
        bring the labels back to the slice's size (nearest neighbour). A network learns the
        nucleus sizes of its training data: when the nuclei of a stack are larger, a
        ``scale`` below 1 makes them look like what the network knows. The same as
        ``python -m nucleitut segment ... --scale``.

    Returns
    -------
    ndarray of int32, shape (Z, Y, X)
        The 2D labels of every slice. Ids are independent from slice to slice (object 3 in
        one slice has nothing to do with object 3 in the next); :func:`fuse_slices` links them.
    """
    from skimage.transform import rescale, resize

    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    slices = []
    for image in stack:
        image = np.asarray(image)
        if scale != 1.0:
            zoomed = rescale(image, scale, order=1, channel_axis=-1 if image.ndim == 3 else None, preserve_range=True, anti_aliasing=scale < 1)
            labels = np.asarray(segment(np.clip(np.round(zoomed), 0, 255).astype(image.dtype)))
            labels = resize(labels, image.shape[:2], order=0, preserve_range=True, anti_aliasing=False)
        else:
            labels = np.asarray(segment(image))
        slices.append(labels)
    if not slices:
        raise ValueError("the stack has no slices")
    shapes = {s.shape for s in slices}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"segment must return 2D label images of one shape, got shapes {sorted(shapes)}")
    return np.stack(slices).astype(np.int32)


def _index(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted object ids (0 excluded), the flat index image mapping them to 1..n, and the
    flat position of each object's first pixel."""
    ids, first, inverse = np.unique(labels.ravel(), return_index=True, return_inverse=True)
    inverse = inverse.astype(np.int64, copy=False)
    if ids.size and ids[0] == 0:
        return ids[1:], inverse, first[1:]
    return ids, inverse + 1, first


def _links(previous: np.ndarray, current: np.ndarray, min_overlap: float, measure: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Link the objects of ``current`` to those of ``previous`` (both flat index images).

    Returns the indices of the linked ``current`` objects, the indices of their partners in
    ``previous`` and the overlap of each link.
    """
    n_current = int(current.max()) if current.size else 0
    both = (previous > 0) & (current > 0)
    # Contingency table of the pairs that share pixels, one integer code per pair.
    codes, shared = np.unique(previous[both] * (n_current + 1) + current[both], return_counts=True)
    prev_of_pair, cur_of_pair = codes // (n_current + 1), codes % (n_current + 1)
    prev_area = np.bincount(previous, minlength=int(previous.max()) + 1)
    cur_area = np.bincount(current, minlength=n_current + 1)
    if measure == "iou":
        overlap = shared / (prev_area[prev_of_pair] + cur_area[cur_of_pair] - shared)
    else:
        overlap = shared / np.minimum(prev_area[prev_of_pair], cur_area[cur_of_pair])
    # Best previous partner of every current object: sort by object, then by falling overlap.
    order = np.lexsort((-overlap, cur_of_pair))
    first = np.unique(cur_of_pair[order], return_index=True)[1]
    best = order[first]
    best = best[overlap[best] > min_overlap]
    # One current object per previous object: the one with the highest overlap wins.
    best = best[np.argsort(-overlap[best], kind="stable")]
    winners = best[np.unique(prev_of_pair[best], return_index=True)[1]]
    return cur_of_pair[winners], prev_of_pair[winners], overlap[winners]


def fuse_slices(label_slices, min_overlap: float = 0.5, measure: str = "iou") -> np.ndarray:
    """Fuse the 2D objects of consecutive slices into 3D objects.

    Going down the stack, every 2D object in slice ``z`` is linked to the object of slice
    ``z - 1`` with which it has the largest intersection over union (IoU), if that IoU is
    greater than ``min_overlap``; it then carries that object's 3D id. Otherwise it starts a
    new 3D object. A previous object is continued by at most one object: when two objects
    choose the same partner (with IoU only possible for ``min_overlap < 0.5``), the one with
    the higher overlap wins and the other starts a new object.

    The overlap of every pair of objects in two slices comes from one contingency table
    (``np.unique`` on pixel pairs), so the work per slice pair is vectorised.

    Parameters
    ----------
    label_slices : ndarray of int, shape (Z, Y, X)
        2D instance labels per slice, 0 = background; ids need not agree between slices
        (see :func:`segment_slices`).
    min_overlap : float in [0, 1), default 0.5
        Overlap two objects in neighbouring slices must exceed to be linked.
    measure : {"iou", "smaller"}, default "iou"
        How overlap is measured: ``"iou"`` is intersection over union; ``"smaller"`` is the
        intersection over the area of the smaller of the two objects, which is 1 for a small
        object lying inside a large one (such as the cap of a nucleus below its middle).

    Returns
    -------
    ndarray of int32, shape (Z, Y, X)
        3D labels ``1..n``, numbered in the order in which objects first appear (slice by
        slice, in raster order within a slice), whatever the ids in ``label_slices``.

    Notes
    -----
    Links reach one slice back only: an object missed in one slice continues as a new 3D
    object below the gap. With ``"iou"`` the small caps at the top and bottom of a nucleus
    overlap little with their neighbour slice and may become objects of their own; a lower
    ``min_overlap`` or ``measure="smaller"`` keeps them attached, at the risk of joining
    nuclei stacked on top of each other.

    Examples
    --------
    >>> slices = np.array([[[1, 1, 0, 0]], [[5, 5, 0, 0]], [[0, 0, 2, 2]]])
    >>> fuse_slices(slices)[:, 0].tolist()
    [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 2, 2]]
    """
    labels = _check_volume(label_slices, "label_slices")
    min_overlap = float(min_overlap)
    if not 0.0 <= min_overlap < 1.0:
        raise ValueError(f"min_overlap must lie in [0, 1), got {min_overlap}")
    if measure not in ("iou", "smaller"):
        raise ValueError(f"measure must be 'iou' or 'smaller', got {measure!r}")
    fused = np.zeros(labels.shape, np.int32)
    next_id = 1
    previous = None  # flat index image of the previous fused slice, and its 3D ids
    for z in range(labels.shape[0]):
        _, current, first_pixel = _index(labels[z])
        n_current = int(current.max()) if current.size else 0
        ids_3d = np.zeros(n_current + 1, np.int32)
        if previous is not None and n_current:
            prev_ids, prev_index, _ = previous
            linked, partners, _ = _links(prev_index, current, min_overlap, measure)
            ids_3d[linked] = prev_ids[partners - 1]
        new = np.flatnonzero(ids_3d[1:] == 0) + 1
        new = new[np.argsort(first_pixel[new - 1], kind="stable")]  # raster order, not 2D ids
        ids_3d[new] = np.arange(next_id, next_id + new.size, dtype=np.int32)
        next_id += new.size
        fused[z] = ids_3d[current].reshape(labels.shape[1:])
        previous = _index(fused[z])
    return fused


def _radius_along(axes_matrix: np.ndarray, direction: np.ndarray) -> float:
    """Distance from an ellipsoid's centre to its surface along a unit direction."""
    return float(1.0 / np.sqrt(direction @ axes_matrix @ direction))


def _ellipsoid_matrix(semi_axes: np.ndarray, angle: float) -> np.ndarray:
    """Quadratic form A with x^T A x <= 1 inside; semi-axes (z, a, b), rotated in the XY plane."""
    c, s = np.cos(angle), np.sin(angle)
    rotation = np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    return rotation @ np.diag(1.0 / semi_axes**2) @ rotation.T


def synthetic_stack(
    shape: tuple[int, int, int] = (24, 128, 128),
    n_nuclei: int = 12,
    seed: int = 0,
    radius: tuple[float, float] = (8.0, 12.0),
    touching: float = 0.4,
) -> tuple[np.ndarray, np.ndarray]:
    """A constructed 3D fluorescence stack of ellipsoid nuclei with its 3D ground truth.

    Not microscopy data: a test bed for slice-by-slice segmentation and fusion. Nuclei are
    ellipsoids with semi-axes drawn from ``radius`` in the XY plane (rotated at random) and
    about half of that along Z, placed entirely inside the stack. A share ``touching`` of them
    is placed against an earlier nucleus so that the two touch along a flat interface (each
    voxel of the overlap goes to the nucleus whose surface is relatively farther away); the
    others keep a gap to all nuclei. The image is rendered like a wide-field fluorescence
    stack: every nucleus has its own brightness and a blotchy chromatin texture, the signal is
    blurred more along Z than in XY (the point spread function is elongated along the optical
    axis), gets dimmer with depth, and has photon (Poisson) noise on a dark background.

    Parameters
    ----------
    shape : (Z, Y, X)
    n_nuclei : int
        Number of nuclei; every one of them is present in the ground truth.
    seed : int
        Seed of the random generator; the same seed gives the same stack.
    radius : (float, float)
        Range of the XY semi-axes in pixels; the Z semi-axis is 0.55 to 0.75 of their mean.
    touching : float in [0, 1]
        Share of the nuclei placed in contact with an earlier one.

    Returns
    -------
    stack : ndarray of uint8, shape (Z, Y, X, 3)
        Gray fluorescence-like slices as RGB, like the fluorescence images of BBBC038v1.
    truth : ndarray of int32, shape (Z, Y, X)
        3D instance labels ``1..n_nuclei``, 0 = background.

    Raises
    ------
    ValueError
        If the nuclei do not fit into the stack (fewer, smaller nuclei or a larger shape help).

    Examples
    --------
    >>> stack, truth = synthetic_stack((16, 64, 64), n_nuclei=4, radius=(6, 8))
    >>> stack.shape, stack.dtype.name, int(truth.max())
    ((16, 64, 64, 3), 'uint8', 4)
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be (Z, Y, X) with positive sizes, got {shape}")
    if n_nuclei < 0:
        raise ValueError(f"n_nuclei must be >= 0, got {n_nuclei}")
    low, high = float(radius[0]), float(radius[1])
    if not 0 < low <= high:
        raise ValueError(f"radius must be a range (low, high) with 0 < low <= high, got {radius}")
    if not 0.0 <= touching <= 1.0:
        raise ValueError(f"touching must lie in [0, 1], got {touching}")
    rng = np.random.default_rng(seed)
    upper = np.array(shape, float) - 1

    centres: list[np.ndarray] = []
    matrices: list[np.ndarray] = []
    extents: list[np.ndarray] = []
    for k in range(n_nuclei):
        want_touch = bool(centres) and rng.random() < touching
        for _ in range(2000):
            xy = rng.uniform(low, high, size=2)
            semi_axes = np.array([rng.uniform(0.55, 0.75) * xy.mean(), *xy])
            matrix = _ellipsoid_matrix(semi_axes, rng.uniform(0, np.pi))
            # Half-widths of the axis-aligned bounding box of the ellipsoid.
            extent = np.sqrt(np.diag(np.linalg.inv(matrix)))
            if np.any(2 * extent + 1 > upper):
                continue
            if want_touch:
                partner = int(rng.integers(len(centres)))
                angle = rng.uniform(0, 2 * np.pi)
                direction = np.array([rng.uniform(-0.3, 0.3), np.cos(angle), np.sin(angle)])
                direction /= np.linalg.norm(direction)
                reach = _radius_along(matrix, direction) + _radius_along(matrices[partner], direction)
                centre = centres[partner] + 0.85 * reach * direction
            else:
                centre = rng.uniform(extent, upper - extent)
            if np.any(centre - extent < 0) or np.any(centre + extent > upper):
                continue
            fits = True
            for j, (other, other_matrix) in enumerate(zip(centres, matrices)):
                offset = centre - other
                distance = float(np.linalg.norm(offset))
                if distance == 0:
                    fits = False
                    break
                unit = offset / distance
                reach = _radius_along(matrix, unit) + _radius_along(other_matrix, unit)
                needed = 0.8 * reach if (want_touch and j == partner) else 1.1 * reach
                if distance < needed:
                    fits = False
                    break
            if fits:
                break
        else:
            raise ValueError(
                f"could not place nucleus {k + 1} of {n_nuclei} in a stack of shape {shape}; "
                "use fewer or smaller nuclei or a larger shape"
            )
        centres.append(centre)
        matrices.append(matrix)
        extents.append(extent)

    # Ground truth: every voxel inside an ellipsoid goes to the nucleus with the smallest
    # normalised distance x^T A x, which cuts touching nuclei along a flat interface.
    truth = np.zeros(shape, np.int32)
    closest = np.full(shape, np.inf)
    for label, (centre, matrix, extent) in enumerate(zip(centres, matrices, extents), start=1):
        lo = np.maximum(np.floor(centre - extent).astype(int), 0)
        hi = np.minimum(np.ceil(centre + extent).astype(int) + 1, shape)
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        grid = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij"), -1) - centre
        q = np.einsum("...i,ij,...j->...", grid, matrix, grid)
        inside = (q <= 1.0) & (q < closest[box])
        truth[box][inside] = label
        closest[box][inside] = q[inside]

    # Rendering: per-nucleus brightness times chromatin texture, anisotropic blur, depth
    # falloff, dark background and photon noise.
    brightness = np.concatenate([[0.0], rng.uniform(0.55, 1.0, n_nuclei)])
    texture = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=1.5)
    texture = 1.0 + 0.35 * texture / (texture.std() + 1e-12)
    signal = brightness[truth] * np.clip(texture, 0.3, None)
    signal = ndimage.gaussian_filter(signal, sigma=(1.6, 1.0, 1.0))
    depth = np.exp(-0.5 * np.arange(shape[0]) / max(shape[0] - 1, 1))[:, None, None]
    photons = 150.0
    expected = (signal * depth + 0.04) * photons
    counts = rng.poisson(expected).astype(float) / photons
    gray = np.clip(np.round(counts / 1.1 * 255), 0, 255).astype(np.uint8)
    stack = np.repeat(gray[..., None], 3, axis=-1)
    return stack, truth


def evaluate_volume(truth, labels) -> dict[str, float | int]:
    """All metrics of :func:`nucleitut.metrics.evaluate_image` for 3D objects.

    IoU is computed between voxel sets, so a 3D object only matches when it is right in every
    slice: a nucleus cut into two 3D objects along Z counts as missed (and split), just as a
    nucleus cut in two in 2D.

    Parameters
    ----------
    truth, labels : ndarray of int, shape (Z, Y, X)
        Ground-truth and predicted 3D labels, 0 = background.

    Returns
    -------
    dict
        ``kaggle_score``, ``n_gt``, ``n_pred``, precision/recall/F1 at IoU 0.5 and 0.75 and
        the ``split``, ``merged``, ``missed``, ``spurious`` counts.

    Examples
    --------
    >>> truth = np.zeros((2, 2, 2), np.int32); truth[:, 0] = 1
    >>> evaluate_volume(truth, truth * 4)["kaggle_score"]
    1.0
    """
    truth = _check_volume(truth, "truth")
    labels = _check_volume(labels, "labels")
    return metrics.evaluate_image(truth, labels)


def volume_score(truth, labels) -> float:
    """Kaggle score of 3D objects (the mean over IoU thresholds 0.5..0.95 of TP/(TP+FP+FN)).

    Parameters
    ----------
    truth, labels : ndarray of int, shape (Z, Y, X)

    Returns
    -------
    float
        Score in [0, 1].

    Examples
    --------
    >>> truth = np.zeros((4, 3, 3), np.int32); truth[:, 1, 1] = 1
    >>> cut = truth.copy(); cut[2:] *= 2      # one nucleus cut into two objects along Z
    >>> volume_score(truth, cut)              # IoU 0.5 is not > 0.5: no match
    0.0
    """
    return metrics.kaggle_score(_check_volume(truth, "truth"), _check_volume(labels, "labels"))


def match_ids(truth, labels, threshold: float = 0.5) -> np.ndarray:
    """Renumber ``labels`` so that matched objects carry the id of their ground-truth object.

    For pictures: with :func:`nucleitut.plotting.colour_labels` a correctly found object then
    has the colour of its nucleus, and an object in a new colour is an error. An object
    matches a ground-truth object when their IoU exceeds ``threshold`` (>= 0.5 makes the
    match unique); unmatched objects get ids above ``truth.max()``. Works for label arrays of
    any dimension.

    Parameters
    ----------
    truth, labels : ndarray of int, same shape
    threshold : float in [0.5, 1), default 0.5

    Returns
    -------
    ndarray of int32, same shape as ``labels``

    Examples
    --------
    >>> match_ids(np.array([[1, 1, 0, 2, 2]]), np.array([[7, 7, 0, 0, 3]])).tolist()
    [[1, 1, 0, 0, 3]]
    """
    truth = np.asarray(truth)
    labels = np.asarray(labels)
    threshold = float(threshold)
    if not 0.5 <= threshold < 1.0:
        raise ValueError(f"threshold must lie in [0.5, 1), got {threshold}")
    iou, truth_ids, label_ids = metrics.iou_matrix(truth, labels)
    new_ids = np.zeros(label_ids.size, np.int64)
    if iou.size:
        best = iou.argmax(axis=0)
        matched = iou[best, np.arange(label_ids.size)] > threshold
        new_ids[matched] = truth_ids[best[matched]]
    else:
        matched = np.zeros(label_ids.size, bool)
    start = int(truth.max()) + 1 if truth.size else 1
    new_ids[~matched] = np.arange(start, start + np.count_nonzero(~matched))
    lookup = np.zeros(int(labels.max()) + 1 if labels.size else 1, np.int64)
    lookup[label_ids] = new_ids
    return lookup[labels].astype(np.int32)
