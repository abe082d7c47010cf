"""Stained tissue and bright-field images given to the networks as grey or inverted grey.

The reference networks score poorly on stained tissue. This check tries input variants of
those images on the *validation* images (so that a choice made here is not made on the test
images): as stored (RGB), grey (luminance), inverted grey (dark nuclei become bright, as in
fluorescence) and inverted grey mapped to the fluorescence training levels
(``images.FLUORESCENCE_LEVELS``); no size handling, TTA on. Result (M3B1 reference): tissue
(10 images) 0.230 as stored, 0.091 grey, 0.067 inverted, 0.188 inverted at fluorescence
levels; bright-field (2 images) 0.393, 0.393, 0.069, 0.163. The images stay as stored. Usage::

    NUCLEITUT_DATA=../shared/data/stage1_train.zip python benchmarks/check_tissue_inputs.py
"""

import numpy as np

from nucleitut import data, images, metrics, pretrained, segment


def variants(image):
    grey = image[..., :3].astype(float) @ [0.299, 0.587, 0.114]
    inverted = 255 - grey
    low, high = np.percentile(inverted, [1, 99.8])
    levels = images.FLUORESCENCE_LEVELS
    fluo = np.clip((inverted - low) / max(high - low, 1) * (levels[1] - levels[0]) + levels[0], 0, 255)
    as_rgb = lambda a: np.repeat(np.round(a).astype(np.uint8)[..., None], 3, -1)  # noqa: E731
    return {"as stored": image, "grey": as_rgb(grey), "inverted grey": as_rgb(inverted),
            "inverted grey, fluorescence levels": as_rgb(fluo)}


def main():
    networks = pretrained.load_networks()
    dataset = data.load_dataset(profile="full")
    scores = {}
    for image_id in dataset.split().val:
        image, truth = dataset.get(image_id)
        kind = images.image_type(image)
        if kind == "fluorescence":
            continue
        for name, variant in variants(image).items():
            found = segment.segment_image(variant, networks=networks, size=False, normalize="never")
            scores.setdefault((kind, name), []).append(metrics.kaggle_score(truth, found.labels))
    for (kind, name), values in scores.items():
        print(f"{kind:12s} {name:36s} n={len(values):2d}  {np.mean(values):.3f}")


if __name__ == "__main__":
    main()
