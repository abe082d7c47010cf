"""Does averaging the networks' outputs over neighbouring scales forgive a wrong scale? (validation images)

The size handling picks one scale per image (``sizing.scale_for`` of the estimated diameter);
on halved images that scale is often not the one where the networks do best
(``check_scale_confidence.py``: an oracle over candidate scales gains 0.03-0.05, and no
confidence measure finds it). Averaging over scales, as test-time augmentation averages
over flips, needs no choice: each validation image of the band run, at its factors, is
predicted (reference networks, no TTA) at the library's scale ``s`` and at ``s / sqrt(2)``
and ``s * sqrt(2)``; the outputs at the other scales are resized (linear) to the grid of
``s`` and fused with ``predict.combine_predictions`` (mean; maximum of the border channel,
the TTA rule), post-processed at ``s``, and the labels mapped back and scored. Combinations:
``library`` (``s`` alone, today's rule), ``up`` (``s``, ``s*sqrt2``), ``down`` (``s/sqrt2``,
``s``), ``three`` (all three). ``--library-path`` scores the library's option instead
(``segment_image(..., fuse_scales=True)``, whose neighbours are the image at ``s`` rescaled
again). Usage::

    NUCLEITUT_DATA=../shared/data/stage1_train.zip python -m experiments.check_multiscale \\
        --band-run results/benchmarks/size_band_validation.json --out experiments/results/multiscale_validation.json

The ``--out`` file is written after every image and resumed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from experiments.common import band_run_parser, band_run_versions, finish_check
from nucleitut import data, metrics, predict, pretrained, sizing

#: Steps around the library's scale, and the combinations scored.
STEPS = {"down": 2 ** -0.5, "same": 1.0, "up": 2 ** 0.5}
COMBINATIONS = {"library": ("same",), "up": ("same", "up"), "down": ("down", "same"), "three": ("down", "same", "up")}
#: A step whose rescaled image would exceed this many pixels is left out of its combinations.
MAX_PIXELS = 4_000_000


def main(argv=None) -> int:
    parser = band_run_parser(__doc__)
    parser.add_argument("--library-path", action="store_true",
                        help="score the library's fusion instead (Segmenter(..., fuse_scales=True): the neighbours are "
                             "the rescaled image rescaled again), as 'library' and 'fused'")
    args = parser.parse_args(argv)

    band_run = json.loads(Path(args.band_run).read_text())
    segmenter, target = pretrained.load_networks()
    dataset = data.load_dataset(profile="cpu")
    out = {"what": __doc__.split("\n\n")[0], "band_run": Path(args.band_run).name, "target_px": target,
           "steps": STEPS, "combinations": COMBINATIONS, "tta": False, "rows": {}}
    if Path(args.out).exists():
        out["rows"] = json.loads(Path(args.out).read_text())["rows"]
    for factor_name, row, image, labels in band_run_versions(dataset, band_run, out["rows"], args.factors, args.limit):
        scale = sizing.scale_for(row["diameter"], target)
        base = sizing.rescale_image(image, scale)
        if args.library_path:
            scores = {name: metrics.kaggle_score(labels, sizing.rescale_labels(segmenter(base, fuse_scales=fuse), labels.shape))
                      for name, fuse in (("library", False), ("fused", True))}
            out["rows"][factor_name][row["id"]] = {"diameter": row["diameter"], "scale": scale, "scores": scores}
            Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
            continue
        outputs = {}
        for step, k in STEPS.items():
            s = float(np.clip(scale * k, *sizing.SCALE_RANGE))
            if step != "same" and (s == scale or image.shape[0] * image.shape[1] * s * s > MAX_PIXELS):
                continue
            probs = segmenter.probabilities(base if step == "same" else sizing.rescale_image(image, s))
            outputs[step] = {n: sizing.resize_output(p, base.shape[:2]) for n, p in probs.items()}
        entry = {"diameter": row["diameter"], "scale": scale, "steps": sorted(outputs), "scores": {}}
        for name, steps in COMBINATIONS.items():
            used = [s for s in steps if s in outputs]
            fused = {n: predict.combine_predictions([outputs[s][n] for s in used]) for n in segmenter.pipeline.networks}
            found = sizing.rescale_labels(segmenter.labels_from(fused), labels.shape)
            entry["scores"][name] = metrics.kaggle_score(labels, found)
        out["rows"][factor_name][row["id"]] = entry
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
        print(factor_name, row["id"][:10], " ".join(f"{k} {v:.3f}" for k, v in entry["scores"].items()), flush=True)
    names = ("library", "fused") if args.library_path else COMBINATIONS
    out["mean"] = {f: {name: float(np.mean([e["scores"][name] for e in rows.values()])) for name in names} | {"n": len(rows)}
                   for f, rows in out["rows"].items()}
    finish_check(out, args.out, "mean", "check_multiscale.py", argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
