"""Scores of a size band recombined from a bench_segment run's per-image scores.

A band only decides whether an image is rescaled (by the same factor as without a band), so
an image's score under a band is its "auto" score when its estimated diameter lies outside
the band and its "no size handling" score when inside. Usage::

    python -m experiments.recombine_size_band results/benchmarks/segment_cpu.json \\
        results/benchmarks/segment_cpu_native120.json --band 8.5 42
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def recombined(auto: dict, plain: dict, target: float, band: tuple[float, float]) -> float:
    scores = []
    for a, p, scale in zip(auto["per_image"], plain["per_image"], auto["scale_used"]):
        diameter = target / scale if scale != 1.0 else target  # scale 1: within the old tolerance
        scores.append(p if band[0] <= diameter <= band[1] else a)
    return float(np.mean(scores))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--band", nargs=2, type=float, required=True)
    args = parser.parse_args(argv)
    for path in args.runs:
        run = json.load(open(path))
        target = run["training_diameter_px"]
        sets = [("native", run["native"], run["native_without_handling"])]
        sets += [(f"x{f}", v["auto_size"], v["no_size_handling"]) for f, v in run.get("scale", {}).items()]
        for name, auto, plain in sets:
            print(f"{path}: {name:7s} n={auto['n']:3d}  auto {auto['mean']:.3f}  none {plain['mean']:.3f}  "
                  f"band {args.band[0]:g}-{args.band[1]:g}: {recombined(auto, plain, target, tuple(args.band)):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
