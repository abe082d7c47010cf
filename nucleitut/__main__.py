"""Command line: ``python -m nucleitut {train,evaluate,segment,finetune,figure9} ...``.

Examples::

    python -m nucleitut train M3 --profile quick      # evaluate and segment never train:
    python -m nucleitut train B1 --profile quick      # train every network they use first
    python -m nucleitut evaluate M3B1 M2 --tta both
    python -m nucleitut evaluate M6B4 --tune      # thresholds chosen on the validation split
    python -m nucleitut segment my_images/ my_labels/          # reference networks, never trains
    python -m nucleitut finetune my_annotated/ my_networks/    # reference networks trained further on yours
    python -m nucleitut segment my_images/ my_labels/ --models my_networks/
    python -m nucleitut figure9 --out figure9.png

The profile comes from ``--profile`` or ``NUCLEITUT_PROFILE`` (default ``quick``); data from
``--data`` or the profile's default (see ``nucleitut.data``). Trained networks live in
``--models`` (default: ``NUCLEITUT_MODELS``, else the user cache).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _profiles() -> list[str]:
    from .config import PROFILES

    return list(PROFILES)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", choices=_profiles(), help="default: $NUCLEITUT_PROFILE or quick")
    parser.add_argument("--models", help="folder of trained networks (default: $NUCLEITUT_MODELS or the user cache)")


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
    if args.augmentation is not None:
        if args.augmentation not in training.AUGMENTATION_SETS:
            print(f"error: unknown augmentation set {args.augmentation!r}; choose from {', '.join(training.AUGMENTATION_SETS)}",
                  file=sys.stderr)
            return 2
        overrides["augmentation"] = args.augmentation
    cfg = config.training_config(args.network, args.profile, **overrides)
    dataset = data.load_dataset(args.data, profile=cfg.profile)
    directory = Path(args.out) if args.out else config.model_dir(cfg.network, cfg.profile, cfg.seed, args.models)
    result = training.train(cfg, dataset, directory, devices=args.devices, workers=args.workers)
    print(
        f"Saved {cfg.network} to {directory / 'model.keras'}: {result.epochs} epochs, "
        f"best val_loss {result.best_val_loss:.4f}, {result.ms_per_crop:.1f} ms per crop"
    )
    return 0


def cmd_evaluate(args) -> int:
    from . import config, data, evaluation, records
    from .pipeline import Pipeline

    profile = config.get_profile(args.profile).name
    dataset = data.load_dataset(args.data, profile=profile)
    ids = None if args.ids == "test" else dataset.ids
    tta_values = {"no": [False], "yes": [True], "both": [False, True]}[args.tta]
    tune_on = None
    if args.tune:
        tune_on = dataset.split().val
        if not tune_on or args.ids == "all":
            print("error: --tune chooses post-processing settings on the validation split; "
                  "it needs one and cannot be combined with --ids all", file=sys.stderr)
            return 2
    shared = {}
    for name in args.pipelines:  # load every network first: a missing one fails before any scoring
        shared.update(Pipeline.trained(name, profile, args.seed, reuse=shared, root=args.models).networks)
    scored = evaluation.evaluate_pipelines(
        args.pipelines, dataset, ids=ids, tta_values=tta_values, profile=profile, networks=shared, tune_on=tune_on,
        seed=args.seed, root=args.models,
    )
    if args.classical:
        scored.append(evaluation.evaluate_classical(dataset, ids=ids, profile=profile))
    for record in scored:
        path = records.write_record(record, args.results)
        print(f"  record: {path}")
    return 0


def _positive(text: str) -> float:
    """argparse type for --diameter and --scale: a positive number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of pixels, got {text}")
    return value


def _inside(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def _intensity_source(raw, channel):
    """The image in its own units for the table's mean intensity (alpha dropped)."""
    if channel is not None and raw.ndim == 3:
        return raw[..., channel]
    if raw.ndim == 3 and raw.shape[-1] in (2, 4):
        return raw[..., :-1]
    return raw


def cmd_segment(args) -> int:
    """Segment every image of INPUT (a file or a folder) into OUTPUT; never trains.

    Exit status: 0 every image segmented, 1 some failed (each named on stderr), 2 usage
    error (nothing segmented)."""
    from . import config, images, outputs, sizing
    from .pipeline import Pipeline, SegmentOptions

    source, target = Path(args.input), Path(args.output)
    if not source.exists():
        print(f"error: {source}: no such file or folder", file=sys.stderr)
        return 2
    if source.is_dir() and _inside(target, source):
        print(f"error: output folder {target} is inside the input folder {source}; choose a folder outside it "
              "(its label images would be read as input next time)", file=sys.stderr)
        return 2
    files = [source] if source.is_file() else sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in images.IMAGE_SUFFIXES)
    if not files:
        print(f"error: {source}: no images ({', '.join(images.IMAGE_SUFFIXES)}) found", file=sys.stderr)
        return 2
    models = args.models
    if models is None and args.pipeline is not None:  # a pipeline without --models: the trained networks of the profile
        models = config.models_dir()
    try:
        options = SegmentOptions(
            tta=not args.no_tta, size=not args.no_size, diameter=args.diameter, scale=args.scale, channel=args.channel,
            normalize="never" if args.no_normalize else ("always" if args.normalize else "auto"), fuse_scales=args.fuse_scales,
            cost_bound=None if args.no_cost_bound else sizing.COST_BOUND,
        )
        pipeline = Pipeline.reference() if models is None else Pipeline.load(models, args.pipeline, args.profile)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Pipeline {pipeline.name} ({'reference networks' if models is None else models}); "
          f"training nucleus diameter {pipeline.training_diameter:.1f} px; {len(files)} image(s)")
    failures = []
    for path in files:
        try:
            existing = [p for p in outputs.output_paths(target, path.stem).values() if p.exists()]
            if existing and not args.overwrite:
                raise FileExistsError(f"{path}: output {existing[0]} exists; use --overwrite to replace it")
            raw = images.read_input(path)
            result = pipeline.segment(raw, options, name=str(path))
            outputs.write_outputs(result, target, path.stem, intensity=_intensity_source(raw, args.channel), overwrite=args.overwrite)
        except (images.DataError, FileExistsError, ValueError, OSError) as error:
            message = str(error) if str(path) in str(error) else f"{path}: {error}"
            print(f"failed: {message}", file=sys.stderr)
            failures.append(path)
            continue
        print(result.summary())
    if failures:
        print(f"{len(failures)} of {len(files)} images failed (see above); the others are in {target}", file=sys.stderr)
        return 1
    return 0


def cmd_finetune(args) -> int:
    """Fine-tune the reference networks on annotated images; store them as a reference folder."""
    from . import data, finetune

    out = Path(args.output)
    if (out / "reference.json").exists() and not args.overwrite:
        print(f"error: {out / 'reference.json'}: exists; use --overwrite to replace it", file=sys.stderr)
        return 2
    dataset = data.load_dataset(args.data)
    finetune.holdout_split(dataset.ids)  # at least two images of yours, checked before anything else is loaded
    count = len(dataset) if args.mix is None else args.mix
    mix = None
    if count > 0:
        try:
            source = data.load_dataset(args.mix_data or "full")
        except data.DataError as error:
            if args.mix_data:
                raise
            print(f"note: {error}; mixing in images of the shipped sample instead", file=sys.stderr)
            source = data.load_dataset("sample")
        mix = finetune.images_to_mix(source, count, exclude=dataset.ids)
        print(f"Mixing in {len(mix)} images of {source.describe()['name']} (its training and validation images) "
              f"with your {len(dataset)}, so that the networks keep what they know (--mix 0: none)")
    written = finetune.finetune_reference(dataset, out, epochs=args.epochs, lr_factor=args.lr_factor, reference=args.reference,
                                          val_fraction=args.val_fraction, mix=mix)
    print(f"Saved the fine-tuned networks to {written.parent}; segment with "
          f"`python -m nucleitut segment IMAGES OUTPUT --models {written.parent}`")
    return 0


def cmd_figure9(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from . import config, records

    folder = args.results or config.results_dir()
    found = records.read_records(folder, args.profile)
    if not found:
        print(f"error: {folder}: no results records" + (f" for the {args.profile} profile" if args.profile else ""), file=sys.stderr)
        return 2
    profiles = sorted({r["profile"] for r in found})
    fig, axes = plt.subplots(len(profiles), 1, figsize=(12, 4 * len(profiles)), squeeze=False)
    for ax, profile in zip(axes[:, 0], profiles):
        subset = [r for r in found if r["profile"] == profile]
        records.figure9(subset, ax=ax, title=f"{profile} profile ({subset[0]['n_images']} test images)")
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"Figure 9 from {len(found)} records -> {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .finetune import EPOCHS, LR_FACTOR

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
    train.add_argument("--augmentation",
                       help="augmentation set: none, a, b or robust (default: the network's Table 3 row; 'robust' is this project's, "
                            "not the paper's: nucleitut.training.AUGMENTATION_SETS)")
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
    evaluate.add_argument("--results", help="folder for the records (default: $NUCLEITUT_RESULTS, the clone's results/ or ./results)")
    evaluate.add_argument("--classical", action="store_true", help="also score the classical reference (record <profile>_classical.json)")
    evaluate.add_argument(
        "--tune", action="store_true",
        help="also score with thresholds and size priors chosen on the validation split (records *_tuned.json)",
    )
    evaluate.set_defaults(func=cmd_evaluate)

    segment = commands.add_parser(
        "segment", help="segment your own images with the reference networks (never trains)",
        description="Writes <name>_labels.png (16-bit) and _labels.tif, <name>_overlay.png and <name>_nuclei.csv "
        "per image and prints one summary line each. Exit status: 0 all segmented, 1 some failed, 2 usage error.",
    )
    segment.add_argument("input", help="an image file or a folder of images (PNG, TIFF, JPEG, BMP)")
    segment.add_argument("output", help="folder for the results (not inside the input folder)")
    segment.add_argument("--models", help="other networks: a reference folder, or trained networks (<DIR>/<NET>/model.keras "
                         "or <DIR>/<profile>/<NET>/model.keras); default: the shipped reference networks")
    segment.add_argument("--profile", choices=_profiles(), help="profile of trained networks in --models")
    segment.add_argument("--pipeline", help="for example M6B4 or M3 (default: the reference's; with only --pipeline, "
                         "the trained networks of $NUCLEITUT_MODELS)")
    segment.add_argument("--diameter", type=_positive, help="typical nucleus diameter in pixels (default: estimated per image)")
    segment.add_argument("--scale", type=_positive, help="rescale every image by this factor (overrides --diameter)")
    segment.add_argument("--channel", type=int, help="use this channel (0, 1, ...) of multi-channel images as grey")
    segment.add_argument("--no-tta", action="store_true", help="without test-time augmentation (about 4x faster)")
    segment.add_argument("--fuse-scales", action="store_true",
                         help="also predict at 0.71 and 1.41 times the chosen scale and fuse (3.5 times the pixels to predict; helps a little when the size estimate is off)")
    segment.add_argument("--no-cost-bound", action="store_true",
                         help="all TTA views and no cap on an estimated enlargement (by default an image the size estimate enlarges costs at most about twice its time at its own size)")
    segment.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    segment.add_argument("--no-size", action="store_true", help="segment at the native scale: better for images whose nuclei have the training images' size, fails on other sizes")
    segment.add_argument("--no-normalize", action="store_true", help="old intensity rule: min..max of each image (shows the failure on 16-bit images)")
    segment.add_argument("--normalize", action="store_true", help="stretch every image between its 1st and 99.8th percentiles (also bright 8-bit ones)")
    segment.add_argument("--overlay", action="store_true", help=argparse.SUPPRESS)  # older commands: overlays are always written
    segment.set_defaults(func=cmd_segment)

    tune = commands.add_parser(
        "finetune", help="train the reference networks further on your annotated images (Kaggle layout)",
        description="Starts from the reference networks' weights, trains each network on the annotated images "
        "with as many BBBC038v1 training images mixed in, and writes a reference folder for `segment --models`.",
    )
    tune.add_argument("data", help="folder or zip of annotated images: <id>/images/<id>.png and <id>/masks/*.png")
    tune.add_argument("output", help="folder for the fine-tuned networks")
    tune.add_argument("--epochs", type=int, default=EPOCHS, help=f"maximum number of epochs (default {EPOCHS})")
    tune.add_argument("--lr-factor", type=float, default=LR_FACTOR, help=f"times the reference's learning rate (default {LR_FACTOR})")
    tune.add_argument("--val-fraction", type=float, default=0.2, help="share of the images kept for validation (at least one)")
    tune.add_argument("--reference", help="reference folder to start from (default: the shipped one)")
    tune.add_argument("--mix", type=int, help="BBBC038v1 images to train on with yours, against forgetting them "
                      "(default: as many as yours; 0: none)")
    tune.add_argument("--mix-data", help="where the images to mix in come from (default: $NUCLEITUT_DATA, else the "
                      "BBBC038v1 download, about 80 MB once, else the shipped sample; 'sample': the 44 shipped images)")
    tune.add_argument("--overwrite", action="store_true", help="replace an existing reference folder in OUTPUT")
    tune.set_defaults(func=cmd_finetune)

    figure = commands.add_parser("figure9", help="draw the Figure 9 chart from the JSON records")
    figure.add_argument("--results", help="folder of the records (default as for evaluate)")
    figure.add_argument("--profile", choices=_profiles(), help="only records of this profile")
    figure.add_argument("--out", default="figure9.png")
    figure.set_defaults(func=cmd_figure9)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
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
