import numpy as np
import pytest
from scipy import ndimage as ndi

from nucleitut.targets import (
    TARGET_CHANNELS,
    binary_target,
    border_target,
    boundary_target,
    make_target,
    marker_target,
    weight_map,
)


def two_touching_squares():
    """Two 5 x 5 squares meeting between columns 6 and 7."""
    labels = np.zeros((10, 14), dtype=np.int32)
    labels[2:7, 2:7] = 1
    labels[2:7, 7:12] = 2
    return labels


def isolated_disc():
    yy, xx = np.mgrid[:21, :21]
    return ((yy - 10) ** 2 + (xx - 10) ** 2 <= 36).astype(np.int32) * 5


def square(size=11, margin=2, label=3):
    labels = np.zeros((size + 2 * margin,) * 2, dtype=np.int32)
    labels[margin:-margin, margin:-margin] = label
    return labels


def coordinates(mask):
    return sorted(map(tuple, np.argwhere(mask).tolist()))


# --------------------------------------------------------------------------- border


def test_border_of_touching_squares_lies_only_where_they_touch():
    border = border_target(two_touching_squares(), neighbourhood=3, dilation=0)[..., 2]
    # Both contact columns of the squares plus the background pixel above and below them.
    expected = [(row, col) for row in range(1, 8) for col in (6, 7)]
    assert coordinates(border) == expected


def test_border_dilation_grows_into_the_squares_only():
    border = border_target(two_touching_squares(), neighbourhood=3, dilation=1)[..., 2]
    expected = [(row, col) for row in range(1, 8) for col in (6, 7)]
    expected += [(row, col) for row in range(2, 7) for col in (5, 8)]
    assert coordinates(border) == sorted(expected)


def test_border_pixels_are_not_object_pixels():
    labels = two_touching_squares()
    target = border_target(labels)
    assert target[4, 6, 1] == 0 and target[4, 6, 2] == 1
    # Object = labelled pixels minus border: 2 * 25 pixels minus 4 border columns of 5.
    assert target[..., 1].sum() == 50 - 20


def test_isolated_disc_has_no_border():
    labels = isolated_disc()
    target = border_target(labels, neighbourhood=5, dilation=2)
    assert target[..., 2].sum() == 0
    np.testing.assert_array_equal(target[..., 1], labels > 0)


def test_border_ignores_background_between_distant_nuclei():
    labels = np.zeros((7, 12), dtype=np.int32)
    labels[2:5, 1:4] = 1
    labels[2:5, 6:9] = 2  # two background columns apart: outside a 3 x 3 window
    assert border_target(labels, neighbourhood=3)[..., 2].sum() == 0
    # A 5 x 5 window bridges the gap: the two gap columns become border.
    gap = border_target(labels, neighbourhood=5, dilation=0)[..., 2]
    assert gap[3, 4] == 1 and gap[3, 5] == 1


def test_border_neighbourhood_must_be_odd():
    with pytest.raises(ValueError, match="odd"):
        border_target(two_touching_squares(), neighbourhood=4)


# --------------------------------------------------------------------------- boundary


def test_boundary_target_outlines_an_isolated_disc():
    labels = isolated_disc()
    target = boundary_target(labels)
    boundary = target[..., 2].astype(bool)
    # The inner outline: disc pixels with a 4-neighbour outside the disc.
    disc = labels > 0
    expected = disc & ~ndi.binary_erosion(disc)
    np.testing.assert_array_equal(boundary, expected)
    assert boundary.sum() > 0
    np.testing.assert_array_equal(target[..., 1].astype(bool), disc & ~expected)


def test_boundary_width_two_leaves_a_seven_by_seven_interior():
    target = boundary_target(square(11), width=2)
    interior = target[..., 1].astype(bool)
    rows, cols = np.nonzero(interior)
    assert interior.sum() == 49
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (4, 10, 4, 10)
    assert target[..., 2].sum() == 121 - 49


def test_boundary_marks_both_sides_of_a_contact():
    target = boundary_target(two_touching_squares())
    assert target[4, 6, 2] == 1 and target[4, 7, 2] == 1
    assert target[4, 4, 1] == 1 and target[4, 9, 1] == 1


# --------------------------------------------------------------------------- marker


def test_marker_erodes_an_eleven_pixel_square_to_seven():
    target = marker_target(square(11), erosion=2)
    markers = target[..., 1].astype(bool)
    rows, cols = np.nonzero(markers)
    assert markers.sum() == 49
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (4, 10, 4, 10)
    assert target[..., 2].sum() == 0


def test_marker_erosion_size_is_a_parameter():
    markers = marker_target(square(11), erosion=4)[..., 1]
    assert markers.sum() == 9  # 11 - 2 * 4 = 3


def test_marker_keeps_the_centre_of_a_nucleus_too_small_to_erode():
    labels = np.zeros((9, 9), dtype=np.int32)
    labels[3:6, 3:6] = 1  # a 3 x 3 square vanishes under disk(2)
    markers = marker_target(labels, erosion=2)[..., 1]
    assert coordinates(markers) == [(4, 4)]


def test_marker_keeps_touching_nuclei_apart_with_a_dilated_border():
    labels = two_touching_squares()
    target = marker_target(labels, erosion=1, border_dilation=2)
    markers, border = target[..., 1].astype(bool), target[..., 2].astype(bool)
    # border_dilation=2 reaches columns 4..9 of the squares; erosion=1 leaves rows 3..5.
    assert border[4, 4] and border[4, 9] and not border[4, 3]
    assert coordinates(markers) == [(row, col) for row in range(3, 6) for col in (3, 10)]
    assert ndi.label(markers)[1] == 2


def test_marker_does_not_erode_from_the_image_edge():
    labels = np.zeros((8, 8), dtype=np.int32)
    labels[:, :5] = 1  # cut by the top, bottom and left edges
    markers = marker_target(labels, erosion=1)[..., 1]
    # Only the right side (column 4) is eroded.
    np.testing.assert_array_equal(np.nonzero(markers.any(axis=0))[0], [0, 1, 2, 3])
    assert markers.sum() == 8 * 4


# --------------------------------------------------------------------------- one-hot


@pytest.mark.parametrize("kind", ["boundary", "border", "marker"])
def test_three_class_targets_are_one_hot(kind):
    labels = two_touching_squares()
    labels[8:10, 0:3] = 7  # a nucleus cut by the image edge
    target = make_target(labels, kind)
    assert target.shape == (10, 14, 3) and target.dtype == np.float32
    np.testing.assert_array_equal(target.sum(axis=-1), np.ones((10, 14), dtype=np.float32))
    assert np.unique(target).tolist() == [0.0, 1.0]
    assert TARGET_CHANNELS[kind] == 3


def test_binary_target_is_one_channel_foreground():
    labels = two_touching_squares()
    target = make_target(labels, "binary")
    assert target.shape == (10, 14, 1) and target.dtype == np.float32
    assert target.sum() == 50
    np.testing.assert_array_equal(binary_target(labels)[..., 0], labels > 0)
    assert TARGET_CHANNELS["binary"] == 1


def test_make_target_passes_parameters_and_rejects_unknown_kinds():
    np.testing.assert_array_equal(
        make_target(square(11), "marker", erosion=4), marker_target(square(11), erosion=4)
    )
    with pytest.raises(ValueError, match="unknown target kind 'contour'"):
        make_target(square(11), "contour")


# --------------------------------------------------------------------------- weight map


def test_weight_map_is_largest_in_the_gap_between_two_close_nuclei():
    labels = np.zeros((20, 24), dtype=np.int32)
    labels[5:15, 3:11] = 1
    labels[5:15, 13:21] = 2  # a two-pixel gap: columns 11 and 12
    weights = weight_map(labels, w0=10.0, sigma=5.0)
    assert weights.shape == labels.shape and weights.dtype == np.float32
    row, col = np.unravel_index(np.argmax(weights), weights.shape)
    assert 5 <= row < 15 and col in (11, 12)
    # In the gap d1 = 1 and d2 = 2.
    n, n_fg = labels.size, 160
    expected = n / (2 * (n - n_fg)) + 10.0 * np.exp(-(3.0**2) / (2 * 5.0**2))
    assert weights[10, 11] == pytest.approx(expected, rel=1e-6)


def test_weight_map_of_an_isolated_nucleus_is_the_class_balance():
    labels = square(11)
    weights = weight_map(labels)
    n, n_fg = labels.size, 121
    np.testing.assert_allclose(weights[labels > 0], n / (2 * n_fg), rtol=1e-6)
    np.testing.assert_allclose(weights[labels == 0], n / (2 * (n - n_fg)), rtol=1e-6)


def test_weight_map_matches_full_image_distance_transforms():
    rng = np.random.default_rng(0)
    labels = np.zeros((64, 64), dtype=np.int32)
    for index in range(1, 9):
        row, col = rng.integers(0, 58, size=2)
        labels[row : row + 6, col : col + 6] = index
    w0, sigma = 10.0, 5.0
    ids = [i for i in np.unique(labels) if i > 0]
    distances = np.sort(np.stack([ndi.distance_transform_edt(labels != i) for i in ids]), axis=0)
    foreground = labels > 0
    n, n_fg = labels.size, foreground.sum()
    expected = np.where(foreground, n / (2 * n_fg), n / (2 * (n - n_fg)))
    expected += np.where(
        foreground, 0, w0 * np.exp(-((distances[0] + distances[1]) ** 2) / (2 * sigma**2))
    )
    np.testing.assert_allclose(weight_map(labels, w0, sigma), expected, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("function", [binary_target, boundary_target, border_target,
                                      marker_target, weight_map])
def test_float_labels_are_rejected(function):
    with pytest.raises(TypeError, match="integer instance label image"):
        function(np.zeros((8, 8), dtype=np.float32))


@pytest.mark.parametrize("function", [binary_target, boundary_target, border_target,
                                      marker_target, weight_map])
def test_three_dimensional_labels_are_rejected(function):
    with pytest.raises(ValueError, match=r"2-D \(H, W\)"):
        function(np.zeros((8, 8, 3), dtype=np.int32))


def test_boolean_masks_and_negative_labels_are_rejected():
    with pytest.raises(TypeError, match="skimage.measure.label"):
        border_target(np.zeros((8, 8), dtype=bool))
    with pytest.raises(ValueError, match="non-negative"):
        border_target(-np.ones((8, 8), dtype=np.int32))
