"""How much do the halved test images' labels lose to their half-pixel offset?

``bench_segment.py`` (without ``--registered``) halves every test image with anti-aliasing
and its labels by nearest neighbour; the labels then keep the lower-right pixel of every 2x2
block and lie half a native pixel (a quarter of a halved one) to the lower right of what the
image shows. On each halved test image this check runs the library's size handling as
``segment_image`` does (estimate, rescale, reference networks with TTA) and scores three ways
of getting labels at the halved size from the same network outputs:

* ``labels_mapped_back``: post-processed at the chosen scale, labels mapped back by nearest
  neighbour (what ``segment_image`` does; its scores, identical, are in
  ``segment_cpu_scale120_halfway.json``);
* ``outputs_mapped_back``: the outputs mapped back (linear) and post-processed on the halved
  grid (minimum areas divided by the scale squared);
* ``outputs_shifted``: the same, shifted by the labels' quarter pixel before post-processing
  -- a diagnostic of the offset, not something a library should do.

Usage::

    NUCLEITUT_DATA=../shared/data/stage1_train.zip python -m experiments.check_half_pixel_offset \\
        --out experiments/results/half_pixel_offset.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from experiments.common import rescaled
from nucleitut import data, images, metrics, pretrained, records, sizing

COLUMNS = ("labels_mapped_back", "outputs_mapped_back", "outputs_shifted")


def halved_scores(segmenter, target, image, labels) -> dict:
    """The three scores (:data:`COLUMNS`) and the chosen scale of one image, halved."""
    from scipy import ndimage

    half, truth = rescaled(image, labels, 0.5)
    rgb, _ = images.prepare_image(half)
    _, scale = sizing.estimate_diameter(rgb, segmenter, target, band=segmenter.size_band)
    probs = segmenter.probabilities(sizing.rescale_image(rgb, scale), tta=True)
    areas = {k: int(round(segmenter.settings.get(k, 0) / scale**2)) for k in ("min_marker_area", "min_area")}
    back = {n: sizing.resize_output(p, truth.shape) for n, p in probs.items()}
    shifted = {n: ndimage.shift(p, (-0.25, -0.25, 0), order=1, mode="nearest") for n, p in back.items()}
    found = {"labels_mapped_back": sizing.rescale_labels(segmenter.labels_from(probs), truth.shape),
             "outputs_mapped_back": segmenter.labels_from(back, **areas),
             "outputs_shifted": segmenter.labels_from(shifted, **areas)}
    return {"scale": float(scale), **{k: metrics.kaggle_score(truth, v) for k, v in found.items()}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, help="only the first N test images (a quick trial)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    dataset = data.load_dataset(profile="cpu")
    ids = list(dataset.split().test)[:args.limit]
    segmenter, target = pretrained.load_networks()
    rows = []
    for image_id in ids:
        rows.append({"id": image_id, **halved_scores(segmenter, target, *dataset.get(image_id))})
    out = {"what": __doc__.split("\n\n")[0], "n_images": len(ids), "pipeline": segmenter.pipeline.name, "tta": True,
           **{k: float(np.mean([r[k] for r in rows])) for k in COLUMNS}, "rows": rows,
           "command": "python -m experiments.check_half_pixel_offset " + " ".join(sys.argv[1:] if argv is None else argv),
           **records.environment()}
    print("  ".join(f"{k} {out[k]:.3f}" for k in COLUMNS), flush=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
