"""Does the cost bound for enlarged images cost score? (validation images; issue 31)

``SegmentOptions.cost_bound`` (:data:`nucleitut.sizing.COST_BOUND`) lets an image that the size
estimate enlarges cost at most twice its default segmentation at its own size: fewer TTA views
at the enlarged scale, and no estimated enlargement beyond :func:`nucleitut.sizing.max_enlargement`.
The decision rule was written before this ran (experiments/LAB_NOTES.md, "a cost bound for
enlarged images"): on the validation images of a band run (``choose_size_band.py``) at the
factors 1, 0.5, 2 and 3, shipped reference, TTA, default settings, the bound becomes the default
if the mean over the four factors drops by at most 0.005, no factor by more than 0.01, and no
image takes more than 2.2 times its segmentation at its own size.

Each image is segmented with the bound (``--bound``, default :data:`nucleitut.sizing.COST_BOUND`).
Only where the bound can change anything (the image was enlarged, or its estimate asked for
more than the cap) is it segmented again without the bound (or that result taken from an
earlier run, ``--reuse``) and at its own size for the time reference. Elsewhere both rules do
the same by construction and the bounded result stands for both. The time reference: the first
try (``cost_bound_validation.json``) took the segmentation without the size estimate
(``size=False``, TTA; ``own_seconds``); from the second try on it is what the rule and the
robustness benchmark compare with, the default segmentation at the image's own size: that,
plus the estimate's two shrunk probes (``own_default_seconds``). Usage::

    NUCLEITUT_DATA=../shared/data/stage1_train.zip python -m experiments.check_cost_bound \\
        --band-run results/benchmarks/size_band_validation.json \\
        --out experiments/results/cost_bound_validation.json                 # first try, bound 2
    NUCLEITUT_DATA=../shared/data/stage1_train.zip python -m experiments.check_cost_bound \\
        --band-run results/benchmarks/size_band_validation.json --bound 1.6 \\
        --reuse experiments/results/cost_bound_validation.json \\
        --out experiments/results/cost_bound_1.6_validation.json             # second try

The ``--out`` file is written after every image and resumed.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from experiments.common import band_run_parser, band_run_versions, finish_check
from nucleitut import data, metrics, sizing
from nucleitut.pipeline import Pipeline, SegmentOptions


def summary(rows: dict) -> dict:
    """Per factor: mean score with and without the bound, images affected, largest time ratios."""
    table = {}
    for factor, by_id in rows.items():
        entries = list(by_id.values())
        if not entries:
            continue
        affected = [e for e in entries if e["affected"]]
        table[factor] = {
            "n": len(entries),
            "bounded": float(np.mean([e["bounded"]["score"] for e in entries])),
            "unbounded": float(np.mean([e["unbounded"]["score"] for e in entries])),
            "n_affected": len(affected),
            "max_ratio_bounded": max((e["bounded"]["seconds"] / reference(e) for e in affected), default=0.0),
            "max_ratio_unbounded": max((e["unbounded"]["seconds"] / reference(e) for e in affected), default=0.0),
        }
    return table


def reference(entry: dict) -> float:
    """Seconds of the time reference (see the module's text)."""
    return entry.get("own_default_seconds", entry["own_seconds"])


def own_default_seconds(pipeline, image) -> tuple[float, float]:
    """Seconds of the segmentation at the image's own size without the estimate, and with the
    estimate's two shrunk probes added (the default segmentation when it does not rescale)."""
    own = pipeline.segment(image, SegmentOptions(size=False))
    rgb = own.image
    start = time.perf_counter()
    for probe in sizing.PROBE_SCALES:
        if probe != 1.0 and min(rgb.shape[:2]) * probe >= sizing.MIN_PROBE_SIDE:
            pipeline.foreground(sizing.rescale_image(rgb, probe, order=1))
    return own.seconds, own.seconds + time.perf_counter() - start


def result(found, truth) -> dict:
    return {"score": metrics.kaggle_score(truth, found.labels), "seconds": round(found.seconds, 3),
            "scale": round(found.scale, 4), "views": found.views, "source": found.diameter_source}


def main(argv=None) -> int:
    parser = band_run_parser(__doc__)
    parser.add_argument("--bound", type=float, default=sizing.COST_BOUND)
    parser.add_argument("--reuse", help="an earlier run's file: its unbounded results are taken, not made again")
    args = parser.parse_args(argv)
    earlier = json.loads(Path(args.reuse).read_text())["rows"] if args.reuse else {}
    band_run = json.loads(Path(args.band_run).read_text())
    out_path = Path(args.out)
    out = json.loads(out_path.read_text()) if out_path.exists() else {}
    out.setdefault("what", "validation images of the band run at its factors; shipped reference, TTA, defaults; "
                           "with and without the cost bound (SegmentOptions.cost_bound)")
    out["band_run"] = args.band_run
    out["cost_bound"] = args.bound
    out["reused_unbounded_from"] = args.reuse
    rows = out.setdefault("rows", {})
    pipeline = Pipeline.reference()
    limit = sizing.max_enlargement(len(pipeline.networks), bound=args.bound)
    bounded_options = SegmentOptions(cost_bound=args.bound)
    dataset = data.load_dataset(profile="full")
    pipeline.segment(dataset.get(band_run["rows"]["x1"][0]["id"])[0])  # warm-up: the first call compiles
    for factor_name, row, image, labels in band_run_versions(dataset, band_run, rows, args.factors, args.limit):
        bounded = pipeline.segment(image, bounded_options)
        wanted = sizing.scale_for(bounded.diameter, pipeline.training_diameter, band=None) if bounded.diameter else 1.0
        entry = {"id": row["id"], "type": band_run["types"][row["id"]], "bounded": result(bounded, labels),
                 "affected": bool(bounded.scale > 1.0 or wanted > limit)}
        if entry["affected"]:
            before = earlier.get(factor_name, {}).get(row["id"])
            if before is not None:
                entry["unbounded"] = before["unbounded"]
            else:
                entry["unbounded"] = result(pipeline.segment(image, SegmentOptions(cost_bound=None)), labels)
            own, own_default = own_default_seconds(pipeline, image)
            entry["own_seconds"], entry["own_default_seconds"] = round(own, 3), round(own_default, 3)
        else:
            entry["unbounded"] = entry["bounded"]
        rows[factor_name][row["id"]] = entry
        out["summary"] = summary(rows)
        out_path.write_text(json.dumps(out, indent=1) + "\n")
    out["summary"] = summary(rows)
    finish_check(out, out_path, "summary", "check_cost_bound.py", argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
