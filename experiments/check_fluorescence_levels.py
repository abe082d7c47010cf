"""Check of images.FLUORESCENCE_LEVELS: the first 15 fluorescence test images as 16-bit (offset
+3000, gain x40, five hot pixels), segmented by the reference networks with TTA and without size
handling, with the fluorescence levels and with the old 0..255 stretch, next to the 8-bit image.

    NUCLEITUT_DATA=../shared/data/stage1_train.zip python -m experiments.check_fluorescence_levels

Run on 2026-11-28 (M6B4 reference): 8-bit 0.590, 16-bit with the levels 0.597, 16-bit 0..255 0.487.
"""
import time

import numpy as np
from nucleitut import data, images, metrics, segment, pretrained
ds = data.load_dataset(None, profile="cpu", verbose=False)
nets = pretrained.load_networks()
ids = [i for i in ds.split().test if images.image_type(ds.get(i)[0]) == "fluorescence"][:15]
rng = np.random.default_rng(0)
res = {"8bit": [], "16 new": [], "16 old": []}
t=time.time()
for i in ids:
    im, truth = ds.get(i)
    grey = im[..., :3].mean(-1)
    s16 = (3000 + 40 * grey).astype(np.uint16); s16[rng.integers(0, s16.shape[0], 5), rng.integers(0, s16.shape[1], 5)] = 65535
    res["8bit"].append(metrics.kaggle_score(truth, segment.segment_image(im, networks=nets, size=False).labels))
    res["16 new"].append(metrics.kaggle_score(truth, segment.segment_image(s16, networks=nets, size=False).labels))
    keep = images.FLUORESCENCE_LEVELS; images.FLUORESCENCE_LEVELS = (0, 255)
    res["16 old"].append(metrics.kaggle_score(truth, segment.segment_image(s16, networks=nets, size=False).labels))
    images.FLUORESCENCE_LEVELS = keep
print({k: round(float(np.mean(v)), 3) for k, v in res.items()}, len(ids), f"{time.time()-t:.0f} s")

