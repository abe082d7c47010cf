"""Command line: ``python -m nucleitut {train,evaluate,segment,figure9} ...``.

Examples::

    python -m nucleitut train M3 --profile quick
    python -m nucleitut evaluate M3B1 M2 --tta both
    python -m nucleitut evaluate M6B4 --tune      # thresholds chosen on the validation split
    python -m nucleitut segment my_images/ my_labels/ --overlay
    python -m nucleitut figure9 --out figure9.png

The profile comes from ``--profile`` or ``NUCLEITUT_PROFILE`` (default ``quick``); data from
``--data`` or the profile's default (see ``nucleitut.data``). Trained networks live in
``NUCLEITUT_MODELS`` (default: the user cache), or ``--models``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

IMAGE_SUFFIXES = {".png", ".tif", ".tiff", ".jpg", ".jpeg"}


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", choices=["quick", "full", "cpu"], help="default: $NUCLEITUT_PROFILE or quick")
    parser.add_argument("--models", help="folder of trained networks (sets NUCLEITUT_MODELS)")


def _seed_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="which of repeated trainings (default 0, the one the book uses)")


def _data_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="folder or zip in the Kaggle layout, URL, 'sample' or 'full'")


def cmd_train(args) -> int:
    from . import config, data, training

    overrides = {"seed": args.seed}
    if args.epochs is not None:
        overrides["max_epochs"] = args.epochs
    if args.time_budget is not None:
        overrides["time_budget_s"] = args.time_budget if args.time_budget > 0 else None
    if args.learning_rate is not None:
        overrides["learning_rate"] = args.learning_rate
    cfg = config.training_config(args.network, args.profile, **overrides)
    dataset = data.load_dataset(args.data, profile=cfg.profile)
    directory = Path(args.out) if args.out else training.model_dir(cfg.network, cfg.profile, cfg.seed)
    result = training.train(cfg, dataset, directory, devices=args.devices, workers=args.workers)
    print(
        f"Saved {cfg.network} to {directory / 'model.keras'}: {result.epochs} epochs, "
        f"best val_loss {result.best_val_loss:.4f}, {result.ms_per_crop:.1f} ms per crop"
    )
    return 0


def cmd_evaluate(args) -> int:
    from . import config, data, evaluation

    profile = config.get_profile(args.profile).name
    dataset = data.load_dataset(args.data, profile=profile)
    ids = None if args.ids == "test" else dataset.ids
    tta_values = {"no": [False], "yes": [True], "both": [False, True]}[args.tta]
    shared = {}
    for name in args.pipelines:  # load (or train) every network first; fail early on a missing one
        shared.update(
            evaluation.Segmenter(name, profile, models=shared, train_missing=not args.no_train, seed=args.seed).models
        )
    tune_on = None
    if args.tune:
        tune_on = dataset.split().val
        if not tune_on or args.ids == "all":
            print("error: --tune chooses post-processing settings on the validation split; "
                  "it needs one and cannot be combined with --ids all", file=sys.stderr)
            return 2
    records = evaluation.evaluate_pipelines(
        args.pipelines, dataset, ids=ids, tta_values=tta_values, profile=profile, models=shared, tune_on=tune_on,
        seed=args.seed,
    )
    for record in records:
        path = evaluation.write_record(record, args.results)
        print(f"  record: {path}")
    return 0


def _write_labels(path: Path, labels) -> None:
    import numpy as np
    from PIL import Image

    if labels.max() > 65535:
        raise ValueError(f"{path}: more than 65535 objects do not fit a 16-bit label image")
    Image.fromarray(labels.astype(np.uint16)).save(path)


def _write_overlay(path: Path, image, labels) -> None:
    import numpy as np
    from PIL import Image
    from skimage.color import label2rgb
    from skimage.segmentation import find_boundaries

    overlay = label2rgb(labels, image=image, alpha=0.3, bg_label=0, image_alpha=1.0)
    overlay[find_boundaries(labels, mode="inner")] = (1.0, 1.0, 0.0)
    Image.fromarray((np.clip(overlay, 0, 1) * 255).astype(np.uint8)).save(path)


def cmd_segment(args) -> int:
    from . import data, evaluation

    source, target = Path(args.input), Path(args.output)
    if not source.exists():
        print(f"error: {source}: no such file or folder", file=sys.stderr)
        return 2
    files = [source] if source.is_file() else sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        print(f"error: {source}: no PNG, TIF or JPG images found", file=sys.stderr)
        return 2
    target.mkdir(parents=True, exist_ok=True)
    segmenter = evaluation.Segmenter(args.pipeline, args.profile)
    failures = 0
    for path in files:
        try:
            image = data.read_image(path)
        except data.DataError as error:
            print(f"skipped: {error}", file=sys.stderr)
            failures += 1
            continue
        if args.scale != 1.0:
            image = _rescale(image, args.scale)
        labels = segmenter(image, tta=not args.no_tta)
        if args.scale != 1.0:
            labels = _rescale_labels(labels, data.read_image(path).shape[:2])
        out = target / f"{path.stem}.png"
        _write_labels(out, labels)
        if args.overlay:
            _write_overlay(target / f"{path.stem}_overlay.png", data.read_image(path), labels)
        print(f"{path.name}: {int(labels.max())} nuclei -> {out}")
    if failures:
        print(f"{failures} of {len(files)} images could not be read (see above)", file=sys.stderr)
        return 1
    return 0


def _rescale(image, factor: float):
    import numpy as np
    from skimage.transform import rescale

    return (np.clip(rescale(image, factor, channel_axis=-1, preserve_range=True, anti_aliasing=factor < 1), 0, 255)).astype("uint8")


def _rescale_labels(labels, shape):
    from skimage.transform import resize

    return resize(labels, shape, order=0, preserve_range=True, anti_aliasing=False).astype("int32")


def cmd_figure9(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from . import evaluation

    records = evaluation.read_records(args.results, args.profile)
    if not records:
        print(f"error: {args.results}: no results records" + (f" for the {args.profile} profile" if args.profile else ""), file=sys.stderr)
        return 2
    profiles = sorted({r["profile"] for r in records})
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(profiles), figsize=(6 * len(profiles), 3.8), squeeze=False)
    for ax, profile in zip(axes[0], profiles):
        subset = [r for r in records if r["profile"] == profile]
        evaluation.figure9(subset, ax=ax, title=f"{profile} profile ({subset[0]['n_images']} test images)")
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"Figure 9 from {len(records)} records -> {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m nucleitut", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train one Table 3 network (B1-B5, M1-M7); resumes an interrupted run")
    train.add_argument("network")
    _common(train)
    _data_option(train)
    _seed_option(train)
    train.add_argument("--epochs", type=int, help="maximum number of epochs")
    train.add_argument("--time-budget", type=float, help="stop after this many seconds (0: no limit)")
    train.add_argument("--learning-rate", type=float)
    train.add_argument("--out", help="output folder (default: the shared models folder)")
    train.add_argument("--devices", type=int, help="data-parallel training on this many devices")
    train.add_argument("--workers", type=int, default=1, help="input pipeline worker processes")
    train.set_defaults(func=cmd_train)

    evaluate = commands.add_parser("evaluate", help="score pipelines (B1, M2, M3B1, ...) and write JSON records")
    evaluate.add_argument("pipelines", nargs="+")
    _common(evaluate)
    _data_option(evaluate)
    _seed_option(evaluate)
    evaluate.add_argument("--tta", choices=["no", "yes", "both"], default="both")
    evaluate.add_argument("--ids", choices=["test", "all"], default="test", help="test split or every image of --data")
    evaluate.add_argument("--results", default="results", help="folder for the records (default: ./results)")
    evaluate.add_argument("--no-train", action="store_true", help="fail instead of training missing networks")
    evaluate.add_argument(
        "--tune", action="store_true",
        help="also score with thresholds and size priors chosen on the validation split (records *_tuned.json)",
    )
    evaluate.set_defaults(func=cmd_evaluate)

    segment = commands.add_parser("segment", help="segment every image in a folder; writes 16-bit label PNGs")
    segment.add_argument("input")
    segment.add_argument("output")
    _common(segment)
    segment.add_argument("--pipeline", default="M3B1", help="network or pair to use (default M3B1)")
    segment.add_argument("--no-tta", action="store_true")
    segment.add_argument("--overlay", action="store_true", help="also write <name>_overlay.png")
    segment.add_argument("--scale", type=float, default=1.0, help="rescale images by this factor first (nuclei size)")
    segment.set_defaults(func=cmd_segment)

    figure = commands.add_parser("figure9", help="draw the Figure 9 chart from the JSON records")
    figure.add_argument("--results", default="results")
    figure.add_argument("--profile", choices=["quick", "full", "cpu"], help="only records of this profile")
    figure.add_argument("--out", default="figure9.png")
    figure.set_defaults(func=cmd_figure9)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "models", None):
        os.environ["NUCLEITUT_MODELS"] = str(Path(args.models).resolve())
    try:
        return args.func(args)
    except ValueError as error:  # unknown network names, profiles, bad data: no traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
