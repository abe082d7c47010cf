"""Reading any image file and turning it into the RGB ``uint8`` image the networks take.

Book chapters: *The data* (image types) and *Your own images* (intensities, channels).
:mod:`nucleitut.data` reads the BBBC038v1 PNG files with these functions; the command line
(``python -m nucleitut segment``) reads users' files with them.

Reading (:func:`read_input`, :func:`decode_image`): PNG, JPEG and BMP through
:mod:`imageio.v3` (the first frame; palette images get their palette's colours, no gamma
correction, no EXIF rotation), TIFF through ``tifffile`` (the first series; channel-first
``CYX`` TIFFs are moved to channel-last; stacks and multi-page TIFFs are refused). The array
comes back as stored: its dtype and channels are unchanged.

Conversion to RGB ``uint8`` (:func:`to_rgb_uint8`, with :mod:`skimage.color`,
:mod:`skimage.util` and :mod:`skimage.exposure`), the rules every image of this project
follows:

* (H, W) and (H, W, 1) grey -> three equal channels;
* (H, W, 2) grey + alpha -> the grey channel three times; (H, W, 4) RGBA -> RGB: the alpha
  channel is dropped, never blended;
* ``uint8`` is kept as it is, booleans become 0 and 255;
* other integer types (for example 16-bit) are rescaled linearly from the image's own
  [min, max] to [0, 255], rounded (microscopes rarely fill the 16-bit range, so a fixed
  division by 65535 would give black images); a constant image becomes black;
* floats in [0, 1] are multiplied by 255 and rounded, other floats rescaled from [min, max].

Intensities for the networks (:func:`prepare_image`): 8-bit images like those of BBBC038v1
follow the rules above; 16-bit, float and dim, offset or low-contrast 8-bit images
(:func:`needs_stretch`) are first stretched between their 1st and
99.8th percentiles (:func:`percentile_stretch`), so that a few hot pixels do not darken the
whole image; a grey image with a dark background (fluorescence) then goes to the grey levels of
the fluorescence training images (:data:`FLUORESCENCE_LEVELS`).

Every error is a :class:`DataError` whose message names the file and the problem.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePath

import imageio.v3 as iio
import numpy as np
from skimage import color, exposure, util

__all__ = [
    "DataError",
    "read_input",
    "decode_image",
    "to_rgb_uint8",
    "percentile_stretch",
    "prepare_image",
    "check_real",
    "image_type",
    "PERCENTILES",
    "FLUORESCENCE_LEVELS",
    "DIM_LEVEL",
    "OFFSET_LEVEL",
    "CONTRAST_LEVEL",
    "COLOUR_CONTRAST_LEVEL",
    "needs_stretch",
    "MIN_SIDE",
    "IMAGE_SUFFIXES",
]

#: File suffixes the command line picks up in an input folder.
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
#: Percentiles mapped to 0 and 255 by :func:`percentile_stretch` (StarDist's defaults).
PERCENTILES = (1.0, 99.8)
#: An 8-bit image whose 99.8th percentile is below this is stretched like a 16-bit one.
#: This project's choice: the darkest of the 664 BBBC038v1 images reaches 16 at its 99.8th
#: percentile, so no image of the data set the networks were trained and scored on changes.
DIM_LEVEL = 12
#: A grey 8-bit image with a dark background whose 1st percentile (its background) lies above
#: this is stretched like a 16-bit one: the brightest background among the 541 fluorescence
#: images of BBBC038v1 (all splits, :func:`image_type`) sits at 24, so no image of the data
#: set changes. This project's choice, for other labs' images with a background offset (issue
#: 31: such low-contrast images were segmented badly as they were). 30 validation images made
#: low-contrast (30 + 0.2 x intensities), reference pipeline without TTA: 0.270 with the rule,
#: 0.104 without (``experiments/choose_intensity_rule.py``). Inverting grey images with a
#: bright background as well was rejected there: it lifted inverted fluorescence images (0.042
#: -> 0.277) but ruined the 16 bright-field images of BBBC038v1 (0.443 -> 0.062).
OFFSET_LEVEL = 24
#: ... and so is one whose range (99.8th minus 1st percentile) lies below this: the smallest
#: range among the same 541 images is 15.
CONTRAST_LEVEL = 15
#: A colour 8-bit image (stained tissue) whose range lies below this is stretched too: the
#: smallest range among the 107 colour images of BBBC038v1 is 67. On 30 validation images
#: (14 of them tissue) dimmed to a tenth, reference pipeline without TTA: 0.300 with this rule
#: and the two above, 0.192 with those two alone, 0.188 with neither; the images as they are
#: keep 0.4385 (``experiments/choose_intensity_rule.py``, ``intensity_rule_validation_dim.json``).
#: Stretching every fluorescence-like image as well (not only offset or low-contrast ones) cost
#: its images as they are 0.012 there, so it is not done.
COLOUR_CONTRAST_LEVEL = 67
#: Grey levels that the 1st and 99.8th percentiles of a stretched grey image with a dark
#: background (fluorescence) are mapped to: the medians of those percentiles over the 346
#: fluorescence images among the 435 training images of BBBC038v1 (3 and 88; measured with
#: ``image_type`` on the training split). Stretching such an image to 0..255 made it about
#: three times brighter than the images the networks learned from, and the reference
#: pipeline scored 0.095 lower on 16-bit versions of the fluorescence test images
#: (results/benchmarks). This project's choice; colour and bright-background images are
#: stretched to 0..255.
FLUORESCENCE_LEVELS = (3, 88)
#: Smallest image side accepted (a U-Net needs some context; 1x1 images are errors).
MIN_SIDE = 16


class DataError(ValueError):
    """Bad or unreadable input data; the message names the file and the problem."""


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------


def decode_image(data: bytes, name: str) -> np.ndarray:
    """Decode the bytes of a PNG, JPEG or BMP file as stored (dtype and channels unchanged).

    Parameters
    ----------
    data : bytes
    name : str
        The file's name, for error messages; its suffix tells the decoder the format.

    Returns
    -------
    ndarray, shape (H, W) or (H, W, C) with C in {1, 2, 3, 4}

    Raises
    ------
    DataError
        Naming the file: unreadable, truncated or of an unexpected shape.
    """
    suffix = PurePath(name).suffix.lower()
    extension = suffix if suffix in IMAGE_SUFFIXES else None
    try:
        array = np.asarray(iio.imread(data, index=0, extension=extension))
    except Exception as error:  # decoders raise many types for broken or truncated files
        raise DataError(f"{name}: cannot decode image, unreadable or truncated ({error})") from None
    if array.ndim == 3 and array.shape[-1] not in (1, 2, 3, 4):
        raise DataError(f"{name}: unexpected image shape {array.shape}")
    return array


def read_input(path: str | os.PathLike) -> np.ndarray:
    """Read one 2-D image file as it is stored (dtype and channels unchanged).

    PNG, JPEG and BMP through :mod:`imageio.v3` (:func:`decode_image`), TIFF through
    ``tifffile`` (channel-first TIFFs, axes ``CYX``, are moved to channel-last).

    Returns
    -------
    ndarray, shape (H, W) or (H, W, C)

    Raises
    ------
    DataError
        Naming the file: missing, unreadable or truncated files, 3-D stacks and multi-page
        TIFFs, empty images.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file (0 bytes)")
    if path.suffix.lower() in (".tif", ".tiff"):
        array = _read_tiff(path)
    else:
        try:
            data = path.read_bytes()
        except OSError as error:
            raise DataError(f"{path}: cannot read file ({error.strerror})") from None
        array = decode_image(data, str(path))
    if array.size == 0:
        raise DataError(f"{path}: empty image (shape {array.shape})")
    return array


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes, shape = series.axes, series.shape
            array = series.asarray()
    except Exception as error:
        raise DataError(f"{path}: cannot decode TIFF, unreadable or truncated ({error})") from None
    stack_axes = [(a, n) for a, n in zip(axes, shape) if a not in "YXCS" and n > 1]
    if stack_axes:
        described = ", ".join(f"{n} along {a}" for a, n in stack_axes)
        raise DataError(
            f"{path}: a stack or multi-page TIFF (shape {shape}, axes {axes}: {described}); "
            "segment expects one 2-D image per file: save the planes as separate files "
            "(or see chapter 8 and nucleitut.volume for 3-D stacks)"
        )
    array = np.squeeze(array, axis=tuple(i for i, (a, n) in enumerate(zip(axes, shape)) if n == 1 and a not in "YX"))
    kept = [a for a, n in zip(axes, shape) if n > 1 or a in "YX"]
    if "C" in kept and kept.index("C") == 0 and array.ndim == 3:
        array = np.moveaxis(array, 0, -1)
    return array



# --------------------------------------------------------------------------------------
# Conversion and intensities
# --------------------------------------------------------------------------------------


def to_rgb_uint8(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Convert a decoded image to RGB ``uint8`` with explicit rules.

    * (H, W) gray -> expanded to three equal channels;
    * (H, W, 2) gray + alpha and (H, W, 4) RGBA -> alpha dropped;
    * ``uint8`` is kept as it is;
    * other integer types (for example 16-bit) are rescaled linearly from the image's own
      [min, max] to [0, 255] (microscopes rarely fill the 16-bit range, so a fixed division
      by 65535 would give black images);
    * floats in [0, 1] are multiplied by 255, other floats rescaled from [min, max].

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, C) with C in {1, 2, 3, 4}
    name : str
        Used in error messages (the file name).

    Returns
    -------
    ndarray of uint8, shape (H, W, 3)

    Examples
    --------
    >>> to_rgb_uint8(np.array([[0, 4095]], dtype=np.uint16))[..., 0].tolist()
    [[0, 255]]
    """
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] in (1, 2):  # grey, grey + alpha
        image = image[..., 0]
    if image.ndim == 2:
        image = color.gray2rgb(image)
    elif image.ndim == 3 and image.shape[2] in (3, 4):
        image = image[..., :3]  # alpha dropped (skimage.color.rgba2rgb would blend it)
    else:
        raise DataError(f"{name}: unsupported image shape {image.shape}")
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image)
    if image.dtype == bool:
        return util.img_as_ubyte(image)
    values = image.astype(np.float64)  # float64 throughout, so float32 images round alike
    low, high = values.min(), values.max()
    if image.dtype.kind == "f" and low >= 0 and high <= 1:
        return util.img_as_ubyte(values)
    if high == low:
        return np.zeros(image.shape, np.uint8)
    return np.round(exposure.rescale_intensity(values, in_range=(low, high), out_range=(0, 255))).astype(np.uint8)


def percentile_stretch(image: np.ndarray, low: float = PERCENTILES[0], high: float = PERCENTILES[1]) -> np.ndarray:
    """Map the ``low`` and ``high`` intensity percentiles to 0 and 255 (clipped), as ``uint8``.

    One pair of percentiles for all channels together, so colours keep their balance.

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, C), any real dtype
    low, high : float
        Percentiles in [0, 100]; StarDist's defaults 1 and 99.8.

    Returns
    -------
    ndarray of uint8, same shape

    Raises
    ------
    ValueError
        If the two percentiles are equal (a constant image or one with only outliers).

    Examples
    --------
    >>> image = np.array([[100, 100, 600, 1100, 60000]], np.uint16)
    >>> percentile_stretch(image, 0, 75).tolist()
    [[0, 0, 128, 255, 255]]
    """
    values = np.asarray(image, np.float64)
    lo, hi = np.percentile(values, [low, high])
    if not hi > lo:
        raise ValueError(f"percentiles {low} and {high} of the image are equal ({lo:g}): no contrast to stretch")
    return np.round(np.clip((values - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)


def _select_channel(image: np.ndarray, channel: int | None, name: str) -> np.ndarray:
    if channel is None:
        if image.ndim == 3 and image.shape[-1] > 4:
            raise DataError(f"{name}: {image.shape[-1]} channels; choose one with channel=N (--channel N)")
        return image
    channels = 1 if image.ndim == 2 else image.shape[-1]
    if not -channels <= channel < channels:
        raise DataError(f"{name}: channel {channel} asked for, but the image has {channels} channel(s) (0..{channels - 1})")
    return image if image.ndim == 2 else image[..., channel]


def prepare_image(image: np.ndarray, channel: int | None = None, normalize: str | bool = "auto", name: str = "image") -> tuple[np.ndarray, str]:
    """Turn an image as stored into the RGB ``uint8`` image the networks expect.

    Channels: ``channel=None`` keeps the rules of :func:`to_rgb_uint8` (grey -> three equal
    channels, alpha dropped); an integer picks that channel as a grey image (for example the
    DAPI channel of a multi-channel image).

    Intensities (``normalize``):

    * ``"auto"`` (default): ``uint8`` (and boolean) images stay as they are unless they are
      dim, grey with an offset background or low contrast, or colour with low contrast
      (:func:`needs_stretch`); every other dtype and those 8-bit images are stretched by
      :func:`percentile_stretch` (1st and 99.8th percentiles to 0 and 255);
      a grey image whose stretched background (median) is dark is then mapped to the
      fluorescence training images' levels, :data:`FLUORESCENCE_LEVELS`;
    * ``"always"`` (or True): every image is stretched;
    * ``"never"`` (or False): the old rule, a linear map of the image's own min..max (one hot
      pixel darkens everything) for non-8-bit images; shows the failure this module avoids.

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, C)
    channel : int, optional
    normalize : {'auto', 'always', 'never'} or bool
    name : str
        File name for the error messages.

    Returns
    -------
    rgb : ndarray of uint8, shape (H, W, 3)
    intensity : str
        What was done, for the per-image report.

    Raises
    ------
    DataError
        Naming the image: unsupported shapes, a missing channel, constant images, images
        smaller than :data:`MIN_SIDE` pixels.

    Examples
    --------
    >>> rgb, how = prepare_image(np.array([[0, 50], [100, 40000]] * 8, np.uint16).repeat(8, 1))
    >>> rgb.shape, rgb.dtype.name, how
    ((16, 16, 3), 'uint8', 'percentiles 1-99.8 to 3-88')
    """
    mode = {True: "always", False: "never"}.get(normalize, normalize)
    if mode not in ("auto", "always", "never"):
        raise ValueError(f"normalize must be 'auto', 'always' or 'never', got {normalize!r}")
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3):
        raise DataError(f"{name}: expected a 2-D image (H, W) or (H, W, C), got shape {image.shape}")
    if min(image.shape[:2]) < MIN_SIDE:
        raise DataError(f"{name}: image of {image.shape[0]}x{image.shape[1]} pixels is too small (at least {MIN_SIDE}x{MIN_SIDE})")
    image = _select_channel(image, channel, name)
    if image.ndim == 3 and image.shape[-1] in (2, 4):  # grey + alpha, RGBA: alpha is not intensity
        image = image[..., :1] if image.shape[-1] == 2 else image[..., :3]
        image = image[..., 0] if image.shape[-1] == 1 else image
    if image.dtype.kind not in "uifb":
        raise DataError(f"{name}: unsupported pixel type {image.dtype}")
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        raise DataError(f"{name}: image holds NaN or infinite values")
    if image.min() == image.max():
        raise DataError(f"{name}: constant image (every pixel {image.flat[0]}): nothing to segment")
    eight_bit = image.dtype in (np.uint8, np.bool_)
    if mode == "never" or (mode == "auto" and eight_bit and not needs_stretch(image)):
        how = "as is (8-bit)" if eight_bit else "min-max (no normalisation)"
        return to_rgb_uint8(image, name), how
    try:
        stretched = percentile_stretch(image)
    except ValueError:  # almost constant: the two percentiles coincide
        raise DataError(
            f"{name}: almost constant image (its {PERCENTILES[0]:g}th and {PERCENTILES[1]:g}th percentiles are equal): nothing to segment"
        ) from None
    how = f"percentiles {PERCENTILES[0]:g}-{PERCENTILES[1]:g}"
    grey = _is_grey(stretched)  # also grey stored as RGB
    if grey and np.median(stretched) < 128:  # grey with a dark background: fluorescence
        low, high = FLUORESCENCE_LEVELS
        stretched = np.round(low + stretched.astype(np.float64) * ((high - low) / 255)).astype(np.uint8)
        how += f" to {low}-{high}"
    return to_rgb_uint8(stretched, name), how


def _is_grey(image: np.ndarray) -> bool:
    """A grey image: one channel, or channels that are all equal (grey stored as RGB)."""
    return image.ndim == 2 or bool((image == image[..., :1]).all())


def needs_stretch(image: np.ndarray) -> bool:
    """Whether ``prepare_image(normalize='auto')`` stretches an 8-bit image by its percentiles.

    Yes when it is dim (99.8th percentile below :data:`DIM_LEVEL`); for a grey image with a
    dark background (median below 128, fluorescence-like), when its background is offset
    (1st percentile above :data:`OFFSET_LEVEL`) or its contrast is low (99.8th minus 1st
    percentile below :data:`CONTRAST_LEVEL`); for a colour image, when its contrast is below
    :data:`COLOUR_CONTRAST_LEVEL`. No image of BBBC038v1 meets any of these, so the images
    the networks learned from go to them as they are.

    >>> background = np.full((32, 32), 30, np.uint8); background[8:16, 8:16] = 60
    >>> needs_stretch(background), needs_stretch(background - 25), needs_stretch(np.clip(background * 3 - 85, 0, 255).astype(np.uint8))
    (True, False, False)
    """
    low, high = np.percentile(image, PERCENTILES)
    if high < DIM_LEVEL:
        return True
    if not _is_grey(image):
        return bool(high - low < COLOUR_CONTRAST_LEVEL)
    return bool(np.median(image) < 128 and (low > OFFSET_LEVEL or high - low < CONTRAST_LEVEL))


# --------------------------------------------------------------------------------------
# Image types
# --------------------------------------------------------------------------------------


def image_type(image: np.ndarray) -> str:
    """The kind of a BBBC038v1 image, by a simple rule of this project (the data set has no
    such field): ``'tissue'`` (stained, e.g. H&E) when the colour channels differ, else
    ``'bright-field'`` when the median pixel (the background) is above 127, else
    ``'fluorescence'``.

    >>> image_type(np.zeros((4, 4, 3), np.uint8)), image_type(np.full((4, 4, 3), 200, np.uint8))
    ('fluorescence', 'bright-field')
    """
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] >= 3:
        if not (np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1], image[..., 2])):
            return "tissue"
        image = image[..., 0]
    return "bright-field" if np.median(image) > 127 else "fluorescence"


def check_real(array, name: str) -> np.ndarray:
    """``array`` as a numpy array of real numbers (integers, floats or booleans).

    Raises
    ------
    TypeError
        Naming ``name`` and the dtype otherwise.

    >>> check_real([1, 2], "image").dtype.kind
    'i'
    """
    array = np.asarray(array)
    real = np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
    if not (real or array.dtype == bool):
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
    return array
