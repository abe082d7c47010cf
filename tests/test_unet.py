import keras
import numpy as np
import pytest

from nucleitut.losses import DiceCoefficient, get_loss, with_weights
from nucleitut.unet import build_unet, required_multiple


def expected_parameters(blocks, filters, in_channels=3, out_channels=1):
    """Parameter count of the Figure 3 U-Net, counted layer by layer.

    3 x 3 convolutions without bias (batch norm follows), batch norm with 4 values per channel
    (gamma, beta, moving mean and variance), 2 x 2 transposed convolutions and the final
    1 x 1 convolution with bias.
    """

    def double_conv(c_in, c_out):
        return 9 * c_in * c_out + 4 * c_out + 9 * c_out * c_out + 4 * c_out

    total, channels = 0, in_channels
    for level in range(blocks + 1):  # encoder levels and the bottleneck
        total += double_conv(channels, filters * 2**level)
        channels = filters * 2**level
    for level in reversed(range(blocks)):  # decoder
        level_filters = filters * 2**level
        total += 4 * channels * level_filters + level_filters  # transposed convolution
        total += double_conv(2 * level_filters, level_filters)  # after the concatenation
        channels = level_filters
    return total + channels * out_channels + out_channels


def test_required_multiple_is_two_to_the_number_of_blocks():
    assert [required_multiple(b) for b in (3, 4, 5)] == [8, 16, 32]
    with pytest.raises(ValueError, match="blocks must be one of"):
        required_multiple(6)


@pytest.mark.parametrize("out_channels", [1, 3])
def test_four_block_f64_unet_has_31_million_parameters_and_keeps_the_size(out_channels):
    model = build_unet(blocks=4, filters=64, out_channels=out_channels)
    assert model.count_params() == expected_parameters(4, 64, out_channels=out_channels)
    assert round(model.count_params() / 1e6, 1) == 31.0
    output = np.asarray(model(np.zeros((1, 256, 256, 3), dtype=np.float32), training=False))
    assert output.shape == (1, 256, 256, out_channels)
    assert output.dtype == np.float32


@pytest.mark.parametrize(
    "blocks, filters, millions",
    [(5, 32, 31.1), (4, 32, 7.8), (4, 16, 1.95), (3, 16, 0.48)],
)
def test_parameter_counts_match_the_reference_configurations(blocks, filters, millions):
    count = build_unet(blocks=blocks, filters=filters).count_params()
    assert count == expected_parameters(blocks, filters)
    assert round(count / 1e6, 2 if millions < 2 else 1) == millions


def test_output_activation_follows_the_channel_count():
    x = np.random.default_rng(0).normal(size=(1, 16, 24, 3)).astype(np.float32)
    binary = build_unet(blocks=3, filters=4, out_channels=1)
    y = np.asarray(binary(x, training=False))
    assert y.min() > 0 and y.max() < 1  # sigmoid
    three = build_unet(blocks=3, filters=4, out_channels=3)
    np.testing.assert_allclose(np.asarray(three(x, training=False)).sum(-1), 1.0, atol=1e-5)
    assert three.layers[-1].dtype_policy.name == "float32"


def test_three_block_unet_accepts_a_non_square_input():
    model = build_unet(blocks=3, filters=8, out_channels=3)
    output = model(np.zeros((1, 40, 64, 3), dtype=np.float32), training=False)
    assert tuple(output.shape) == (1, 40, 64, 3)


def test_invalid_configurations_are_rejected():
    with pytest.raises(ValueError, match="blocks must be one of"):
        build_unet(blocks=2)
    with pytest.raises(TypeError, match="filters must be an integer"):
        build_unet(filters=8.0)
    with pytest.raises(ValueError, match="softmax output needs"):
        build_unet(out_channels=1, activation="softmax")


@pytest.mark.parametrize(
    "loss, out_channels, weighted",
    [("cce_dice", 3, False), ("weighted_bce", 1, True)],
)
def test_compiled_model_saves_and_reloads_in_safe_mode(tmp_path, loss, out_channels, weighted):
    model = build_unet(blocks=3, filters=4, out_channels=out_channels)
    model.compile(optimizer="adam", loss=get_loss(loss), metrics=[DiceCoefficient()])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 16, 16, 3)).astype(np.float32)
    classes = rng.integers(0, out_channels if out_channels > 1 else 2, size=(2, 16, 16))
    y = np.eye(max(out_channels, 2), dtype=np.float32)[classes][..., -out_channels:]
    if weighted:
        y = with_weights(y, rng.uniform(1, 3, size=(2, 16, 16)))
    model.fit(x, y, epochs=1, batch_size=2, verbose=0)  # moves the batch-norm statistics

    path = tmp_path / "m.keras"
    model.save(path)
    restored = keras.models.load_model(path, safe_mode=True)

    np.testing.assert_array_equal(
        restored.predict(x, verbose=0), model.predict(x, verbose=0)
    )
    assert type(restored.loss) is type(model.loss)
    assert restored.evaluate(x, y, verbose=0, return_dict=True)["loss"] == pytest.approx(
        model.evaluate(x, y, verbose=0, return_dict=True)["loss"], rel=1e-6
    )
