"""Three size estimators compared on the test images rescaled x3 (or other factors).

``sizing.estimate_diameter`` (a first pass, one second pass at the suggested scale) against
two alternatives, swapped in for the run: ``iterative`` repeats the second pass until two
passes agree (at most three), ``closest`` probes scales 1 and 0.5/0.25 (large nuclei) or 2
(small ones) and keeps the probe whose nuclei look closest to the training size. On the 40
stratified test images enlarged x3 (M3B1 reference, TTA, commit 13d458a): shipped 0.464,
iterative 0.458, closest 0.412; the shipped estimate stays. Usage::

    NUCLEITUT_DATA=../shared/data/stage1_train.zip python -m experiments.check_size_estimators current,iterative,closest 3.0
"""
import sys
import time

import numpy as np

from experiments.common import library, rescaled, stratified
from nucleitut import data, metrics, segment, sizing

SHIPPED = sizing.estimate_diameter
DISAGREEMENT = sizing.SECOND_PASS_DISAGREEMENT


def measured(segmenter, image, scale=1.0):
    """Typical diameter of the first-pass foreground of ``image`` rescaled by ``scale``."""
    return sizing.typical_diameter(sizing._foreground(segmenter, sizing.rescale_image(image, scale)))


def iterative(image, segmenter, target, band=sizing.TRAINING_SIZE_BAND, passes=3):
    diameter = measured(segmenter, image)
    for _ in range(passes - 1):
        scale = sizing.scale_for(diameter, target, band=None)
        if scale == 1.0:
            break
        second = measured(segmenter, image, scale)
        if second is None or 1 / DISAGREEMENT <= (second / scale) / diameter <= DISAGREEMENT:
            break
        diameter = second / scale
    return diameter, sizing.scale_for(diameter, target, band)


def closest(image, segmenter, target, band=sizing.TRAINING_SIZE_BAND):
    first = measured(segmenter, image)
    if first is None:
        return None, 1.0
    found = {1.0: first}
    for scale in (0.5, 0.25) if first > target else (2.0,):
        if min(image.shape[:2]) * scale < 16 or image.shape[0] * image.shape[1] * scale * scale > 16e6:
            continue
        diameter = measured(segmenter, image, scale)
        if diameter:
            found[scale] = diameter
    scale = min(found, key=lambda s: abs(np.log(found[s] / target)))
    return found[scale] / scale, sizing.scale_for(found[scale] / scale, target, band)


def main(names, factors):
    image_type, load_networks = library()
    networks = load_networks()
    dataset = data.load_dataset(profile="full")
    test = dataset.split().test
    subset = stratified(test, {i: image_type(dataset.get(i)[0]) for i in test}, 40)
    for name, estimator in (("current", SHIPPED), ("iterative", iterative), ("closest", closest)):
        if name not in names:
            continue
        sizing.estimate_diameter = estimator
        for factor in factors:
            start, scores, rescaled_count = time.time(), [], 0
            for image_id in subset:
                image, truth = dataset.get(image_id)
                if factor != 1.0:
                    image, truth = rescaled(image, truth, factor)
                result = segment.segment_image(image, networks=networks)
                scores.append(metrics.kaggle_score(truth, result.labels))
                rescaled_count += result.scale != 1.0
            print(f"{name} x{factor}: {np.mean(scores):.4f} on {len(scores)} images, {rescaled_count} rescaled, "
                  f"{time.time() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1].split(","), [float(f) for f in sys.argv[2:]] or [3.0, 2.0, 1.0, 0.5])
