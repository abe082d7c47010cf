"""Tests of the classical (CellProfiler-style) reference segmentation."""

import numpy as np
import pytest

from nucleitut.classical import segment, to_gray
from nucleitut.metrics import iou_matrix, kaggle_score

SHAPE = (48, 64)
LEFT, RIGHT = (24, 22), (24, 40)  # radius 10, 18 px apart: the discs overlap by 2 px


def two_touching_discs():
    rows, cols = np.ogrid[: SHAPE[0], : SHAPE[1]]
    left = (rows - LEFT[0]) ** 2 + (cols - LEFT[1]) ** 2 <= 100
    right = (rows - RIGHT[0]) ** 2 + (cols - RIGHT[1]) ** 2 <= 100
    # Ground truth: the overlap goes to the nearer centre.
    gt = np.where(left | right, np.where(cols < 31, 1, 2), 0).astype(np.int32)
    return left | right, gt


def fluorescence_image(seed=0):
    """Bright nuclei on a dark background with some noise, as uint8 RGB."""
    union, _ = two_touching_discs()
    noise = np.random.default_rng(seed).normal(0, 8, SHAPE)
    gray = np.clip(np.where(union, 180, 30) + noise, 0, 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=-1)


def test_two_touching_bright_discs_are_two_objects():
    _, gt = two_touching_discs()
    labels = segment(fluorescence_image())
    assert labels.dtype == np.int32
    assert labels.max() == 2
    assert labels[LEFT] != labels[RIGHT] and labels[LEFT] > 0 and labels[RIGHT] > 0
    iou, _, _ = iou_matrix(gt, labels)
    assert np.all(iou.max(axis=1) > 0.8)


def test_dark_discs_on_bright_background_are_inverted_and_found():
    _, gt = two_touching_discs()
    brightfield = 255 - fluorescence_image(seed=1)
    labels = segment(brightfield)
    assert labels.max() == 2
    assert labels[LEFT] != labels[RIGHT]
    assert kaggle_score(gt, labels) > 0.5


def test_rgba_and_gray_inputs_give_the_same_labels():
    rgb = fluorescence_image(seed=2)
    rgba = np.concatenate([rgb, np.full(SHAPE + (1,), 255, np.uint8)], axis=-1)
    assert np.array_equal(segment(rgba), segment(rgb[..., 0]))


def test_small_specks_are_removed_by_min_area():
    image = fluorescence_image(seed=3)
    image[2:5, 2:5] = 200  # 9-px speck far from the nuclei
    assert segment(image, min_area=20).max() == 2
    assert segment(image, min_area=5).max() == 3


def test_flat_image_has_no_objects():
    labels = segment(np.full(SHAPE, 90, np.uint8))
    assert labels.shape == SHAPE and labels.max() == 0


def test_to_gray_scales_uint8_to_unit_interval_and_rejects_bad_shapes():
    gray = to_gray(np.array([[0, 255]], dtype=np.uint8))
    assert gray.tolist() == [[0.0, 1.0]]
    with pytest.raises(ValueError, match="shape"):
        to_gray(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(TypeError, match="dtype"):
        to_gray(np.zeros((4, 4), bool))
