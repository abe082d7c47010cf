"""How well ``nucleitut.segment`` copes with images unlike the training data, and how fast it is.

Usage (from the repository root, in the project's virtual environment)::

    NUCLEITUT_DATA=../shared/data/stage1_train.zip python benchmarks/bench_segment.py \\
        --out results/benchmarks/segment_cpu.json [--models DIR] [--limit 40]

On the test images of the paper's split rule (the last 120 ids of the 664 fixed images):

* **scale**: every image and its labels rescaled by 0.5, 2 and 3 (labels by nearest
  neighbour); mean Kaggle score with automatic size handling and without it (native scale);
* **intensity**: every image as 16 bit with a dark offset (+3000), a gain (x40) and five
  hot pixels (65535); with the percentile mapping and without it (the old min..max rule);
* **image types**: scores per type, fluorescence / bright-field / stained tissue, by the
  rule of :func:`nucleitut.data.image_type` (this project's): an image whose colour
  channels differ is stained tissue; a grey image with a bright background (median above
  128) is bright-field; the rest is fluorescence;
* **speed**: a 1024x1024 image with TTA and size estimation (seconds, seconds per megapixel)
  and the peak memory of an 8000x8000 image (tiled prediction).

``--limit N`` scores the first N test images of every type in turn (a smaller, stratified
subset for a busy 2-core machine); the output says how many images each number is on.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np


def rescaled(image, labels, factor):
    from skimage.transform import rescale, resize

    big = rescale(image, factor, channel_axis=-1, order=1, preserve_range=True, anti_aliasing=factor < 1)
    shape = big.shape[:2]
    return np.clip(big, 0, 255).astype(np.uint8), resize(labels, shape, order=0, preserve_range=True, anti_aliasing=False).astype(np.int32)


def sixteen_bit(image, rng):
    grey = image[..., :3].mean(axis=-1)
    out = (3000 + 40 * grey).astype(np.uint16)
    ys, xs = rng.integers(0, out.shape[0], 5), rng.integers(0, out.shape[1], 5)
    out[ys, xs] = 65535
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="results/benchmarks/segment_cpu.json")
    parser.add_argument("--models", help="default: the shipped reference networks")
    parser.add_argument("--limit", type=int, help="score at most this many test images (stratified by type)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["scale", "intensity", "types", "speed"])
    args = parser.parse_args(argv)

    from nucleitut import data, metrics, records, segment

    networks = segment.load_networks(args.models)
    dataset = data.load_dataset(profile="full")
    test = dataset.split().test
    kinds = {i: data.image_type(dataset.get(i)[0]) for i in test}
    if args.limit:
        by_kind = {k: [i for i in test if kinds[i] == k] for k in sorted(set(kinds.values()))}
        chosen = []
        while len(chosen) < min(args.limit, len(test)):
            for k in by_kind:
                if by_kind[k] and len(chosen) < args.limit:
                    chosen.append(by_kind[k].pop(0))
        test = chosen
    result = {"n_images": len(test), "types": {k: sum(kinds[i] == k for i in test) for k in sorted(set(kinds.values()))},
              "type_rule": data.image_type.__doc__.split(">>>")[0].strip(), **records.environment()}

    def score(pairs, **options):
        scores, seconds = [], []
        for image, truth in pairs:
            start = time.perf_counter()
            labels = segment.segment_image(image, networks=networks, **options).labels
            seconds.append(time.perf_counter() - start)
            scores.append(metrics.kaggle_score(truth, labels))
        return {"mean": float(np.mean(scores)), "per_image": [float(s) for s in scores], "seconds": float(np.sum(seconds))}

    native = [dataset.get(i) for i in test]
    result["native"] = score(native)
    print(f"native: {result['native']['mean']:.3f} on {len(test)} images", flush=True)

    if "types" not in args.skip:
        result["by_type"] = {}
        for kind in sorted(set(kinds[i] for i in test)):
            picks = [k for k, i in enumerate(test) if kinds[i] == kind]
            result["by_type"][kind] = {
                "n": len(picks),
                "with_handling": float(np.mean([result["native"]["per_image"][k] for k in picks])),
            }
        plain = score(native, size=False, normalize="never")
        for kind, row in result["by_type"].items():
            picks = [k for k, i in enumerate(test) if kinds[i] == kind]
            row["without_handling"] = float(np.mean([plain["per_image"][k] for k in picks]))
        result["native_without_handling"] = plain
        print("by type:", json.dumps(result["by_type"]), flush=True)

    if "scale" not in args.skip:
        result["scale"] = {}
        for factor in (0.5, 2.0, 3.0):
            pairs = [rescaled(image, truth, factor) for image, truth in native]
            auto = score(pairs)
            fixed = score(pairs, size=False)
            result["scale"][str(factor)] = {"auto_size": auto, "no_size_handling": fixed}
            print(f"scale {factor}: auto {auto['mean']:.3f}, without size handling {fixed['mean']:.3f}", flush=True)

    if "intensity" not in args.skip:
        rng = np.random.default_rng(0)
        pairs = [(sixteen_bit(image, rng), truth) for image, truth in native]
        robust = score(pairs)
        minmax = score(pairs, normalize="never")
        result["intensity"] = {"percentile": robust, "min_max": minmax}
        print(f"16 bit: percentile mapping {robust['mean']:.3f}, min..max {minmax['mean']:.3f}", flush=True)

    if "speed" not in args.skip:
        image = np.tile(dataset.get(test[0])[0], (4, 4, 1))[:1024, :1024]
        image = np.pad(image, ((0, max(0, 1024 - image.shape[0])), (0, max(0, 1024 - image.shape[1])), (0, 0)), mode="reflect")
        segment.segment_image(image[:256, :256], networks=networks)  # warm-up
        start = time.perf_counter()
        segment.segment_image(image, networks=networks)
        seconds = time.perf_counter() - start
        result["speed"] = {"shape": list(image.shape[:2]), "seconds_tta_and_size": seconds,
                           "seconds_per_megapixel": seconds / (image.shape[0] * image.shape[1] / 1e6)}
        print(f"1024x1024 with TTA and size estimation: {seconds:.1f} s", flush=True)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        large = np.tile(dataset.get(test[0])[0], (20, 20, 1))[:8000, :8000]
        start = time.perf_counter()
        segment.segment_image(large, networks=networks, tta=False)
        result["speed"]["large"] = {
            "shape": list(large.shape[:2]), "seconds_no_tta": time.perf_counter() - start,
            "peak_rss_mb_before": before / 1024, "peak_rss_mb_after": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
        print("8000x8000:", json.dumps(result["speed"]["large"]), flush=True)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
