"""Full-profile run on one GPU: benchmark, train networks (default B1 and M3), evaluate pipelines (+TTA).

Runs on any machine with a GPU and Keras 3 on JAX (default here) or TensorFlow::

    KERAS_BACKEND=jax NUCLEITUT_DATA=/path/to/stage1_train.zip \\
        python tools/full_profile_gpu.py --out results-gpu --minutes 9

(``bash tools/full_profile_gpu.sh`` does the set-up on the project's lent GPU machines, which
have JAX but no TensorFlow and no internet.) Everything is done in the ``full`` profile:
Table 3 networks (4 blocks, F=64; 5 blocks F=32 for B5/M7), 256x256 crops, AMSGrad with Table
3's learning rates (1e-4; 2e-4 quartered on a 5-epoch plateau for the starred rows), batch 8
(as in the paper), and mixed precision (bfloat16) on the GPU (this project's choice). Training
stops early by a time budget chosen so that the whole run fits ``--minutes``; the records say how many epochs each network had. With
``--parallel K`` the networks are trained K at a time, each group in its own process on the
same GPU (no benchmark then). It writes
the JSON records of ``nucleitut.evaluation`` plus ``benchmark.json`` and the training
histories into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

START = time.time()


def log(message: str) -> None:
    print(f"[{time.time() - START:6.1f} s] {message}", flush=True)


def benchmark(steps: int) -> dict:
    import keras
    import numpy as np

    from nucleitut import config, training

    results = {}
    for label, network, mixed in (("4 blocks F=64 (B1), bfloat16", "B1", True),
                                  ("4 blocks F=64 (B1), float32", "B1", False),
                                  ("5 blocks F=32 (B5), bfloat16", "B5", True)):
        cfg = config.training_config(network, "full", mixed_precision=mixed)
        training._set_precision(cfg)
        model = training.build_model(cfg)
        x = np.random.default_rng(0).normal(size=(8, 256, 256, 3)).astype("float32")
        y = np.zeros((8, 256, 256, 1), "float32")
        for _ in range(3):
            model.train_on_batch(x, y)
        t = time.perf_counter()
        for _ in range(steps):
            model.train_on_batch(x, y)
        loss = model.train_on_batch(x, y)  # forces completion of queued steps
        float(np.asarray(loss if not isinstance(loss, (list, tuple)) else loss[0]))
        ms = 1000 * (time.perf_counter() - t) / ((steps + 1) * 8)
        results[label] = round(ms, 2)
        log(f"benchmark {label}: {ms:.2f} ms per crop (paper, Quadro P4000: 100 ms)")
        keras.backend.clear_session()
    keras.mixed_precision.set_global_policy("float32")
    return results


def train_networks(networks, dataset, split, deadline: float, overhead: float, smoke: bool, out: Path) -> None:
    """Train ``networks`` one after another, sharing the time left until ``deadline`` evenly."""
    from nucleitut import config, training

    for index, network in enumerate(networks):
        left = deadline - time.time()
        budget = left / (len(networks) - index)
        overrides = {"time_budget_s": float(max(30, round(budget - overhead)))}
        if smoke:
            overrides.update(blocks=3, filters=4, max_epochs=2, mixed_precision=False)
        cfg = config.training_config(network, "full", **overrides)
        log(f"training {network} with a budget of {cfg.time_budget_s:.0f} s")
        result = training.train(cfg, dataset, config.model_dir(network, "full"), split=split, workers=1)
        log(f"{network}: {result.epochs} epochs, best val_loss {result.best_val_loss:.4f}, {result.ms_per_crop:.1f} ms/crop")
        for name in ("history.csv", "timing.json"):
            shutil.copy(config.model_dir(network, "full") / name, out / f"{network}_{name}")


def train_in_parallel(groups: list[list[str]], args, deadline: float, out: Path) -> None:
    """Train each group of networks in its own process, all at once on the one GPU.

    This project's choice, to get more epochs into a few minutes of a lent GPU at batch 8. On
    an H200 (2026-11-28, results/README.md) three trainings at once ran their later epochs in
    8-9 s each against ~6 s for one alone, but their first epochs (three compilations at once)
    took 83-95 s. Each network's record keeps its own epochs and seconds, slower than a
    training alone. Each process may use an equal share of the GPU's memory
    (``XLA_PYTHON_CLIENT_MEM_FRACTION``).
    """
    children = []
    for k, group in enumerate(groups):
        folder = out / f"train{k}"
        folder.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", f"{0.9 / len(groups):.2f}")
        env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        command = [sys.executable, __file__, "--out", str(folder), "--train-only", "--deadline", str(deadline),
                   "--networks", ",".join(group), "--overhead", str(args.overhead)] + (["--smoke"] if args.smoke else [])
        log(f"process {k}: {' '.join(group)} (log in train{k}/log.txt)")
        children.append(subprocess.Popen(command, env=env, stdout=open(folder / "log.txt", "w"), stderr=subprocess.STDOUT))
    codes = [child.wait() for child in children]
    for k, code in enumerate(codes):
        log(f"process {k} ended with exit code {code}; last lines of its log:")
        print("".join((out / f"train{k}" / "log.txt").read_text().splitlines(keepends=True)[-4:]), flush=True)
    if any(codes):
        raise SystemExit("a training process failed (see its log)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--minutes", type=float, default=9.0, help="the whole run must end within this")
    parser.add_argument("--eval-reserve", type=float, default=150.0, help="seconds kept for evaluation")
    parser.add_argument("--networks", default="B1,M3")
    parser.add_argument("--pipelines", default="B1,M3,M3B1")
    parser.add_argument("--parallel", type=int, default=1, help="train this many networks at once on the GPU")
    parser.add_argument("--overhead", type=float, default=45.0,
                        help="seconds per network kept for preparing crops, compiling and saving")
    parser.add_argument("--bench-steps", type=int, default=20)
    parser.add_argument("--smoke", action="store_true", help="tiny settings to test this script on a CPU")
    parser.add_argument("--train-only", action="store_true", help=argparse.SUPPRESS)  # a --parallel child
    parser.add_argument("--deadline", type=float, help=argparse.SUPPRESS)  # a child's end of training (epoch s)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    networks = [n for n in args.networks.split(",") if n]
    pipelines = [p for p in args.pipelines.split(",") if p]

    from nucleitut import config, data, evaluation, records

    dataset = data.load_dataset(profile="full")  # decodes once; --parallel children read the cache
    split = dataset.split()
    if args.smoke:
        split = data.Split(split.train[:4], split.val[:2], split.test[:3])
    if args.train_only:
        train_networks(networks, dataset, split, args.deadline, args.overhead, args.smoke, out)
        return

    deadline = START + 60 * args.minutes
    log(f"data: {dataset.source}; split {split.sizes()}")
    if args.parallel > 1:
        # The children must find the GPU untouched: nothing here runs on it before they end.
        groups = [networks[k::args.parallel] for k in range(args.parallel) if networks[k::args.parallel]]
        train_in_parallel(groups, args, deadline - args.eval_reserve, out)
    import keras

    log(f"backend {keras.backend.backend()}, devices {config.available_devices() or ['cpu']}")
    env = records.environment()
    (out / "environment.json").write_text(json.dumps(env, indent=1))
    if args.parallel <= 1:
        bench = {} if args.smoke or args.bench_steps == 0 else benchmark(args.bench_steps)
        (out / "benchmark.json").write_text(json.dumps({"ms_per_crop_train_step_batch8_256x256": bench, **env}, indent=1))
        train_networks(networks, dataset, split, deadline - args.eval_reserve, args.overhead, args.smoke, out)

    log("evaluating on the test split")
    scored = evaluation.evaluate_pipelines(pipelines, dataset, ids=split.test, profile="full")
    run = (f"tools/full_profile_gpu.py --minutes {args.minutes:g} --networks {args.networks} "
           f"--pipelines {args.pipelines} --parallel {args.parallel}" + (" --smoke" if args.smoke else ""))
    for record in scored:
        record["run"] = run
        path = records.write_record(record, out / "records")
        log(f"{path.name}: {record['mean']['kaggle_score']:.3f}")
    log("done")


if __name__ == "__main__":
    main()
