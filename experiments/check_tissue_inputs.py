"""Stained tissue and bright-field images given to the networks as grey or inverted grey.

The reference networks score poorly on stained tissue. This check tries input variants of
those images on the *validation* images (so that a choice made here is not made on the test
images): as stored (RGB), grey (luminance), inverted grey (dark nuclei become bright, as in
fluorescence) and inverted grey mapped to the fluorescence training levels
(``images.FLUORESCENCE_LEVELS``), and the haematoxylin channel of a colour deconvolution
(``skimage.color.rgb2hed``) mapped to those levels; no size handling, TTA on. Result with
today's reference (GPU-trained M3B1; 2026-11-29, commit 0d7fdd2): tissue (22 validation
images) 0.321 as stored, 0.138 grey, 0.157 inverted, 0.226 inverted at fluorescence levels,
0.230 haematoxylin; bright-field (2 images) 0.490, 0.490, 0.093, 0.183, 0.218. (An earlier
reference, 10 tissue images: 0.230, 0.091, 0.067, 0.188.) The networks learned stained
tissue in colour; the images stay as stored. Usage::

    NUCLEITUT_DATA=../shared/data/stage1_train.zip python -m experiments.check_tissue_inputs
"""

import numpy as np
from skimage.color import rgb2hed

from nucleitut import data, images, metrics, pretrained, segment


def variants(image):
    grey = image[..., :3].astype(float) @ [0.299, 0.587, 0.114]
    inverted = 255 - grey
    low, high = np.percentile(inverted, [1, 99.8])
    levels = images.FLUORESCENCE_LEVELS
    fluo = np.clip((inverted - low) / max(high - low, 1) * (levels[1] - levels[0]) + levels[0], 0, 255)
    as_rgb = lambda a: np.repeat(np.round(a).astype(np.uint8)[..., None], 3, -1)  # noqa: E731
    # Colour deconvolution (Ruifrok & Johnston, skimage.color.rgb2hed): the haematoxylin
    # channel, bright where the nuclei are, as a fluorescence-like image.
    haematoxylin = rgb2hed(image[..., :3])[..., 0]
    low, high = np.percentile(haematoxylin, [1, 99.8])
    hema = np.clip((haematoxylin - low) / max(high - low, 1e-6) * (levels[1] - levels[0]) + levels[0], 0, 255)
    return {"as stored": image, "grey": as_rgb(grey), "inverted grey": as_rgb(inverted),
            "inverted grey, fluorescence levels": as_rgb(fluo), "haematoxylin, fluorescence levels": as_rgb(hema)}


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
