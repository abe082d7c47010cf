"""Full-profile run on one GPU: benchmark, train B1 and M3, evaluate B1, M3 and M3B1 (+TTA).

Runs on any machine with a GPU and Keras 3 on JAX (default here) or TensorFlow::

    KERAS_BACKEND=jax NUCLEITUT_DATA=/path/to/stage1_train.zip \\
        python tools/full_profile_gpu.py --out results-gpu --minutes 9

(``bash tools/full_profile_gpu.sh`` does the set-up on the project's lent GPU machines, which
have JAX but no TensorFlow and no internet.) Everything is done in the ``full`` profile:
Table 3 networks (4 blocks, F=64), 256x256 crops, AMSGrad lr 1e-4, batch 8 (as in the paper),
and mixed precision (bfloat16) on the GPU (this project's choice). Training stops early by a time budget chosen so that the
whole run fits ``--minutes``; the records say how many epochs each network had. It writes
the JSON records of ``nucleitut.evaluation`` plus ``benchmark.json`` and the training
histories into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--minutes", type=float, default=9.0, help="the whole run must end within this")
    parser.add_argument("--eval-reserve", type=float, default=150.0, help="seconds kept for evaluation")
    parser.add_argument("--networks", default="B1,M3")
    parser.add_argument("--pipelines", default="B1,M3,M3B1")
    parser.add_argument("--bench-steps", type=int, default=20)
    parser.add_argument("--smoke", action="store_true", help="tiny settings to test this script on a CPU")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    deadline = START + 60 * args.minutes

    import keras

    from nucleitut import config, data, evaluation, predict, records, training

    log(f"backend {keras.backend.backend()}, devices {predict.available_devices() or ['cpu']}")
    env = records.environment()
    (out / "environment.json").write_text(json.dumps(env, indent=1))
    bench = {} if args.smoke or args.bench_steps == 0 else benchmark(args.bench_steps)
    (out / "benchmark.json").write_text(json.dumps({"ms_per_crop_train_step_batch8_256x256": bench, **env}, indent=1))

    dataset = data.load_dataset(profile="full")
    split = dataset.split()
    log(f"data: {dataset.source}; split {split.sizes()}")
    if args.smoke:
        split = data.Split(split.train[:4], split.val[:2], split.test[:3])

    networks = args.networks.split(",")
    for index, network in enumerate(networks):
        left = deadline - time.time() - args.eval_reserve
        budget = left / (len(networks) - index)
        overrides = {"time_budget_s": max(30.0, budget - 45)}  # 45 s for compiling and saving
        if args.smoke:
            overrides.update(blocks=3, filters=4, max_epochs=2, mixed_precision=False)
        cfg = config.training_config(network, "full", **overrides)
        log(f"training {network} with a budget of {cfg.time_budget_s:.0f} s")
        result = training.train(cfg, dataset, config.model_dir(network, "full"), split=split, workers=1)
        log(f"{network}: {result.epochs} epochs, best val_loss {result.best_val_loss:.4f}, {result.ms_per_crop:.1f} ms/crop")
        for name in ("history.csv", "timing.json"):
            shutil.copy(config.model_dir(network, "full") / name, out / f"{network}_{name}")

    log("evaluating on the test split")
    scored = evaluation.evaluate_pipelines(args.pipelines.split(","), dataset, ids=split.test, profile="full")
    for record in scored:
        record["run"] = "tools/full_profile_gpu.py" + (" --smoke" if args.smoke else "")
        path = records.write_record(record, out / "records")
        log(f"{path.name}: {record['mean']['kaggle_score']:.3f}")
    log("done")


if __name__ == "__main__":
    main()
