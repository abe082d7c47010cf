"""Does fine-tuning on a few annotated images of the weak type rescue it? Stained tissue.

The shipped reference networks score worst on stained tissue (experiments/LAB_NOTES.md).
This check does what chapter 9 tells a user to do when segmentation still fails: annotate
images of the failing kind and fine-tune (``python -m nucleitut finetune``,
:func:`nucleitut.finetune.finetune_reference`). The "annotated images" are the stained-tissue
images of the training and validation split (by the rule of
:func:`nucleitut.images.image_type`); the fine-tuned pipeline and the shipped one are then
scored on the 120 test images (TTA, size and intensity handling as ``segment`` does;
``--fluorescence N``: only the first N fluorescence ones), reported by type, so both the
gain on tissue and any loss on fluorescence show. ``--as-is`` fine-tunes on the images as
they are instead of rescaled to one nucleus size; ``--mix N`` adds N training images of the
other types, against forgetting them. Usage::

    NUCLEITUT_DATA=../shared/data/stage1_train.zip python -m experiments.check_finetune_tissue \\
        --networks ../tissue_networks --out experiments/results/finetune_tissue.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from nucleitut import data, finetune, images, metrics, pretrained, records, segment


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--networks", required=True, help="folder for the fine-tuned networks (reused when complete)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--kind", default="tissue", help="image type to fine-tune on (default tissue)")
    parser.add_argument("--epochs", type=int, default=finetune.EPOCHS)
    parser.add_argument("--as-is", action="store_true", help="fine-tune on the images as they are (no size normalisation)")
    parser.add_argument("--mix", type=int, default=0,
                        help="add this many training/validation images of the other types (drawn with seed 0) against forgetting")
    parser.add_argument("--fluorescence", type=int, default=None, help="score only the first N fluorescence test images (and every other one)")
    parser.add_argument("--reference-from", help="an earlier output of this check: take the shipped networks' rows from it")
    args = parser.parse_args(argv)

    dataset = data.load_dataset(profile="cpu")
    split = dataset.split()
    kinds = {i: images.image_type(dataset.get(i)[0]) for i in dataset.ids}
    annotated = [i for i in split.train + split.val if kinds[i] == args.kind]
    mixed = finetune.images_to_mix(dataset, args.mix, exclude=annotated).ids  # the other types: every image of the kind is excluded
    networks = Path(args.networks)
    started = time.perf_counter()
    if not (networks / "reference.json").exists():
        finetune.finetune_reference(dataset.subset(annotated), networks, epochs=args.epochs, size_normalised=not args.as_is,
                                    mix=dataset.subset(mixed))
    tuning_seconds = time.perf_counter() - started
    out = {"what": __doc__.split("\n\n")[0], "kind": args.kind, "annotated_images": len(annotated), "mixed_in": len(mixed),
           "size_normalised": not args.as_is,
           "finetuned": json.loads((networks / "reference.json").read_text())["trained"], "tta": True,
           "finetune_seconds": tuning_seconds, "rows": {}}
    if Path(args.out).exists():
        out["rows"] = json.loads(Path(args.out).read_text()).get("rows", {})
    pipelines = {"reference": pretrained.load_networks(), "finetuned": pretrained.load_networks(networks)}
    earlier = json.loads(Path(args.reference_from).read_text())["rows"] if args.reference_from else {}
    fluorescence = [i for i in split.test if kinds[i] == "fluorescence"]
    scored = [i for i in split.test if kinds[i] != "fluorescence" or i in fluorescence[: args.fluorescence]]
    for image_id in scored:
        if image_id in out["rows"]:
            continue
        image, labels = dataset.get(image_id)
        row = {"type": kinds[image_id]}
        if image_id in earlier:
            row.update({k: earlier[image_id][k] for k in ("reference", "reference_scale")})
        for name, loaded in pipelines.items():
            if name in row:
                continue
            result = segment.segment_image(image, networks=loaded, name=image_id[:10])
            row[name] = metrics.kaggle_score(labels, result.labels)
            row[name + "_scale"] = result.scale
        out["rows"][image_id] = row
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
        print(f"{image_id[:10]} {row['type']:13s} reference {row['reference']:.3f}  fine-tuned {row['finetuned']:.3f}", flush=True)

    rows = out["rows"].values()
    summary = {"all": {"n": len(rows)}}
    for kind in sorted({r["type"] for r in rows}):
        summary[kind] = {"n": sum(r["type"] == kind for r in rows)}
    for name in pipelines:
        summary["all"][name] = float(np.mean([r[name] for r in rows]))
        for kind in summary:
            if kind != "all":
                summary[kind][name] = float(np.mean([r[name] for r in rows if r["type"] == kind]))
    arguments = ["$NETWORKS" if a == args.networks else a for a in (sys.argv[1:] if argv is None else argv)]
    out.update(summary=summary, command="python -m experiments.check_finetune_tissue " + " ".join(arguments), **records.environment())
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
