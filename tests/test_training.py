"""Tests of nucleitut.training: augmentation, crops, training, saved networks, resume, backends.
(The Table 3 networks and the profiles: tests/test_config.py.)"""

import csv
import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path

import numpy as np
import pytest
from skimage import measure

from nucleitut import config, data, targets, training

ROOT = Path(__file__).resolve().parents[1]


def tiny_config(**overrides):
    values = dict(blocks=3, filters=4, crop_size=64, max_epochs=2, time_budget_s=None, batch_size=4)
    values.update(overrides)
    return config.training_config("M3", "quick", **values)


@pytest.fixture(scope="module")
def sample():
    return data.load_dataset("sample", verbose=False, use_cache=False)


@pytest.fixture(scope="module")
def tiny_split(sample):
    split = sample.split()
    return data.Split(split.train[:3], split.val[:1], split.test[:1])


def test_augmentation_moves_image_and_labels_together():
    labels = np.zeros((32, 32), np.int32)
    labels[2:9, 3:20] = 1
    labels[15:30, 20:25] = 2
    image = np.repeat((labels * 0.4 - 0.5).astype(np.float32)[..., None], 3, axis=-1)
    rng = np.random.default_rng(3)
    for _ in range(20):
        out_image, out_labels = training.augment(image, labels, training.AUGMENTATION_SETS["b"], rng)
        assert np.array_equal(np.round((out_image[..., 0] + 0.5) / 0.4).astype(int), out_labels)
    changed = [training.augment(image, labels, ("scale",), np.random.default_rng(s)) for s in range(6)]
    assert all(im.shape == (32, 32, 3) and lab.shape == (32, 32) for im, lab in changed)
    assert any(not np.array_equal(lab, labels) for _, lab in changed)
    with pytest.raises(ValueError, match="unknown augmentation"):
        training.augment(image, labels, ("twist",), rng)
    assert set(training.AUGMENTATION_SETS) == {"none", "a", "b", "robust"}  # the paper's sets, none, this project's
    assert set(training.AUGMENTATION_SETS["a"]) > set(training.AUGMENTATION_SETS["b"]) and "scale" in training.AUGMENTATION_SETS["a"]
    assert set(training.AUGMENTATION_SETS["robust"]) > set(training.AUGMENTATION_SETS["a"])


def _colour_crop():
    labels = np.zeros((48, 48), np.int32)
    labels[4:20, 6:22], labels[26:44, 24:40] = 1, 2
    rgb = np.where(labels[..., None] > 0, [120, 60, 160], [230, 210, 225]).astype(np.uint8)  # stained nuclei, pale tissue
    return data.normalize(rgb), labels


@pytest.mark.parametrize("op", ["colour", "invert", "intensity", "jpeg"])
def test_robust_operations_change_pixel_values_only(op):
    image, labels = _colour_crop()
    draws = [training.augment(image, labels, (op,), np.random.default_rng(s)) for s in range(12)]
    applied = [im for im, _ in draws if not np.array_equal(im, image)]
    assert 0 < len(applied) < 12  # applied with its probability, not always
    for im, lab in draws:
        assert im.shape == image.shape and im.dtype == np.float32 and np.array_equal(lab, labels)
        assert im.min() >= -1 and im.max() <= 1
        assert np.allclose((im + 1) * 127.5, np.round((im + 1) * 127.5), atol=1e-3)  # 8-bit levels, as a camera gives
    if op == "invert":
        assert all(np.allclose(im, -image) for im in applied)
    if op == "intensity":  # dimmer or offset, never brighter than a gain of 1 and an offset of 40 allow
        assert all(((im + 1) * 127.5).max() <= 255 for im in applied)
        assert any(np.ptp(im) < np.ptp(image) for im in applied)


def test_robust_colour_leaves_grey_crops_grey():
    image, labels = _colour_crop()
    grey = np.repeat(image.mean(axis=-1, keepdims=True), 3, axis=-1)
    grey = data.normalize(data.denormalize(grey))
    for seed in range(10):
        out, _ = training.augment(grey, labels, ("colour",), np.random.default_rng(seed))
        assert np.array_equal(out, grey)
    coloured = [training.augment(image, labels, ("colour",), np.random.default_rng(s))[0] for s in range(20)]
    assert any(np.ptp(im, axis=-1).max() == 0 for im in coloured)  # grey conversion
    assert any(np.ptp(im, axis=-1).max() > 0 and not np.array_equal(im, image) for im in coloured)  # stain or channels


def test_robust_crops_keep_image_and_labels_aligned():
    # Geometric operations move image and labels together; the others change intensities only,
    # so the nuclei of the labels stay where the image shows them (bright or, inverted, dark).
    image, labels = _colour_crop()
    rng = np.random.default_rng(5)
    correlations = []
    for _ in range(40):
        out, out_labels = training.augment(image, labels, training.AUGMENTATION_SETS["robust"], rng)
        assert out.shape == image.shape and out_labels.shape == labels.shape
        correlations.append(abs(np.corrcoef(out.mean(axis=-1).ravel(), (out_labels > 0).ravel())[0, 1]))
    assert np.median(correlations) > 0.8 and min(correlations) > 0.2
