"""When should the size estimate not be trusted? Its pieces on validation images, perturbed.

    NUCLEITUT_DATA=../shared/data/stage1_train.zip python -m experiments.size_trust \\
        [--limit 40] [--out experiments/results/size_trust_validation.json]

For validation images of the paper's split (stratified by type) as they are, halved and
thirded (small nuclei: enlarging them is right) and perturbed as in
``benchmarks/bench_robustness.py`` (noise, dim, low contrast, inverted, blur, enlarged and
dim), the reference pipeline's first passes (after ``prepare_image``'s 'auto' rule) give
per image: the diameter each probe measures, the number of objects the native probe finds
and their share of the image, the median foreground probability inside them, the second
pass at the suggested scale, the estimate the library uses, and the true diameter
(:func:`nucleitut.sizing.typical_diameter` of the true labels).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

# The perturbations of the robustness benchmark at the commit this script was added with.
from benchmarks.bench_robustness import PERTURBATIONS
from experiments.common import reference_on_validation, rescaled

CONDITIONS = ("native", "half", "third", "noise", "dim", "low_contrast", "inverted", "blur", "enlarged_dim")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--out", default="experiments/results/size_trust_validation.json")
    args = parser.parse_args(argv)
    from nucleitut import images, records, sizing

    pipeline, dataset, kinds, ids = reference_on_validation(args.limit)
    result = {"command": "python -m experiments.size_trust", "n_images": len(ids), "images": ids,
              "training_diameter": pipeline.training_diameter, "size_band": pipeline.size_band,
              **records.environment(), "rows": {}}
    for condition in CONDITIONS:
        rows = []
        for k, image_id in enumerate(ids):
            image, truth = dataset.get(image_id)
            if condition in ("half", "third"):
                image, truth = rescaled(image, truth, 0.5 if condition == "half" else 1 / 3)
            elif condition != "native":
                image, truth = PERTURBATIONS[condition][0](image, truth, np.random.default_rng([k, 31]))
            rgb, intensity = images.prepare_image(image, name=image_id)
            row = {"id": image_id, "type": kinds[image_id], "intensity": intensity,
                   "true_diameter": sizing.typical_diameter(truth > 0), "probes": {}}
            for probe in sizing.PROBE_SCALES:
                if probe == 1.0 or min(rgb.shape[:2]) * probe >= sizing.MIN_PROBE_SIDE:
                    mask, outputs = pipeline.foreground(sizing.rescale_image(rgb, probe, order=1))
                    row["probes"][str(probe)] = sizing.typical_diameter(mask)
                    if probe == 1.0:
                        objects, n = ndi.label(ndi.binary_fill_holes(mask))
                        probs = next(iter(outputs.values()))
                        fg = 1 - probs[..., 0] if probs.shape[-1] > 1 else probs[..., 0]
                        row["objects"] = int(n)
                        row["foreground_share"] = float(mask.mean())
                        row["median_probability_in_objects"] = float(np.median(fg[mask])) if mask.any() else None
                        row["share_confident"] = float(np.mean(fg[mask] > 0.9)) if mask.any() else None
            first = sizing.combine_probes({float(p): d for p, d in row["probes"].items()})
            row["first_estimate"] = first
            if first is not None:
                scale = sizing.scale_for(first, pipeline.training_diameter, band=None)
                row["second_scale"] = scale
                if scale != 1.0:
                    second = sizing.typical_diameter(pipeline.foreground(sizing.rescale_image(rgb, scale, order=1))[0])
                    row["second_estimate"] = None if second is None else second / scale
            estimate = sizing.estimate_diameter(rgb, pipeline.foreground, pipeline.training_diameter, band=pipeline.size_band)
            row["estimate"], row["scale"] = estimate.diameter, estimate.scale
            rows.append(row)
        result["rows"][condition] = rows
        ratios = [r["estimate"] / r["true_diameter"] for r in rows if r["estimate"] and r["true_diameter"]]
        print(f"{condition:13s} median estimate/truth {np.median(ratios):.2f}, "
              f"{sum(r['scale'] > 1.5 for r in rows)} of {len(rows)} enlarged > 1.5x", flush=True)
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
