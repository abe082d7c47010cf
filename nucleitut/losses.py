"""The loss functions of Scherr et al. (2018), Table 2, and a Dice metric for training logs.

Table 2 of the paper (section 3.3) is an overview of losses for microscopy image
segmentation: binary and categorical cross-entropy (Bce, Cce), their weighted versions, the
Dice loss, the generalized Dice loss (Sudre et al. 2017) and the sums BceDice and CceDice.
The paper *trained* its networks with BceDice (networks B, sigmoid) and CceDice (networks M,
softmax) only (Table 3), and found "no clear trend towards better predictions than with pure
Bce or Dice loss" (section 3.6). This module implements every loss of the table so that they
can be compared. All are written with ``keras`` and ``keras.ops`` only, so they run on the
TensorFlow and the JAX backend alike.

Conventions
-----------
* Tensors are channels-last: ``y_true`` and ``y_pred`` have shape ``(B, H, W, C)``; the
  channel order is that of :mod:`nucleitut.targets` (0 background, 1 object/interior,
  2 border/boundary; a one-channel target is the object probability).
* **Reduction.** Every loss's ``call`` returns one value per image, shape ``(B,)`` (pixel
  means; Dice terms per image), and Keras reduces them with ``reduction`` (default
  ``'sum_over_batch_size'``: the batch mean). ``sample_weight`` and ``reduction='none'``
  therefore work as for Keras' own losses.
* **Weighted losses** receive the per-pixel weight map as an extra *last* channel of
  ``y_true``: ``y_true`` has ``C + 1`` channels (the one-hot target, then the weights) while
  ``y_pred`` has ``C``. Build such targets with :func:`with_weights`.
* Predictions are probabilities (after the sigmoid/softmax of :func:`nucleitut.unet.build_unet`).
  Cross-entropies clip them to ``[eps, 1 - eps]`` with ``eps = keras.config.epsilon()`` as
  Keras does; Cce first renormalises them to sum to one over the channels, also as Keras does.
* Every class is registered with ``keras.saving.register_keras_serializable(package='nucleitut')``
  and has a ``get_config``, so a model compiled with them saves to ``.keras`` and reloads with
  ``keras.models.load_model(path, safe_mode=True)``.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

__all__ = [
    "Bce",
    "WeightedBce",
    "Cce",
    "WeightedCce",
    "Dice",
    "GeneralizedDice",
    "BceDice",
    "CceDice",
    "DiceCoefficient",
    "LOSSES",
    "get_loss",
    "with_weights",
]

_register = keras.saving.register_keras_serializable(package="nucleitut")


# --------------------------------------------------------------------------- helpers


def with_weights(target: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Append a weight map to a target as its last channel, for the weighted losses.

    Parameters
    ----------
    target : ndarray, shape (..., H, W, C)
        One-hot (or one-channel) target, e.g. from :func:`nucleitut.targets.make_target`.
    weights : ndarray, shape (..., H, W) or (..., H, W, 1)
        Per-pixel weights, e.g. from :func:`nucleitut.targets.weight_map`.

    Returns
    -------
    ndarray of float32, shape (..., H, W, C + 1)
        ``target`` with ``weights`` as channel ``C``.
    """
    target = np.asarray(target)
    weights = np.asarray(weights)
    if target.ndim < 3:
        raise ValueError(
            f"target must have a channel axis (..., H, W, C), got shape {target.shape}"
        )
    if weights.shape == target.shape[:-1]:
        weights = weights[..., np.newaxis]
    if weights.shape != target.shape[:-1] + (1,):
        raise ValueError(
            f"weights of shape {weights.shape} do not match target of shape {target.shape}; "
            f"expected {target.shape[:-1]} or {target.shape[:-1] + (1,)}"
        )
    return np.concatenate([target, weights], axis=-1).astype(np.float32)


def _per_image_mean(values):
    """Mean over every axis but the batch axis: (B, ...) -> (B,)."""
    return ops.mean(values, axis=tuple(range(1, len(values.shape))))


def _per_image_sum(values):
    """Sum over the spatial axes, keeping batch and channels: (B, H, W, C) -> (B, C)."""
    return ops.sum(values, axis=tuple(range(1, len(values.shape) - 1)))


def _split_weights(y_true):
    """(B, H, W, C + 1) -> target (B, H, W, C), weights (B, H, W)."""
    return y_true[..., :-1], y_true[..., -1]


def _clip(y_pred):
    epsilon = keras.config.epsilon()
    return ops.clip(y_pred, epsilon, 1.0 - epsilon)


def _pixel_bce(y_true, y_pred):
    """Element-wise binary cross-entropy, (B, H, W, C)."""
    p = _clip(y_pred)
    return -(y_true * ops.log(p) + (1.0 - y_true) * ops.log(1.0 - p))


def _pixel_cce(y_true, y_pred):
    """Pixel-wise categorical cross-entropy, (B, H, W)."""
    p = _clip(y_pred / ops.sum(y_pred, axis=-1, keepdims=True))
    return -ops.sum(y_true * ops.log(p), axis=-1)


def _soft_dice_loss(y_true, y_pred, smooth):
    """Per-image soft Dice loss over all pixels and channels given, (B,)."""
    axes = tuple(range(1, len(y_true.shape)))
    intersection = ops.sum(y_true * y_pred, axis=axes)
    total = ops.sum(y_true, axis=axes) + ops.sum(y_pred, axis=axes)
    return 1.0 - (2.0 * intersection + smooth) / (total + smooth)


# --------------------------------------------------------------------------- losses


class _PerImageLoss(keras.losses.Loss):
    """Base: per-image values, reduced by Keras; the config carries the extra arguments."""

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def get_config(self):
        config = super().get_config()
        config["dtype"] = self._dtype_policy.name if self._dtype_policy else None
        return config


@_register
class Bce(_PerImageLoss):
    """Binary cross-entropy, mean over pixels and channels (Scherr et al. 2018, Table 2, 'Bce').

    ``call(y_true, y_pred)`` with both of shape (B, H, W, C) returns shape (B,).
    """

    def __init__(self, name="bce", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return _per_image_mean(_pixel_bce(y_true, y_pred))


@_register
class WeightedBce(_PerImageLoss):
    """Binary cross-entropy weighted per pixel (Ronneberger et al. 2015; Scherr et al. Table 2).

    ``y_true`` has shape (B, H, W, C + 1): the target, then the weight map (see
    :func:`with_weights`); ``y_pred`` has shape (B, H, W, C). Returns the per-image mean of
    ``w * bce`` over pixels and channels, shape (B,); with all weights one it equals
    :class:`Bce`.
    """

    def __init__(self, name="weighted_bce", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        target, weights = _split_weights(y_true)
        return _per_image_mean(weights[..., None] * _pixel_bce(target, y_pred))


@_register
class Cce(_PerImageLoss):
    """Categorical cross-entropy, mean over pixels (Scherr et al. 2018, Table 2, 'Cce').

    ``call(y_true, y_pred)`` with one-hot ``y_true`` and softmax ``y_pred``, both of shape
    (B, H, W, C), returns shape (B,).
    """

    def __init__(self, name="cce", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return _per_image_mean(_pixel_cce(y_true, y_pred))


@_register
class WeightedCce(_PerImageLoss):
    """Categorical cross-entropy weighted per pixel (Scherr et al. 2018, Table 2).

    ``y_true`` has shape (B, H, W, C + 1): the one-hot target, then the weight map (see
    :func:`with_weights`); ``y_pred`` has shape (B, H, W, C). Returns the per-image mean of
    ``w * cce`` over pixels, shape (B,).
    """

    def __init__(self, name="weighted_cce", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        target, weights = _split_weights(y_true)
        return _per_image_mean(weights * _pixel_cce(target, y_pred))


@_register
class Dice(_PerImageLoss):
    """Soft Dice loss ``1 - (2 |XY| + s) / (|X| + |Y| + s)`` per image (Table 2, 'Dice').

    Sums run over all pixels and channels of one image; ``smooth`` (``s``) keeps the loss
    defined and zero for an image without nuclei that is predicted empty. Returns shape (B,).
    Meant for the one-channel (binary) target; for three classes use :class:`CceDice` or
    :class:`GeneralizedDice`.

    Parameters
    ----------
    smooth : float, default 1.0
        Added to numerator and denominator.
    """

    def __init__(self, smooth=1.0, name="dice", **kwargs):
        super().__init__(name=name, **kwargs)
        self.smooth = float(smooth)

    def call(self, y_true, y_pred):
        return _soft_dice_loss(y_true, y_pred, self.smooth)

    def get_config(self):
        return {**super().get_config(), "smooth": self.smooth}


@_register
class GeneralizedDice(_PerImageLoss):
    """Generalized Dice loss of Sudre et al. (2017), per image (listed in the paper's Table 2).

    The details below (weights for absent classes, normalised weights) are this project's choice.

    ``1 - (2 sum_l w_l sum_n r_ln p_ln + s) / (sum_l w_l sum_n (r_ln + p_ln) + s)`` with the
    class weights ``w_l = 1 / (sum_n r_ln)**2``, so rare classes (the border) count as much as
    frequent ones. Two details make it usable on crops:

    * a class absent from an image would get an infinite weight; it gets the largest weight of
      the classes present instead (as NiftyNet does);
    * the weights are normalised to sum to one per image, which leaves the ratio unchanged but
      puts ``smooth`` on the scale of a pixel count, as in :class:`Dice`.

    A one-channel (sigmoid) target is treated as the two classes background and object, as in
    Sudre et al. Shapes: (B, H, W, C) in, (B,) out.

    Parameters
    ----------
    smooth : float, default 1.0
        Added to numerator and denominator.
    """

    def __init__(self, smooth=1.0, name="generalized_dice", **kwargs):
        super().__init__(name=name, **kwargs)
        self.smooth = float(smooth)

    def call(self, y_true, y_pred):
        if y_pred.shape[-1] == 1:
            y_true = ops.concatenate([1.0 - y_true, y_true], axis=-1)
            y_pred = ops.concatenate([1.0 - y_pred, y_pred], axis=-1)
        reference = _per_image_sum(y_true)  # (B, C)
        present = reference > 0
        weights = ops.where(present, 1.0 / ops.square(ops.where(present, reference, 1.0)), 0.0)
        largest = ops.max(weights, axis=-1, keepdims=True)
        weights = ops.where(present, weights, largest)
        weights = weights / ops.sum(weights, axis=-1, keepdims=True)
        intersection = ops.sum(weights * _per_image_sum(y_true * y_pred), axis=-1)
        total = ops.sum(weights * (reference + _per_image_sum(y_pred)), axis=-1)
        return 1.0 - (2.0 * intersection + self.smooth) / (total + self.smooth)

    def get_config(self):
        return {**super().get_config(), "smooth": self.smooth}


@_register
class BceDice(_PerImageLoss):
    """Sum of :class:`Bce` and :class:`Dice` per image (Scherr et al. 2018, 'BceDice').

    The loss the paper trains its one-channel networks B with (section 3.6, Table 3).
    """

    def __init__(self, smooth=1.0, name="bce_dice", **kwargs):
        super().__init__(name=name, **kwargs)
        self.smooth = float(smooth)

    def call(self, y_true, y_pred):
        bce = _per_image_mean(_pixel_bce(y_true, y_pred))
        return bce + _soft_dice_loss(y_true, y_pred, self.smooth)

    def get_config(self):
        return {**super().get_config(), "smooth": self.smooth}


@_register
class CceDice(_PerImageLoss):
    """Cce plus the Dice losses of the object and of the border class (Scherr et al. 'CceDice').

    The paper's loss for the three-class networks M (section 3.6, Table 3): "the sum of the Cce
    loss for every class and of the channel-wise Dice losses for the object class and the
    boundary class".

    ``cce + dice(channel 1) + dice(channel 2)`` per image: the soft Dice of the object/interior
    channel and of the boundary/border channel, each on its own, so the thin border class is
    not swamped by the background. Needs three-channel (B, H, W, 3) inputs; returns (B,).
    """

    def __init__(self, smooth=1.0, name="cce_dice", **kwargs):
        super().__init__(name=name, **kwargs)
        self.smooth = float(smooth)

    def call(self, y_true, y_pred):
        if y_pred.shape[-1] is not None and y_pred.shape[-1] < 3:
            raise ValueError(
                f"CceDice needs 3 channels (background, object, border), got {y_pred.shape[-1]}"
            )
        cce = _per_image_mean(_pixel_cce(y_true, y_pred))
        dice_object = _soft_dice_loss(y_true[..., 1:2], y_pred[..., 1:2], self.smooth)
        dice_border = _soft_dice_loss(y_true[..., 2:3], y_pred[..., 2:3], self.smooth)
        return cce + dice_object + dice_border

    def get_config(self):
        return {**super().get_config(), "smooth": self.smooth}


#: Loss names accepted by :func:`get_loss` (the names of the paper's Table 2 in snake case).
LOSSES = {
    "bce": Bce,
    "weighted_bce": WeightedBce,
    "cce": Cce,
    "weighted_cce": WeightedCce,
    "dice": Dice,
    "generalized_dice": GeneralizedDice,
    "bce_dice": BceDice,
    "cce_dice": CceDice,
}


def get_loss(name: str, **kwargs) -> keras.losses.Loss:
    """Return a new loss object by name.

    Parameters
    ----------
    name : str
        One of ``LOSSES``: 'bce', 'weighted_bce', 'cce', 'weighted_cce', 'dice',
        'generalized_dice', 'bce_dice', 'cce_dice'. Names starting with 'weighted_' expect the
        weight map as the last channel of ``y_true`` (see :func:`with_weights`).
    **kwargs
        Passed to the loss class (e.g. ``smooth``, ``reduction``).

    Returns
    -------
    keras.losses.Loss
    """
    try:
        cls = LOSSES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}") from None
    return cls(**kwargs)


# --------------------------------------------------------------------------- metric


@_register
class DiceCoefficient(keras.metrics.Metric):
    """Dice coefficient ``2 |XY| / (|X| + |Y|)`` of the object channel, for monitoring.

    Intersection and sizes are accumulated over all batches seen since the last reset, so the
    result is the Dice of the whole epoch's pixels, not a mean of per-batch values.

    The object channel is channel 0 for a one-channel prediction and channel 1 (object /
    interior) otherwise, read from ``y_pred``'s channel count; ``y_true`` may carry extra
    channels (e.g. the weight map of the weighted losses), they are ignored. Predictions are
    thresholded at ``threshold`` (probability of the object channel, not an argmax); with
    ``threshold=None`` the soft probabilities are used. With no object pixels in either the
    result is 1.

    Parameters
    ----------
    threshold : float or None, default 0.5
        Threshold on the object probability; None for the soft Dice.
    name : str, default 'dice_coefficient'
    dtype : str, optional
    """

    def __init__(self, threshold=0.5, name="dice_coefficient", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.threshold = None if threshold is None else float(threshold)
        self.intersection = self.add_variable(shape=(), initializer="zeros", name="intersection")
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = ops.convert_to_tensor(y_pred, dtype=self.dtype)
        y_true = ops.convert_to_tensor(y_true, dtype=self.dtype)
        channel = 0 if y_pred.shape[-1] == 1 else 1
        reference = y_true[..., channel]
        prediction = y_pred[..., channel]
        if self.threshold is not None:
            prediction = ops.cast(prediction > self.threshold, self.dtype)
        if sample_weight is not None:
            # Per-image weights (B,) broadcast over the pixels.
            sample_weight = ops.convert_to_tensor(sample_weight, dtype=self.dtype)
            sample_weight = ops.reshape(
                sample_weight, (-1,) + (1,) * (len(reference.shape) - 1)
            )
        else:
            sample_weight = ops.ones_like(reference)
        self.intersection.assign_add(ops.sum(sample_weight * reference * prediction))
        self.total.assign_add(ops.sum(sample_weight * (reference + prediction)))

    def result(self):
        # Plain tensors: JAX's where() does not accept Keras variables.
        intersection = ops.convert_to_tensor(self.intersection)
        total = ops.convert_to_tensor(self.total)
        empty = total <= 0
        dice = 2.0 * intersection / ops.where(empty, 1.0, total)
        return ops.where(empty, ops.cast(1.0, self.dtype), dice)

    def reset_state(self):
        self.intersection.assign(0.0)
        self.total.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}
