"""First (decoding every PNG) and cached load of a BBBC038v1 copy.

Usage::

    python benchmarks/bench_data.py ../shared/data/stage1_train.zip

Uses a fresh temporary cache folder, so the first load really decodes all PNG files.
"""

import os
import sys
import tempfile
import time


def main(source: str) -> None:
    with tempfile.TemporaryDirectory() as cache:
        os.environ["NUCLEITUT_CACHE"] = cache
        from nucleitut import data

        start = time.perf_counter()
        first = data.load_dataset(source, verbose=False)
        first_s = time.perf_counter() - start
        start = time.perf_counter()
        second = data.load_dataset(source, verbose=False)
        cached_s = time.perf_counter() - start
        assert first.ids == second.ids
        print(f"{len(first)} images, {sum(int(l.max()) for l in first.labels)} nuclei")
        print(f"first load (decode PNGs, close holes, write cache): {first_s:.1f} s")
        print(f"cached load: {cached_s:.2f} s")


if __name__ == "__main__":
    main(sys.argv[1])
