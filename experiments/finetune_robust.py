"""Fine-tune the shipped reference networks with the ``robust`` augmentation set (issue 31).

The reference networks (M3B1, cpu profile's size) were trained on BBBC038v1 with no
augmentation. Images of other labs differ from it in ways the data set rarely shows: dimmer,
offset or low-contrast 8-bit images, bright backgrounds, noise, blur, JPEG compression, other
stains. This tool starts from the reference weights and trains each network for a few more
epochs on the training images with :data:`nucleitut.training.AUGMENTATION_SETS` ``robust``
(this project's set, not the paper's), validation images as they are; everything else as the
reference's configuration, the learning rate times ``--lr-factor`` under the reference's
cosine schedule, restarted over the new epochs. Fine-tuning instead of training from scratch
is this project's choice for a machine without a GPU (2 cores: about 2 to 3 minutes per epoch
per network); ``tools/reference_gpu.sh`` trains from scratch where a GPU is lent. Usage::

    NUCLEITUT_DATA=../shared/data/stage1_train.zip python -m experiments.finetune_robust \\
        --out <models folder> --epochs 8 --lr-factor 0.2

The networks go to ``<out>/<profile>/<NET>/`` (the layout of ``NUCLEITUT_MODELS``); an
interrupted run resumes there (training's own backup). Stored as a reference folder with the
shipped reference's post-processing settings::

    python tools/make_reference.py --models <out> --data ../shared/data/stage1_train.zip \
        --out <out>/reference --settings-from-record \
        --record results/reference_2026-11-28/cpu_M3B1_tta_tuned.json --fine-tuned-from nucleitut/reference

they are compared with the shipped reference on the validation images, as they are and
perturbed: ``python -m benchmarks.bench_robustness --split val --limit 40 --models <out>/reference``.
"""

from __future__ import annotations

import argparse
import sys

from nucleitut import data, finetune, pretrained


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="models folder (networks go to OUT/<profile>/<NET>/)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--lr-factor", type=float, default=0.2, help="times the reference's learning rate")
    parser.add_argument("--networks", nargs="*", help="default: both networks of the reference pipeline")
    args = parser.parse_args(argv)

    models, info = pretrained.load_reference()
    dataset = data.load_dataset(profile=info["profile"])
    chosen = {name: models[name] for name in args.networks or list(models)}
    finetune.finetune_networks(chosen, dataset, args.out, dataset.split(), args.epochs, args.lr_factor, augmentation="robust")
    return 0


if __name__ == "__main__":
    sys.exit(main())
