"""Size-normalised networks on validation images of every size: do they hold up at every scale?

Networks fine-tuned on images rescaled to one nucleus size (``experiments/finetune_reference.py``)
are meant to be used with every image rescaled so that its estimated diameter is the
training median (no band: :func:`nucleitut.sizing.scale_for` with ``band=None``). On the 30
validation images of the band run, at the factors 1, 0.5, 2 and 3 of ``choose_size_band.py``
(no TTA, the reference's post-processing settings), each image is segmented

* ``estimated``: rescaled by the size estimate of the fine-tuned networks, to the median;
* ``true_size``: rescaled by its *true* typical diameter to the median (what a perfect
  estimate would give);
* ``as_is``: not rescaled;
* ``library``: rescaled by the shipped rule (the same estimate, the band
  :data:`nucleitut.sizing.TRAINING_SIZE_BAND`, halfway to the median), for networks that were
  not size-normalised (``finetune_reference.py --as-is``, with or without ``--augmentation wide``).

The shipped reference networks on the same images, settings and passes are in
``scale_confidence_validation.json`` (``check_scale_confidence.py``): its ``library`` column
(the band rule) is what these networks must beat, and the gap between the factors is the
question. Usage::

    NUCLEITUT_DATA=../shared/data/stage1_train.zip python -m experiments.check_size_normalized \\
        --models <folder of experiments/finetune_reference.py> --out results/benchmarks/size_normalized_validation.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from experiments.common import band_run_versions
from nucleitut import data, metrics, pretrained, records, sizing

KINDS = ("estimated", "true_size", "as_is", "library")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", required=True, help="models folder of experiments/finetune_reference.py")
    parser.add_argument("--band-run", default="results/benchmarks/size_band_validation.json")
    parser.add_argument("--reference-run", default="results/benchmarks/scale_confidence_validation.json")
    parser.add_argument("--out", required=True)
    parser.add_argument("--limit", type=int, default=None, help="first N images of the band run only")
    args = parser.parse_args(argv)

    band_run = json.loads(Path(args.band_run).read_text())
    _, info = pretrained.load_reference()
    segmenter, _ = pretrained.load_networks(args.models, info["pipeline"], profile=info["profile"])
    segmenter.settings = dict(info["postprocess"])  # as the reference's rows
    target = info["nucleus_size"]["median_diameter"]
    dataset = data.load_dataset(profile=info["profile"])
    out = {"what": __doc__.split("\n\n")[0], "pipeline": info["pipeline"], "settings": segmenter.settings,
           "target_px": target, "tta": False, "rows": {}}
    if Path(args.out).exists():
        out["rows"] = json.loads(Path(args.out).read_text())["rows"]
    for factor_name, row, image, labels in band_run_versions(dataset, band_run, out["rows"], limit=args.limit):
        diameter, _ = sizing.estimate_diameter(image, segmenter, target, band=None)
        true_diameter = sizing.typical_diameter(labels > 0)
        scales = {"estimated": sizing.scale_for(diameter, target, band=None),
                  "true_size": sizing.scale_for(true_diameter, target, band=None), "as_is": 1.0,
                  "library": sizing.scale_for(diameter, target)}
        entry = {"diameter": diameter, "true_diameter": true_diameter}
        scored = {}  # by scale: the kinds often agree on one
        for kind, scale in scales.items():
            if scale not in scored:
                found = segmenter(sizing.rescale_image(image, scale))
                scored[scale] = metrics.kaggle_score(labels, sizing.rescale_labels(found, labels.shape))
            entry[kind] = scored[scale]
            entry[kind + "_scale"] = scale
        out["rows"][factor_name][row["id"]] = entry
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")

    scores = {f: {k: float(np.mean([e[k] for e in rows.values()])) for k in KINDS if all(k in e for e in rows.values())}
              for f, rows in out["rows"].items()}
    reference = json.loads(Path(args.reference_run).read_text())["scores"] if Path(args.reference_run).exists() else {}
    for f, entry in scores.items():
        if f in reference:
            entry["reference_library"] = reference[f]["library"]
            entry["reference_scale_1"] = reference[f]["scale 1"]
    arguments = ["$MODELS" if a == args.models else a for a in (sys.argv[1:] if argv is None else argv)]
    out.update(scores=scores, reference_run=Path(args.reference_run).name,
               command="python -m experiments.check_size_normalized " + " ".join(arguments), **records.environment())
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    for f, entry in scores.items():
        print(f, "  ".join(f"{k} {v:.3f}" for k, v in entry.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
