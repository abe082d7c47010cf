"""Does training augmentation make a pipeline hold up better on halved images?

The reference networks (trained without augmentation) lose much more on halved images than
on enlarged ones (experiments/LAB_NOTES.md). The Table 3 campaign has pairs trained the
same way except for the augmentation: M3B1 (none), M4B2 (set a: flips, rotation, noise,
scaling 0.8-1.25, blur) and M5B3 (set b: flips and rotation only), cpu profile, seed 0, 8
epochs each. On the validation images of the band run (``size_band_validation.json``), each
pipeline segments every image as it is and halved then enlarged back by exactly 2 (no size
estimate involved, so only the lost detail counts), TTA, the paper's thresholds (without
``--models``: the shipped reference networks, with their validation-chosen settings). Usage::

    NUCLEITUT_DATA=../shared/data/stage1_train.zip python -m experiments.check_half_scale_augmentation \\
        --models <NUCLEITUT_MODELS folder of the campaign> --out experiments/results/half_scale_augmentation.json

With ``--test`` it runs on the 120 test images instead and adds scores at the halved size,
as ``bench_segment.py`` scores its x0.5 images (labels halved by nearest neighbour): the
halved image segmented at exactly scale 2 with its labels mapped back, the native
segmentation's labels halved, and the library's size handling (``auto``); the last also
mapped to the native size and scored against the native labels, once from its labels at the
halved size and once from the labels at the scale it chose (the halved image rescaled by
that scale and segmented without size handling: no halved grid in between). Two rows without any
network show how much the halved labels' rasterisation weighs: the true labels taken
through a grid 4 % smaller, and shifted by one native pixel, before halving. Halving by
nearest neighbour breaks a tie in every 2x2 block (skimage takes the pixel at the lower
right), and an exact factor 2 back reproduces that choice; any other factor does not.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from experiments.common import rescaled
from nucleitut import data, metrics, pretrained, records, segment, sizing

PIPELINES = {"M3B1": "none", "M4B2": "a", "M5B3": "b"}


#: Columns of ``--test`` (scored at the halved size unless named "native grid").
TEST_COLUMNS = ("halved_at_scale_2", "native_labels_halved", "auto", "auto_on_native_grid",
                "auto_scale_on_native_grid", "truth_through_grid_0.96", "truth_shifted_one_pixel")


def halved_rows(image, labels, half, half_truth, native, enlarged, networks):
    """The ``--test`` scores of one image (see :data:`TEST_COLUMNS`)."""
    result = segment.segment_image(half, networks=networks)
    auto = result.labels
    at_scale = segment.segment_image(sizing.rescale_image(half, result.scale), networks=networks, size=False).labels
    regridded = sizing.rescale_labels(labels, tuple(int(round(n * 0.96)) for n in labels.shape))
    shifted = np.zeros_like(labels)
    shifted[1:, 1:] = labels[:-1, :-1]
    halve = lambda found: sizing.rescale_labels(found, half.shape[:2])  # noqa: E731
    return {"halved_at_scale_2": metrics.kaggle_score(half_truth, halve(enlarged)),
            "native_labels_halved": metrics.kaggle_score(half_truth, halve(native)),
            "auto": metrics.kaggle_score(half_truth, auto),
            "auto_on_native_grid": metrics.kaggle_score(labels, sizing.rescale_labels(auto, labels.shape)),
            "auto_scale_on_native_grid": metrics.kaggle_score(labels, sizing.rescale_labels(at_scale, labels.shape)),
            "auto_scale": result.scale,
            "truth_through_grid_0.96": metrics.kaggle_score(half_truth, halve(regridded)),
            "truth_shifted_one_pixel": metrics.kaggle_score(half_truth, halve(shifted))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", help="the campaign's models folder; without it, the shipped reference networks")
    parser.add_argument("--band-run", default="results/benchmarks/size_band_validation.json")
    parser.add_argument("--test", action="store_true", help="the 120 test images instead of the band run's")
    parser.add_argument("--limit", type=int, help="only the first N images (a quick trial)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    dataset = data.load_dataset(profile="cpu")
    ids = list(dataset.split().test) if args.test else json.loads(Path(args.band_run).read_text())["ids"]
    ids = ids[:args.limit]
    out = {"what": __doc__.split("\n\n")[0], "n_images": len(ids),
           "ids_from": "test split" if args.test else Path(args.band_run).name, "pipelines": {}}
    pipelines = PIPELINES if args.models else {"reference M3B1": "none"}
    for name, augmentation in pipelines.items():
        networks = pretrained.load_networks(args.models, name, profile="cpu") if args.models else pretrained.load_networks()
        rows = []
        for image_id in ids:
            image, labels = dataset.get(image_id)
            half, half_truth = rescaled(image, labels, 0.5)
            native = segment.segment_image(image, networks=networks, size=False).labels
            back = sizing.rescale_image(half, 2.0)  # cubic, as segment enlarges
            truth = sizing.rescale_labels(labels, back.shape[:2])  # an odd side comes back one pixel short
            enlarged = segment.segment_image(back, networks=networks, size=False).labels
            row = {"id": image_id, "native": metrics.kaggle_score(labels, native),
                   "halved_enlarged": metrics.kaggle_score(truth, enlarged)}
            if args.test:  # scored at the halved size, as bench_segment.py scores its x0.5 images
                row.update(halved_rows(image, labels, half, half_truth, native, enlarged, networks))
            rows.append(row)
        native_mean = float(np.mean([r["native"] for r in rows]))
        halved_mean = float(np.mean([r["halved_enlarged"] for r in rows]))
        out["pipelines"][name] = {"augmentation": augmentation, "native": native_mean, "halved_enlarged": halved_mean,
                                  "difference": halved_mean - native_mean, "rows": rows}
        for column in TEST_COLUMNS if args.test else ():
            out["pipelines"][name][column] = float(np.mean([r[column] for r in rows]))
            print(f"  {column.replace('_', ' ')}: {out['pipelines'][name][column]:.3f}", flush=True)
        print(f"{name} (augmentation {augmentation}): as is {native_mean:.3f}, halved and enlarged back "
              f"{halved_mean:.3f} ({halved_mean - native_mean:+.3f})", flush=True)
    arguments = ["$NUCLEITUT_MODELS" if a == args.models else a for a in (sys.argv[1:] if argv is None else argv)]
    out.update(command="python -m experiments.check_half_scale_augmentation " + " ".join(arguments),  # no machine paths
               **records.environment())
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
