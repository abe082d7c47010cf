"""The benchmarks' own image making (benchmarks/bench_segment.py)."""

import numpy as np
import pytest
from scipy import ndimage

from benchmarks.bench_segment import rescaled


@pytest.mark.parametrize("shape", [(8, 10), (9, 7), (31, 44)])
def test_registered_halving_takes_the_image_at_the_pixels_the_labels_come_from(shape):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, shape + (3,)).astype(np.uint8)
    where = np.arange(shape[0] * shape[1]).reshape(shape)  # each label names its own pixel
    half, labels = rescaled(image, where, 0.5, registered=True)
    assert half.shape[:2] == labels.shape
    sigma = [max(0.0, (n / m - 1) / 2) for n, m in zip(shape, labels.shape)] + [0.0]
    smooth = ndimage.gaussian_filter(image.astype(np.float64), sigma, mode="mirror")
    rows, cols = np.divmod(labels, shape[1])
    np.testing.assert_array_equal(half, np.clip(np.round(smooth[rows, cols]), 0, 255).astype(np.uint8))
    centred, same_labels = rescaled(image, where, 0.5)
    np.testing.assert_array_equal(same_labels, labels)  # only the image changes
    assert np.abs(centred.astype(int) - half).mean() > 1


def test_even_halving_keeps_the_lower_right_pixel_of_every_block():
    # why registration is needed: skimage breaks the 2x2 tie towards the lower right
    where = np.arange(16).reshape(4, 4)
    _, labels = rescaled(np.zeros((4, 4, 3), np.uint8), where, 0.5)
    np.testing.assert_array_equal(labels, [[5, 7], [13, 15]])


def test_registration_leaves_enlarged_images_alone():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (12, 9, 3)).astype(np.uint8)
    labels = rng.integers(0, 4, (12, 9))
    for a, b in zip(rescaled(image, labels, 2.0, registered=True), rescaled(image, labels, 2.0)):
        np.testing.assert_array_equal(a, b)
