"""Large images in blocks (nucleitut.blocks): the same labels as the whole image, with every
call on a bounded piece. (The size estimate's windows: tests/test_sizing.py.)"""

import numpy as np
import pytest
from skimage.draw import disk
from skimage.measure import label

from nucleitut import blocks, postprocess

from test_pipeline import brightness_pipeline, discs_image


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True when two label images split the pixels the same way (ids may differ)."""
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return (a > 0).sum() == (b > 0).sum() and pairs.shape[1] == len(np.unique(a)) == len(np.unique(b))


def touching_pairs_probs(shape=(300, 340), radius=7, seed=0):
    """Three-class probabilities of touching disc pairs scattered over the image (a border
    where the two discs of a pair meet), as a border network would give them."""
    rng = np.random.default_rng(seed)
    obj = np.zeros(shape)
    border = np.zeros(shape)
    for y in range(radius + 2, shape[0] - 3 * radius, 3 * radius + 5):
        for x in range(radius + 2, shape[1] - 4 * radius, 4 * radius + 7):
            y1, x1 = y + rng.integers(0, 4), x + rng.integers(0, 4)
            first, second = disk((y1 + radius, x1 + radius), radius, shape=shape), disk((y1 + radius, x1 + 3 * radius), radius, shape=shape)
            obj[first] = obj[second] = 0.9
            border[y1 : y1 + 2 * radius, x1 + 2 * radius - 1 : x1 + 2 * radius + 2] = 0.95
    obj = np.where(border > 0, 0.05, obj)
    probs = np.stack([1 - obj - border * (obj == 0.05), obj, border], axis=-1)
    # a little noise, as in a network's output: no plateaus, whose ties the watershed would
    # break by the pixels' order in the array (which differs between a block and the image)
    return (probs + rng.uniform(0, 1e-3, probs.shape)).clip(0, 1)


def test_blocks_partition_the_image():
    for length, block, context in [(10, 4, 3), (2048, 2048, 128), (5000, 2048, 128), (1, 8, 2)]:
        positions = blocks.block_positions(length, block, context)
        cores = [(a, b) for a, b, _, _ in positions]
        assert cores[0][0] == 0 and cores[-1][1] == length
        assert all(prev[1] == nxt[0] for prev, nxt in zip(cores, cores[1:]))
        assert all(lo == max(0, a - context) and hi == min(length, b + context) for a, b, lo, hi in positions)


def test_connected_components_in_blocks_equal_the_whole_image():
    rng = np.random.default_rng(3)
    image = np.zeros((230, 260), bool)
    for _ in range(120):
        image[disk(tuple(rng.integers(0, (230, 260))), rng.uniform(2, 9), shape=image.shape)] = True
    whole = label(image, connectivity=1)
    seen = []

    def label_fn(block):
        seen.append(block.shape)
        return label(block, connectivity=1)

    # clusters of discs grow up to ~40 px: a context of 48 holds them
    in_blocks = blocks.label_in_blocks(label_fn, image, block=64, context=48)
    assert same_partition(in_blocks, whole)
    assert in_blocks.dtype == np.int32 and in_blocks.max() == whole.max()
    assert len(seen) == 4 * 5 and max(h * w for h, w in seen) <= (64 + 2 * 48) ** 2


def test_watershed_in_blocks_equals_the_whole_image_and_keeps_pairs_apart_across_block_edges():
    probs = touching_pairs_probs()
    whole = postprocess.watershed_labels(probs)
    assert whole.max() > 40
    in_blocks = blocks.label_in_blocks(postprocess.watershed_labels, probs, block=50, context=40)
    assert same_partition(in_blocks, whole)


def test_a_nucleus_larger_than_the_context_is_cut_not_lost_elsewhere():
    image = np.zeros((40, 40), bool)
    image[5:35, 5:35] = True  # 30 px across, context 4
    out = blocks.label_in_blocks(lambda b: label(b), image, block=10, context=4)
    # taken from the block whose core holds its corner: cut at that block's context
    assert out.max() == 1 and (out > 0).sum() == (14 - 5) ** 2


def test_label_fn_of_the_wrong_shape_is_an_error():
    with pytest.raises(ValueError, match="returned shape"):
        blocks.label_in_blocks(lambda b: np.zeros((3, 3), np.int32), np.zeros((20, 20)), block=8, context=2)


def test_a_large_image_is_segmented_in_blocks_with_the_same_nuclei(monkeypatch):
    image, count = discs_image(17, shape=(2600, 300))
    pipe = brightness_pipeline()
    assert blocks.needs_blocks(image.shape)
    pieces = []
    original = blocks.label_in_blocks

    def recording(label_fn, array, **kwargs):
        return original(lambda block: pieces.append(block.shape[:2]) or label_fn(block), array, **kwargs)

    monkeypatch.setattr(blocks, "label_in_blocks", recording)
    result = pipe.segment(image, tta=False, size=False)
    assert result.count == count
    assert same_partition(result.labels, label(image > 100, connectivity=1))
    assert len(pieces) > 1 and max(h for h, _ in pieces) < image.shape[0]  # in blocks, none the whole image
