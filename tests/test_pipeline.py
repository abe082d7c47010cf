"""nucleitut.pipeline: Pipeline (networks, post-processing, size handling), SegmentOptions,
Segmentation and ``nucleitut.segment``.

The helpers here (:func:`discs_image`, :class:`BrightnessNetwork`, :func:`tiny_networks`, the
``reference`` and ``missing_reference`` fixtures) are shared with the tests of sizing, blocks,
pretrained and the command line.
"""

import functools
import json

import keras
import numpy as np
import pytest
from skimage.draw import disk

import nucleitut
from nucleitut import config, images, pipeline, pretrained, sizing, training, unet
from nucleitut.pipeline import Pipeline, SeedEnsemble, Segmentation, SegmentOptions

# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def discs_image(diameter: int, shape=(256, 256), spacing=None, value=220) -> tuple[np.ndarray, int]:
    """Grey uint8 image of bright discs of a given diameter on a dark background, and their count."""
    image = np.full(shape, 10, np.uint8)
    spacing = spacing or 2 * diameter
    count = 0
    for y in range(diameter, shape[0] - diameter + 1, spacing):
        for x in range(diameter, shape[1] - diameter + 1, spacing):
            image[disk((y, x), (diameter - 1) / 2 + 0.01, shape=shape)] = value
            count += 1
    return image, count


#: The depth of B1 in the quick profile: the fakes below are predicted in tiles that are
#: multiples of ``2 ** BLOCKS``, as that network would be.
BLOCKS = config.training_config("B1", "quick").blocks


class BrightnessNetwork:
    """A stand-in for network B whose foreground probability is the image brightness: the
    foreground is exactly the bright pixels, so the size estimate can be checked exactly.

    Its ``layers`` hold as many pooling layers as the network it stands in for
    (:func:`nucleitut.unet.network_depth` reads the depth from them)."""

    layers = [keras.layers.MaxPooling2D() for _ in range(BLOCKS)]
    output_shape = (None, None, None, 1)

    def predict_on_batch(self, batch):
        return (np.asarray(batch)[..., :1] + 1) / 2


def brightness_pipeline(network=None) -> Pipeline:
    """Pipeline B1 of the quick profile whose network is ``network`` (default a
    :class:`BrightnessNetwork`), with the default post-processing and size handling."""
    return Pipeline.from_models("B1", {"B1": network or BrightnessNetwork()}, "quick")


def tiny_networks(seed=0) -> dict:
    """Untrained M6 and B4 U-Nets (3 blocks, F=4) with non-trivial batch-norm statistics,
    as :class:`nucleitut.training.Network` (built once per seed; a new dict each call)."""
    return dict(_tiny_networks(seed))


@functools.lru_cache(maxsize=None)
def _tiny_networks(seed):
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    networks = {}
    for name in ("M6", "B4"):
        cfg = config.training_config(name, "cpu", blocks=3, filters=4)
        model = unet.build_unet(blocks=cfg.blocks, filters=cfg.filters, out_channels=cfg.out_channels, name=name)
        for variable in model.weights:
            if "moving_variance" in variable.path:
                variable.assign(rng.uniform(0.5, 2.0, variable.shape).astype(np.float32))
            elif "moving_mean" in variable.path:
                variable.assign(rng.normal(0, 0.1, variable.shape).astype(np.float32))
        networks[name] = training.Network(model, cfg)
    return networks


REFERENCE_SETTINGS = {"mask_threshold": 0.4, "marker_threshold": 0.5, "min_marker_area": 3, "min_area": 15}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A reference folder built from tiny untrained networks, with its own settings and sizes:
    ``(folder, networks, settings)``."""
    folder = tmp_path_factory.mktemp("reference")
    networks = tiny_networks()
    sizes = {"median_diameter": 15.0, "n_images": 1}
    pretrained.save_reference(folder, networks, "M6B4", REFERENCE_SETTINGS, sizes, profile="cpu", trained={"where": "test"})
    return folder, networks, REFERENCE_SETTINGS


@pytest.fixture
def missing_reference(tmp_path, monkeypatch):
    """No shipped reference networks (and none cached by :meth:`Pipeline.reference`)."""
    monkeypatch.setattr(pretrained, "REFERENCE_DIR", tmp_path / "missing")
    pipeline._reference.cache_clear()
    yield tmp_path / "missing"
    pipeline._reference.cache_clear()


# --------------------------------------------------------------------------------------
# Building a pipeline
# --------------------------------------------------------------------------------------


def test_from_models_wraps_keras_models_with_the_profiles_configuration():
    networks = tiny_networks()
    pipe = Pipeline.from_models("m6b4", {name: net.model for name, net in networks.items()}, "cpu", seed=2)
    assert isinstance(pipe.spec, config.PipelineSpec) and pipe.name == "M6B4" and pipe.method == "two_network"
    assert set(pipe.networks) == {"M6", "B4"} and all(isinstance(n, training.Network) for n in pipe.networks.values())
    assert pipe.networks["M6"].model is networks["M6"].model
    assert pipe.networks["B4"].config == config.training_config("B4", "cpu", seed=2)
    assert (pipe.profile, pipe.seed, pipe.settings, pipe.chosen_on) == ("cpu", 2, {}, "defaults")
    assert pipe.postprocess_settings == config.POSTPROCESS_DEFAULTS["two_network"]
    assert (pipe.training_diameter, pipe.size_band) == (sizing.TRAINING_DIAMETER, sizing.TRAINING_SIZE_BAND)
    # Networks keep the configuration they come with; networks the pipeline does not use are left out.
    kept = Pipeline.from_models("M6", {**networks, "B1": networks["B4"]}, "quick")
    assert kept.networks == {"M6": networks["M6"]} and kept.method == "watershed"


def test_a_pipeline_missing_a_network_names_it():
    networks = tiny_networks()
    with pytest.raises(FileNotFoundError, match="pipeline M6B4 needs B4, which the given networks lack"):
        Pipeline("M6B4", {"M6": networks["M6"]})
    with pytest.raises(FileNotFoundError, match="pipeline M3B1 needs M3, B1"):
        Pipeline.from_models("M3B1", networks, "cpu")


def test_with_settings_keeps_the_networks_and_changes_the_post_processing():
    pipe = Pipeline("M6B4", tiny_networks(), profile="cpu", seed=3, training_diameter=20.0, size_band=(10.0, 30.0))
    tuned = pipe.with_settings({"mask_threshold": 0.5}, "validation")
    assert tuned is not pipe and tuned.networks == pipe.networks
    assert (tuned.profile, tuned.seed, tuned.training_diameter, tuned.size_band) == ("cpu", 3, 20.0, (10.0, 30.0))
    assert tuned.chosen_on == "validation" and tuned.postprocess_settings["mask_threshold"] == 0.5
    assert pipe.settings == {} and pipe.postprocess_settings["mask_threshold"] == 0.3
    assert Pipeline("M6B4", tiny_networks(), settings={"min_area": 30}).chosen_on == "given"


def test_labels_from_follows_the_settings_and_the_given_parameters():
    probs = np.zeros((40, 40, 1), np.float32)
    probs[5:15, 5:15] = 0.45  # above 0.4, under the default 0.5
    probs[20:35, 20:35] = 0.9
    pipe = brightness_pipeline()
    assert pipe.labels_from({"B1": probs}).max() == 1
    assert pipe.labels_from({"B1": probs}, threshold=0.4).max() == 2
    assert pipe.with_settings({"threshold": 0.4}, "test").labels_from({"B1": probs}).max() == 2


# --------------------------------------------------------------------------------------
# Size
# --------------------------------------------------------------------------------------


def test_size_estimate_rescales_large_nuclei_and_maps_labels_back():
    image, count = discs_image(45, shape=(360, 400))
    pipe = brightness_pipeline()
    target = pipe.training_diameter
    result = pipe.segment(image, tta=False)
    assert isinstance(result, Segmentation) and result.diameter_source == "estimated"
    # the shrunk probes blur the discs' edges a little: within 10 %
    assert result.diameter == pytest.approx(45, rel=0.1)
    # outside the band: halfway (geometric mean) from its upper end to the training median
    halfway = np.sqrt(sizing.TRAINING_SIZE_BAND[1] * target)
    assert result.scale == pytest.approx(halfway / 45, rel=0.1)
    assert result.labels.shape == image.shape and result.labels.dtype == np.int32
    assert result.count == count
    # each disc comes back at its own size
    assert np.mean((result.labels > 0) == (image > 100)) > 0.98
    given = pipe.segment(image, SegmentOptions(diameter=30, tta=False))
    assert given.diameter_source == "given" and given.scale == pytest.approx(target / 30)
    native = pipe.segment(image, size=False, tta=False)
    assert native.scale == 1.0 and native.diameter is None and native.diameter_source == "not estimated"
    fixed = pipe.segment(image, SegmentOptions(tta=False, diameter=30), scale=0.5)  # keywords change single options
    assert fixed.diameter_source == "given scale" and fixed.scale == 0.5 and fixed.labels.shape == image.shape


def test_the_cost_bound_caps_an_estimated_enlargement_and_cuts_the_tta_views(monkeypatch):
    from nucleitut import predict

    image, count = discs_image(7, shape=(120, 120), spacing=14)  # small nuclei: the estimate asks for ~2.2x
    pipe = brightness_pipeline()  # one network: a single view fits the bound up to 1.91x
    limit = sizing.max_enlargement(1)
    calls = []
    original = predict.predict_image
    monkeypatch.setattr(predict, "predict_image", lambda *args, **kwargs: calls.append(1) or original(*args, **kwargs))
    free = pipe.segment(image, cost_bound=None)
    assert free.scale > limit * 1.05 and free.views == len(predict.DEFAULT_TTA) and "cost bound" not in free.diameter_source
    calls.clear()
    bounded = pipe.segment(image)
    assert bounded.scale == pytest.approx(limit) and bounded.views == 1
    assert bounded.diameter == pytest.approx(free.diameter, rel=0.15) and bounded.count == count
    assert bounded.diameter_source == f"estimated (enlargement capped at {limit:.2f}x: cost bound)"
    assert "1 TTA view," in bounded.summary()
    # the probes at 1 and 1/2 (a quarter of 120 px is under 32 px: skipped), the second pass, one view
    assert len(calls) == 2 + 1 + 1
    # within the bound's cost, counted in passes over the image's own pixels
    cost = sizing.segmentation_cost(bounded.scale, 1, bounded.views)
    assert cost <= sizing.COST_BOUND * sizing.segmentation_cost(1.0, 1, len(predict.DEFAULT_TTA)) + 1e-9
    # a diameter the user gives is not bounded
    given = pipe.segment(image, diameter=7)
    assert given.scale == pytest.approx(pipe.training_diameter / 7) and given.views == len(predict.DEFAULT_TTA)
    with pytest.raises(ValueError, match="cost_bound"):
        SegmentOptions(cost_bound=0.5)


def test_the_pipelines_own_training_size_and_band_decide_the_rescaling():
    image, _ = discs_image(21, shape=(300, 300))  # inside the default band: left as it is
    assert sizing.TRAINING_SIZE_BAND[0] <= 21 <= sizing.TRAINING_SIZE_BAND[1]
    usual = brightness_pipeline()
    assert usual.size_band == sizing.TRAINING_SIZE_BAND and usual.segment(image, tta=False).scale == 1.0
    networks = usual.networks
    narrow = Pipeline("B1", networks, training_diameter=14.0, size_band=(12.0, 16.0))
    result = narrow.segment(image, tta=False)
    assert result.diameter == pytest.approx(21, rel=0.1)
    # above the band: halfway from its upper end to the pipeline's training diameter
    assert result.scale == pytest.approx(np.sqrt(16.0 * 14.0) / result.diameter)
    assert narrow.segment(image, tta=False, diameter=28).scale == pytest.approx(14.0 / 28)


def test_segmenting_at_the_native_scale_reuses_the_size_estimates_first_pass(monkeypatch):
    from nucleitut import predict

    image, count = discs_image(16)  # the training size: the image is not rescaled
    pipe = brightness_pipeline()
    rgb = images.to_rgb_uint8(image)
    expected = pipe(rgb, tta=True)  # every view predicted
    calls = []
    original = predict.predict_image
    monkeypatch.setattr(predict, "predict_image", lambda *args, **kwargs: calls.append(1) or original(*args, **kwargs))
    result = pipe.segment(image, tta=True)
    assert result.scale == 1.0 and result.diameter_source == "estimated" and result.count == count
    # three probes (1, 1/2, 1/4) and three TTA views: the fourth, the image as it is, is the native probe
    assert len(calls) == 3 + len(predict.DEFAULT_TTA) - 1
    assert np.array_equal(result.labels, expected)
    without_tta = pipe(rgb)
    calls.clear()
    assert np.array_equal(pipe.segment(image, tta=False).labels, without_tta)
    assert len(calls) == 3  # without TTA the segmentation is the native probe
    calls.clear()
    pipe.segment(discs_image(45, shape=(360, 400))[0], tta=True)  # rescaled: no reuse
    assert len(calls) == 3 + 1 + len(predict.DEFAULT_TTA)  # probes, the second pass at the new scale, the views


def test_known_outputs_replace_the_view_as_it_is():
    image, _ = discs_image(16, shape=(96, 96))
    rgb = images.to_rgb_uint8(image)
    pipe = brightness_pipeline()
    _, native = pipe.foreground(rgb)
    assert np.array_equal(pipe.probabilities(rgb, known=native)["B1"], native["B1"])
    # a known output is used as given (here a wrong one: nothing is found)
    nothing = {"B1": np.zeros(rgb.shape[:2] + (1,), np.float32)}
    assert pipe(rgb).max() > 0 and pipe(rgb, known=nothing).max() == 0
    assert not np.array_equal(pipe.probabilities(rgb, tta=True, known=nothing)["B1"], pipe.probabilities(rgb, tta=True)["B1"])


def test_foreground_is_the_mask_networks_output_without_tta():
    class Unused:
        layers = BrightnessNetwork.layers
        output_shape = (None, None, None, 3)

        def predict_on_batch(self, batch):
            raise AssertionError("the marker network is not needed for the foreground")

    image, _ = discs_image(16, shape=(96, 96))
    rgb = images.to_rgb_uint8(image)
    pair = Pipeline.from_models("M3B1", {"M3": Unused(), "B1": BrightnessNetwork()}, "quick")
    mask, outputs = pair.foreground(rgb)
    assert list(outputs) == ["B1"] and outputs["B1"].shape == (96, 96, 1)
    assert np.array_equal(mask, image > 100)  # brightness above the mask threshold 0.3
    assert np.array_equal(brightness_pipeline().foreground(rgb)[0], image > 100)  # above the threshold 0.5


def test_fusing_scales_averages_objects_and_keeps_the_strongest_border(monkeypatch):
    from nucleitut import predict

    networks = tiny_networks()
    pipe = Pipeline("M6B4", networks)

    def fake(model, image, tta=False, **kwargs):  # outputs that say at which size the network saw the image
        height, width = image.shape[:2]
        if model is networks["M6"].model:
            return np.broadcast_to(np.float32([0.2, 0.3, height / 1000]), (height, width, 3)).copy()
        return np.full((height, width, 1), width / 1000, np.float32)

    monkeypatch.setattr(predict, "predict_probabilities", fake)
    image = np.zeros((100, 120, 3), np.uint8)
    fused = pipe.probabilities(image, fuse_scales=True)
    assert fused["M6"].shape == (100, 120, 3) and fused["B4"].shape == (100, 120, 1)
    # neighbours: 71x85 and 141x170 pixels
    assert np.allclose(fused["M6"][..., 2], 0.141) and np.allclose(fused["M6"][..., :2], [0.2, 0.3])
    assert np.allclose(fused["B4"], (120 + 85 + 170) / 3 / 1000)
    assert np.allclose(pipe.probabilities(image)["B4"], 0.120)  # without: the image alone
    small = pipe.probabilities(np.zeros((40, 60, 3), np.uint8), fuse_scales=True)  # 28 px: no smaller neighbour
    assert np.allclose(small["B4"], (60 + 85) / 2 / 1000) and np.allclose(small["M6"][..., 2], 0.057)


def test_segment_fuses_scales_on_request(monkeypatch):
    from nucleitut import predict

    image, count = discs_image(16)
    pipe = brightness_pipeline()
    calls = []
    original = predict.predict_image
    monkeypatch.setattr(predict, "predict_image", lambda *args, **kwargs: calls.append(args[1].shape[:2]) or original(*args, **kwargs))
    result = pipe.segment(image, SegmentOptions(tta=True, fuse_scales=True))
    views = len(predict.DEFAULT_TTA)
    assert result.scale == 1.0 and len(calls) == 3 + (views - 1) + 2 * views  # probes, the image's views, the neighbours' views
    assert sorted({c for c in calls[-2 * views:]}) == [(181, 181), (362, 362)]
    assert result.count == count  # brightness does not depend on the scale: the same discs


# --------------------------------------------------------------------------------------
# Options and results
# --------------------------------------------------------------------------------------


def test_diameter_and_scale_must_be_positive():
    image, _ = discs_image(15)
    pipe = brightness_pipeline()
    for bad in (0, -5):
        with pytest.raises(ValueError, match="diameter must be a positive number"):
            SegmentOptions(diameter=bad)
        with pytest.raises(ValueError, match="diameter must be a positive number"):
            pipe.segment(image, diameter=bad)
        with pytest.raises(ValueError, match="scale must be positive"):
            pipe.segment(image, SegmentOptions(scale=bad))
    assert SegmentOptions() == SegmentOptions(tta=True, size=True, diameter=None, scale=None, channel=None,
                                              normalize="auto", fuse_scales=False)


def test_segmentation_counts_its_nuclei_and_sums_itself_up():
    labels = np.zeros((40, 50), np.int32)
    labels[2:12, 3:13], labels[20:35, 30:45] = 1, 2
    result = Segmentation(labels, "x.png", 12.0, "estimated", 1.0, "as is (8-bit)", 0.1)
    assert result.count == 2 and result.seconds_size == 0.0 and result.image is None
    assert "x.png: 2 nuclei, diameter 12.0 px (estimated), scale 1" in result.summary()
    unknown = Segmentation(np.zeros((4, 4), np.int32), "y", None, "no nuclei found", 1.0, "as is (8-bit)", 0.2)
    assert unknown.count == 0 and "y: 0 nuclei, diameter no nuclei found," in unknown.summary()


def test_segment_handles_intensities_and_channels_before_the_networks():
    image, count = discs_image(16, shape=(128, 128))
    # a grey 16-bit image is stretched to the fluorescence training levels (nuclei at 88 of
    # 255, which the brightness network calls 0.35): a threshold under that finds them
    pipe = brightness_pipeline().with_settings({"threshold": 0.2}, "test")
    sixteen = image.astype(np.uint16) * 200 + 500
    result = pipe.segment(sixteen, tta=False, size=False, name="cells.tif")
    assert result.intensity == "percentiles 1-99.8 to 3-88" and result.name == "cells.tif"
    assert result.count == count and np.array_equal(result.labels > 0, image > 100)
    assert result.image.dtype == np.uint8 and result.image.shape == (128, 128, 3)
    assert result.image.max() == images.FLUORESCENCE_LEVELS[1]
    assert pipe.segment(sixteen, tta=False, size=False, normalize="never").intensity != result.intensity
    stack = np.dstack([np.zeros_like(image), image, image // 2, 255 - image, image])
    assert pipe.segment(stack, tta=False, size=False, channel=1).count == count
    assert pipe.segment(stack, tta=False, size=False, channel=3).count == 1  # the inverted image: one background object
    with pytest.raises(images.DataError, match="5 channels; choose one"):
        pipe.segment(stack, tta=False)


# --------------------------------------------------------------------------------------
# Where the networks come from
# --------------------------------------------------------------------------------------


def test_a_reference_folder_gives_its_pipeline_settings_and_nucleus_size(reference):
    folder, networks, settings = reference
    pipe = Pipeline.load(folder)
    assert pipe.name == "M6B4" and pipe.settings == settings and pipe.chosen_on == "reference.json"
    assert pipe.training_diameter == 15.0 and pipe.profile == "cpu"
    assert {n: net.config for n, net in pipe.networks.items()} == {n: net.config for n, net in networks.items()}
    other = Pipeline.load(folder, pipeline="M6")  # another pipeline of its networks: default settings
    assert other.name == "M6" and other.settings == {} and other.chosen_on == "defaults" and other.training_diameter == 15.0
    image, _ = discs_image(15, shape=(96, 128))
    labels = nucleitut.segment(image, models=folder, tta=False)
    assert labels.shape == image.shape and labels.dtype == np.int32
    assert np.array_equal(labels, pipe.segment(image, tta=False).labels)


def test_a_folder_of_trained_networks_loads_in_either_layout(tmp_path):
    networks = tiny_networks()
    for directory, name in ((tmp_path / "M6", "M6"), (tmp_path / "cpu" / "B4", "B4")):
        directory.mkdir(parents=True)
        networks[name].model.save(directory / "model.keras")
        (directory / "config.json").write_text(json.dumps(networks[name].config.to_dict()))
    pipe = Pipeline.load(tmp_path, "M6B4", "cpu")
    assert pipe.name == "M6B4" and pipe.profile == "cpu" and pipe.chosen_on == "defaults"
    assert pipe.training_diameter == sizing.TRAINING_DIAMETER
    rgb = images.to_rgb_uint8(discs_image(15, shape=(64, 80))[0])
    for name in ("M6", "B4"):
        assert pipe.networks[name].config == networks[name].config
        assert np.allclose(pipe.probabilities(rgb)[name], Pipeline("M6B4", networks).probabilities(rgb)[name], atol=1e-6)


def test_models_folder_without_a_network_names_the_train_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m nucleitut train M6 --profile cpu"):
        Pipeline.load(tmp_path, "M6B4", "cpu")
    with pytest.raises(FileNotFoundError, match="no such models folder"):
        Pipeline.load(tmp_path / "nowhere", "M6B4", "cpu")


def test_missing_reference_names_the_command_that_builds_it(missing_reference):
    image, _ = discs_image(15)
    with pytest.raises(pretrained.ReferenceMissing, match="tools/make_reference.py"):
        nucleitut.segment(image)
    with pytest.raises(pretrained.ReferenceMissing, match="tools/make_reference.py"):
        Pipeline.reference()


def test_the_reference_pipeline_is_loaded_once():
    first = Pipeline.reference()
    assert Pipeline.reference() is first
    assert first.chosen_on == "reference.json" and set(first.networks) == set(first.spec.networks)


def test_a_seed_ensemble_needs_two_different_seeds():
    for seeds in ([0], [1, 1]):
        with pytest.raises(ValueError, match="at least two different seeds"):
            SeedEnsemble("M3B1", seeds, "quick")
