"""Instance-segmentation metrics: IoU matching, the Kaggle DSB 2018 score and error counts.

All functions compare a ground-truth label image ``gt`` with a predicted label image ``pred``
of the same shape. Labels are non-negative integers of any integer dtype; ``0`` is the
background and every other value is one object. Ids need not be contiguous (``{0, 3, 17}`` is
fine) and ``gt`` and ``pred`` may use different dtypes.

The work is done once per image pair by a contingency table of label pairs (how many pixels
carry ground-truth id ``g`` *and* predicted id ``p``), built with ``np.unique`` and
``np.bincount`` rather than a Python loop over objects, so scoring a whole data set stays fast.

Matching follows the Kaggle Data Science Bowl 2018: a ground-truth object and a predicted object
match when their intersection over union (IoU) is *strictly greater* than a threshold ``t``.
For ``t >= 0.5`` such matches are unique: two objects overlapping one object with IoU > 0.5
would each have to cover more than half of it, which disjoint objects cannot do. Below 0.5 an
object may overlap several partners that well; :func:`match_counts` then takes a maximum
one-to-one matching.

Examples
--------
>>> import numpy as np
>>> gt = np.array([[1, 1, 0, 2, 2]])
>>> pred = np.array([[5, 5, 0, 0, 7]])
>>> iou, gt_ids, pred_ids = iou_matrix(gt, pred)
>>> iou
array([[1. , 0. ],
       [0. , 0.5]])
>>> match_counts(gt, pred, 0.5)
MatchCounts(tp=1, fp=1, fn=1)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = [
    "KAGGLE_THRESHOLDS",
    "MatchCounts",
    "PrecisionRecallF1",
    "SplitMergeCounts",
    "iou_matrix",
    "match_counts",
    "precision_recall_f1",
    "kaggle_score",
    "image_scores",
    "dataset_score",
    "split_merge_counts",
    "evaluate_image",
    "merged_objects",
    "matched_nuclei",
]

#: IoU thresholds of the Kaggle DSB 2018 score: 0.5, 0.55, ..., 0.95 (ten values). Rounded so
#: that ``0.75`` is exactly the float ``0.75`` rather than an ``arange`` step away from it;
#: read-only so that no caller can change the metric by accident.
KAGGLE_THRESHOLDS = np.round(np.arange(0.5, 1.0, 0.05), 2)
KAGGLE_THRESHOLDS.flags.writeable = False


class MatchCounts(NamedTuple):
    """True positives, false positives and false negatives at one IoU threshold."""

    tp: int
    fp: int
    fn: int


class PrecisionRecallF1(NamedTuple):
    """Object-level precision, recall and F1 score at one IoU threshold."""

    precision: float
    recall: float
    f1: float


class SplitMergeCounts(NamedTuple):
    """Error counts of :func:`split_merge_counts` (see there for the definitions)."""

    split: int
    merged: int
    missed: int
    spurious: int


@dataclass(frozen=True)
class _Overlap:
    """Everything the metrics need about one image pair, computed once."""

    intersection: np.ndarray  # (n_gt, n_pred) int64 pixel counts
    gt_areas: np.ndarray  # (n_gt,) int64
    pred_areas: np.ndarray  # (n_pred,) int64
    gt_ids: np.ndarray
    pred_ids: np.ndarray

    @property
    def iou(self) -> np.ndarray:
        union = self.gt_areas[:, None] + self.pred_areas[None, :] - self.intersection
        # Every object has at least one pixel, so no union is zero.
        return self.intersection / union


def _check_labels(labels, name: str) -> np.ndarray:
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(
            f"{name} must be a label image with an integer dtype, got dtype {labels.dtype}; "
            "turn a binary mask into labels with skimage.measure.label first"
        )
    if labels.size and np.issubdtype(labels.dtype, np.signedinteger) and labels.min() < 0:
        raise ValueError(f"{name} contains negative labels; labels must be >= 0 (0 = background)")
    return labels


def _check_pair(gt, pred) -> tuple[np.ndarray, np.ndarray]:
    gt = _check_labels(gt, "gt")
    pred = _check_labels(pred, "pred")
    if gt.shape != pred.shape:
        raise ValueError(
            f"gt and pred must have the same shape, got gt {gt.shape} and pred {pred.shape}"
        )
    return gt, pred


def _compact_labels(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map arbitrary ids to ``1..n`` (background stays ``0``).

    Returns the sorted object ids (without 0) and a flat int64 index image.
    """
    flat = labels.ravel()
    if flat.size == 0:
        return np.zeros(0, dtype=labels.dtype), np.zeros(0, dtype=np.int64)
    largest = int(flat.max())
    if largest <= 4 * flat.size + 1024:
        # Typical label images: ids are small, so a lookup table built with bincount is O(n)
        # and several times faster than the sort inside np.unique.
        present = np.bincount(flat.astype(np.intp, copy=False), minlength=1) > 0
        present[0] = False
        ids = np.flatnonzero(present)
        lookup = np.zeros(present.size, dtype=np.int64)
        lookup[ids] = np.arange(1, ids.size + 1)
        return ids.astype(labels.dtype), lookup[flat]
    # Huge ids (e.g. hashes stored as uint64) would make the lookup table too large.
    ids, inverse = np.unique(flat, return_inverse=True)
    inverse = inverse.astype(np.int64, copy=False)
    if ids[0] == 0:
        return ids[1:], inverse
    return ids, inverse + 1


def _overlap(gt, pred) -> _Overlap:
    gt, pred = _check_pair(gt, pred)
    gt_ids, gt_index = _compact_labels(gt)
    pred_ids, pred_index = _compact_labels(pred)
    n_gt, n_pred = gt_ids.size, pred_ids.size

    # Sparse contingency table: only pixels inside both a gt and a pred object contribute to an
    # intersection, and each (gt, pred) pair is encoded as one integer so np.unique counts them.
    both = (gt_index > 0) & (pred_index > 0)
    pair_codes = gt_index[both] * (n_pred + 1) + pred_index[both]
    codes, counts = np.unique(pair_codes, return_counts=True)
    intersection = np.zeros((n_gt, n_pred), dtype=np.int64)
    intersection[codes // (n_pred + 1) - 1, codes % (n_pred + 1) - 1] = counts

    gt_areas = np.bincount(gt_index, minlength=n_gt + 1)[1:].astype(np.int64)
    pred_areas = np.bincount(pred_index, minlength=n_pred + 1)[1:].astype(np.int64)
    return _Overlap(intersection, gt_areas, pred_areas, gt_ids, pred_ids)


def iou_matrix(gt, pred) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intersection over union of every ground-truth object with every predicted object.

    Parameters
    ----------
    gt, pred : ndarray of int, same shape (e.g. (H, W))
        Label images; 0 is background, ids need not be contiguous, any integer dtype.

    Returns
    -------
    iou : ndarray of float64, shape (n_gt, n_pred)
        ``iou[i, j]`` is the IoU of object ``gt_ids[i]`` and object ``pred_ids[j]``.
    gt_ids : ndarray, shape (n_gt,)
        Sorted ids present in ``gt`` (0 excluded), same dtype as ``gt``.
    pred_ids : ndarray, shape (n_pred,)
        Sorted ids present in ``pred`` (0 excluded), same dtype as ``pred``.

    Raises
    ------
    TypeError
        If a label image does not have an integer dtype.
    ValueError
        If the shapes differ or a label is negative.

    Examples
    --------
    >>> gt = np.array([[0, 4, 4, 4]])
    >>> pred = np.array([[0, 0, 9, 9]])
    >>> iou, gt_ids, pred_ids = iou_matrix(gt, pred)
    >>> float(iou[0, 0]), gt_ids.tolist(), pred_ids.tolist()
    (0.6666666666666666, [4], [9])
    """
    overlap = _overlap(gt, pred)
    return overlap.iou, overlap.gt_ids, overlap.pred_ids


def _counts_from_iou(iou: np.ndarray, threshold: float) -> MatchCounts:
    n_gt, n_pred = iou.shape
    candidates = iou > threshold
    if threshold >= 0.5:
        # Matches are unique (see module docstring): every candidate pair is a match.
        tp = int(np.count_nonzero(candidates))
    elif candidates.any():
        rows, cols = linear_sum_assignment(candidates, maximize=True)
        tp = int(np.count_nonzero(candidates[rows, cols]))
    else:
        tp = 0
    return MatchCounts(tp=tp, fp=n_pred - tp, fn=n_gt - tp)


def _check_threshold(threshold) -> float:
    threshold = float(threshold)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"IoU threshold must lie in [0, 1], got {threshold}")
    return threshold


def match_counts(gt, pred, threshold: float) -> MatchCounts:
    """Count true positives, false positives and false negatives at one IoU threshold.

    A ground-truth object and a predicted object match when their IoU is strictly greater than
    ``threshold``. For ``threshold >= 0.5`` every such pair is a match because matches are
    unique; below 0.5 an object can pass the threshold with several partners and the counts
    come from a maximum one-to-one matching (Hungarian algorithm).

    Parameters
    ----------
    gt, pred : ndarray of int, same shape
        Label images (see :func:`iou_matrix`).
    threshold : float in [0, 1]
        IoU a pair must exceed to match.

    Returns
    -------
    MatchCounts
        ``(tp, fp, fn)`` as Python ints: matched pairs, unmatched predicted objects and
        unmatched ground-truth objects.

    Examples
    --------
    >>> gt = np.array([[1, 1, 1, 1, 0]])
    >>> pred = np.array([[2, 2, 2, 0, 0]])      # IoU = 3/4
    >>> match_counts(gt, pred, 0.7), match_counts(gt, pred, 0.75)
    (MatchCounts(tp=1, fp=0, fn=0), MatchCounts(tp=0, fp=1, fn=1))
    """
    threshold = _check_threshold(threshold)
    return _counts_from_iou(_overlap(gt, pred).iou, threshold)


def _ratio(numerator: int, denominator: int, image_is_empty: bool) -> float:
    if denominator:
        return numerator / denominator
    # 0/0 only happens when there is nothing to find or nothing was predicted: perfect if both
    # are true, otherwise the missing side is an error.
    return 1.0 if image_is_empty else 0.0


def _prf1(counts: MatchCounts) -> PrecisionRecallF1:
    tp, fp, fn = counts
    empty = tp + fp + fn == 0
    return PrecisionRecallF1(
        precision=_ratio(tp, tp + fp, empty),
        recall=_ratio(tp, tp + fn, empty),
        f1=_ratio(2 * tp, 2 * tp + fp + fn, empty),
    )


def precision_recall_f1(gt, pred, threshold: float = 0.5) -> PrecisionRecallF1:
    """Object-level precision, recall and F1 score at one IoU threshold.

    ``precision = TP / (TP + FP)``, ``recall = TP / (TP + FN)``, ``F1 = 2 TP / (2 TP + FP + FN)``
    with the counts of :func:`match_counts`. A ratio with a zero denominator is 1.0 when the
    image has neither ground-truth nor predicted objects and 0.0 otherwise (e.g. the recall of
    an image without nuclei but with predictions).

    Parameters
    ----------
    gt, pred : ndarray of int, same shape
        Label images (see :func:`iou_matrix`).
    threshold : float in [0, 1], default 0.5
        IoU a pair must exceed to match.

    Returns
    -------
    PrecisionRecallF1
        ``(precision, recall, f1)`` as Python floats.

    Examples
    --------
    >>> gt = np.array([[1, 1, 0, 2, 2, 0, 3]])
    >>> pred = np.array([[1, 1, 0, 2, 2, 0, 0]])
    >>> precision_recall_f1(gt, pred)
    PrecisionRecallF1(precision=1.0, recall=0.6666666666666666, f1=0.8)
    """
    return _prf1(match_counts(gt, pred, threshold))


def _kaggle_from_iou(iou: np.ndarray) -> float:
    n_gt, n_pred = iou.shape
    if n_gt == 0 and n_pred == 0:
        return 1.0
    # Only pairs above the lowest threshold can ever match; all thresholds are >= 0.5, so each
    # such pair is a true positive at every threshold it exceeds.
    candidates = iou[iou > KAGGLE_THRESHOLDS[0]]
    tp = np.count_nonzero(candidates[:, None] > KAGGLE_THRESHOLDS[None, :], axis=0)
    # TP / (TP + FP + FN) with FP = n_pred - TP and FN = n_gt - TP.
    return float(np.mean(tp / (n_gt + n_pred - tp)))


def kaggle_score(gt, pred) -> float:
    """Score of the Kaggle Data Science Bowl 2018 for one image.

    The mean over the IoU thresholds ``t`` in :data:`KAGGLE_THRESHOLDS` (0.5, 0.55, ..., 0.95)
    of ``TP(t) / (TP(t) + FP(t) + FN(t))``. An image without ground-truth and without predicted
    objects scores 1.0; an image where exactly one of the two is empty scores 0.0.

    Parameters
    ----------
    gt, pred : ndarray of int, same shape
        Label images (see :func:`iou_matrix`).

    Returns
    -------
    float
        Score in [0, 1].

    Examples
    --------
    >>> gt = np.array([[1, 1, 1, 1, 0]])
    >>> pred = np.array([[1, 1, 1, 0, 0]])    # IoU = 0.75: a match at 0.5, ..., 0.7 only
    >>> kaggle_score(gt, pred)
    0.5
    """
    return _kaggle_from_iou(_overlap(gt, pred).iou)


def image_scores(pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> list[float]:
    """Kaggle score of every ``(gt, pred)`` pair, in order.

    Parameters
    ----------
    pairs : iterable of (ndarray, ndarray)
        Ground-truth and predicted label images; each pair must share a shape.

    Returns
    -------
    list of float
        One :func:`kaggle_score` per pair.
    """
    return [kaggle_score(gt, pred) for gt, pred in pairs]


def dataset_score(pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> float:
    """Mean Kaggle score over a data set, as on the DSB 2018 leaderboard.

    Parameters
    ----------
    pairs : iterable of (ndarray, ndarray)
        Ground-truth and predicted label images; each pair must share a shape.

    Returns
    -------
    float
        Mean of :func:`kaggle_score` over the pairs.

    Raises
    ------
    ValueError
        If ``pairs`` is empty.

    Examples
    --------
    >>> perfect = (np.array([[1, 0]]), np.array([[3, 0]]))
    >>> missed = (np.array([[1, 0]]), np.array([[0, 0]]))
    >>> dataset_score([perfect, missed])
    0.5
    """
    scores = image_scores(pairs)
    if not scores:
        raise ValueError("dataset_score needs at least one (gt, pred) pair")
    return float(np.mean(scores))


def _split_merge_from_overlap(overlap: _Overlap, coverage: float) -> SplitMergeCounts:
    inter = overlap.intersection
    # pred j is a fragment of gt i when more than `coverage` of pred j lies inside gt i.
    fragment_of = inter > coverage * overlap.pred_areas[None, :]
    # gt i is swallowed by pred j when more than `coverage` of gt i lies inside pred j.
    swallowed_by = inter > coverage * overlap.gt_areas[:, None]
    counts = _counts_from_iou(overlap.iou, 0.5)
    return SplitMergeCounts(
        split=int(np.count_nonzero(fragment_of.sum(axis=1) >= 2)),
        merged=int(np.count_nonzero(swallowed_by.sum(axis=0) >= 2)),
        missed=counts.fn,
        spurious=counts.fp,
    )


def _check_coverage(coverage) -> float:
    coverage = float(coverage)
    if not 0.5 <= coverage < 1.0:
        raise ValueError(f"coverage must lie in [0.5, 1), got {coverage}")
    return coverage


def split_merge_counts(gt, pred, coverage: float = 0.5) -> SplitMergeCounts:
    """Count the typical errors of nucleus segmentation: splits, merges, misses, spurious objects.

    Definitions (areas in pixels):

    * A predicted object is a **fragment** of a ground-truth nucleus when more than
      ``coverage`` of the predicted object's area lies inside that nucleus. A nucleus is
      **split** when it has two or more fragments.
    * A ground-truth nucleus is **swallowed** by a predicted object when more than ``coverage``
      of the nucleus' area lies inside that object. A predicted object is a **merge** when it
      swallows two or more nuclei.
    * A nucleus is **missed** when no predicted object matches it with IoU > 0.5 (the false
      negatives at 0.5); a predicted object is **spurious** when it matches no nucleus with
      IoU > 0.5 (the false positives at 0.5).

    With ``coverage >= 0.5`` an object is a fragment of (or swallowed by) at most one partner,
    so nothing is counted twice in ``split`` or ``merged``. A split nucleus is usually also
    missed, and the nuclei of a merge are usually missed too: the four counts describe the same
    errors from different angles and do not add up to anything.

    Parameters
    ----------
    gt, pred : ndarray of int, same shape
        Label images (see :func:`iou_matrix`).
    coverage : float in [0.5, 1), default 0.5
        Share of an object's area that must lie inside its partner.

    Returns
    -------
    SplitMergeCounts
        ``(split, merged, missed, spurious)`` as Python ints: number of split nuclei, number of
        merging predicted objects, missed nuclei and spurious predicted objects.

    Examples
    --------
    >>> gt = np.array([[1, 1, 1, 1, 0, 2, 2, 0, 3, 3]])
    >>> pred = np.array([[4, 4, 5, 5, 0, 6, 6, 6, 6, 6]])
    >>> split_merge_counts(gt, pred)
    SplitMergeCounts(split=1, merged=1, missed=3, spurious=3)
    """
    coverage = _check_coverage(coverage)
    return _split_merge_from_overlap(_overlap(gt, pred), coverage)


def evaluate_image(gt, pred) -> dict[str, float | int]:
    """All metrics of one image in a JSON-friendly dictionary.

    Parameters
    ----------
    gt, pred : ndarray of int, same shape
        Label images (see :func:`iou_matrix`).

    Returns
    -------
    dict
        Plain Python numbers under the keys ``kaggle_score``, ``n_gt``, ``n_pred``,
        ``precision_50``, ``recall_50``, ``f1_50`` (IoU > 0.5), ``precision_75``,
        ``recall_75``, ``f1_75`` (IoU > 0.75), and ``split``, ``merged``, ``missed``,
        ``spurious`` (see :func:`split_merge_counts`, coverage 0.5).

    Examples
    --------
    >>> result = evaluate_image(np.array([[1, 1, 0]]), np.array([[1, 1, 0]]))
    >>> result["kaggle_score"], result["f1_75"], result["split"]
    (1.0, 1.0, 0)
    """
    overlap = _overlap(gt, pred)
    iou = overlap.iou
    result: dict[str, float | int] = {
        "kaggle_score": _kaggle_from_iou(iou),
        "n_gt": int(overlap.gt_ids.size),
        "n_pred": int(overlap.pred_ids.size),
    }
    for threshold, suffix in ((0.5, "50"), (0.75, "75")):
        scores = _prf1(_counts_from_iou(iou, threshold))
        result[f"precision_{suffix}"] = scores.precision
        result[f"recall_{suffix}"] = scores.recall
        result[f"f1_{suffix}"] = scores.f1
    result.update(_split_merge_from_overlap(overlap, 0.5)._asdict())
    return result


def merged_objects(gt, pred, coverage: float = 0.5) -> dict[int, list[int]]:
    """The merges of :func:`split_merge_counts`, by id: ``{predicted id: [nucleus ids]}`` for
    every predicted object that swallows two or more nuclei (more than ``coverage`` of each
    nucleus' area lies inside it).

    Examples
    --------
    >>> gt = np.array([[1, 1, 0, 2, 2, 0, 3]])
    >>> pred = np.array([[7, 7, 7, 7, 7, 0, 8]])
    >>> merged_objects(gt, pred)
    {7: [1, 2]}
    """
    coverage = _check_coverage(coverage)
    overlap = _overlap(gt, pred)
    swallowed_by = overlap.intersection > coverage * overlap.gt_areas[:, None]
    merges = {}
    for j in np.flatnonzero(swallowed_by.sum(axis=0) >= 2):
        merges[int(overlap.pred_ids[j])] = [int(i) for i in overlap.gt_ids[swallowed_by[:, j]]]
    return merges


def matched_nuclei(gt, pred, threshold: float = 0.5) -> np.ndarray:
    """Ids of the ground-truth nuclei that some predicted object matches with IoU > ``threshold``.

    Examples
    --------
    >>> matched_nuclei(np.array([[1, 1, 0, 2]]), np.array([[5, 5, 0, 0]])).tolist()
    [1]
    """
    iou, gt_ids, _ = iou_matrix(gt, pred)
    return gt_ids[(iou > _check_threshold(threshold)).any(axis=1)]
