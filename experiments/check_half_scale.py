"""What a halved image can still score: the native segmentation shrunk, against halving first.

``bench_segment.py`` halves each test image and its labels (nearest neighbour) and asks the
pipeline to segment the small image. This check scores, on the same ``--limit`` stratified
subset and the same halved labels, (a) the pipeline's labels of the *native* image shrunk
the same way (what a perfect size handling could give when the network had the native
detail) and (b) the pipeline on the halved image with automatic size handling. Usage::

    NUCLEITUT_DATA=../shared/data/stage1_train.zip python -m experiments.check_half_scale --limit 40
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from experiments.common import library, rescaled, stratified


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--factor", type=float, default=0.5)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    from nucleitut import data, metrics, segment, sizing

    image_type, load_networks = library()
    networks = load_networks()
    dataset = data.load_dataset(profile="full")
    test = dataset.split().test
    kinds = {i: image_type(dataset.get(i)[0]) for i in test}
    subset = stratified(test, kinds, args.limit)
    rows = []
    for image_id in subset:
        image, truth = dataset.get(image_id)
        small, small_truth = rescaled(image, truth, args.factor)
        native = segment.segment_image(image, networks=networks, size=False).labels
        shrunk = sizing.rescale_labels(native, small_truth.shape)
        auto = segment.segment_image(small, networks=networks)
        rows.append({"id": image_id, "native": metrics.kaggle_score(truth, native),
                     "native_shrunk": metrics.kaggle_score(small_truth, shrunk),
                     "small_auto": metrics.kaggle_score(small_truth, auto.labels), "small_scale": auto.scale})
        print(json.dumps(rows[-1]), flush=True)
    summary = {k: float(np.mean([r[k] for r in rows])) for k in ("native", "native_shrunk", "small_auto")}
    print(json.dumps({"n": len(rows), "factor": args.factor, **summary}))
    if args.out:
        Path(args.out).write_text(json.dumps({"command": "python -m experiments.check_half_scale " + " ".join(sys.argv[1:]),
                                              "n": len(rows), "factor": args.factor, "mean": summary, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
