"""Nucleus size: how large the nuclei of an image are, and rescaling to the training size.

Book chapter: *Your own images*. Used by :meth:`nucleitut.pipeline.Pipeline.segment`.

A network learns the size of the nuclei along with everything else. First passes of one
network (no TTA) find the foreground at the native scale and in two shrunk copies; in each,
the typical nucleus diameter is the median over the objects of the largest inscribed disc
(:func:`typical_diameter`), which neither merges of touching nuclei nor a nucleus shattered
into several markers change much, and the median over the probes is the estimate
(:func:`estimate_diameter`, which also says when it uses the native probe alone). An image
whose diameter lies outside the band of training sizes (:data:`TRAINING_SIZE_BAND`) is
rescaled so that its diameter goes halfway from the nearest end of the band to the training
images' median (:func:`scale_for`, :func:`nucleus_size_statistics`); the estimate is checked
once at the new scale, the pipeline segments the rescaled image (:func:`rescale_image`) and
the labels are mapped back to the original size, nearest neighbour (:func:`rescale_labels`).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np
from scipy import ndimage as ndi

__all__ = [
    "typical_diameter",
    "estimate_diameter",
    "SizeEstimate",
    "nucleus_size_statistics",
    "scale_for",
    "rescale_image",
    "rescale_labels",
    "TRAINING_DIAMETER",
    "SCALE_RANGE",
    "SCALE_TOLERANCE",
    "TRAINING_SIZE_BAND",
    "SECOND_PASS_DISAGREEMENT",
    "UNTRUSTED_DISAGREEMENT",
    "PROBE_SCALES",
    "MIN_PROBE_DIAMETER",
    "combine_probes",
    "estimate_windows",
    "ESTIMATE_WINDOW",
    "resize_output",
    "NEIGHBOUR_SCALES",
    "COST_BOUND",
    "segmentation_cost",
    "views_within",
    "max_enlargement",
]

#: Bounds of the rescaling factor: beyond them the image would be too coarse to hold
#: nuclei or too large to predict in reasonable time.
SCALE_RANGE = (0.1, 4.0)
#: Estimated scales within this factor of 1 are not applied (interpolation would only blur).
SCALE_TOLERANCE = 1.1
#: :func:`estimate_diameter` trusts its second pass over the first beyond this factor.
SECOND_PASS_DISAGREEMENT = 1.25
#: ... and trusts neither beyond this one: the image is then segmented at its own size. This
#: project's choice, made on 30 validation images as they are, halved, thirded, blurred and
#: with Gaussian noise (150 estimates; ``experiments/size_trust.py``,
#: experiments/results/size_trust_validation.json): of the 7 second passes that disagreed by
#: more than 1.75, 6 were 2.5 to 22 times off the true diameter (a noisy image would have been
#: enlarged 4x, halved tissue shrunk to a tenth), and 6 of their first passes 1.25 to 7 times;
#: of the 15 that disagreed by 1.25 to 1.75, 10 were closer to the truth than the first pass.
UNTRUSTED_DISAGREEMENT = 1.75
#: Scales at which :func:`estimate_diameter` measures the nuclei (shrunk probes are cheap:
#: a quarter and a sixteenth of the native pass).
PROBE_SCALES = (1.0, 0.5, 0.25)
#: A shrunk probe's diameter counts only from this size on, in the probe's pixels: smaller
#: nuclei are not resolved there (blurred clumps of them pass for larger nuclei). This
#: project's choice, made on validation images (``experiments/size_probes.py --split val``,
#: results/benchmarks/README.md): of 6, 8, 10 and 12 px, 8 and 10 tie (estimates within
#: 25 % of the truth summed over the scales 0.5, 1, 2, 3: 3.46 and 3.37; median log error
#: 0.276 and 0.271); 10 keeps the halved images as well estimated as the native probe alone.
MIN_PROBE_DIAMETER = 10.0
#: Large images are measured in four windows of this side (:func:`estimate_windows`): this
#: project's choice, so that the size estimate of an 8000x8000 image costs what a 2048x2048
#: image costs.
ESTIMATE_WINDOW = 1024
#: Factors of the neighbouring scales whose outputs ``Pipeline.segment(..., fuse_scales=True)``
#: fuses with the chosen scale's (this project's option: 30 validation images at four sizes,
#: +0.009 on average, +0.018 for halved images; 60 halved test images with TTA +0.006;
#: results/benchmarks/README.md "fusing neighbouring scales"; not the default: it costs 3.5
#: times the pixels to predict).
NEIGHBOUR_SCALES = (2 ** -0.5, 2 ** 0.5)
#: A shrunk probe is skipped when the image's shorter side would fall under this many pixels.
MIN_PROBE_SIDE = 32
#: Cost bound of the size handling (this project's choice, issue 31): an image the estimate
#: enlarges costs at most this many times the network passes of its default segmentation
#: (TTA) at its own size (:func:`segmentation_cost`): fewer TTA views at an enlarged scale
#: (:func:`views_within`) and no enlargement beyond :func:`max_enlargement` (M3B1: 2.0x), so that
#: an estimate from noise cannot make an image take many times its time. Measured times run
#: 10-30 % above the pass count (the tiles of an enlarged image overlap), so 1.6 in passes keeps
#: every image within about twice its time. Chosen on 30 validation images at the scales 1, 0.5,
#: 2 and 3 against no bound (experiments/check_cost_bound.py,
#: experiments/results/cost_bound_1.6_validation.json, rule written before it ran): mean score
#: 0.4122 -> 0.4130 (scale 1: -0.008, halved images +0.012), slowest image 2.09x its time at its
#: own size (no bound: 7.3x). A bound of 2.0 kept the scores but let an image take 3.4x
#: (experiments/LAB_NOTES.md, "a cost bound for enlarged images").
COST_BOUND = 1.6
#: Median over the training images of :func:`typical_diameter` of their true nuclei, in
#: pixels: ``nucleus_size_statistics(load_dataset("full"), split.train)["median_diameter"]``
#: on the fixed stage1_train (435 training images; 16.3 px, where the median equivalent
#: diameter of the 19,734 nuclei is 19.9 px: nuclei are not round). Used when a models folder
#: carries no statistics of its own; the reference networks record theirs in ``reference.json``.
TRAINING_DIAMETER = 16.3
#: Diameters, in pixels, that are left as they are: an image whose estimated diameter lies in
#: this band has nuclei of a size the networks were trained on and is not rescaled. From the
#: same 435 training images (``nucleus_size_statistics(...)``): the quartiles of
#: :func:`typical_diameter` over the images. This project's choice, made on 30 validation
#: images at the scales 1, 0.5, 2 and 3 (``experiments/choose_size_band.py``,
#: results/benchmarks/size_band_validation.json; shipped reference, TTA): the highest mean
#: score over the four scales of 16 bands (lower end none, 5th or 10th percentile or 1st
#: quartile; upper end median, 3rd quartile, 95th percentile or none). The quartiles (0.4127)
#: tie with 8.5-24.1 px (5th percentile to 3rd quartile, 0.4127, the band before, chosen on
#: test images): a lower end of 11.7 px costs the images at the native scale 0.018 and gives
#: the halved ones 0.018. An upper end of 42 px (95th percentile) loses 0.02-0.03, none 0.06-0.07.
TRAINING_SIZE_BAND = (11.7, 24.1)


def typical_diameter(mask: np.ndarray, min_diameter: float = 3.0) -> float | None:
    """Typical diameter of the objects of a foreground mask, in pixels.

    Per connected object (holes filled) the diameter of the largest inscribed disc,
    ``2 * max(distance to background)`` (for a digital disc its equivalent diameter within
    a pixel); the median over the objects. Touching nuclei merged into one object keep the inscribed disc of one nucleus,
    so clumps barely bias the estimate. Objects under ``min_diameter`` are noise and ignored.
    Limit: background fully enclosed by a ring of touching nuclei is filled like a hole.

    Parameters
    ----------
    mask : ndarray of bool, shape (H, W)
    min_diameter : float

    Returns
    -------
    float or None
        None when no object is large enough.

    Examples
    --------
    >>> from skimage.morphology import disk
    >>> round(typical_diameter(np.pad(disk(10), 5) > 0), 1)   # equivalent diameter 20.1
    20.1
    """
    filled = ndi.binary_fill_holes(np.asarray(mask, bool))
    objects, n = ndi.label(filled)
    if n == 0:
        return None
    distance = ndi.distance_transform_edt(filled)
    diameters = 2 * np.asarray(ndi.maximum(distance, objects, index=np.arange(1, n + 1)))
    diameters = diameters[diameters >= min_diameter]
    return float(np.median(diameters)) if diameters.size else None


def nucleus_size_statistics(dataset, ids: Sequence[str] | None = None) -> dict:
    """Nucleus sizes of a data set's images (default: its training split), in pixels.

    ``median_diameter`` (the target of the size handling) is the median over the images of
    :func:`typical_diameter` of their true foreground, the same measure the estimate uses on
    a new image. Per-nucleus equivalent diameters (``sqrt(4 * area / pi)``) are reported too.

    Returns
    -------
    dict
        ``median_diameter``, ``diameter_quartiles`` and ``diameter_percentiles`` (5, 95; over
        images), ``median_equivalent_diameter``,
        ``equivalent_diameter_percentiles`` (5, 25, 75, 95; over nuclei), ``n_images``,
        ``n_nuclei``, ``measure``.
    """
    from skimage.measure import regionprops_table

    ids = list(ids) if ids is not None else dataset.split().train
    per_image, equivalent = [], []
    for image_id in ids:
        labels = dataset.get(image_id)[1]
        diameter = typical_diameter(labels > 0)
        if diameter is not None:
            per_image.append(diameter)
        equivalent.extend(regionprops_table(labels, properties=("equivalent_diameter_area",))["equivalent_diameter_area"])
    if not per_image:
        raise ValueError("nucleus_size_statistics: no nuclei in the given images")
    return {
        "median_diameter": float(np.median(per_image)),
        "diameter_quartiles": [float(q) for q in np.percentile(per_image, [25, 75])],
        "diameter_percentiles": {str(p): float(v) for p, v in zip((5, 95), np.percentile(per_image, [5, 95]))},
        "median_equivalent_diameter": float(np.median(equivalent)),
        "equivalent_diameter_percentiles": {str(p): float(v) for p, v in zip((5, 25, 75, 95), np.percentile(equivalent, [5, 25, 75, 95]))},
        "n_images": len(ids),
        "n_nuclei": len(equivalent),
        "measure": "median over images of sizing.typical_diameter (largest inscribed disc per object) of the true foreground",
    }


def scale_for(diameter: float | None, target: float, band: tuple[float, float] | None = TRAINING_SIZE_BAND) -> float:
    """Rescaling factor for an image whose typical nucleus diameter is ``diameter``, within :data:`SCALE_RANGE`.

    1.0 when the diameter is unknown or lies within ``band`` (default
    :data:`TRAINING_SIZE_BAND`: sizes the networks were trained on). A diameter outside the
    band goes halfway (geometric mean) from the nearest end of the band to ``target``, the
    training median: this project's choice, made on validation images
    (``experiments/choose_size_target.py``; against going all the way to the median or only to
    the end of the band), and within noise of going all the way. ``band=None`` (a diameter the
    user gives) rescales to ``target`` itself. Scales within :data:`SCALE_TOLERANCE` of 1 are
    not applied.

    >>> scale_for(60.0, 20.0, band=None), scale_for(21.0, 20.0, band=None), scale_for(1.0, 20.0, band=None)
    (0.3333333333333333, 1.0, 4.0)
    >>> scale_for(24.0, 20.0), scale_for(24.0, 20.0, band=None)
    (1.0, 0.8333333333333334)
    >>> round(scale_for(6.0, 16.0, band=(12.0, 24.0)), 3)    # to sqrt(12 * 16) = 13.9 px
    2.309
    """
    if diameter is None or diameter <= 0:
        return 1.0
    if band is not None:
        if band[0] <= diameter <= band[1]:
            return 1.0
        edge = band[0] if diameter < band[0] else band[1]
        target = float(np.sqrt(edge * target))
    scale = target / diameter
    if 1 / SCALE_TOLERANCE <= scale <= SCALE_TOLERANCE:
        return 1.0
    return float(np.clip(scale, *SCALE_RANGE))


def segmentation_cost(scale: float, networks: int, views: int) -> float:
    """Network passes of :meth:`nucleitut.pipeline.Pipeline.segment` with the size estimate, in
    passes of one network over the image's own pixels: the probes (:data:`PROBE_SCALES`, one
    network), the estimate's second pass at ``scale`` (none at 1) and ``networks`` x ``views``
    passes at ``scale`` (at the image's own size one view of the probe's network is reused).

    >>> segmentation_cost(1.0, 2, 4), segmentation_cost(2.0, 2, 1)    # M3B1, TTA; enlarged 2x, one view
    (8.3125, 13.3125)
    """
    probes = sum(p * p for p in PROBE_SCALES)
    if scale == 1.0:
        return probes + networks * views - 1
    return probes + scale * scale * (1 + networks * views)


def views_within(scale: float, networks: int, views: int = 4, bound: float = COST_BOUND) -> int:
    """How many of ``views`` TTA views an image enlarged by ``scale`` gets within ``bound`` times
    the cost of its segmentation with all views at its own size (:func:`segmentation_cost`);
    at least one.

    >>> [views_within(s, 2) for s in (1.0, 1.2, 1.3, 1.5, 1.75)]    # M3B1
    [4, 3, 3, 2, 1]
    """
    budget = bound * segmentation_cost(1.0, networks, views)
    fitting = [v for v in range(1, views + 1) if segmentation_cost(scale, networks, v) <= budget]
    return max(fitting, default=1)


def max_enlargement(networks: int, views: int = 4, bound: float = COST_BOUND) -> float:
    """The largest scale at which one view stays within ``bound`` times the cost of the image's
    segmentation with all ``views`` at its own size (:func:`segmentation_cost`).

    >>> round(max_enlargement(2), 2), round(max_enlargement(1), 2)    # M3B1; one network
    (2.0, 1.67)
    """
    probes = sum(p * p for p in PROBE_SCALES)
    return float(np.sqrt((bound * segmentation_cost(1.0, networks, views) - probes) / (1 + networks)))


def rescale_image(image: np.ndarray, scale: float, order: int | None = None) -> np.ndarray:
    """Rescale an RGB ``uint8`` image (cubic when enlarging; linear, anti-aliased, when shrinking).

    ``order`` overrides the interpolation (the size estimate's probes use linear: cheaper, and
    they only measure sizes)."""
    from skimage.transform import resize

    if scale == 1.0:
        return image
    shape = tuple(max(1, int(round(n * scale))) for n in image.shape[:2])
    # Enlarging: cubic interpolation keeps edges sharper than linear (halved test images
    # enlarged back: 0.471 against 0.456, results/benchmarks/README.md); shrinking: linear
    # with anti-aliasing.
    order = order if order is not None else (3 if scale > 1 else 1)
    # Channel by channel: resize works in float64, and a whole 8000x8000 RGB image would need
    # several GB of it; the result is the same to the last bit (checked on random images).
    out = np.empty(shape + image.shape[2:], np.uint8)
    for channel in np.ndindex(*image.shape[2:]):
        plane = resize(image[(..., *channel)], shape, order=order, anti_aliasing=scale < 1, preserve_range=True)
        out[(..., *channel)] = np.clip(np.round(plane), 0, 255)
    return out


def rescale_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Map labels to another size by nearest neighbour; renumbered ``1..n`` (int32).

    Objects that vanish when shrinking drop out of the numbering.

    >>> rescale_labels(np.array([[1, 2], [0, 2]]), (4, 4))
    array([[1, 1, 2, 2],
           [1, 1, 2, 2],
           [0, 0, 2, 2],
           [0, 0, 2, 2]], dtype=int32)
    """
    from skimage.segmentation import relabel_sequential
    from skimage.transform import resize

    labels = np.asarray(labels)
    if labels.shape != tuple(shape):
        labels = resize(labels, shape, order=0, preserve_range=True, anti_aliasing=False).astype(labels.dtype)
    return relabel_sequential(labels.astype(np.int32))[0].astype(np.int32)


def resize_output(probs: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A network output (H, W, C) resized to another grid (linear; float32), e.g. the output
    at a neighbouring scale brought to the chosen scale's grid."""
    from skimage.transform import resize

    if probs.shape[:2] == tuple(shape):
        return probs
    return resize(probs, tuple(shape) + probs.shape[2:], order=1, preserve_range=True, anti_aliasing=False).astype(np.float32)




def combine_probes(measured: dict[float, float | None], min_probe_diameter: float = MIN_PROBE_DIAMETER) -> float | None:
    """The size estimate from :func:`typical_diameter` measured at the probe scales.

    ``measured`` maps a probe scale to the diameter seen there (in the probe's pixels; None:
    no nuclei). A shrunk probe counts from ``min_probe_diameter`` on; the median over the
    probes, converted to the image's pixels, when every probe of :data:`PROBE_SCALES` counts,
    else the native probe's diameter (None when it saw no nuclei).

    >>> combine_probes({1.0: 9.0, 0.5: 30.0, 0.25: 15.0})    # fragmented at the native scale
    60.0
    >>> combine_probes({1.0: 9.0, 0.5: 5.0, 0.25: None})     # small nuclei: the native probe
    9.0
    """
    found = {p: d / p for p, d in measured.items()
             if p in PROBE_SCALES and d is not None and (p == 1.0 or d >= min_probe_diameter)}
    if 1.0 not in found:
        return None
    return float(np.median(list(found.values()))) if len(found) == len(PROBE_SCALES) else found[1.0]


@dataclasses.dataclass
class SizeEstimate:
    """What :func:`estimate_diameter` found."""

    diameter: float | None  #: typical nucleus diameter in the image's pixels; None: no nuclei found
    scale: float  #: :func:`scale_for` of the diameter (1 within the band, or when not trusted)
    #: The first pass's network output for the whole image as it is, by network (None for a
    #: large image measured in windows): the segmentation reuses it when it does not rescale.
    native_outputs: dict | None = None
    #: Why the estimate is not used (the image is segmented at its own size); None when it is.
    untrusted: str | None = None
    #: The scale was cut to ``max_scale`` (the cost bound) from a larger enlargement.
    capped: bool = False


#: A pipeline's cheap first pass: an RGB ``uint8`` image in, its foreground mask and the
#: network output it came from (by network name) out (:meth:`nucleitut.pipeline.Pipeline.foreground`).
Foreground = Callable[[np.ndarray], "tuple[np.ndarray, dict]"]


def estimate_diameter(image: np.ndarray, foreground: Foreground, target: float,
                      band: tuple[float, float] | None = TRAINING_SIZE_BAND,
                      max_scale: float | None = None) -> SizeEstimate:
    """Typical nucleus diameter of an RGB ``uint8`` image (pixels) and the scale to use.

    First passes (one network, no TTA) at the probe scales :data:`PROBE_SCALES` (the image as
    it is, halved, quartered) each measure :func:`typical_diameter` of the pipeline's
    foreground, converted to the image's pixels. Nuclei much larger than in training come out
    fragmented at the native scale but whole in the shrunk probes: when all three probes see
    nuclei (in a shrunk probe at least :data:`MIN_PROBE_DIAMETER` pixels across) their median
    is the estimate, so two probes that agree outvote the third; otherwise (small nuclei
    vanish in the shrunk probes) the native probe alone. When the estimate asks for
    rescaling, a second pass at the new scale measures again: a network sees nuclei of
    training size best, so when the two disagree by more than
    :data:`SECOND_PASS_DISAGREEMENT` the second one (converted back) is used; when they
    disagree by more than :data:`UNTRUSTED_DISAGREEMENT` neither is trusted (noise or texture
    taken for nuclei) and the scale is 1: a wrong estimate cannot enlarge an image several
    times and cost many times its time. An image with a
    side over twice :data:`ESTIMATE_WINDOW` is measured in four windows of that size
    (:func:`estimate_windows`), and the median of their estimates is the image's, so the
    estimate costs the same for every large image.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)
    foreground : callable
        The first pass (:data:`Foreground`), e.g. :meth:`nucleitut.pipeline.Pipeline.foreground`.
    target : float
        The training images' median diameter.
    band : (float, float) or None
        Diameters left as they are (:func:`scale_for`).
    max_scale : float, optional
        No enlargement beyond this factor, in the second pass and in the scale returned
        (:func:`max_enlargement`: the pipeline's cost bound); ``capped`` says when it applied.

    Returns
    -------
    SizeEstimate
        ``diameter`` None when the native probe finds no nuclei; ``untrusted`` says why an
        estimate is not used. In both cases the scale is 1.
    """
    native = None
    if max(image.shape[:2]) > 2 * ESTIMATE_WINDOW:
        windows = [_estimate(window, foreground, target, max_scale) for window in estimate_windows(image)]
        found = [d for d, _, untrusted in windows if d is not None and untrusted is None]
        diameter = float(np.median(found)) if found else None
        untrusted = next((u for d, _, u in windows if u is not None), None) if not found else None
    else:
        diameter, native, untrusted = _estimate(image, foreground, target, max_scale)
    if diameter is None or untrusted is not None:
        return SizeEstimate(diameter, 1.0, native, untrusted)
    scale = scale_for(diameter, target, band)
    if max_scale is not None and scale > max_scale:
        return SizeEstimate(diameter, max_scale, native, capped=True)
    return SizeEstimate(diameter, scale, native)


def estimate_windows(image: np.ndarray, side: int | None = None) -> list[np.ndarray]:
    """Four windows of ``side`` (default :data:`ESTIMATE_WINDOW`) pixels, one around the
    centre of each quarter of the image, where :func:`estimate_diameter` measures a large image.

    >>> [w.shape for w in estimate_windows(np.zeros((100, 40)), side=30)]
    [(30, 20), (30, 20), (30, 20), (30, 20)]
    """
    side = side or ESTIMATE_WINDOW
    height, width = image.shape[:2]
    windows = []
    for cy in (height // 4, 3 * height // 4):
        for cx in (width // 4, 3 * width // 4):
            top = int(np.clip(cy - side // 2, 0, max(0, height - side)))
            left = int(np.clip(cx - side // 2, 0, max(0, width - side)))
            windows.append(image[top : top + min(side, height // 2), left : left + min(side, width // 2)])
    return windows


def _estimate(image: np.ndarray, foreground: Foreground, target: float,
              max_scale: float | None = None) -> tuple[float | None, dict, str | None]:
    """The probes and the second pass of :func:`estimate_diameter` on one image; also the
    native probe's network output and why the estimate is not trusted (None: trusted)."""
    measured, native = {}, {}
    for probe in PROBE_SCALES:
        if probe == 1.0 or min(image.shape[:2]) * probe >= MIN_PROBE_SIDE:
            mask, outputs = foreground(rescale_image(image, probe, order=1))
            measured[probe] = typical_diameter(mask)
            if probe == 1.0:
                native = outputs
    diameter = combine_probes(measured)
    if diameter is None:
        return None, native, None
    scale = min(scale_for(diameter, target, band=None), max_scale or np.inf)
    if scale != 1.0:  # the second pass looks again at the size the probes suggest
        second = typical_diameter(foreground(rescale_image(image, scale, order=1))[0])
        if second is not None:
            ratio = max(second / scale / diameter, diameter * scale / second)
            if ratio > UNTRUSTED_DISAGREEMENT:
                return diameter, native, (f"not trusted: {diameter:.1f} px, and {second / scale:.1f} px "
                                          f"when looked at {scale:.2g}x (over {UNTRUSTED_DISAGREEMENT}x apart)")
            if ratio > SECOND_PASS_DISAGREEMENT:
                diameter = second / scale
    return diameter, native, None
