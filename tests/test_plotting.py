"""Tests of nucleitut.plotting: label colours, overlays and the error image."""

import numpy as np
import pytest

from nucleitut import plotting


def test_each_label_keeps_its_colour_whatever_the_number_of_labels():
    few, many = plotting.label_colours(3), plotting.label_colours(50)
    assert few.shape == (3, 3) and np.array_equal(few, many[:3])
    assert ((many >= 0) & (many <= 1)).all()
    assert min(np.abs(a - b).max() for a, b in zip(many, many[1:])) > 0.05  # neighbouring ids differ
    labels = np.array([[0, 1], [2, 2]])
    coloured = plotting.colour_labels(labels, background=(0.5, 0.5, 0.5))
    assert coloured.shape == (2, 2, 3)
    assert np.array_equal(coloured[0, 0], [0.5, 0.5, 0.5])
    assert np.array_equal(coloured[0, 1], few[0]) and np.array_equal(coloured[1, 1], few[1])
    assert plotting.colour_labels(np.zeros((2, 2), int)).max() == 0  # no labels: background only


def test_overlay_blends_objects_into_the_image_and_outlines_them():
    image = np.full((20, 20), 100, np.uint8)
    labels = np.zeros((20, 20), int)
    labels[5:15, 5:15] = 1
    out = plotting.overlay(image, labels, alpha=0.4)
    assert out.shape == (20, 20, 3) and out.dtype == np.float64 and 0 <= out.min() and out.max() <= 1
    assert np.allclose(out[0, 0], 100 / 255)  # background: the image (grey made RGB, scaled to 0..1)
    colour = plotting.label_colours(1)[0]
    assert np.allclose(out[10, 10], 0.6 * 100 / 255 + 0.4 * colour)  # inside: blended
    assert np.array_equal(out[5, 10], [1.0, 1.0, 0.0]) and np.array_equal(out[4, 10], out[0, 0])  # outline inside the object
    plain = plotting.overlay(image, labels, alpha=0.4, outline=None)
    assert np.allclose(plain[5, 10], plain[10, 10])
    # a float image in 0..1 is taken as it is
    assert np.allclose(plotting.overlay(np.full((20, 20, 3), 0.2), labels)[0, 0], 0.2)


def test_error_image_colours_matched_missed_and_spurious_objects():
    truth = np.zeros((20, 30), np.int32)
    truth[2:8, 2:8] = 1  # found
    truth[12:18, 2:8] = 2  # missed
    prediction = np.zeros_like(truth)
    prediction[2:8, 2:9] = 5  # IoU 36/42 with nucleus 1
    prediction[10:16, 20:26] = 7  # nothing there
    out = plotting.error_image(truth, prediction)
    colours = plotting.ERROR_COLOURS
    assert np.array_equal(out[4, 4], colours["matched"]) and np.array_equal(out[4, 8], colours["matched"])
    assert np.array_equal(out[15, 5], colours["missed"])
    assert np.array_equal(out[12, 22], colours["spurious"])
    assert np.array_equal(out[0, 0], [0, 0, 0])
    # at a stricter IoU threshold the same prediction misses nucleus 1 and is spurious itself
    strict = plotting.error_image(truth, prediction, threshold=0.9)
    assert np.array_equal(strict[4, 4], colours["missed"]) and np.array_equal(strict[4, 8], colours["spurious"])


@pytest.mark.parametrize("centre", [(0, 0), (50, 25), (99, 49)])
def test_windows_lie_inside_the_image(centre):
    rows, cols = plotting.window((100, 50), centre, size=40)
    assert (rows.stop - rows.start, cols.stop - cols.start) == (40, 40)
    assert 0 <= rows.start and rows.stop <= 100 and 0 <= cols.start and cols.stop <= 50
    assert rows.start <= centre[0] < rows.stop and cols.start <= centre[1] < cols.stop
