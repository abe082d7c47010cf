"""Training speed per crop and input-pipeline throughput on this machine.

Usage::

    python benchmarks/bench_training.py            # quick networks, 4-block F=64, 5-block F=32
    python benchmarks/bench_training.py --quick    # only the quick-profile networks
    python benchmarks/bench_training.py --table3 M6 M7 B4 B5 --profile cpu \
        --out results/benchmarks/table3_speed_cpu.json   # Table 3 rows on an idle machine

With ``--table3`` it times the named Table 3 networks of one profile (their crop size,
batch 8, random inputs: the time does not depend on the weights), training and prediction
milliseconds per crop, in ``--rounds`` rounds that take the networks in turn (so a slow
moment of the machine hits all of them), and writes the medians to ``--out``. Run it on an
otherwise idle machine: the campaign's own times per crop are wall times of epochs that may
have shared the cores with other work. :func:`nucleitut.records.findings` takes the file's
times for the claim that M7B5 is faster (``records.read_timings``).

Prints, per network, training milliseconds per crop (bare train_on_batch steps, batch 8,
after two warm-up steps) and the input pipeline's crops per second with augmentation set a
(targets included), and the ratio between the two for the quick networks.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

import keras

from nucleitut import config, data, records, training


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


def time_table3(networks, profile: str, rounds: int, steps: int) -> dict:
    """Median training and prediction ms per crop of Table 3 ``networks`` in ``profile``."""
    models = {}
    for name in networks:
        cfg = config.training_config(name, profile)
        keras.utils.set_random_seed(0)
        models[name] = (cfg, training.build_model(cfg, steps_per_epoch=100))  # any schedule length: same speed
    train, pred = {n: [] for n in networks}, {n: [] for n in networks}
    rng = np.random.default_rng(0)
    for round_ in range(rounds):
        for name, (cfg, model) in models.items():
            x = rng.normal(size=(cfg.batch_size, cfg.crop_size, cfg.crop_size, 3)).astype(np.float32)
            y = np.zeros((cfg.batch_size, cfg.crop_size, cfg.crop_size, cfg.out_channels), np.float32)
            y[..., 0] = 1
            for _ in range(2):  # warm-up
                model.train_on_batch(x, y)
            start = time.perf_counter()
            for _ in range(steps):
                model.train_on_batch(x, y)
            train[name].append(1000 * (time.perf_counter() - start) / (steps * cfg.batch_size))
            pred[name].append(training.predict_ms_per_crop(model, cfg.crop_size, cfg.batch_size))
            print(f"round {round_ + 1}: {name} train {train[name][-1]:.1f}, predict {pred[name][-1]:.1f} ms per crop", flush=True)
    return {name: {"ms_per_crop": float(np.median(train[name])), "predict_ms_per_crop": float(np.median(pred[name])),
                   "train_rounds": train[name], "predict_rounds": pred[name],
                   "crop_size": models[name][0].crop_size, "batch_size": models[name][0].batch_size}
            for name in networks}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="only the quick-profile networks")
    parser.add_argument("--table3", nargs="+", metavar="NETWORK", help="time these Table 3 networks instead")
    parser.add_argument("--profile", default="cpu", help="profile of the --table3 networks")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10, help="training steps per round and network")
    parser.add_argument("--out", help="JSON file for the --table3 times")
    args = parser.parse_args()
    if args.table3:
        timings = time_table3(args.table3, args.profile, args.rounds, args.steps)
        for name, t in timings.items():
            print(f"{name} ({args.profile}): train {t['ms_per_crop']:.1f}, predict {t['predict_ms_per_crop']:.1f} ms per crop")
        if args.out:
            out = {"what": "Training and prediction ms per crop of Table 3 networks on an otherwise idle machine",
                   "profile": args.profile, "rounds": args.rounds, "steps": args.steps, "networks": timings,
                   "command": "python benchmarks/bench_training.py " + " ".join(sys.argv[1:]), **records.environment()}
            Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
        return
    dataset = data.load_dataset("sample", verbose=False)
    print(f"backend {keras.backend.backend()}, devices {config.available_devices() or ['cpu']}")
    rows = [(config.training_config("B1", "quick"), 20),
            (config.training_config("M3", "quick", augmentation="a"), 20),
            (config.training_config("M7", "quick", augmentation="a"), 20)]
    if not args.quick:
        rows += [(config.training_config("B1", "full", mixed_precision=False), 3),
                 (config.training_config("B5", "full", mixed_precision=False), 3)]
    rows = [(f"{cfg.network} {cfg.profile} ({cfg.blocks} blocks F={cfg.filters}, {cfg.crop_size}x{cfg.crop_size})", cfg, steps)
            for cfg, steps in rows]
    print(f"{'network':38s} {'train ms/crop':>14s} {'pipeline crops/s':>17s} {'pipeline / model':>17s}")
    for name, cfg, steps in rows:
        ms = time_training(cfg, steps)
        rate = time_pipeline(cfg, dataset, 10)
        print(f"{name:38s} {ms:14.1f} {rate:17.1f} {rate * ms / 1000:16.1f}x", flush=True)


if __name__ == "__main__":
    main()
