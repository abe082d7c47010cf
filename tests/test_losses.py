import keras
import numpy as np
import pytest
from keras import ops

from nucleitut.losses import (
    LOSSES,
    Bce,
    BceDice,
    Cce,
    CceDice,
    Dice,
    DiceCoefficient,
    GeneralizedDice,
    WeightedBce,
    WeightedCce,
    get_loss,
    with_weights,
)

# keras.config.epsilon(); the bounds are float32 like the tensors (1 - 1e-7 rounds to 1 - 2**-23).
LOW, HIGH = np.float32(1e-7), np.float32(1) - np.float32(1e-7)
RNG = np.random.default_rng(42)
SHAPE = (2, 6, 5)


def _binary():
    y_true = (RNG.random(SHAPE + (1,)) > 0.6).astype(np.float32)
    y_pred = RNG.random(SHAPE + (1,)).astype(np.float32)
    # Confidently wrong pixels: without clipping the loss would be infinite.
    y_true[0, 0, 0, 0], y_pred[0, 0, 0, 0] = 1.0, 0.0
    y_true[1, 0, 0, 0], y_pred[1, 0, 0, 0] = 0.0, 1.0
    return y_true, y_pred


def _categorical(channels=3):
    classes = RNG.integers(0, channels, size=SHAPE)
    y_true = np.eye(channels, dtype=np.float32)[classes]
    logits = RNG.normal(size=SHAPE + (channels,))
    y_pred = (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)).astype(np.float32)
    return y_true, y_pred


def _weights():
    return RNG.uniform(0.5, 5.0, size=SHAPE).astype(np.float32)


def evaluate(loss, y_true, y_pred):
    value = loss(ops.convert_to_tensor(y_true), ops.convert_to_tensor(y_pred))
    return float(np.asarray(value))


# Independent numpy references, one value per image then the batch mean.


def np_bce(t, p, w=None):
    p = np.clip(p, LOW, HIGH).astype(np.float64)
    values = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    if w is not None:
        values = values * w[..., None]
    return values.reshape(len(t), -1).mean(1)


def np_cce(t, p, w=None):
    p = np.clip(p / p.sum(-1, keepdims=True), LOW, HIGH).astype(np.float64)
    values = -(t * np.log(p)).sum(-1)
    if w is not None:
        values = values * w
    return values.reshape(len(t), -1).mean(1)


def np_dice(t, p, smooth=1.0):
    t, p = t.reshape(len(t), -1), p.reshape(len(p), -1).astype(np.float64)
    return 1 - (2 * (t * p).sum(1) + smooth) / (t.sum(1) + p.sum(1) + smooth)


def np_generalized_dice(t, p, smooth=1.0):
    if t.shape[-1] == 1:
        t, p = np.concatenate([1 - t, t], -1), np.concatenate([1 - p, p], -1)
    results = []
    for ti, pi in zip(t.reshape(len(t), -1, t.shape[-1]), p.reshape(len(p), -1, p.shape[-1])):
        r = ti.sum(0)
        w = np.zeros_like(r, dtype=np.float64)
        w[r > 0] = 1 / r[r > 0] ** 2
        w[r == 0] = w.max()
        w /= w.sum()
        numerator = 2 * (w * (ti * pi).sum(0)).sum() + smooth
        denominator = (w * (r + pi.sum(0))).sum() + smooth
        results.append(1 - numerator / denominator)
    return np.array(results)


def test_bce_matches_numpy_formula_with_clipping():
    t, p = _binary()
    assert evaluate(Bce(), t, p) == pytest.approx(np_bce(t, p).mean(), abs=1e-5)


def test_weighted_bce_matches_numpy_formula():
    t, p = _binary()
    w = _weights()
    expected = np_bce(t, p, w).mean()
    assert evaluate(WeightedBce(), with_weights(t, w), p) == pytest.approx(expected, abs=1e-5)


def test_cce_matches_numpy_formula():
    t, p = _categorical()
    assert evaluate(Cce(), t, p) == pytest.approx(np_cce(t, p).mean(), abs=1e-5)


def test_weighted_cce_matches_numpy_formula():
    t, p = _categorical()
    w = _weights()
    expected = np_cce(t, p, w).mean()
    assert evaluate(WeightedCce(), with_weights(t, w), p) == pytest.approx(expected, abs=1e-5)


def test_dice_matches_numpy_formula():
    t, p = _binary()
    assert evaluate(Dice(), t, p) == pytest.approx(np_dice(t, p).mean(), abs=1e-5)
    assert evaluate(Dice(smooth=0.1), t, p) == pytest.approx(np_dice(t, p, 0.1).mean(), abs=1e-5)


def test_generalized_dice_matches_numpy_formula_for_three_classes():
    t, p = _categorical()
    t[1, ..., 2] = 0  # image 1 has no border pixel: its class gets the largest weight
    t[1, ..., 0] = 1 - t[1, ..., 1]
    expected = np_generalized_dice(t, p).mean()
    assert evaluate(GeneralizedDice(), t, p) == pytest.approx(expected, abs=1e-5)


def test_generalized_dice_treats_one_channel_as_two_classes():
    t, p = _binary()
    expected = np_generalized_dice(t, p).mean()
    assert evaluate(GeneralizedDice(), t, p) == pytest.approx(expected, abs=1e-5)


def test_bce_dice_is_the_sum_of_bce_and_dice():
    t, p = _binary()
    expected = (np_bce(t, p) + np_dice(t, p)).mean()
    assert evaluate(BceDice(), t, p) == pytest.approx(expected, abs=1e-5)


def test_cce_dice_adds_the_dice_of_object_and_border_channels():
    t, p = _categorical()
    expected = np_cce(t, p) + np_dice(t[..., 1:2], p[..., 1:2]) + np_dice(t[..., 2:3], p[..., 2:3])
    assert evaluate(CceDice(), t, p) == pytest.approx(expected.mean(), abs=1e-5)


def test_cce_dice_rejects_one_channel_predictions():
    t, p = _binary()
    with pytest.raises(ValueError, match="3 channels"):
        evaluate(CceDice(), t, p)


def test_weighted_losses_with_unit_weights_equal_the_unweighted_ones():
    t, p = _categorical()
    ones = np.ones(SHAPE, dtype=np.float32)
    assert evaluate(WeightedCce(), with_weights(t, ones), p) == pytest.approx(
        evaluate(Cce(), t, p), abs=1e-6
    )
    tb, pb = _binary()
    assert evaluate(WeightedBce(), with_weights(tb, ones), pb) == pytest.approx(
        evaluate(Bce(), tb, pb), abs=1e-6
    )


def test_perfect_prediction_gives_zero_dice_losses():
    t, _ = _categorical()
    assert evaluate(Dice(), t[..., 1:2], t[..., 1:2]) == pytest.approx(0.0, abs=1e-6)
    assert evaluate(GeneralizedDice(), t, t) == pytest.approx(0.0, abs=1e-6)
    # An empty image predicted empty is perfect thanks to the smoothing.
    empty = np.zeros(SHAPE + (1,), dtype=np.float32)
    assert evaluate(Dice(), empty, empty) == 0.0


def test_losses_return_one_value_per_image_without_reduction():
    t, p = _binary()
    values = np.asarray(Bce(reduction="none")(t, p))
    assert values.shape == (2,)
    np.testing.assert_allclose(values, np_bce(t, p), atol=1e-5)


def test_get_loss_maps_every_name_and_rejects_unknown_ones():
    assert sorted(LOSSES) == [
        "bce", "bce_dice", "cce", "cce_dice", "dice", "generalized_dice", "weighted_bce",
        "weighted_cce",
    ]
    for name, cls in LOSSES.items():
        loss = get_loss(name)
        assert type(loss) is cls and loss.name == name
    assert get_loss("dice", smooth=0.5).smooth == 0.5
    with pytest.raises(ValueError, match="unknown loss 'iou'"):
        get_loss("iou")


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_losses_round_trip_through_keras_serialization(name):
    loss = get_loss(name, smooth=0.5) if "dice" in name else get_loss(name)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(restored) is type(loss)
    assert restored.get_config() == loss.get_config()


def test_with_weights_appends_the_weight_map_as_last_channel():
    target = np.zeros((4, 5, 3), dtype=np.float32)
    weights = np.full((4, 5), 2.5, dtype=np.float32)
    combined = with_weights(target, weights)
    assert combined.shape == (4, 5, 4) and combined.dtype == np.float32
    np.testing.assert_array_equal(combined[..., 3], weights)
    np.testing.assert_array_equal(with_weights(target, weights[..., None]), combined)
    with pytest.raises(ValueError, match="do not match"):
        with_weights(target, np.ones((5, 4)))


def test_dice_coefficient_thresholds_the_object_channel_over_all_batches():
    metric = DiceCoefficient()
    t = np.zeros((1, 2, 4, 3), dtype=np.float32)
    t[..., 0] = 1
    t[0, 0, :2] = [0, 1, 0]  # two object pixels
    p = np.full((1, 2, 4, 3), 1 / 3, dtype=np.float32)
    p[0, 0, 0] = [0.1, 0.8, 0.1]  # one hit, one miss
    p[0, 1, 3] = [0.2, 0.6, 0.2]  # one false positive
    metric.update_state(t, p)
    assert float(metric.result()) == pytest.approx(2 * 1 / (2 + 2))
    metric.update_state(t, t)  # a perfect batch: intersection 2, sizes 2 + 2
    assert float(metric.result()) == pytest.approx(2 * 3 / (4 + 4))
    metric.reset_state()
    assert float(metric.result()) == 1.0


def test_dice_coefficient_ignores_the_weight_channel_and_can_be_soft():
    t, p = _binary()
    metric = DiceCoefficient(threshold=None)
    metric.update_state(with_weights(t, _weights()), p)
    expected = 2 * (t * p).sum() / (t.sum() + p.sum())
    assert float(metric.result()) == pytest.approx(expected, abs=1e-5)
    restored = DiceCoefficient.from_config(metric.get_config())
    assert restored.threshold is None and restored.name == "dice_coefficient"
