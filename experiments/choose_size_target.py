"""Choose *where* an image outside the size band is rescaled to, on validation images.

``choose_size_band.py`` chose the band (``sizing.TRAINING_SIZE_BAND``) with one target: an
image whose estimated diameter lies outside the band is rescaled so that the diameter becomes
the training median. Its rows show that enlarging often costs score (an image with 9-12 px
nuclei scores less enlarged to 16 px than as it is), so a smaller step may do better. Candidates, for
an estimated diameter ``d`` outside the band ``[lo, hi]``:

* ``median``: to the training median (what ``choose_size_band.py`` scored);
* ``edge``: to the nearest end of the band (the smallest rescaling that brings ``d`` into it);
* ``halfway``: to the geometric mean of the nearest end and the median.

The script reuses the rows of ``--band-run`` (same validation images, same scales 1, 0.5, 2
and 3, same size estimates and reference networks, TTA) and segments each image outside the
band once more per new candidate; the pre-set rule is the highest mean score over the four
scales, ties (within 0.002) going to the smaller change of the library (``median``). Usage::

    NUCLEITUT_DATA=../shared/data/stage1_train.zip python -m experiments.choose_size_target \\
        --band-run results/benchmarks/size_band_validation.json \\
        --out experiments/results/size_target_validation.json

The ``--out`` file is written after every image and resumed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from experiments.common import rescaled
from nucleitut import data, metrics, pretrained, records, segment, sizing

TIE = 0.002


def target_for(diameter: float, band: tuple[float, float], median: float, kind: str) -> float:
    """The diameter an image outside ``band`` is rescaled to, for candidate ``kind``."""
    edge = band[0] if diameter < band[0] else band[1]
    return {"median": median, "edge": edge, "halfway": float(np.sqrt(edge * median))}[kind]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--band-run", required=True, help="output of choose_size_band.py")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    band_run = json.loads(Path(args.band_run).read_text())
    band, median = tuple(sizing.TRAINING_SIZE_BAND), band_run["target_diameter_px"]
    networks = pretrained.load_networks()
    if not np.isclose(networks[1], median):
        raise SystemExit(f"{args.band_run} was made for a target of {median} px, the networks have {networks[1]} px")
    dataset = data.load_dataset(profile="cpu")
    out = {"what": __doc__.split("\n\n")[0], "band_run": Path(args.band_run).name, "band": list(band),
           "median_px": median, "n_images": band_run["n_images"], "rows": {}}
    if Path(args.out).exists():
        previous = json.loads(Path(args.out).read_text())
        if previous.get("band") != list(band) or previous.get("band_run") != out["band_run"]:
            raise SystemExit(f"{args.out} was made for another band or band run: give a new --out or delete it")
        out["rows"] = previous["rows"]
    for factor_name, band_rows in band_run["rows"].items():
        rows = out["rows"].setdefault(factor_name, {})
        factor = float(factor_name[1:])
        start = time.perf_counter()
        for row in band_rows:
            d = row["diameter"]
            entry = rows.setdefault(row["id"], {"diameter": d, "as_is": row["as_is"]})
            if d is None or band[0] <= d <= band[1]:
                entry.update(inside=True)
                continue
            entry.update(inside=False, median=row["rescaled"], median_scale=row["scale"])
            if "edge" in entry and "halfway" in entry:
                continue
            image, labels = dataset.get(row["id"])
            if factor != 1.0:
                image, labels = rescaled(image, labels, factor)
            for kind in ("edge", "halfway"):
                scale = float(np.clip(target_for(d, band, median, kind) / d, *sizing.SCALE_RANGE))
                entry[kind + "_scale"] = scale
                entry[kind] = metrics.kaggle_score(labels, segment.segment_image(image, networks=networks, scale=scale).labels)
            Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
        print(f"{factor_name}: {sum(not e['inside'] for e in rows.values())} of {len(rows)} images outside the band "
              f"({time.perf_counter() - start:.0f} s)", flush=True)

    table = {}
    for kind in ("median", "halfway", "edge"):
        table[kind] = {f: float(np.mean([e["as_is"] if e["inside"] else e[kind] for e in rows.values()]))
                       for f, rows in out["rows"].items()}
        table[kind]["mean_over_scales"] = float(np.mean(list(table[kind].values())))
    best = max(table, key=lambda k: table[k]["mean_over_scales"])
    if table[best]["mean_over_scales"] - table["median"]["mean_over_scales"] <= TIE:
        best = "median"
    out.update(scores=table, chosen=best, tie=TIE,
               command="python -m experiments.choose_size_target " + " ".join(sys.argv[1:]), **records.environment())
    for kind, entry in table.items():
        print(f"{kind:8s} " + "  ".join(f"{f} {v:.3f}" for f, v in entry.items()))
    print(f"chosen on {out['n_images']} validation images: {best}")
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
