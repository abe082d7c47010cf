"""Tests of nucleitut.metrics against hand-worked examples."""

import json

import numpy as np
import pytest

from nucleitut.metrics import (
    KAGGLE_THRESHOLDS,
    dataset_score,
    evaluate_image,
    image_scores,
    iou_matrix,
    kaggle_score,
    match_counts,
    precision_recall_f1,
    split_merge_counts,
)

# Hand-worked pair used by several tests.
#   gt 1: 4 px, pred 5: 6 px, overlap 4 -> IoU 4/6 = 2/3
#   gt 2: 6 px, pred 7: 4 px, overlap 4 -> IoU 4/6 = 2/3
#   gt 3: 2 px, overlaps nothing (missed); pred 9: 1 px, overlaps nothing (spurious)
GT = np.array(
    [
        [1, 1, 0, 2, 2, 2],
        [1, 1, 0, 2, 2, 2],
        [0, 0, 0, 0, 0, 0],
        [3, 3, 0, 0, 0, 0],
    ]
)
PRED = np.array(
    [
        [5, 5, 0, 7, 7, 0],
        [5, 5, 0, 7, 7, 0],
        [5, 5, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 9],
    ]
)


def test_iou_matrix_of_hand_worked_pair():
    iou, gt_ids, pred_ids = iou_matrix(GT, PRED)
    assert gt_ids.tolist() == [1, 2, 3]
    assert pred_ids.tolist() == [5, 7, 9]
    assert iou.dtype == np.float64
    np.testing.assert_allclose(iou, [[2 / 3, 0, 0], [0, 2 / 3, 0], [0, 0, 0]])


def test_iou_matrix_matches_brute_force_on_random_labels():
    rng = np.random.default_rng(3)
    gt = rng.integers(0, 6, size=(20, 30)) * 3  # ids 0, 3, ..., 15
    pred = rng.integers(0, 5, size=(20, 30)) + 10
    pred[rng.random((20, 30)) < 0.3] = 0
    iou, gt_ids, pred_ids = iou_matrix(gt, pred)
    expected = np.array(
        [
            [np.sum((gt == g) & (pred == p)) / np.sum((gt == g) | (pred == p)) for p in pred_ids]
            for g in gt_ids
        ]
    )
    assert gt_ids.tolist() == [3, 6, 9, 12, 15]
    assert pred_ids.tolist() == [10, 11, 12, 13, 14]
    np.testing.assert_allclose(iou, expected, rtol=0, atol=1e-15)


def test_non_contiguous_ids_and_mixed_dtypes_give_same_scores_as_compact_ids():
    gt_u8 = np.where(GT == 0, 0, np.array([0, 3, 200, 77])[GT]).astype(np.uint8)
    pred_i32 = np.where(PRED == 0, 0, PRED * 10_000).astype(np.int32)
    iou, gt_ids, pred_ids = iou_matrix(gt_u8, pred_i32)
    assert gt_ids.tolist() == [3, 77, 200]
    assert gt_ids.dtype == np.uint8
    assert pred_ids.tolist() == [50_000, 70_000, 90_000]
    # Rows are sorted by id: 3 (old 1), 77 (old 3), 200 (old 2).
    np.testing.assert_allclose(iou, [[2 / 3, 0, 0], [0, 0, 0], [0, 2 / 3, 0]])
    assert kaggle_score(gt_u8, pred_i32) == pytest.approx(0.2)


def test_huge_uint64_ids_are_handled_like_small_ones():
    gt = np.where(GT == 0, 0, GT.astype(np.uint64) + np.uint64(2**62))
    pred = np.where(PRED == 0, 0, PRED.astype(np.uint64) * np.uint64(2**40))
    iou, gt_ids, pred_ids = iou_matrix(gt, pred)
    assert gt_ids.tolist() == [2**62 + 1, 2**62 + 2, 2**62 + 3]
    assert pred_ids.tolist() == [5 * 2**40, 7 * 2**40, 9 * 2**40]
    np.testing.assert_allclose(iou, [[2 / 3, 0, 0], [0, 2 / 3, 0], [0, 0, 0]])


def test_match_counts_of_hand_worked_pair_at_several_thresholds():
    assert match_counts(GT, PRED, 0.5) == (2, 1, 1)
    assert match_counts(GT, PRED, 0.65) == (2, 1, 1)  # 2/3 > 0.65
    assert match_counts(GT, PRED, 0.7) == (0, 3, 3)  # 2/3 < 0.7


def test_match_requires_iou_strictly_above_threshold():
    gt = np.array([[1, 1, 1, 1, 0]])
    pred = np.array([[2, 2, 2, 0, 0]])  # IoU = 3/4 exactly
    assert match_counts(gt, pred, 0.74) == (1, 0, 0)
    assert match_counts(gt, pred, 0.75) == (0, 1, 1)
    half = np.array([[2, 2, 0, 0, 0]])  # IoU = 2/4 exactly
    assert match_counts(gt, half, 0.5) == (0, 1, 1)


def test_low_threshold_matches_are_one_to_one():
    gt = np.array([[1, 1, 1, 1, 1, 1, 1, 1, 1, 1]])
    halves = np.array([[4, 4, 4, 4, 4, 8, 8, 8, 8, 8]])  # IoU 1/2 with each half
    # Both halves pass 0.4, but one nucleus can be matched only once.
    assert match_counts(gt, halves, 0.4) == (1, 1, 0)
    two_nuclei = np.array([[1, 1, 1, 1, 1, 2, 2, 2, 2, 2]])
    one_blob = np.full((1, 10), 6)
    assert match_counts(two_nuclei, one_blob, 0.4) == (1, 0, 1)


def test_threshold_outside_unit_interval_raises():
    with pytest.raises(ValueError, match="threshold"):
        match_counts(GT, PRED, 1.5)
    with pytest.raises(ValueError, match="threshold"):
        precision_recall_f1(GT, PRED, -0.1)


def test_precision_recall_f1_of_hand_worked_pair():
    scores = precision_recall_f1(GT, PRED, 0.5)
    assert scores.precision == pytest.approx(2 / 3)
    assert scores.recall == pytest.approx(2 / 3)
    assert scores.f1 == pytest.approx(2 / 3)
    gt = np.array([[1, 1, 0, 2, 2, 0, 3]])
    pred = np.array([[1, 1, 0, 2, 2, 0, 0]])
    assert precision_recall_f1(gt, pred) == pytest.approx((1.0, 2 / 3, 0.8))


def test_precision_recall_f1_of_empty_images():
    empty = np.zeros((3, 3), dtype=np.int32)
    one = np.zeros((3, 3), dtype=np.int32)
    one[1, 1] = 1
    assert precision_recall_f1(empty, empty) == (1.0, 1.0, 1.0)
    assert precision_recall_f1(one, empty) == (0.0, 0.0, 0.0)  # nothing predicted, one missed
    assert precision_recall_f1(empty, one) == (0.0, 0.0, 0.0)  # nothing to find, one spurious


def test_kaggle_thresholds_are_the_ten_exact_dsb_values():
    assert KAGGLE_THRESHOLDS.tolist() == [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
    assert 0.75 in KAGGLE_THRESHOLDS
    with pytest.raises(ValueError):
        KAGGLE_THRESHOLDS[0] = 0.4


def test_kaggle_score_of_hand_worked_pair():
    # Thresholds 0.5, 0.55, 0.6, 0.65: TP=2, FP=1, FN=1 -> 2/4; 0.7 ... 0.95: 0.
    assert kaggle_score(GT, PRED) == pytest.approx(4 * 0.5 / 10)


def test_kaggle_score_counts_iou_equal_to_threshold_as_miss():
    gt = np.array([[1, 1, 1, 1, 0]])
    assert kaggle_score(gt, np.array([[1, 1, 1, 0, 0]])) == pytest.approx(0.5)  # IoU 0.75: 5 of 10
    assert kaggle_score(gt, np.array([[1, 1, 0, 0, 0]])) == 0.0  # IoU 0.5 never exceeds 0.5
    assert kaggle_score(gt, gt) == 1.0


def test_kaggle_score_edge_cases_of_empty_images():
    empty = np.zeros((4, 4), dtype=np.uint8)
    one = empty.copy()
    one[:2, :2] = 1
    assert kaggle_score(empty, empty) == 1.0
    assert kaggle_score(one, empty) == 0.0
    assert kaggle_score(empty, one) == 0.0


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(4, 6\).*\(6, 4\)"):
        kaggle_score(GT, PRED.T)


def test_float_or_bool_labels_raise_type_error():
    with pytest.raises(TypeError, match="integer"):
        iou_matrix(GT.astype(float), PRED)
    with pytest.raises(TypeError, match="integer"):
        iou_matrix(GT, PRED > 0)


def test_negative_labels_raise_value_error():
    with pytest.raises(ValueError, match="negative"):
        iou_matrix(-GT, PRED)


def test_dataset_score_is_mean_of_image_scores():
    perfect = (GT, GT)
    empty = np.zeros_like(GT)
    pairs = [(GT, PRED), perfect, (GT, empty), (empty, empty)]
    assert image_scores(pairs) == pytest.approx([0.2, 1.0, 0.0, 1.0])
    assert dataset_score(iter(pairs)) == pytest.approx(2.2 / 4)


def test_dataset_score_of_no_pairs_raises():
    with pytest.raises(ValueError, match="at least one"):
        dataset_score([])


def test_split_merge_counts_of_hand_worked_errors():
    #          nucleus 1 cut in two | 2 and 3 glued by one object
    gt = np.array([[1, 1, 1, 1, 0, 2, 2, 0, 3, 3]])
    pred = np.array([[4, 4, 5, 5, 0, 6, 6, 6, 6, 6]])
    # Pred 4 and 5 lie wholly inside nucleus 1 -> split. Nuclei 2 and 3 lie wholly inside pred 6
    # -> one merge. Best IoUs: 2/4, 2/4, 2/5, 2/5 -> nothing matches at IoU > 0.5.
    assert split_merge_counts(gt, pred) == (1, 1, 3, 3)


def test_fragment_needs_more_than_half_of_its_area_inside_the_nucleus():
    gt = np.array([[0, 0, 1, 1, 1, 1, 1, 1]])
    # Pred 2 has 2 of 4 pixels inside nucleus 1 (exactly half): not a fragment, so no split.
    assert split_merge_counts(gt, np.array([[2, 2, 2, 2, 3, 3, 3, 3]])).split == 0
    # Pred 2 has 3 of 4 inside: now two fragments.
    assert split_merge_counts(gt, np.array([[0, 2, 2, 2, 2, 3, 3, 3]])).split == 1
    # A stricter coverage of 0.8 rejects the 3-of-4 fragment again.
    assert split_merge_counts(gt, np.array([[0, 2, 2, 2, 2, 3, 3, 3]]), coverage=0.8).split == 0


def test_merge_needs_two_nuclei_mostly_inside_one_object():
    gt = np.array([[1, 1, 1, 1, 0, 2, 2, 2, 2]])
    # Pred 7 holds 3/4 of nucleus 1 and 2/4 of nucleus 2: only one nucleus swallowed, no merge.
    assert split_merge_counts(gt, np.array([[0, 7, 7, 7, 7, 7, 7, 0, 0]])).merged == 0
    assert split_merge_counts(gt, np.array([[0, 7, 7, 7, 7, 7, 7, 7, 0]])).merged == 1


def test_split_merge_coverage_below_half_raises():
    with pytest.raises(ValueError, match="coverage"):
        split_merge_counts(GT, PRED, coverage=0.3)


def test_evaluate_image_reports_all_metrics_as_json_numbers():
    result = evaluate_image(GT, PRED)
    assert result == pytest.approx(
        {
            "kaggle_score": 0.2,
            "n_gt": 3,
            "n_pred": 3,
            "precision_50": 2 / 3,
            "recall_50": 2 / 3,
            "f1_50": 2 / 3,
            "precision_75": 0.0,
            "recall_75": 0.0,
            "f1_75": 0.0,
            "split": 0,
            "merged": 0,
            "missed": 1,
            "spurious": 1,
        }
    )
    assert all(type(value) in (int, float) for value in result.values())
    assert json.loads(json.dumps(result)) == result
