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


def test_robustness_perturbations_keep_the_labels_and_summaries_pair_images():
    from benchmarks.bench_robustness import PERTURBATIONS, summarise

    rng = np.random.default_rng(0)
    image = np.zeros((40, 50, 3), np.uint8)
    image[10:20, 10:30] = (200, 120, 160)  # a colour nucleus: every perturbation applies
    labels = np.zeros((40, 50), np.int32)
    labels[10:20, 10:30] = 1
    for name, (perturb, _, why) in PERTURBATIONS.items():
        out, truth = perturb(image, labels, rng)
        assert why and out.dtype in (np.uint8, np.uint16), name
        if name == "enlarged_dim":
            assert out.shape[:2] == truth.shape == (80, 100) and truth.max() == 1
        else:
            assert out.shape[:2] == image.shape[:2] and truth is labels, name
        assert not np.array_equal(out[..., :3] if out.ndim == 3 else out, image[..., 0] if out.ndim == 2 else image), name
    rows = [{"id": "a", "score": 0.2, "seconds": 3.0, "scale": 1.0, "diameter": 10.0, "true_diameter": 12.5},
            {"id": "b", "score": 0.6, "seconds": 1.0, "scale": 2.0, "diameter": None, "true_diameter": 9.0}]
    native = {"a": {"score": 0.5, "seconds": 1.0}, "b": {"score": 0.7, "seconds": 1.0}}
    summary = summarise(rows, native)
    assert summary["mean"] == pytest.approx(0.4) and summary["drop"] == pytest.approx(0.2)
    assert summary["max_time_ratio"] == 3.0 and summary["n_rescaled"] == 1
    assert summary["size_ratio_median"] == pytest.approx(0.8) and summary["n_size_estimated"] == 1
    assert "max_time_ratio_per_pixel" not in summary  # rows without pixel counts (older records)
    for row, pixels in zip(rows, (400, 100)):
        row["pixels"] = pixels
    native["a"]["pixels"] = native["b"]["pixels"] = 100
    # a: 3x the time for 4x the pixels (0.75 per pixel); b: 1x the time, same pixels
    assert summarise(rows, native)["max_time_ratio_per_pixel"] == pytest.approx(1.0)
    # against each image at its own size (size=False): b took 1 s there and 1 s here, a 1 s for
    # 100 pixels there and 3 s for 400 here (0.75 per pixel)
    own = {"a": {"seconds": 1.0, "pixels": 100}, "b": {"seconds": 0.5, "pixels": 100}}
    assert summarise(rows, native, own)["max_time_ratio_own_size"] == pytest.approx(2.0)
    assert "max_time_ratio_own_size" not in summarise(rows, native)
