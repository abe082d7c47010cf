"""Tests of nucleitut.volume: slice fusion, the constructed stack and 3D scoring."""

import numpy as np
import pytest

from nucleitut import metrics
from nucleitut.volume import evaluate_volume, fuse_slices, segment_slices, synthetic_stack, volume_score

YY, XX = np.mgrid[:20, :30]


def disc(y, x, r):
    return (YY - y) ** 2 + (XX - x) ** 2 <= r * r


def stack_of(*slices):
    return np.stack(slices).astype(np.int32)


def test_overlapping_discs_in_consecutive_slices_fuse_into_one_object():
    fused = fuse_slices(stack_of(disc(10, 10, 5) * 3, disc(10, 11, 5) * 8, disc(10, 12, 5) * 1))
    assert fused.dtype == np.int32
    assert np.unique(fused).tolist() == [0, 1]
    assert np.array_equal(fused > 0, stack_of(disc(10, 10, 5), disc(10, 11, 5), disc(10, 12, 5)) > 0)


def test_disc_that_moves_away_starts_a_new_object():
    fused = fuse_slices(stack_of(disc(10, 8, 5), disc(10, 20, 5)))
    assert fused[0].max() == 1
    assert np.unique(fused[1]).tolist() == [0, 2]


def test_object_after_an_empty_slice_starts_a_new_object():
    fused = fuse_slices(stack_of(disc(10, 10, 5), np.zeros((20, 30)), disc(10, 10, 5)))
    assert np.unique(fused[2]).tolist() == [0, 2]


def test_ids_in_the_output_do_not_depend_on_ids_in_the_slices():
    left, right = disc(10, 7, 4), disc(10, 22, 4)
    a = fuse_slices(stack_of(left * 1 + right * 2, left * 5 + right * 9))
    b = fuse_slices(stack_of(left * 2 + right * 1, left * 9 + right * 5))
    assert np.array_equal(a, b)
    assert np.array_equal(a[0], a[1])


def test_link_needs_iou_above_min_overlap():
    # Discs of radius 5 shifted by 4 pixels: IoU between 0.3 and 0.5.
    first, second = disc(10, 10, 5), disc(10, 14, 5)
    iou = (first & second).sum() / (first | second).sum()
    assert 0.3 < iou < 0.5
    assert fuse_slices(stack_of(first, second), min_overlap=0.5).max() == 2
    assert fuse_slices(stack_of(first, second), min_overlap=0.3).max() == 1


def test_small_cap_stays_attached_when_measured_against_the_smaller_object():
    middle, cap = disc(10, 15, 8), disc(10, 15, 2)
    slices = stack_of(cap, middle, cap)
    assert fuse_slices(slices).max() == 3  # IoU of cap and middle is small
    assert np.unique(fuse_slices(slices, measure="smaller")).tolist() == [0, 1]


def test_object_split_in_two_continues_only_through_its_best_overlap():
    whole = disc(10, 15, 8)
    halves = np.where(XX < 13, 1, 2) * whole  # left half smaller than right half
    fused = fuse_slices(stack_of(whole, halves), min_overlap=0.2)
    assert np.unique(fused[1][whole & (XX >= 13)]).tolist() == [1]
    assert np.unique(fused[1][whole & (XX < 13)]).tolist() == [2]


def test_fusing_ground_truth_slices_recovers_the_stack():
    _, truth = synthetic_stack((16, 64, 64), n_nuclei=5, seed=1, radius=(6, 9))
    fused = fuse_slices(truth, measure="smaller")
    assert volume_score(truth, fused) == 1.0


def test_fuse_slices_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        fuse_slices(np.zeros((4, 4), np.int32))
    with pytest.raises(TypeError, match="integer"):
        fuse_slices(np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="min_overlap"):
        fuse_slices(np.zeros((2, 4, 4), np.int32), min_overlap=1.0)
    with pytest.raises(ValueError, match="measure"):
        fuse_slices(np.zeros((2, 4, 4), np.int32), measure="dice")


@pytest.mark.parametrize("n_nuclei, seed", [(1, 0), (6, 3), (12, 0)])
def test_synthetic_stack_has_the_requested_number_of_nuclei(n_nuclei, seed):
    stack, truth = synthetic_stack((24, 128, 128), n_nuclei=n_nuclei, seed=seed)
    assert stack.shape == (24, 128, 128, 3) and stack.dtype == np.uint8
    assert truth.shape == (24, 128, 128) and truth.dtype == np.int32
    assert np.unique(truth).tolist() == list(range(n_nuclei + 1))


def test_synthetic_stack_is_repeatable_and_changes_with_the_seed():
    a, truth_a = synthetic_stack((16, 64, 64), n_nuclei=4, seed=5, radius=(6, 8))
    b, truth_b = synthetic_stack((16, 64, 64), n_nuclei=4, seed=5, radius=(6, 8))
    c, _ = synthetic_stack((16, 64, 64), n_nuclei=4, seed=6, radius=(6, 8))
    assert np.array_equal(a, b) and np.array_equal(truth_a, truth_b)
    assert not np.array_equal(a, c)


def test_synthetic_stack_has_touching_nuclei():
    _, truth = synthetic_stack(n_nuclei=12, seed=0, touching=0.5)
    touching = False
    for axis in range(3):
        a, b = np.moveaxis(truth, axis, 0)[:-1], np.moveaxis(truth, axis, 0)[1:]
        touching |= bool(np.any((a > 0) & (b > 0) & (a != b)))
    assert touching


def test_synthetic_stack_is_gray_with_nuclei_brighter_than_background():
    stack, truth = synthetic_stack(n_nuclei=12, seed=0)
    gray = stack[..., 0].astype(float)
    assert np.array_equal(stack[..., 0], stack[..., 1]) and np.array_equal(stack[..., 0], stack[..., 2])
    assert gray[truth > 0].mean() > 3 * gray[truth == 0].mean()


def test_synthetic_stack_refuses_nuclei_that_do_not_fit():
    with pytest.raises(ValueError, match="could not place"):
        synthetic_stack((8, 32, 32), n_nuclei=50, radius=(6, 8))


def test_segment_slices_applies_a_2d_segmentation_to_every_slice():
    stack, _ = synthetic_stack((10, 48, 48), n_nuclei=2, radius=(5, 7))
    calls = []

    def threshold(image):
        calls.append(image.shape)
        return (image[..., 0] > 100).astype(np.int32)

    labels = segment_slices(threshold, stack)
    assert calls == [(48, 48, 3)] * 10
    assert labels.shape == (10, 48, 48) and labels.dtype == np.int32


def test_volume_score_matches_objects_in_3d():
    truth = np.zeros((4, 6, 6), np.int32)
    truth[:, 1:3, 1:3] = 1
    truth[:, 4:6, 4:6] = 2
    assert volume_score(truth, truth * 7) == 1.0
    cut = truth.copy()
    cut[2:][cut[2:] == 1] = 3  # object 1 cut into two halves along Z: IoU 0.5 is no match
    assert volume_score(truth, cut) == pytest.approx(metrics.kaggle_score(truth, cut))
    result = evaluate_volume(truth, cut)
    assert (result["n_gt"], result["n_pred"], result["missed"], result["split"]) == (2, 3, 1, 1)


def test_volume_scoring_rejects_2d_labels():
    with pytest.raises(ValueError, match="shape"):
        volume_score(np.zeros((4, 4), np.int32), np.zeros((4, 4), np.int32))


def test_docstring_examples_hold():
    import doctest

    from nucleitut import volume

    result = doctest.testmod(volume, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_segment_slices_with_scale_segments_zoomed_slices_and_returns_full_size_labels():
    stack, truth = synthetic_stack((10, 48, 48), n_nuclei=2, radius=(5, 7))
    shapes = []

    def threshold(image):
        shapes.append(image.shape)
        return (image[..., 0] > 60).astype(np.int32)

    labels = segment_slices(threshold, stack, scale=0.5)
    assert shapes == [(24, 24, 3)] * 10
    assert labels.shape == (10, 48, 48)
    # The zoomed-out masks still cover the nuclei.
    assert (labels[truth > 0] > 0).mean() > 0.5
    with pytest.raises(ValueError, match="scale"):
        segment_slices(threshold, stack, scale=0)


def test_match_ids_gives_matched_objects_the_ground_truth_id_and_errors_new_ids():
    from nucleitut.volume import match_ids

    truth = np.zeros((2, 4, 8), np.int32)
    truth[:, :, :3] = 4
    truth[:, :, 5:] = 9
    labels = np.zeros_like(truth)
    labels[:, :, :3] = 2  # matches 4
    labels[0, :, 5:] = 1  # half of 9: IoU 0.5, no match
    labels[1, :, 5:] = 3
    result = match_ids(truth, labels)
    assert np.array_equal(result[:, :, :3], np.full((2, 4, 3), 4))
    assert set(np.unique(result[:, :, 5:]).tolist()) == {10, 11}
    assert np.array_equal(result == 0, labels == 0)
