"""From network outputs to instance labels: thresholding, watershed, test-time augmentation.

Channel convention (fixed across the project)
---------------------------------------------
Three-class outputs have shape (H, W, 3):

* channel 0 -- background,
* channel 1 -- object (border target) or cell interior (boundary target),
* channel 2 -- border between touching nuclei (border target) or boundary (boundary target).

One-channel outputs (e.g. the binary or distance-like targets, network B of the paper) have
shape (H, W) or (H, W, 1). Probabilities are floats in [0, 1]; every comparison with a
threshold is strict (``p > threshold``), in line with :mod:`nucleitut.metrics`.

Label images returned here are int32 with ids ``1..n`` and 0 as background. Objects are
4-connected by default (``connectivity=1``): two nuclei that only touch at a corner stay apart,
which matches how thin predicted borders cut touching nuclei.

Keras is never imported at module level; :func:`predict_image` only needs the model object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from scipy import ndimage
from skimage.measure import label as connected_components
from skimage.segmentation import relabel_sequential, watershed

__all__ = [
    "BACKGROUND",
    "OBJECT",
    "BORDER",
    "DIHEDRAL_TRANSFORMS",
    "DEFAULT_TTA",
    "threshold_labels",
    "remove_small_labels",
    "marker_watershed",
    "seed_markers",
    "watershed_labels",
    "two_network_labels",
    "apply_transform",
    "invert_transform",
    "combine_predictions",
    "tta_predict",
    "ensemble_predict",
    "predict_image",
]

#: Channel indices of three-class outputs.
BACKGROUND, OBJECT, BORDER = 0, 1, 2


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------


def _check_real(array, name: str) -> np.ndarray:
    array = np.asarray(array)
    real = np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
    if not (real or array.dtype == bool):
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
    return array


def _one_channel(prob, name: str = "prob") -> np.ndarray:
    prob = _check_real(prob, name)
    if prob.ndim == 3 and prob.shape[-1] == 1:
        prob = prob[..., 0]
    if prob.ndim != 2:
        raise ValueError(f"{name} must have shape (H, W) or (H, W, 1), got {prob.shape}")
    return prob


def _three_channels(probs, name: str = "probs") -> np.ndarray:
    probs = _check_real(probs, name)
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
    """Seeds for the watershed from a three-class output (paper eq. 2).

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

    * mask: ``1 - background > mask_threshold`` (object or border: the full nucleus),
    * markers: connected components of ``object * (1 - border) > marker_threshold``,
    * flooding: the watershed runs on ``-object * (1 - border)`` inside the mask, so the floods
      of neighbouring markers meet on the predicted border between touching nuclei.

    Mask components without a marker become objects of their own (see
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
    but too small; network B predicts the binary foreground at full size. The watershed grows
    M's seeds (``object * (1 - border) > marker_threshold``) over ``-object * (1 - border)`` of M
    inside B's mask (``mask_prob > mask_threshold``), so every nucleus regains its real size.
    Mask components without a seed become objects of their own.

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


# --------------------------------------------------------------------------------------------
# Test-time augmentation and ensembles (paper section 4.2)
# --------------------------------------------------------------------------------------------


def _antitranspose(x: np.ndarray) -> np.ndarray:
    # Mirror on the anti-diagonal: out[i, j] = x[H - 1 - j, W - 1 - i].
    return np.swapaxes(x, 0, 1)[::-1, ::-1]


_ArrayFn = Callable[[np.ndarray], np.ndarray]

#: The eight symmetries of the square as ``name -> (forward, inverse)``, acting on the first two
#: axes of an (H, W) or (H, W, C) array. Rotations are counter-clockwise (``np.rot90``).
DIHEDRAL_TRANSFORMS: dict[str, tuple[_ArrayFn, _ArrayFn]] = {
    "identity": (lambda x: x, lambda x: x),
    "flip_ud": (lambda x: x[::-1], lambda x: x[::-1]),
    "flip_lr": (lambda x: x[:, ::-1], lambda x: x[:, ::-1]),
    "rot90": (lambda x: np.rot90(x, 1), lambda x: np.rot90(x, -1)),
    "rot180": (lambda x: np.rot90(x, 2), lambda x: np.rot90(x, 2)),
    "rot270": (lambda x: np.rot90(x, -1), lambda x: np.rot90(x, 1)),
    "transpose": (lambda x: np.swapaxes(x, 0, 1), lambda x: np.swapaxes(x, 0, 1)),
    "antitranspose": (_antitranspose, _antitranspose),
}

#: Transforms of the paper's test-time augmentation: the image, its two flips and a rotation.
DEFAULT_TTA: tuple[str, ...] = ("identity", "flip_ud", "flip_lr", "rot90")


def _transform_pair(name: str):
    try:
        return DIHEDRAL_TRANSFORMS[name]
    except KeyError:
        choices = sorted(DIHEDRAL_TRANSFORMS)
        raise ValueError(f"unknown transform {name!r}; choose from {choices}") from None


def apply_transform(array, name: str) -> np.ndarray:
    """Apply the dihedral transform ``name`` to the first two axes of ``array``.

    Parameters
    ----------
    array : ndarray, shape (H, W) or (H, W, C)
    name : str
        A key of :data:`DIHEDRAL_TRANSFORMS`.

    Returns
    -------
    ndarray, shape (H, W, ...) or (W, H, ...)
        C-contiguous copy (networks and some backends dislike negative strides).

    Examples
    --------
    >>> apply_transform(np.array([[1, 2, 3]]), "rot90")
    array([[3],
           [2],
           [1]])
    """
    array = np.asarray(array)
    if array.ndim < 2:
        raise ValueError(f"array must have at least two (spatial) axes, got shape {array.shape}")
    return np.ascontiguousarray(_transform_pair(name)[0](array))


def invert_transform(array, name: str) -> np.ndarray:
    """Undo :func:`apply_transform` with the same ``name`` (exactly, pixel for pixel).

    Examples
    --------
    >>> x = np.arange(6).reshape(2, 3)
    >>> bool(np.array_equal(invert_transform(apply_transform(x, "rot90"), "rot90"), x))
    True
    """
    array = np.asarray(array)
    if array.ndim < 2:
        raise ValueError(f"array must have at least two (spatial) axes, got shape {array.shape}")
    return np.ascontiguousarray(_transform_pair(name)[1](array))


def combine_predictions(
    predictions: Sequence[np.ndarray], border_channel: int | None = BORDER
) -> np.ndarray:
    """Fuse aligned predictions of one image: mean of all channels, max of the border channel.

    The paper averages object probabilities but takes the maximum of the border probabilities,
    so a border seen by any augmentation or network is kept; averaging would blur a thin border
    that only some of the predictions place exactly. The max rule applies when the outputs have
    three channels and ``border_channel`` is not None; otherwise every channel is averaged.

    The fused three-class output is deliberately *not* renormalised: with the border at its
    maximum the channels may sum to more than one. The watershed only looks at each channel on
    its own (``1 - background`` and ``object * (1 - border)``), and renormalising would dilute
    exactly the border emphasis the max rule is there for.

    Parameters
    ----------
    predictions : sequence of ndarray, each (H, W) or (H, W, C), all the same shape
    border_channel : int or None, default 2
        Channel combined by maximum for three-channel outputs.

    Returns
    -------
    ndarray of float32, same shape as each prediction

    Examples
    --------
    >>> a = np.array([[[0.5, 0.5, 0.0]]])
    >>> b = np.array([[[0.0, 0.5, 0.5]]])
    >>> combine_predictions([a, b])
    array([[[0.25, 0.5 , 0.5 ]]], dtype=float32)
    """
    if len(predictions) == 0:
        raise ValueError("combine_predictions needs at least one prediction")
    shapes = {np.shape(p) for p in predictions}
    if len(shapes) != 1:
        raise ValueError(f"predictions must share a shape, got {sorted(shapes)}")
    stack = np.stack([np.asarray(p, dtype=np.float32) for p in predictions])
    # Summing float32 values in float64 is exact for any realistic number of predictions, so
    # identical predictions fuse to exactly themselves (a float32 running sum would round).
    combined = stack.mean(axis=0, dtype=np.float64).astype(np.float32)
    if border_channel is not None and combined.ndim == 3 and combined.shape[-1] == 3:
        if not -3 <= border_channel < 3:
            raise ValueError(f"border_channel must index one of 3 channels, got {border_channel}")
        combined[..., border_channel] = stack[..., border_channel].max(axis=0)
    return combined


def _check_image(image) -> np.ndarray:
    image = _check_real(image, "image")
    if image.ndim != 3:
        raise ValueError(f"image must have shape (H, W, C), got {image.shape}")
    return image.astype(np.float32, copy=False)


def _aligned_predictions(predict_fn, image: np.ndarray, transforms: Iterable[str]) -> list[np.ndarray]:
    predictions = []
    for name in transforms:
        prediction = np.asarray(predict_fn(apply_transform(image, name)))
        prediction = invert_transform(prediction, name)
        if prediction.shape[:2] != image.shape[:2]:
            raise ValueError(
                f"predict_fn must keep the spatial size: image {image.shape[:2]} gave a prediction "
                f"of shape {prediction.shape} after undoing {name!r}"
            )
        predictions.append(prediction)
    if not predictions:
        raise ValueError("transforms must name at least one transform")
    return predictions


def tta_predict(
    predict_fn: Callable[[np.ndarray], np.ndarray],
    image,
    transforms: Sequence[str] = DEFAULT_TTA,
    border_channel: int | None = BORDER,
) -> np.ndarray:
    """Predict with test-time augmentation (paper 4.2).

    Each transform is applied to the image, ``predict_fn`` predicts, the transform is undone on
    the prediction, and the aligned predictions are fused by :func:`combine_predictions`
    (mean, and maximum on the border channel of three-class outputs).

    Parameters
    ----------
    predict_fn : callable
        Maps a float32 image of shape (h, w, C_in) to a prediction of shape (h, w, C_out) or
        (h, w). It must accept both orientations (rotations swap h and w), e.g.
        ``lambda im: predict_image(model, im)``.
    image : ndarray, shape (H, W, C_in)
        Normalised image.
    transforms : sequence of str, default :data:`DEFAULT_TTA`
        Names from :data:`DIHEDRAL_TRANSFORMS`.
    border_channel : int or None, default 2
        Channel fused by maximum for three-channel outputs; None averages every channel.

    Returns
    -------
    ndarray of float32, shape (H, W, C_out) or (H, W)

    Examples
    --------
    A prediction that does not depend on orientation is unchanged by TTA:

    >>> image = np.random.default_rng(0).random((4, 6, 1), dtype=np.float32)
    >>> fn = lambda im: np.concatenate([1 - im, im, im * im], axis=-1)
    >>> bool(np.array_equal(tta_predict(fn, image), fn(image)))
    True
    """
    image = _check_image(image)
    return combine_predictions(_aligned_predictions(predict_fn, image, transforms), border_channel)


def ensemble_predict(
    predict_fns: Sequence[Callable[[np.ndarray], np.ndarray]],
    image,
    transforms: Sequence[str] | None = None,
    border_channel: int | None = BORDER,
) -> np.ndarray:
    """Fuse the predictions of several networks, optionally each with test-time augmentation.

    All (network, transform) predictions are fused together by :func:`combine_predictions`.
    Since every network sees the same transforms, this equals fusing each network's TTA output
    first and the networks second (mean of equal-sized means, max of maxima).

    Parameters
    ----------
    predict_fns : sequence of callable
        Each maps an (h, w, C_in) float32 image to (h, w, C_out); all must agree on C_out.
    image : ndarray, shape (H, W, C_in)
        Normalised image.
    transforms : sequence of str or None, default None
        None predicts the image as it is; otherwise names from :data:`DIHEDRAL_TRANSFORMS`.
    border_channel : int or None, default 2
        Channel fused by maximum for three-channel outputs.

    Returns
    -------
    ndarray of float32, shape (H, W, C_out) or (H, W)

    Examples
    --------
    >>> image = np.zeros((2, 2, 1), dtype=np.float32)
    >>> net_a = lambda im: np.broadcast_to([0.5, 0.5, 0.0], im.shape[:2] + (3,))
    >>> net_b = lambda im: np.broadcast_to([0.25, 0.25, 0.5], im.shape[:2] + (3,))
    >>> ensemble_predict([net_a, net_b], image)[0, 0]
    array([0.375, 0.375, 0.5  ], dtype=float32)
    """
    image = _check_image(image)
    if len(predict_fns) == 0:
        raise ValueError("ensemble_predict needs at least one predict function")
    names = ("identity",) if transforms is None else tuple(transforms)
    predictions = [p for fn in predict_fns for p in _aligned_predictions(fn, image, names)]
    return combine_predictions(predictions, border_channel)


# --------------------------------------------------------------------------------------------
# Whole-image prediction
# --------------------------------------------------------------------------------------------


def predict_image(
    model_or_fn: Any,
    image,
    tile_size: int = 256,
    overlap: int = 32,
    multiple: int = 16,
    batch_size: int = 8,
    pad_batches: bool | None = None,
) -> np.ndarray:
    """Predict an image of any size with overlapping tiles (the data module's tiling).

    Parameters
    ----------
    model_or_fn : keras.Model or callable
        A Keras model (anything with ``predict_on_batch`` is treated as one), or a
        function mapping a float32 batch (n, t, t, C_in) to (n, t, t, C_out).
    image : ndarray, shape (H, W, C_in) or (H, W)
        Normalised image.
    tile_size, overlap, multiple, batch_size : int
        Passed to :func:`nucleitut.data.predict_tiled`.
    pad_batches : bool, optional
        Pad short batches of a Keras model to ``batch_size`` (default: on the JAX backend,
        where every new batch shape costs a compilation).

    Returns
    -------
    ndarray of float32, shape (H, W, C_out)

    Examples
    --------
    >>> double = lambda batch: batch * 2
    >>> predict_image(double, np.ones((40, 50), np.float32), tile_size=32, overlap=8).shape
    (40, 50, 1)
    """
    # Imported here so that post-processing never pulls in the data pipeline (and Keras) just
    # to label a probability map.
    from nucleitut import data

    image = _check_real(image, "image")
    if image.ndim == 2:
        image = image[..., None]
    image = _check_image(image)

    if hasattr(model_or_fn, "predict_on_batch"):
        model = model_or_fn

        if pad_batches is None:
            import keras

            pad_batches = keras.backend.backend() == "jax"

        def predict_batch(batch: np.ndarray) -> np.ndarray:
            # On JAX a fixed batch shape lets XLA compile the forward pass once (it compiles
            # again for every new shape), so short batches are padded there. TensorFlow on a
            # CPU would pay for the padded tiles, so it gets the batch as it is.
            n = len(batch)
            if pad_batches and n < batch_size:
                batch = np.concatenate([batch, np.zeros((batch_size - n,) + batch.shape[1:], batch.dtype)])
            return np.asarray(model.predict_on_batch(batch), np.float32)[:n]

    elif callable(model_or_fn):
        predict_batch = model_or_fn
    else:
        raise TypeError(
            f"model_or_fn must be a Keras model or a callable, got {type(model_or_fn).__name__}"
        )

    prediction = data.predict_tiled(
        predict_batch,
        image,
        tile_size=tile_size,
        overlap=overlap,
        multiple=multiple,
        batch_size=batch_size,
    )
    return np.asarray(prediction, dtype=np.float32)
