"""Build the embedded real-data sample ``nucleitut/sample/`` from the full stage1_train zip.

Usage::

    python tools/make_sample.py ../shared/data/stage1_train.zip

The sample holds original files (image and per-nucleus mask PNGs copied byte for byte) of
48 images chosen with a fixed seed so that every image type and size class is present:
fluorescence with small and with large nuclei in every image size, bright-field, and
H&E-stained tissue. Its split keeps 12 images of the test set of the paper's split rule
(the last 120 sorted ids of the 664 fixed images, :func:`nucleitut.data.paper_split`) as its
test part; of the other 36, 8 are validation.
"""

from __future__ import annotations

import json
import sys
import zipfile
from collections import defaultdict
from pathlib import Path

import numpy as np

from nucleitut import data

#: (group, how many from the training+validation part of the paper's split rule, how many from its test part)
QUOTAS = [
    ("fluorescence small nuclei 256x256", 6, 3),
    ("fluorescence large nuclei 256x256", 4, 2),
    ("fluorescence 360x360", 3, 1),
    ("fluorescence 520x696", 3, 1),
    ("fluorescence 512x640", 2, 1),
    ("fluorescence 603x1272", 1, 0),
    ("fluorescence 260x347", 1, 0),
    ("fluorescence 256x320", 1, 0),
    ("H&E tissue 256x320", 8, 4),
    ("bright-field 1024x1024", 3, 0),
]
N_VAL = 8
SEED = 2018


def image_group(image: np.ndarray, labels: np.ndarray) -> str:
    """The sample's group of an image: its type and size class."""
    h, w = image.shape[:2]
    gray = bool(np.all(image[..., 0] == image[..., 1]) and np.all(image[..., 1] == image[..., 2]))
    if not gray:
        return f"H&E tissue {h}x{w}"
    if image.mean() > 100:
        return f"bright-field {h}x{w}"
    if (h, w) == (256, 256):
        areas = np.bincount(labels.ravel())[1:]
        size = "small" if np.median(areas[areas > 0]) < 250 else "large"
        return f"fluorescence {size} nuclei 256x256"
    return f"fluorescence {h}x{w}"


def main(source: str) -> None:
    dataset = data.load_dataset(source)
    split = data.paper_split(dataset.ids)
    test_ids = set(split.test)
    groups: dict[tuple[str, bool], list[str]] = defaultdict(list)
    for image_id, image, labels in zip(dataset.ids, dataset.images, dataset.labels):
        groups[(image_group(image, labels), image_id in test_ids)].append(image_id)
    rng = np.random.default_rng(SEED)
    chosen_train, chosen_test = [], []
    for group, n_rest, n_test in QUOTAS:
        for in_test, n, out in ((False, n_rest, chosen_train), (True, n_test, chosen_test)):
            pool = sorted(groups[(group, in_test)])
            if len(pool) < n:
                raise SystemExit(f"group {group!r} (test={in_test}) has only {len(pool)} images")
            out.extend(sorted(rng.choice(pool, n, replace=False).tolist()))
    val = sorted(rng.choice(sorted(chosen_train), N_VAL, replace=False).tolist())
    train = sorted(set(chosen_train) - set(val))
    wanted = set(train) | set(val) | set(chosen_test)

    out_dir = data.SAMPLE_DIR
    out_dir.mkdir(exist_ok=True)
    with zipfile.ZipFile(source) as full, zipfile.ZipFile(data.SAMPLE_ZIP, "w", zipfile.ZIP_STORED) as sample:
        for info in sorted(full.infolist(), key=lambda i: i.filename):
            parts = info.filename.split("/")
            if len(parts) >= 4 and parts[1] in wanted and not info.filename.endswith("/"):
                # PNG files are compressed already; storing them keeps reading fast.
                sample.writestr("/".join(parts[1:]), full.read(info.filename))
    info = {
        "about": "Embedded sample of BBBC038v1 stage1_train (community label fixes), CC0. "
        "Built by tools/make_sample.py; test = images of the paper's test split.",
        "groups": {i: image_group(*dataset.get(i)) for i in sorted(wanted)},
        "train": train,
        "val": val,
        "test": sorted(chosen_test),
    }
    data.SAMPLE_SPLIT.write_text(json.dumps(info, indent=1) + "\n")
    size = data.SAMPLE_ZIP.stat().st_size / 1e6
    print(f"{len(wanted)} images ({len(train)}/{len(val)}/{len(chosen_test)}), {size:.1f} MB -> {data.SAMPLE_ZIP}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).parents[2] / "shared/data/stage1_train.zip"))
