"""Pack a Kaggle-layout data set compactly for machines that only take small uploads.

Usage::

    python tools/make_pack.py ../shared/data/stage1_train.zip .carry/stage1_train_pack.zip

The pack is a zip that ``nucleitut.data`` reads with the same decoded result: per image a
gray or RGB PNG (the constant alpha channel and repeated gray channels dropped) and one
16-bit instance label image ``<id>/labels/<id>.png`` merged from the masks (hole closing
still happens when the pack is loaded). The script checks that the pack decodes to
identical arrays.
"""

import sys
import zipfile

import imageio.v3 as iio
import numpy as np

from nucleitut import data


def _png(array: np.ndarray) -> bytes:
    return iio.imwrite("<bytes>", array, extension=".png", optimize=True)


def main(source: str, target: str) -> None:
    raw = data.load_dataset(source, closing_radius=-1, use_cache=False, verbose=False)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as pack:
        for image_id, image, labels in zip(raw.ids, raw.images, raw.labels):
            gray = bool(np.all(image == image[..., :1]))
            pack.writestr(f"{image_id}/images/{image_id}.png", _png(image[..., 0] if gray else image))
            pack.writestr(f"{image_id}/labels/{image_id}.png", _png(labels.astype(np.uint16)))
    original = data.load_dataset(source, use_cache=False, verbose=False)
    packed = data.load_dataset(target, use_cache=False, verbose=False)
    assert original.ids == packed.ids
    for a, b, c, d in zip(original.images, packed.images, original.labels, packed.labels):
        assert np.array_equal(a, b) and np.array_equal(c, d)
    print(f"{target}: identical decoded data")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
