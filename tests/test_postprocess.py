"""Tests of nucleitut.postprocess on synthetic probability maps."""

import subprocess
import sys

import numpy as np
import pytest

from nucleitut.metrics import iou_matrix
from nucleitut.postprocess import (
    DEFAULT_TTA,
    DIHEDRAL_TRANSFORMS,
    apply_transform,
    combine_predictions,
    ensemble_predict,
    invert_transform,
    marker_watershed,
    predict_image,
    threshold_labels,
    tta_predict,
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


# ------------------------------------------------------------------------------------------
# Test-time augmentation
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DIHEDRAL_TRANSFORMS))
def test_every_transform_is_exactly_inverted_on_a_non_square_array(name):
    x = np.random.default_rng(1).random((5, 7, 3))
    y = apply_transform(x, name)
    expected_shape = (5, 7, 3) if name in ("identity", "flip_ud", "flip_lr", "rot180") else (7, 5, 3)
    assert y.shape == expected_shape
    assert y.flags.c_contiguous
    assert np.array_equal(invert_transform(y, name), x)


def test_the_eight_transforms_are_distinct_symmetries():
    x = np.arange(12).reshape(3, 4)
    images = {name: apply_transform(x, name) for name in DIHEDRAL_TRANSFORMS}
    keys = {(im.shape, im.tobytes()) for im in images.values()}
    assert len(keys) == 8
    assert apply_transform(x, "rot90")[0].tolist() == [3, 7, 11]  # counter-clockwise
    assert apply_transform(x, "antitranspose")[0].tolist() == [11, 7, 3]  # out[i, j] = x[H-1-j, W-1-i]


def test_unknown_transform_name_raises():
    with pytest.raises(ValueError, match="unknown transform"):
        apply_transform(np.zeros((2, 2)), "rot45")


def per_pixel_net(image):
    """Orientation-independent predict_fn: each pixel's output depends on that pixel only.

    Only +, - and * are used: they round identically whatever the memory layout, whereas a
    matrix product or a vectorised exp may round differently on transposed arrays.
    """
    a, b = image[..., 0], image[..., 1]
    obj = a * (1 - b)
    border = 0.5 * b * b
    return np.stack([1 - obj - border, obj, border], axis=-1)


@pytest.mark.parametrize("transforms", [DEFAULT_TTA, tuple(DIHEDRAL_TRANSFORMS)])
def test_tta_of_equivariant_predict_fn_equals_plain_prediction(transforms):
    image = np.random.default_rng(2).random((9, 13, 2), dtype=np.float32)
    plain = per_pixel_net(image)
    # Every aligned prediction is identical, so both the mean and the max return it unchanged.
    assert np.array_equal(tta_predict(per_pixel_net, image, transforms), plain)


def test_tta_of_symmetric_filter_equals_plain_prediction():
    from scipy import ndimage

    def smooth_net(image):
        blurred = ndimage.uniform_filter(image[..., 0], size=3, mode="reflect")
        return np.stack([1 - blurred, 0.6 * blurred, 0.4 * blurred], axis=-1)

    image = np.random.default_rng(4).random((11, 8, 1), dtype=np.float32)
    np.testing.assert_allclose(tta_predict(smooth_net, image), smooth_net(image), atol=1e-6)


def top_row_border_net(image):
    """Not equivariant: always predicts a border on the first row of whatever it is given."""
    height, width = image.shape[:2]
    out = np.zeros((height, width, 3), dtype=np.float32)
    out[..., 0] = 0.5
    out[..., 1] = 0.5
    out[0, :, :] = [0.0, 0.0, 1.0]
    return out


def test_tta_takes_max_of_border_and_mean_of_other_channels():
    image = np.zeros((6, 8, 1), dtype=np.float32)
    # Undoing each transform moves the net's top-row border: identity and flip_lr -> top row,
    # flip_ud -> bottom row, rot90 -> right column.
    top, bottom, right = (np.zeros((6, 8), bool) for _ in range(3))
    top[0], bottom[-1], right[:, -1] = True, True, True
    border_votes = 2 * top.astype(int) + bottom + right  # of 4 predictions

    fused = tta_predict(top_row_border_net, image)
    assert np.array_equal(fused[..., 2], (border_votes > 0).astype(np.float32))
    np.testing.assert_allclose(fused[..., 1], 0.5 * (4 - border_votes) / 4)
    np.testing.assert_allclose(fused[..., 0], 0.5 * (4 - border_votes) / 4)
    # A mean would have kept only a quarter of the bottom border.
    averaged = tta_predict(top_row_border_net, image, border_channel=None)
    assert averaged[-1, 3, 2] == pytest.approx(0.25)
    assert fused[-1, 3, 2] == 1.0


def test_tta_rejects_predict_fn_that_changes_size():
    with pytest.raises(ValueError, match="spatial size"):
        tta_predict(lambda im: im[:-1], np.zeros((4, 4, 1), np.float32))


def constant_net(values):
    def predict(image):
        return np.broadcast_to(np.asarray(values, np.float32), image.shape[:2] + (3,)).copy()

    return predict


def test_ensemble_averages_objects_and_keeps_strongest_border():
    image = np.zeros((3, 5, 1), dtype=np.float32)
    nets = [
        constant_net([0.5, 0.25, 0.25]),
        constant_net([0.25, 0.25, 0.5]),
        constant_net([0.0, 1.0, 0.0]),
    ]
    fused = ensemble_predict(nets, image)
    assert fused.shape == (3, 5, 3)
    assert np.array_equal(fused[1, 2], np.array([0.25, 0.5, 0.5], np.float32))
    # With TTA every net contributes four identical predictions: same fused values.
    assert np.array_equal(ensemble_predict(nets, image, DEFAULT_TTA), fused)


def test_ensemble_with_tta_combines_networks_and_transforms():
    image = np.zeros((6, 8, 1), dtype=np.float32)
    nets = [top_row_border_net, constant_net([0.5, 0.5, 0.0])]
    fused = ensemble_predict(nets, image, ("identity", "flip_ud"))
    assert fused[0, 3, 2] == 1.0 and fused[-1, 3, 2] == 1.0 and fused[3, 3, 2] == 0.0
    assert fused[0, 3, 1] == pytest.approx(0.25 * (0.0 + 0.5 + 0.5 + 0.5))


def test_combine_predictions_averages_all_channels_for_non_three_class_outputs():
    a = np.full((2, 2, 2), 0.2, np.float32)
    b = np.full((2, 2, 2), 0.6, np.float32)
    np.testing.assert_allclose(combine_predictions([a, b]), 0.4)
    with pytest.raises(ValueError, match="share a shape"):
        combine_predictions([a, b[:1]])


# ------------------------------------------------------------------------------------------
# Whole-image prediction
# ------------------------------------------------------------------------------------------


def _require_predict_tiled():
    from nucleitut import data

    if not hasattr(data, "predict_tiled"):
        pytest.skip("nucleitut.data.predict_tiled is not written yet")


def per_pixel_batch(batch):
    assert batch.dtype == np.float32 and batch.ndim == 4
    return np.concatenate([batch[..., :1] * 2.0, batch[..., 1:] - batch[..., :1]], axis=-1)


def test_predict_image_tiles_any_size_like_a_single_pass():
    _require_predict_tiled()
    image = np.random.default_rng(5).random((37, 53, 2), dtype=np.float32)
    result = predict_image(per_pixel_batch, image, tile_size=32, overlap=8, multiple=16, batch_size=3)
    assert result.shape == (37, 53, 2)
    np.testing.assert_allclose(result, per_pixel_batch(image[None])[0], atol=1e-6)


def test_predict_image_calls_keras_models_with_fixed_size_batches():
    _require_predict_tiled()

    class FakeModel:
        def __init__(self):
            self.batch_shapes = []

        def predict_on_batch(self, batch):
            self.batch_shapes.append(batch.shape)
            return per_pixel_batch(batch)

    model = FakeModel()
    image = np.random.default_rng(6).random((20, 24), dtype=np.float32)
    result = predict_image(model, image, tile_size=16, overlap=4, batch_size=8, pad_batches=True)
    assert result.shape == (20, 24, 1)
    np.testing.assert_allclose(result[..., 0], 2 * image, atol=1e-6)
    # 4 tiles, padded to one batch of 8 so a compiled forward pass is reused
    assert model.batch_shapes == [(8, 16, 16, 1)]
    unpadded = predict_image(model, image, tile_size=16, overlap=4, batch_size=8, pad_batches=False)
    np.testing.assert_array_equal(unpadded, result)
    assert model.batch_shapes[-1] == (4, 16, 16, 1)


def test_predict_image_rejects_non_callable():
    with pytest.raises(TypeError, match="Keras model or a callable"):
        predict_image(42, np.zeros((16, 16, 1), np.float32))


def test_postprocess_import_does_not_load_keras_or_tensorflow():
    code = (
        "import sys, nucleitut.postprocess, nucleitut.metrics, nucleitut.classical\n"
        "print(sorted(m for m in ('keras', 'tensorflow', 'jax') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
