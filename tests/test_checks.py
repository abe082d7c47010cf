"""The exercise checkpoints (nucleitut.checks): each accepts the library's own function, rejects
plausible wrong ones with a message that says where they go wrong, and calls an untouched
skeleton "not done yet"."""

import dataclasses
import json
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import layers, ops
from scipy import ndimage as ndi
from skimage.measure import label
from skimage.morphology import disk
from skimage.segmentation import watershed

from nucleitut import checks, config, data, losses, metrics, postprocess, predict, targets, training, unet


def test_check_failed_is_an_assertion_error():
    assert issubclass(checks.CheckFailed, AssertionError)


def test_not_done_recognises_what_a_skeleton_returns():
    assert checks.not_done(None) and checks.not_done(...)
    assert not checks.not_done(0) and not checks.not_done(np.zeros(2))


# --------------------------------------------------------------------------- skeletons


def _skeleton_1(x):
    ...


def _skeleton_2(x, y):
    ...


def _skeleton_3(x, y, z):
    ...


def _returns_ellipsis(*args):
    return ...


def _raises_not_implemented(*args):
    raise NotImplementedError


SKELETON_CALLS = {
    "normalize": lambda fn: checks.check_normalize(fn),
    "close_label_holes": lambda fn: checks.check_close_label_holes(fn),
    "crop_positions": lambda fn: checks.check_crop_positions(fn),
    "bce_dice": lambda fn: checks.check_bce_dice(fn),
    "build_unet": lambda fn: checks.check_unet(fn),
    "border_target": lambda fn: checks.check_border_target(fn),
    "marker_target": lambda fn: checks.check_marker_target(fn),
    "watershed_labels": lambda fn: checks.check_watershed(fn),
    "apply_transform": lambda fn: checks.check_tta(fn, predict.invert_transform),
    "invert_transform": lambda fn: checks.check_tta(predict.apply_transform, fn),
    "combine_predictions": lambda fn: checks.check_fusion(fn),
    "match_counts": lambda fn: checks.check_match(fn),
    "changed_config": lambda fn: checks.check_changed_config(fn, config.training_config("B1", "quick")),
}
SKELETONS = {
    "normalize": _skeleton_1,
    "close_label_holes": _skeleton_1,
    "crop_positions": _skeleton_2,
    "bce_dice": _skeleton_2,
    "build_unet": _skeleton_3,
    "border_target": _skeleton_1,
    "marker_target": _skeleton_1,
    "watershed_labels": _skeleton_1,
    "apply_transform": _skeleton_2,
    "invert_transform": _skeleton_2,
    "combine_predictions": _skeleton_1,
    "match_counts": _skeleton_3,
    "changed_config": _skeleton_1,
}


@pytest.mark.parametrize("task", sorted(SKELETON_CALLS))
def test_untouched_skeleton_is_not_done_yet_and_the_message_names_the_task(task):
    with pytest.raises(checks.CheckFailed) as failure:
        SKELETON_CALLS[task](SKELETONS[task])
    message = str(failure.value)
    assert message.startswith("not done yet:")
    assert task in message


@pytest.mark.parametrize(
    "skeleton", [_returns_ellipsis, _raises_not_implemented], ids=["returns_ellipsis", "raises_not_implemented"]
)
def test_a_skeleton_returning_ellipsis_or_raising_not_implemented_is_not_done_yet(skeleton):
    with pytest.raises(checks.CheckFailed, match=r"^not done yet: border_target"):
        checks.check_border_target(skeleton)


def test_an_error_in_the_students_function_names_the_case_and_the_error():
    def broken(labels):
        return targets.border_target(labels > 0)

    expected = r"border_target: no nuclei: your function raised TypeError: labels must"
    with pytest.raises(checks.CheckFailed, match=expected):
        checks.check_border_target(broken)


# --------------------------------------------------------------------------- normalize


def test_check_normalize_accepts_the_library_function(capsys):
    assert checks.check_normalize(data.normalize) is True
    assert capsys.readouterr().out == "normalize: correct on 4 cases\n"


def test_check_normalize_rejects_dividing_by_255_and_names_the_pixel():
    with pytest.raises(checks.CheckFailed, match=r"pixel \(row 0, col 0\): got 0\.0, expected -1\.0"):
        checks.check_normalize(lambda image: (image / 255).astype(np.float32))


def test_check_normalize_rejects_float64():
    with pytest.raises(checks.CheckFailed, match=r"wrong dtype: got float64, expected float32"):
        checks.check_normalize(lambda image: image / 127.5 - 1)


def test_check_normalize_rejects_uint8_arithmetic_that_wraps_around_at_255():
    def wraps(image):
        return (image * np.uint8(2) / np.float32(255) - 1).astype(np.float32)  # 255 * 2 wraps to 254 in uint8

    with pytest.raises(checks.CheckFailed, match=r"black and white.*expected 1\.0.*the input value there is 255"):
        checks.check_normalize(wraps)


# --------------------------------------------------------------------------- close_label_holes


def _fill_holes_only(labels):
    out = labels.copy()
    for value in np.unique(labels[labels > 0]):
        out[ndi.binary_fill_holes(labels == value) & (out == 0)] = value
    return out


def _close_the_union(labels):
    closed = ndi.binary_fill_holes(ndi.binary_closing(labels > 0, disk(1)))
    _, (rows, cols) = ndi.distance_transform_edt(labels == 0, return_indices=True)
    return (labels[rows, cols] * closed).astype(np.int32)


def test_check_close_label_holes_accepts_the_library_function():
    assert checks.check_close_label_holes(data.close_label_holes)


def test_check_close_label_holes_rejects_filling_holes_without_closing():
    with pytest.raises(checks.CheckFailed, match=r"one-pixel-wide crack: pixel \(row 2, col 4\): got 0, expected 2"):
        checks.check_close_label_holes(_fill_holes_only)


def test_check_close_label_holes_rejects_closing_all_nuclei_together():
    expected = r"two nuclei one pixel apart: pixel \(row 2, col 4\): got 1, expected 0"
    with pytest.raises(checks.CheckFailed, match=expected):
        checks.check_close_label_holes(_close_the_union)


def test_check_close_label_holes_rejects_a_grey_closing_of_the_label_image():
    with pytest.raises(checks.CheckFailed, match=r"one nucleus with a one-pixel hole: pixel .*expected 0") as failure:
        checks.check_close_label_holes(lambda labels: ndi.grey_closing(labels, footprint=disk(1)))
    assert "yours" in str(failure.value) and "expected" in str(failure.value), "a map of both label images"


# --------------------------------------------------------------------------- crop_positions


def test_check_crop_positions_accepts_the_library_function():
    assert checks.check_crop_positions(training.crop_positions)


def test_check_crop_positions_rejects_crops_that_miss_the_end_of_the_axis():
    with pytest.raises(checks.CheckFailed, match=r"got \[0\], expected \[0, 1\]; your last crop ends at 256"):
        checks.check_crop_positions(lambda length, size: list(range(0, max(length - size, 0) + 1, size)))


def test_check_crop_positions_rejects_rounding_the_number_of_crops_down():
    def too_few(length, size):
        n = max(length // size, 1)
        return [round(i * (length - size) / max(n - 1, 1)) for i in range(n)]

    with pytest.raises(checks.CheckFailed, match=r"expected \[0, 1\]"):
        checks.check_crop_positions(too_few)


# --------------------------------------------------------------------------- bce_dice

EPS = keras.config.epsilon()


def _bce(y_true, y_pred, clip=True):
    p = ops.clip(y_pred, EPS, 1 - EPS) if clip else y_pred
    return ops.mean(-(y_true * ops.log(p) + (1 - y_true) * ops.log(1 - p)), axis=(1, 2, 3))


def _dice(y_true, y_pred, smooth=1.0, axis=(1, 2, 3)):
    intersection = ops.sum(y_true * y_pred, axis=axis)
    return 1 - (2 * intersection + smooth) / (ops.sum(y_true, axis=axis) + ops.sum(y_pred, axis=axis) + smooth)


def test_check_bce_dice_accepts_the_library_loss_per_image_and_reduced():
    assert checks.check_bce_dice(lambda y_true, y_pred: losses.BceDice().call(y_true, y_pred))
    assert checks.check_bce_dice(losses.BceDice())
    assert checks.check_bce_dice(lambda y_true, y_pred: _bce(y_true, y_pred) + _dice(y_true, y_pred))


def test_check_bce_dice_rejects_the_loss_without_the_dice_term():
    expected = r"all background.*got 0\.105361, expected 0\.720745.*Dice loss 0\.615385"
    with pytest.raises(checks.CheckFailed, match=expected):
        checks.check_bce_dice(lambda y_true, y_pred: _bce(y_true, y_pred))


def test_check_bce_dice_rejects_a_dice_without_smoothing():
    with pytest.raises(checks.CheckFailed, match=r"all background.*got 1\.10536, expected 0\.720745"):
        checks.check_bce_dice(lambda y_true, y_pred: _bce(y_true, y_pred) + _dice(y_true, y_pred, smooth=0.0))


def test_check_bce_dice_rejects_a_dice_over_the_whole_batch():
    def batch_dice(y_true, y_pred):
        return ops.mean(_bce(y_true, y_pred)) + _dice(y_true, y_pred, axis=(0, 1, 2, 3))

    with pytest.raises(checks.CheckFailed, match=r"a batch of two images.*got 0\.619682, expected 0\.754669"):
        checks.check_bce_dice(batch_dice)


def test_check_bce_dice_rejects_an_unclipped_logarithm_with_a_nan_message():
    with pytest.raises(checks.CheckFailed, match=r"exactly 0 and 1: got nan.*clip"):
        checks.check_bce_dice(lambda y_true, y_pred: _bce(y_true, y_pred, clip=False) + _dice(y_true, y_pred))


def test_check_bce_dice_rejects_a_loss_per_pixel():
    with pytest.raises(checks.CheckFailed, match=r"wrong shape: got \(1, 4, 4\), expected \(1,\)"):
        checks.check_bce_dice(lambda y_true, y_pred: keras.losses.binary_crossentropy(y_true, y_pred))


# --------------------------------------------------------------------------- build_unet


def _two_convs(x, filters, bias):
    for _ in range(2):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=bias)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
    return x


def _student_unet(blocks, filters, out_channels, bias=False, skips=True, activation=None):
    inputs = keras.Input((None, None, 3))
    x, features = inputs, []
    for level in range(blocks):
        x = _two_convs(x, filters * 2**level, bias)
        features.append(x)
        x = layers.MaxPooling2D(2)(x)
    x = _two_convs(x, filters * 2**blocks, bias)
    for level in reversed(range(blocks)):
        x = layers.Conv2DTranspose(filters * 2**level, 2, strides=2)(x)
        if skips:
            x = layers.Concatenate()([features[level], x])
        x = _two_convs(x, filters * 2**level, bias)
    activation = activation or ("sigmoid" if out_channels == 1 else "softmax")
    return keras.Model(inputs, layers.Conv2D(out_channels, 1, activation=activation)(x))


def test_check_unet_accepts_the_library_builder_and_an_equivalent_one():
    assert checks.check_unet(unet.build_unet)
    assert checks.check_unet(_student_unet)


def test_check_unet_rejects_a_sigmoid_for_three_classes():
    with pytest.raises(checks.CheckFailed, match=r"build_unet\(3, 2, 3\): the 3 output channels sum to .* softmax"):
        checks.check_unet(lambda blocks, filters, out: _student_unet(blocks, filters, out, activation="sigmoid"))


def test_check_unet_rejects_convolutions_with_bias_and_says_so():
    expected = r"wrong number of parameters: got 8023, expected 7935.*use_bias=False"
    with pytest.raises(checks.CheckFailed, match=expected):
        checks.check_unet(lambda blocks, filters, out: _student_unet(blocks, filters, out, bias=True))


def test_check_unet_rejects_a_unet_without_skip_connections_and_names_the_missing_layers():
    with pytest.raises(checks.CheckFailed, match=r"layers that differ: Concatenate: 0 \(expected 3\)"):
        checks.check_unet(lambda blocks, filters, out: _student_unet(blocks, filters, out, skips=False))


def test_check_unet_rejects_a_network_of_one_input_size():
    def fixed(blocks, filters, out):
        model = _student_unet(blocks, filters, out)
        inputs = keras.Input((256, 256, 3))
        return keras.Model(inputs, model(inputs))

    with pytest.raises(checks.CheckFailed, match=r"fails on an image of 16 x 16 pixels.*shape=\(None, None, 3\)"):
        checks.check_unet(fixed)


def test_check_unet_rejects_a_model_that_is_not_a_keras_model():
    with pytest.raises(checks.CheckFailed, match=r"expected a keras.Model, got list"):
        checks.check_unet(lambda blocks, filters, out: [blocks, filters, out])


# --------------------------------------------------------------------------- border_target


def _background_counts_as_a_label(labels):
    largest = ndi.grey_dilation(labels, size=3)
    smallest = ndi.grey_erosion(labels, size=3)
    classes = np.where((largest != smallest) & (labels > 0), 2, np.where(labels > 0, 1, 0))
    return np.eye(3, dtype=np.float32)[classes]


def test_check_border_target_accepts_the_library_function():
    assert checks.check_border_target(targets.border_target)


def test_check_border_target_rejects_the_boundary_target_and_draws_both_maps():
    with pytest.raises(checks.CheckFailed) as failure:
        checks.check_border_target(targets.boundary_target)
    message = str(failure.value)
    assert message.startswith(
        "border_target: one nucleus: pixel (row 2, col 2), channel 1 (object): got 0.0, expected 1.0"
    )
    assert "that pixel is border in yours, object in the expected target" in message
    assert "..BBBB..   ..oooo.." in message


def test_check_border_target_rejects_a_border_that_is_not_dilated():
    expected = r"two touching nuclei: pixel \(row 2, col 4\).*object in yours, border in"
    with pytest.raises(checks.CheckFailed, match=expected):
        checks.check_border_target(lambda labels: targets.border_target(labels, dilation=0))


def test_check_border_target_rejects_counting_the_background_as_a_neighbour():
    with pytest.raises(checks.CheckFailed, match=r"one nucleus: .*border in yours, object in the expected"):
        checks.check_border_target(_background_counts_as_a_label)


def test_check_border_target_rejects_float64():
    with pytest.raises(checks.CheckFailed, match=r"no nuclei: wrong dtype: got float64, expected float32"):
        checks.check_border_target(lambda labels: targets.border_target(labels).astype(np.float64))


# --------------------------------------------------------------------------- marker_target


def _markers_with(labels, edge_erodes=False, keep_small=True):
    """The marker target with the library's border but markers eroded in a student's way."""
    markers = np.zeros(labels.shape, bool)
    for value in np.unique(labels[labels > 0]):
        mask = labels == value
        eroded = ndi.binary_erosion(mask, disk(2), border_value=0 if edge_erodes else 1)
        if keep_small and not eroded.any():
            distance = ndi.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
            eroded = distance == distance.max()
        markers |= eroded
    border = targets.marker_target(labels)[..., 2] == 1
    return np.eye(3, dtype=np.float32)[np.where(border, 2, markers.astype(int))]


def test_check_marker_target_accepts_the_library_function():
    assert checks.check_marker_target(targets.marker_target)
    assert checks.check_marker_target(_markers_with)


def test_check_marker_target_rejects_losing_the_marker_of_a_small_nucleus():
    expected = r"small nucleus.*pixel \(row 3, col 3\).*background in yours, marker in"
    with pytest.raises(checks.CheckFailed, match=expected):
        checks.check_marker_target(lambda labels: _markers_with(labels, keep_small=False))


def test_check_marker_target_rejects_eroding_from_the_image_edge():
    with pytest.raises(checks.CheckFailed, match=r"cut by the image edge: pixel \(row 3, col 0\)"):
        checks.check_marker_target(lambda labels: _markers_with(labels, edge_erodes=True))


def test_check_marker_target_rejects_the_thinner_border_of_the_border_target():
    expected = r"two touching nuclei: .*background in yours, border in the expected"
    with pytest.raises(checks.CheckFailed, match=expected):
        checks.check_marker_target(lambda labels: targets.marker_target(labels, border_dilation=1))


# --------------------------------------------------------------------------- watershed


def _seeds(probs, from_object_only=False):
    marker_map = probs[..., 1] if from_object_only else probs[..., 1] * (1 - probs[..., 2])
    return label(marker_map > 0.6, connectivity=1), probs[..., 1] * (1 - probs[..., 2])


def test_check_watershed_accepts_the_library_function_and_other_numbering():
    assert checks.check_watershed(postprocess.watershed_labels)

    def renumbered(probs):
        labels = postprocess.watershed_labels(probs)
        return np.where(labels > 0, 100 - labels, 0)

    assert checks.check_watershed(renumbered)


def test_check_watershed_rejects_labelling_without_markers():
    expected = r"predicted border: two nuclei merged: pixel \(row 1, col 1\) and pixel \(row 1, col 6\)"
    with pytest.raises(checks.CheckFailed, match=expected):
        checks.check_watershed(lambda probs: label(1 - probs[..., 0] > 0.3, connectivity=1))


def test_check_watershed_rejects_markers_from_the_object_channel_alone():
    def object_seeds(probs):
        markers, marker_map = _seeds(probs, from_object_only=True)
        return postprocess.marker_watershed(-marker_map, markers, 1 - probs[..., 0] > 0.3)

    with pytest.raises(checks.CheckFailed, match=r"uncertain border .*two nuclei merged"):
        checks.check_watershed(object_seeds)


def test_check_watershed_rejects_a_mask_from_the_object_channel():
    def object_mask(probs):
        markers, marker_map = _seeds(probs)
        return postprocess.marker_watershed(-marker_map, markers, probs[..., 1] > 0.3)

    with pytest.raises(checks.CheckFailed, match=r"pixel \(row 1, col 5\): got background, expected an object"):
        checks.check_watershed(object_mask)


def test_check_watershed_rejects_losing_a_nucleus_without_a_seed():
    def plain(probs):
        markers, marker_map = _seeds(probs)
        return watershed(-marker_map, markers, mask=1 - probs[..., 0] > 0.3, connectivity=1)

    expected = r"faint nucleus .*: pixel \(row 2, col 7\): got background, expected an object"
    with pytest.raises(checks.CheckFailed, match=expected):
        checks.check_watershed(plain)


def test_check_watershed_rejects_float_labels():
    with pytest.raises(checks.CheckFailed, match=r"wrong dtype: got float64, expected an integer dtype"):
        checks.check_watershed(lambda probs: postprocess.watershed_labels(probs).astype(float))


# --------------------------------------------------------------------------- tta and fusion

VIEWS = {
    "identity": lambda x: x,
    "flip_ud": lambda x: x[::-1],
    "flip_lr": lambda x: x[:, ::-1],
    "rot90": lambda x: np.rot90(x, 1),
}
INVERSES = {**VIEWS, "rot90": lambda x: np.rot90(x, -1)}


def test_check_tta_accepts_the_library_functions_and_plain_numpy():
    assert checks.check_tta(predict.apply_transform, predict.invert_transform)
    assert checks.check_tta(lambda x, name: VIEWS[name](x), lambda x, name: INVERSES[name](x))


def test_check_tta_rejects_an_inverse_rotating_the_wrong_way():
    expected = r"invert\(\.\.\., 'rot90'\).*pixel \(row 0, col 0\), channel 0: got 28\.0, expected 0\.0"
    with pytest.raises(checks.CheckFailed, match=expected):
        checks.check_tta(lambda x, name: VIEWS[name](x), lambda x, name: VIEWS[name](x))


def test_check_tta_rejects_swapped_flips():
    swapped = {**VIEWS, "flip_ud": VIEWS["flip_lr"], "flip_lr": VIEWS["flip_ud"]}
    with pytest.raises(checks.CheckFailed, match=r"transform\(\.\.\., 'flip_ud'\).*got 8\.0, expected 20\.0"):
        checks.check_tta(lambda x, name: swapped[name](x), lambda x, name: swapped[name](x))


def test_check_tta_rejects_a_clockwise_rotation():
    clockwise = {**VIEWS, "rot90": lambda x: np.rot90(x, -1)}
    undo = {**VIEWS, "rot90": lambda x: np.rot90(x, 1)}
    expected = r"(?s)transform\(\.\.\., 'rot90'\).*got 20\.0, expected 8\.0.*hint: rot90 rotates counter-clockwise"
    with pytest.raises(checks.CheckFailed, match=expected):
        checks.check_tta(lambda x, name: clockwise[name](x), lambda x, name: undo[name](x))


def test_check_fusion_accepts_the_library_function():
    assert checks.check_fusion(predict.combine_predictions)


def test_check_fusion_rejects_the_mean_for_the_border():
    expected = r"only one sees a border: .*channel 2 \(border\): got 0\.225, expected 0\.9.*maximum"
    with pytest.raises(checks.CheckFailed, match=expected):
        checks.check_fusion(lambda predictions: np.mean(predictions, axis=0).astype(np.float32))


def test_check_fusion_rejects_the_maximum_for_every_channel():
    with pytest.raises(checks.CheckFailed, match=r"channel 0 \(background\): got 0\.3, expected 0\.225.*mean"):
        checks.check_fusion(lambda predictions: np.max(predictions, axis=0))


def test_check_fusion_rejects_renormalising_the_fused_channels():
    def renormalised(predictions):
        fused = predict.combine_predictions(predictions)
        return (fused / fused.sum(axis=-1, keepdims=True)).astype(np.float32)

    with pytest.raises(checks.CheckFailed, match=r"no renormalisation"):
        checks.check_fusion(renormalised)


# --------------------------------------------------------------------------- match_counts


def _iou_at_least(gt, pred, threshold):
    iou, gt_ids, pred_ids = metrics.iou_matrix(gt, pred)
    tp = int((iou >= threshold).sum())
    return tp, len(pred_ids) - tp, len(gt_ids) - tp


def _coverage_instead_of_iou(gt, pred, threshold):
    gt_ids, pred_ids = np.unique(gt[gt > 0]), np.unique(pred[pred > 0])
    tp = sum(
        np.count_nonzero((gt == g) & (pred == p)) / np.count_nonzero(gt == g) > threshold
        for g in gt_ids
        for p in pred_ids
    )
    return tp, len(pred_ids) - tp, len(gt_ids) - tp


def test_check_match_accepts_the_library_function():
    assert checks.check_match(metrics.match_counts)


def test_check_match_rejects_matching_at_an_iou_equal_to_the_threshold():
    expected = r"exactly 0\.5 at threshold 0\.5: got \(tp=1, fp=0, fn=0\), expected \(tp=0, fp=1, fn=1\)"
    with pytest.raises(checks.CheckFailed, match=expected):
        checks.check_match(_iou_at_least)


def test_check_match_rejects_the_share_of_the_nucleus_instead_of_the_iou():
    expected = r"covering two nuclei: got \(tp=2, fp=-1, fn=0\), expected \(tp=1, fp=0, fn=1\)"
    with pytest.raises(checks.CheckFailed, match=expected):
        checks.check_match(_coverage_instead_of_iou)


def test_check_match_rejects_counting_every_prediction_as_false_positive():
    def all_false(gt, pred, threshold):
        counts = metrics.match_counts(gt, pred, threshold)
        return counts.tp, counts.fp + counts.tp, counts.fn

    with pytest.raises(checks.CheckFailed, match=r"expected \(tp=2, fp=0, fn=0\).*fp = 2 - tp"):
        checks.check_match(all_false)


def test_check_match_rejects_a_result_that_is_not_three_counts():
    with pytest.raises(checks.CheckFailed, match=r"expected three integers \(tp, fp, fn\), got 4 values"):
        checks.check_match(lambda gt, pred, threshold: (0, 0, 0, 0))


# --------------------------------------------------------------------------- changed_config

B1 = config.training_config("B1", "quick")


def _changed(**settings):
    return lambda cfg: dataclasses.replace(cfg, **settings)


def test_check_changed_config_accepts_one_changed_setting_with_a_short_budget(capsys):
    assert checks.check_changed_config(_changed(learning_rate=B1.learning_rate * 3, time_budget_s=90), B1)
    assert "learning_rate 0.001 -> 0.003" in capsys.readouterr().out
    assert checks.check_changed_config(_changed(loss="dice", time_budget_s=120), B1)
    assert checks.check_changed_config(_changed(seed=1, time_budget_s=60), B1)


def test_check_changed_config_rejects_a_config_without_a_change():
    with pytest.raises(checks.CheckFailed, match=r"no setting differs .*the time budget does not count"):
        checks.check_changed_config(_changed(time_budget_s=60), B1)


def test_check_changed_config_rejects_two_changed_settings_and_names_them():
    expected = r"2 settings differ \(loss 'bce_dice' -> 'dice', learning_rate 0\.001 -> 0\.01\): change exactly one"
    with pytest.raises(checks.CheckFailed, match=expected):
        checks.check_changed_config(_changed(learning_rate=0.01, loss="dice", time_budget_s=60), B1)


def test_check_changed_config_rejects_a_change_that_makes_another_network():
    with pytest.raises(checks.CheckFailed, match=r"target 'binary' -> 'border' makes another network"):
        checks.check_changed_config(_changed(target="border", time_budget_s=60), B1)


@pytest.mark.parametrize("budget", [None, 600, 0])
def test_check_changed_config_rejects_a_training_longer_than_two_minutes(budget):
    with pytest.raises(checks.CheckFailed, match=r"time_budget_s is .*at most 120 s"):
        checks.check_changed_config(_changed(filters=4, time_budget_s=budget), B1)


def test_check_changed_config_rejects_an_unknown_loss_and_a_non_positive_learning_rate():
    with pytest.raises(checks.CheckFailed, match=r"loss 'focal' is not a loss of the library"):
        checks.check_changed_config(_changed(loss="focal", time_budget_s=60), B1)
    with pytest.raises(checks.CheckFailed, match=r"learning_rate must be a positive number, got -0\.1"):
        checks.check_changed_config(_changed(learning_rate=-0.1, time_budget_s=60), B1)


def test_check_changed_config_rejects_something_that_is_not_a_config():
    with pytest.raises(checks.CheckFailed, match=r"expected a TrainingConfig .*got dict"):
        checks.check_changed_config(lambda cfg: cfg.to_dict(), B1)


# --------------------------------------------------------------------------- retraining

TINY = config.training_config("B1", "quick", filters=2)


def _synthetic_dataset():
    """Small images under real ids of the sample's split, so that dataset.split() applies."""
    split = data.sample_split()
    ids = sorted(split.val[:2] + split.test[:1] + split.train[:1])
    images, labels = [], []
    for k in range(len(ids)):
        label = np.zeros((32, 32), np.int32)
        label[4:12, 4 + k : 12 + k], label[18:28, 16:26] = 1, 2
        image = np.where(label[..., None] > 0, 200, 20).astype(np.uint8).repeat(3, axis=-1)
        images.append(image)
        labels.append(label)
    return data.Dataset(ids=ids, images=images, labels=labels, source="synthetic", path=Path("."), is_sample=True)


def _history(epochs):
    return {"epoch": np.arange(epochs, dtype=float), "val_loss": np.linspace(1.0, 0.5, epochs),
            "val_dice": np.linspace(0.5, 0.8, epochs)}


def _reference(folder, cfg=TINY, epochs=3):
    keras.utils.set_random_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    unet.build_unet(cfg.blocks, cfg.filters, cfg.out_channels).save(folder / "model.keras")
    (folder / "config.json").write_text(json.dumps(cfg.to_dict()))
    history = _history(epochs)
    rows = ["epoch,val_dice,val_loss"] + [
        f"{int(e)},{d},{v}" for e, d, v in zip(history["epoch"], history["val_dice"], history["val_loss"])
    ]
    (folder / "history.csv").write_text("\n".join(rows) + "\n")
    (folder / "timing.json").write_text(json.dumps({"epochs": epochs, "seconds_all_epochs": 12.5}))
    return folder


def _result(cfg, epochs=2):
    keras.utils.set_random_seed(1)
    model = unet.build_unet(cfg.blocks, cfg.filters, cfg.out_channels)
    return training.TrainResult(model=model, directory=Path("."), epochs=epochs, seconds=3.0, ms_per_crop=1.0,
                                best_val_loss=0.5, history=_history(epochs), config=cfg)


@pytest.fixture(scope="module")
def retraining_setup(tmp_path_factory):
    return _reference(tmp_path_factory.mktemp("reference") / "B1"), _synthetic_dataset()


def test_check_retraining_compares_on_the_validation_images_with_an_interval(retraining_setup, capsys):
    reference, dataset = retraining_setup
    variant = dataclasses.replace(TINY, learning_rate=0.003, time_budget_s=60)
    comparison = checks.check_retraining(_result(variant), reference, dataset, dataset.split().val[:2])
    out = capsys.readouterr().out
    assert "learning_rate 0.001 -> 0.003; yours trained 2 epochs in 3 s, the chapter's B1 3 epochs in 12 s" in out
    assert "val_dice after epoch 2: yours 0.800, the chapter's 0.650" in out
    assert "mean Kaggle score on 2 validation images" in out and "95 % bootstrap interval" in out
    assert "the two trainings ran 2 and 3 epochs" in out
    assert comparison["setting"] == "learning_rate" and comparison["epochs"] == (2, 3)
    yours, theirs = comparison["scores"]
    assert comparison["difference"] == pytest.approx(yours - theirs)
    low, high = comparison["interval"]
    assert low <= comparison["difference"] <= high


def test_check_retraining_leaves_out_the_validation_loss_when_the_loss_changed(retraining_setup, capsys):
    reference, dataset = retraining_setup
    variant = dataclasses.replace(TINY, loss="dice", time_budget_s=60)
    checks.check_retraining(_result(variant), reference, dataset, dataset.split().val[:2])
    out = capsys.readouterr().out
    assert "val_dice after epoch 2" in out and "val_loss after" not in out


def test_check_retraining_rejects_test_and_training_images(retraining_setup):
    reference, dataset = retraining_setup
    result = _result(dataclasses.replace(TINY, seed=3, time_budget_s=60))
    split = dataset.split()
    with pytest.raises(checks.CheckFailed, match=r"1 of the 2 images are test images .*never on test images"):
        checks.check_retraining(result, reference, dataset, [split.val[0], split.test[0]])
    with pytest.raises(checks.CheckFailed, match=r"1 of the 1 images are training images"):
        checks.check_retraining(result, reference, dataset, [split.train[0]])


def test_check_retraining_rejects_a_training_without_a_finished_epoch(retraining_setup):
    reference, dataset = retraining_setup
    result = _result(dataclasses.replace(TINY, seed=3, time_budget_s=60), epochs=0)
    with pytest.raises(checks.CheckFailed, match=r"no finished epoch"):
        checks.check_retraining(result, reference, dataset, dataset.split().val[:2])


def test_check_retraining_rejects_two_changed_settings(retraining_setup):
    reference, dataset = retraining_setup
    result = _result(dataclasses.replace(TINY, seed=3, learning_rate=0.01, time_budget_s=60))
    with pytest.raises(checks.CheckFailed, match=r"2 settings differ"):
        checks.check_retraining(result, reference, dataset, dataset.split().val[:2])


def test_check_retraining_says_not_done_yet_without_a_result(retraining_setup):
    reference, dataset = retraining_setup
    with pytest.raises(checks.CheckFailed, match=r"^not done yet: retraining: got None"):
        checks.check_retraining(None, reference, dataset, dataset.split().val)


def test_check_changed_config_accepts_other_marker_sizes_but_not_another_target():
    m3 = config.training_config("M3", "quick")
    assert checks.check_changed_config(_changed(target_params={"erosion": 1, "border_dilation": 2}, time_budget_s=60), m3)
    with pytest.raises(checks.CheckFailed, match=r"out_channels 3 -> 1 makes another network"):
        checks.check_changed_config(_changed(out_channels=1, time_budget_s=60), m3)


def test_check_retraining_scores_a_marker_network_in_its_two_network_pipeline(tmp_path, capsys):
    m3 = config.training_config("M3", "quick", filters=2)
    reference = _reference(tmp_path / "M3", cfg=m3)
    dataset = _synthetic_dataset()
    b1 = unet.build_unet(TINY.blocks, TINY.filters, TINY.out_channels)
    variant = dataclasses.replace(m3, target_params={"erosion": 1, "border_dilation": 2}, time_budget_s=60)
    comparison = checks.check_retraining(_result(variant), reference, dataset, dataset.split().val[:2],
                                         pipeline="M3B1", networks={"B1": b1})
    out = capsys.readouterr().out
    assert "mean Kaggle score (M3B1) on 2 validation images" in out
    assert "val_dice after" not in out and "val_loss after" not in out, "curves of another target do not compare"
    assert comparison["setting"] == "target_params"
