"""Pack a Kaggle-layout data set compactly for machines that only take small uploads.

Usage::

    python tools/make_pack.py ../shared/data/stage1_train.zip .carry/stage1_train_pack.zip
    python tools/make_pack.py ../shared/data/stage1_train.zip .carry/pack_without_sample.zip --leave-out-sample
    python tools/make_pack.py --add-sample .carry/pack_without_sample.zip /tmp/stage1_train_pack.zip

The pack is a zip that ``nucleitut.data`` reads with the same decoded result: per image a
gray or RGB PNG (the constant alpha channel and repeated gray channels dropped) and one
16-bit instance label image ``<id>/labels/<id>.png`` merged from the masks (hole closing
still happens when the pack is loaded). The script checks that the pack decodes to
identical arrays.

``--leave-out-sample`` leaves out the images that the package's own sample
(``nucleitut/sample/bbbc038_sample.zip``, 44 images of the same data) already holds, 4.4 MB
less to upload; ``--add-sample`` puts them back on the other machine. The first checks that
the pack completed this way decodes to the source's arrays.
"""

import argparse
import tempfile
import zipfile
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from nucleitut import data

SAMPLE = Path(data.__file__).parent / "sample" / "bbbc038_sample.zip"


def _png(array: np.ndarray) -> bytes:
    return iio.imwrite("<bytes>", array, extension=".png", optimize=True)


def _write(pack: zipfile.ZipFile, dataset: data.Dataset, skip=()) -> None:
    for image_id, image, labels in zip(dataset.ids, dataset.images, dataset.labels):
        if image_id in skip:
            continue
        gray = bool(np.all(image == image[..., :1]))
        pack.writestr(f"{image_id}/images/{image_id}.png", _png(image[..., 0] if gray else image))
        pack.writestr(f"{image_id}/labels/{image_id}.png", _png(labels.astype(np.uint16)))


def _raw(source) -> data.Dataset:
    return data.load_dataset(source, closing_radius=-1, use_cache=False, verbose=False)


def add_sample(pack_path, target) -> None:
    """Copy ``pack_path`` to ``target`` with the sample's images added."""
    sample = _raw(SAMPLE)
    with zipfile.ZipFile(pack_path) as pack:
        if {name.split("/")[0] for name in pack.namelist()} & set(sample.ids):
            raise SystemExit(f"{pack_path}: already holds images of the sample")
        with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as out:
            for info in pack.infolist():
                out.writestr(info, pack.read(info))
            _write(out, sample)


def _check_identical(source, target) -> None:
    original = data.load_dataset(source, use_cache=False, verbose=False)
    packed = data.load_dataset(target, use_cache=False, verbose=False)
    assert original.ids == packed.ids
    for a, b, c, d in zip(original.images, packed.images, original.labels, packed.labels):
        assert np.array_equal(a, b) and np.array_equal(c, d)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="a Kaggle-layout data set (or, with --add-sample, a pack)")
    parser.add_argument("target", help="the pack to write")
    parser.add_argument("--leave-out-sample", action="store_true")
    parser.add_argument("--add-sample", action="store_true")
    args = parser.parse_args()
    if args.add_sample:
        add_sample(args.source, args.target)
        print(f"{args.target}: {args.source} with the sample's images added")
        return
    raw = _raw(args.source)
    skip = set(_raw(SAMPLE).ids) if args.leave_out_sample else set()
    if skip - set(raw.ids):
        raise SystemExit(f"{args.source}: lacks images of the sample; cannot leave them out")
    with zipfile.ZipFile(args.target, "w", zipfile.ZIP_STORED) as pack:
        _write(pack, raw, skip)
    with tempfile.TemporaryDirectory() as tmp:
        complete = Path(tmp) / "complete.zip"
        if skip:
            add_sample(args.target, complete)
        _check_identical(args.source, complete if skip else args.target)
    print(f"{args.target}: identical decoded data" + (" once --add-sample puts the sample back" if skip else ""))


if __name__ == "__main__":
    main()
