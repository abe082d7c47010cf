"""Tests of nucleitut.postprocess on synthetic probability maps."""

import subprocess
import sys

import numpy as np
import pytest

from nucleitut.metrics import iou_matrix
from nucleitut.postprocess import (
    marker_watershed,
    threshold_labels,
    two_network_labels,
    watershed_labels,
)

SHAPE = (40, 48)
LEFT, RIGHT = (20, 15), (20, 33)  # centres 18 px apart, radius 10: the discs overlap by 2 px
MIDDLE_COLUMN = 24


def disc(centre, radius, shape=SHAPE):
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    return (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius**2


def three_class(obj, border):
    """Stack (background, object, border) from object and border probabilities."""
    obj = np.asarray(obj, dtype=np.float32)
    border = np.asarray(border, dtype=np.float32)
    return np.stack([1.0 - obj - border, obj, border], axis=-1)


def touching_discs(radius=10, border_half_width=1, border_prob=1.0, object_prob=1.0):
    """Union of two overlapping discs with a vertical predicted border where they meet."""
    union = disc(LEFT, radius) | disc(RIGHT, radius)
    cols = np.arange(SHAPE[1])[None, :]
    line = union & (np.abs(cols - MIDDLE_COLUMN) <= border_half_width)
    border = border_prob * line
    return union, three_class(object_prob * union * (1.0 - border), border)


def ground_truth_discs(radius=10):
    """Two touching discs, each pixel given to the nearer centre."""
    union = disc(LEFT, radius) | disc(RIGHT, radius)
    cols = np.arange(SHAPE[1])[None, :]
    return np.where(union, np.where(cols < MIDDLE_COLUMN, 1, 2), 0).astype(np.int32)


# ------------------------------------------------------------------------------------------
# threshold_labels
# ------------------------------------------------------------------------------------------


def test_threshold_labels_separates_objects_and_is_strict():
    prob = np.zeros((6, 8), dtype=np.float32)
    prob[1:3, 1:3] = 0.9
    prob[4:6, 5:8] = 0.7
    prob[0, 7] = 0.5  # exactly the threshold: background
    labels = threshold_labels(prob[..., None])
    assert labels.dtype == np.int32
    assert labels.max() == 2
    assert np.count_nonzero(labels == 1) == 4
    assert np.count_nonzero(labels == 2) == 6
    assert labels[0, 7] == 0


def test_threshold_labels_diagonal_neighbours_depend_on_connectivity():
    prob = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert threshold_labels(prob).tolist() == [[1, 0], [0, 2]]
    assert threshold_labels(prob, connectivity=2).tolist() == [[1, 0], [0, 1]]


def test_threshold_labels_fills_holes_and_drops_small_objects():
    prob = np.zeros((7, 9))
    prob[1:6, 1:6] = 1.0
    prob[3, 3] = 0.0  # hole in a 5x5 square
    prob[1, 8] = 1.0  # single-pixel speck
    assert np.count_nonzero(threshold_labels(prob) == 1) == 24
    filled = threshold_labels(prob, fill_holes=True, min_area=2)
    assert filled.max() == 1
    assert np.count_nonzero(filled == 1) == 25
    assert filled[1, 8] == 0


def test_threshold_labels_rejects_multichannel_input():
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        threshold_labels(np.zeros((4, 4, 2)))


# ------------------------------------------------------------------------------------------
# watershed_labels
# ------------------------------------------------------------------------------------------


def test_touching_discs_split_by_predicted_border():
    union, probs = touching_discs()
    labels = watershed_labels(probs)
    assert labels.dtype == np.int32
    assert labels.max() == 2
    assert labels[LEFT] != labels[RIGHT]
    # The mask (1 - background) includes the border, so every disc pixel gets a label.
    assert np.array_equal(labels > 0, union)
    iou, _, _ = iou_matrix(ground_truth_discs(), labels)
    assert np.all(iou.max(axis=1) > 0.9)


def test_touching_discs_merge_without_predicted_border():
    union, probs = touching_discs(border_prob=0.0)
    labels = watershed_labels(probs)
    assert labels.max() == 1
    assert np.array_equal(labels > 0, union)


def test_marker_threshold_decides_whether_a_weak_border_splits():
    # Object 0.45 and border 0.45 on the border line: marker map 0.45 * 0.55 = 0.2475 there and
    # 0.9 inside the discs.
    union = disc(LEFT, 10) | disc(RIGHT, 10)
    cols = np.arange(SHAPE[1])[None, :]
    line = union & (np.abs(cols - MIDDLE_COLUMN) <= 1)
    obj = np.where(line, 0.45, np.where(union, 0.9, 0.0))
    border = np.where(line, 0.45, 0.0)
    probs = three_class(obj, border)
    assert watershed_labels(probs, marker_threshold=0.6).max() == 2
    assert watershed_labels(probs, marker_threshold=0.2).max() == 1


def test_mask_threshold_decides_which_pixels_belong_to_objects():
    obj = np.zeros(SHAPE)
    obj[disc(LEFT, 10)] = 0.25  # 1 - background = 0.25 at the rim
    obj[disc(LEFT, 6)] = 0.9
    probs = three_class(obj, np.zeros(SHAPE))
    assert np.array_equal(watershed_labels(probs, mask_threshold=0.3) > 0, disc(LEFT, 6))
    assert np.array_equal(watershed_labels(probs, mask_threshold=0.2) > 0, disc(LEFT, 10))


def test_small_markers_are_ignored_with_min_marker_area():
    obj = np.where(disc(LEFT, 10), 0.5, 0.0)
    obj[disc(LEFT, 4)] = 0.9  # main marker, 49 px
    obj[12, 15] = 0.9  # a 1-px marker in the same nucleus
    probs = three_class(obj, np.zeros(SHAPE))
    assert watershed_labels(probs).max() == 2
    labels = watershed_labels(probs, min_marker_area=5)
    assert labels.max() == 1
    assert np.count_nonzero(labels) == np.count_nonzero(disc(LEFT, 10))


def test_mask_component_without_marker_becomes_its_own_object():
    obj = np.zeros(SHAPE)
    obj[disc(LEFT, 8)] = 0.9
    obj[disc(RIGHT, 5)] = 0.5  # above the mask threshold, below the marker threshold
    labels = watershed_labels(three_class(obj, np.zeros(SHAPE)))
    assert labels.max() == 2
    assert np.count_nonzero(labels == labels[RIGHT]) == np.count_nonzero(disc(RIGHT, 5))


def test_watershed_min_area_removes_small_objects_and_renumbers():
    obj = np.zeros(SHAPE)
    obj[2:4, 2:4] = 0.9  # 4 px
    obj[disc(RIGHT, 6)] = 0.9
    labels = watershed_labels(three_class(obj, np.zeros(SHAPE)), min_area=5)
    assert labels.max() == 1
    assert labels[2, 2] == 0
    assert labels[RIGHT] == 1


def test_watershed_labels_rejects_wrong_channel_count():
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        watershed_labels(np.zeros((8, 8, 2)))


def test_marker_watershed_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="share a shape"):
        marker_watershed(np.zeros((4, 4)), np.zeros((4, 4), int), np.zeros((4, 5), bool))


# ------------------------------------------------------------------------------------------
# two_network_labels
# ------------------------------------------------------------------------------------------


def test_two_network_mask_restores_full_size_from_eroded_markers():
    # Network M: eroded objects (radius 5) and a wide, dilated border between the nuclei.
    union = disc(LEFT, 10) | disc(RIGHT, 10)
    cols = np.arange(SHAPE[1])[None, :]
    wide_border = union & (np.abs(cols - MIDDLE_COLUMN) <= 3)
    eroded = disc(LEFT, 5) | disc(RIGHT, 5)
    marker_probs = three_class(0.95 * eroded, 0.9 * wide_border)
    # Network B: the full foreground.
    mask_prob = np.where(union, 0.8, 0.05)[..., None]

    labels = two_network_labels(marker_probs, mask_prob)
    assert labels.max() == 2
    assert np.array_equal(labels > 0, union)
    assert np.count_nonzero(labels == labels[LEFT]) > 3 * np.count_nonzero(disc(LEFT, 5))
    iou, _, _ = iou_matrix(ground_truth_discs(), labels)
    assert np.all(iou.max(axis=1) > 0.9)
    # The markers alone (as watershed_labels sees M) give only the small eroded objects.
    assert np.count_nonzero(watershed_labels(marker_probs)) < 0.5 * np.count_nonzero(union)


def test_two_network_labels_rejects_mismatched_sizes():
    _, probs = touching_discs()
    with pytest.raises(ValueError, match="same"):
        two_network_labels(probs, np.zeros((10, 10)))


@pytest.mark.slow
def test_postprocess_imports_neither_keras_nor_the_data_module():
    code = (
        "import sys, nucleitut.postprocess, nucleitut.metrics, nucleitut.classical\n"
        "print(sorted(m for m in ('keras', 'tensorflow', 'jax', 'nucleitut.data', 'nucleitut.predict') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
