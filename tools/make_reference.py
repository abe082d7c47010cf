"""Build the reference networks that ship with the package (``nucleitut/reference/``).

Usage::

    python -m nucleitut train M3 --profile cpu      # or any trained networks of one pipeline
    python -m nucleitut train B1 --profile cpu
    python tools/make_reference.py --models ~/.cache/nucleitut/models --pipeline M3B1 \\
        --profile cpu --data ../shared/data/stage1_train.zip --settings-from-record

The shipped reference (2026-11-28, second build) is M3B1 at the cpu profile's size, trained
for 31 epochs on a lent GPU (``NUCLEITUT_COMMIT=b2c1478 bash tools/reference_gpu.sh OUT 35 170
M3 B1``; the networks came back as ``OUT/<NET>_model.keras``, put into ``<models>/cpu/<NET>/``
with the config, history and timing of ``OUT/reference_run.tar.gz``), scored with
``python -m nucleitut evaluate M3B1 --profile cpu --models <models> --tta both --tune
--results results/reference_2026-11-28`` (0.637 with TTA on the 120 test images, settings
chosen on the validation images) and built with the last command above plus ``--record
results/reference_2026-11-28/cpu_M3B1_tta_tuned.json``. The first build was M3B1 of the
Table 3 campaign (8 epochs on two CPU cores, 0.615).

What it does, without training anything:

1. loads the pipeline's trained networks from ``--models`` (``<DIR>/<NET>/model.keras`` or
   ``<DIR>/<profile>/<NET>/model.keras``);
2. computes the nucleus size statistics of the training split of ``--data``
   (:func:`nucleitut.sizing.nucleus_size_statistics`), the target of the size handling;
3. chooses the post-processing settings on the validation split
   (:func:`nucleitut.evaluation.tune_postprocessing`, with TTA unless ``--no-tta``);
4. writes float16 weights, each network's training configuration and ``reference.json``
   (pipeline, settings, size statistics, where and how the networks were trained, the data
   set's fingerprint, a summary of the results record ``--record``) into ``--out``
   (default: the package's ``nucleitut/reference``), and checks that the stored networks
   predict like the trained ones up to float16 precision.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import numpy as np

from nucleitut import config, data, evaluation, predict, pretrained, records, sizing, training
from nucleitut.pipeline import Pipeline


def _portable(argument: str) -> str:
    """An absolute path as seen from the repository root (no machine's folders in the package)."""
    import os

    if not os.path.isabs(argument):
        return argument
    return os.path.relpath(argument, Path(__file__).resolve().parents[1])


def _record_summary(path: Path | None) -> dict | None:
    if path is None or not path.is_file():
        return None
    record = json.loads(path.read_text())
    return {
        "file": path.name,
        "pipeline": record["pipeline"],
        "tta": record["tta"],
        "profile": record["profile"],
        "n_images": record["n_images"],
        "mean_kaggle_score": record["mean"]["kaggle_score"],
        "postprocess": record.get("postprocess"),
        "data": record.get("data"),
        "commit": record.get("commit"),
        "date": record.get("date"),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", required=True, help="folder of trained networks")
    parser.add_argument("--pipeline", default="M3B1")
    parser.add_argument("--profile", default="cpu", choices=sorted(config.PROFILES))
    parser.add_argument("--data", required=True, help="the data set the networks were trained on (folder, zip, 'full')")
    parser.add_argument("--out", default=str(pretrained.REFERENCE_DIR))
    parser.add_argument("--record", help="results record to summarise (default: results/<profile>_<pipeline>_tta_tuned.json)")
    parser.add_argument("--no-record", action="store_true",
                        help="no results record of these networks exists: reference.json's 'results' stays empty "
                             "(the settings are then chosen here)")
    parser.add_argument("--no-tta", action="store_true", help="choose the settings without TTA (faster)")
    parser.add_argument("--val-limit", type=int, help="tune on the first N validation images only (for a quick try)")
    parser.add_argument("--settings-from-record", action="store_true",
                        help="take the post-processing settings of --record (chosen there on the validation images) "
                             "instead of tuning again")
    parser.add_argument("--fine-tuned-from", metavar="REFERENCE",
                        help="the reference folder the networks were fine-tuned from (experiments/finetune_robust.py): "
                             "its training record is kept under each network's 'fine_tuned_from'")
    args = parser.parse_args(argv)
    if args.no_record and (args.record or args.settings_from_record):
        parser.error("--no-record excludes --record and --settings-from-record")
    origin = json.loads((Path(args.fine_tuned_from) / "reference.json").read_text()) if args.fine_tuned_from else None

    segmenter = Pipeline.load(Path(args.models), args.pipeline, args.profile)
    pipeline = segmenter.spec
    folders = {}
    for network in pipeline.networks:
        for candidate in (Path(args.models) / network, Path(args.models) / args.profile / network):
            if (candidate / "model.keras").is_file():
                folders[network] = candidate
                break
    configs = {n: segmenter.networks[n].config for n in pipeline.networks}
    timings = {n: json.loads((folders[n] / "timing.json").read_text()) if (folders[n] / "timing.json").is_file() else {} for n in pipeline.networks}

    dataset = data.load_dataset(args.data, profile=args.profile)
    split = dataset.split()
    print(f"Nucleus sizes of {len(split.train)} training images ...")
    sizes = sizing.nucleus_size_statistics(dataset, split.train)
    print(f"  median typical diameter {sizes['median_diameter']:.1f} px")

    tta = not args.no_tta
    val = split.val[: args.val_limit] if args.val_limit else split.val
    record_path = Path(args.record) if args.record else config.results_dir() / f"{args.profile}_{pipeline.name}_tta_tuned.json"
    if args.settings_from_record:
        stored = json.loads(record_path.read_text())
        if not records.is_tuned(stored):
            raise SystemExit(f"{record_path}: its post-processing settings were not chosen on validation images")
        chosen_on = stored["postprocess"]["chosen_on"]
        tuned = {"settings": stored["postprocess"]["settings"]}
        print(f"Post-processing settings from {record_path.name}: {tuned['settings']} ({chosen_on})")
    else:
        print(f"Choosing post-processing settings on {len(val)} validation images{' with TTA' if tta else ''} ...")
        probs = {i: segmenter.probabilities(dataset.get(i)[0], tta=tta) for i in val}
        truths = {i: dataset.get(i)[1] for i in val}
        tuned = evaluation.tune_postprocessing(segmenter, probs, truths)
        print(f"  {tuned['settings']}: {tuned['score']:.3f} (defaults {tuned['default_score']:.3f})")
        chosen_on = (
            f"validation: best mean score over {tuned['n_images']} images{' with TTA' if tta else ''} "
            f"({tuned['score']:.3f}; defaults {tuned['default_score']:.3f})"
        )

    environment = records.environment()
    out = Path(args.out)
    pretrained.save_reference(
        out,
        segmenter.networks,
        pipeline.name,
        {**config.POSTPROCESS_DEFAULTS[pipeline.method], **tuned["settings"]},
        sizes,
        profile=args.profile,
        postprocess_chosen_on=chosen_on,
        trained={n: {"epochs": timings[n].get("epochs"), "max_epochs": configs[n].max_epochs,
                     "stopped_by_time_budget": timings[n].get("stopped_by_time_budget"),
                     "seconds": training.training_seconds(timings[n]), "devices": timings[n].get("devices"),
                     "backend": timings[n].get("backend"), "ms_per_crop": timings[n].get("ms_per_crop_including_validation"),
                     "augmentation": configs[n].augmentation, "learning_rate": configs[n].learning_rate,
                     **({"fine_tuned_from": origin["trained"][n]} if origin else {})}
                 for n in pipeline.networks},
        data=dataset.describe(),
        results=None if args.no_record else _record_summary(record_path),
        made={"command": "python tools/make_reference.py " + " ".join(_portable(a) for a in (sys.argv[1:] if argv is None else argv)),
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "commit": environment["commit"], "versions": environment["versions"], "hardware": environment["hardware"]},
    )
    loaded, _ = pretrained.load_reference(out)
    check = dataset.get(val[0])[0] if val else dataset.images[0]
    for n in pipeline.networks:
        a = predict.predict_probabilities(segmenter.networks[n].model, check)
        b = predict.predict_probabilities(loaded[n].model, check)
        print(f"  {n}: largest difference after float16 storage {float(np.abs(a - b).max()):.2e}")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"Reference networks -> {out} ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
