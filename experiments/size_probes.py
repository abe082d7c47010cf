"""How well a first pass of the network measures nucleus size, at several probe scales.

For the test images of the paper's split (``--split val``: the validation images; native
scale, and the ``--limit`` stratified subset rescaled by 0.5, 2 and 3 as in
``bench_segment.py``), this records per image:

* ``true``: :func:`nucleitut.sizing.typical_diameter` of the true labels;
* ``probes``: the same measure of the pipeline's first-pass foreground (one network, no TTA)
  after rescaling the image by each probe scale, in the probe's pixels.

From these the size rules can be compared without running the pipeline again
(``--analyse``): the native probe alone (the estimate before 2026-11-28), the probe closest
to the training size, the median of the usable probes, and ``sizing.combine_probes`` (the
median of three, else the native probe; ``--min-probe-diameter`` to try other limits).
Usage::

    NUCLEITUT_DATA=../shared/data/stage1_train.zip python -m experiments.size_probes \\
        --out experiments/results/size_probes_cpu.json --limit 40
    python -m experiments.size_probes --analyse experiments/results/size_probes_cpu.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from experiments.common import FACTORS, library, rescaled, stratified

PROBES = (0.25, 0.5, 1.0, 2.0)


def measure(image, segmenter, probes=PROBES, max_pixels=16e6):
    from nucleitut import sizing

    out = {}
    for s in probes:
        if image.shape[0] * image.shape[1] * s * s > max_pixels or min(image.shape[:2]) * s < 16:
            continue
        out[str(s)] = sizing.typical_diameter(sizing._foreground(segmenter, sizing.rescale_image(image, s)))
    return out


def run(args) -> int:
    from nucleitut import data, records, sizing

    image_type, load_networks = library()
    segmenter, target = load_networks(args.models)[:2]
    dataset = data.load_dataset(profile="full")
    test = getattr(dataset.split(), args.split)
    kinds = {i: image_type(dataset.get(i)[0]) for i in test}
    subset = stratified(test, kinds, args.limit)
    result = {"command": "python -m experiments.size_probes " + " ".join(sys.argv[1:]), "target": target,
              "split": args.split, "probes": PROBES, "rows": [], **records.environment()}
    started = time.perf_counter()
    jobs = [(i, 1.0) for i in test] + [(i, f) for f in FACTORS for i in subset]
    for n, (image_id, factor) in enumerate(jobs):
        image, labels = dataset.get(image_id)
        if factor != 1.0:
            image, labels = rescaled(image, labels, factor)
        result["rows"].append({"id": image_id, "type": kinds[image_id], "factor": factor,
                               "true": sizing.typical_diameter(labels > 0),
                               "probes": measure(image, segmenter)})
        if n % 20 == 0:
            print(f"{n}/{len(jobs)} {time.perf_counter() - started:.0f} s", flush=True)
            Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    result["wall_seconds"] = time.perf_counter() - started
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


def analyse(path: str, min_probe_diameter: float | None = None) -> int:
    from nucleitut import sizing

    min_probe_diameter = min_probe_diameter or sizing.MIN_PROBE_DIAMETER
    run = json.load(open(path))
    target = run["target"]
    rows = run["rows"]

    def old(p):  # sizing.estimate_diameter before this analysis: native, second look at target scale
        d = p.get("1.0")
        return d

    def median(p):  # the median over the probes 1, 0.5, 0.25 that see nuclei
        usable = [d / float(s) for s, d in p.items() if d and float(s) <= 1
                  and (float(s) == 1 or d >= min_probe_diameter)]
        return float(np.exp(np.median(np.log(usable)))) if usable else None

    def median3(p):  # sizing.estimate_diameter's first estimate
        return sizing.combine_probes({float(s): d for s, d in p.items()}, min_probe_diameter)

    def closest(p):
        usable = {float(s): d for s, d in p.items() if d}
        if not usable:
            return None
        s = min(usable, key=lambda s: abs(np.log(usable[s] / target)))
        return usable[s] / s

    for factor in sorted({r["factor"] for r in rows}):
        sel = [r for r in rows if r["factor"] == factor and r["true"]]
        for name, rule in (("native probe", old), ("closest probe", closest), ("median probe", median), ("median of 3", median3)):
            err = [np.log(rule(r["probes"]) / r["true"]) for r in sel if rule(r["probes"])]
            print(f"x{factor:<4} n={len(sel):3d} {name:14s} median |log err| {np.median(np.abs(err)):.3f}, "
                  f"within 25%: {np.mean(np.abs(err) < np.log(1.25)):.2f}, median ratio {np.exp(np.median(err)):.2f}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="experiments/results/size_probes_cpu.json")
    parser.add_argument("--models")
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--split", choices=("test", "val"), default="test")
    parser.add_argument("--analyse")
    parser.add_argument("--min-probe-diameter", type=float, default=None,
                        help="for --analyse: a shrunk probe counts from this diameter on (default: sizing's)")
    args = parser.parse_args(argv)
    return analyse(args.analyse, args.min_probe_diameter) if args.analyse else run(args)


if __name__ == "__main__":
    raise SystemExit(main())
