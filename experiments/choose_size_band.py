"""Choose the size band (``sizing.TRAINING_SIZE_BAND``) on validation images, not test images.

The band decides only *whether* an image is rescaled to the training size: an image whose
estimated diameter lies inside it is segmented as it is. So every image needs two
segmentations, as it is and rescaled (by ``sizing.scale_for(diameter, target, band=None)``,
what ``segment`` does outside the band), and any band's score is recombined from them.

On the first ``--limit`` validation images of the paper's split (stratified by type, as
``bench_segment.py`` picks test images), each at the scales 1, 0.5, 2 and 3 (image by
``bench_segment.rescaled``, labels by nearest neighbour), with the shipped reference networks
and TTA, the script scores every candidate band (lower end: none, or the 5th, 10th or 25th
percentile of the training images' diameters; upper end: their median, 3rd quartile, 95th
percentile, or none) and picks the band with the highest mean score over the four scales.
Usage::

    NUCLEITUT_DATA=../shared/data/stage1_train.zip python -m experiments.choose_size_band \\
        --out experiments/results/size_band_validation.json [--limit 40]

An existing ``--out`` file for the same images is resumed (the file is written after every
image): images already scored at a scale are not segmented as they are again, and rescaled
again only when today's size estimate asks for another scale than the stored one.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

from experiments.common import rescaled, stratified
from nucleitut import data, images, metrics, pretrained, records, segment, sizing

FACTORS = (1.0, 0.5, 2.0, 3.0)


def candidate_bands(sizes: dict) -> dict[str, tuple[float, float]]:
    """Named bands from the training images' diameter statistics (``reference.json``)."""
    low = {"none": 0.0, "p5": sizes["diameter_percentiles"]["5"], "p10": sizes["diameter_percentiles"].get("10"),
           "q1": sizes["diameter_quartiles"][0]}
    high = {"median": sizes["median_diameter"], "q3": sizes["diameter_quartiles"][1],
            "p95": sizes["diameter_percentiles"]["95"], "none": float("inf")}
    return {f"{a}-{b}": (lo, hi) for (a, lo), (b, hi) in itertools.product(low.items(), high.items()) if lo is not None}


def json_band(band: tuple[float, float]) -> list:
    """A band for JSON: no upper end is ``null``."""
    return [band[0], None if np.isinf(band[1]) else band[1]]


def band_score(rows: list[dict], band: tuple[float, float]) -> float:
    """Mean score of ``rows`` (one factor) when images inside ``band`` are left as they are."""
    return float(np.mean([r["as_is"] if r["diameter"] is None or band[0] <= r["diameter"] <= band[1] else r["rescaled"]
                          for r in rows]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--limit", type=int, default=40)
    args = parser.parse_args(argv)

    dataset = data.load_dataset(profile="cpu")
    split = dataset.split()
    networks = pretrained.load_networks()
    segmenter, target = networks
    _, info = pretrained.load_reference()
    sizes = dict(info["nucleus_size"])
    # The 10th percentile is not stored in reference.json: measure it like the others.
    diameters = [d for d in (sizing.typical_diameter(dataset.get(i)[1] > 0) for i in split.train) if d is not None]
    sizes["diameter_percentiles"] = {**sizes["diameter_percentiles"], "10": float(np.percentile(diameters, 10))}
    kinds = {i: images.image_type(dataset.get(i)[0]) for i in split.val}
    ids = stratified(split.val, kinds, args.limit)
    out = {"what": __doc__.split("\n\n")[0], "n_images": len(ids), "ids": ids, "types": {i: kinds[i] for i in ids},
           "target_diameter_px": target, "rows": {}}
    previous = json.loads(Path(args.out).read_text()) if Path(args.out).exists() else None
    if previous is not None and previous.get("ids") == ids and previous.get("target_diameter_px") == target:
        out["rows"] = previous["rows"]
        print(f"resuming {args.out}: " + ", ".join(f"{f} {len(r)} images" for f, r in out["rows"].items()), flush=True)
    elif previous is not None:
        raise SystemExit(f"{args.out} holds another image set or target size: give a new --out or delete it")
    for factor in FACTORS:
        rows = out["rows"].setdefault(f"x{factor:g}", [])
        done = {r["id"]: r for r in rows}
        start, rescored = time.perf_counter(), 0
        for image_id in ids:
            image, labels = dataset.get(image_id)
            if factor != 1.0:
                image, labels = rescaled(image, labels, factor)
            diameter, _ = sizing.estimate_diameter(image, segmenter, target, band=None)
            scale = sizing.scale_for(diameter, target, band=None)
            row = done.get(image_id)
            if row is not None and np.isclose(row["scale"], scale, rtol=0.02):
                row["diameter"] = diameter  # today's estimate decides the band; the score stands
                continue
            rescored += row is not None
            as_is = row["as_is"] if row is not None else metrics.kaggle_score(
                labels, segment.segment_image(image, networks=networks, scale=1.0).labels)
            moved = as_is if scale == 1.0 else metrics.kaggle_score(
                labels, segment.segment_image(image, networks=networks, scale=scale).labels)
            if row is not None:
                rows.remove(row)
            rows.append({"id": image_id, "diameter": diameter, "scale": scale, "as_is": as_is, "rescaled": moved})
            Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
        print(f"x{factor:g}: as is {np.mean([r['as_is'] for r in rows]):.3f}, every image rescaled "
              f"{np.mean([r['rescaled'] for r in rows]):.3f} ({time.perf_counter() - start:.0f} s; "
              f"{rescored} resumed images rescaled again for a new size estimate)", flush=True)

    bands = candidate_bands(sizes)
    table = {name: {**{f: band_score(out["rows"][f], band) for f in out["rows"]}, "band": json_band(band)}
             for name, band in bands.items()}
    for entry in table.values():
        entry["mean_over_scales"] = float(np.mean([entry[f] for f in out["rows"]]))
    best = max(table, key=lambda name: table[name]["mean_over_scales"])
    out.update(bands=table, chosen=best, chosen_band=json_band(bands[best]),
               command="python -m experiments.choose_size_band " + " ".join(sys.argv[1:]), **records.environment())
    for name, entry in sorted(table.items(), key=lambda kv: -kv[1]["mean_over_scales"]):
        print(f"{name:12s} {bands[name][0]:5.1f}-{bands[name][1]:5.1f} px: "
              + "  ".join(f"{f} {entry[f]:.3f}" for f in out["rows"]) + f"  mean {entry['mean_over_scales']:.3f}")
    print(f"chosen on {len(ids)} validation images: {best} {bands[best]}")
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
