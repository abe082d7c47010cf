"""Training speed per crop and input-pipeline throughput on this machine.

Usage::

    python benchmarks/bench_training.py            # quick networks, 4-block F=64, 5-block F=32
    python benchmarks/bench_training.py --quick    # only the quick-profile networks

Prints, per network, training milliseconds per crop (bare train_on_batch steps, batch 8,
after two warm-up steps) and the input pipeline's crops per second with augmentation set a
(targets included), and the ratio between the two for the quick networks.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import keras

from nucleitut import config, data, predict, training


def time_training(cfg, steps: int) -> float:
    """Milliseconds per crop of ``train_on_batch`` for a network of ``cfg``."""
    keras.utils.set_random_seed(0)
    model = training.build_model(cfg)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(cfg.batch_size, cfg.crop_size, cfg.crop_size, 3)).astype(np.float32)
    y = np.zeros((cfg.batch_size, cfg.crop_size, cfg.crop_size, cfg.out_channels), np.float32)
    y[..., 0] = 1
    for _ in range(2):
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return 1000 * (time.perf_counter() - start) / (steps * cfg.batch_size)


def time_pipeline(cfg, dataset, batches: int) -> float:
    """Crops per second produced by CropSequence (augmentation and targets included)."""
    split = dataset.split()
    crops, labels = training.training_crops([dataset.get(i)[0] for i in split.train], [dataset.get(i)[1] for i in split.train], size=cfg.crop_size)
    sequence = training.CropSequence(crops, labels, cfg, training=True, seed=0)
    sequence[0]
    start = time.perf_counter()
    n = 0
    for index in range(batches):
        x, _ = sequence[index % len(sequence)]
        n += len(x)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="only the quick-profile networks")
    args = parser.parse_args()
    dataset = data.load_dataset("sample", verbose=False)
    print(f"backend {keras.backend.backend()}, devices {predict.available_devices() or ['cpu']}")
    rows = [("B1 quick (3 blocks F=16, 128x128)", config.training_config("B1", "quick"), 20),
            ("M3 quick (3 blocks F=16, 128x128)", config.training_config("M3", "quick", augmentation="a"), 20),
            ("M7 quick (4 blocks F=8, 128x128)", config.training_config("M7", "quick", augmentation="a"), 20)]
    if not args.quick:
        rows += [("B1 full (4 blocks F=64, 256x256)", config.training_config("B1", "full", mixed_precision=False), 3),
                 ("B5 full (5 blocks F=32, 256x256)", config.training_config("B5", "full", mixed_precision=False), 3)]
    print(f"{'network':38s} {'train ms/crop':>14s} {'pipeline crops/s':>17s} {'pipeline / model':>17s}")
    for name, cfg, steps in rows:
        ms = time_training(cfg, steps)
        rate = time_pipeline(cfg, dataset, 10)
        print(f"{name:38s} {ms:14.1f} {rate:17.1f} {rate * ms / 1000:16.1f}x", flush=True)


if __name__ == "__main__":
    main()
