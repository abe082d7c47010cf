"""Enlarging small images for the networks: linear against cubic interpolation.

On the ``--limit`` stratified test subset halved as in ``bench_segment.py`` (image and labels),
scores ``segment_image`` with automatic size handling when ``sizing.rescale_image`` enlarges
by linear (order 1) or cubic (order 3) interpolation; shrinking stays linear and anti-aliased.
Run before the library switched to cubic (commit of this file): order 1 0.456, order 3 0.471
on 40 images (M3B1 reference, TTA, size band 11.7-24.1). Usage::

    NUCLEITUT_DATA=../shared/data/stage1_train.zip python -m experiments.check_upscale_order
"""

import json

import numpy as np
from skimage.transform import resize

from experiments.common import library, rescaled, stratified
from nucleitut import data, metrics, segment, sizing


def rescale_with(order):
    def rescale_image(image, scale):
        if scale == 1.0:
            return image
        shape = tuple(max(1, int(round(n * scale))) for n in image.shape[:2])
        out = resize(image, shape + image.shape[2:], order=order if scale > 1 else 1, anti_aliasing=scale < 1,
                     preserve_range=True)
        return np.clip(np.round(out), 0, 255).astype(np.uint8)
    return rescale_image


def main(limit=40):
    image_type, load_networks = library()
    networks = load_networks()
    dataset = data.load_dataset(profile="full")
    subset = stratified(dataset.split().test, {i: image_type(dataset.get(i)[0]) for i in dataset.split().test}, limit)
    scores = {}
    for order in (1, 3):
        sizing.rescale_image = rescale_with(order)
        scores[order] = []
        for image_id in subset:
            small, small_truth = rescaled(*dataset.get(image_id), 0.5)
            scores[order].append(metrics.kaggle_score(small_truth, segment.segment_image(small, networks=networks).labels))
        print(f"order {order}: {np.mean(scores[order]):.3f} on {len(subset)} halved test images", flush=True)
    print(json.dumps({str(k): v for k, v in scores.items()}))


if __name__ == "__main__":
    main()
