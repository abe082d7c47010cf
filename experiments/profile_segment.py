"""Where the time of segment(1024x1024, TTA, size estimate) goes, on the reference pipeline.

    NUCLEITUT_DATA=../shared/data/stage1_train.zip python -m experiments.profile_segment
"""
import time, cProfile, pstats, numpy as np
from nucleitut import data, sizing, images
from nucleitut.pipeline import Pipeline
import nucleitut
t0 = time.perf_counter()
ds = data.load_dataset(profile="full", verbose=False)
test = ds.split().test
img = ds.get(test[5])[0]
reps = (int(np.ceil(1024 / img.shape[0])), int(np.ceil(1024 / img.shape[1])), 1)
big = np.ascontiguousarray(np.tile(img, reps)[:1024, :1024])
t = time.perf_counter(); r = nucleitut.segment(big); first = time.perf_counter() - t
print(f"first call (networks loaded inside): {first:.2f} s", flush=True)
ref = Pipeline.reference()
for k in range(3):
    res = ref.segment(big)
    print(f"warm: {res.seconds:.2f} s (size estimate {res.seconds_size:.2f} s), scale {res.scale}, {res.count} nuclei", flush=True)
t = time.perf_counter(); probs = ref.probabilities(big, tta=True); tp = time.perf_counter() - t
t = time.perf_counter(); labels = ref.labels_from(probs); tl = time.perf_counter() - t
t = time.perf_counter(); rgb, _ = images.prepare_image(big); ti = time.perf_counter() - t
t = time.perf_counter(); est = sizing.estimate_diameter(rgb, ref.foreground, ref.training_diameter, band=ref.size_band); ts = time.perf_counter() - t
print(f"parts: networks with TTA {tp:.2f} s, post-processing {tl:.2f} s, intensities {ti:.3f} s, size estimate {ts:.2f} s")
pr = cProfile.Profile(); pr.enable(); ref.segment(big); pr.disable()
pstats.Stats(pr).sort_stats("tottime").print_stats(12)
