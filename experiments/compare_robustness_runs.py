"""Compare two runs of ``benchmarks/bench_robustness.py`` on the same images (the shipped
reference and candidate networks, e.g. on the validation images), and apply the rule the
candidates must pass to replace the reference (issue 31, written before their scores were
seen): the mean over the perturbations higher, and the images as they are no more than
``--tolerance`` worse, overall and for the fluorescence images. A candidate run that left out
a perturbation of the reference's (``bench_robustness --only``) is compared on the ones it has
but never passes. Usage::

    python -m experiments.compare_robustness_runs REFERENCE.json CANDIDATE.json
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def by_type(run: dict, name: str, kind: str | None = None) -> float:
    """Mean score of perturbation ``name`` over the run's images (of type ``kind``)."""
    return float(np.mean([r["score"] for r in run["rows"][name] if kind is None or r["type"] == kind]))


def compare(reference: dict, candidate: dict, tolerance: float = 0.01) -> dict:
    """Per perturbation and type both means, and whether the candidate passes the rule."""
    if reference["images"] != candidate["images"]:
        raise ValueError("the two runs scored different images")
    names = [n for n in reference["rows"] if n in candidate["rows"]]
    kinds = sorted({r["type"] for r in reference["rows"]["native"]})
    table = {n: {k: (by_type(reference, n, k), by_type(candidate, n, k)) for k in [None, *kinds]
                 if any(r["type"] == k for r in reference["rows"][n]) or k is None} for n in names}
    perturbed = [n for n in names if n != "native"]
    means = [float(np.mean([table[n][None][i] for n in perturbed])) for i in (0, 1)]
    native = table["native"][None]
    missing = [n for n in reference["rows"] if n not in candidate["rows"]]
    passes = {"every perturbation of the reference scored": not missing,
              "perturbations better": means[1] > means[0],
              "native within tolerance": native[1] >= native[0] - tolerance}
    if "fluorescence" in table["native"]:  # the images the acceptance names; absent from some image sets
        fluo = table["native"]["fluorescence"]
        passes["native fluorescence within tolerance"] = fluo[1] >= fluo[0] - tolerance
    return {"table": table, "perturbed_means": means, "missing": missing, "passes": passes, "ship": all(passes.values())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reference")
    parser.add_argument("candidate")
    parser.add_argument("--tolerance", type=float, default=0.01)
    args = parser.parse_args(argv)
    runs = [json.loads(open(path).read()) for path in (args.reference, args.candidate)]
    result = compare(*runs, tolerance=args.tolerance)
    for name, row in result["table"].items():
        print(f"{name:14s} " + "  ".join(f"{k or 'all'} {a:.3f} -> {b:.3f}" for k, (a, b) in row.items()))
    print(f"mean over the perturbations: {result['perturbed_means'][0]:.3f} -> {result['perturbed_means'][1]:.3f}"
          + (f" (the candidate lacks {', '.join(result['missing'])})" if result["missing"] else ""))
    print("; ".join(f"{k}: {'yes' if v else 'no'}" for k, v in result["passes"].items()), "->", "ship" if result["ship"] else "keep the reference")
    return 0


if __name__ == "__main__":
    sys.exit(main())
