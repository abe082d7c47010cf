"""Results records: provenance, reading and writing, the Figure 9 chart, the findings table and
the paper's recommendations checked against the records.

Book chapters: *Evaluation* (Figure 9 from the stored records, the findings table and how its
intervals are made) and *Improving training* (the marker networks compared, the paper's eleven
recommendations with a status each).

A record is one JSON file per scored pipeline (written by :mod:`nucleitut.evaluation`): the
pipeline, with or without TTA, the profile, the seed of the training, the data (name, image
count and a hash of the image ids — never a local path), the per-image and mean Kaggle
scores, the networks' training facts, and :func:`environment` (hardware, versions, commit,
date). Repeated trainings of the same network have one record per seed; the chart shows their
mean and range, the findings table differences of means with a 95 % interval (:func:`compare`,
:func:`tta_gains`).
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy import stats

from . import config

__all__ = [
    "environment",
    "record_name",
    "record_label",
    "is_tuned",
    "write_record",
    "read_records",
    "select",
    "summary",
    "describe",
    "figure9",
    "findings",
    "findings_table",
    "compare",
    "tta_gains",
    "verdict",
    "bootstrap_interval",
    "t_interval",
    "recommendations",
    "recommendations_table",
    "read_timings",
    "describe_timing",
    "VERDICTS",
    "STATUSES",
]

_PACKAGE = Path(__file__).resolve().parent


# --------------------------------------------------------------------------------------
# Provenance
# --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def git_commit() -> str:
    """The commit of the code this process runs, read once (later commits do not change it);
    ``+changes`` when tracked files differ from it; ``$NUCLEITUT_COMMIT`` outside a clone."""
    if os.environ.get("NUCLEITUT_COMMIT"):
        return os.environ["NUCLEITUT_COMMIT"]
    try:
        root = _PACKAGE.parent
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        if out.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict:
    """Versions of Python and of the packages the results depend on."""
    import keras
    import matplotlib
    import scipy
    import skimage

    import nucleitut

    backend = keras.backend.backend()
    try:
        backend_version = __import__(backend).__version__
    except Exception:  # a backend without __version__ still runs
        backend_version = "unknown"
    return {
        "python": platform.python_version(),
        "nucleitut": nucleitut.__version__,
        "keras": keras.__version__,
        "backend": backend,
        "backend_version": backend_version,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-image": skimage.__version__,
        "matplotlib": matplotlib.__version__,
    }


def environment() -> dict:
    """Hardware, software versions, commit and date: stored in every record and printed by
    every chapter's banner (:func:`nucleitut.notebook.setup`)."""

    return {
        "hardware": {"cpu": _cpu_name(), "cpu_cores": os.cpu_count(), "accelerators": config.available_devices() or None},
        "versions": versions(),
        "commit": git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


# --------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------


def is_tuned(record: dict) -> bool:
    """Whether a record's post-processing settings were chosen on validation images."""
    return record.get("postprocess", {}).get("chosen_on", "defaults").startswith("validation")


def record_label(record: dict) -> str:
    """The pipeline's name as Figure 9 shows it (``M3B1`` or ``M3B1 tuned``)."""
    return record["pipeline"] + (" tuned" if is_tuned(record) else "")


def record_name(record: dict) -> str:
    """``<profile>_<pipeline>[_tta][_tuned][_seed<k>].json`` (no suffix for seed 0).

    >>> record_name({"profile": "cpu", "pipeline": "M3B1", "tta": True, "seed": 2})
    'cpu_M3B1_tta_seed2.json'
    """
    seed = record.get("seed", 0)
    return (
        f"{record['profile']}_{record['pipeline']}{'_tta' if record['tta'] else ''}"
        f"{'_tuned' if is_tuned(record) else ''}{f'_seed{seed}' if seed else ''}.json"
    )


def write_record(record: dict, folder: str | os.PathLike | None = None) -> Path:
    """Write a record as ``<folder>/<record_name(record)>`` (default :func:`nucleitut.config.results_dir`)."""
    folder = Path(folder) if folder is not None else config.results_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / record_name(record)
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def read_records(folder: str | os.PathLike | None = None, profile: str | None = None) -> list[dict]:
    """All records in ``folder`` (default :func:`nucleitut.config.results_dir`, not its subfolders), optionally
    of one profile, sorted by profile, pipeline, TTA and seed."""
    folder = Path(folder) if folder is not None else config.results_dir()
    found = []
    for path in sorted(folder.glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not a valid results record ({error})") from None
        if isinstance(record, dict) and "pipeline" in record and (profile is None or record.get("profile") == profile):
            found.append(record)
    return sorted(found, key=lambda r: (r["profile"], _order(record_label(r)), r["tta"], r.get("seed", 0)))


def _order(label: str):
    base = label.split()[0]
    return (base == "classical", len(base), base, label)


def describe(record: dict) -> str:
    """Two lines about a record: score, training, hardware, commit and date.

    >>> print(describe({"pipeline": "B1", "profile": "full", "tta": False, "n_images": 120,
    ...                 "mean": {"kaggle_score": 0.5}, "networks": {"B1": {"epochs": 13}},
    ...                 "hardware": {"cpu": "x", "accelerators": ["H200"]}, "commit": "abc", "date": "2026"}))
    B1 (full profile): mean Kaggle score 0.500 on 120 test images
        training: B1 13 epochs; hardware: H200 (?); commit abc, date 2026
    """
    hardware = record.get("hardware", {})
    where = ", ".join(hardware.get("accelerators") or []) or hardware.get("cpu", "?")
    epochs = ", ".join(f"{name} {info.get('epochs')} epochs" for name, info in record.get("networks", {}).items())
    seed = f", seed {record['seed']}" if record.get("seed") else ""
    return (
        f"{record_label(record)}{' + TTA' if record['tta'] else ''} ({record['profile']} profile{seed}): mean Kaggle score "
        f"{record['mean']['kaggle_score']:.3f} on {record['n_images']} test images\n    training: {epochs}; hardware: "
        f"{where} ({record.get('versions', {}).get('backend', '?')}); commit {record.get('commit')}, date {record.get('date')}"
    )


def select(records: Sequence[dict], pipeline: str | None = None, tta: bool | None = None, tuned: bool = False) -> list[dict]:
    """Records of one pipeline (any if ``None``), with/without TTA (any if ``None``), tuned or not."""
    return [
        r for r in records
        if (pipeline is None or r["pipeline"] == pipeline) and (tta is None or r["tta"] == tta) and is_tuned(r) == tuned
    ]


def summary(records: Sequence[dict]) -> list[dict]:
    """One row per (label, TTA): mean, min and max of the mean Kaggle score over seeds.

    >>> rows = summary([{"pipeline": "B1", "tta": False, "seed": s, "mean": {"kaggle_score": v}}
    ...                 for s, v in enumerate([0.5, 0.6, 0.7])])
    >>> rows[0]["n_seeds"], round(rows[0]["mean"], 3), rows[0]["min"], rows[0]["max"]
    (3, 0.6, 0.5, 0.7)
    """
    groups: dict[tuple[str, bool], dict[int, float]] = {}
    for r in records:
        groups.setdefault((record_label(r), bool(r["tta"])), {})[r.get("seed", 0)] = r["mean"]["kaggle_score"]
    rows = []
    for (label, tta), by_seed in sorted(groups.items(), key=lambda item: (_order(item[0][0]), item[0][1])):
        scores = np.array(list(by_seed.values()))
        rows.append({
            "label": label, "tta": tta, "n_seeds": len(scores), "seeds": sorted(by_seed),
            "mean": float(scores.mean()), "min": float(scores.min()), "max": float(scores.max()),
        })
    return rows


# --------------------------------------------------------------------------------------
# Figure 9
# --------------------------------------------------------------------------------------


def figure9(records: Sequence[dict], ax=None, title: str | None = None, reference: float | None = None):
    """The paper's Figure 9 from records: mean Kaggle score per pipeline, without and with TTA.

    Bars are the mean over the seeds a pipeline was trained with; whiskers span the lowest
    to the highest seed; bars of pipelines trained once are hatched (no spread known).
    Records with post-processing tuned on validation images get their own bars
    (``M6B4 tuned``). A record of the ``classical`` pipeline, or ``reference``, is drawn as a
    dashed line.
    """
    import matplotlib.pyplot as plt

    classical = [r for r in records if r["pipeline"] == "classical"]
    if reference is None and classical:
        reference = float(np.mean([r["mean"]["kaggle_score"] for r in classical]))
    rows = summary([r for r in records if r["pipeline"] != "classical"])
    labels = sorted({row["label"] for row in rows}, key=_order)
    if ax is None:
        _, ax = plt.subplots(figsize=(max(4, 0.75 * len(labels) + 2), 3.8))
    width = 0.38
    top = 0.1
    for offset, tta, colour in ((-width / 2, False, "#8da0cb"), (width / 2, True, "#fc8d62")):
        for x, label in enumerate(labels):
            row = next((r for r in rows if r["label"] == label and r["tta"] == tta), None)
            if row is None:
                continue
            single = row["n_seeds"] == 1
            ax.bar(x + offset, row["mean"], width, color=colour, hatch="//" if single else None, edgecolor="white" if single else None)
            if not single:
                ax.errorbar(x + offset, row["mean"], yerr=[[row["mean"] - row["min"]], [row["max"] - row["mean"]]],
                            color="0.15", capsize=2, linewidth=1)
            ax.text(x + offset, row["max"] + 0.008, f"{row['mean']:.2f}", ha="center", va="bottom", fontsize=6, rotation=90)
            top = max(top, row["max"])
    from matplotlib.patches import Patch

    handles = [Patch(color="#8da0cb", label="without TTA"), Patch(color="#fc8d62", label="with TTA"),
               Patch(facecolor="0.7", hatch="//", edgecolor="white", label="one seed (no spread)")]
    if reference is not None:
        ax.axhline(reference, color="0.2", linestyle="--", linewidth=1)
        handles.append(plt.Line2D([], [], color="0.2", linestyle="--", label=f"classical ({reference:.3f})"))
    ax.set_xticks(np.arange(len(labels)), [label.replace(" ", "\n") for label in labels], fontsize=8)
    ax.set_ylabel("mean Kaggle score")
    ax.set_ylim(0, min(1.0, top * 1.25))
    ax.legend(handles=handles, loc="upper left", fontsize=7, ncol=2)
    if title:
        ax.set_title(title)
    return ax


# --------------------------------------------------------------------------------------
# The paper's findings and recommendations, checked against the records
# --------------------------------------------------------------------------------------

#: The verdicts :func:`findings` gives: the 95 % interval of a difference lies above 0
#: (``supported``), below 0 (``contradicted``), or contains 0 (``undecided``).
VERDICTS = ("supported", "contradicted", "undecided", "not measured yet")
#: Level of every interval.
CONFIDENCE = 0.95
#: Trainings each of two pipelines needs before their difference gets a t-interval over
#: trainings; with fewer, the interval comes from the test images alone (this project's choice:
#: two trainings give one difference, which says little about the spread between trainings).
MIN_TRAININGS = 3
#: Resamples of the test images per bootstrap interval, and the seed of every bootstrap: each
#: interval draws from a generator of its own, so no comparison depends on which ran before.
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
#: Where an interval comes from, as the tables print it.
T_TRAININGS = "t over trainings"
IMAGES_ONLY = "images only"
T_ROUNDS = "t over rounds"


def verdict(low: float, high: float) -> str:
    """``supported`` when the interval of a difference lies above 0, ``contradicted`` below 0,
    ``undecided`` when it contains 0.

    >>> verdict(0.01, 0.03), verdict(-0.03, -0.01), verdict(-0.01, 0.02)
    ('supported', 'contradicted', 'undecided')
    """
    return "supported" if low > 0 else ("contradicted" if high < 0 else "undecided")


def bootstrap_interval(differences: Sequence[float]) -> tuple[float, float]:
    """Percentile interval (:data:`CONFIDENCE`) of the mean of per-image ``differences``,
    resampling the images :data:`BOOTSTRAP_RESAMPLES` times with :data:`BOOTSTRAP_SEED`.

    It says how much the choice of test images moves the mean; it knows nothing of how much
    another training would move it.

    >>> bootstrap_interval([0.1] * 5)
    (0.1, 0.1)
    """
    d = np.asarray(differences, dtype=float)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    means = d[rng.integers(0, len(d), size=(BOOTSTRAP_RESAMPLES, len(d)))].mean(axis=1)
    tail = (1 - CONFIDENCE) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(np.round(low, 12)), float(np.round(high, 12))


def t_interval(values: Sequence[float], others: Sequence[float] | None = None) -> tuple[float, float]:
    """Student t-interval (:data:`CONFIDENCE`) of the mean of ``values``, or Welch's of the
    difference of means ``values - others``; a point when there is no variation at all.

    >>> t_interval([0.5, 0.5, 0.5])
    (0.5, 0.5)
    """
    a = np.asarray(values, dtype=float)
    b = None if others is None else np.asarray(others, dtype=float)
    if np.ptp(a) < 1e-12 and (b is None or np.ptp(b) < 1e-12):  # no variation (up to rounding): no t
        point = float(a.mean() - (0 if b is None else b.mean()))
        return point, point
    result = stats.ttest_1samp(a, 0.0) if b is None else stats.ttest_ind(a, b, equal_var=False)
    ci = result.confidence_interval(CONFIDENCE)
    return float(ci.low), float(ci.high)


def _trainings(records, pipeline, tta) -> dict[int, dict]:
    """Seed -> record of one pipeline's trainings (tuned records excluded)."""
    return {r.get("seed", 0): r for r in select(records, pipeline, tta)}


def _per_image(record) -> dict[str, float]:
    if not record.get("per_image"):
        raise ValueError(f"{record_name(record)}: no per-image scores, so no interval over the test images")
    return {row["id"]: row["kaggle_score"] for row in record["per_image"]}


def _image_means(trainings: dict[int, dict]) -> dict[str, float]:
    """Per test image, the mean score over a pipeline's trainings."""
    scores = [_per_image(r) for r in trainings.values()]
    ids = set(scores[0])
    if any(set(s) != ids for s in scores):
        raise ValueError("the trainings of one pipeline were scored on different test images")
    return {i: float(np.mean([s[i] for s in scores])) for i in ids}


def _paired(a: dict[str, float], b: dict[str, float], what: str) -> np.ndarray:
    if set(a) != set(b):
        raise ValueError(f"{what}: scored on different test images, so no paired comparison")
    ids = sorted(a)
    return np.array([a[i] for i in ids]) - np.array([b[i] for i in ids])


def _interval_text(part, digits: int = 3, unit: str = "") -> str:
    return (f"{part['difference']:+.{digits}f} [{part['low']:+.{digits}f}, {part['high']:+.{digits}f}]{unit} "
            f"({part['method']})")


def compare(records: Sequence[dict], better: str, worse: str, tta: bool) -> dict:
    """Is ``better`` ahead of ``worse``? The difference of their mean scores with a 95 % interval.

    * Both pipelines trained at least :data:`MIN_TRAININGS` times: a Welch t-interval over the
      trainings' mean scores (``t over trainings``): would new trainings order them the same?
    * Otherwise: a bootstrap over the test images of the per-image difference, each pipeline
      averaged over its trainings (``images only``). It ignores the variation from one training
      to the next, so it is too narrow for a question about the method; it says how far the
      choice of test images alone moves the difference.

    Only the records of ``better`` and ``worse`` enter: other pipelines never change the result.
    Returns ``ours`` (text), ``verdict`` (:func:`verdict`), ``difference``, ``low``, ``high``,
    ``method`` and ``n`` (trainings of each).
    """
    a, b = _trainings(records, better, tta), _trainings(records, worse, tta)
    if not a or not b:
        missing = [name for name, t in ((better, a), (worse, b)) if not t]
        return {"ours": f"no record for {', '.join(missing)}", "verdict": "not measured yet", "difference": None}
    means_a = np.array([r["mean"]["kaggle_score"] for r in a.values()])
    means_b = np.array([r["mean"]["kaggle_score"] for r in b.values()])
    difference = float(means_a.mean() - means_b.mean())
    if min(len(a), len(b)) >= MIN_TRAININGS:
        low, high = t_interval(means_a, means_b)
        method = T_TRAININGS
    else:
        low, high = bootstrap_interval(_paired(_image_means(a), _image_means(b), f"{better} and {worse}"))
        method = IMAGES_ONLY
    part = {"difference": difference, "low": low, "high": high, "method": method, "verdict": verdict(low, high),
            "n": (len(a), len(b)), "pipelines": (better, worse)}
    part["ours"] = (f"{better} {means_a.mean():.3f} ({len(a)}) vs {worse} {means_b.mean():.3f} ({len(b)}): "
                    + _interval_text(part) + _epochs_note(a, b))
    return part


def _epochs_note(*trainings) -> str:
    """The epochs of networks stopped by a time budget, when they differ (the full profile)."""
    epochs = {}
    for group in trainings:
        for r in group.values():
            for name, info in r.get("networks", {}).items():
                if info.get("time_budget_s") and info.get("epochs"):
                    epochs.setdefault(name, set()).add(info["epochs"])
    if len({e for values in epochs.values() for e in values}) <= 1:
        return ""
    return "; epochs " + ", ".join(f"{name} {'/'.join(map(str, sorted(values)))}" for name, values in sorted(epochs.items()))


def tta_gains(records: Sequence[dict]) -> list[dict]:
    """TTA judged paired, per training: one row per training scored with and without TTA.

    The same trained network predicts the same test images twice, so the per-image
    differences (with minus without TTA) hold no training-to-training variation: each
    training's ``gain`` (the mean difference) gets a bootstrap interval over the test images
    (``low``, ``high``) and a :func:`verdict`.
    """
    rows = []
    for pipeline in sorted({r["pipeline"] for r in records if r["pipeline"] != "classical"}, key=_order):
        with_tta, without = _trainings(records, pipeline, True), _trainings(records, pipeline, False)
        for seed in sorted(set(with_tta) & set(without)):
            d = _paired(_per_image(with_tta[seed]), _per_image(without[seed]), f"{pipeline} seed {seed}")
            low, high = bootstrap_interval(d)
            rows.append({"pipeline": pipeline, "seed": seed, "gain": float(d.mean()), "low": low, "high": high,
                         "verdict": verdict(low, high)})
    return rows


def _tta_part(records, expected) -> dict:
    records = [r for r in records if r["pipeline"] in expected]  # the row involves Table 3 and its pairs only
    gains = tta_gains(records)
    scored = {g["pipeline"] for g in gains}
    missing = [p for p in expected if p not in scored]
    if not gains or missing:
        return {"ours": f"{len(gains)} trainings scored with and without TTA; not yet: {', '.join(missing) or 'any'}",
                "verdict": "not measured yet", "difference": None}
    values = np.array([g["gain"] for g in gains])
    if len(values) >= MIN_TRAININGS:
        low, high = t_interval(values)
        method = T_TRAININGS
    else:  # fewer than three trainings: only the test images can be resampled
        differences = [_paired(_per_image(_trainings(records, g["pipeline"], True)[g["seed"]]),
                               _per_image(_trainings(records, g["pipeline"], False)[g["seed"]]), "TTA") for g in gains]
        low, high = bootstrap_interval(np.mean(differences, axis=0))
        method = IMAGES_ONLY
    lowered = [g for g in gains if g["gain"] <= 0]
    hurt = [g for g in gains if g["verdict"] == "contradicted"]
    helped = [g for g in gains if g["verdict"] == "supported"]
    mean_part = {"difference": float(values.mean()), "low": low, "high": high, "method": method}
    if hurt:
        row_verdict = "contradicted"  # a network that TTA made worse beyond what the test images explain
    elif not lowered and low > 0:
        row_verdict = "supported"
    else:
        row_verdict = "undecided"
    ours = (f"TTA raised the score of {len(values) - len(lowered)} of {len(values)} trainings ({len(helped)} with an "
            f"interval above 0, {len(hurt)} below); mean paired gain {_interval_text(mean_part)}")
    if lowered:
        ours += "; not raised: " + ", ".join(
            f"{_training_name(g)} {g['gain']:+.3f} [{g['low']:+.3f}, {g['high']:+.3f}]" for g in lowered)
    return {**mean_part, "ours": ours, "verdict": row_verdict, "mean_verdict": verdict(low, high),
            "n_trainings": len(values), "n_lowered": len(lowered), "not_raised": [_training_name(g) for g in lowered]}


def _training_name(gain: dict) -> str:
    return gain["pipeline"] + (f" seed {gain['seed']}" if gain["seed"] else "")


def _combine(parts: Sequence[dict]) -> str:
    verdicts = [p["verdict"] for p in parts]
    if "not measured yet" in verdicts:
        return "not measured yet"
    if all(v == "supported" for v in verdicts):
        return "supported"
    if "contradicted" in verdicts:
        return "contradicted"
    return "undecided"


def read_timings(path: str | os.PathLike) -> dict[str, dict]:
    """Per-network times of ``benchmarks/bench_training.py --table3`` (an idle machine), for
    :func:`findings` and the chapters; ``{}`` when the file does not exist.

    Each entry has ``ms_per_crop`` and ``predict_ms_per_crop`` (medians over the rounds),
    ``train_rounds`` and ``predict_rounds`` when stored, ``profile`` and ``source`` (the file's
    name, profile and date). This file is the book's one source for the speed of the networks:
    the records' own times are wall times of training epochs, which other work on the same
    cores can lengthen."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        stored = json.loads(path.read_text())
        source = f"{path.name} ({stored['profile']} profile, {stored.get('date', '?')[:10]})"
        return {name: {**entry, "profile": stored["profile"], "source": source} for name, entry in stored["networks"].items()}
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: not a timing file of benchmarks/bench_training.py --table3 ({error!r})") from None


def describe_timing(entry: dict, kind: str = "train") -> str:
    """``43.0 ms [35.6-46.1, 3 rounds]``: the median time per crop and the range of the rounds.

    >>> describe_timing({"ms_per_crop": 43.0, "train_rounds": [46.1, 43.0, 35.6]})
    '43.0 ms [35.6-46.1, 3 rounds]'
    """
    median = entry["ms_per_crop" if kind == "train" else "predict_ms_per_crop"]
    rounds = entry.get(f"{kind}_rounds") or []
    spread = f" [{min(rounds):.1f}-{max(rounds):.1f}, {len(rounds)} rounds]" if len(rounds) > 1 else ""
    return f"{median:.1f} ms{spread}"


def _speed_part(timings, fast, slow, kind) -> dict:
    what = "training" if kind == "train" else "prediction"
    if not timings or fast not in timings or slow not in timings:
        return {"ours": f"no idle-machine {what} time of {fast} and {slow}", "verdict": "not measured yet", "difference": None}
    f, s = timings[fast], timings[slow]
    rounds_f, rounds_s = f.get(f"{kind}_rounds") or [], s.get(f"{kind}_rounds") or []
    key = "ms_per_crop" if kind == "train" else "predict_ms_per_crop"
    part = {"difference": float(s[key] - f[key]), "pipelines": (slow, fast), "unit": "ms", "label": f"{what} {slow} - {fast}"}
    if len(rounds_f) == len(rounds_s) >= MIN_TRAININGS:
        # The rounds take the networks in turn: a slow moment of the machine hits both, so pair them.
        saved = np.array(rounds_s) - np.array(rounds_f)
        part["difference"] = float(saved.mean())
        part["low"], part["high"] = t_interval(saved)
        part["method"] = T_ROUNDS
        part["verdict"] = verdict(part["low"], part["high"])
        interval = f": {slow} - {fast} {_interval_text(part, 1, ' ms')}"
    else:
        part["verdict"] = "undecided"
        interval = f": fewer than {MIN_TRAININGS} rounds, no interval"
    part["ours"] = f"{what} {fast} {describe_timing(f, kind)} vs {slow} {describe_timing(s, kind)}{interval}"
    return part


def findings(records: Sequence[dict], timings: dict[str, dict] | None = None) -> list[dict]:
    """The paper's claims (section 4.6), its recommendation 3 (section 6) and the two questions
    it leaves open, checked on ``records``, for every profile the records hold.

    One row per claim and profile: ``profile``, ``claim`` (short), ``paper`` (the paper's
    words, verbatim), ``where`` (their place in the paper, and what of the comparison is this
    project's), ``ours`` (the numbers), ``verdict`` (one of :data:`VERDICTS`), ``pipelines``
    (the pipelines whose records the row reads) and ``parts`` (the numbers of each comparison).

    A comparison of two pipelines is the difference of their mean scores with a 95 % interval
    (:func:`compare`): a t-interval over trainings where both have :data:`MIN_TRAININGS`, a
    bootstrap over the test images (``images only``) otherwise. TTA is judged paired, per
    training (:func:`tta_gains`). ``supported``: the interval lies above 0; ``contradicted``:
    below; ``undecided``: it contains 0. A row reads only the records of its own pipelines, so
    more trainings of one pipeline never change a row that does not involve it. Records tuned
    on validation images are not used. Nothing here is typed by hand: every verdict is computed.

    ``timings`` (:func:`read_timings`: times measured on an idle machine) are the only source
    of the speed claim, for the profile they were measured in.
    """
    records = [r for r in records if not is_tuned(r) and r["pipeline"] != "classical"]
    rows = []
    for profile in sorted({r["profile"] for r in records}):
        rows += _profile_findings([r for r in records if r["profile"] == profile], profile, timings or {})
    return rows


def _profile_findings(records, profile, timings) -> list[dict]:
    rows = []
    expected = list(config.TABLE3) + list(config.PAIRS)

    def add(claim, paper, where, parts, pipelines, note=""):
        rows.append({"profile": profile, "claim": claim, "paper": paper, "where": where,
                     "ours": note + "; ".join(p["ours"] for p in parts), "verdict": _combine(parts),
                     "pipelines": tuple(pipelines), "parts": list(parts)})

    add("M3B1 beats M2 and M1", "the two-network approach M3B1 using the networks M3 and B1 outperforms the simple "
        "border method M2 and the boundary method M1", "section 4.6",
        [compare(records, "M3B1", "M2", False), compare(records, "M3B1", "M1", False)], ("M3B1", "M2", "M1"))

    add("borders beat boundaries (M2 vs M1)", "Use borders instead of boundaries for instance segmentation",
        "section 6, recommendation 3, argued from Figure 5 in section 3.6; the paper's text gives no score of M1 "
        "or M2, so this comparison is this project's test", [compare(records, "M2", "M1", False)], ("M2", "M1"))

    add("TTA improves every network", "TTA improves the precision for every network", "section 4.6",
        [_tta_part(records, expected)], expected)

    best_parts = []
    unscored = [p for p in expected if not _trainings(records, p, False)]
    if unscored:
        best_parts.append({"ours": f"not all of Table 3 scored yet (missing: {', '.join(unscored)})",
                           "verdict": "not measured yet", "difference": None})
    for tta in (False, True):
        means = {p: np.mean([r["mean"]["kaggle_score"] for r in t.values()])
                 for p in expected if p != "M6B4" and (t := _trainings(records, p, tta))}
        if not means:
            best_parts.append({"ours": "no other pipeline scored", "verdict": "not measured yet", "difference": None})
            continue
        part = dict(compare(records, "M6B4", max(means, key=means.get), tta))
        part["ours"] = f"{'with' if tta else 'without'} TTA, against the best other pipeline: {part['ours']}"
        best_parts.append(part)
    add("M6B4 scores highest", "The network M6B4 with the highest mean averaged precision", "section 4.6",
        best_parts, expected)

    add("M7B5 as accurate as M6B4", "The use of a 5-block U-Net with reduced feature maps (M7B5) reduces the mean "
        "training and prediction times without losing accuracy", "section 4.6; compared with TTA, the paper's best setting",
        [compare(records, "M7B5", "M6B4", True)], ("M7B5", "M6B4"))

    profile_timings = {name: entry for name, entry in timings.items() if entry.get("profile", profile) == profile}
    speed = [_speed_part(profile_timings, fast, slow, kind) for fast, slow in (("M7", "M6"), ("B5", "B4"))
             for kind in ("train", "predict")]
    if not profile_timings:
        speed = [{"ours": "no idle-machine timing in this profile", "verdict": "not measured yet", "difference": None}]
    add("M7 and B5 faster than M6 and B4", "The use of a 5-block U-Net with reduced feature maps (M7B5) reduces the "
        "mean training and prediction times", "section 4.6; times per crop on an otherwise idle machine "
        "(benchmarks/bench_training.py --table3), paired by round", speed, ())

    add("set a can worsen accuracy (B2 vs B3, M4B2 vs M5B3)", "Do not use training data augmentation naively. Some "
        "augmentations may worsen the accuracy",
        "section 6, recommendation 5; the paper's text draws no conclusion from its set a and set b rows "
        "(section 4.6: a study is \"planned for future work\"), so this comparison is this project's test",
        [compare(records, "B3", "B2", False), compare(records, "M5B3", "M4B2", False)], ("B3", "B2", "M5B3", "M4B2"))

    schedules = sorted({info.get("lr_schedule", "?") for r in records for name, info in r.get("networks", {}).items()
                        if name in ("B3", "B4", "M5", "M6")})
    add("doubled starting rate (B4 vs B3, M6B4 vs M5B3)", "To validate the improvement of a higher learning rate that "
        "is reduced on a plateau, more initializations are needed too",
        "section 4.6, left open by the paper; this project's test compares the rows of Table 3 that differ only in "
        "the starred learning rate. Under a cosine schedule every network is annealed alike, so only the doubled "
        "start differs; under Table 3's plateau rule ('paper') the rate is quartered only if a plateau comes",
        [compare(records, "B4", "B3", False), compare(records, "M6B4", "M5B3", False)], ("B4", "B3", "M6B4", "M5B3"),
        note=f"schedule {', '.join(schedules) or '?'}: ")
    return rows


def findings_table(rows: Sequence[dict]) -> str:
    """The rows of :func:`findings` as a Markdown table: one line per claim, one column per profile."""
    profiles = sorted({row["profile"] for row in rows})
    claims = list(dict.fromkeys(row["claim"] for row in rows))
    by = {(row["claim"], row["profile"]): row for row in rows}
    lines = ["| claim | the paper | " + " | ".join(f"{p} profile" for p in profiles) + " |",
             "|---" * (2 + len(profiles)) + "|"]
    for claim in claims:
        first = next(by[(claim, p)] for p in profiles if (claim, p) in by)
        cells = [f"**{by[(claim, p)]['verdict']}**: {by[(claim, p)]['ours']}" if (claim, p) in by else "" for p in profiles]
        lines.append(f"| {claim} | \"{first['paper']}\" ({first['where']}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# The paper's eleven recommendations (section 6)
# --------------------------------------------------------------------------------------

#: The statuses :func:`recommendations` gives.
STATUSES = ("shown", "contradicted", "undecided", "not tested here", "not measured yet")

#: Section 6's recommendations, verbatim, with the findings claim that tests each (``None``:
#: no comparison of the records tests it) and where the book shows it.
RECOMMENDATIONS = (
    (1, "Start with a one channel output U-Net to get a feeling how challenging the data are and if there are "
        "difficulties with specific objects.", None, "chapter 2 (B1)"),
    (2, "Be aware of class imbalance.", None, "chapters 2 and 3 (Dice terms; share of border pixels)"),
    (3, "Use borders instead of boundaries for instance segmentation.", "borders beat boundaries (M2 vs M1)",
        "chapters 3 and 7"),
    (4, "Try erosion and dilation to get better markers for the watershed post-processing. Consider the "
        "two-network approach in this case.", "M3B1 beats M2 and M1", "chapter 4"),
    (5, "Do not use training data augmentation naively. Some augmentations may worsen the accuracy.",
        "set a can worsen accuracy (B2 vs B3, M4B2 vs M5B3)", "chapter 7"),
    (6, "Try to boost performance with test-time augmentation.", "TTA improves every network", "chapter 5"),
    (7, "Use metrics but do not rely on them solely. Look at your data to find bottlenecks and difficulties.", None,
        "chapters 1 and 6 (label errors, error types, image explorer)"),
    (8, "Look for additional training data sets. This may improve the generalization of the network to the test set.",
        None, "not demonstrated: the book trains on BBBC038v1 only"),
    (9, "Adjust your training process hyperparameters.", "doubled starting rate (B4 vs B3, M6B4 vs M5B3)", "chapter 7"),
    (10, "Use a-priori information, e.g., about the object sizes, to improve the post-processing.", None,
         "chapters 6 and 9 (size priors chosen on validation images; rescaling to the training size)"),
    (11, "Modify your architecture and try other encoders if the accuracy is not high enough and if the required "
         "hardware is available.", "M7B5 as accurate as M6B4", "chapter 7 (M7; other encoders not tried)"),
)

#: Table 1 of the paper: the freely available training data sets it suggests (recommendation 8).
TABLE1_DATA_SETS = ("Broad Bioimage Benchmark Collection (BBBC)", "ISBI Cell Tracking Challenge",
                    "Masaryk University Cell Image Collection", "Benchmarks for Embryomics")


def _brief(part) -> str:
    """``M2 - M1 -0.020 [-0.038, -0.002] (t over trainings)``: a comparison's difference and interval."""
    if part.get("difference") is None or "low" not in part:
        return part["ours"]
    name = part.get("label") or " - ".join(part.get("pipelines", ())) or "mean paired gain"
    ms = part.get("unit") == "ms"
    return f"{name} {_interval_text(part, 1 if ms else 3, ' ms' if ms else '')}"


def recommendations(records: Sequence[dict], timings: dict[str, dict] | None = None) -> list[dict]:
    """Section 6's eleven recommendations, each with a status from the records.

    One row per recommendation: ``number``, ``paper`` (verbatim), ``status`` (one of
    :data:`STATUSES`), ``evidence`` (the numbers, per profile) and ``where`` (where the book
    shows it). A recommendation tested by a row of :func:`findings` is ``shown`` when that row
    is supported in every profile, ``contradicted`` when it is contradicted in one and supported
    in none, ``undecided`` otherwise. Some recommendations get a rule of their own:

    * 6 (try TTA) asks for a boost, not for one on every network: its status is the verdict of
      the mean paired gain;
    * 9 (adjust the hyperparameters) is shown when changing one of them (the starting rate)
      moves the score beyond its interval, in either direction;
    * 11 (modify the architecture) takes the status of the accuracy rows (M7B5 against M6B4);
      the speed rows are listed beside them;
    * 1 and 7 are shown by what the records hold (merged nuclei; per-image scores); 2, 8 and 10
      are not tested by any comparison of the records.
    """
    table = findings(records, timings)
    plain = [r for r in records if not is_tuned(r) and r["pipeline"] != "classical" and not r["tta"]]
    profiles = sorted({row["profile"] for row in table})
    out = []
    for number, paper, claim, where in RECOMMENDATIONS:
        rows = [row for row in table if row["claim"] == claim]
        evidence = []
        if claim is None:
            status, evidence = _own_evidence(number, plain, profiles)
        elif number == 6:
            parts = [row["parts"][0] for row in rows]
            status = _status([p.get("mean_verdict", p["verdict"]) for p in parts])
            evidence = [f"{row['profile']}: " + (f"{_brief(p)}, {p['n_lowered']} of {p['n_trainings']} trainings not raised"
                                                 if "n_lowered" in p else p["ours"]) for row, p in zip(rows, parts)]
        else:
            verdicts = [row["verdict"] for row in rows]
            if number == 9:
                moved = [p["verdict"] in ("supported", "contradicted") for row in rows for p in row["parts"]]
                status = "not measured yet" if "not measured yet" in verdicts else ("shown" if any(moved) else "undecided")
            else:
                status = _status(verdicts)
            if number == 11:
                speed = [row for row in table if row["claim"] == "M7 and B5 faster than M6 and B4"
                         and row["verdict"] != "not measured yet"]
                rows = rows + speed
            evidence = [f"{row['profile']}{' speed' if row['claim'].startswith('M7 and B5') else ''} "
                        f"({row['verdict']}): " + "; ".join(_brief(p) for p in row["parts"]) for row in rows]
        out.append({"number": number, "paper": paper, "status": status, "evidence": "; ".join(evidence), "where": where})
    return out


def _status(verdicts) -> str:
    if not verdicts or "not measured yet" in verdicts:
        return "not measured yet"
    if all(v == "supported" for v in verdicts):
        return "shown"
    if "contradicted" in verdicts and "supported" not in verdicts:
        return "contradicted"
    return "undecided"


def _own_evidence(number, plain, profiles) -> tuple[str, list[str]]:
    if number == 1:
        evidence = []
        for profile in profiles:
            merged = {p: np.mean([r["totals"]["merged"] for r in plain if r["profile"] == profile and r["pipeline"] == p])
                      for p in ("B1", "M3B1") if any(r["profile"] == profile and r["pipeline"] == p and "totals" in r for r in plain)}
            if len(merged) == 2:
                evidence.append(f"{profile}: B1 drew {merged['B1']:.0f} objects that each cover two or more nuclei, "
                                f"M3B1 {merged['M3B1']:.0f} (test images, mean over trainings)")
        return ("shown" if evidence else "not measured yet"), evidence
    if number == 7:
        evidence = []
        for profile in profiles:
            subset = [r for r in plain if r["profile"] == profile and r.get("per_image")]
            if subset:
                best = max(subset, key=lambda r: r["mean"]["kaggle_score"])
                scores = [row["kaggle_score"] for row in best["per_image"]]
                evidence.append(f"{profile}: the best training, {record_label(best)} seed {best.get('seed', 0)}, scores "
                                f"{best['mean']['kaggle_score']:.3f} on average and {min(scores):.2f} to {max(scores):.2f} "
                                "on single images")
        return ("shown" if evidence else "not measured yet"), evidence
    if number == 8:
        return "not tested here", ["Table 1 lists " + ", ".join(TABLE1_DATA_SETS)]
    if number == 10:
        return "not tested here", ["every record uses the same size priors (config.POSTPROCESS_DEFAULTS); "
                                   "no record goes without them"]
    return "not tested here", ["no record compares losses or class weights"]


def recommendations_table(rows: Sequence[dict]) -> str:
    """The rows of :func:`recommendations` as a Markdown table."""
    lines = ["| | the paper (section 6) | status | our records | in this book |", "|---|---|---|---|---|"]
    lines += [f"| {r['number']} | {r['paper']} | **{r['status']}** | {r['evidence']} | {r['where']} |" for r in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Benchmarks of the shipped pipeline (results/benchmarks/): chapter *Your own images* and
# the appendix *How the reference networks were made and measured*
# --------------------------------------------------------------------------------------


def read_benchmark(name: str, folder: str | os.PathLike | None = None) -> dict:
    """One results file of the segmentation benchmarks, ``<folder>/<name>`` (default folder:
    ``benchmarks/`` of :func:`nucleitut.config.results_dir`). The decision each file supports
    is listed in ``results/benchmarks/README.md``.

    >>> read_benchmark("segment_cpu_native120_halfway.json")["pipeline"]   # doctest: +SKIP
    'M3B1'
    """
    path = Path(folder) if folder is not None else config.results_dir() / "benchmarks"
    path = path / name
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found; results/benchmarks/README.md says which script writes it")
    return json.loads(path.read_text())


def size_handling(folder: str | os.PathLike | None = None) -> dict:
    """What the size handling of :meth:`nucleitut.pipeline.Pipeline.segment` buys and costs,
    from the stored benchmarks of the shipped reference networks (with TTA).

    Returns
    -------
    dict
        ``test``: the test images of the full data set (``benchmarks/bench_segment.py``,
        ``segment_cpu_scale120_halfway.json``): ``n``; ``with`` and ``without``, the mean
        Kaggle score of the images as they are with and without size handling; ``by_type``
        (image type -> ``n``, ``with``, ``without``); ``scaled`` (factor -> mean score with
        size handling of the images rescaled by it: ``0.5``, ``2.0``, ``3.0``);
        ``halved_registered`` (the halved images taken at their labels' pixels,
        ``segment_cpu_scale120_registered.json``).

        ``validation``: validation images at four sizes (``size_target_validation.json``, the
        run that chose where an image is rescaled to): ``n``; ``sizes`` (factors, ascending);
        ``as_is`` and ``handled``, the mean score per size without size handling and with the
        chosen rule; ``rescaled``, how many images the rule rescaled per size; ``rule``.

    Raises
    ------
    ValueError
        When the files were not made on the same test images.
    """
    scaled = read_benchmark("segment_cpu_scale120_halfway.json", folder)
    registered = read_benchmark("segment_cpu_scale120_registered.json", folder)
    if registered["images"] != scaled["images"]:
        raise ValueError("segment_cpu_scale120_registered.json scored other test images than segment_cpu_scale120_halfway.json")
    test = {
        "n": scaled["n_images"],
        "with": scaled["native"]["mean"],
        "without": scaled["native_without_handling"]["mean"],
        "by_type": {kind: {"n": entry["n"], "with": entry["with_handling"], "without": entry["without_handling"]}
                    for kind, entry in scaled["by_type"].items()},
        "scaled": {float(factor): entry["auto_size"]["mean"] for factor, entry in scaled["scale"].items()},
        "halved_registered": registered["scale"]["0.5"]["auto_size"]["mean"],
    }
    chosen = read_benchmark("size_target_validation.json", folder)
    rule = chosen["chosen"]
    sizes = sorted(chosen["rows"], key=lambda size: float(size.lstrip("x")))
    validation = {
        "n": chosen["n_images"],
        "sizes": [float(size.lstrip("x")) for size in sizes],
        "as_is": [float(np.mean([row["as_is"] for row in chosen["rows"][size].values()])) for size in sizes],
        "handled": [chosen["scores"][rule][size] for size in sizes],
        "rescaled": [sum(not row["inside"] for row in chosen["rows"][size].values()) for size in sizes],
        "rule": rule,
    }
    return {"test": test, "validation": validation}


#: The fine-tunings on stained tissue (``experiments/check_finetune_tissue.py``): file -> how.
FINETUNE_TISSUE_RUNS = {
    "finetune_tissue.json": "tissue, rescaled to one nucleus size",
    "finetune_tissue_asis.json": "tissue as it is",
    "finetune_tissue_mix.json": "tissue as it is, with as many other images",
}


def finetune_tissue(folder: str | os.PathLike | None = None) -> list[dict]:
    """The reference networks fine-tuned on the stained-tissue images of the training and
    validation split, three ways (:data:`FINETUNE_TISSUE_RUNS`), scored with TTA on the test
    images every run scored.

    Returns
    -------
    list of dict
        One row per run: ``how``, ``images`` (annotated images, and ``mixed_in`` other ones),
        and per image type (``tissue``, ``fluorescence``) ``n``, ``before`` (shipped networks)
        and ``after`` (fine-tuned), mean Kaggle scores on the same images.
    """
    runs = {how: read_benchmark(name, folder) for name, how in FINETUNE_TISSUE_RUNS.items()}
    common = set.intersection(*(set(run["rows"]) for run in runs.values()))
    table = []
    for how, run in runs.items():
        row = {"how": how, "images": run["annotated_images"], "mixed_in": run.get("mixed_in", 0)}
        for kind in ("tissue", "fluorescence"):
            picked = [r for image_id, r in run["rows"].items() if image_id in common and r["type"] == kind]
            row[kind] = {"n": len(picked), "before": float(np.mean([r["reference"] for r in picked])),
                         "after": float(np.mean([r["finetuned"] for r in picked]))}
        table.append(row)
    return table


def large_images(folder: str | os.PathLike | None = None) -> dict:
    """Time and memory of the shipped pipeline on a large image segmented in blocks, and on a
    1024x1024 image (``benchmarks/bench_segment.py``, ``segment_cpu_speed_reuse.json``).

    Returns
    -------
    dict
        ``shape``, ``seconds``, ``peak_gb`` and ``nuclei`` of the large image (no TTA);
        ``seconds_1024`` (fastest call with TTA and the size estimate); ``cpu``, ``cpu_cores``,
        ``commit``.
    """
    run = read_benchmark("segment_cpu_speed_reuse.json", folder)
    large = run["speed"]["large"]
    return {"shape": tuple(large["shape"]), "seconds": large["seconds"], "peak_gb": large["peak_rss_mb"] / 1024,
            "nuclei": large["nuclei"], "seconds_1024": min(run["speed"]["seconds_tta_and_size"]),
            "cpu": run["hardware"]["cpu"], "cpu_cores": run["hardware"]["cpu_cores"], "commit": run["commit"]}


#: The runs of ``benchmarks/bench_robustness.py`` that :func:`robustness` compares, in order:
#: the library before its robustness rules, the rules with the networks of that time (kept
#: when the networks changed), the shipped state, and networks trained with the ``robust``
#: augmentation set that were compared with the shipped ones and not shipped.
ROBUSTNESS_RUNS = {"before": "robustness_before.json", "rules": "robustness_rules.json", "after": "robustness.json",
                   "robust": "robustness_robust_networks.json"}
#: Stages of :data:`ROBUSTNESS_RUNS` that :func:`robustness` leaves out where their file is missing.
OPTIONAL_ROBUSTNESS_RUNS = ("rules", "robust")


def robustness(folder: str | os.PathLike | None = None) -> dict:
    """The test images perturbed as other people's images differ, segmented by the reference
    pipeline at each stage of :data:`ROBUSTNESS_RUNS` (``benchmarks/bench_robustness.py``;
    those of :data:`OPTIONAL_ROBUSTNESS_RUNS` only where their file exists).

    Returns
    -------
    dict
        ``stages``: the stages found, in order; per stage ``commit``, ``date``, ``n_images``,
        ``cpu``, ``networks``, ``native_all`` (mean Kaggle score of every image it scored as
        it is); ``perturbations``: name -> ``why`` (the strength and why it is
        realistic), ``n`` (the images every stage scored), per stage ``native_<stage>`` and
        ``<stage>`` (mean Kaggle scores on those images) and ``<stage>_all`` (on every image
        that stage scored), ``drop_after`` (native minus
        perturbed, the shipped state), ``max_time_ratio_after`` (the slowest image's time over
        its native time), ``max_time_ratio_per_pixel_after`` (the same per pixel, where the
        run counted pixels; else the ratio itself), ``max_time_ratio_own_size_after`` (per pixel,
        over the same image segmented at its own size; None where the run has no such rows) and ``n_after`` with ``drop_after_all`` (on every image the shipped
        state scored).
    """
    where = Path(folder) if folder is not None else config.results_dir() / "benchmarks"
    runs = {stage: read_benchmark(name, where) for stage, name in ROBUSTNESS_RUNS.items()
            if stage not in OPTIONAL_ROBUSTNESS_RUNS or (where / name).is_file()}
    out = {stage: {"commit": run["commit"], "date": run["date"], "n_images": run["n_images"],
                   "cpu": run["hardware"]["cpu"], "networks": run.get("networks", "reference"),
                   "native_all": run["summary"]["native"]["mean"]} for stage, run in runs.items()}
    out["stages"] = list(runs)
    out["perturbations"] = {}
    for name, why in runs["after"]["perturbations"].items():
        if any(name not in run["rows"] for run in runs.values()):
            continue
        by_id = {stage: {r["id"]: r["score"] for r in run["rows"][name]} for stage, run in runs.items()}
        native = {stage: {r["id"]: r["score"] for r in run["rows"]["native"]} for stage, run in runs.items()}
        common = sorted(set.intersection(*(set(scores) for scores in by_id.values())))
        summary = runs["after"]["summary"][name]
        out["perturbations"][name] = {
            "why": why["why"], "n": len(common),
            **{f"native_{stage}": float(np.mean([native[stage][i] for i in common])) for stage in runs},
            **{stage: float(np.mean([by_id[stage][i] for i in common])) for stage in runs},
            **{f"{stage}_all": run["summary"][name]["mean"] for stage, run in runs.items()},
            "n_after": summary["n"], "drop_after_all": summary["drop"], "max_time_ratio_after": summary["max_time_ratio"],
            "max_time_ratio_per_pixel_after": summary.get("max_time_ratio_per_pixel", summary["max_time_ratio"]),
            "max_time_ratio_own_size_after": summary.get("max_time_ratio_own_size"),
        }
        out["perturbations"][name]["drop_after"] = out["perturbations"][name]["native_after"] - out["perturbations"][name]["after"]
    return out


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A Markdown table (show it with ``IPython.display.Markdown``); cells as given, ``str()``-ed.

    >>> print(markdown_table(["a", "b"], [[1, "x"]]))
    | a | b |
    |---|---|
    | 1 | x |
    """
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)


__all__ += ["read_benchmark", "size_handling", "finetune_tissue", "FINETUNE_TISSUE_RUNS", "large_images", "robustness", "ROBUSTNESS_RUNS",
            "OPTIONAL_ROBUSTNESS_RUNS", "markdown_table"]


def html_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    """An HTML table (show it with ``IPython.display.HTML``); cells as given, ``str()``-ed and
    escaped. The book's pages use it for tables computed from results files: Jupyter Book
    renders a notebook's Markdown output as CommonMark, which has no tables.

    >>> print(html_table(["a", "b"], [[1, "<x>"]]))
    <table class="table">
    <thead><tr><th>a</th><th>b</th></tr></thead>
    <tbody>
    <tr><td>1</td><td>&lt;x&gt;</td></tr>
    </tbody>
    </table>
    """
    import html

    def line(tag, values):
        return "<tr>" + "".join(f"<{tag}>{html.escape(str(value))}</{tag}>" for value in values) + "</tr>"

    return "\n".join(['<table class="table">', f"<thead>{line('th', header)}</thead>", "<tbody>",
                      *(line("td", row) for row in rows), "</tbody>", "</table>"])


__all__ += ["html_table"]
