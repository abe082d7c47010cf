"""From an image to network outputs: normalisation, tiling, test-time augmentation, ensembles.

Book chapters: *Data* (normalisation, tiles), *First results* (predicting whole images),
*TTA and ensembles*.

Everything between an image and the probabilities the post-processing reads lives here:

* :func:`nucleitut.data.normalize` -- the paper's input scaling ``A / 127.5 - 1`` (eq. 1, section 3.5);
* :func:`predict_tiled` / :func:`predict_image` -- a network on an image of any size, in
  overlapping tiles with mirrored edges, in batches;
* :func:`tta_predict` -- test-time augmentation (section 4.2): flipped/rotated views, undone
  and fused (mean of objects, maximum of borders);
* :func:`ensemble_predict` -- several networks fused (the paper averages "the output of
  multiple networks", section 4.2; see :func:`combine_predictions` for which rule applies);
* :func:`predict_probabilities` -- a trained network's output for an RGB ``uint8`` image.

Keras is imported only where a model is loaded; the rest is numpy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from . import data, images

__all__ = [
    "tile_positions",
    "predict_tiled",
    "predict_image",
    "DIHEDRAL_TRANSFORMS",
    "DEFAULT_TTA",
    "apply_transform",
    "invert_transform",
    "combine_predictions",
    "tta_predict",
    "ensemble_predict",
    "predict_probabilities",
    "balanced_tile",
    "TILE_SIZE",
    "BATCH_PIXELS",
]

#: Channel of the border (or boundary) in three-class outputs (see :mod:`nucleitut.postprocess`).
BORDER = 2


# --------------------------------------------------------------------------------------------
# Normalisation and tiles
# --------------------------------------------------------------------------------------------








def tile_positions(length: int, tile: int, margin: int) -> list[tuple[int, int, int]]:
    """Tiles along one axis for overlapping inference.

    Returns ``(start, keep_from, keep_to)`` per tile: the tile covers ``[start, start+tile)``
    and contributes the pixels ``[keep_from, keep_to)`` (image coordinates) to the stitched
    result. Kept ranges partition ``[0, length)`` and stay at least ``margin`` pixels away
    from every tile edge that is not an image edge, so a network whose receptive field
    reaches at most ``margin`` pixels gives the same result as on the whole image.
    """
    if length <= tile:
        return [(0, 0, length)]
    step = tile - 2 * margin
    if step <= 0:
        raise ValueError(f"tile size {tile} too small for margin {margin}")
    starts = list(range(0, length - tile, step)) + [length - tile]
    starts = sorted(set(starts))
    result = []
    for i, start in enumerate(starts):
        keep_from = 0 if i == 0 else max(result[-1][2], start + margin)
        keep_to = length if i == len(starts) - 1 else start + tile - margin
        result.append((start, keep_from, keep_to))
    return result


def balanced_tile(length: int, largest: int, margin: int, multiple: int) -> int:
    """Tile edge along one axis: as few tiles of at most ``largest`` pixels as cover
    ``length`` with ``margin`` pixels of overlap on each side, made as equal as a ``multiple``
    allows, so the tiles overlap no more than they must.

    >>> balanced_tile(1056, 544, 16, 16), balanced_tile(1056, 256, 16, 16), balanced_tile(100, 544, 16, 16)
    (544, 240, 112)
    """
    if length <= largest:
        return int(np.ceil(length / multiple) * multiple)
    n = int(np.ceil((length - 2 * margin) / (largest - 2 * margin)))
    return min(largest, int(np.ceil(((length - 2 * margin) / n + 2 * margin) / multiple) * multiple))


#: Largest tile edge of :func:`predict_probabilities`: a 1024x1024 image in 4 tiles of 544
#: (the 32-pixel overlap included) instead of 25 of 256, 28 % fewer pixels to predict (0.68 s
#: against 0.97 s per network pass on 2 CPU cores, reference M3; outputs differ only along the
#: old seams: mean absolute difference 5e-5).
TILE_SIZE = 544
#: Pixels per batch of tiles in :func:`predict_probabilities`: as many as 8 tiles of 256x256,
#: so larger tiles go in smaller batches and memory stays bounded.
BATCH_PIXELS = 8 * 256 * 256


def predict_tiled(
    predict_batch: Callable[[np.ndarray], np.ndarray],
    image: np.ndarray,
    tile_size: int = TILE_SIZE,
    overlap: int = 32,
    multiple: int = 16,
    batch_size: int = 8,
    prepare: Callable[[np.ndarray], np.ndarray] | None = None,
    batch_pixels: int | None = BATCH_PIXELS,
    pad_batches: bool = False,
) -> np.ndarray:
    """Apply a network to an image of any size: pad, tile with overlap, predict, stitch.

    Parameters
    ----------
    predict_batch : callable
        Maps float32 ``(n, t, t, C_in)`` to ``(n, t, t, C_out)``.
    image : ndarray, shape (H, W, C_in)
        A normalised image (see :func:`nucleitut.data.normalize`).
    tile_size : int
        Largest tile edge (default :data:`TILE_SIZE`), rounded up to a multiple of
        ``multiple``; along each axis the tiles are made as equal as possible
        (:func:`balanced_tile`).
    overlap : int
        Pixels shared by neighbouring tiles; each tile's outer ``overlap // 2`` pixels are
        discarded, which removes the tiles' boundary effects. The image itself is first
        padded by ``overlap // 2`` mirrored pixels on every side for the same reason.
    multiple : int
        Network input sizes must be divisible by this (``2 ** blocks``). Images smaller than
        a tile or not divisible are padded by reflection, and the padding is cut off again.
    prepare : callable, optional
        Applied to every batch of tiles before ``predict_batch`` (e.g. :func:`nucleitut.data.normalize`), so
        a large ``uint8`` image is never held as float32 in full. Without it the image is
        converted to float32 first.
    batch_pixels : int or None
        At most this many pixels per batch (at least one tile; default :data:`BATCH_PIXELS`):
        batches of large tiles hold fewer than ``batch_size``. None: ``batch_size`` tiles.
    pad_batches : bool
        Pad a short last batch with zeros to the full batch (and drop its outputs), so every
        call sees one batch shape.

    Returns
    -------
    ndarray float32, shape (H, W, C_out)
    """
    image = np.asarray(image) if prepare is not None else np.asarray(image, np.float32)
    if image.ndim == 2:
        image = image[..., None]
    height, width = image.shape[:2]
    tile = int(np.ceil(tile_size / multiple) * multiple)
    margin = overlap // 2
    if margin:
        # The image's own edges get the same treatment as the seams between tiles: a
        # mirrored margin, so the network's zero padding never touches real pixels there.
        mode = "reflect" if min(height, width) > margin else "symmetric"
        image = np.pad(image, ((margin, margin), (margin, margin), (0, 0)), mode=mode)
    inner_h, inner_w = height, width
    height, width = image.shape[:2]
    # Small images get a smaller tile (still a multiple) instead of a lot of padding; larger
    # ones tiles as equal as possible.
    tile_h = balanced_tile(height, tile, margin, multiple)
    tile_w = balanced_tile(width, tile, margin, multiple)
    padded = data.pad_to(image, max(height, tile_h), max(width, tile_w))
    rows = tile_positions(padded.shape[0], tile_h, margin)
    cols = tile_positions(padded.shape[1], tile_w, margin)
    windows = [(r, c) for r in rows for c in cols]
    if batch_pixels is not None:
        batch_size = max(1, min(batch_size, batch_pixels // (tile_h * tile_w)))
    output = None
    for first in range(0, len(windows), batch_size):
        chunk = windows[first : first + batch_size]
        batch = np.stack([padded[r[0] : r[0] + tile_h, c[0] : c[0] + tile_w] for r, c in chunk])
        if prepare is not None:
            batch = prepare(batch)
        if pad_batches and len(chunk) < batch_size:
            batch = np.concatenate([batch, np.zeros((batch_size - len(chunk),) + batch.shape[1:], batch.dtype)])
        result = np.asarray(predict_batch(batch), np.float32)[: len(chunk)]
        if output is None:
            output = np.zeros(padded.shape[:2] + (result.shape[-1],), np.float32)
        for (r, c), pred in zip(chunk, result):
            output[r[1] : r[2], c[1] : c[2]] = pred[r[1] - r[0] : r[2] - r[0], c[1] - c[0] : c[2] - c[0]]
    return output[margin : margin + inner_h, margin : margin + inner_w]


# --------------------------------------------------------------------------------------------
# Whole-image prediction
# --------------------------------------------------------------------------------------------


def predict_image(
    model_or_fn: Any,
    image,
    tile_size: int = TILE_SIZE,
    overlap: int = 32,
    multiple: int = 16,
    batch_size: int = 8,
    pad_batches: bool | None = None,
    prepare: Callable[[np.ndarray], np.ndarray] | None = None,
    batch_pixels: int | None = BATCH_PIXELS,
) -> np.ndarray:
    """Predict an image of any size with overlapping tiles (:func:`predict_tiled`).

    Parameters
    ----------
    model_or_fn : keras.Model or callable
        A Keras model (anything with ``predict_on_batch`` is treated as one), or a
        function mapping a float32 batch (n, t, t, C_in) to (n, t, t, C_out).
    image : ndarray, shape (H, W, C_in) or (H, W)
        Normalised image (or a ``uint8`` one, with ``prepare``).
    tile_size, overlap, multiple, batch_size, prepare, batch_pixels
        Passed to :func:`predict_tiled`.
    pad_batches : bool, optional
        Pad short batches of a Keras model to the full batch (default: on the JAX backend,
        where every new batch shape costs a compilation; TensorFlow on a CPU would pay for
        the padded tiles).

    Returns
    -------
    ndarray of float32, shape (H, W, C_out)

    Examples
    --------
    >>> double = lambda batch: batch * 2
    >>> predict_image(double, np.ones((40, 50), np.float32), tile_size=32, overlap=8).shape
    (40, 50, 1)
    """
    image = images.check_real(image, "image")
    if image.ndim == 2:
        image = image[..., None]
    image = _check_image(image)

    if hasattr(model_or_fn, "predict_on_batch"):
        model = model_or_fn

        if pad_batches is None:
            import keras

            pad_batches = keras.backend.backend() == "jax"

        def predict_batch(batch: np.ndarray) -> np.ndarray:
            return np.asarray(model.predict_on_batch(batch), np.float32)

    elif callable(model_or_fn):
        predict_batch, pad_batches = model_or_fn, False
    else:
        raise TypeError(
            f"model_or_fn must be a Keras model or a callable, got {type(model_or_fn).__name__}"
        )

    prediction = predict_tiled(
        predict_batch,
        image,
        tile_size=tile_size,
        overlap=overlap,
        multiple=multiple,
        batch_size=batch_size,
        prepare=prepare,
        batch_pixels=batch_pixels,
        pad_batches=bool(pad_batches),
    )
    return np.asarray(prediction, dtype=np.float32)


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

#: Transforms of the paper's test-time augmentation (section 4.2: "flipping (up-down,
#: left-right) and a 90°-rotation"), with the image itself.
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
    predictions: Iterable[np.ndarray], border_channel: int | None = BORDER
) -> np.ndarray:
    """Fuse aligned predictions of one image: mean of all channels, max of the border channel.

    For test-time augmentation the paper takes "the pixelwise mean or maximum respectively" of
    the object and the border ("boundary") channel (section 4.2), so a border seen by any view
    is kept; averaging would blur a thin border that only some of the predictions place
    exactly. For ensembles of networks the paper speaks of "the averaged output of multiple
    networks"; using the max rule there too, and averaging the background channel, are this
    project's choices. The max rule applies when the outputs have three channels and
    ``border_channel`` is not None; otherwise every channel is averaged.

    The fused three-class output is deliberately *not* renormalised: with the border at its
    maximum the channels may sum to more than one. The watershed only looks at each channel on
    its own (``1 - background`` and ``object * (1 - border)``), and renormalising would dilute
    exactly the border emphasis the max rule is there for.

    Parameters
    ----------
    predictions : iterable of ndarray, each (H, W) or (H, W, C), all the same shape
        A list, or a generator that makes one prediction at a time.
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
    # One prediction at a time (``predictions`` may be a generator), so fusing the views of a
    # large image holds two running arrays instead of every view at once. Summing float32
    # values in float64 is exact for any realistic number of predictions, so identical
    # predictions fuse to exactly themselves (a float32 running sum would round).
    total = maximum = None
    count = 0
    for prediction in predictions:
        prediction = np.asarray(prediction, dtype=np.float32)
        if total is None:
            total = prediction.astype(np.float64)
            three_class = border_channel is not None and prediction.ndim == 3 and prediction.shape[-1] == 3
            if three_class and not -3 <= border_channel < 3:
                raise ValueError(f"border_channel must index one of 3 channels, got {border_channel}")
            maximum = prediction[..., border_channel].copy() if three_class else None
        elif prediction.shape != total.shape:
            raise ValueError(f"predictions must share a shape, got {total.shape} and {prediction.shape}")
        else:
            total += prediction
            if maximum is not None:
                np.maximum(maximum, prediction[..., border_channel], out=maximum)
        count += 1
    if count == 0:
        raise ValueError("combine_predictions needs at least one prediction")
    combined = (total / count).astype(np.float32)
    if maximum is not None:
        combined[..., border_channel] = maximum
    return combined


def _check_image(image) -> np.ndarray:
    """An (H, W, C) image as float32; a ``uint8`` image stays ``uint8`` (a quarter of the
    memory; whoever predicts it normalises, see :func:`predict_probabilities`)."""
    image = images.check_real(image, "image")
    if image.ndim != 3:
        raise ValueError(f"image must have shape (H, W, C), got {image.shape}")
    return image if image.dtype == np.uint8 else image.astype(np.float32, copy=False)


def _aligned_predictions(predict_fn, image: np.ndarray, transforms: Iterable[str],
                         known: dict[str, np.ndarray] | None = None) -> Iterator[np.ndarray]:
    """Each transform's prediction, undone to the image's orientation, one at a time
    (``known``: predictions already made, in the image's orientation, by transform name)."""
    names = list(transforms)
    if not names:
        raise ValueError("transforms must name at least one transform")
    known = known or {}
    for name in names:
        if name in known:
            prediction = np.asarray(known[name])
        else:
            prediction = invert_transform(np.asarray(predict_fn(apply_transform(image, name))), name)
        if prediction.shape[:2] != image.shape[:2]:
            raise ValueError(
                f"predict_fn must keep the spatial size: image {image.shape[:2]} gave a prediction "
                f"of shape {prediction.shape} after undoing {name!r}"
            )
        yield prediction


def tta_predict(
    predict_fn: Callable[[np.ndarray], np.ndarray],
    image,
    transforms: Sequence[str] = DEFAULT_TTA,
    border_channel: int | None = BORDER,
    known: dict[str, np.ndarray] | None = None,
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
    known : dict, optional
        Predictions already made, by transform name, in the image's orientation (e.g. the
        size estimate's pass over the image as it is, ``{"identity": ...}``): used instead of
        predicting those views again.

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
    return combine_predictions(_aligned_predictions(predict_fn, image, transforms, known), border_channel)


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
    predictions = (p for fn in predict_fns for p in _aligned_predictions(fn, image, names))
    return combine_predictions(predictions, border_channel)


# --------------------------------------------------------------------------------------------
# Trained networks on whole images
# --------------------------------------------------------------------------------------------



def predict_probabilities(model, image: np.ndarray, tta: bool | Sequence[str] = False, tile_size: int = TILE_SIZE, blocks: int | None = None,
                          as_is: np.ndarray | None = None) -> np.ndarray:
    """Network output for an RGB ``uint8`` image of any size, optionally with TTA.

    The image is normalised (:func:`nucleitut.data.normalize`) and predicted in overlapping tiles of
    at most ``tile_size`` pixels (:data:`TILE_SIZE`), in batches of at most
    :data:`BATCH_PIXELS` pixels, whose size is a multiple of ``2 ** blocks``; ``blocks`` is the U-Net's number of pooling steps
    (:func:`nucleitut.unet.network_depth`) unless given. With ``tta`` the paper's views
    (:data:`DEFAULT_TTA`: identity, up-down flip, left-right flip, 90° rotation) are fused:
    object channels averaged, the border/boundary channel maximised. ``as_is``: this
    function's output for the image without TTA, when already made (the size estimate's
    first pass), so that view is not predicted twice. ``tta`` may also name the views
    (:data:`DIHEDRAL_TRANSFORMS`), e.g. ``DEFAULT_TTA[:2]``.

    Returns
    -------
    ndarray of float32, shape (H, W, C)
    """
    if blocks is None:
        from . import unet  # Keras: only where a network is used

        blocks = unet.network_depth(model)
    image = np.asarray(image)
    # A uint8 image is normalised tile batch by tile batch, so a large image is never held as
    # float32 in full; other dtypes (0..255 values) are normalised first, with the same result.
    prepare = data.normalize if image.dtype == np.uint8 else None
    if prepare is None:
        image = data.normalize(image)

    def predict(x):
        return predict_image(model, x, tile_size=tile_size, overlap=32, multiple=2**blocks, prepare=prepare)

    if not tta:
        return predict(image) if as_is is None else as_is
    channels = model.output_shape[-1]
    return tta_predict(predict, image, DEFAULT_TTA if tta is True else tuple(tta),
                       border_channel=BORDER if channels == 3 else None,
                       known=None if as_is is None else {"identity": as_is})

