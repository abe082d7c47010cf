"""Fine-tune the reference networks on images rescaled to one nucleus size (size-normalised).

The shipped reference networks learned every nucleus size of BBBC038v1 at once (the paper's
way: images as they are). Their size handling must therefore guess which scale suits an
image, and on halved test images it guesses badly (experiments/LAB_NOTES.md). Networks
trained on images that all show nuclei of one diameter (Cellpose trains this way) only need
the image rescaled to that diameter, which a size estimate gives directly. This tool starts
from the reference networks' weights and trains each network for a few more epochs on the
training images rescaled so that their true typical nucleus diameter is the training median
(``TrainingConfig.size_target``; :func:`nucleitut.sizing.normalize_size`), validation images
likewise; everything else as the reference's configuration, with the learning rate lowered
(``--lr-factor``; fine-tuning, this project's choice). Usage::

    NUCLEITUT_DATA=../shared/data/stage1_train.zip python -m experiments.finetune_reference \\
        --out <models folder> --epochs 3

The networks go to ``<out>/<profile>/<NET>/`` (the layout of ``NUCLEITUT_MODELS``), so
``python -m nucleitut evaluate`` and ``tools/make_reference.py`` read them; an interrupted run
resumes (training's own backup). ``--as-is`` is the control: the same fine-tuning on the
images as they are, to tell the size normalisation from the extra epochs. ``experiments/check_size_normalized.py`` scores them.
``--as-is --augmentation wide`` fine-tunes on the images as they are with this project's
scale augmentation (0.5-2, :data:`nucleitut.training.AUGMENTATION_SETS`), for networks that
hold up when the size handling misses the best scale.
"""

from __future__ import annotations

import argparse
import sys

from nucleitut import data, finetune, pretrained, training


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="models folder (networks go to OUT/<profile>/<NET>/)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr-factor", type=float, default=finetune.LR_FACTOR, help="times the reference's learning rate")
    parser.add_argument("--networks", nargs="*", help="default: both networks of the reference pipeline")
    parser.add_argument("--as-is", action="store_true",
                        help="the control: the same fine-tuning on the images as they are (no size normalisation)")
    parser.add_argument("--augmentation", choices=sorted(training.AUGMENTATION_SETS),
                        help="augmentation set (default: the reference's own)")
    args = parser.parse_args(argv)

    models, info = pretrained.load_reference()
    target = info["nucleus_size"]["median_diameter"]
    dataset = data.load_dataset(profile=info["profile"])
    chosen = {name: models[name] for name in args.networks or list(models)}
    finetune.finetune_networks(chosen, dataset, args.out, dataset.split(), args.epochs, args.lr_factor,
                               size_target=None if args.as_is else target, augmentation=args.augmentation)
    return 0


if __name__ == "__main__":
    sys.exit(main())
