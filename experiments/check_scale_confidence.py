"""Can the networks themselves tell which rescaling of an image suits them? (validation images)

The size handling (``sizing.estimate_diameter`` and ``sizing.scale_for``) picks one scale per
image from its estimated nucleus diameter. On halved test images it costs 0.07 against the
native score although the detail survives halving (``check_half_scale_augmentation.py``):
the networks are scale-sensitive within the training sizes, and a diameter does not say at
which scale an image looks most like the training images. This check asks whether a
measure of the networks' confidence does: each validation image, at the factors 1, 0.5, 2
and 3 of ``choose_size_band.py``, is segmented (reference networks, no TTA) at several
candidate scales around the one its estimated diameter asks for, and per candidate the
Kaggle score and a few confidence measures of the networks' outputs are stored:

* ``mask_fuzzy``: pixels whose mask probability lies in 0.2-0.8, per foreground pixel;
* ``mask_decisive``: mean of ``|2 p - 1|`` of the mask probability over all pixels;
* ``marker_fuzzy``: foreground pixels whose marker value ``object * (1 - border)`` lies in
  0.3-0.9, per foreground pixel;
* ``agreement``: intersection over union of the two networks' foregrounds;
* ``objects_per_component``: objects of the pipeline per connected foreground component;
* ``entropy``: mean entropy of the marker network's classes over the foreground;
* with ``--flip``, ``mask_flip`` and ``marker_flip``: mean absolute difference between the
  mask probability (marker value) of the image and of its mirror image (mirrored back), over
  the foreground: how much the networks' answer depends on the view, a common measure of
  uncertainty (one more pass of both networks per candidate).

The rule ``argmax`` (or ``argmin``) of a measure over the candidates is then compared with
the library's rule and with the best candidate (an oracle no rule can beat). Usage::

    NUCLEITUT_DATA=../shared/data/stage1_train.zip python -m experiments.check_scale_confidence \\
        --band-run results/benchmarks/size_band_validation.json \\
        --out experiments/results/scale_confidence_validation.json

The ``--out`` file is written after every image and resumed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from experiments.common import band_run_parser, band_run_versions, finish_check
from nucleitut import data, metrics, pretrained, sizing

#: Candidate scales: the scale the estimated diameter asks for (to the median) times these.
STEPS = (0.5, 2 ** -0.5, 1.0, 2 ** 0.5, 2.0)
#: Candidates whose rescaled image would exceed this many pixels are skipped.
MAX_PIXELS = 4_000_000
#: Measures and whether a larger value means more confident.
MEASURES = {"mask_fuzzy": False, "mask_decisive": True, "marker_fuzzy": False, "agreement": True,
            "objects_per_component": None, "entropy": False, "mask_flip": False, "marker_flip": False}


def candidates(image_shape, diameter, target):
    """Candidate scales of one image: around ``target / diameter``, the library's choice and 1."""
    base = target / diameter if diameter else 1.0
    kept = sorted({1.0, sizing.scale_for(diameter, target)})
    for s in sorted(float(np.clip(base * step, *sizing.SCALE_RANGE)) for step in STEPS):
        if image_shape[0] * image_shape[1] * s * s <= MAX_PIXELS and all(abs(np.log(s / k)) > 0.02 for k in kept):
            kept.append(s)
    return sorted(kept)


def confidence(probs, labels, marker_name, mask_name, mask_threshold, flipped=None):
    """The measures of the module docstring for one candidate (outputs at its scale;
    ``flipped``: the outputs for the mirrored image, mirrored back)."""
    mask_p = probs[mask_name][..., 0]
    classes = probs[marker_name]
    fg = mask_p > mask_threshold
    n_fg = max(int(fg.sum()), 1)
    marker = classes[..., 1] * (1 - classes[..., 2])
    flip = {}
    if flipped is not None:
        other = flipped[marker_name][..., 1] * (1 - flipped[marker_name][..., 2])
        either = fg | (flipped[mask_name][..., 0] > mask_threshold)
        flip = {"mask_flip": float(np.abs(mask_p - flipped[mask_name][..., 0])[either].mean()) if either.any() else 0.0,
                "marker_flip": float(np.abs(marker - other)[either].mean()) if either.any() else 0.0}
    other_fg = classes[..., 0] < 0.5
    union = max(int((fg | other_fg).sum()), 1)
    components = ndi.label(fg)[1]
    entropy = -(classes * np.log(np.clip(classes, 1e-7, 1))).sum(-1)
    return {
        "mask_fuzzy": float(((mask_p > 0.2) & (mask_p < 0.8)).sum() / n_fg),
        "mask_decisive": float(np.abs(2 * mask_p - 1).mean()),
        "marker_fuzzy": float((fg & (marker > 0.3) & (marker < 0.9)).sum() / n_fg),
        "agreement": float((fg & other_fg).sum() / union),
        "objects_per_component": float(labels.max() / max(components, 1)),
        "entropy": float(entropy[fg].mean()) if fg.any() else 0.0,
    } | flip


def summarize(rows):
    """Mean score per factor of: the library's rule, each measure's pick, the oracle."""
    table = {}
    for factor, entries in rows.items():
        done = [e for e in entries.values() if e.get("candidates")]
        pick = {"library": [], "oracle": [], "scale 1": []}
        for e in done:
            cands = e["candidates"]
            pick["library"].append(next(c["score"] for c in cands if c["scale"] == e["library_scale"]))
            pick["scale 1"].append(next(c["score"] for c in cands if c["scale"] == 1.0))
            pick["oracle"].append(max(c["score"] for c in cands))
            for name, larger in MEASURES.items():
                if name not in cands[0]["measures"]:
                    continue
                if larger is None:  # closest to one object per component
                    best = min(cands, key=lambda c: abs(np.log(max(c["measures"][name], 1e-3))))
                else:
                    best = (max if larger else min)(cands, key=lambda c: c["measures"][name])
                pick.setdefault(name, []).append(best["score"])
        table[factor] = {k: float(np.mean(v)) for k, v in pick.items() if v} | {"n": len(done)}
    return table


def main(argv=None) -> int:
    parser = band_run_parser(__doc__)
    parser.add_argument("--flip", action="store_true", help="also the mirror-image measures (twice the time)")
    args = parser.parse_args(argv)

    band_run = json.loads(Path(args.band_run).read_text())
    networks = pretrained.load_networks()
    segmenter, target = networks
    marker_name, mask_name = segmenter.pipeline.networks
    mask_threshold = segmenter.settings.get("mask_threshold", 0.3)
    dataset = data.load_dataset(profile="cpu")
    out = {"what": __doc__.split("\n\n")[0], "band_run": Path(args.band_run).name, "target_px": target,
           "steps": list(STEPS), "tta": False, "flip": args.flip, "rows": {}}
    if Path(args.out).exists():
        out["rows"] = json.loads(Path(args.out).read_text())["rows"]
    for factor_name, row, image, labels in band_run_versions(dataset, band_run, out["rows"], args.factors, args.limit):
        d = row["diameter"]
        entry = {"diameter": d, "library_scale": sizing.scale_for(d, target), "candidates": []}
        for scale in candidates(image.shape, d, target):
            big = sizing.rescale_image(image, scale)
            probs = segmenter.probabilities(big)
            flipped = ({n: p[:, ::-1] for n, p in segmenter.probabilities(np.ascontiguousarray(big[:, ::-1])).items()}
                       if args.flip else None)
            found = segmenter.labels_from(probs)
            score = metrics.kaggle_score(labels, sizing.rescale_labels(found, labels.shape))
            entry["candidates"].append({"scale": scale, "score": score,
                                        "measures": confidence(probs, found, marker_name, mask_name, mask_threshold, flipped)})
        out["rows"][factor_name][row["id"]] = entry
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    out["scores"] = summarize(out["rows"])
    finish_check(out, args.out, "scores", "check_scale_confidence.py", argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
