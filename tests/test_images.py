"""Tests of nucleitut.images: reading image files and the rules that turn them into RGB uint8."""

import os
import struct
import zlib

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from nucleitut import images


def _palette_png(indices: np.ndarray, palette) -> bytes:
    """A colour-type-3 (palette) PNG, written by hand: imageio writes palettes only from its own."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    height, width = indices.shape
    rows = b"".join(b"\x00" + row.tobytes() for row in indices.astype(np.uint8))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0))
        + chunk(b"PLTE", bytes(np.asarray(palette, np.uint8).ravel()))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def test_gray_rgba_and_16_bit_images_become_rgb_uint8():
    gray = np.array([[0, 10], [20, 30]], np.uint8)
    assert images.to_rgb_uint8(gray).shape == (2, 2, 3)
    assert np.array_equal(images.to_rgb_uint8(gray)[..., 2], gray)
    rgba = np.dstack([gray, gray + 1, gray + 2, np.full_like(gray, 255)])
    assert np.array_equal(images.to_rgb_uint8(rgba), rgba[..., :3])
    sixteen = np.array([[100, 4195]], np.uint16)
    assert images.to_rgb_uint8(sixteen)[0, :, 0].tolist() == [0, 255]


def test_float_bool_constant_and_gray_alpha_rules():
    assert images.to_rgb_uint8(np.array([[0.0, 0.5, 1.0]], np.float32))[0, :, 1].tolist() == [0, 128, 255]
    assert images.to_rgb_uint8(np.array([[-1.0, 1.0, 3.0]]))[0, :, 0].tolist() == [0, 128, 255]  # outside [0, 1]: min..max
    assert images.to_rgb_uint8(np.array([[True, False]]))[0, :, 2].tolist() == [255, 0]
    assert not images.to_rgb_uint8(np.full((2, 2), 700, np.uint16)).any()
    gray_alpha = np.dstack([np.array([[5, 6]], np.uint8), np.array([[0, 255]], np.uint8)])
    assert images.to_rgb_uint8(gray_alpha).tolist() == [[[5, 5, 5], [6, 6, 6]]]
    with pytest.raises(images.DataError, match="cells.png: unsupported image shape"):
        images.to_rgb_uint8(np.zeros((2, 2, 5)), "cells.png")


def test_files_are_read_as_stored_and_converted_by_the_same_rules(tmp_path):
    sixteen = np.array([[1000, 1500], [2000, 3000]], np.uint16)
    iio.imwrite(tmp_path / "gray16.png", sixteen)
    tifffile.imwrite(tmp_path / "gray16.tif", sixteen)
    for name in ("gray16.png", "gray16.tif"):
        stored = images.read_input(tmp_path / name)
        assert stored.dtype == np.uint16 and np.array_equal(stored, sixteen)
        assert images.to_rgb_uint8(images.read_input(tmp_path / name))[..., 0].tolist() == [[0, 64], [128, 255]]
    rgba = np.dstack([np.full((3, 4), v, np.uint8) for v in (10, 20, 30, 40)])
    iio.imwrite(tmp_path / "rgba.png", rgba)
    assert np.array_equal(images.to_rgb_uint8(images.read_input(tmp_path / "rgba.png")), rgba[..., :3])
    channels_first = np.stack([sixteen, sixteen // 2])
    tifffile.imwrite(tmp_path / "cyx.tif", channels_first, metadata={"axes": "CYX"})
    assert images.read_input(tmp_path / "cyx.tif").shape == (2, 2, 2)


def test_palette_png_gets_its_colours():
    palette = [(0, 0, 0), (255, 0, 0), (0, 200, 50)]
    data = _palette_png(np.array([[0, 1], [2, 1]]), palette)
    decoded = images.decode_image(data, "archive.zip:id/images/id.png")
    assert decoded.dtype == np.uint8 and decoded.tolist() == [[[0, 0, 0], [255, 0, 0]], [[0, 200, 50], [255, 0, 0]]]


def test_broken_and_missing_files_are_named(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    with pytest.raises(images.DataError, match="broken.png: cannot decode image"):
        images.to_rgb_uint8(images.read_input(tmp_path / "broken.png"))
    with pytest.raises(images.DataError, match="cut.png: cannot decode image"):
        noise = np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)
        images.decode_image(iio.imwrite("<bytes>", noise, extension=".png")[:200], "cut.png")
    with pytest.raises(images.DataError, match="gone.png: no such file"):
        images.read_input(tmp_path / "gone.png")
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((5, 8, 8), np.uint8))
    with pytest.raises(images.DataError, match="stack.tif: a stack or multi-page TIFF"):
        images.to_rgb_uint8(images.read_input(tmp_path / "stack.tif"))


def test_auto_rule_stretches_dim_offset_and_low_contrast_grey_images_only():
    rng = np.random.default_rng(0)
    nuclei = np.zeros((64, 64), np.uint8)
    nuclei[10:30, 10:30] = 200
    nuclei[40:60, 35:55] = 150
    nuclei = np.clip(nuclei + rng.integers(0, 10, nuclei.shape), 0, 255).astype(np.uint8)
    assert not images.needs_stretch(nuclei)
    offset = (40 + nuclei * 0.2).astype(np.uint8)  # background 40-42, nuclei 70-80
    flat = (nuclei * 0.05).astype(np.uint8)  # range 10, above the dim level
    assert images.needs_stretch(offset) and images.needs_stretch(flat)
    assert images.needs_stretch((nuclei * 0.03).astype(np.uint8))  # dim
    # Grey images with a bright background (bright-field) are never stretched by it; colour
    # ones when their contrast is low.
    assert not images.needs_stretch(255 - flat)
    tissue = np.stack([255 - nuclei // 2, 255 - nuclei, 255 - nuclei // 3], axis=-1).astype(np.uint8)
    assert not images.needs_stretch(tissue) and images.needs_stretch((tissue * 0.1).astype(np.uint8))
    rgb, how = images.prepare_image(offset)
    assert how == "percentiles 1-99.8 to 3-88" and rgb.max() == images.FLUORESCENCE_LEVELS[1]
    assert images.prepare_image(nuclei)[1] == "as is (8-bit)"


@pytest.mark.fulldata
@pytest.mark.skipif(not os.environ.get("NUCLEITUT_DATA"), reason="NUCLEITUT_DATA does not point at the full data set")
def test_no_image_of_the_data_set_is_stretched_by_the_auto_rule():
    from nucleitut import data

    dataset = data.load_dataset(os.environ["NUCLEITUT_DATA"], verbose=False)
    stretched = [i for i in dataset.ids if images.needs_stretch(dataset.get(i)[0])]
    assert stretched == [], f"{len(stretched)} BBBC038v1 images would change: {stretched[:3]}"
