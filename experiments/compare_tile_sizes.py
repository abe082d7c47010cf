"""Seconds per network pass (reference M3) on a 1024x1024 image with tiles of 256, 544 and 1056 px, and
how far the outputs move from the 256-px tiling (written for predict.TILE_SIZE; tile_size was
256 when it ran).

    NUCLEITUT_DATA=../shared/data/stage1_train.zip python -m experiments.compare_tile_sizes
"""
import time, numpy as np
from nucleitut import data, predict
from nucleitut.pipeline import Pipeline
ds = data.load_dataset(profile="full", verbose=False)
img = ds.get(ds.split().test[5])[0]
big = np.ascontiguousarray(np.tile(img, (int(np.ceil(1024 / img.shape[0])), int(np.ceil(1024 / img.shape[1])), 1))[:1024, :1024])
ref = Pipeline.reference()
model = ref.networks["M3"].model
base = predict.predict_probabilities(model, big, tile_size=256)
for tile in (256, 544, 1056, 256):
    predict.predict_probabilities(model, big, tile_size=tile)
    t = time.perf_counter()
    for _ in range(2): p = predict.predict_probabilities(model, big, tile_size=tile)
    print(tile, f"{(time.perf_counter() - t) / 2:.2f} s per pass; max |diff| to 256 tiles {np.abs(p - base).max():.4f}, mean {np.abs(p - base).mean():.5f}", flush=True)
