"""One object for inference: a pipeline's networks, their post-processing and size handling.

Book chapters: *Two networks*, *TTA and ensembles*, *Evaluation*, *Your own images*.

A *pipeline* is what the paper's Figure 9 scores: a single network with its post-processing,
or a two-network combination (markers from network M, the mask from network B, section 3.6).
:class:`Pipeline` owns

* its networks (:class:`nucleitut.training.Network`: a Keras model and the configuration it was
  trained with),
* the post-processing settings (:data:`nucleitut.config.POSTPROCESS_DEFAULTS`, or settings
  chosen on validation images and where they were chosen),
* the size information its networks were trained with (the training images' median nucleus
  diameter and the band of sizes left as they are, :mod:`nucleitut.sizing`).

Where the networks come from:

* :meth:`Pipeline.reference` -- the reference networks shipped in ``nucleitut/reference/``;
* :meth:`Pipeline.load` -- a reference folder or a folder of trained networks (``--models``);
* :meth:`Pipeline.trained` -- the networks the chapters and the campaign trained
  (:func:`nucleitut.config.model_dir`); nothing here trains;
* :meth:`Pipeline.from_models` -- Keras models you hold (a chapter's).

What it does: :meth:`Pipeline.probabilities` (each network's output, with or without TTA),
:meth:`Pipeline.labels_from` (the post-processing), ``pipeline(image)`` (both, in blocks for a
large image) and :meth:`Pipeline.segment` (any image: intensities, nucleus size, the labels
at the image's own size, and how they were made: a :class:`Segmentation`).
:func:`segment` is the one-line entry point ``nucleitut.segment(image)``.

Examples
--------
>>> from nucleitut.pipeline import Pipeline, SegmentOptions
>>> reference = Pipeline.reference()                                   # doctest: +SKIP
>>> result = reference.segment(image, SegmentOptions(diameter=40))     # doctest: +SKIP
>>> print(result.summary())                                            # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from . import blocks, config, images, postprocess, predict, pretrained, sizing, training

__all__ = ["Pipeline", "SeedEnsemble", "SegmentOptions", "Segmentation", "segment", "as_networks"]


@dataclasses.dataclass(frozen=True)
class SegmentOptions:
    """How :meth:`Pipeline.segment` treats an image (the command line's options).

    Attributes
    ----------
    tta : bool
        Test-time augmentation (paper section 4.2).
    size : bool
        Estimate the nucleus size and rescale when it lies outside the training sizes
        (False: segment at the native scale).
    diameter : float, optional
        Typical nucleus diameter in pixels, when known: the image is rescaled to the training
        median (no estimate).
    scale : float, optional
        A fixed rescaling factor (overrides ``diameter`` and the estimate).
    channel : int, optional
        Use this channel of a multi-channel image as a grey image.
    normalize : {'auto', 'always', 'never'}
        Intensity handling (:func:`nucleitut.images.prepare_image`).
    fuse_scales : bool
        Also predict at the neighbouring scales (:data:`nucleitut.sizing.NEIGHBOUR_SCALES`)
        and fuse the outputs: forgives a wrong size estimate a little, for 3.5 times the
        pixels to predict.
    cost_bound : float, optional
        An image the estimate enlarges costs at most this many times its default segmentation
        at its own size (:data:`nucleitut.sizing.COST_BOUND`): fewer TTA views, and the
        enlargement capped (:func:`nucleitut.sizing.views_within`,
        :func:`nucleitut.sizing.max_enlargement`). None: no bound. A given ``diameter`` or
        ``scale`` is never bounded; ``fuse_scales`` multiplies the cost as it says.

    >>> SegmentOptions(diameter=-3)
    Traceback (most recent call last):
    ...
    ValueError: diameter must be a positive number of pixels, got -3
    """

    tta: bool = True
    size: bool = True
    diameter: float | None = None
    scale: float | None = None
    channel: int | None = None
    normalize: str | bool = "auto"
    fuse_scales: bool = False
    cost_bound: float | None = sizing.COST_BOUND

    def __post_init__(self):
        if self.diameter is not None and not self.diameter > 0:
            raise ValueError(f"diameter must be a positive number of pixels, got {self.diameter}")
        if self.scale is not None and not self.scale > 0:
            raise ValueError(f"scale must be positive, got {self.scale}")
        if self.cost_bound is not None and not self.cost_bound >= 1:
            raise ValueError(f"cost_bound must be at least 1 (times the cost at the image's own size), got {self.cost_bound}")


@dataclasses.dataclass
class Segmentation:
    """Labels of one image and how they were made."""

    labels: np.ndarray  #: int32 (H, W), 0 = background, nuclei 1..n
    name: str
    diameter: float | None  #: typical nucleus diameter in the image's pixels (estimated or given)
    #: 'estimated', 'given', 'given scale', 'not estimated', 'no nuclei found' or, for an
    #: estimate not used (the image is segmented at its own size), 'not trusted: ...' with why
    diameter_source: str
    scale: float  #: factor the image was rescaled by before the networks
    intensity: str  #: what :func:`nucleitut.images.prepare_image` did
    seconds: float  #: the whole segmentation
    seconds_size: float = 0.0  #: of which the size estimate
    image: np.ndarray | None = dataclasses.field(default=None, repr=False)  #: the RGB uint8 image the networks saw (original size)
    views: int = 1  #: TTA views the networks saw (fewer than asked when the cost bound cut them)

    @property
    def count(self) -> int:
        return int(self.labels.max()) if self.labels.size else 0

    def summary(self) -> str:
        """One line: count, diameter, scale, intensity handling, time."""
        diameter = f"{self.diameter:.1f} px ({self.diameter_source})" if self.diameter is not None else self.diameter_source
        views = f", {self.views} TTA view{'s' if self.views > 1 else ''}" if self.views > 1 or self.scale > 1 else ""
        return (
            f"{self.name}: {self.count} nuclei, diameter {diameter}, scale {self.scale:.3g}{views}, "
            f"intensities {self.intensity}, {self.seconds:.1f} s"
        )


class Pipeline:
    """Instance segmentation with a pipeline's trained networks.

    Parameters
    ----------
    pipeline : str or nucleitut.config.PipelineSpec
        ``"M3B1"``, ``"B1"``, ``"M2"``, ... (:func:`nucleitut.config.get_pipeline`).
    networks : dict
        Network name -> :class:`nucleitut.training.Network`; those the pipeline needs must be
        there (others are ignored).
    settings : dict, optional
        Post-processing settings replacing some of :data:`nucleitut.config.POSTPROCESS_DEFAULTS`.
    chosen_on : str, optional
        Where ``settings`` come from (stored in records).
    training_diameter : float
        The training images' median nucleus diameter (the size handling's target).
    size_band : (float, float)
        Diameters the size handling leaves as they are.
    profile : str, optional
        The profile the networks were trained in (records).
    seed : int
        Which of repeated trainings (records).
    root : path, optional
        The models folder the networks were loaded from (records read their training facts there).
    """

    def __init__(self, pipeline, networks: dict, settings: dict | None = None, chosen_on: str | None = None,
                 training_diameter: float = sizing.TRAINING_DIAMETER,
                 size_band: tuple[float, float] = sizing.TRAINING_SIZE_BAND, profile: str | None = None, seed: int = 0,
                 root: str | os.PathLike | None = None):
        self.spec = pipeline if isinstance(pipeline, config.PipelineSpec) else config.get_pipeline(pipeline)
        missing = [n for n in self.spec.networks if n not in networks]
        if missing:
            raise FileNotFoundError(f"pipeline {self.spec.name} needs {', '.join(missing)}, which the given networks lack")
        self.networks = {n: networks[n] for n in self.spec.networks}
        self.settings = dict(settings or {})
        self.chosen_on = chosen_on or ("given" if settings else "defaults")
        self.training_diameter = float(training_diameter)
        self.size_band = tuple(size_band)
        self.profile = config.get_profile(profile).name
        self.seed = int(seed)
        self.root = root

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r}, profile={self.profile!r}, seed={self.seed}, settings chosen on {self.chosen_on})"

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def method(self) -> str:
        """'threshold', 'watershed' or 'two_network'."""
        return self.spec.method

    @property
    def postprocess_settings(self) -> dict:
        """The post-processing settings in use: the defaults with :attr:`settings` applied."""
        return {**config.POSTPROCESS_DEFAULTS[self.method], **self.settings}

    # ----------------------------------------------------------------------------------
    # Where the networks come from
    # ----------------------------------------------------------------------------------

    @classmethod
    def from_models(cls, pipeline, models: dict, profile: str | None = None, seed: int = 0, **kwargs) -> "Pipeline":
        """A pipeline of models you hold: Keras models (their configuration is
        :func:`nucleitut.config.training_config` of ``profile``, as :func:`nucleitut.training.trained_model`
        trains them) or :class:`nucleitut.training.Network`."""
        spec = pipeline if isinstance(pipeline, config.PipelineSpec) else config.get_pipeline(pipeline)
        networks = as_networks({name: models[name] for name in spec.networks if name in models}, profile, seed)
        return cls(spec, networks, profile=profile, seed=seed, **kwargs)

    @classmethod
    def trained(cls, pipeline, profile: str | None = None, seed: int = 0, reuse: dict | None = None,
                verbose: bool = True, root: str | os.PathLike | None = None, **kwargs) -> "Pipeline":
        """The networks trained by the chapters or the campaign (:func:`nucleitut.config.model_dir`).

        ``reuse``: network name -> :class:`nucleitut.training.Network` already loaded; ``root``:
        the models folder (default :func:`nucleitut.config.models_dir`). Never trains: a missing
        network is an error that names the command that trains it.
        """
        spec = pipeline if isinstance(pipeline, config.PipelineSpec) else config.get_pipeline(pipeline)
        profile_name = config.get_profile(profile).name
        networks = {}
        for network in spec.networks:
            if reuse and network in reuse:
                networks[network] = reuse[network]
                continue
            directory = config.model_dir(network, profile_name, seed, root)
            if not (directory / "model.keras").exists():
                seed_option = f" --seed {seed}" if seed else ""
                raise FileNotFoundError(
                    f"{directory}: no trained {network} ({profile_name} profile, seed {seed}); train it with "
                    f"`python -m nucleitut train {network} --profile {profile_name}{seed_option}` "
                    f"or training.trained_model({network!r}, {profile_name!r})"
                )
            if verbose:
                print(f"Loading {network} ({profile_name} profile) from {directory.name}")
            networks[network] = training.load_network(directory)
        return cls(spec, networks, profile=profile_name, seed=seed, root=root, **kwargs)

    @classmethod
    def load(cls, folder: str | os.PathLike | None = None, pipeline: str | None = None,
             profile: str | None = None) -> "Pipeline":
        """A pipeline from a folder, never training.

        Parameters
        ----------
        folder : path, optional
            None: the reference networks (:meth:`reference`). A reference folder (with
            ``reference.json``, e.g. from ``finetune``), or trained networks as
            ``<folder>/<NET>/model.keras`` or ``<folder>/<profile>/<NET>/model.keras``.
        pipeline : str, optional
            Default: the reference's pipeline, else ``M6B4``.
        profile : str, optional
            The profile subfolder of trained networks.
        """
        if folder is None or (Path(folder) / "reference.json").is_file():
            networks, info = pretrained.load_reference(folder)
            chosen = config.get_pipeline(pipeline or info["pipeline"])
            same = chosen.name == config.get_pipeline(info["pipeline"]).name
            settings = info.get("postprocess", {}) if same else {}
            return cls(chosen, networks, settings=settings, chosen_on="reference.json" if settings else None,
                       training_diameter=info.get("nucleus_size", {}).get("median_diameter", sizing.TRAINING_DIAMETER),
                       profile=info.get("profile"))
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such models folder")
        chosen = config.get_pipeline(pipeline or "M6B4")
        profile_name = config.get_profile(profile).name
        networks = {}
        for network in chosen.networks:
            for candidate in (folder / network, folder / profile_name / network):
                if (candidate / "model.keras").is_file():
                    networks[network] = training.load_network(candidate)
                    break
            else:
                raise FileNotFoundError(
                    f"{folder}: no trained {network} (looked for {network}/model.keras and {profile_name}/{network}/model.keras); "
                    f"train it with `python -m nucleitut train {network} --profile {profile_name}`"
                )
        return cls(chosen, networks, profile=profile_name)

    @classmethod
    def reference(cls) -> "Pipeline":
        """The reference networks shipped in ``nucleitut/reference/``, loaded once per process.

        Raises
        ------
        nucleitut.pretrained.ReferenceMissing
            When they are not installed (the message names the command that builds them).
        """
        return _reference()

    def with_settings(self, settings: dict, chosen_on: str) -> "Pipeline":
        """The same networks with other post-processing settings (and where they were chosen)."""
        return type(self)(self.spec, self.networks, settings, chosen_on, self.training_diameter, self.size_band,
                          self.profile, self.seed, self.root)

    # ----------------------------------------------------------------------------------
    # Networks and post-processing
    # ----------------------------------------------------------------------------------

    def probabilities(self, image: np.ndarray, tta: bool = False, fuse_scales: bool = False,
                      known: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Each network's output for an RGB ``uint8`` image (:func:`nucleitut.predict.predict_probabilities`).

        ``known``: outputs without TTA already made, by network (the size estimate's first
        pass), so that view is not predicted twice. ``fuse_scales``: also predict the image
        rescaled by :data:`nucleitut.sizing.NEIGHBOUR_SCALES` (a neighbour whose shorter side
        would fall under 32 pixels is skipped), bring those outputs back to the image's grid
        and fuse them with its own by the TTA rule (:func:`nucleitut.predict.combine_predictions`).
        """
        known = known or {}
        probs = {n: predict.predict_probabilities(net.model, image, tta, as_is=known.get(n))
                 for n, net in self.networks.items()}
        if not fuse_scales:
            return probs
        views = [probs]
        for factor in sizing.NEIGHBOUR_SCALES:
            if min(image.shape[:2]) * factor >= 32:
                other = self.probabilities(sizing.rescale_image(image, factor), tta)
                views.append({n: sizing.resize_output(p, image.shape[:2]) for n, p in other.items()})
        return {n: predict.combine_predictions([view[n] for view in views]) for n in self.networks}

    def labels_from(self, probs: dict[str, np.ndarray], **params) -> np.ndarray:
        """Instance labels from the networks' outputs; ``params`` override the post-processing
        settings (:attr:`postprocess_settings`)."""
        settings = {**self.postprocess_settings, **params}
        if self.method == "threshold":
            return postprocess.threshold_labels(probs[self.spec.networks[0]][..., 0], **settings)
        if self.method == "watershed":
            return postprocess.watershed_labels(probs[self.spec.networks[0]], **settings)
        marker, mask = self.spec.networks
        return postprocess.two_network_labels(probs[marker], probs[mask][..., 0], **settings)

    def foreground(self, image: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The pipeline's foreground mask from one network without TTA (the cheap first pass
        of the size estimate), and that network's output by name.

        The mask network of a pair (> ``mask_threshold``), a one-channel network (>
        ``threshold``) or the inverted background of a three-class network (> ``mask_threshold``).
        """
        name = self.spec.networks[1] if self.method == "two_network" else self.spec.networks[0]
        probs = predict.predict_probabilities(self.networks[name].model, image)
        settings = self.postprocess_settings
        if self.method == "threshold":
            mask = probs[..., 0] > settings["threshold"]
        elif self.method == "two_network":
            mask = probs[..., 0] > settings["mask_threshold"]
        else:
            mask = 1.0 - probs[..., 0] > settings["mask_threshold"]
        return mask, {name: probs}

    def __call__(self, image: np.ndarray, tta: bool = False, fuse_scales: bool = False,
                 known: dict[str, np.ndarray] | None = None, **params) -> np.ndarray:
        """Instance labels (int32, H x W) of an RGB ``uint8`` image at its own scale; a large
        one in blocks (:func:`nucleitut.blocks.label_in_blocks`), so memory stays bounded.
        ``known`` and ``fuse_scales``: see :meth:`probabilities` (``known`` is not used for an
        image in blocks)."""
        if blocks.needs_blocks(image.shape):
            return blocks.label_in_blocks(lambda block: self(block, tta, fuse_scales, **params), image)
        return self.labels_from(self.probabilities(image, tta, fuse_scales, known), **params)

    # ----------------------------------------------------------------------------------
    # Any image
    # ----------------------------------------------------------------------------------

    def segment(self, image: np.ndarray, options: SegmentOptions | None = None, name: str = "image",
                **changes) -> Segmentation:
        """Segment any image: intensities, nucleus size, labels at the image's own size.

        1. **Intensities** (:func:`nucleitut.images.prepare_image`): 8-bit images in the
           brightness range of BBBC038v1 go to the networks as they are; 16-bit, float and
           very dim 8-bit images are stretched between their 1st and 99.8th percentiles.
        2. **Size** (:func:`nucleitut.sizing.estimate_diameter`): an image whose nuclei lie
           outside the training sizes (:attr:`size_band`) is rescaled towards the training
           median (:func:`nucleitut.sizing.scale_for`); a given ``diameter`` is always rescaled
           to the median; the labels are mapped back to the image's size.
        3. **Large images** are segmented in overlapping blocks (see ``__call__``).

        Parameters
        ----------
        image : ndarray, shape (H, W) or (H, W, C)
            Grey, RGB(A) or multi-channel; uint8, uint16, other integers or floats.
        options : SegmentOptions, optional
            Default ``SegmentOptions()``; keyword arguments (``tta=False``, ``diameter=30``,
            ...) change single options.
        name : str
            Names the image in messages and the summary.

        Returns
        -------
        Segmentation
        """
        options = dataclasses.replace(options or SegmentOptions(), **changes)
        start = time.perf_counter()
        rgb, intensity = images.prepare_image(image, channel=options.channel, normalize=options.normalize, name=name)
        diameter, known = None, None
        tta = predict.DEFAULT_TTA if options.tta else False
        if options.scale is not None:
            scale, source = float(options.scale), "given scale"
        elif options.diameter is not None:
            diameter = float(options.diameter)
            scale, source = sizing.scale_for(diameter, self.training_diameter, band=None), "given"
        elif options.size:
            bound = options.cost_bound
            networks, views = len(self.networks), len(predict.DEFAULT_TTA)
            limit = None if bound is None else sizing.max_enlargement(networks, views, bound)
            estimate = sizing.estimate_diameter(rgb, self.foreground, self.training_diameter, band=self.size_band,
                                                max_scale=limit)
            diameter, scale = estimate.diameter, estimate.scale
            source = estimate.untrusted or ("estimated" if diameter is not None else "no nuclei found")
            if estimate.capped:
                source += f" (enlargement capped at {limit:.2f}x: cost bound)"
            # The estimate's first pass over the image as it is is one of the segmentation's
            # views when the image is not rescaled: reused, not predicted again.
            known = estimate.native_outputs if scale == 1.0 else None
            if options.tta and bound is not None and scale > 1.0:
                tta = predict.DEFAULT_TTA[: sizing.views_within(scale, networks, views, bound)]
        else:
            scale, source = 1.0, "not estimated"
        seconds_size = time.perf_counter() - start
        labels = self(sizing.rescale_image(rgb, scale), tta=tta, fuse_scales=options.fuse_scales, known=known)
        labels = sizing.rescale_labels(labels, rgb.shape[:2])
        return Segmentation(labels, name, diameter, source, float(scale), intensity, time.perf_counter() - start,
                            seconds_size, rgb, views=len(tta) if tta else 1)


def as_networks(models: dict, profile: str | None = None, seed: int = 0) -> dict:
    """Network name -> :class:`nucleitut.training.Network` for Keras models or Networks: a Keras
    model gets the configuration :func:`nucleitut.training.trained_model` trains it with
    (:func:`nucleitut.config.training_config` of ``profile`` and ``seed``)."""
    return {name: model if isinstance(model, training.Network) else
            training.Network(model, config.training_config(name, profile, seed=seed))
            for name, model in models.items()}


@functools.lru_cache(maxsize=1)
def _reference() -> Pipeline:
    return Pipeline.load(None)


def segment(image: np.ndarray, models: str | os.PathLike | None = None, pipeline: str | None = None,
            profile: str | None = None, **options) -> np.ndarray:
    """Instance labels of the nuclei in an image, with the reference networks by default.

    ``nucleitut.segment(image)``. Never trains. Intensities are normalised and the image is
    rescaled when its nuclei lie outside the training images' sizes (:meth:`Pipeline.segment`);
    the labels come back at the image's own size.

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, C)
    models : path, optional
        Another reference folder or trained networks (:meth:`Pipeline.load`).
    pipeline, profile : str, optional
        Which pipeline of ``models`` (default: the reference's).
    **options
        Fields of :class:`SegmentOptions`: ``tta``, ``size``, ``diameter``, ``scale``,
        ``channel``, ``normalize``, ``fuse_scales``.

    Returns
    -------
    ndarray of int32, shape (H, W)
        0 = background, nuclei ``1..n``.

    Raises
    ------
    nucleitut.pretrained.ReferenceMissing
        Without ``models`` when the reference networks are not installed.
    nucleitut.images.DataError
        For images that cannot be segmented (constant, too small, a missing channel).
    """
    chosen = Pipeline.reference() if models is None and pipeline is None else Pipeline.load(models, pipeline, profile)
    return chosen.segment(image, SegmentOptions(**options)).labels


class SeedEnsemble:
    """A pipeline whose every network is the ensemble of its trainings with ``seeds``.

    The paper describes ensembles as "the averaged output of multiple networks" (section 4.2)
    and reports none. Here each network of the pipeline (for M3B1: M3 and B1) is predicted by
    each of its trainings, with or without TTA, and the outputs are fused by
    :func:`nucleitut.predict.combine_predictions` (channels averaged, the border channel of a
    three-class network by maximum: this project's rule); the post-processing then runs once on
    the fused outputs. Fusing the TTA outputs of each training equals fusing all (training,
    view) predictions at once (mean of equal-sized means, max of maxima).

    Parameters
    ----------
    pipeline : str
    seeds : sequence of int
        At least two different trainings (:func:`nucleitut.config.model_dir`) of every network.
    profile : str, optional
    networks : dict, optional
        Seed -> ``{network: Network}``; missing ones are loaded as :meth:`Pipeline.trained` does.
    """

    def __init__(self, pipeline, seeds: Sequence[int], profile=None, networks=None, verbose=True, root=None):
        self.seeds = [int(seed) for seed in seeds]
        if len(self.seeds) < 2 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"a seed ensemble needs at least two different seeds, got {list(seeds)}")
        #: One :class:`Pipeline` per training; the first one's post-processing is used.
        self.members = [Pipeline.trained(pipeline, profile, seed, reuse=(networks or {}).get(seed), verbose=verbose, root=root)
                        for seed in self.seeds]
        self.spec = self.members[0].spec
        self.profile = self.members[0].profile

    @property
    def name(self) -> str:
        return self.spec.name

    def probabilities(self, image: np.ndarray, tta: bool = False) -> dict[str, np.ndarray]:
        """Each network's output fused over its trainings."""
        outputs = [member.probabilities(image, tta) for member in self.members]
        return {n: predict.combine_predictions([output[n] for output in outputs]) for n in self.spec.networks}

    def labels_from(self, probs: dict[str, np.ndarray], **params) -> np.ndarray:
        """Instance labels from fused outputs (:meth:`Pipeline.labels_from`)."""
        return self.members[0].labels_from(probs, **params)

    def __call__(self, image: np.ndarray, tta: bool = False, **params) -> np.ndarray:
        """Instance labels (int32, H x W) for an RGB uint8 image (no blocks: images of the data set's size)."""
        return self.labels_from(self.probabilities(image, tta), **params)
