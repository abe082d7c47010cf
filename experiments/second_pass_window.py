"""What the size estimate's second pass in a window (``sizing.second_pass_window``) saves and
changes, against the second pass over the whole enlarged image, on the validation images the
shipped reference enlarges (issue 31: bounded cost). Usage::

    NUCLEITUT_DATA=../shared/data/stage1_train.zip python -m experiments.second_pass_window [--limit 12]

Per image: seconds of ``sizing.estimate_diameter`` both ways (best of two), the diameters and
scales, and the score of ``Pipeline.segment`` (no TTA) at each scale.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from experiments.common import reference_on_validation
from nucleitut import images, metrics, sizing


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=12, help="at most this many enlarged images")
    args = parser.parse_args(argv)
    pipeline, dataset, kinds, ids = reference_on_validation(10_000)
    window = sizing.second_pass_window
    rows = []
    for image_id in ids:
        image, truth = dataset.get(image_id)
        rgb, _ = images.prepare_image(image)
        result = {}
        for name, chooser in (("window", window), ("whole", lambda im, scale: im)):
            sizing.second_pass_window = chooser
            try:
                times = []
                for _ in range(2):
                    start = time.perf_counter()
                    estimate = sizing.estimate_diameter(rgb, pipeline.foreground, pipeline.training_diameter, band=pipeline.size_band)
                    times.append(time.perf_counter() - start)
            finally:
                sizing.second_pass_window = window
            result[name] = (min(times), estimate)
        if result["whole"][1].scale <= 1.0 and result["window"][1].scale <= 1.0:
            continue
        scores = {name: metrics.kaggle_score(truth, pipeline.segment(image, tta=False, scale=est.scale).labels)
                  for name, (_, est) in result.items()}
        rows.append((image_id, kinds[image_id], result, scores))
        (tw, ew), (ta, ea) = result["window"], result["whole"]
        print(f"{image_id[:10]} {kinds[image_id]:12s} estimate {tw:5.2f} s window / {ta:5.2f} s whole; "
              f"scale {ew.scale:.2f} / {ea.scale:.2f}; score {scores['window']:.3f} / {scores['whole']:.3f}", flush=True)
        if len(rows) >= args.limit:
            break
    if rows:
        t = np.array([[r[2]["window"][0], r[2]["whole"][0]] for r in rows])
        s = np.array([[r[3]["window"], r[3]["whole"]] for r in rows])
        print(f"{len(rows)} enlarged images: estimate {t[:, 0].mean():.2f} s (window) against {t[:, 1].mean():.2f} s (whole); "
              f"score {s[:, 0].mean():.3f} against {s[:, 1].mean():.3f}; same scale in {sum(r[2]['window'][1].scale == r[2]['whole'][1].scale for r in rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
