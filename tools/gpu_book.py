"""The whole book under nbval on one GPU machine in the ``gpu`` profile (issue 32).

``tools/gpu_book.sh`` is the entry point; this file holds its steps::

    python tools/gpu_book.py prepare                  # here: .carry/gpu_book (packages, data pack)
    python tools/gpu_book.py unpack .carry/gpu_book PACK.zip    # there: the data pack back to PNG, checked
    python tools/gpu_book.py bench WORK/bench.json    # there: ms per training crop, one network alone
    python tools/gpu_book.py book WORK                # there: trainings, then every chapter under nbval
    python tools/gpu_book.py summary WORK OUT         # there: summary.json, junit.xml, Figure 9, archives
    python tools/gpu_book.py fetch FILES_AT [DEST]    # here: results/gpu_book_<date>/ from what came back

It is also a pytest plugin (``-p gpu_book`` with ``tools/`` on ``PYTHONPATH``): nbval runs
every cell of a chapter but keeps no executed notebook. With ``GPU_BOOK_EXECUTED`` set, the
plugin writes each chapter with nbval's outputs (``<chapter>.ipynb``) and its times
(``<chapter>.json``) there once its last cell has run; with ``GPU_BOOK_RECORDS`` set it also
asks the chapter's kernel, before nbval stops it, to write every evaluation record the
chapter holds in memory (chapter 6's ``scored``) into that folder. One execution gives both
the JUnit report and the executed chapters.

How a run is laid out (``book``), all choices of this project:

* the networks the chapters load with ``training.trained_model`` (:data:`NETWORKS`) are
  trained first, all at once on the one GPU, each in its own process
  (``python -m nucleitut train NET``), each stopped by the profile's time budget, which the
  chapters print (chapter 2's settings table); the chapters then load them;
* chapters that train nothing and load no trained network (those without
  ``trained_model(``: the data chapter, chapter 9 with the shipped reference networks) run
  while the networks train; the others start when the trainings have ended;
* every chapter runs in its own ``pytest --nbval-lax book/<chapter>.ipynb`` process, all at
  once (``GPU_BOOK_SERIAL=1``: one ``pytest --nbval-lax book`` after the trainings instead);
  the reports are merged into one ``junit.xml``;
* a deadline (``GPU_BOOK_DEADLINE``, seconds after the start, default 540) stops whatever
  still runs (a chapter stopped so is kept as far as it ran), so that the results are packed
  before the machine's 10-minute limit.

Only the standard library (and pytest, for the hooks) is imported at the top: the plugin is
loaded by every pytest process of the run.
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import io
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

try:  # the plugin's hooks need pytest; the other commands do not
    import pytest
except ImportError:  # pragma: no cover
    pytest = None

ROOT = Path(__file__).resolve().parents[1]
#: The networks the chapters load (``training.trained_model``): B1 (chapters 2-6), M1, M2
#: (3, 5, 6, 8), M3 (4-6), M5 (5-7) and M6 (7). tests/test_gpu_book.py checks the chapters
#: against this list; a network missing here is trained by its chapter (``trained_in_chapters``
#: in summary.json says so).
NETWORKS = ("B1", "M1", "M2", "M3", "M5", "M6")
#: The acceptance limit of issue 32: the whole command within 8 minutes.
LIMIT_SECONDS = 480
#: What the GPU machine lacks (KINDS.md: it has JAX, numpy, scipy, scikit-image, matplotlib,
#: imageio, pillow, pytest, psutil, pygments, packaging, python-dateutil, attrs, requests,
#: h5py, rich, ml-dtypes, coverage, pyyaml; no TensorFlow, no Keras, no Jupyter). Left out on
#: purpose: jedi (IPython completes without it), debugpy (ipykernel debugs without it),
#: widgetsnbextension and jupyterlab_widgets (browser assets that no Python imports).
#: myst-nb comes for its ``glue`` alone, which imports docutils (and nothing of Sphinx);
#: pillow-jxl-plugin decodes the data pack (JPEG XL, lossless).
WHEELS = (
    "keras==3.15.1", "namex==0.1.0", "optree==0.20.0", "pooch==1.9.0", "platformdirs==4.14.9",
    "nbval==0.11.0", "nbformat==5.11.1", "fastjsonschema==2.22.3", "jsonschema==4.26.0",
    "jsonschema-specifications==2025.9.1", "referencing==0.37.0", "rpds-py==2026.9.1",
    "jupyter_client==8.10.0", "jupyter_core==5.9.1", "pyzmq==27.3.0", "tornado==6.6.1", "traitlets==5.16.1",
    "ipykernel==6.31.0", "comm==0.2.3", "ipython==9.19.1", "ipython_pygments_lexers==1.1.1",
    "matplotlib-inline==0.2.2", "nest-asyncio==1.6.0", "decorator==5.3.2", "prompt_toolkit==3.0.53",
    "wcwidth==0.2.14", "pexpect==4.9.0", "ptyprocess==0.7.0", "stack-data==0.6.3", "asttokens==3.0.2",
    "executing==2.3.0", "pure_eval==0.2.4", "ipywidgets==8.1.9", "myst-nb==1.4.0", "docutils==0.21.2",
    "pillow-jxl-plugin==1.3.8",
)
JXL_WHEEL = "pillow-jxl-plugin==1.3.8"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_26_x86_64", "manylinux_2_24_x86_64",
             "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_5_x86_64", "manylinux1_x86_64")
#: What one call of the device tool may carry (working tree and carried paths together).
CARRY_LIMIT = 64 * 2**20


def log(message: str) -> None:
    start = float(os.environ.get("GPU_BOOK_START") or START)
    print(f"[gpu_book {time.time() - start:6.1f} s] {message}", flush=True)


START = time.time()


# ----------------------------------------------------------------------------------------
# prepare (here): packages and data for the GPU machine
# ----------------------------------------------------------------------------------------


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args], check=True)


def _platform_args() -> list[str]:
    args = ["--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp"]
    for name in PLATFORMS:
        args += ["--platform", name]
    return args


def build_site(out: Path, cache: Path) -> Path:
    """The packages of :data:`WHEELS`, installed for CPython 3.12 on x86-64 Linux and packed as
    ``site.tar.xz`` (a third of the wheels' size: solid compression of many small files)."""
    cache.mkdir(parents=True, exist_ok=True)
    _pip("download", "-q", "--no-deps", *_platform_args(), "-d", str(cache), *WHEELS)
    wanted = {re.split("==", w)[0].lower().replace("-", "_") for w in WHEELS}
    wheels = [w for w in sorted(cache.glob("*.whl")) if w.name.split("-")[0].lower() in wanted
              and ("cp312" in w.name or "abi3" in w.name or "-none-any" in w.name)]
    site = cache / "site"
    shutil.rmtree(site, ignore_errors=True)
    _pip("install", "-q", "--no-deps", "--no-index", "--no-compile", *_platform_args(), "--target", str(site),
         *map(str, wheels))
    # Test suites no import reaches (a fifth of a MiB less to carry).
    tests = [site / "tornado" / "test", site / "jsonschema" / "tests", site / "pooch" / "tests",
             site / "referencing" / "tests", site / "ipywidgets" / "widgets" / "tests"]
    for junk in [*site.rglob("__pycache__"), site / "bin", *tests]:
        shutil.rmtree(junk, ignore_errors=True)
    target = out / "site.tar.xz"
    subprocess.run(["tar", "--sort=name", "--owner=0", "--group=0", "-cJf", str(target), "-C", str(site), "."],
                   check=True, env={**os.environ, "XZ_OPT": "-9 -T0"})
    return target


def _jxl_local(cache: Path):
    """pillow-jxl-plugin for this interpreter (encoding here), in ``cache``."""
    try:
        import pillow_jxl  # noqa: F401
        return
    except ImportError:
        pass
    target = cache / f"jxl-py{sys.version_info.major}{sys.version_info.minor}"
    if not target.exists():
        _pip("install", "-q", "--no-deps", "--target", str(target), JXL_WHEEL)
    sys.path.insert(0, str(target))
    import pillow_jxl  # noqa: F401


def _encode_member(args):
    name, png, effort = args
    import numpy as np
    from PIL import Image
    import pillow_jxl  # noqa: F401

    array = np.asarray(Image.open(io.BytesIO(png)))
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JXL", lossless=True, effort=effort)
    if not np.array_equal(_decode_jxl(buffer.getvalue(), array.ndim, array.dtype), array):
        raise SystemExit(f"{name}: JPEG XL did not give the PNG's pixels back")
    return name, buffer.getvalue()


def _decode_jxl(blob: bytes, ndim: int, dtype):
    import numpy as np
    from PIL import Image
    import pillow_jxl  # noqa: F401

    array = np.asarray(Image.open(io.BytesIO(blob)))
    if ndim == 2 and array.ndim == 3:  # grey read back as RGB
        array = array[..., 0]
    return array.astype(dtype, copy=False)


def data_digest(dataset) -> str:
    """sha256 of a decoded data set: ids, shapes, pixels and labels (int32)."""
    import numpy as np

    digest = hashlib.sha256()
    for image_id, image, labels in zip(dataset.ids, dataset.images, dataset.labels):
        digest.update(f"{image_id}:{image.shape}:{labels.shape}\n".encode())
        digest.update(np.ascontiguousarray(image, np.uint8).tobytes())
        digest.update(np.ascontiguousarray(labels, np.int32).tobytes())
    return digest.hexdigest()


def build_data(out: Path, png_pack: Path, cache: Path, effort: int) -> Path:
    """``data.zip``: the PNG pack of tools/make_pack.py (without the sample's images) with every
    image and label image re-encoded as lossless JPEG XL (about 28 % smaller than PNG), and
    ``data.json``: the digest of the complete data set as nucleitut decodes it."""
    from concurrent.futures import ProcessPoolExecutor

    _jxl_local(cache)
    sys.path.insert(0, str(ROOT / "tools"))
    import make_pack
    from nucleitut import data

    target = out / "data.zip"
    with zipfile.ZipFile(png_pack) as pack:
        jobs = [(info.filename, pack.read(info), effort) for info in pack.infolist() if info.filename.endswith(".png")]
    with ProcessPoolExecutor(os.cpu_count() or 1) as pool, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as z:
        for name, blob in pool.map(_encode_member, jobs, chunksize=4):
            z.writestr(name[: -len(".png")] + ".jxl", blob)
    complete = cache / "complete_pack.zip"
    make_pack.add_sample(png_pack, complete)
    dataset = data.load_dataset(complete, use_cache=False, verbose=False)
    info = {"n_images": len(dataset.ids), "ids_sha256": data._ids_digest(dataset.ids), "digest": data_digest(dataset),
            "made_from": png_pack.name, "jxl_effort": effort}
    (out / "data.json").write_text(json.dumps(info, indent=1) + "\n")
    complete.unlink()
    return target


def transfer_size(extra: Path) -> int:
    """Bytes one device call carries: tracked and untracked-not-ignored files plus ``extra``."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.split(b"\0")
    total = sum((ROOT / name.decode()).stat().st_size for name in listed if name and (ROOT / name.decode()).is_file())
    return total + sum(p.stat().st_size for p in extra.rglob("*") if p.is_file())


def cmd_prepare(args) -> int:
    out = Path(args.out)
    cache = Path(args.cache)
    out.mkdir(parents=True, exist_ok=True)
    png_pack = Path(args.png_pack)
    if not png_pack.exists():
        source = args.source or os.environ.get("NUCLEITUT_DATA") or str(ROOT.parent / "shared" / "data" / "stage1_train.zip")
        log(f"making {png_pack} from {source} (tools/make_pack.py --leave-out-sample; minutes)")
        subprocess.run([sys.executable, str(ROOT / "tools" / "make_pack.py"), source, str(png_pack), "--leave-out-sample"],
                       check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if args.force or not (out / "site.tar.xz").exists():
        log(f"site.tar.xz: {len(WHEELS)} packages for CPython 3.12")
        build_site(out, cache)
    if args.force or not (out / "data.zip").exists() or not (out / "data.json").exists():
        log(f"data.zip: {png_pack} as lossless JPEG XL (effort {args.effort})")
        build_data(out, png_pack, cache, args.effort)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    (out / "commit.txt").write_text(f"{commit}{'+changes' if dirty else ''}\n")
    sizes = {p.name: p.stat().st_size for p in sorted(out.iterdir()) if p.is_file()}
    total = transfer_size(out)
    for name, size in sizes.items():
        print(f"  {out / name}: {size / 2**20:.1f} MiB")
    print(f"working tree + {out}: {total / 2**20:.1f} MiB of the {CARRY_LIMIT / 2**20:.0f} MiB a device call carries")
    if total > CARRY_LIMIT - 2**20:
        print("too large: a device call would be refused (less than 1 MiB to spare)", file=sys.stderr)
        return 1
    return 0


# ----------------------------------------------------------------------------------------
# unpack (there): the data pack back to the PNG pack nucleitut reads, checked
# ----------------------------------------------------------------------------------------


def _png(array) -> bytes:
    """PNG as tools/make_pack.py writes it, fast (zlib level 1) rather than small."""
    import imageio.v3 as iio

    return iio.imwrite("<bytes>", array, extension=".png", compress_level=1)


def _png_member(args):
    name, blob = args
    import numpy as np

    labels = "/labels/" in name
    # Grey images were packed with one channel: decoded as (H, W) or as three equal channels.
    array = _decode_jxl(blob, 2 if labels else 3, np.uint16 if labels else np.uint8)
    if not labels and array.ndim == 3 and array.shape[2] == 3 and (array == array[..., :1]).all():
        array = array[..., 0]
    return name[: -len(".jxl")] + ".png", _png(array)


def cmd_unpack(args) -> int:
    """Write the complete PNG pack (the carried images and the package's sample), decode it
    once into nucleitut's cache and check the digest made where the pack was made."""
    from concurrent.futures import ProcessPoolExecutor

    carry, target = Path(args.carry), Path(args.target)
    sys.path.insert(0, str(ROOT / "tools"))
    import make_pack
    from nucleitut import data

    expected = json.loads((carry / "data.json").read_text())
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(carry / "data.zip") as pack:
        jobs = [(info.filename, pack.read(info)) for info in pack.infolist()]
    with ProcessPoolExecutor(os.cpu_count() or 1) as pool, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as z:
        for name, png in pool.map(_png_member, jobs, chunksize=4):
            z.writestr(name, png)
        sample = make_pack._raw(make_pack.SAMPLE)
        for image_id, image, labels in zip(sample.ids, sample.images, sample.labels):
            import numpy as np

            gray = bool(np.all(image == image[..., :1]))
            z.writestr(f"{image_id}/images/{image_id}.png", _png(image[..., 0] if gray else image))
            z.writestr(f"{image_id}/labels/{image_id}.png", _png(labels.astype(np.uint16)))
    log(f"{target}: {len(jobs) // 2} carried images and the package's sample as PNG")
    dataset = data.load_dataset(target, verbose=True)  # fills the decoded cache the chapters read
    digest = data_digest(dataset)
    if digest != expected["digest"] or len(dataset.ids) != expected["n_images"]:
        print(f"{target}: decodes to other data than the pack was made from ({digest[:16]} != {expected['digest'][:16]})",
              file=sys.stderr)
        return 1
    log(f"data checked: {len(dataset.ids)} images, digest {digest[:16]} as made from {expected['made_from']}")
    return 0


# ----------------------------------------------------------------------------------------
# bench (there): one training step of a 4-block F=64 and a 5-block F=32 network, alone
# ----------------------------------------------------------------------------------------


def cmd_bench(args) -> int:
    import numpy as np
    import keras

    from nucleitut import config, training

    start = time.perf_counter()
    results = {}
    for network in args.networks.split(","):
        cfg = config.training_config(network)
        training._set_precision(cfg)
        model = training.build_model(cfg, steps_per_epoch=100)
        rng = np.random.default_rng(0)
        x = rng.normal(size=(cfg.batch_size, cfg.crop_size, cfg.crop_size, 3)).astype("float32")
        y = np.zeros((cfg.batch_size, cfg.crop_size, cfg.crop_size, cfg.out_channels), "float32")
        first = time.perf_counter()
        model.train_on_batch(x, y)
        compile_s = time.perf_counter() - first
        for _ in range(2):
            model.train_on_batch(x, y)
        t = time.perf_counter()
        for _ in range(args.steps):
            model.train_on_batch(x, y)
        loss = model.train_on_batch(x, y)  # returns numbers: every queued step has ended
        float(np.asarray(loss[0] if isinstance(loss, (list, tuple)) else loss))
        ms = 1000 * (time.perf_counter() - t) / ((args.steps + 1) * cfg.batch_size)
        results[network] = {"blocks": cfg.blocks, "filters": cfg.filters, "crop_size": cfg.crop_size,
                            "batch_size": cfg.batch_size, "dtype_policy": keras.mixed_precision.global_policy().name,
                            "ms_per_crop": round(ms, 3), "first_step_seconds": round(compile_s, 1)}
        log(f"bench {network} ({cfg.blocks} blocks, F={cfg.filters}, {cfg.crop_size}x{cfg.crop_size}): {ms:.2f} ms per crop")
        keras.backend.clear_session()
    Path(args.out).write_text(json.dumps({
        "what": "training step (train_on_batch) per crop, one network alone on the device, random crops",
        "profile": config.get_profile().name, "backend": keras.backend.backend(),
        "devices": config.available_devices() or ["cpu"], "steps": args.steps,
        "seconds": round(time.perf_counter() - start, 1), "networks": results}, indent=1) + "\n")
    return 0


# ----------------------------------------------------------------------------------------
# book (there): trainings, then the chapters, each under nbval
# ----------------------------------------------------------------------------------------


def chapters() -> list[Path]:
    """Every notebook nbval collects in ``book/``, in name order (``GPU_BOOK_CHAPTERS``:
    only these, by name without ``.ipynb``, comma-separated; for rehearsals)."""
    found = sorted((ROOT / "book").glob("*.ipynb"))
    wanted = [name for name in os.environ.get("GPU_BOOK_CHAPTERS", "").split(",") if name]
    return [path for path in found if path.stem in wanted] if wanted else found


def needs_networks(chapter: Path) -> bool:
    """Does the chapter load (or train) networks of the profile?"""
    return "trained_model(" in chapter.read_text(encoding="utf-8")


class Runner:
    """Child processes with their log, times and exit codes; all stopped at the deadline."""

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.jobs: dict[str, dict] = {}

    def start(self, name: str, command: list[str], env: dict, log_path: Path) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(log_path, "w")
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        self.jobs[name] = {"process": process, "handle": handle, "start": time.time(), "end": None, "code": None,
                           "log": str(log_path)}

    def wait(self, names) -> bool:
        """Wait for ``names`` (noting when any job ends); False when the deadline stopped them."""
        names = list(names)
        while True:
            for name in self.jobs:
                self._poll(name)
            running = [n for n in names if self._poll(n) is None]
            if not running:
                return True
            if time.time() > self.deadline:
                for name in running:
                    log(f"deadline: stopping {name}")
                    self._stop(name)
                return False
            time.sleep(0.5)

    def _poll(self, name):
        job = self.jobs[name]
        if job["code"] is None:
            code = job["process"].poll()
            if code is not None:
                job["code"], job["end"] = code, time.time()
                job["handle"].close()
        return job["code"]

    def _stop(self, name) -> None:
        """SIGINT first (pytest then still writes its report and the plugin the chapter so
        far), then SIGTERM and SIGKILL to the process group."""
        job = self.jobs[name]
        for sig, seconds in ((signal.SIGINT, 10), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            try:
                if sig == signal.SIGINT:
                    job["process"].send_signal(sig)
                else:
                    os.killpg(job["process"].pid, sig)
            except ProcessLookupError:
                break
            try:
                job["process"].wait(seconds)
                break
            except subprocess.TimeoutExpired:
                continue
        job["code"], job["end"] = "stopped at the deadline", time.time()
        job["handle"].close()

    def times(self, origin: float) -> dict:
        return {name: {"started_s": round(job["start"] - origin, 1),
                       "ended_s": round(job["end"] - origin, 1) if job["end"] else None,
                       "seconds": round(job["end"] - job["start"], 1) if job["end"] else None,
                       "exit_code": job["code"], "log": Path(job["log"]).name}
                for name, job in self.jobs.items()}


def _pytest(paths, junit: Path) -> list[str]:
    return [sys.executable, "-m", "pytest", "--nbval-lax", *map(str, paths), "-p", "no:cacheprovider", "-p", "gpu_book",
            f"--junitxml={junit}", f"--nbval-cell-timeout={os.environ.get('GPU_BOOK_CELL_TIMEOUT', '500')}", "-q"]


def cmd_book(args) -> int:
    work = Path(args.work)
    origin = float(os.environ.get("GPU_BOOK_START") or START)
    runner = Runner(origin + float(os.environ.get("GPU_BOOK_DEADLINE", "540")))
    networks = [n for n in args.networks.split(",") if n]
    for folder in ("executed", "records", "junit", "logs"):
        (work / folder).mkdir(parents=True, exist_ok=True)
    base = dict(os.environ)
    base["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tools")] + [p for p in [base.get("PYTHONPATH")] if p])
    base.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    # Trainings: one process per network, each an equal share of the GPU's memory.
    train_env = {**base, "XLA_PYTHON_CLIENT_MEM_FRACTION": os.environ.get("GPU_BOOK_TRAIN_MEM", "0.12")}
    profile = os.environ.get("NUCLEITUT_PROFILE", "gpu")
    for network in networks:
        runner.start(f"train {network}", [sys.executable, "-m", "nucleitut", "train", network, "--profile", profile],
                     train_env, work / "logs" / f"train_{network}.log")
    log(f"training {', '.join(networks)} at once ({profile} profile)")
    kernel_env = {**base, "GPU_BOOK_EXECUTED": str(work / "executed"), "GPU_BOOK_RECORDS": str(work / "records"),
                  "XLA_PYTHON_CLIENT_MEM_FRACTION": os.environ.get("GPU_BOOK_KERNEL_MEM", "0.08")}
    serial = os.environ.get("GPU_BOOK_SERIAL") == "1"
    free = [c for c in chapters() if not needs_networks(c)]
    later = [c for c in chapters() if needs_networks(c)]
    if not serial:
        for chapter in free:
            runner.start(chapter.stem, _pytest([chapter], work / "junit" / f"{chapter.stem}.xml"), kernel_env,
                         work / "logs" / f"{chapter.stem}.log")
        log(f"chapters that need no trained network, now: {', '.join(c.stem for c in free)}")
    runner.wait([f"train {n}" for n in networks])
    log("trainings ended: " + ", ".join(f"{n} ({runner.jobs[f'train {n}']['code']})" for n in networks))
    if serial:
        everything = [ROOT / "book"] if not os.environ.get("GPU_BOOK_CHAPTERS") else chapters()
        runner.start("book", _pytest(everything, work / "junit" / "book.xml"), kernel_env, work / "logs" / "book.log")
        log("all chapters, one after another: pytest --nbval-lax book")
    else:
        for chapter in later:
            runner.start(chapter.stem, _pytest([chapter], work / "junit" / f"{chapter.stem}.xml"), kernel_env,
                         work / "logs" / f"{chapter.stem}.log")
        log(f"the other chapters, at once: {', '.join(c.stem for c in later)}")
    runner.wait([n for n in runner.jobs if not n.startswith("train ")])
    (work / "book.json").write_text(json.dumps({
        "profile": profile, "networks": networks, "serial": serial,
        "chapters_during_training": [] if serial else [c.stem for c in free],
        "jobs": runner.times(origin)}, indent=1) + "\n")
    failed = [n for n, j in runner.jobs.items() if j["code"] != 0]
    log("done" + (f"; failed or stopped: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


# ----------------------------------------------------------------------------------------
# The pytest plugin: executed chapters and their times, evaluation records
# ----------------------------------------------------------------------------------------

_state: dict[str, dict] = {}

#: Run in a chapter's kernel after its last cell (with GPU_BOOK_RECORDS set): writes every
#: evaluation record of the run's profile that the chapter holds (a dict with pipeline,
#: profile, tta, mean and per_image, alone or in a list) with nucleitut.records.write_record.
#: Records of other profiles are the stored ones the chapter read from results/.
SAVE_RECORDS = """
def _gpu_book_save_records(folder):
    from nucleitut import config as _config, records as _records
    seen, _profile = set(), _config.get_profile().name
    for _value in list(globals().values()):
        for _item in (_value if isinstance(_value, list) else [_value]):
            if (isinstance(_item, dict) and {"pipeline", "profile", "tta", "mean", "per_image"} <= set(_item)
                    and _item["profile"] == _profile and id(_item) not in seen):
                seen.add(id(_item))
                _records.write_record(_item, folder)
    return len(seen)
_gpu_book_save_records(%r)
del _gpu_book_save_records
"""


def scrub_paths(text: str, places: dict) -> str:
    """``text`` with the machine's folders named by their role (``{"/tmp/gpu_book": "<work>"}``),
    the longest first, so that the book shows no machine path.

    >>> scrub_paths('"at /tmp/w/data.zip and /tmp/w_site/x"', {"/tmp/w": "<work>", "/tmp/w_site": "<site>"})
    '"at <work>/data.zip and <site>/x"'
    """
    for path in sorted(places, key=len, reverse=True):
        text = text.replace(path, places[path])
    return text


def _nbval_cell(item) -> bool:
    return hasattr(item, "cell") and hasattr(item, "test_outputs") and hasattr(item.parent, "nb")


def executed_notebook(notebook, outputs: dict) -> object:
    """A copy of ``notebook`` whose code cells have ``outputs`` (cell index -> list of outputs)
    and execution counts 1, 2, ... in order; cells without an entry keep no output."""
    executed = copy.deepcopy(notebook)
    count = 0
    for index, cell in enumerate(executed.cells):
        if cell.cell_type != "code":
            continue
        if index in outputs:
            count += 1
            cell.outputs = outputs[index]
            cell.execution_count = count
        else:
            cell.outputs, cell.execution_count = [], None
    return executed


_reports: dict[str, tuple[str, float]] = {}


def _new_state(item) -> dict:
    return {"start": time.time(), "outputs": {}, "outcomes": [], "seconds": 0.0, "nb": item.parent.nb}


def pytest_runtest_setup(item):
    if _nbval_cell(item) and os.environ.get("GPU_BOOK_EXECUTED"):
        _state.setdefault(str(item.parent.path), _new_state(item))


def pytest_runtest_logreport(report):
    if report.when == "call" or report.failed or report.skipped:
        outcome, seconds = _reports.get(report.nodeid, ("passed", 0.0))
        _reports[report.nodeid] = (report.outcome if outcome == "passed" else outcome, seconds + report.duration)


def _save_records(item, folder: str) -> None:
    kernel = item.parent.kernel
    if kernel is None or not kernel.is_alive():
        return
    try:
        msg_id = kernel.execute_cell_input(SAVE_RECORDS % folder, allow_stdin=False)
        kernel.await_reply(msg_id, timeout=120)
        kernel.await_idle(msg_id, timeout=120)
    except Exception as error:  # the chapter's result stands; only its records are missing
        print(f"gpu_book: records of {item.parent.path.name} not written ({type(error).__name__}: {error})")


def _pytest_runtest_teardown(item, nextitem):
    if not _nbval_cell(item) or not os.environ.get("GPU_BOOK_EXECUTED"):
        return
    key = str(item.parent.path)
    state = _state.setdefault(key, _new_state(item))
    index = next(i for i, cell in enumerate(item.parent.nb.cells) if cell is item.cell)
    state["outputs"][index] = list(item.test_outputs or [])
    outcome, seconds = _reports.pop(item.nodeid, ("not run", 0.0))
    state["outcomes"].append(outcome)
    state["seconds"] += seconds
    if nextitem is not None and getattr(nextitem, "parent", None) is item.parent:
        return  # not the chapter's last cell
    if os.environ.get("GPU_BOOK_RECORDS"):
        _save_records(item, os.environ["GPU_BOOK_RECORDS"])
    _write_chapter(key, _state.pop(key))


def pytest_sessionfinish(session, exitstatus):
    """A chapter stopped before its last cell (the deadline): kept as far as it ran."""
    for key in list(_state):
        _write_chapter(key, _state.pop(key), complete=False)


def _write_chapter(key: str, state: dict, complete: bool = True) -> None:
    import nbformat

    folder = Path(os.environ["GPU_BOOK_EXECUTED"])
    folder.mkdir(parents=True, exist_ok=True)
    stem = Path(key).stem
    executed = executed_notebook(state["nb"], state["outputs"])
    places = {str(folder.parent): "<work>", str(ROOT): "<repo>"}
    if os.environ.get("GPU_BOOK_SITE"):
        places[os.environ["GPU_BOOK_SITE"]] = "<site>"
    nbformat.write(nbformat.from_dict(json.loads(scrub_paths(json.dumps(executed), places))), str(folder / f"{stem}.ipynb"))
    outcomes = state["outcomes"]
    (folder / f"{stem}.json").write_text(json.dumps({
        "seconds": round(time.time() - state["start"], 1),  # first cell's set-up (kernel start) to the last cell
        "cells": len(outcomes), "passed": outcomes.count("passed"), "failed": outcomes.count("failed"),
        "skipped": outcomes.count("skipped"), "cells_seconds": round(state["seconds"], 1),
        "complete": complete}, indent=1) + "\n")


if pytest is not None:  # the kernel is still alive: nbval stops it in the teardown after this hook
    pytest_runtest_teardown = pytest.hookimpl(tryfirst=True)(_pytest_runtest_teardown)


# ----------------------------------------------------------------------------------------
# summary (there): summary.json, junit.xml, Figure 9 and the archives, into OUT
# ----------------------------------------------------------------------------------------


def merge_junit(reports, target: Path) -> dict:
    """One ``<testsuites>`` from several JUnit reports; returns the counts."""
    merged = ET.Element("testsuites")
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for report in reports:
        root = ET.parse(report).getroot()
        for suite in ([root] if root.tag == "testsuite" else root.findall("testsuite")):
            merged.append(suite)
            for key in counts:
                counts[key] += int(suite.get(key, 0))
    for key, value in counts.items():
        merged.set(key, str(value))
    ET.ElementTree(merged).write(target, encoding="utf-8", xml_declaration=True)
    return counts


def junit_chapters(junit: Path) -> dict:
    """Per chapter: sum of its cells' times, cells, failed cells (errors included)."""
    result: dict[str, dict] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        match = re.search(r"([\w-]+)\.ipynb", case.get("classname", "") + " " + case.get("file", ""))
        if not match:
            continue
        entry = result.setdefault(match.group(1), {"seconds": 0.0, "cells": 0, "failed": 0})
        entry["seconds"] = round(entry["seconds"] + float(case.get("time", 0)), 2)
        entry["cells"] += 1
        entry["failed"] += int(case.find("failure") is not None or case.find("error") is not None)
    return result


def steady_ms_per_crop(epoch_seconds, crops: int):
    """ms per training crop (validation included) of the epochs after the first (compilation)
    and before the last (cut short by the time budget): their median; with fewer epochs, the
    one after the first, else the only one (then compilation is included)."""
    if not epoch_seconds or not crops:
        return None, "no finished epoch"
    if len(epoch_seconds) >= 3:
        chosen, note = epoch_seconds[1:-1], f"median of epochs 2-{len(epoch_seconds) - 1}"
    elif len(epoch_seconds) == 2:
        chosen, note = epoch_seconds[1:], "epoch 2 (possibly cut short by the budget)"
    else:
        chosen, note = epoch_seconds, "epoch 1 only: compilation included"
    return round(1000 * statistics.median(chosen) / crops, 2), note


def network_summary(folder: Path) -> dict:
    import csv

    cfg = json.loads((folder / "config.json").read_text()) if (folder / "config.json").exists() else {}
    timing = json.loads((folder / "timing.json").read_text()) if (folder / "timing.json").exists() else {}
    rows = []
    if (folder / "history.csv").exists():
        with open(folder / "history.csv") as handle:
            rows = list(csv.DictReader(handle))
    epochs = [float(r["epoch_seconds"]) for r in rows if r.get("epoch_seconds")]
    ms, note = steady_ms_per_crop(epochs, timing.get("training_crops", 0))
    losses = [float(r["val_loss"]) for r in rows if r.get("val_loss")]
    return {
        "blocks": cfg.get("blocks"), "filters": cfg.get("filters"), "crop_size": cfg.get("crop_size"),
        "learning_rate": cfg.get("learning_rate"), "time_budget_s": cfg.get("time_budget_s"),
        "mixed_precision": cfg.get("mixed_precision"), "epochs": timing.get("epochs", len(rows)),
        "training_seconds": timing.get("seconds_this_run"), "stopped_by_time_budget": timing.get("stopped_by_time_budget"),
        "first_epoch_seconds": epochs[0] if epochs else None, "training_crops": timing.get("training_crops"),
        "ms_per_crop": ms, "ms_per_crop_from": note,
        "ms_per_crop_including_first_epoch": timing.get("ms_per_crop_including_validation"),
        "predict_ms_per_crop": timing.get("predict_ms_per_crop"), "best_val_loss": min(losses) if losses else None,
        "devices": timing.get("devices"),
    }


def figure9_png(executed: Path):
    """The PNG of the cell that draws Figure 9 of this run's networks (chapter 6: ``figure9(scored``)."""
    for path in sorted(executed.glob("*.ipynb")):
        notebook = json.loads(path.read_text())
        for cell in notebook["cells"]:
            source = "".join(cell.get("source", ""))
            if cell["cell_type"] == "code" and "figure9(scored" in source:
                for output in cell.get("outputs", []):
                    png = output.get("data", {}).get("image/png")
                    if png:
                        return base64.b64decode("".join(png) if isinstance(png, list) else png)
    return None


def trained_in_chapters(executed: Path) -> list[str]:
    """Networks a chapter trained itself (``Training B1 (gpu profile): ...`` in its output)."""
    found = set()
    for path in sorted(executed.glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            for output in cell.get("outputs", []):
                text = "".join(output.get("text", ""))
                found |= {f"{m.group(1)} ({path.stem})" for m in re.finditer(r"^Training (\w+) \(\w+ profile\)", text, re.M)}
    return sorted(found)


def versions() -> dict:
    """Versions of what the run used (package metadata: nothing is imported)."""
    from importlib import metadata

    found = {"python": sys.version.split()[0]}
    for name in ("jax", "jaxlib", "keras", "numpy", "scipy", "scikit-image", "matplotlib", "pytest", "nbval", "ipykernel"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def summarize(work: Path, total_seconds: float) -> dict:
    """summary.json's content from a run's folder (see :func:`cmd_book`, :func:`cmd_bench`)."""
    book = json.loads((work / "book.json").read_text()) if (work / "book.json").exists() else {"jobs": {}}
    reports = sorted((work / "junit").glob("*.xml"))
    counts = merge_junit(reports, work / "junit.xml") if reports else {}
    cells = junit_chapters(work / "junit.xml") if reports else {}
    executed = work / "executed"
    chapter_files = {p.stem: json.loads(p.read_text()) for p in sorted(executed.glob("*.json"))}
    jobs = book.get("jobs", {})
    chapter_seconds = {name: job["seconds"] for name, job in jobs.items() if not name.startswith("train ") and name != "book"}
    if not chapter_seconds:  # the serial run: the plugin's time per chapter
        chapter_seconds = {name: info["seconds"] for name, info in chapter_files.items()}
    networks = {}
    models = Path(os.environ.get("NUCLEITUT_MODELS", work / "models")) / book.get("profile", "gpu")
    for name in book.get("networks", []):
        networks[name] = network_summary(models / name) if (models / name).exists() else {"missing": True}
        job = jobs.get(f"train {name}", {})
        networks[name]["process_seconds"] = job.get("seconds")
        networks[name]["exit_code"] = job.get("exit_code")
    rates = [1 / n["ms_per_crop"] for n in networks.values() if n.get("ms_per_crop")]
    bench = json.loads((work / "bench.json").read_text()) if (work / "bench.json").exists() else None
    devices = (bench or {}).get("devices") or next((n["devices"] for n in networks.values() if n.get("devices")), None)
    smi = (work / "nvidia_smi_gpu.txt").read_text().strip() if (work / "nvidia_smi_gpu.txt").exists() else None
    stages = json.loads((work / "stages.json").read_text()) if (work / "stages.json").exists() else {}
    failed_chapters = sorted({name for name, info in cells.items() if info["failed"]}
                             | {n for n, j in jobs.items() if not n.startswith("train ") and j.get("exit_code") != 0})
    summary = {
        "what": "the whole book under pytest --nbval-lax on one machine (issue 32, tools/gpu_book.sh)",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": os.environ.get("NUCLEITUT_COMMIT"),
        "device": smi.split(",")[0].strip() if smi else (devices[0] if devices else "cpu"),
        "devices": devices,
        "gpu": smi,  # nvidia-smi: name, memory, driver
        "versions": versions(),
        "profile": book.get("profile"),
        "time_budget_s": next((n.get("time_budget_s") for n in networks.values() if n.get("time_budget_s")), None),
        "total_seconds": round(total_seconds, 1),
        "limit_seconds": LIMIT_SECONDS,
        "within_limit": total_seconds <= LIMIT_SECONDS,
        "stages": stages,
        "chapter_seconds": chapter_seconds,
        "chapter_cells_seconds": {name: info["seconds"] for name, info in cells.items()},
        "chapters_during_training": book.get("chapters_during_training", []),
        "nbval": {**counts, "passed": counts.get("tests", 0) - counts.get("failures", 0) - counts.get("errors", 0)
                  - counts.get("skipped", 0), "chapters": len(cells), "failed_chapters": failed_chapters},
        "ms_per_crop": {name: n.get("ms_per_crop") for name, n in networks.items()},
        "concurrent_trainings": len(networks),
        "ms_per_crop_all_networks_at_once": round(1 / sum(rates), 2) if rates else None,
        "benchmark_alone": {name: b["ms_per_crop"] for name, b in (bench or {}).get("networks", {}).items()},
        "networks": networks,
        "trained_in_chapters": trained_in_chapters(executed),
        "records": sorted(p.name for p in (work / "records").glob("*.json")),
        "jobs": jobs,
    }
    return summary


def _archives(work: Path, out: Path, limit: int = 15 * 2**20) -> list[str]:
    """Pack the run's files into as few ``run_<k>.tar.gz`` as fit ``limit`` each (the device
    tool brings back at most 8 files of 16 MiB)."""
    members = []
    for folder, arcname in (("executed", "chapters"), ("records", "records"), ("logs", "logs"), ("junit", "junit"),
                            ("networks", "networks"), ("sources", "sources")):
        for path in sorted((work / folder).rglob("*")) if (work / folder).exists() else []:
            if path.is_file():
                members.append((path, f"{arcname}/{path.relative_to(work / folder)}"))
    for name in ("bench.json", "book.json", "stages.json", "environment.json", "nvidia_smi.csv"):
        if (work / name).exists():
            members.append((work / name, name))
    names, current, size = [], None, 0
    for path, arcname in members:
        estimate = path.stat().st_size * (0.8 if path.suffix == ".ipynb" else 1.0)  # base64 PNGs gzip a little
        if current is None or size + estimate > limit:
            if current is not None:
                current.close()
            names.append(f"run_{len(names) + 1}.tar.gz")
            current, size = tarfile.open(out / names[-1], "w:gz"), 0
        current.add(path, arcname)
        size += estimate
    if current is not None:
        current.close()
    return names


def cmd_summary(args) -> int:
    work, out = Path(args.work), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    models = Path(os.environ.get("NUCLEITUT_MODELS", work / "models")) / os.environ.get("NUCLEITUT_PROFILE", "gpu")
    for folder in sorted(models.glob("*")) if models.exists() else []:
        for name in ("config.json", "history.csv", "timing.json"):
            if (folder / name).exists():
                (work / "networks" / folder.name).mkdir(parents=True, exist_ok=True)
                shutil.copy(folder / name, work / "networks" / folder.name / name)
    sources = work / "sources"
    for path in [ROOT / "_config.yml", ROOT / "_toc.yml", *sorted((ROOT / "book").glob("*.md")), *sorted((ROOT / "book").glob("*.bib"))]:
        target = sources / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    names = _archives(work, out)
    figure = figure9_png(work / "executed")
    if figure:
        (out / "figure9.png").write_bytes(figure)
    origin = float(os.environ.get("GPU_BOOK_START") or START)
    summary = summarize(work, time.time() - origin)
    summary["figure9"] = "figure9.png" if figure else None
    summary["archives"] = names
    if (work / "junit.xml").exists():
        shutil.copy(work / "junit.xml", out / "junit.xml")
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps({k: summary[k] for k in ("device", "total_seconds", "chapter_seconds", "ms_per_crop",
                                               "benchmark_alone", "nbval", "trained_in_chapters")}, indent=1))
    return 0 if summary["nbval"].get("tests") and not summary["nbval"]["failed_chapters"] else 1


# ----------------------------------------------------------------------------------------
# fetch (here): results/gpu_book_<date>/ from the files that came back
# ----------------------------------------------------------------------------------------


def cmd_fetch(args) -> int:
    source = Path(args.files)
    summary = json.loads((source / "summary.json").read_text())
    dest = Path(args.dest) if args.dest else ROOT / "results" / f"gpu_book_{summary['date'][:10]}"
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("summary.json", "junit.xml", "figure9.png", "log.txt"):
        if (source / name).exists():
            shutil.copy(source / name, dest / name)
    for archive in summary.get("archives", []):
        with tarfile.open(source / archive) as tar:
            tar.extractall(dest, filter="data")
    print(f"{dest}: {summary['device']}, {summary['total_seconds']} s, nbval {summary['nbval']}")
    print(f"build the GPU edition with: bash tools/build_from_executed.sh {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("prepare", help="here: .carry/gpu_book (site.tar.xz, data.zip, data.json, commit.txt)")
    p.add_argument("--out", default=str(ROOT / ".carry" / "gpu_book"))
    p.add_argument("--cache", default=str(ROOT / ".carry" / "gpu_book_cache"), help="wheels and tools (not carried)")
    p.add_argument("--png-pack", default=str(ROOT / ".carry" / "pack_without_sample.zip"))
    p.add_argument("--source", help="the full data set for tools/make_pack.py (default $NUCLEITUT_DATA or ../shared/data)")
    p.add_argument("--effort", type=int, default=9, help="JPEG XL effort (default 9, about 10 minutes on 2 cores; 7: 2.5 %% larger, 6x faster)")
    p.add_argument("--force", action="store_true")
    p.set_defaults(run=cmd_prepare)
    p = commands.add_parser("unpack")
    p.add_argument("carry")
    p.add_argument("target")
    p.set_defaults(run=cmd_unpack)
    p = commands.add_parser("bench")
    p.add_argument("out")
    p.add_argument("--networks", default="B1,B5")
    p.add_argument("--steps", type=int, default=20)
    p.set_defaults(run=cmd_bench)
    p = commands.add_parser("book")
    p.add_argument("work")
    p.add_argument("--networks", default=",".join(NETWORKS))
    p.set_defaults(run=cmd_book)
    p = commands.add_parser("summary")
    p.add_argument("work")
    p.add_argument("out")
    p.set_defaults(run=cmd_summary)
    p = commands.add_parser("fetch")
    p.add_argument("files", help="the folder the device tool put the returned files in (files_at)")
    p.add_argument("dest", nargs="?", help="default: results/gpu_book_<date of the run>")
    p.set_defaults(run=cmd_fetch)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
