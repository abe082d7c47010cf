"""One place for configuration: the paper's Table 3 networks, the three profiles and the pipelines.

Book chapters: *First results* (B networks), *Instance segmentation* (M1, M2), *Two
networks* (M3-M7), *Improving training* (augmentation sets, plateau schedule).

Table 3 of Scherr et al. (2018) lists the networks the paper trained on BBBC038v1. We keep
the paper's structure and names:

* **B1-B5**: one output channel (sigmoid, BceDice) trained on the original labels. Used
  alone (threshold) or as the *mask* network of the two-network approach.
* **M1, M2**: three classes (softmax, CceDice) with *boundary* (M1) or *border* (M2)
  targets; post-processed by the marker-controlled watershed.
* **M3-M7**: three classes with the *marker* target (eroded objects, dilated borders); the
  *marker* network of the two-network approach, paired as M3B1 ... M7B5.
* Learning rate (Table 3, column *lr*): 1e-4 for every row except the starred B4, B5, M6
  and M7, which start at 2e-4 and quarter it after a 5-epoch validation-loss plateau
  (Table 3, footnote "*"). Rows without a star have no plateau rule.
* B1-B4 and M1-M6 are 4-block U-Nets with F=64 in the first level; B5 and M7 have 5 blocks
  with F=32.
* Erosion/dilation (Table 3's last column): M3-M7 are trained on eroded objects and dilated
  borders, M1 and M2 on the plain boundary/border targets. **The sizes are this project's
  choice** (the paper gives none): objects eroded by a disk of radius 2, borders dilated by
  a disk of radius 2 (:data:`MARKER_EROSION`, :data:`MARKER_BORDER_DILATION`). M2's border
  is the 3x3-neighbourhood border of :func:`nucleitut.targets.border_target` without any
  dilation, as in Table 3 ("-").

Where the rows differ (augmentation set a, b or none; schedule) is written out in
:data:`TABLE3`. Profiles change only sizes and budgets, never the structure:

* ``quick``: 2-core CPU, the embedded sample, small networks (one level shallower and eight
  times thinner than Table 3: 3 blocks with F=8, or 4 blocks with F=4 for B5/M7), 128x128
  crops, 10 epochs (at most 200 s) per network, every learning rate of Table 3 times 10.
  For CI and laptops: the whole book in under 15 minutes on 2 cores.
* ``full``: the paper's settings on the whole data set, for a GPU. bfloat16 mixed precision
  and the cap of 200 epochs are this project's choices (the paper needed 40-100 epochs,
  section 4.6, and stops after 10 epochs without improvement, Table 3).
* ``cpu``: the whole data set on a 2-core CPU: Table 3 networks four times thinner, 128x128
  crops, 8 epochs per network (16 to 80 minutes each on a 2-core machine, by the campaign's
  records in ``results/``), every learning
  rate of Table 3 times 10 and lowered along half a cosine over the 8 epochs (this
  project's choice: 8 epochs are too few for the plateau rule to act). Used for the Table 3
  campaign records in ``results/``.
* ``gpu``: the whole book on one GPU in about 8 minutes (``tools/gpu_book.sh``): the full
  profile's settings (Table 3 networks, 256x256 crops, the paper's learning rates and plateau
  rule, bfloat16 mixed precision) with every training stopped after :data:`GPU_TIME_BUDGET_S`
  seconds (this project's choice, so that the six networks the chapters use, trained at once
  on the one GPU, and all chapters fit the 8 minutes).

Every profile keeps the paper's ratio between starred and plain rows: it multiplies all of
Table 3's rates by one factor (``Profile.lr_factor``).

The profile is chosen by the environment variable ``NUCLEITUT_PROFILE`` or by the
``profile`` argument of the functions that take one; chapters are never edited for it.
``NUCLEITUT_TIME_BUDGET`` (seconds per network, 0 for none) overrides the profile's
training time budget, for example to try a chapter in a hurry.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

__all__ = [
    "NetworkSpec", "Profile", "TrainingConfig", "TABLE3", "PROFILES", "PAIRS", "PipelineSpec", "POSTPROCESS_DEFAULTS",
    "POSTPROCESS_GRID", "get_network", "get_pipeline", "get_profile", "training_config", "cache_dir", "models_dir",
    "model_dir", "results_dir", "available_devices", "ENVIRONMENT_VARIABLES",
]


@dataclasses.dataclass(frozen=True)
class NetworkSpec:
    """One row of the paper's Table 3."""

    name: str
    target: str  #: 'binary', 'boundary', 'border' or 'marker' (see nucleitut.targets)
    blocks: int
    filters: int
    augmentation: str  #: the paper's 'none', 'a' or 'b', or this project's 'robust' (nucleitut.training.AUGMENTATION_SETS)
    plateau: bool  #: learning rate quartered after 5 plateau epochs (starred in Table 3)
    learning_rate: float  #: Table 3's lr column (1e-4, or 2e-4 for the starred rows)
    erosion: int = 0  #: marker target: objects eroded by a disk of this radius (size: this project's choice)
    border_dilation: int = 0  #: border/marker target: borders dilated by a disk of this radius

    @property
    def eroded(self) -> bool:
        """Table 3's "Erosion/Dilation" column: trained on eroded objects and dilated borders."""
        return self.target == "marker"

    @property
    def out_channels(self) -> int:
        return 1 if self.target == "binary" else 3

    @property
    def loss(self) -> str:
        return "bce_dice" if self.target == "binary" else "cce_dice"

    @property
    def target_params(self) -> dict:
        if self.target == "marker":
            return {"erosion": self.erosion, "border_dilation": self.border_dilation}
        if self.target == "border":
            return {"dilation": self.border_dilation}
        return {}


#: Erosion and border dilation (disk radii) of the marker networks M3-M7. The paper marks
#: these rows "Erosion/Dilation x" in Table 3 but gives no sizes: these are this project's choice.
MARKER_EROSION = 2
MARKER_BORDER_DILATION = 2


def _row(name, target, blocks, filters, augmentation, starred):
    """A Table 3 row: starred rows start at lr 2e-4 and quarter it on a 5-epoch plateau."""
    marker = target == "marker"
    return NetworkSpec(
        name, target, blocks, filters, augmentation, plateau=starred, learning_rate=2e-4 if starred else 1e-4,
        erosion=MARKER_EROSION if marker else 0, border_dilation=MARKER_BORDER_DILATION if marker else 0,
    )


#: The paper's Table 3 as data.
TABLE3: dict[str, NetworkSpec] = {
    spec.name: spec
    for spec in [
        _row("B1", "binary", 4, 64, "none", False),
        _row("B2", "binary", 4, 64, "a", False),
        _row("B3", "binary", 4, 64, "b", False),
        _row("B4", "binary", 4, 64, "b", True),
        _row("B5", "binary", 5, 32, "b", True),
        _row("M1", "boundary", 4, 64, "none", False),
        _row("M2", "border", 4, 64, "none", False),
        _row("M3", "marker", 4, 64, "none", False),
        _row("M4", "marker", 4, 64, "a", False),
        _row("M5", "marker", 4, 64, "b", False),
        _row("M6", "marker", 4, 64, "b", True),
        _row("M7", "marker", 5, 32, "b", True),
    ]
}

#: Two-network combinations (marker network, mask network) as in the paper's Figure 9.
PAIRS: dict[str, tuple[str, str]] = {
    "M3B1": ("M3", "B1"),
    "M4B2": ("M4", "B2"),
    "M5B3": ("M5", "B3"),
    "M6B4": ("M6", "B4"),
    "M7B5": ("M7", "B5"),
}


@dataclasses.dataclass(frozen=True)
class Profile:
    """Sizes and budgets; ``None`` means "as the paper"."""

    name: str
    data: str  #: default data source: 'sample' or 'full' (see nucleitut.data.resolve_source)
    blocks_change: int  #: added to Table 3's number of blocks (quick: one level less)
    filters_divisor: int  #: Table 3's F is divided by this (quick: 8, so 64 -> 8)
    crop_size: int
    batch_size: int
    lr_factor: float  #: every Table 3 learning rate is multiplied by this (keeps the starred/plain ratio)
    max_epochs: int
    early_stopping_patience: int
    plateau_patience: int
    plateau_factor: float
    time_budget_s: float | None  #: stop training after this many seconds (None: no limit)
    mixed_precision: bool
    description: str
    #: 'paper' (constant rate, quartered on plateaus for starred rows) or 'cosine' (every row:
    #: half a cosine over ``max_epochs``, ending at 1 %; see training.cosine_schedule)
    lr_schedule: str = "paper"


#: Seconds of training per network in the ``gpu`` profile. ``tools/gpu_book.sh`` trains the
#: six networks the chapters use at once on one GPU (compilation included in these seconds),
#: runs the chapters, and must end within 8 minutes; see results/README.md for the run.
GPU_TIME_BUDGET_S = 120.0

PROFILES: dict[str, Profile] = {
    "quick": Profile(
        name="quick",
        data="sample",
        blocks_change=-1,
        # Eight times thinner (F=8), not four (F=16): the book's six quick networks train in
        # about half the time (B1: 52 s against 101 s for 10 epochs on 2 idle cores), which
        # brings the whole quick book under 15 minutes. It costs accuracy: on the sample's 8
        # validation images (M3B1 without TTA, seeds 0 and 1) 0.284 and 0.267 against 0.323
        # and 0.314 with F=16; B1 0.298 and 0.264 against 0.302 and 0.294. This project's
        # choice for CI and laptops; the cpu and full profiles keep their widths.
        filters_divisor=8,
        crop_size=128,
        batch_size=8,
        # Small networks on a few minutes of CPU learn too slowly at the paper's 1e-4 / 2e-4.
        lr_factor=10.0,
        # A fixed number of epochs keeps quick results comparable between machines; the
        # time budget only guards slow or busy ones.
        max_epochs=10,
        early_stopping_patience=10,
        plateau_patience=5,
        plateau_factor=0.25,
        time_budget_s=200.0,
        mixed_precision=False,
        description="2-core CPU: embedded sample, U-Nets one level shallower and 8x thinner than Table 3 (3 blocks F=8; 4 blocks F=4 for B5/M7), 128x128 crops, 10 epochs (at most 200 s) per network",
    ),
    "cpu": Profile(
        name="cpu",
        data="full",
        blocks_change=0,
        filters_divisor=4,
        crop_size=128,
        batch_size=8,
        lr_factor=10.0,
        # 8 epochs took 16 to 80 minutes per network in the campaign (results/, on 2 cores
        # shared with other work). A fixed number of epochs (not a time budget) keeps
        # the campaign's networks comparable when other jobs share the cores.
        max_epochs=8,
        early_stopping_patience=10,
        plateau_patience=5,
        plateau_factor=0.25,
        time_budget_s=None,
        mixed_precision=False,
        description="2-core CPU, full data: Table 3 networks four times thinner (4 blocks F=16; 5 blocks F=8 for B5/M7), 128x128 crops, 8 epochs per network, Table 3 learning rates x10 lowered along half a cosine over the 8 epochs",
        # Too few epochs for the plateau rule to act: every network anneals its learning rate
        # over the 8 epochs instead (training.cosine_schedule), ending at 1 % of it.
        lr_schedule="cosine",
    ),
    "full": Profile(
        name="full",
        data="full",
        blocks_change=0,
        filters_divisor=1,
        crop_size=256,
        batch_size=8,
        lr_factor=1.0,
        max_epochs=200,
        early_stopping_patience=10,
        plateau_patience=5,
        plateau_factor=0.25,
        time_budget_s=None,
        mixed_precision=True,
        description="GPU: the paper's settings on the full data set (Table 3 networks, 256x256 crops)",
    ),
    "gpu": Profile(
        name="gpu",
        data="full",
        blocks_change=0,
        filters_divisor=1,
        crop_size=256,
        batch_size=8,
        lr_factor=1.0,
        max_epochs=200,
        early_stopping_patience=10,
        plateau_patience=5,
        plateau_factor=0.25,
        time_budget_s=GPU_TIME_BUDGET_S,
        mixed_precision=True,
        description=f"one GPU, the whole book in about 8 minutes: Table 3 networks (4 blocks F=64; 5 blocks F=32 for B5/M7), 256x256 crops, the paper's learning rates, bfloat16, every network stopped after {GPU_TIME_BUDGET_S:.0f} s of training",
    ),
}


def get_profile(profile: "str | Profile | None" = None) -> Profile:
    """The profile named by ``profile`` or ``$NUCLEITUT_PROFILE`` (default ``quick``)."""
    if isinstance(profile, Profile):
        return profile
    name = profile or os.environ.get("NUCLEITUT_PROFILE") or "quick"
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}") from None


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Everything needed to train one network in one profile (saved next to the model)."""

    network: str
    profile: str
    target: str
    target_params: dict
    blocks: int
    filters: int
    out_channels: int
    loss: str
    augmentation: str
    plateau: bool
    crop_size: int
    batch_size: int
    learning_rate: float
    beta_1: float
    beta_2: float
    amsgrad: bool
    max_epochs: int
    early_stopping_patience: int
    plateau_patience: int
    plateau_factor: float
    time_budget_s: float | None
    mixed_precision: bool
    seed: int
    lr_schedule: str = "paper"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainingConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


def get_network(name: str) -> NetworkSpec:
    """The Table 3 row called ``name`` (``B1``..``B5``, ``M1``..``M7``)."""
    try:
        return TABLE3[name.upper()]
    except KeyError:
        raise ValueError(f"unknown network {name!r}; Table 3 has {', '.join(TABLE3)}") from None


def training_config(network: str, profile: "str | Profile | None" = None, seed: int = 0, **overrides) -> TrainingConfig:
    """Combine a Table 3 row with a profile; keyword arguments override single settings.

    >>> training_config("M3", "quick").blocks, training_config("M3", "full").filters
    (3, 64)
    """
    spec = get_network(network)
    prof = get_profile(profile)
    budget = os.environ.get("NUCLEITUT_TIME_BUDGET")
    if budget:  # a teacher's or a test's shortcut: seconds of training per network
        prof = dataclasses.replace(prof, time_budget_s=float(budget) if float(budget) > 0 else None)
    if prof.lr_schedule not in ("paper", "cosine"):
        raise ValueError(f"profile {prof.name!r}: unknown learning-rate schedule {prof.lr_schedule!r}")
    config = TrainingConfig(
        network=spec.name,
        profile=prof.name,
        target=spec.target,
        target_params=spec.target_params,
        blocks=spec.blocks + prof.blocks_change,
        filters=spec.filters // prof.filters_divisor,
        out_channels=spec.out_channels,
        loss=spec.loss,
        augmentation=spec.augmentation,
        plateau=spec.plateau,
        crop_size=prof.crop_size,
        batch_size=prof.batch_size,
        learning_rate=spec.learning_rate * prof.lr_factor,
        beta_1=0.9,
        beta_2=0.99,
        amsgrad=True,
        max_epochs=prof.max_epochs,
        early_stopping_patience=prof.early_stopping_patience,
        plateau_patience=prof.plateau_patience,
        plateau_factor=prof.plateau_factor,
        time_budget_s=prof.time_budget_s,
        mixed_precision=prof.mixed_precision,
        seed=seed,
        lr_schedule=prof.lr_schedule,
    )
    return dataclasses.replace(config, **overrides)


# --------------------------------------------------------------------------------------
# Pipelines and their post-processing
# --------------------------------------------------------------------------------------


#: Post-processing settings of the pipelines: the paper's thresholds (mask 0.3, markers 0.6;
#: sections 3.6 and 4.1) plus size priors, which are this project's choice (the paper only
#: suggests a-priori size information as a possible improvement, section 4.6). The smallest
#: nucleus of the fixed stage1_train labels has 21 pixels, so objects under 15 pixels are noise; marker fragments under 3 pixels would split nuclei. Both sizes were
#: chosen on the validation images of the quick profile, never on test images.
POSTPROCESS_DEFAULTS = {
    "threshold": {"threshold": 0.5, "min_area": 15},
    "watershed": {"mask_threshold": 0.3, "marker_threshold": 0.6, "min_marker_area": 3, "min_area": 15},
    "two_network": {"mask_threshold": 0.3, "marker_threshold": 0.6, "min_marker_area": 3, "min_area": 15},
}

#: Candidate settings for :func:`nucleitut.evaluation.tune_postprocessing` (every combination is tried).
POSTPROCESS_GRID = {
    "threshold": {"threshold": (0.3, 0.4, 0.5, 0.6, 0.7), "min_area": (15, 30)},
    "watershed": {
        "mask_threshold": (0.3, 0.4, 0.5),
        "marker_threshold": (0.4, 0.5, 0.6, 0.7),
        "min_marker_area": (3, 10),
        "min_area": (15, 30),
    },
}
POSTPROCESS_GRID["two_network"] = POSTPROCESS_GRID["watershed"]


@dataclasses.dataclass(frozen=True)
class PipelineSpec:
    """A network or a pair of networks and the post-processing that turns them into labels."""

    name: str
    networks: tuple[str, ...]
    method: str  #: 'threshold', 'watershed' or 'two_network'


def get_pipeline(name: str) -> PipelineSpec:
    """The pipeline called ``name``: a Table 3 network (``B1``, ``M2``, ...) or a marker and a
    mask network (``M3B1``; the pairs of Figure 9 are :data:`PAIRS`, other combinations such
    as ``M5B1`` are allowed for experiments).

    * ``B1`` .. ``B5``: one-channel network, threshold, connected components;
    * ``M1``, ``M2`` and ``M3`` .. ``M7`` alone: marker-controlled watershed on the network's
      three classes;
    * ``M3B1``, ``M6B4``, ...: two networks, markers from M and the mask from B.

    >>> get_pipeline("m6b4")
    PipelineSpec(name='M6B4', networks=('M6', 'B4'), method='two_network')
    >>> get_pipeline("B2").method
    'threshold'
    """
    key = name.upper()
    if key in PAIRS:
        return PipelineSpec(key, PAIRS[key], "two_network")
    match = re.fullmatch(r"(M[1-7])(B[1-5])", key)
    if match:
        return PipelineSpec(key, (match.group(1), match.group(2)), "two_network")
    spec = get_network(key)
    return PipelineSpec(key, (key,), "threshold" if spec.target == "binary" else "watershed")


# --------------------------------------------------------------------------------------
# Folders and environment variables
# --------------------------------------------------------------------------------------

#: Every environment variable the library reads, and what it sets.
ENVIRONMENT_VARIABLES = {
    "NUCLEITUT_PROFILE": "profile: quick (default), cpu, full or gpu",
    "NUCLEITUT_DATA": "the full data set: a folder or zip in the Kaggle layout, or an http(s) address",
    "NUCLEITUT_DATA_URL": "address of the full data set's zip for downloads",
    "NUCLEITUT_DATA_SHA256": "expected checksum of that zip",
    "NUCLEITUT_CACHE": "user cache: downloads, decoded data, trained networks (default ~/.cache/nucleitut)",
    "NUCLEITUT_MODELS": "folder of trained networks (default <cache>/models)",
    "NUCLEITUT_RESULTS": "folder of results records (default: the clone's results/, else ./results)",
    "NUCLEITUT_TIME_BUDGET": "seconds of training per network (0: none), overriding the profile",
    "NUCLEITUT_COMMIT": "commit named in records where the code is not a git clone",
}

_PACKAGE = Path(__file__).resolve().parent


def cache_dir() -> Path:
    """The user cache folder: ``$NUCLEITUT_CACHE`` or the platform's cache (``~/.cache/nucleitut``)."""
    env = os.environ.get("NUCLEITUT_CACHE")
    if env:
        return Path(env).expanduser()
    import pooch

    return Path(pooch.os_cache("nucleitut"))


def models_dir() -> Path:
    """Where trained networks live: ``$NUCLEITUT_MODELS`` or ``<cache>/models``."""
    env = os.environ.get("NUCLEITUT_MODELS")
    return Path(env).expanduser() if env else cache_dir() / "models"


def model_dir(network: str, profile: "str | Profile | None" = None, seed: int = 0,
              root: "str | os.PathLike | None" = None) -> Path:
    """Folder of one trained network: ``<models>/<profile>/<NET>`` for seed 0 (the one the
    chapters use), ``<models>/<profile>/seed<k>/<NET>`` for repeated trainings; ``<models>``
    is ``root`` or :func:`models_dir`.

    >>> model_dir("m3", "cpu", seed=2, root="/m").as_posix()
    '/m/cpu/seed2/M3'
    """
    base = (Path(root).expanduser() if root is not None else models_dir()) / get_profile(profile).name
    return (base if seed == 0 else base / f"seed{seed}") / get_network(network).name


def results_dir() -> Path:
    """Where records are read and written: ``$NUCLEITUT_RESULTS``; else the ``results/``
    folder of the repository this package sits in (a clone); else ``./results`` (an
    installed wheel)."""
    env = os.environ.get("NUCLEITUT_RESULTS")
    if env:
        return Path(env).expanduser()
    clone = _PACKAGE.parent
    if (clone / "pyproject.toml").exists() and (clone / "results").is_dir():
        return clone / "results"
    return Path.cwd() / "results"


def available_devices() -> list[str]:
    """Accelerator devices of the current Keras backend (empty on a plain CPU)."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return [f"{d} ({d.device_kind})" for d in jax.devices() if d.platform != "cpu"]
    if backend == "tensorflow":
        import tensorflow as tf

        return [d.name for d in tf.config.list_logical_devices("GPU")]
    return []
