"""Post-processing settings chosen on stained-tissue images alone: do they help tissue?

The shipped reference's post-processing settings were chosen on all validation images, 85
of the 109 fluorescence (22 tissue, 2 bright-field). This check chooses them again on the validation images of
type ``tissue`` only (``images.image_type``; :func:`nucleitut.evaluation.tune_postprocessing`
over ``config.POSTPROCESS_GRID``), then scores the tissue *test* images with the reference's
settings and with the tissue ones. Reference networks, TTA, no size handling (the size
handling leaves these images as they are), intensities as the library prepares them. Usage::

    NUCLEITUT_DATA=../shared/data/stage1_train.zip python -m experiments.check_tissue_settings \\
        --out results/benchmarks/tissue_settings.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from nucleitut import data, evaluation, images, metrics, pretrained, records


def outputs(segmenter, dataset, ids):
    """Image id -> (network outputs with TTA, true labels) of the tissue images among ``ids``."""
    found = {}
    for image_id in ids:
        image, truth = dataset.get(image_id)
        if images.image_type(image) != "tissue":
            continue
        rgb, _ = images.prepare_image(image, name=image_id)
        found[image_id] = (segmenter.probabilities(rgb, tta=True), truth)
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    segmenter, _ = pretrained.load_networks()
    dataset = data.load_dataset(profile="full")
    split = dataset.split()
    val, test = outputs(segmenter, dataset, split.val), outputs(segmenter, dataset, split.test)
    tuned = evaluation.tune_postprocessing(segmenter, {i: p for i, (p, _) in val.items()}, {i: t for i, (_, t) in val.items()})

    def scores(settings):
        return {i: metrics.kaggle_score(truth, segmenter.labels_from(probs, **settings)) for i, (probs, truth) in test.items()}

    reference, tissue = scores({}), scores(tuned["settings"])
    difference = np.array([tissue[i] - reference[i] for i in test])
    out = {
        "what": __doc__.split("\n\n")[0],
        "reference_settings": segmenter.settings,
        "tissue_settings": tuned["settings"],
        "validation": {"n_images": len(val), "reference_settings": float(np.mean([
            metrics.kaggle_score(t, segmenter.labels_from(p)) for p, t in val.values()])), "tissue_settings": tuned["score"]},
        "test": {"n_images": len(test), "reference_settings": float(np.mean(list(reference.values()))),
                 "tissue_settings": float(np.mean(list(tissue.values()))),
                 "difference": float(difference.mean()),
                 "standard_error": float(difference.std(ddof=1) / np.sqrt(len(difference))) if len(difference) > 1 else None,
                 "per_image": {i: {"reference_settings": reference[i], "tissue_settings": tissue[i]} for i in test}},
        "grid_table": tuned["table"],
        "wall_seconds": round(time.perf_counter() - start, 1),
        "command": "python -m experiments.check_tissue_settings " + " ".join(sys.argv[1:] if argv is None else argv),
        **records.environment(),
    }
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"settings chosen on {len(val)} tissue validation images: {tuned['settings']} "
          f"({out['validation']['reference_settings']:.3f} -> {tuned['score']:.3f})")
    print(f"{len(test)} tissue test images: reference settings {out['test']['reference_settings']:.3f}, "
          f"tissue settings {out['test']['tissue_settings']:.3f} ({out['test']['difference']:+.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
