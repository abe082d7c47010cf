"""Time :func:`nucleitut.metrics.dataset_score` on a synthetic data set the size of a DSB stage.

Builds 120 pairs of 256 x 256 label images with about 40 discs each. The "prediction" is the
ground truth shifted by a pixel or two, with a few nuclei dropped, merged with a neighbour or cut
in two, plus a few spurious blobs, so that every branch of the matching is exercised. Prints the
best of three wall-clock times of scoring all 120 pairs.

Run with::

    .venv/bin/python benchmarks/bench_metrics.py

Goal: under one second on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from nucleitut.metrics import dataset_score, evaluate_image


def random_discs(rng: np.random.Generator, shape: tuple[int, int], n_discs: int) -> np.ndarray:
    """Label image of ``n_discs`` random discs (later discs overwrite earlier ones)."""
    labels = np.zeros(shape, dtype=np.int32)
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    centres = rng.uniform(0, shape, size=(n_discs, 2))
    radii = rng.uniform(4, 10, size=n_discs)
    for label, ((r, c), radius) in enumerate(zip(centres, radii), start=1):
        labels[(rows - r) ** 2 + (cols - c) ** 2 <= radius**2] = label
    return labels


def perturbed_prediction(rng: np.random.Generator, gt: np.ndarray) -> np.ndarray:
    """A plausible prediction: shifted, with drops, merges, splits and spurious objects."""
    shift = rng.integers(-2, 3, size=2)
    pred = np.roll(gt, tuple(shift), axis=(0, 1))
    # Non-contiguous, large ids like those of a real post-processing pipeline.
    pred = np.where(pred > 0, pred * 7 + 1000, 0).astype(np.int32)
    ids = np.unique(pred[pred > 0])
    dropped, merged, cut = np.split(rng.choice(ids, size=9, replace=False), 3)
    pred[np.isin(pred, dropped)] = 0
    for label in merged:
        # Merge with the id of the nucleus that follows it in label order.
        pred[pred == label] = label + 7
    cols = np.arange(gt.shape[1])[None, :]
    for label in cut:
        inside = pred == label
        middle = np.median(np.nonzero(inside)[1])
        pred[inside & (cols > middle)] = label + 3  # ids +3 are unused (ids step by 7)
    spurious = random_discs(rng, gt.shape, 3)
    pred = np.where((pred == 0) & (spurious > 0), spurious + 100_000, pred)
    return pred


def build_pairs(n_images: int, shape: tuple[int, int], n_discs: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(n_images):
        gt = random_discs(rng, shape, n_discs)
        pairs.append((gt, perturbed_prediction(rng, gt)))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=120)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--discs", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    pairs = build_pairs(args.images, (args.size, args.size), args.discs)
    timings = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        score = dataset_score(pairs)
        timings.append(time.perf_counter() - start)
    example = evaluate_image(*pairs[0])
    print(f"first image: {example}")
    print(f"dataset_score over {len(pairs)} pairs of {args.size}x{args.size}: {score:.4f}")
    print(f"best of {args.repeats}: {min(timings):.3f} s")


if __name__ == "__main__":
    main()
