"""Checkpoints for the exercises: is the function you wrote right, and if not, where is it wrong?

The chapters follow the pattern of the DLMBL course exercises. A *task* cell holds a
skeleton, the signature and docstring of a function the book explains, with ``...`` as its
body; you write the body. The cell after it is a checkpoint that hands your function to a
checker of this module::

    def normalize(image):
        \"\"\"Scale a uint8 image to [-1, 1] as float32 (paper eq. 1).\"\"\"
        ...

    checks.check_normalize(normalize)

The checker calls your function on a few small hand-made cases, edge cases among them (an
image without nuclei, one nucleus, two touching nuclei), and compares every result with the
library's own implementation, the one the book shows. On success it prints one line
(``normalize: correct on 4 cases``) and returns True. Otherwise it raises
:class:`CheckFailed` (an ``AssertionError``) whose message names the case and what is wrong:
the shape, the dtype, or the first pixel ``(row, col)`` that differs, with the value you
returned and the value expected, and for small images a map of both results. A skeleton that
is still untouched (it returns ``None`` or ``...``, or raises ``NotImplementedError``) gets a
message that starts with ``not done yet:``.

=======================  ====================================================
checker                  compares your function with
=======================  ====================================================
check_normalize          data.normalize
check_close_label_holes  data.close_label_holes
check_crop_positions     training.crop_positions
check_bce_dice           losses.BceDice (per image)
check_unet               unet.build_unet
check_changed_config     config.training_config (one setting changed)
check_retraining         the chapter's network (validation images)
check_border_target      targets.border_target
check_marker_target      targets.marker_target
check_watershed          postprocess.watershed_labels
check_tta                predict.apply_transform and predict.invert_transform
check_fusion             predict.combine_predictions
check_match              metrics.match_counts
=======================  ====================================================

Every checker uses the reference's default parameters, and your function is called with the
arguments its skeleton names (see each checker). Instance labels are compared up to the
numbering of the objects where the numbering is not part of the task (the watershed).

Two checkers belong to the task that trains (chapter 4): :func:`check_changed_config` checks
the configuration you wrote before the training starts, :func:`check_retraining` checks what
the training left behind and compares the retrained network with the chapter's on the
validation images.

Examples
--------
>>> check_close_label_holes(data.close_label_holes)
close_label_holes: correct on 6 cases
True
>>> def close_label_holes(labels):
...     ...
>>> check_close_label_holes(close_label_holes)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
nucleitut.checks.CheckFailed: not done yet: close_label_holes returned None; ...
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Sequence

import keras
import numpy as np

from . import data, losses, metrics, postprocess, predict, targets, training, unet
from .blocks import needs_blocks
from .pipeline import Pipeline

__all__ = [
    "CheckFailed",
    "not_done",
    "check_normalize",
    "check_close_label_holes",
    "check_crop_positions",
    "check_bce_dice",
    "check_unet",
    "check_changed_config",
    "check_retraining",
    "check_border_target",
    "check_marker_target",
    "check_watershed",
    "check_tta",
    "check_fusion",
    "check_match",
]

#: Images with at most this many pixels are drawn as character maps in failure messages.
_MAP_PIXELS = 400


class CheckFailed(AssertionError):
    """Your function disagrees with the reference; the message says in which case and where."""


def not_done(value) -> bool:
    """True for what an untouched skeleton returns: ``None`` (a body of ``...``) or ``...``.

    >>> not_done(None), not_done(...), not_done(0)
    (True, True, False)
    """
    return value is None or value is Ellipsis


# --------------------------------------------------------------------------------------------
# Plumbing: calling the student's function, comparing, reporting
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Case:
    """One hand-made input: a name for messages, the arguments, and a hint shown on failure."""

    name: str
    args: tuple
    hint: str = ""


def _copy(value):
    # The student's function gets its own copies: one that works in place must not change the
    # reference's input, nor the next case.
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, (list, tuple)):
        return type(value)(_copy(v) for v in value)
    return value


def _not_done_message(task: str, what: str) -> str:
    return (
        f"not done yet: {task} {what}; replace the `...` in its body with your code "
        "(and `return` the result)"
    )


def _call(task: str, fn: Callable, case: _Case, *args, **kwargs):
    """Call the student's ``fn``; an untouched skeleton or an exception becomes CheckFailed."""
    try:
        result = fn(*_copy(args), **kwargs)
    except NotImplementedError:
        raise CheckFailed(_not_done_message(task, "raises NotImplementedError")) from None
    except CheckFailed:
        raise
    except Exception as error:
        raise CheckFailed(f"{task}: {case.name}: your function raised {type(error).__name__}: {error}") from error
    if not_done(result):
        raise CheckFailed(_not_done_message(task, f"returned {result!r}"))
    return result


def _fail(task: str, case: _Case, problem: str, maps: str = "", hint: bool = True) -> CheckFailed:
    message = f"{task}: {case.name}: {problem}"
    if hint and case.hint:
        message += f"\nhint: {case.hint}"
    if maps:
        message += "\n" + maps
    return CheckFailed(message)


def _passed(task: str, n_cases: int) -> bool:
    print(f"{task}: correct on {n_cases} cases")
    return True


def _to_numpy(value) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, (list, tuple, int, float, np.generic)):
        return np.asarray(value)
    return keras.ops.convert_to_numpy(value)  # a tensor of any backend


def _where(index: tuple, channel_names: Sequence[str] | None = None) -> str:
    """Words for an array index: ``pixel (row 2, col 3), channel 1 (object)``."""
    index = tuple(int(i) for i in index)
    if len(index) == 1:
        return f"position {index[0]}"
    text = f"pixel (row {index[0]}, col {index[1]})"
    if len(index) == 3:
        name = f" ({channel_names[index[2]]})" if channel_names and index[2] < len(channel_names) else ""
        text += f", channel {index[2]}{name}"
    elif len(index) > 3:
        text += ", index " + str(index[2:])
    return text


def _number(value) -> str:
    value = np.asarray(value)
    if value.ndim:
        return np.array2string(value, precision=4, separator=", ")
    if np.issubdtype(value.dtype, np.integer) or np.issubdtype(value.dtype, np.bool_):
        return str(value.item())
    text = f"{float(value):.6g}"
    return text if any(c in text for c in ".ein") else text + ".0"


def _side_by_side(got_rows: list[str], expected_rows: list[str]) -> str:
    width = max([len("yours")] + [len(r) for r in got_rows])
    lines = [f"{'yours'.ljust(width)}   expected"]
    for got, expected in zip(got_rows, expected_rows):
        lines.append(f"{got.ljust(width)}   {expected}")
    return "\n".join(lines)


_LABEL_CHARS = "123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _label_rows(labels: np.ndarray, renumber: bool) -> list[str]:
    """Rows of characters for a small label image: '.' background, 1-9, a-z, A-Z objects."""
    ids = np.unique(labels[labels != 0])
    if renumber:
        # Objects get characters in the order in which they first appear (row by row), so two
        # equal partitions with different ids look alike.
        order = {}
        for value in labels.ravel():
            if value != 0 and value not in order:
                order[value] = len(order)
        char = {v: _LABEL_CHARS[i % len(_LABEL_CHARS)] for v, i in order.items()}
    else:
        char = {v: (_LABEL_CHARS[v - 1] if 0 < v <= len(_LABEL_CHARS) else "#") for v in ids.tolist()}
    return ["".join("." if v == 0 else char[v] for v in row.tolist()) for row in labels]


def _label_maps(got: np.ndarray, expected: np.ndarray, renumber: bool) -> str:
    if expected.size > _MAP_PIXELS or got.shape != expected.shape:
        return ""
    return _side_by_side(_label_rows(got, renumber), _label_rows(expected, renumber))


def _class_rows(one_hot: np.ndarray, symbols: str) -> list[str]:
    rows = []
    for row in one_hot:
        chars = []
        for pixel in row:
            hot = np.flatnonzero(pixel == 1)
            exact = hot.size == 1 and np.count_nonzero(pixel) == 1
            chars.append(symbols[hot[0]] if exact and hot[0] < len(symbols) else "?")
        rows.append("".join(chars))
    return rows


def _check_shape(task: str, case: _Case, got: np.ndarray, expected: np.ndarray, hint: str = "") -> None:
    if got.shape != expected.shape:
        raise _fail(task, case, f"wrong shape: got {got.shape}, expected {expected.shape}{hint}", hint=False)


def _check_dtype(task: str, case: _Case, got: np.ndarray, dtype, why: str = "") -> None:
    if dtype == "integer":
        if not np.issubdtype(got.dtype, np.integer):
            raise _fail(task, case, f"wrong dtype: got {got.dtype}, expected an integer dtype{why}", hint=False)
    elif got.dtype != np.dtype(dtype):
        raise _fail(task, case, f"wrong dtype: got {got.dtype}, expected {np.dtype(dtype)}{why}", hint=False)


def _compare_values(
    task: str,
    case: _Case,
    got: np.ndarray,
    expected: np.ndarray,
    atol: float = 1e-6,
    rtol: float = 1e-6,
    channel_names: Sequence[str] | None = None,
    extra: Callable[[tuple], str] | None = None,
    maps: str = "",
) -> None:
    """Same shape assumed; report the first value that differs."""
    if np.issubdtype(expected.dtype, np.floating) or np.issubdtype(got.dtype, np.floating):
        got_f = got.astype(np.float64)
        bad = ~np.isclose(got_f, expected.astype(np.float64), atol=atol, rtol=rtol)
    else:
        bad = got != expected
    if not bad.any():
        return
    index = tuple(np.argwhere(bad)[0])
    if bad.ndim >= 2:
        # Count pixels, not values: a pixel of a one-hot target differs in two channels at once.
        per_pixel = bad.reshape(bad.shape[:2] + (-1,)).any(axis=-1)
        count = f"{int(np.count_nonzero(per_pixel))} of {per_pixel.size} pixels differ"
    else:
        count = f"{int(np.count_nonzero(bad))} of {bad.size} values differ"
    problem = (
        f"{_where(index, channel_names)}: got {_number(got[index])}, expected {_number(expected[index])}"
        f" ({count})"
    )
    if extra is not None:
        problem += extra(index)
    raise _fail(task, case, problem, maps)


# --------------------------------------------------------------------------------------------
# Chapter 1: the data
# --------------------------------------------------------------------------------------------


def check_normalize(normalize: Callable[[np.ndarray], np.ndarray]) -> bool:
    """Check ``normalize(image)``: the paper's input scaling ``A / 127.5 - 1`` (eq. 1).

    Compared with :func:`nucleitut.data.normalize` on uint8 images (the edge values 0 and 255,
    every value 0..255, an RGB image) and on a float image of values 0..255. The result must
    keep the image's shape and be float32, the precision the networks compute in.

    Returns
    -------
    True, after printing one line, when every case agrees.

    Raises
    ------
    CheckFailed
        Naming the case, the pixel, the value returned and the value expected.
    """
    task = "normalize"
    rng = np.random.default_rng(29)
    range_hint = "uint8 0 must become -1.0 and 255 must become 1.0: A / 127.5 - 1"
    cases = [
        _Case(
            "black and white pixels (uint8 0 and 255)",
            (np.array([[0, 255], [255, 0]], np.uint8),),
            range_hint + "; beware that uint8 arithmetic wraps around above 255",
        ),
        _Case("every uint8 value 0..255 (16 x 16)", (np.arange(256, dtype=np.uint8).reshape(16, 16),), range_hint),
        _Case(
            "an RGB image (uint8, 3 x 4 x 3)",
            (rng.integers(0, 256, (3, 4, 3)).astype(np.uint8),),
            "every channel is scaled the same way; the shape stays (H, W, 3)",
        ),
        _Case(
            "a float32 image with values 0..255",
            (np.array([[0.0, 63.75], [191.25, 255.0]], np.float32),),
            "a float image of values 0..255 is scaled like a uint8 one",
        ),
    ]
    for case in cases:
        expected = data.normalize(*case.args)
        got = _to_numpy(_call(task, normalize, case, *case.args))
        _check_shape(task, case, got, expected)
        _check_dtype(task, case, got, np.float32, " (networks compute in float32: convert with .astype(np.float32))")
        image = case.args[0]
        _compare_values(
            task, case, got, expected, atol=1e-6, rtol=0,
            extra=lambda index: f"; the input value there is {_number(image[index])}",
        )
    return _passed(task, len(cases))


def _labels(shape, *boxes) -> np.ndarray:
    """An int32 label image; each box is ``(label, rows, cols)`` with rows and cols slices."""
    labels = np.zeros(shape, np.int32)
    for label, rows, cols in boxes:
        labels[rows, cols] = label
    return labels


def check_close_label_holes(close_label_holes: Callable[[np.ndarray], np.ndarray]) -> bool:
    """Check ``close_label_holes(labels)``: close small holes per object, never merge nuclei.

    Compared with :func:`nucleitut.data.close_label_holes` with its default ``radius=1``
    (each object closed on its own with a disk of radius 1, its enclosed holes filled, only
    background pixels may change). Your function is called with the label image only. Cases:
    no nuclei, a nucleus with a hole, a nucleus with a one-pixel crack, two touching nuclei
    with a hole, two nuclei one pixel apart (the gap must stay open) and a nucleus cut by the
    image edge. The result must be int32 and keep every object's id.

    Returns
    -------
    True, after printing one line, when every case agrees.

    Raises
    ------
    CheckFailed
        Naming the case and the first pixel that differs.
    """
    task = "close_label_holes"
    with_hole = _labels((7, 7), (1, slice(1, 6), slice(1, 6)))
    with_hole[3, 3] = 0
    cracked = _labels((8, 8), (2, slice(1, 7), slice(1, 7)))
    cracked[1:4, 4] = 0  # open to the outside: not a hole, a crack
    touching = _labels((7, 10), (1, slice(1, 6), slice(1, 5)), (2, slice(1, 6), slice(5, 9)))
    touching[3, 7] = 0
    gap = _labels((6, 9), (1, slice(1, 5), slice(1, 4)), (2, slice(1, 5), slice(5, 8)))
    at_edge = _labels((6, 6), (4, slice(0, 4), slice(0, 4)))
    at_edge[1, 1] = 0
    per_object = "close each object on its own, so neighbouring nuclei never take each other's pixels"
    cases = [
        _Case("no nuclei", (np.zeros((5, 6), np.int32),), "an image without nuclei stays all background"),
        _Case("one nucleus with a one-pixel hole", (with_hole,), "an enclosed hole is filled with the object's id"),
        _Case(
            "one nucleus with a one-pixel-wide crack",
            (cracked,),
            "the closing with a disk of radius 1 also closes narrow cracks that are not enclosed holes",
        ),
        _Case("two touching nuclei, one with a hole", (touching,), per_object),
        _Case(
            "two nuclei one pixel apart",
            (gap,),
            "the gap between two nuclei is not a hole: " + per_object,
        ),
        _Case("a nucleus cut by the image edge, with a hole", (at_edge,), "the hole is filled with the object's id"),
    ]
    for case in cases:
        expected = data.close_label_holes(*case.args)
        got = _to_numpy(_call(task, close_label_holes, case, *case.args))
        _check_shape(task, case, got, expected)
        _check_dtype(task, case, got, np.int32)
        _compare_values(task, case, got, expected, maps=_label_maps(got, expected, renumber=False))
    return _passed(task, len(cases))


def check_crop_positions(crop_positions: Callable[[int, int], Sequence[int]]) -> bool:
    """Check ``crop_positions(length, size)``: start positions of the fewest crops covering an axis.

    Compared with :func:`nucleitut.training.crop_positions`: lengths shorter than, equal to,
    one more than, twice and between multiples of the crop size.

    Returns
    -------
    True, after printing one line, when every case agrees.
    """
    task = "crop_positions"
    hint = (
        "take the fewest crops that cover [0, length), ceil(length / size), spread evenly "
        "from 0 to length - size"
    )
    cases = [
        _Case("an axis as long as the crop (256, 256)", (256, 256), "one crop at 0"),
        _Case("an axis shorter than the crop (100, 256)", (100, 256), "one crop at 0 (the image is padded)"),
        _Case("one pixel more than the crop (257, 256)", (257, 256), hint),
        _Case("an axis of 360 pixels (360, 256)", (360, 256), hint),
        _Case("exactly two crops (512, 256)", (512, 256), hint),
        _Case("an axis of 520 pixels (520, 256)", (520, 256), hint),
    ]
    for case in cases:
        length, size = case.args
        expected = training.crop_positions(length, size)
        got = _call(task, crop_positions, case, length, size)
        try:
            got = [int(p) for p in got]
        except (TypeError, ValueError):
            raise _fail(task, case, f"expected a list of int start positions, got {got!r}") from None
        if got != expected:
            problem = f"got {got}, expected {expected}"
            if got and max(got) + size < length:
                problem += f"; your last crop ends at {max(got) + size}, before the end of the axis ({length})"
            raise _fail(task, case, problem)
    return _passed(task, len(cases))


# --------------------------------------------------------------------------------------------
# Chapter 2: the loss and the U-Net
# --------------------------------------------------------------------------------------------


def check_bce_dice(bce_dice: Callable[[Any, Any], Any]) -> bool:
    """Check ``bce_dice(y_true, y_pred)``: binary cross-entropy plus soft Dice loss, per image.

    Compared with :class:`nucleitut.losses.BceDice` (smooth 1, predictions clipped to
    ``[eps, 1 - eps]`` before the logarithm). Inputs are float32 numpy arrays of shape
    ``(B, H, W, 1)``; the result, a numpy array or a tensor, must hold one loss per image,
    shape ``(B,)`` (a scalar is accepted as the mean over the batch). Cases: all background,
    all foreground, one nucleus, a perfect prediction of exactly 0 and 1, and a batch of two
    images (the Dice is computed per image, not over the whole batch).

    Returns
    -------
    True, after printing one line, when every case agrees.
    """
    task = "bce_dice"
    reference = losses.BceDice()
    rng = np.random.default_rng(2)
    nucleus = np.zeros((1, 6, 6, 1), np.float32)
    nucleus[0, 1:4, 2:5] = 1
    soft = np.clip(nucleus * 0.7 + rng.uniform(0.05, 0.3, nucleus.shape), 0, 1).astype(np.float32)
    batch_true = np.concatenate([np.zeros_like(nucleus), nucleus])
    batch_pred = np.concatenate([np.full_like(nucleus, 0.2), soft])
    both_terms = "the loss is the mean binary cross-entropy over the pixels plus 1 - (2|XY| + 1) / (|X| + |Y| + 1)"
    cases = [
        _Case(
            "all background, predicted 0.1 everywhere",
            (np.zeros((1, 4, 4, 1), np.float32), np.full((1, 4, 4, 1), 0.1, np.float32)),
            both_terms + "; with smooth = 1 the Dice term stays defined without any nucleus",
        ),
        _Case(
            "all foreground, predicted 0.8 everywhere",
            (np.ones((1, 4, 4, 1), np.float32), np.full((1, 4, 4, 1), 0.8, np.float32)),
            both_terms,
        ),
        _Case("one nucleus, soft prediction", (nucleus, soft), both_terms),
        _Case(
            "a perfect prediction of exactly 0 and 1",
            (nucleus, nucleus.copy()),
            "clip the predictions to [eps, 1 - eps] (keras.config.epsilon()) before the logarithm",
        ),
        _Case(
            "a batch of two images (one without nuclei)",
            (batch_true, batch_pred),
            "compute the loss of every image on its own: sums over the pixels of one image, not the batch",
        ),
    ]
    for case in cases:
        y_true, y_pred = case.args
        per_image = keras.ops.convert_to_numpy(reference.call(y_true, y_pred)).astype(np.float64)
        got = _to_numpy(_call(task, bce_dice, case, y_true, y_pred))
        if got.shape == ():
            expected = np.asarray(per_image.mean())
        elif got.shape == per_image.shape:
            expected = per_image
        else:
            raise _fail(
                task, case,
                f"wrong shape: got {got.shape}, expected {per_image.shape} (one loss per image) or a scalar",
                hint=False,
            )
        if not np.issubdtype(got.dtype, np.floating):
            raise _fail(task, case, f"wrong dtype: got {got.dtype}, expected a float", hint=False)
        problem = None
        if np.isnan(got).any():
            problem = "got nan: a log(0) somewhere (clip the predictions) or a 0 / 0 (the Dice term needs its smooth)"
        elif not np.allclose(got, expected, rtol=1e-4, atol=1e-5):
            bce = keras.ops.convert_to_numpy(losses.Bce().call(y_true, y_pred))
            dice = keras.ops.convert_to_numpy(losses.Dice().call(y_true, y_pred))
            if got.ndim:
                i = int(np.argmax(np.abs(got - expected)))
                problem = f"image {i}: got {_number(got[i])}, expected {_number(expected[i])}"
                parts = f"{_number(bce[i])} + Dice loss {_number(dice[i])}"
            else:
                problem = f"got {_number(got)}, expected {_number(expected)} (the mean over the batch)"
                parts = f"{_number(bce.mean())} + Dice loss {_number(dice.mean())}"
            problem += f"; the expected value is binary cross-entropy {parts}"
        if problem:
            raise _fail(task, case, problem)
    return _passed(task, len(cases))


#: Layers left out of the comparison of layer kinds: an activation may be a layer or an argument.
_UNCOUNTED_LAYERS = {"InputLayer", "Activation", "ReLU", "Softmax"}


def _layer_kinds(model) -> Counter:
    counts: Counter = Counter()
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            counts.update(_layer_kinds(layer))
        elif type(layer).__name__ not in _UNCOUNTED_LAYERS:
            counts[type(layer).__name__] += 1
    return counts


def check_unet(build_unet: Callable[[int, int, int], Any]) -> bool:
    """Check ``build_unet(blocks, filters, out_channels)``: the U-Net of the paper's Figure 3.

    Compared with :func:`nucleitut.unet.build_unet` for a small network (3 blocks, 2 filters)
    with one output channel (sigmoid) and with three (softmax): the result must be a Keras
    model that takes RGB images of any size divisible by ``2 ** blocks`` and returns one
    probability map per output channel at the input size, with the same number of parameters
    as the reference (two 3 x 3 convolutions without bias, each followed by batch
    normalisation and ReLU, per level; 2 x 2 transposed convolutions; skip connections; a
    1 x 1 convolution at the end).

    Returns
    -------
    True, after printing one line, when every case agrees.
    """
    task = "build_unet"
    blocks, filters = 3, 2
    rng = np.random.default_rng(3)
    sizes = [(16, 16), (24, 40)]
    cases = [
        _Case(f"build_unet({blocks}, {filters}, 1)", (blocks, filters, 1)),
        _Case(f"build_unet({blocks}, {filters}, 3)", (blocks, filters, 3)),
    ]
    for case in cases:
        out_channels = case.args[2]
        reference = unet.build_unet(*case.args)
        model = _call(task, build_unet, case, *case.args)
        if not isinstance(model, keras.Model):
            raise _fail(task, case, f"expected a keras.Model, got {type(model).__name__}")
        outputs = []
        for height, width in sizes:
            image = rng.normal(size=(1, height, width, 3)).astype(np.float32)
            try:
                output = keras.ops.convert_to_numpy(model(image, training=False))
            except Exception as error:
                raise _fail(
                    task, case,
                    f"the model fails on an image of {height} x {width} pixels ({type(error).__name__}: {error}); "
                    f"the network takes images of any size divisible by 2 ** blocks = {2 ** blocks}: "
                    "keras.Input(shape=(None, None, 3))",
                ) from error
            expected_shape = (1, height, width, out_channels)
            if output.shape != expected_shape:
                raise _fail(
                    task, case,
                    f"wrong output shape for an input of shape {image.shape}: got {output.shape}, expected "
                    f"{expected_shape}"
                    + ("" if output.shape[1:3] == (height, width) else
                       "; the output has the input's height and width: padding='same' crops nothing"),
                )
            outputs.append(output)
        got_params, expected_params = model.count_params(), reference.count_params()
        if got_params != expected_params:
            problem = f"wrong number of parameters: got {got_params}, expected {expected_params}"
            got_kinds, expected_kinds = _layer_kinds(model), _layer_kinds(reference)
            differ = [
                f"{kind}: {got_kinds[kind]} (expected {expected_kinds[kind]})"
                for kind in sorted(set(got_kinds) | set(expected_kinds))
                if got_kinds[kind] != expected_kinds[kind]
            ]
            if differ:
                problem += "; layers that differ: " + ", ".join(differ)
            biases = sum(
                layer.filters for layer in reference.layers
                if type(layer).__name__ == "Conv2D" and not layer.use_bias
            )
            if got_params - expected_params == biases:
                problem += (
                    "; the difference is exactly the biases of the 3 x 3 convolutions: a convolution "
                    "followed by batch normalisation needs none (use_bias=False)"
                )
            raise _fail(task, case, problem)
        values = np.concatenate([o.reshape(-1, out_channels) for o in outputs])
        if values.min() < -1e-6 or values.max() > 1 + 1e-6:
            raise _fail(
                task, case,
                f"the outputs are not probabilities: they range from {values.min():.4g} to {values.max():.4g}",
            )
        if out_channels == 1 and np.allclose(values, 1.0):
            raise _fail(
                task, case,
                "every output is 1.0: a softmax over one channel is always 1; one channel needs a sigmoid",
            )
        if out_channels > 1:
            sums = values.sum(axis=-1)
            worst = int(np.argmax(np.abs(sums - 1)))
            if abs(sums[worst] - 1) > 1e-4:
                raise _fail(
                    task, case,
                    f"the {out_channels} output channels sum to {sums[worst]:.4g} in a pixel, expected 1: "
                    "the classes need a softmax over the channel axis",
                )
    return _passed(task, len(cases))


# --------------------------------------------------------------------------------------------
# Chapter 4: one setting changed, the network retrained
# --------------------------------------------------------------------------------------------

#: Settings that say *which* network is trained (its target and outputs): changing one of them
#: trains another network, not a variant of this one. (The target's parameters, such as the
#: marker erosion, may change: the network stays the same kind.)
IDENTITY_SETTINGS = ("network", "profile", "target", "out_channels")
#: The longest training a task may start: two minutes on two cores.
MAX_RETRAINING_S = 120.0


def _changes_text(changed: dict) -> str:
    return ", ".join(f"{name} {old!r} -> {new!r}" for name, (old, new) in changed.items())


def _check_one_change(task: str, case: _Case, reference, variant) -> tuple[str, Any, Any]:
    """The one setting in which ``variant`` differs from ``reference``, or CheckFailed."""
    changed = training.changed_settings(reference, variant)
    if not changed:
        raise _fail(
            task, case,
            "no setting differs from the chapter's configuration (the time budget does not count): change "
            "one, for example dataclasses.replace(cfg, learning_rate=cfg.learning_rate * 3, time_budget_s=90)",
            hint=False,
        )
    if len(changed) > 1:
        raise _fail(
            task, case,
            f"{len(changed)} settings differ ({_changes_text(changed)}): change exactly one, so that the "
            "comparison tells what that setting does",
            hint=False,
        )
    (name, (old, new)), = changed.items()
    if name in IDENTITY_SETTINGS:
        raise _fail(
            task, case,
            f"{name} {old!r} -> {new!r} makes another network, not a variant of {reference.network}: change a "
            "setting of its training (learning_rate, loss, batch_size, filters, augmentation, max_epochs, seed, ...)",
            hint=False,
        )
    return name, old, new


def check_changed_config(changed_config: Callable[[Any], Any], cfg) -> bool:
    """Check ``changed_config(cfg)``: the chapter's training configuration with one setting changed.

    ``cfg`` is the :class:`nucleitut.config.TrainingConfig` the chapter trained its network
    with. The result must be a configuration of the same kind (``dataclasses.replace(cfg,
    ...)``) that differs from ``cfg`` in exactly one setting, one of its training (not one of
    :data:`IDENTITY_SETTINGS`, which would make another network), with a valid value, and
    that stops training after at most :data:`MAX_RETRAINING_S` seconds (``time_budget_s``;
    the time budget itself does not count as a changed setting). The check runs before the
    training, so a mistake costs seconds, not minutes.

    Returns
    -------
    True, after printing the change, when the configuration is fine.
    """
    task = "changed_config"
    case = _Case(f"{cfg.network}'s configuration of the {cfg.profile} profile", (cfg,))
    variant = _call(task, changed_config, case, cfg)
    if not isinstance(variant, type(cfg)):
        raise _fail(
            task, case,
            f"expected a {type(cfg).__name__} (dataclasses.replace(cfg, setting=value, time_budget_s=...)), got "
            f"{type(variant).__name__}",
            hint=False,
        )
    name, old, new = _check_one_change(task, case, cfg, variant)
    if name == "loss":
        try:
            losses.get_loss(new)
        except Exception as error:
            raise _fail(task, case, f"loss {new!r} is not a loss of the library: {error}", hint=False) from None
    positive = ("learning_rate", "batch_size", "max_epochs", "filters", "crop_size", "early_stopping_patience")
    if name in positive and not (isinstance(new, (int, float)) and new > 0):
        raise _fail(task, case, f"{name} must be a positive number, got {new!r}", hint=False)
    if name in ("batch_size", "max_epochs", "filters", "crop_size", "blocks") and not isinstance(new, int):
        raise _fail(task, case, f"{name} must be an int, got {new!r}", hint=False)
    budget = variant.time_budget_s
    if budget is None or not 0 < budget <= MAX_RETRAINING_S:
        raise _fail(
            task, case,
            f"time_budget_s is {budget!r}: set it to at most {MAX_RETRAINING_S:g} s, so that the training "
            "stops within two minutes on two cores",
            hint=False,
        )
    print(f"{task}: one setting changed, {name} {old!r} -> {new!r}; the training stops after at most {budget:g} s")
    return True


def _paired_interval(differences: np.ndarray, resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """95 % bootstrap interval of the mean of paired differences (resampling the images)."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(differences), size=(resamples, len(differences)))
    means = differences[picks].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def _paired_scores(variant, reference, dataset, ids, pipeline: str | None = None,
                   networks: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Kaggle score per image of ``pipeline`` (default: the network alone, with the book's
    post-processing) with ``variant`` and with ``reference``; the pipeline's other networks
    predict each image once for both."""
    name = reference.config.network
    yours = Pipeline.from_models(pipeline or name, {**(networks or {}), name: variant})
    theirs = Pipeline.from_models(pipeline or name, {**(networks or {}), name: reference})
    partners = {n: network for n, network in yours.networks.items() if n != name}
    rows = []
    for i in ids:
        image, truth = dataset.get(i)
        if needs_blocks(image.shape):  # a very large image: the pipeline labels it block by block
            rows.append([metrics.kaggle_score(truth, segmenter(image)) for segmenter in (yours, theirs)])
            continue
        known = {n: predict.predict_probabilities(network.model, image) for n, network in partners.items()}
        rows.append([
            metrics.kaggle_score(truth, segmenter.labels_from(segmenter.probabilities(image, known=known)))
            for segmenter in (yours, theirs)
        ])
    scores = np.array(rows, dtype=float).reshape(-1, 2)
    return scores[:, 0], scores[:, 1]


def check_retraining(result, reference, dataset, val_ids: Sequence[str], pipeline: str | None = None,
                     networks: dict | None = None) -> dict:
    """Check a retrained network and compare it with the chapter's on the validation images.

    Parameters
    ----------
    result : nucleitut.training.TrainResult
        What ``training.train(your_config, ...)`` returned.
    reference : path
        The folder of the chapter's network (``config.model_dir("B1")``): its ``model.keras``,
        ``config.json``, ``history.csv`` and ``timing.json``.
    dataset : nucleitut.data.Dataset
        The data both networks were trained on.
    val_ids : sequence of str
        The validation images (``book.split.val``). Neither test images nor training images of
        ``dataset.split()``: a setting is never chosen on the test images, and training images
        flatter every network.
    pipeline : str, optional
        The pipeline both networks are scored in (for example ``"M3B1"`` for a retrained M3);
        default: the network alone (``"B1"``: threshold, ``"M3"``: watershed).
    networks : dict, optional
        The pipeline's other networks, name -> Keras model or
        :class:`nucleitut.training.Network` (``{"B1": b1}`` for ``"M3B1"``).

    Checks that the training finished at least one epoch, that its configuration differs from
    the chapter's in exactly one setting of its training, and that the images are validation
    images; then prints the comparison: epochs and seconds of both trainings, the validation
    curves after the same epoch, and the mean Kaggle score of both pipelines on the validation
    images with the difference and its 95 % bootstrap interval over the images (paired: the
    same images for both networks).

    Returns
    -------
    dict
        ``setting``, ``before``, ``after``, ``epochs`` and ``seconds`` (yours, the chapter's),
        ``scores`` (yours, the chapter's), ``difference`` and ``interval``.
    """
    task = "retraining"
    if not_done(result):
        raise CheckFailed(
            f"not done yet: {task}: got {result!r}; train your configuration with training.train(...) and pass "
            "what it returns"
        )
    missing = [name for name in ("model", "config", "history", "seconds") if getattr(result, name, None) is None]
    if missing:
        raise CheckFailed(
            f"{task}: expected what training.train returns (a TrainResult), got {type(result).__name__} without "
            f"{', '.join(missing)}"
        )
    reference = Path(reference)
    ref_network = training.load_network(reference)
    ref_history = training.read_history(reference)
    ref_timing_file = reference / "timing.json"
    ref_seconds = math.nan
    if ref_timing_file.exists():
        timing = json.loads(ref_timing_file.read_text())
        seconds = training.training_seconds(timing)
        ref_seconds = math.nan if seconds is None else float(seconds)
    case = _Case(f"your retrained {result.config.network}", (result,))
    name, old, new = _check_one_change(task, case, ref_network.config, result.config)

    history = {key: np.asarray(values, dtype=float) for key, values in (result.history or {}).items()}
    epochs = len(history.get("val_loss", []))
    if epochs == 0:
        raise _fail(
            task, case,
            "the history holds no finished epoch: the time budget ended the training during its first "
            "epoch; give it more time (at most 120 s) or make an epoch shorter",
            hint=False,
        )
    val_ids = list(val_ids)
    split = dataset.split()
    for part, ids in (("test", split.test), ("training", split.train)):
        shared = [i for i in val_ids if i in set(ids)]
        if shared:
            raise _fail(
                task, case,
                f"{len(shared)} of the {len(val_ids)} images are {part} images ({shared[0][:10]}, ...): compare "
                "on the validation images (book.split.val); a setting is chosen on them, never on test images",
                hint=False,
            )
    if not val_ids:
        raise _fail(task, case, "no validation images given (book.split.val)", hint=False)

    ref_epochs = len(ref_history.get("val_loss", []))
    print(
        f"{task}: {name} {old!r} -> {new!r}; yours trained {epochs} epochs in {result.seconds:.0f} s, "
        f"the chapter's {ref_network.config.network} {ref_epochs} epochs in {ref_seconds:.0f} s"
    )
    if not np.all(np.isfinite(history["val_loss"])):
        print("  your validation loss is not finite: the training diverged (a learning rate too high?)")
    shared_epoch = min(epochs, ref_epochs)
    curves = [key for key in sorted(history) if key.startswith("val_") and key in ref_history]
    if name == "loss":
        curves = [key for key in curves if key != "val_loss"]  # losses of different kinds do not compare
    if name == "target_params":
        curves = []  # measured against another target: the curves do not compare
    for key in curves:
        print(
            f"  {key} after epoch {shared_epoch}: yours {history[key][shared_epoch - 1]:.3f}, "
            f"the chapter's {ref_history[key][shared_epoch - 1]:.3f}"
        )
    variant = training.Network(result.model, result.config)
    yours, theirs = _paired_scores(variant, ref_network, dataset, val_ids, pipeline, networks)
    differences = yours - theirs
    low, high = _paired_interval(differences)
    scored = f" ({pipeline})" if pipeline else ""
    print(
        f"  mean Kaggle score{scored} on {len(val_ids)} validation images: yours {yours.mean():.3f}, the chapter's "
        f"{theirs.mean():.3f}; difference {differences.mean():+.3f} (95 % bootstrap interval over the images "
        f"{low:+.3f} to {high:+.3f})"
    )
    if epochs != ref_epochs:
        print(
            f"  the two trainings ran {epochs} and {ref_epochs} epochs: the score difference mixes your setting "
            "with the training's length; the curves above compare the same epoch"
        )
    print(
        "  one training each: the interval covers the choice of images, not the randomness of training, "
        "which moves a quick network's score too (another seed, chapter 6)"
    )
    return {
        "setting": name,
        "before": old,
        "after": new,
        "epochs": (epochs, ref_epochs),
        "seconds": (float(result.seconds), ref_seconds),
        "scores": (float(yours.mean()), float(theirs.mean())),
        "difference": float(differences.mean()),
        "interval": (low, high),
    }


# --------------------------------------------------------------------------------------------
# Chapters 2-4: targets
# --------------------------------------------------------------------------------------------


def _check_target(task: str, fn: Callable, cases: Sequence[_Case], reference: Callable, names: Sequence[str]) -> bool:
    symbols = "." + "".join(name[0] for name in names[1:-1]) + "B"
    for case in cases:
        expected = reference(*case.args)
        got = _to_numpy(_call(task, fn, case, *case.args))
        _check_shape(task, case, got, expected, " (H, W, 3): one-hot classes, channels last")
        _check_dtype(task, case, got, np.float32, " (targets are float32 one-hot arrays)")
        maps = ""
        if expected.shape[0] * expected.shape[1] <= _MAP_PIXELS:
            legend = ", ".join(f"{s} {n}" for s, n in zip(symbols, names)) + ", ? not one-hot"
            maps = f"classes ({legend}):\n" + _side_by_side(_class_rows(got, symbols), _class_rows(expected, symbols))

        def classes(index, got=got, expected=expected):
            def name(pixel):
                hot = np.flatnonzero(pixel == 1)
                if hot.size == 1 and np.count_nonzero(pixel) == 1:
                    return names[hot[0]]
                return "not one-hot"
            pixel = index[:2]
            return f"; that pixel is {name(got[pixel])} in yours, {name(expected[pixel])} in the expected target"

        _compare_values(task, case, got, expected, atol=1e-6, rtol=0, channel_names=names, extra=classes, maps=maps)
    return _passed(task, len(cases))


def check_border_target(border_target: Callable[[np.ndarray], np.ndarray]) -> bool:
    """Check ``border_target(labels)``: background / object / border between touching nuclei.

    Compared with :func:`nucleitut.targets.border_target` with its defaults (a pixel whose
    3 x 3 window holds two different nuclei is border, the border then grows by a disk of
    radius 1 into the nuclei). The result is one-hot, float32, shape ``(H, W, 3)``: channel 0
    background, 1 object, 2 border. Cases: no nuclei, one nucleus (no border at all: that
    would be the *boundary* target), two touching nuclei, two nuclei one pixel apart and a
    nucleus at the image edge next to another.

    Returns
    -------
    True, after printing one line, when every case agrees.

    Raises
    ------
    CheckFailed
        Naming the case, the first pixel and channel that differ and both classes there.
    """
    only_between = "border marks only pixels between two different nuclei, grown by 1 pixel into the nuclei"
    cases = [
        _Case("no nuclei", (np.zeros((6, 7), np.int32),), "an image without nuclei is all background"),
        _Case(
            "one nucleus",
            (_labels((8, 8), (1, slice(2, 6), slice(2, 6))),),
            "an isolated nucleus gets no border: its outline stays object (outlining every nucleus is "
            "the boundary target)",
        ),
        _Case(
            "two touching nuclei",
            (_labels((8, 12), (1, slice(2, 6), slice(1, 6)), (2, slice(2, 6), slice(6, 11))),),
            only_between,
        ),
        _Case(
            "two nuclei one pixel apart",
            (_labels((8, 11), (1, slice(2, 6), slice(1, 5)), (2, slice(2, 6), slice(6, 10))),),
            only_between + "; the background pixels of a one-pixel gap are border too",
        ),
        _Case(
            "two touching nuclei at the image edge",
            (_labels((7, 8), (3, slice(0, 3), slice(0, 8)), (5, slice(3, 6), slice(0, 8))),),
            only_between,
        ),
    ]
    return _check_target("border_target", border_target, cases, targets.border_target, ("background", "object", "border"))


def check_marker_target(marker_target: Callable[[np.ndarray], np.ndarray]) -> bool:
    """Check ``marker_target(labels)``: eroded nuclei and dilated borders, the target of network M.

    Compared with :func:`nucleitut.targets.marker_target` with its defaults: every nucleus
    eroded on its own by a disk of radius 2 (a nucleus too small for that keeps its centre
    pixels, those farthest from the background; the image edge does not erode), the border
    between touching nuclei grown by a disk of radius 2 into the nuclei and winning over the
    markers. One-hot, float32, ``(H, W, 3)``: channel 0 background, 1 marker, 2 border. Cases:
    no nuclei, one nucleus, two touching nuclei, a small nucleus and a nucleus cut by the
    image edge.

    Returns
    -------
    True, after printing one line, when every case agrees.
    """
    cases = [
        _Case("no nuclei", (np.zeros((8, 8), np.int32),), "an image without nuclei is all background"),
        _Case(
            "one nucleus (7 x 7)",
            (_labels((11, 11), (1, slice(2, 9), slice(2, 9))),),
            "the marker is the nucleus eroded by a disk of radius 2 (skimage.morphology.disk(2))",
        ),
        _Case(
            "two touching nuclei",
            (_labels((11, 18), (1, slice(2, 9), slice(2, 9)), (2, slice(2, 9), slice(9, 16))),),
            "erode each nucleus on its own; the border between them, grown by a disk of radius 2 into the "
            "nuclei, wins over the markers",
        ),
        _Case(
            "a small nucleus (3 x 3)",
            (_labels((7, 7), (1, slice(2, 5), slice(2, 5))),),
            "a nucleus that the erosion would remove keeps its centre pixel(s), the pixels farthest from "
            "the background, so that every nucleus keeps a marker",
        ),
        _Case(
            "a nucleus cut by the image edge",
            (_labels((9, 9), (4, slice(1, 8), slice(0, 5))),),
            "the image edge does not erode: the nucleus continues beyond it (border_value=1)",
        ),
    ]
    return _check_target("marker_target", marker_target, cases, targets.marker_target, ("background", "marker", "border"))


# --------------------------------------------------------------------------------------------
# Chapter 3: the watershed
# --------------------------------------------------------------------------------------------


def _compare_instances(task: str, case: _Case, got: np.ndarray, expected: np.ndarray) -> None:
    """Same objects up to their numbering, or a message on the first pixel that differs."""
    _check_shape(task, case, got, expected)
    _check_dtype(task, case, got, "integer", " (instance labels: 0 background, one id per nucleus)")
    maps = _label_maps(got, expected, renumber=True)
    if maps:
        maps = "objects (. background; numbered in order of appearance, ids may differ):\n" + maps
    wrong_fg = (got != 0) != (expected != 0)
    if wrong_fg.any():
        r, c = np.argwhere(wrong_fg)[0]
        what = f"got label {got[r, c]}, expected background" if expected[r, c] == 0 else "got background, expected an object"
        raise _fail(task, case, f"{_where((r, c))}: {what} ({int(wrong_fg.sum())} pixels differ)", maps)
    # Each expected object maps to the label yours gives most of its pixels.
    mapping = {}
    for e in np.unique(expected[expected != 0]).tolist():
        values, counts = np.unique(got[expected == e], return_counts=True)
        mapping[e] = values[np.argmax(counts)]
    first = {e: tuple(np.argwhere(expected == e)[0]) for e in mapping}
    seen: dict = {}
    for e, g in mapping.items():
        if g in seen:
            a, b = first[seen[g]], first[e]
            raise _fail(
                task, case,
                f"two nuclei merged: {_where(a)} and {_where(b)} belong to different nuclei, but both got "
                f"label {g}",
                maps,
            )
        seen[g] = e
    predicted = np.vectorize(lambda e: mapping.get(e, 0), otypes=[got.dtype])(expected)
    bad = predicted != got
    if bad.any():
        r, c = np.argwhere(bad)[0]
        e = expected[r, c]
        raise _fail(
            task, case,
            f"{_where((r, c))} got label {got[r, c]}, but it belongs to the nucleus at {_where(first[e])}, which "
            f"got label {mapping[e]} ({int(bad.sum())} pixels differ)",
            maps,
        )


def _probabilities(shape, background=1.0):
    probs = np.zeros(shape + (3,), np.float32)
    probs[..., 0] = background
    return probs


def _paint(probs, rows, cols, background, obj, border):
    probs[rows, cols] = (background, obj, border)


def check_watershed(watershed_labels: Callable[[np.ndarray], np.ndarray]) -> bool:
    """Check ``watershed_labels(probs)``: instance labels from a three-class output.

    Compared with :func:`nucleitut.postprocess.watershed_labels` with its defaults, up to the
    numbering of the objects: mask ``1 - background > 0.3``, seeds the 4-connected components
    of ``object * (1 - border) > 0.6``, flooded over ``-object * (1 - border)`` inside the mask;
    a mask component without a seed becomes an object of its own. ``probs`` is float32 of
    shape ``(H, W, 3)`` (background, object, border); the result an integer label image
    ``(H, W)``. Cases: no nuclei, one nucleus, two touching nuclei with a predicted border,
    two touching nuclei with an uncertain border (object 0.7, border 0.3), and a faint nucleus
    without a seed.

    Returns
    -------
    True, after printing one line, when every case agrees.

    Raises
    ------
    CheckFailed
        Naming the case and the first pixel that differs, or the two nuclei that were merged.
    """
    task = "watershed_labels"
    one = _probabilities((7, 8), 0.95)
    one[..., 1] = 0.05
    _paint(one, slice(2, 5), slice(2, 6), 0.1, 0.9, 0.0)

    bordered = _probabilities((6, 12), 1.0)
    _paint(bordered, slice(1, 5), slice(1, 5), 0.05, 0.95, 0.0)
    _paint(bordered, slice(1, 5), slice(7, 11), 0.05, 0.95, 0.0)
    _paint(bordered, slice(1, 5), slice(5, 7), 0.0, 0.2, 0.8)

    uncertain = bordered.copy()
    _paint(uncertain, slice(1, 5), slice(5, 7), 0.0, 0.7, 0.3)

    faint = _probabilities((6, 12), 1.0)
    _paint(faint, slice(1, 5), slice(1, 5), 0.05, 0.95, 0.0)
    _paint(faint, slice(2, 4), slice(7, 10), 0.4, 0.5, 0.1)

    cases = [
        _Case("no nuclei", (_probabilities((5, 6), 1.0),), "nothing above the mask threshold: all background"),
        _Case("one nucleus", (one,), "the mask is 1 - background > 0.3"),
        _Case(
            "two touching nuclei separated by a predicted border",
            (bordered,),
            "the mask (1 - background > 0.3) includes the border pixels; one seed per nucleus "
            "(object * (1 - border) > 0.6), flooded over -object * (1 - border)",
        ),
        _Case(
            "two touching nuclei with an uncertain border (object 0.7, border 0.3 between them)",
            (uncertain,),
            "the seeds come from object * (1 - border) > 0.6, not from the object channel alone: "
            "0.7 * (1 - 0.3) = 0.49 keeps the two seeds apart",
        ),
        _Case(
            "a faint nucleus without a seed next to a bright one",
            (faint,),
            "a mask component that holds no seed becomes an object of its own (skimage's watershed "
            "leaves it 0: label those pixels yourself)",
        ),
    ]
    for case in cases:
        expected = postprocess.watershed_labels(*case.args)
        got = _to_numpy(_call(task, watershed_labels, case, *case.args))
        _compare_instances(task, case, got, expected)
    return _passed(task, len(cases))


# --------------------------------------------------------------------------------------------
# Chapter 5: test-time augmentation and fusion
# --------------------------------------------------------------------------------------------


def check_tta(
    transform: Callable[[np.ndarray, str], np.ndarray],
    invert: Callable[[np.ndarray, str], np.ndarray],
    names: Sequence[str] = predict.DEFAULT_TTA,
) -> bool:
    """Check ``transform(array, name)`` and ``invert(array, name)``: the views of TTA and their undoing.

    Compared with :func:`nucleitut.predict.apply_transform` and
    :func:`nucleitut.predict.invert_transform` for every name in ``names`` (default
    :data:`nucleitut.predict.DEFAULT_TTA`: identity, flip_ud, flip_lr, rot90; rotations
    counter-clockwise as ``np.rot90``), on a 3 x 5 x 2 image and a 3 x 5 probability map
    (transforms act on the first two axes): the view must equal the reference's, and
    ``invert`` must turn the reference's view back into the image exactly.

    Returns
    -------
    True, after printing one line, when every case agrees.
    """
    task = "tta"
    arrays = {
        "a 3 x 5 x 2 image": np.arange(30, dtype=np.float32).reshape(3, 5, 2),
        "a 3 x 5 probability map": np.arange(15, dtype=np.float32).reshape(3, 5) / 15,
    }
    hints = {
        "identity": "the identity leaves the array as it is",
        "flip_ud": "flip_ud mirrors the rows (up-down): x[::-1]",
        "flip_lr": "flip_lr mirrors the columns (left-right): x[:, ::-1]",
        "rot90": "rot90 rotates counter-clockwise, np.rot90(x, 1); its inverse rotates back, np.rot90(x, -1)",
    }
    n_cases = 0
    for name in names:
        for what, array in arrays.items():
            hint = hints.get(name, "")
            view_case = _Case(f"transform(..., {name!r}) of {what}", (array, name), hint)
            expected_view = predict.apply_transform(array, name)
            got = _to_numpy(_call("apply_transform", transform, view_case, array, name))
            _check_shape(task, view_case, got, expected_view)
            _compare_values(task, view_case, got, expected_view, atol=0, rtol=0)

            back_case = _Case(f"invert(..., {name!r}) of the {name} view of {what}", (expected_view, name), hint)
            got = _to_numpy(_call("invert_transform", invert, back_case, expected_view, name))
            _check_shape(task, back_case, got, array, " (undoing the view must give the image's shape back)")
            _compare_values(task, back_case, got, array, atol=0, rtol=0)
            n_cases += 1
    return _passed(task, n_cases)


def check_fusion(combine_predictions: Callable[[list], np.ndarray]) -> bool:
    """Check ``combine_predictions(predictions)``: fusing aligned three-class predictions.

    Compared with :func:`nucleitut.predict.combine_predictions`: the pixel-wise mean of the
    background and object channels and the pixel-wise *maximum* of the border channel (paper
    section 4.2), without renormalising. ``predictions`` is a list of float32 arrays of shape
    ``(H, W, 3)``; the result is float32 of the same shape. Cases: a single prediction, four
    equal views, four views of which only one sees a border, and two views that disagree on
    the object.

    Returns
    -------
    True, after printing one line, when every case agrees.
    """
    task = "combine_predictions"
    rng = np.random.default_rng(5)
    names = ("background", "object", "border")

    def softmax_like(shape):
        values = rng.random(shape + (3,)).astype(np.float32)
        return (values / values.sum(axis=-1, keepdims=True)).astype(np.float32)

    single = softmax_like((3, 4))
    agreeing = softmax_like((3, 4))
    border_once = [np.tile(np.array([0.3, 0.7, 0.0], np.float32), (3, 4, 1)) for _ in range(4)]
    border_once[2][1, 1:3] = (0.0, 0.1, 0.9)
    disagreeing = [softmax_like((4, 3)), softmax_like((4, 3))]
    cases = [
        _Case("a single prediction", ([single],), "one prediction fuses to itself"),
        _Case("four equal views", ([agreeing] * 4,), "equal predictions fuse to themselves"),
        _Case("four views, only one sees a border", (border_once,), ""),
        _Case("two views that disagree", (disagreeing,), ""),
    ]
    for case in cases:
        expected = predict.combine_predictions(*case.args)
        got = _to_numpy(_call(task, combine_predictions, case, *case.args))
        _check_shape(task, case, got, expected)
        _check_dtype(task, case, got, np.float32)

        def rule(index):
            channel = int(index[-1])
            if channel == 2:
                return "; the border channel is fused by the maximum over the views (a border seen by one view stays)"
            return f"; the {names[channel]} channel is the mean over the views (no renormalisation)"

        _compare_values(task, case, got, expected, atol=1e-6, rtol=1e-6, channel_names=names, extra=rule)
    return _passed(task, len(cases))


# --------------------------------------------------------------------------------------------
# Chapter 6: evaluation
# --------------------------------------------------------------------------------------------


def _row(*values) -> np.ndarray:
    """A one-row int32 label image."""
    return np.array([values], np.int32)


def _counts_text(counts: Sequence[int]) -> str:
    return "(" + ", ".join(f"{name}={value}" for name, value in zip(("tp", "fp", "fn"), counts)) + ")"


def check_match(match_counts: Callable[[np.ndarray, np.ndarray, float], Sequence[int]]) -> bool:
    """Check ``match_counts(gt, pred, threshold)``: true positives, false positives, false negatives.

    Compared with :func:`nucleitut.metrics.match_counts`: a ground-truth and a predicted object
    match when their intersection over union is strictly greater than ``threshold`` (thresholds
    here are 0.5 and above, those of the Kaggle score, where matches are unique). The result is
    ``(tp, fp, fn)``, any sequence of three integers. Cases: empty images, a missed nucleus, a
    spurious object, a perfect prediction with other ids, an IoU of exactly 0.5, a merge, and
    an IoU of 0.75 at the thresholds 0.7 and 0.75.

    Returns
    -------
    True, after printing one line, when every case agrees.
    """
    task = "match_counts"
    strict = "a pair matches only when its IoU is strictly greater than the threshold"
    iou = "IoU = |intersection| / |union| of the two objects, each object matched at most once"
    empty = np.zeros((3, 4), np.int32)
    cases = [
        _Case("no nuclei and no prediction", (empty, empty, 0.5), "nothing to find and nothing found: (0, 0, 0)"),
        _Case("a missed nucleus", (_row(0, 1, 1, 0), _row(0, 0, 0, 0), 0.5),
              "an unmatched nucleus is a false negative"),
        _Case("a spurious object", (_row(0, 0, 0, 0), _row(0, 3, 3, 0), 0.5),
              "an unmatched prediction is a false positive"),
        _Case("a perfect prediction with other ids", (_row(1, 1, 0, 2, 2), _row(7, 7, 0, 4, 4), 0.5),
              "ids do not matter, only which pixels an object covers"),
        _Case("an IoU of exactly 0.5 at threshold 0.5", (_row(1, 1, 1, 1, 0), _row(2, 2, 0, 0, 0), 0.5), strict),
        _Case("one prediction covering two nuclei", (_row(1, 1, 1, 1, 2, 2), _row(5, 5, 5, 5, 5, 5), 0.5), iou),
        _Case("an IoU of 0.75 at threshold 0.7", (_row(1, 1, 1, 1, 0), _row(2, 2, 2, 0, 0), 0.7), iou),
        _Case("an IoU of 0.75 at threshold 0.75", (_row(1, 1, 1, 1, 0), _row(2, 2, 2, 0, 0), 0.75), strict),
    ]
    for case in cases:
        expected = tuple(metrics.match_counts(*case.args))
        got = _call(task, match_counts, case, *case.args)
        try:
            got = tuple(int(v) for v in got)
        except (TypeError, ValueError):
            raise _fail(task, case, f"expected three integers (tp, fp, fn), got {got!r}", hint=False) from None
        if len(got) != 3:
            raise _fail(task, case, f"expected three integers (tp, fp, fn), got {len(got)} values {got}", hint=False)
        if got != expected:
            gt, pred, threshold = case.args
            n_gt, n_pred = len(np.unique(gt[gt != 0])), len(np.unique(pred[pred != 0]))
            problem = (
                f"got {_counts_text(got)}, expected {_counts_text(expected)} at IoU threshold {threshold} "
                f"(gt {gt.tolist()}, pred {pred.tolist()}: {n_gt} true and {n_pred} predicted objects, "
                f"so fp = {n_pred} - tp and fn = {n_gt} - tp)"
            )
            raise _fail(task, case, problem)
    return _passed(task, len(cases))
