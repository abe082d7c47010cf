"""Segmenting users' own images: intensities, nucleus size, outputs, reference networks, bad input."""

import csv
import json

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from skimage.draw import disk

from nucleitut import config, images, pretrained, segment, sizing, unet
from nucleitut.__main__ import main

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


class BrightnessNetwork:
    """A stand-in for network B whose foreground probability is the image brightness: the
    foreground is exactly the bright pixels, so the size estimate can be checked exactly."""

    layers = []
    output_shape = (None, None, None, 1)
    nucleitut_config = config.training_config("B1", "quick")

    def predict_on_batch(self, batch):
        return (np.asarray(batch)[..., :1] + 1) / 2


def tiny_networks(seed=0):
    """Untrained M6 and B4 U-Nets (3 blocks, F=4) with non-trivial batch-norm statistics."""
    import keras

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    models, configs = {}, {}
    for name in ("M6", "B4"):
        cfg = config.training_config(name, "cpu", blocks=3, filters=4)
        model = unet.build_unet(blocks=cfg.blocks, filters=cfg.filters, out_channels=cfg.out_channels, name=name)
        model.nucleitut_config = cfg
        for variable in model.weights:
            if "moving_variance" in variable.path:
                variable.assign(rng.uniform(0.5, 2.0, variable.shape).astype(np.float32))
            elif "moving_mean" in variable.path:
                variable.assign(rng.normal(0, 0.1, variable.shape).astype(np.float32))
        models[name], configs[name] = model, cfg
    return models, configs


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A reference folder built from tiny untrained networks, with its own settings and sizes."""
    folder = tmp_path_factory.mktemp("reference")
    models, configs = tiny_networks()
    settings = {"mask_threshold": 0.4, "marker_threshold": 0.5, "min_marker_area": 3, "min_area": 15}
    sizes = {"median_diameter": 15.0, "n_images": 1}
    pretrained.save_reference(folder, models, configs, "M6B4", settings, sizes, profile="cpu", trained={"where": "test"})
    return folder, models, settings


# --------------------------------------------------------------------------------------
# Intensities
# --------------------------------------------------------------------------------------


def test_16bit_image_with_offset_gain_and_hot_pixels_maps_close_to_the_8bit_version():
    rng = np.random.default_rng(1)
    image8, _ = discs_image(21)
    image8 = np.clip(image8.astype(int) + rng.integers(0, 30, image8.shape), 0, 255).astype(np.uint8)
    image16 = (image8.astype(np.uint32) * 37 + 1200).astype(np.uint16)
    hot = np.zeros(image16.shape, bool)
    hot.flat[rng.choice(image16.size, 5, replace=False)] = True
    image16[hot] = 65535
    stretched16, how = images.prepare_image(image16)
    stretched8, _ = images.prepare_image(image8, normalize="always")
    assert how == "percentiles 1-99.8 to 3-88"  # grey on a dark background: fluorescence levels
    assert np.abs(stretched16.astype(int) - stretched8.astype(int))[~hot].max() <= 2
    old, _ = images.prepare_image(image16, normalize="never")  # min..max: the hot pixels darken everything
    nuclei = image8 > 200
    bright = images.FLUORESCENCE_LEVELS[1]
    assert old[nuclei].mean() < 0.6 * bright and stretched16[nuclei].mean() > 0.9 * bright
    assert stretched16[~nuclei & ~hot].mean() < 0.5 * bright


def test_bright_8bit_images_keep_todays_path_and_dim_ones_are_stretched():
    image8, _ = discs_image(21)
    rgba = np.dstack([image8] * 3 + [np.full(image8.shape, 255, np.uint8)])
    rgb, how = images.prepare_image(rgba)
    assert how == "as is (8-bit)" and np.array_equal(rgb, images.to_rgb_uint8(rgba))
    dim = (image8 // 25).astype(np.uint8)  # 99.8th percentile 8 < DIM_LEVEL
    stretched, how = images.prepare_image(dim)
    assert how.startswith("percentiles") and stretched.max() == images.FLUORESCENCE_LEVELS[1]
    # A colour image is stretched to 0..255 (only grey dark-background images get the
    # fluorescence training levels).
    stretched_rgb, _ = images.prepare_image(np.dstack([dim, dim // 2, dim]))
    assert stretched_rgb.max() == 255
    stretched_grey_rgb, how = images.prepare_image(np.dstack([dim] * 3))  # grey stored as RGB
    assert how.endswith("to 3-88") and stretched_grey_rgb.max() == images.FLUORESCENCE_LEVELS[1]


def test_channel_picks_one_channel_as_grey_and_names_a_missing_one():
    image8, _ = discs_image(21)
    stack = np.dstack([np.zeros_like(image8), image8, 255 - image8, image8 // 2, image8])
    rgb, _ = images.prepare_image(stack, channel=1)
    assert np.array_equal(rgb[..., 0], image8) and np.array_equal(rgb[..., 2], image8)
    with pytest.raises(images.DataError, match="5 channels; choose one"):
        images.prepare_image(stack)
    with pytest.raises(images.DataError, match="channel 7 asked for"):
        images.prepare_image(stack, channel=7, name="cells.tif")


# --------------------------------------------------------------------------------------
# Size
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("diameter", [9, 21, 41])
def test_typical_diameter_of_discs_is_their_diameter(diameter):
    image, _ = discs_image(diameter)
    assert sizing.typical_diameter(image > 100) == pytest.approx(diameter, abs=1)


def test_typical_diameter_of_touching_discs_is_one_disc():
    image, _ = discs_image(31, shape=(62, 256), spacing=28)  # a chain of overlapping discs: one object
    assert sizing.typical_diameter(image > 100) == pytest.approx(31, abs=1.5)


def test_size_estimate_rescales_large_nuclei_and_maps_labels_back():
    image, count = discs_image(45, shape=(360, 400))
    networks = pretrained.load_networks({"B1": BrightnessNetwork()}, "B1")
    target = networks[1]
    result = segment.segment_image(image, tta=False, networks=networks)
    assert result.diameter_source == "estimated"
    # the shrunk probes blur the discs' edges a little: within 10 %
    assert result.diameter == pytest.approx(45, rel=0.1)
    # outside the band: halfway (geometric mean) from its upper end to the training median
    halfway = np.sqrt(sizing.TRAINING_SIZE_BAND[1] * target)
    assert result.scale == pytest.approx(halfway / 45, rel=0.1)
    assert result.labels.shape == image.shape and result.labels.dtype == np.int32
    assert result.count == count
    # each disc comes back at its own size
    assert np.mean((result.labels > 0) == (image > 100)) > 0.98
    given = segment.segment_image(image, diameter=30, tta=False, networks=networks)
    assert given.diameter_source == "given" and given.scale == pytest.approx(target / 30)
    native = segment.segment_image(image, size=False, tta=False, networks=networks)
    assert native.scale == 1.0 and native.diameter is None


def test_segmenting_at_the_native_scale_reuses_the_size_estimates_first_pass(monkeypatch):
    from nucleitut import predict

    image, count = discs_image(16)  # the training size: the image is not rescaled
    networks = pretrained.load_networks({"B1": BrightnessNetwork()}, "B1")
    rgb = images.to_rgb_uint8(image)
    expected = networks[0](rgb, tta=True)  # every view predicted
    calls = []
    original = predict.predict_image
    monkeypatch.setattr(predict, "predict_image", lambda *args, **kwargs: calls.append(1) or original(*args, **kwargs))
    result = segment.segment_image(image, tta=True, networks=networks)
    assert result.scale == 1.0 and result.diameter_source == "estimated" and result.count == count
    # three probes (1, 1/2, 1/4) and three TTA views: the fourth, the image as it is, is the native probe
    assert len(calls) == 3 + len(predict.DEFAULT_TTA) - 1
    assert np.array_equal(result.labels, expected)
    without_tta = networks[0](rgb)
    calls.clear()
    assert np.array_equal(segment.segment_image(image, tta=False, networks=networks).labels, without_tta)
    assert len(calls) == 3  # without TTA the segmentation is the native probe
    calls.clear()
    segment.segment_image(discs_image(45, shape=(360, 400))[0], tta=True, networks=networks)  # rescaled: no reuse
    assert len(calls) == 3 + 1 + len(predict.DEFAULT_TTA)  # probes, the second pass at the new scale, the views


def test_fusing_scales_averages_objects_and_keeps_the_strongest_border(monkeypatch):
    from nucleitut import predict

    models, _ = tiny_networks()
    segmenter, _ = pretrained.load_networks(models, "M6B4")

    def fake(model, image, tta=False, **kwargs):  # outputs that say at which size the network saw the image
        height, width = image.shape[:2]
        if model is models["M6"]:
            return np.broadcast_to(np.float32([0.2, 0.3, height / 1000]), (height, width, 3)).copy()
        return np.full((height, width, 1), width / 1000, np.float32)

    monkeypatch.setattr(predict, "predict_probabilities", fake)
    image = np.zeros((100, 120, 3), np.uint8)
    fused = segmenter.probabilities(image, fuse_scales=True)
    assert fused["M6"].shape == (100, 120, 3) and fused["B4"].shape == (100, 120, 1)
    # neighbours: 71x85 and 141x170 pixels
    assert np.allclose(fused["M6"][..., 2], 0.141) and np.allclose(fused["M6"][..., :2], [0.2, 0.3])
    assert np.allclose(fused["B4"], (120 + 85 + 170) / 3 / 1000)
    assert np.allclose(segmenter.probabilities(image)["B4"], 0.120)  # without: the image alone
    small = segmenter.probabilities(np.zeros((40, 60, 3), np.uint8), fuse_scales=True)  # 28 px: no smaller neighbour
    assert np.allclose(small["B4"], (60 + 85) / 2 / 1000) and np.allclose(small["M6"][..., 2], 0.057)


def test_segment_image_fuses_scales_on_request(monkeypatch):
    from nucleitut import predict

    image, count = discs_image(16)
    networks = pretrained.load_networks({"B1": BrightnessNetwork()}, "B1")
    calls = []
    original = predict.predict_image
    monkeypatch.setattr(predict, "predict_image", lambda *args, **kwargs: calls.append(args[1].shape[:2]) or original(*args, **kwargs))
    result = segment.segment_image(image, tta=True, networks=networks, fuse_scales=True)
    views = len(predict.DEFAULT_TTA)
    assert result.scale == 1.0 and len(calls) == 3 + (views - 1) + 2 * views  # probes, the image's views, the neighbours' views
    assert sorted({c for c in calls[-2 * views:]}) == [(181, 181), (362, 362)]
    assert result.count == count  # brightness does not depend on the scale: the same discs


def test_size_normalized_networks_get_every_image_rescaled_to_their_training_size():
    import dataclasses

    image, _ = discs_image(21, shape=(300, 300))  # inside the band: networks trained as usual leave it
    assert sizing.TRAINING_SIZE_BAND[0] <= 21 <= sizing.TRAINING_SIZE_BAND[1]
    usual = pretrained.load_networks({"B1": BrightnessNetwork()}, "B1")
    assert usual[0].size_band == sizing.TRAINING_SIZE_BAND and usual[0].size_target is None
    assert segment.segment_image(image, tta=False, networks=usual).scale == 1.0

    normalized = BrightnessNetwork()
    normalized.nucleitut_config = dataclasses.replace(BrightnessNetwork.nucleitut_config, size_target=14.0)
    networks = pretrained.load_networks({"B1": normalized}, "B1")
    assert networks[1] == 14.0 and networks[0].size_band is None
    result = segment.segment_image(image, tta=False, networks=networks)
    assert result.diameter == pytest.approx(21, rel=0.1) and result.scale == pytest.approx(14.0 / result.diameter)
    mixed = {"M6": tiny_networks()[0]["M6"], "B4": normalized}
    with pytest.raises(ValueError, match="trained at different nucleus sizes"):
        pretrained.load_networks(mixed, "M6B4")


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
    segmenter, target = pretrained.load_networks({"B1": FragmentingNetwork()}, "B1")
    native_only = sizing.typical_diameter(sizing._foreground(segmenter, rgb))
    assert native_only < 12  # the native probe alone sees the 10-px pieces
    diameter, scale = sizing.estimate_diameter(rgb, segmenter, target)
    # the two shrunk probes decide; their blurred edges lose a pixel or so: within 15 %
    halfway = np.sqrt(sizing.TRAINING_SIZE_BAND[1] * target)
    assert diameter == pytest.approx(45, rel=0.15) and scale == pytest.approx(halfway / 45, rel=0.15)


def test_size_estimate_of_small_nuclei_uses_the_native_probe():
    image, _ = discs_image(9, shape=(256, 256))
    rgb = np.dstack([image] * 3)
    segmenter, target = pretrained.load_networks({"B1": BrightnessNetwork()}, "B1")
    # halved and quartered, 9-px discs are under MIN_PROBE_DIAMETER: only the native probe counts
    assert sizing.typical_diameter(sizing._foreground(segmenter, sizing.rescale_image(rgb, 0.5))) < sizing.MIN_PROBE_DIAMETER
    diameter, _ = sizing.estimate_diameter(rgb, segmenter, target)
    assert diameter == pytest.approx(9, abs=1)


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


# --------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------


def test_outputs_are_16bit_png_tiff_overlay_and_a_table(tmp_path):
    labels = np.zeros((40, 50), np.int32)
    labels[2:12, 3:13], labels[20:35, 30:45] = 1, 2
    image = np.dstack([(labels > 0).astype(np.uint8) * 200] * 3)
    result = segment.SegmentationResult(labels, "x.png", 12.0, "estimated", 1.0, "as is (8-bit)", 0.1, image)
    intensity = (labels * 1000).astype(np.uint16)
    paths = segment.write_outputs(result, tmp_path, "x", intensity=intensity)
    png = iio.imread(paths["labels_png"])
    assert png.dtype == np.uint16 and np.array_equal(png, labels)
    assert np.array_equal(tifffile.imread(paths["labels_tif"]), labels)
    overlay = iio.imread(paths["overlay"])
    assert overlay.shape == (40, 50, 3) and overlay.dtype == np.uint8
    with open(paths["table"]) as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["label", "area", "centroid_y", "centroid_x", "equivalent_diameter", "mean_intensity"]
    assert [int(r["area"]) for r in rows] == [100, 225]
    assert [float(r["mean_intensity"]) for r in rows] == [1000.0, 2000.0]
    assert float(rows[1]["centroid_y"]) == pytest.approx(27) and float(rows[0]["equivalent_diameter"]) == pytest.approx(11.284, abs=1e-3)
    with pytest.raises(FileExistsError, match="x_labels.png: exists; use --overwrite"):
        segment.write_outputs(result, tmp_path, "x")
    segment.write_outputs(result, tmp_path, "x", overwrite=True)
    assert "x.png: 2 nuclei, diameter 12.0 px (estimated), scale 1" in result.summary()


# --------------------------------------------------------------------------------------
# Reference networks
# --------------------------------------------------------------------------------------


def test_reference_round_trip_predicts_like_the_original_networks(reference):
    from nucleitut import predict

    folder, originals, settings = reference
    info = json.loads((folder / "reference.json").read_text())
    assert info["pipeline"] == "M6B4" and info["networks"]["M6"]["dtype"] == "float16"
    assert json.loads((folder / "B4" / "config.json").read_text())["filters"] == 4
    loaded, _ = pretrained.load_reference(folder)
    image, _ = discs_image(15, shape=(96, 128))
    rgb = images.to_rgb_uint8(image)
    for name in ("M6", "B4"):
        for original, stored in zip(originals[name].weights, loaded[name].weights):
            assert np.array_equal(stored.numpy(), original.numpy().astype(np.float16).astype(np.float32))
        a = predict.predict_probabilities(originals[name], rgb)
        b = predict.predict_probabilities(loaded[name], rgb)
        assert np.abs(a - b).max() < 1e-2
    segmenter, target = pretrained.load_networks(folder)
    assert segmenter.pipeline.name == "M6B4" and segmenter.settings == settings and target == 15.0
    labels = segment.segment(image, models=folder, tta=False)
    assert labels.shape == image.shape and labels.dtype == np.int32


def test_missing_reference_names_the_command_that_builds_it(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained, "REFERENCE_DIR", tmp_path / "missing")
    image, _ = discs_image(15)
    with pytest.raises(pretrained.ReferenceMissing, match="tools/make_reference.py"):
        segment.segment(image)


def test_models_folder_without_a_network_names_the_train_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m nucleitut train M6 --profile cpu"):
        pretrained.load_networks(tmp_path, "M6B4", "cpu")


def test_diameter_must_be_positive():
    image, _ = discs_image(15)
    for bad in (0, -5):
        with pytest.raises(ValueError, match="diameter must be a positive number"):
            segment.segment_image(image, diameter=bad, networks=pretrained.load_networks({"B1": BrightnessNetwork()}, "B1"))


# --------------------------------------------------------------------------------------
# Command line and bad input
# --------------------------------------------------------------------------------------


def run(capsys, monkeypatch, *args):
    monkeypatch.setenv("NUCLEITUT_MODELS", "unused")  # main() sets it from --models; restored afterwards
    code = main(["segment", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def bad_input_folder(folder):
    folder.mkdir()
    image, _ = discs_image(15, shape=(96, 128))
    iio.imwrite(folder / "good.png", image)
    iio.imwrite(folder / "good16.tif", image.astype(np.uint16) * 200 + 500)
    (folder / "broken.png").write_bytes(b"not an image at all")
    (folder / "truncated.png").write_bytes((folder / "good.png").read_bytes()[:200])
    (folder / "empty.png").write_bytes(b"")
    iio.imwrite(folder / "constant.png", np.full((64, 64), 7, np.uint8))
    iio.imwrite(folder / "tiny.png", np.full((1, 1), 7, np.uint8))
    tifffile.imwrite(folder / "stack.tif", np.zeros((5, 32, 32), np.uint16))
    (folder / "notes.txt").write_text("not an image: ignored")
    return folder


def test_segment_command_reports_each_bad_file_and_processes_the_others(reference, tmp_path, capsys, monkeypatch):
    folder = bad_input_folder(tmp_path / "in")
    out_dir = tmp_path / "out"
    code, out, err = run(capsys, monkeypatch, folder, out_dir, "--models", reference[0], "--no-tta")
    assert code == 1, err
    expected = {
        "broken.png": "cannot decode image",
        "truncated.png": "cannot decode image",
        "empty.png": "empty file",
        "constant.png": "constant image",
        "tiny.png": "1x1 pixels is too small",
        "stack.tif": "multi-page TIFF",
    }
    for name, message in expected.items():
        line = next((l for l in err.splitlines() if name in l), "")
        assert message in line, (name, err)
    assert "6 of 8 images failed" in err
    for stem in ("good", "good16"):
        assert f"{stem}.png" in out or f"{stem}.tif" in out
        assert {p.name for p in segment.output_paths(out_dir, stem).values()} <= {p.name for p in out_dir.iterdir()}
    assert "notes" not in out + err
    # a second run leaves existing outputs alone unless told otherwise
    good = tmp_path / "good"
    good.mkdir()
    (good / "good.png").write_bytes((folder / "good.png").read_bytes())
    code, _, err = run(capsys, monkeypatch, good, out_dir, "--models", reference[0], "--no-tta")
    assert code == 1 and "good_labels.png exists; use --overwrite" in err and "good.png" in err
    code, out, err = run(capsys, monkeypatch, good, out_dir, "--models", reference[0], "--no-tta", "--overwrite", "--diameter", "20")
    assert code == 0 and "(given)" in out, err


def test_segment_command_fuses_scales_when_asked(reference, tmp_path, capsys, monkeypatch):
    from nucleitut import evaluation

    folder = tmp_path / "in"
    folder.mkdir()
    iio.imwrite(folder / "discs.png", discs_image(15, shape=(96, 128))[0])
    asked = []
    original = evaluation.Segmenter.probabilities

    def recording(self, image, tta=False, as_is=None, fuse_scales=False):
        asked.append(fuse_scales)
        return original(self, image, tta, as_is, fuse_scales)

    monkeypatch.setattr(evaluation.Segmenter, "probabilities", recording)
    code, _, err = run(capsys, monkeypatch, folder, tmp_path / "out", "--models", reference[0], "--no-tta", "--fuse-scales")
    assert code == 0, err
    assert asked[0] is True and asked.count(True) == 1  # the image itself; its neighbours are predicted without fusing again
    code, _, err = run(capsys, monkeypatch, folder, tmp_path / "out2", "--models", reference[0], "--no-tta")
    assert code == 0 and asked[-1] is False, err


@pytest.mark.parametrize("value", ["0", "-3"])
def test_segment_command_refuses_a_diameter_that_is_not_positive(value, tmp_path, capsys, monkeypatch):
    with pytest.raises(SystemExit) as exit_info:
        run(capsys, monkeypatch, tmp_path, tmp_path / "out", "--diameter", value)
    assert exit_info.value.code == 2 and "must be a positive number of pixels" in capsys.readouterr().err


def test_segment_command_refuses_an_output_folder_inside_the_input(tmp_path, capsys, monkeypatch):
    iio.imwrite(tmp_path / "a.png", discs_image(15)[0])
    code, _, err = run(capsys, monkeypatch, tmp_path, tmp_path / "out")
    assert code == 2 and "is inside the input folder" in err


def test_segment_command_without_reference_names_the_command_that_builds_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(pretrained, "REFERENCE_DIR", tmp_path / "missing")
    (tmp_path / "in").mkdir()
    iio.imwrite(tmp_path / "in" / "a.png", discs_image(15)[0])
    code, _, err = run(capsys, monkeypatch, tmp_path / "in", tmp_path / "out")
    assert code == 2 and "tools/make_reference.py" in err and not (tmp_path / "out").exists()


def test_segment_command_with_no_images_or_missing_input_is_a_usage_error(tmp_path, capsys, monkeypatch):
    code, _, err = run(capsys, monkeypatch, tmp_path / "nothing", tmp_path / "out")
    assert code == 2 and "no such file or folder" in err
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, monkeypatch, tmp_path / "empty", tmp_path / "out")
    assert code == 2 and "no images" in err


def test_the_shipped_reference_networks_are_small_and_load_without_training():
    from nucleitut import config as config_module

    folder = pretrained.REFERENCE_DIR
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert size <= 10e6, f"reference networks take {size / 1e6:.1f} MB (limit 10 MB)"
    models, info = pretrained.load_reference()
    assert set(models) == set(config_module.get_pipeline(info["pipeline"]).networks)
    assert info["postprocess_chosen_on"].startswith("validation") and info["nucleus_size"]["median_diameter"] > 0
    assert "/work/" not in json.dumps(info) and "/tmp/" not in json.dumps(info)
    image = np.zeros((40, 40, 3), np.uint8)
    image[10:20, 10:20] = 200
    assert segment.segment(image, tta=False, size=False).shape == (40, 40)
