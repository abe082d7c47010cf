"""Tests of nucleitut.predict: tiles, test-time augmentation, ensembles, trained networks on whole images."""

import json

import numpy as np
import pytest
from scipy import ndimage as ndi

from nucleitut import config, data, predict, training, unet
from nucleitut.predict import (
    DEFAULT_TTA,
    DIHEDRAL_TRANSFORMS,
    apply_transform,
    combine_predictions,
    ensemble_predict,
    invert_transform,
    predict_image,
    tta_predict,
)


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


def per_pixel_batch(batch):
    assert batch.dtype == np.float32 and batch.ndim == 4
    return np.concatenate([batch[..., :1] * 2.0, batch[..., 1:] - batch[..., :1]], axis=-1)


def test_predict_image_tiles_any_size_like_a_single_pass():
    image = np.random.default_rng(5).random((37, 53, 2), dtype=np.float32)
    result = predict_image(per_pixel_batch, image, tile_size=32, overlap=8, multiple=16, batch_size=3)
    assert result.shape == (37, 53, 2)
    np.testing.assert_allclose(result, per_pixel_batch(image[None])[0], atol=1e-6)


def test_predict_image_calls_keras_models_with_fixed_size_batches():

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


@pytest.mark.parametrize("shape", [(37, 53), (256, 256), (300, 700), (520, 696), (1000, 333)])
def test_stitching_reproduces_a_per_pixel_function_exactly(shape):
    rng = np.random.default_rng(0)
    image = rng.normal(size=shape + (3,)).astype(np.float32)

    def per_pixel(batch):
        assert batch.shape[1] % 16 == 0 and batch.shape[2] % 16 == 0
        return np.stack([batch.sum(-1), batch[..., 0] ** 2], axis=-1)

    stitched = predict.predict_tiled(per_pixel, image, tile_size=128, overlap=32, multiple=16)
    assert np.array_equal(stitched, per_pixel(data.pad_to(image, 1024, 1024)[None])[0][: shape[0], : shape[1]])


def test_stitching_has_no_boundary_effects_for_a_local_filter():
    rng = np.random.default_rng(1)
    image = rng.normal(size=(300, 410, 1)).astype(np.float32)
    radius = 7  # receptive field smaller than the discarded margin (overlap // 2 = 16)

    def local_filter(batch):
        return np.stack([ndi.uniform_filter(x, size=(2 * radius + 1, 2 * radius + 1, 1), mode="constant") for x in batch])

    stitched = predict.predict_tiled(local_filter, image, tile_size=128, overlap=32, multiple=16)
    # the image edges are mirrored by overlap // 2 before tiling, as the seams are
    whole = local_filter(np.pad(image, ((16, 16), (16, 16), (0, 0)), mode="reflect")[None])[0][16:-16, 16:-16]
    np.testing.assert_allclose(stitched, whole, atol=1e-5)


def test_tile_keep_ranges_partition_the_axis():
    for length in (128, 129, 500, 1388):
        tiles = predict.tile_positions(length, 128, 16)
        kept = np.concatenate([np.arange(a, b) for _, a, b in tiles])
        assert np.array_equal(kept, np.arange(length))
        for start, keep_from, keep_to in tiles:
            assert start <= keep_from and keep_to <= start + 128


# ------------------------------------------------------------------------------------------
# A real (tiny, untrained) U-Net
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_network(tmp_path_factory):
    """An untrained 3-block U-Net with F=4, saved and loaded like a trained network."""
    directory = tmp_path_factory.mktemp("net") / "M3"
    directory.mkdir()
    cfg = config.training_config("M3", "quick", filters=4)
    model = training.build_model(cfg)
    model.save(directory / "model.keras")
    (directory / "config.json").write_text(json.dumps(cfg.to_dict()))
    return directory, cfg


def test_predict_probabilities_of_a_real_unet_are_softmax_maps_of_the_image_size(tiny_network):
    directory, cfg = tiny_network
    network = training.load_network(directory)
    assert network.config == cfg and network.name == "M3" and network.blocks == cfg.blocks
    model = network.model
    image = np.random.default_rng(0).integers(0, 255, (70, 90, 3), dtype=np.uint8)
    probs = predict.predict_probabilities(model, image)
    assert probs.shape == (70, 90, 3) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=1e-5)
    # The network's input is the paper's normalisation, in tiles a multiple of 2**blocks.
    direct = predict.predict_image(model, image / 127.5 - 1, overlap=32, multiple=unet.required_multiple(cfg.blocks))
    np.testing.assert_allclose(probs, direct, atol=1e-5)
    with_tta = predict.predict_probabilities(model, image, tta=True)
    assert with_tta.shape == probs.shape and not np.allclose(with_tta, probs)


class PerPixelModel:
    """A Keras-like model with ``pools`` pooling layers whose output is its first input channel."""

    output_shape = (None, None, None, 1)

    def __init__(self, pools):
        import keras

        self.layers = [keras.layers.Conv2D(1, 1)] + [keras.layers.MaxPooling2D() for _ in range(pools)]

    def predict_on_batch(self, batch):
        return batch[..., :1]


def test_the_tiles_follow_the_depth_of_the_model_unless_given(monkeypatch):
    multiples = []
    original = predict.predict_tiled
    monkeypatch.setattr(predict, "predict_tiled", lambda *args, **kwargs: multiples.append(kwargs["multiple"]) or original(*args, **kwargs))
    image = np.random.default_rng(0).integers(0, 255, (40, 44, 3), dtype=np.uint8)
    for pools in (0, 3, 4, 5):
        out = predict.predict_probabilities(PerPixelModel(pools), image)
        assert out.shape == (40, 44, 1) and np.allclose(out[..., 0], data.normalize(image[..., 0]))
    assert multiples == [1, 8, 16, 32]
    predict.predict_probabilities(PerPixelModel(3), image, blocks=4)  # a given depth wins over the model's
    assert multiples[-1] == 16
    assert unet.network_depth(unet.build_unet(blocks=4, filters=2)) == 4  # a U-Net pools once per block


def test_loading_a_missing_network_names_the_command_that_trains_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m nucleitut train B4"):
        training.load_network(tmp_path / "B4")


def test_combine_predictions_fuses_a_generator_exactly_like_the_stacked_views():
    rng = np.random.default_rng(3)
    views = [rng.random((5, 7, 3), dtype=np.float32) for _ in range(4)]
    stack = np.stack(views)
    expected = stack.mean(axis=0, dtype=np.float64).astype(np.float32)
    expected[..., 2] = stack[..., 2].max(axis=0)
    assert np.array_equal(combine_predictions(iter(views)), expected)
    assert np.array_equal(combine_predictions(views), expected)
    assert np.array_equal(combine_predictions(v for v in views[:1]), views[0])
    with pytest.raises(ValueError, match="at least one prediction"):
        combine_predictions(iter([]))


def test_a_uint8_image_normalised_tile_by_tile_predicts_exactly_as_normalised_whole(tiny_network):
    directory, cfg = tiny_network
    model = training.load_network(directory).model
    image = np.random.default_rng(1).integers(0, 255, (300, 280, 3), dtype=np.uint8)  # several tiles
    multiple = unet.required_multiple(cfg.blocks)
    whole = predict.tta_predict(lambda x: predict.predict_image(model, x, tile_size=128, overlap=32, multiple=multiple,
                                                                batch_pixels=predict.BATCH_PIXELS),
                                data.normalize(image))
    assert np.array_equal(predict.predict_probabilities(model, image, tta=True, tile_size=128), whole)
    plain = predict.predict_image(model, data.normalize(image), tile_size=128, overlap=32, multiple=multiple,
                                  batch_pixels=predict.BATCH_PIXELS)
    assert np.array_equal(predict.predict_probabilities(model, image, tile_size=128), plain)
    # 0..255 values in another dtype take the whole-image path, with the same result.
    assert np.array_equal(predict.predict_probabilities(model, image.astype(np.float32), tile_size=128), plain)


def test_tta_uses_views_already_predicted_instead_of_predicting_them_again():
    image = np.random.default_rng(1).random((6, 8, 1), dtype=np.float32)
    seen = []

    def fn(im):
        seen.append(im.shape)
        return np.concatenate([1 - im, im, np.roll(im, 1, axis=0)], axis=-1)

    full = predict.tta_predict(fn, image)
    assert len(seen) == len(predict.DEFAULT_TTA)
    seen.clear()
    reused = predict.tta_predict(fn, image, known={"identity": fn(image)})
    assert len(seen) == 1 + len(predict.DEFAULT_TTA) - 1  # the identity view once, by the caller
    assert np.array_equal(reused, full)
    # a known view is used as given (here a wrong one, which changes the fused result)
    assert not np.array_equal(predict.tta_predict(fn, image, known={"identity": np.zeros((6, 8, 3), np.float32)}), full)


def test_large_tiles_go_in_smaller_batches_and_short_batches_are_padded():
    shapes = []

    def record(batch):
        shapes.append(batch.shape)
        return per_pixel_batch(batch)

    image = np.random.default_rng(7).random((100, 100, 2), dtype=np.float32)
    result = predict.predict_tiled(record, image, tile_size=64, overlap=8, multiple=16, batch_size=8,
                                   batch_pixels=2 * 64 * 64, pad_batches=True)
    np.testing.assert_allclose(result, per_pixel_batch(image[None])[0], atol=1e-6)
    # 108 px with 4 px margins: 2 tiles of 64 per axis (not 3), 4 tiles in batches of 2
    assert shapes == [(2, 64, 64, 2)] * 2
    shapes.clear()
    short = predict.predict_tiled(record, image[:60], tile_size=64, overlap=8, multiple=16, batch_size=8,
                                  batch_pixels=3 * 48 * 64, pad_batches=True)
    np.testing.assert_allclose(short, per_pixel_batch(image[None, :60])[0], atol=1e-6)
    # 68 rows: 2 tiles of 48 (as equal as the multiple allows); 4 tiles in batches of 3, the
    # last one padded from 1 to 3
    assert shapes == [(3, 48, 64, 2)] * 2
