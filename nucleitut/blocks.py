"""Large images in blocks: labels of an image of any size with bounded memory.

Used by :class:`nucleitut.pipeline.Pipeline` (and so by ``segment``) for images larger than
:data:`BLOCK_SIDE` + 2 :data:`CONTEXT` pixels on a side (no image of BBBC038v1 is). Prediction
is tiled already (:func:`nucleitut.predict.predict_tiled`), but the post-processing
(marker map, watershed, labelling) needs the whole probability maps: for an 8000x8000 image
that is several GB (``results/benchmarks/README.md``). Here the image is cut into blocks that
each hold a core of :data:`BLOCK_SIDE` pixels and :data:`CONTEXT` pixels of the image around
it; each block is segmented on its own, and a nucleus is taken from the one block whose core
holds the top-left corner of its bounding box. StarDist's ``predict_instances_big`` works the
same way (block, context, an object belongs to one block); the corner rule is this project's
choice. Memory then grows with the block, not with the image, except for the image and the
label image themselves.

When every connected piece of the foreground fits in a block with its context, the labels are
those of the whole image (``tests/test_blocks.py``), except where the watershed breaks a tie
on a flat stretch of the networks' outputs, which it does by the pixels' order in the array.
A nucleus that reaches more than :data:`CONTEXT` pixels beyond its block's core is cut at the
edge of that block's context: nuclei must be smaller than the context, at the scale the
networks see (after the size handling, nuclei are about 16-24 px across there). Where two
blocks' nuclei overlap by a few pixels (their predictions differ slightly near a block's
edge), the pixels go to the nucleus written first.

>>> from skimage.measure import label
>>> image = np.zeros((10, 10), bool); image[1:3, 1:3] = image[5:9, 4:6] = True
>>> whole = label(image, connectivity=1)
>>> in_blocks = label_in_blocks(lambda block: label(block, connectivity=1), image, block=4, context=3)
>>> bool((in_blocks == whole).all())
True
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import ndimage
from skimage.segmentation import relabel_sequential

__all__ = ["BLOCK_SIDE", "CONTEXT", "needs_blocks", "block_positions", "label_in_blocks"]

#: Side of a block's core, pixels (this project's choice: a block of 2304x2304 with its
#: context costs about 0.4 GB during the post-processing of a two-network pipeline).
BLOCK_SIDE = 2048
#: Pixels of the image around a block's core that its segmentation sees (this project's
#: choice: several times a nucleus at the networks' scale, and more than the networks'
#: tile overlap).
CONTEXT = 128


def needs_blocks(shape: tuple[int, ...], block: int = BLOCK_SIDE, context: int = CONTEXT) -> bool:
    """True when an image of this shape is segmented in blocks (a side over ``block + 2 context``)."""
    return max(shape[:2]) > block + 2 * context


def block_positions(length: int, block: int = BLOCK_SIDE, context: int = CONTEXT) -> list[tuple[int, int, int, int]]:
    """Blocks along one axis: ``(core_from, core_to, from, to)``.

    Cores partition ``[0, length)``; a block reads ``[from, to)``, its core and up to
    ``context`` pixels on each side.

    >>> block_positions(10, block=4, context=3)
    [(0, 4, 0, 7), (4, 8, 1, 10), (8, 10, 5, 10)]
    """
    if block < 1 or context < 0:
        raise ValueError(f"block must be >= 1 and context >= 0, got {block} and {context}")
    return [(start, min(start + block, length), max(0, start - context), min(length, start + block + context))
            for start in range(0, length, block)]


def label_in_blocks(
    label_fn: Callable[[np.ndarray], np.ndarray],
    image: np.ndarray,
    block: int = BLOCK_SIDE,
    context: int = CONTEXT,
) -> np.ndarray:
    """Instance labels of ``image`` from ``label_fn`` applied block by block.

    Parameters
    ----------
    label_fn : callable
        Maps an image (a block of ``image``, shape ``(h, w, ...)``) to int labels ``(h, w)``.
    image : ndarray, shape (H, W) or (H, W, C)
    block, context : int
        Core side and context of the blocks (:func:`block_positions`).

    Returns
    -------
    ndarray of int32, shape (H, W)
        Labels ``1..n``; a nucleus comes from the block whose core holds the top-left
        corner of its bounding box.
    """
    height, width = image.shape[:2]
    out = np.zeros((height, width), np.int32)
    next_id = 1
    for row_from, row_to, top, bottom in block_positions(height, block, context):
        for col_from, col_to, left, right in block_positions(width, block, context):
            labels = np.asarray(label_fn(image[top:bottom, left:right]))
            if labels.shape != (bottom - top, right - left):
                raise ValueError(f"label_fn returned shape {labels.shape} for a block of {(bottom - top, right - left)}")
            objects = ndimage.find_objects(labels)
            keep = np.zeros(len(objects) + 1, np.int32)
            for index, slices in enumerate(objects, start=1):
                if slices is None:
                    continue
                y, x = top + slices[0].start, left + slices[1].start
                if row_from <= y < row_to and col_from <= x < col_to:
                    keep[index] = next_id
                    next_id += 1
            mapped = keep[labels]
            region = out[top:bottom, left:right]
            free = (mapped > 0) & (region == 0)
            region[free] = mapped[free]
    return relabel_sequential(out)[0].astype(np.int32, copy=False)
