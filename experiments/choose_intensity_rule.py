"""Which intensity rule should ``prepare_image(normalize='auto')`` follow? Chosen on validation images.

    NUCLEITUT_DATA=../shared/data/stage1_train.zip python -m experiments.choose_intensity_rule \\
        [--limit 40] [--out experiments/results/intensity_rule_validation.json]

Validation images of the paper's split (stratified by type, ``--limit``), as they are and
perturbed as in ``benchmarks/bench_robustness.py`` (dim, low contrast, inverted, enlarged and
dim), segmented by the reference pipeline (no TTA, size estimate on) after each candidate rule:

* ``today``: 8-bit images as they are unless their 99.8th percentile is below ``DIM_LEVEL``;
* ``levels``: also stretch grey dark-background 8-bit images whose background (1st
  percentile) lies above the brightest background of the data set's fluorescence images (24)
  or whose range (99.8th - 1st percentile) lies below its smallest (15);
* ``always``: every image stretched by its percentiles (``normalize='always'``);
* ``fluorescence``: every grey image with a dark background stretched (to the fluorescence
  levels), other images as ``today``; ``fluorescence-colour``: also colour images whose range
  lies below the smallest among BBBC038v1's colour images (67);
* ``levels+invert`` and ``always+invert``: the same after inverting grey images with a
  bright background (median above 127), so that dark nuclei on a bright background look
  like fluorescence; for these also the 16 grey bright-background images of the training
  and validation split as they are and inverted (the networks learned them as they are).
"""

from __future__ import annotations

import argparse
import sys
import json
import time
from pathlib import Path

import numpy as np

# The perturbations of the robustness benchmark at the commit this script was added with.
from benchmarks.bench_robustness import PERTURBATIONS
from experiments.common import reference_on_validation

CONDITIONS = ("native", "dim", "low_contrast", "inverted", "enlarged_dim")


def is_grey(image):
    return image.ndim == 2 or bool((image == image[..., :1]).all())


def decide(rule: str, image: np.ndarray) -> tuple[str, bool]:
    """(normalize mode, invert first) for an 8-bit RGB image under ``rule``."""
    invert = rule.endswith("+invert") and is_grey(image) and np.median(image) > 127
    if invert:
        image = 255 - image
    base = rule.split("+")[0]
    if base == "always":
        return "always", invert
    low, high = np.percentile(image, [1, 99.8])
    if high < 12:
        return "always", invert
    dark_grey = is_grey(image) and np.median(image) < 128
    if base == "levels" and dark_grey and (low > 24 or high - low < 15):
        return "always", invert
    if base in ("fluorescence", "fluorescence-colour") and dark_grey:
        return "always", invert
    if base == "fluorescence-colour" and not is_grey(image) and high - low < 67:
        return "always", invert
    return "never", invert


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--rules", nargs="+", default=["today", "levels", "always", "levels+invert", "always+invert"])
    parser.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=CONDITIONS)
    parser.add_argument("--out", default="experiments/results/intensity_rule_validation.json")
    args = parser.parse_args(argv)
    from nucleitut import images, metrics, records

    pipeline, dataset, kinds, ids = reference_on_validation(args.limit)
    val = dataset.split().val
    cache, result = {}, {"command": "python -m experiments.choose_intensity_rule " + " ".join(argv if argv is not None else sys.argv[1:]), "n_images": len(ids), "images": ids,
                         "types": {k: sum(kinds[i] == k for i in ids) for k in sorted(set(kinds.values()))},
                         **records.environment(), "scores": {}, "seconds": {}}
    # Every grey bright-background image of the training and validation images (16): the
    # networks learned them as they are, so inverting them must at least not cost much.
    bright = [i for i in dataset.split().train + val if images.image_type(dataset.get(i)[0]) == "bright-field"]
    result["bright_field"] = {"images": bright, "scores": {}}
    for rule in [r for r in ("today", "levels+invert") if r in args.rules]:
        scores = []
        for image_id in bright:
            image, truth = dataset.get(image_id)
            mode, invert = decide(rule, image)
            found = pipeline.segment(255 - image if invert else image, normalize=mode, tta=False)
            scores.append(float(metrics.kaggle_score(truth, found.labels)))
        result["bright_field"]["scores"][rule] = scores
        print(f"bright-field ({len(bright)} training and validation images), {rule}: {np.mean(scores):.3f}", flush=True)
    for condition in args.conditions:
        for k, image_id in enumerate(ids):
            image, truth = dataset.get(image_id)
            if condition != "native":
                image, truth = PERTURBATIONS[condition][0](image, truth, np.random.default_rng([k, 31]))
            for rule in args.rules:
                mode, invert = decide(rule, image)
                key = (condition, image_id, mode, invert)
                if key not in cache:
                    start = time.perf_counter()
                    found = pipeline.segment(255 - image if invert else image, normalize=mode, tta=False)
                    cache[key] = (float(metrics.kaggle_score(truth, found.labels)), time.perf_counter() - start)
                result["scores"].setdefault(rule, {}).setdefault(condition, {})[image_id] = cache[key][0]
                result["seconds"].setdefault(rule, {}).setdefault(condition, {})[image_id] = cache[key][1]
        summary = {rule: {c: round(float(np.mean(list(v.values()))), 4) for c, v in result["scores"][rule].items()} for rule in args.rules}
        result["mean"] = summary
        result["mean_by_type"] = {rule: {c: {t: round(float(np.mean([s for i, s in v.items() if kinds[i] == t])), 4)
                                             for t in result["types"]} for c, v in result["scores"][rule].items()}
                                  for rule in args.rules}
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
        print(condition, {rule: summary[rule][condition] for rule in args.rules}, flush=True)


if __name__ == "__main__":
    main()
