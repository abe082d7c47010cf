"""nucleitut.sizing: the typical nucleus diameter, the size estimate's probes and rescaling."""

import numpy as np
import pytest

from nucleitut import sizing

from test_pipeline import BrightnessNetwork, brightness_pipeline, discs_image


def recording(foreground):
    """``foreground`` that also records the shapes of the images it is given."""
    shapes = []

    def record(image):
        shapes.append(image.shape[:2])
        return foreground(image)

    return record, shapes


# --------------------------------------------------------------------------------------
# Typical diameter
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("diameter", [9, 21, 41])
def test_typical_diameter_of_discs_is_their_diameter(diameter):
    image, _ = discs_image(diameter)
    assert sizing.typical_diameter(image > 100) == pytest.approx(diameter, abs=1)


def test_typical_diameter_of_touching_discs_is_one_disc():
    image, _ = discs_image(31, shape=(62, 256), spacing=28)  # a chain of overlapping discs: one object
    assert sizing.typical_diameter(image > 100) == pytest.approx(31, abs=1.5)


# --------------------------------------------------------------------------------------
# The estimate
# --------------------------------------------------------------------------------------


class FragmentingNetwork(BrightnessNetwork):
    """Like :class:`BrightnessNetwork`, but objects wider than 30 px in its input come out cut
    into 10-px pieces: the failure of a real network on nuclei far larger than in training."""

    def predict_on_batch(self, batch):
        from scipy import ndimage as ndi

        out = super().predict_on_batch(batch)
        for tile in out[..., 0]:
            objects, n = ndi.label(tile > 0.5)
            if n == 0:
                continue
            widths = 2 * np.asarray(ndi.maximum(ndi.distance_transform_edt(tile > 0.5), objects, np.arange(1, n + 1)))
            large = np.isin(objects, 1 + np.flatnonzero(widths > 30))
            grid = np.zeros(tile.shape, bool)
            grid[::10, :] = grid[:, ::10] = True
            tile[large & grid] = 0.0
        return out


def test_size_estimate_lets_shrunk_probes_outvote_fragmented_native_probe():
    image, _ = discs_image(45, shape=(360, 400))
    rgb = np.dstack([image] * 3)
    pipe = brightness_pipeline(FragmentingNetwork())
    target = pipe.training_diameter
    native_only = sizing.typical_diameter(pipe.foreground(rgb)[0])
    assert native_only < 12  # the native probe alone sees the 10-px pieces
    foreground, shapes = recording(pipe.foreground)
    estimate = sizing.estimate_diameter(rgb, foreground, target)
    assert isinstance(estimate, sizing.SizeEstimate)
    # the two shrunk probes decide; their blurred edges lose a pixel or so: within 15 %
    halfway = np.sqrt(sizing.TRAINING_SIZE_BAND[1] * target)
    assert estimate.diameter == pytest.approx(45, rel=0.15) and estimate.scale == pytest.approx(halfway / 45, rel=0.15)
    # the probes (1, 1/2, 1/4), then the second pass at the scale they suggest
    second = tuple(round(n * target / estimate.diameter) for n in (360, 400))
    assert shapes[:3] == [(360, 400), (180, 200), (90, 100)] and len(shapes) == 4
    assert shapes[3] == pytest.approx(second, abs=3)
    # the native probe's network output comes back for the segmentation to reuse
    assert list(estimate.native_outputs) == ["B1"]
    assert np.array_equal(estimate.native_outputs["B1"], pipe.foreground(rgb)[1]["B1"])


def test_size_estimate_of_small_nuclei_uses_the_native_probe():
    image, _ = discs_image(9, shape=(256, 256))
    rgb = np.dstack([image] * 3)
    pipe = brightness_pipeline()
    # halved and quartered, 9-px discs are under MIN_PROBE_DIAMETER: only the native probe counts
    assert sizing.typical_diameter(pipe.foreground(sizing.rescale_image(rgb, 0.5))[0]) < sizing.MIN_PROBE_DIAMETER
    estimate = sizing.estimate_diameter(rgb, pipe.foreground, pipe.training_diameter)
    assert estimate.diameter == pytest.approx(9, abs=1)
    # below the band: halfway from its lower end to the training median
    halfway = np.sqrt(sizing.TRAINING_SIZE_BAND[0] * pipe.training_diameter)
    assert estimate.scale == pytest.approx(halfway / estimate.diameter)


def test_size_estimate_within_the_band_keeps_the_scale_and_without_nuclei_says_so():
    image, _ = discs_image(16)
    rgb = np.dstack([image] * 3)
    pipe = brightness_pipeline()
    estimate = sizing.estimate_diameter(rgb, pipe.foreground, pipe.training_diameter)
    assert estimate.diameter == pytest.approx(16, abs=1) and estimate.scale == 1.0
    # a narrower band around other sizes rescales the same image
    assert sizing.estimate_diameter(rgb, pipe.foreground, 30.0, band=(25.0, 35.0)).scale > 1.1
    empty = sizing.estimate_diameter(np.full((64, 64, 3), 10, np.uint8), pipe.foreground, pipe.training_diameter)
    assert empty.diameter is None and empty.scale == 1.0 and set(empty.native_outputs) == {"B1"}


def test_an_estimate_whose_second_pass_disagrees_far_is_not_trusted():
    image, _ = discs_image(9, shape=(256, 256))
    rgb = np.dstack([image] * 3)
    pipe = brightness_pipeline()

    def second_pass_sees(size):
        """The pipeline's probes, except that the second pass (the call after the three
        probes) shows discs of ``size`` px."""
        calls = []

        def foreground(view):
            calls.append(view.shape)
            if len(calls) <= len(sizing.PROBE_SCALES):
                return pipe.foreground(view)
            return pipe.foreground(np.dstack([discs_image(size, shape=view.shape[:2])[0]] * 3))
        return foreground

    agreeing = sizing.estimate_diameter(rgb, second_pass_sees(13), pipe.training_diameter)
    assert agreeing.untrusted is None and agreeing.scale > 1.2
    # 9 px at the native scale, but 3 px in the image's pixels at the enlarged one: noise
    scale = sizing.scale_for(agreeing.diameter, pipe.training_diameter, band=None)
    far = sizing.estimate_diameter(rgb, second_pass_sees(round(3 * scale)), pipe.training_diameter)
    assert far.scale == 1.0 and far.untrusted.startswith("not trusted") and far.diameter == pytest.approx(9, abs=1)
    assert set(far.native_outputs) == {"B1"}  # reused by the segmentation at the native scale


def recorded_estimate(diameter, shape):
    """An image of discs, the brightness pipeline, its size estimate and the shapes it predicted."""
    image, _ = discs_image(diameter, shape=shape)
    rgb = np.dstack([image] * 3)
    pipe = brightness_pipeline()
    foreground, shapes = recording(pipe.foreground)
    return rgb, pipe, sizing.estimate_diameter(rgb, foreground, pipe.training_diameter), shapes


def test_the_size_of_a_large_image_is_estimated_in_four_windows():
    rgb, pipe, estimate, shapes = recorded_estimate(31, (2200, 2300))
    assert estimate.diameter == pytest.approx(31, rel=0.1) and estimate.scale < 1
    assert max(h * w for h, w in shapes) <= sizing.ESTIMATE_WINDOW**2
    assert shapes.count((1024, 1024)) == 4  # one native probe per window, none over the whole image
    assert estimate.native_outputs is None  # no pass over the whole image to reuse
    windows = sizing.estimate_windows(rgb)
    assert len(windows) == 4 and all(w.shape == (1024, 1024, 3) for w in windows)


# --------------------------------------------------------------------------------------
# Scales and rescaling
# --------------------------------------------------------------------------------------


def test_scale_is_bounded_and_not_applied_near_one():
    low, high = sizing.SCALE_RANGE
    assert sizing.scale_for(1000.0, 15.0) == low and sizing.scale_for(0.5, 15.0) == high
    assert sizing.scale_for(16.0, 15.0) == 1.0 and sizing.scale_for(None, 15.0) == 1.0


def test_rescaled_labels_come_back_unchanged():
    labels = np.zeros((60, 80), np.int32)
    labels[5:20, 5:25], labels[30:55, 40:70], labels[25:28, 2:6] = 1, 2, 3
    for factor in (2, 3):
        bigger = sizing.rescale_labels(labels, (60 * factor, 80 * factor))
        assert np.array_equal(sizing.rescale_labels(bigger, labels.shape), labels)
    image = np.dstack([labels.astype(np.uint8) * 80] * 3)
    assert sizing.rescale_image(image, 0.5).shape == (30, 40, 3)


@pytest.mark.parametrize("scale", [0.37, 0.5, 1.16, 2.7])
def test_rescale_image_channel_by_channel_equals_resizing_the_whole_image(scale):
    from skimage.transform import resize

    image = np.random.default_rng(int(scale * 100)).integers(0, 256, (53, 71, 3), dtype=np.uint8)
    shape = (round(53 * scale), round(71 * scale), 3)
    order = 3 if scale > 1 else 1  # cubic when enlarging, linear and anti-aliased when shrinking
    whole = resize(image, shape, order=order, anti_aliasing=scale < 1, preserve_range=True)
    assert np.array_equal(sizing.rescale_image(image, scale), np.clip(np.round(whole), 0, 255).astype(np.uint8))


def test_resize_output_brings_a_network_output_to_another_grid():
    probs = np.random.default_rng(0).random((20, 30, 3), dtype=np.float32)
    assert sizing.resize_output(probs, (20, 30)) is probs
    resized = sizing.resize_output(probs, (40, 60))
    assert resized.shape == (40, 60, 3) and resized.dtype == np.float32
    assert resized.min() >= probs.min() and resized.max() <= probs.max()  # linear: no overshoot
