"""What the experiments share: the image making and the resumable validation checks of
``benchmarks/bench_segment.py`` as it was at commit e64f97d, copied here so that every
experiment runs as ``python -m experiments.<name>`` from the repository root, with no
import path edited by hand.

A copy, not an import: an experiment is a record of what was run, so a later change to the
product benchmark must not change what these scripts compute. ``rescaled`` here is
``bench_segment.rescaled`` of that commit (``tests/test_benchmarks.py`` tests the benchmark's
copy; nothing tests this one).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

#: The scale factors of ``bench_segment.py``'s scale section.
FACTORS = (0.5, 2.0, 3.0)


def rescaled(image, labels, factor, registered=False):
    """An RGB image rescaled by ``factor`` (linear, anti-aliased when shrinking) and its labels
    (nearest neighbour, to the same size).

    ``registered`` (shrinking only): the image is sampled at the very pixels the labels come
    from. Nearest-neighbour shrinking by 2 meets a tie in every 2x2 block and skimage keeps the
    lower-right pixel, while the image is sampled between the four: the labels then lie half a
    native pixel (a quarter of a halved one) to the lower right of what the image shows, which
    costs 8-pixel nuclei much of their IoU (``results/benchmarks/half_scale_test_bounds.json``).
    Here the image is smoothed as skimage smooths it (Gaussian, sigma = (1/factor - 1) / 2)
    and then taken at the labels' pixels, so both show the same positions.
    """
    from scipy import ndimage
    from skimage.transform import rescale, resize

    big = rescale(image, factor, channel_axis=-1, order=1, preserve_range=True, anti_aliasing=factor < 1)
    shape = big.shape[:2]
    nearest = lambda array: resize(array, shape, order=0, preserve_range=True, anti_aliasing=False)  # noqa: E731
    if registered and factor < 1:
        rows, cols = np.indices(labels.shape)
        sigma = [max(0.0, (n / m - 1) / 2) for n, m in zip(labels.shape, shape)] + [0.0]
        smooth = ndimage.gaussian_filter(image.astype(np.float64), sigma, mode="mirror")
        big = smooth[nearest(rows).astype(int), nearest(cols).astype(int)]
    return np.clip(np.round(big), 0, 255).astype(np.uint8), nearest(labels).astype(np.int32)


def band_run_versions(dataset, band_run, rows, factors=None, limit=None):
    """The validation images of a band run (``choose_size_band.py``) at its factors, for checks
    that resume: yields ``(factor_name, row, image, labels)`` for the images not yet in
    ``rows[factor_name]`` (dicts by image id that the caller fills), and prints each factor's
    count and time."""
    for factor_name, band_rows in band_run["rows"].items():
        if factors and factor_name not in factors:
            continue
        done = rows.setdefault(factor_name, {})
        factor = float(factor_name[1:])
        start = time.perf_counter()
        for row in band_rows[:limit]:
            if row["id"] in done:
                continue
            image, labels = dataset.get(row["id"])
            if factor != 1.0:
                image, labels = rescaled(image, labels, factor)
            yield factor_name, row, image, labels
        print(f"{factor_name}: {len(done)} images ({time.perf_counter() - start:.0f} s)", flush=True)


def band_run_parser(doc: str) -> argparse.ArgumentParser:
    """The options every check on a band run's validation images takes."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--band-run", required=True, help="output of choose_size_band.py (images and size estimates)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--limit", type=int, default=None, help="first N images of the band run only")
    parser.add_argument("--factors", nargs="+", default=None, help="only these factors of the band run (e.g. x1 x0.5)")
    return parser


def finish_check(out: dict, path, table_key: str, script: str, argv=None) -> None:
    """Last write of a validation check's ``--out`` file (with the command and the
    environment) and its table printed: ``out[table_key]`` maps a factor to named means."""
    from nucleitut import records

    name = script.removesuffix(".py")
    out.update(command=f"python -m experiments.{name} " + " ".join(sys.argv[1:] if argv is None else argv), **records.environment())
    Path(path).write_text(json.dumps(out, indent=1) + "\n")
    for factor, entry in out[table_key].items():
        print(factor, "  ".join(f"{k} {v:.3f}" if k != "n" else f"n {v}" for k, v in entry.items()))


def stratified(ids, kinds, limit):
    """At most ``limit`` of ``ids``, the first of every image type in turn (``kinds``: id -> type)."""
    by_kind = {k: [i for i in ids if kinds[i] == k] for k in sorted(set(kinds.values()))}
    chosen = []
    while len(chosen) < min(limit, len(ids)):
        for k in by_kind:
            if by_kind[k] and len(chosen) < limit:
                chosen.append(by_kind[k].pop(0))
    return chosen


def library():
    """The functions this benchmark uses, in the package layout before or after the split of
    ``data``/``segment`` into ``images``, ``sizing`` and ``pretrained``."""
    import importlib

    from nucleitut import data, segment

    try:
        image_type = importlib.import_module("nucleitut.images").image_type
    except (ImportError, AttributeError):
        image_type = data.image_type
    load_networks = getattr(segment, "load_networks", None) or importlib.import_module("nucleitut.pretrained").load_networks
    return image_type, load_networks


def reference_on_validation(limit):
    """The shipped reference pipeline, the full data set, its validation images' types and
    ``limit`` of them stratified by type: ``(pipeline, dataset, kinds, ids)``. For the scripts
    written against the pipeline API (``size_trust``, ``choose_intensity_rule``)."""
    from nucleitut import data, images
    from nucleitut.pipeline import Pipeline

    pipeline = Pipeline.reference()
    dataset = data.load_dataset(profile="full")
    val = dataset.split().val
    kinds = {i: images.image_type(dataset.get(i)[0]) for i in val}
    return pipeline, dataset, kinds, stratified(val, kinds, limit)
