"""Scores of a size band recombined from a bench_segment run's per-image scores.

A band only decides whether an image is rescaled (by the same factor as without a band), so
an image's score under a band is its "auto" score when its estimated diameter lies outside
the band and its "no size handling" score when inside. Usage::

    python -m experiments.recombine_size_band results/benchmarks/segment_cpu.json \\
        results/benchmarks/segment_cpu_native120.json --band 8.5 42

Since the size handling rescales an image outside the band halfway to the median (fourth
build), ``target / scale`` is no longer the estimated diameter; ``--diameters`` takes each
image's estimate from a ``bench_robustness`` run of the same images (its ``native`` rows)
instead, for the native images only. An image outside both bands keeps its measured score;
one that leaves the band for a wider one gets its score without size handling (exact); one
rescaled under both keeps the old band's factor, an approximation where a band end moved.
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def recombined(auto: dict, plain: dict, target: float, band: tuple[float, float],
               diameters: list[float] | None = None) -> float:
    """Mean score with ``band``; ``diameters``: each image's estimated diameter (else inferred
    from the scale used, valid only for rescaling to the median ``target``)."""
    scores = []
    for i, (a, p, scale) in enumerate(zip(auto["per_image"], plain["per_image"], auto["scale_used"])):
        if diameters is not None:
            diameter = diameters[i]
        else:
            diameter = target / scale if scale != 1.0 else target  # scale 1: within the old tolerance
        scores.append(p if diameter is not None and band[0] <= diameter <= band[1] else a)
    return float(np.mean(scores))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--band", nargs=2, type=float, required=True)
    parser.add_argument("--diameters", help="bench_robustness run whose native rows give each image's estimated diameter")
    args = parser.parse_args(argv)
    estimates = None
    if args.diameters:
        robustness = json.load(open(args.diameters))
        estimates = {row["id"]: row["diameter"] for row in robustness["rows"]["native"]}
    for path in args.runs:
        run = json.load(open(path))
        target = run["training_diameter_px"]
        sets = [("native", run["native"], run["native_without_handling"])]
        if estimates is None:
            sets += [(f"x{f}", v["auto_size"], v["no_size_handling"]) for f, v in run.get("scale", {}).items()]
        for name, auto, plain in sets:
            diameters = None
            if estimates is not None:
                missing = [i for i in run["images"] if i not in estimates]
                if missing:
                    raise SystemExit(f"{args.diameters}: no native row for {len(missing)} image(s) of {path}, e.g. {missing[0]}")
                diameters = [estimates[i] for i in run["images"]]
            score = recombined(auto, plain, target, tuple(args.band), diameters)
            print(f"{path}: {name:7s} n={auto['n']:3d}  auto {auto['mean']:.3f}  none {plain['mean']:.3f}  "
                  f"band {args.band[0]:g}-{args.band[1]:g}: {score:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
