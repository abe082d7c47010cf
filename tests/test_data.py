"""Tests of nucleitut.data: loading, bad input, download, split, crops and tiling."""

import functools
import hashlib
import http.server
import json
import os
import threading
import zipfile
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from nucleitut import data

FULL_DATA = os.environ.get("NUCLEITUT_DATA")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NUCLEITUT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("NUCLEITUT_DATA_URL", raising=False)
    monkeypatch.delenv("NUCLEITUT_DATA_SHA256", raising=False)
    return tmp_path / "cache"


def _png(array):
    return iio.imwrite("<bytes>", array, extension=".png")


def unpack_sample(root, n):
    """The first ``n`` real images of the embedded sample with their masks, unpacked in the
    Kaggle layout under ``root``: ``(root, ids)``."""
    with zipfile.ZipFile(data.SAMPLE_ZIP) as archive:
        ids = sorted({name.split("/")[0] for name in archive.namelist()})[:n]
        for name in archive.namelist():
            if name.split("/")[0] in ids:
                target = root / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.read(name))
    return root, ids


@pytest.fixture
def kaggle_folder(tmp_path):
    """Three real images of the embedded sample, unpacked in the Kaggle layout."""
    return unpack_sample(tmp_path / "stage1_train", 3)


def _zip_folder(folder, zip_path, top=True):
    with zipfile.ZipFile(zip_path, "w") as archive:
        for path in sorted(folder.rglob("*.png")):
            rel = path.relative_to(folder.parent if top else folder)
            archive.write(path, rel.as_posix())
    return zip_path


# ----------------------------------------------------------------------------- reading


def test_overlapping_masks_keep_the_first_label():
    a = np.zeros((4, 4), np.uint8); a[0:2, 0:3] = 255
    b = np.zeros((4, 4), np.uint8); b[1:3, 2:4] = 255
    labels = data.merge_masks([a, b], (4, 4))
    assert labels[1, 2] == 1  # claimed by both: the first mask keeps it
    assert labels[2, 3] == 2 and labels.dtype == np.int32


def test_closing_fills_holes_without_merging_neighbours():
    labels = np.zeros((9, 12), np.int32)
    labels[1:8, 1:6] = 1
    labels[4, 3] = 0  # a one-pixel hole
    labels[1:8, 7:11] = 2  # a neighbour one pixel away
    closed = data.close_label_holes(labels, radius=1)
    assert closed[4, 3] == 1
    assert np.all(closed[:, 6] == 0), "the gap between the nuclei must stay background"
    assert np.array_equal(closed[labels == 2], labels[labels == 2])


def test_folder_and_zips_with_and_without_top_folder_give_the_same_data(kaggle_folder, tmp_path):
    root, ids = kaggle_folder
    from_folder = data.load_dataset(root, use_cache=False, verbose=False)
    with_top = data.load_dataset(_zip_folder(root, tmp_path / "a.zip", top=True), use_cache=False, verbose=False)
    without_top = data.load_dataset(_zip_folder(root, tmp_path / "b.zip", top=False), use_cache=False, verbose=False)
    assert from_folder.ids == with_top.ids == without_top.ids == ids
    for other in (with_top, without_top):
        for a, b in zip(from_folder.labels, other.labels):
            assert np.array_equal(a, b)
    n_masks = len(list((root / ids[0] / "masks").glob("*.png")))
    assert from_folder.labels[0].max() == n_masks
    assert from_folder.images[0].dtype == np.uint8 and from_folder.images[0].shape[2] == 3


def test_second_load_reads_the_decoded_cache(kaggle_folder, capsys):
    root, _ = kaggle_folder
    first = data.load_dataset(root)
    second = data.load_dataset(root)
    out = capsys.readouterr().out
    assert "decoded from PNG files" in out and "decoded cache" in out
    assert all(np.array_equal(a, b) for a, b in zip(first.labels, second.labels))
    assert all(np.array_equal(a, b) for a, b in zip(first.images, second.images))


def test_source_in_use_is_stated(capsys, monkeypatch):
    monkeypatch.delenv("NUCLEITUT_DATA", raising=False)
    dataset = data.load_dataset(profile="quick")
    assert dataset.is_sample and "sample" in dataset.source
    assert "embedded real-data sample" in capsys.readouterr().out


# ----------------------------------------------------------------------------- bad input


def test_corrupt_png_names_the_file(kaggle_folder):
    root, ids = kaggle_folder
    bad = root / ids[0] / "images" / f"{ids[0]}.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    with pytest.raises(data.DataError, match=f"{ids[0]}.png: cannot decode image"):
        data.load_dataset(root, verbose=False)


def test_truncated_png_names_the_file(kaggle_folder):
    root, ids = kaggle_folder
    mask = sorted((root / ids[1] / "masks").glob("*.png"))[0]
    mask.write_bytes(mask.read_bytes()[:60])
    with pytest.raises(data.DataError, match=f"{mask.name}: cannot decode image"):
        data.load_dataset(root, verbose=False)


@pytest.mark.slow
def test_a_script_without_main_guard_still_loads_many_images(tmp_path):
    """64 or more images are decoded in spawned processes, which re-run an unguarded script;
    the loader then decodes in its own process and says why."""
    import subprocess
    import sys

    root = tmp_path / "many"
    rng = np.random.default_rng(0)
    for k in range(64):
        image_id = f"img{k:03d}"
        (root / image_id / "images").mkdir(parents=True)
        (root / image_id / "masks").mkdir()
        (root / image_id / "images" / f"{image_id}.png").write_bytes(_png(rng.integers(0, 255, (12, 12), dtype=np.uint8)))
        mask = np.zeros((12, 12), np.uint8)
        mask[2:6, 2:6] = 255
        (root / image_id / "masks" / "m.png").write_bytes(_png(mask))
    script = tmp_path / "unguarded.py"
    script.write_text(
        "from nucleitut import data\n"
        f"dataset = data.load_dataset({str(root)!r}, use_cache=False, verbose=False)\n"
        "print('LOADED', len(dataset.ids), int(dataset.labels[0].max()))\n"
    )
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1])))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "LOADED 64 1" in result.stdout.splitlines()
    assert 'guard its main code with `if __name__ == "__main__":`' in result.stderr


def test_image_folder_without_masks_is_an_error(kaggle_folder):
    root, ids = kaggle_folder
    for path in (root / ids[2] / "masks").iterdir():
        path.unlink()
    (root / ids[2] / "masks").rmdir()
    with pytest.raises(data.DataError, match=f"{ids[2]}: image folder has no masks/ folder"):
        data.load_dataset(root, verbose=False)


def test_empty_masks_folder_is_an_error(kaggle_folder):
    root, ids = kaggle_folder
    for path in (root / ids[2] / "masks").iterdir():
        path.unlink()
    with pytest.raises(data.DataError, match=f"{ids[2]}/masks: empty masks folder"):
        data.load_dataset(root, verbose=False)


def test_mask_of_another_size_is_an_error(kaggle_folder):
    root, ids = kaggle_folder
    mask = sorted((root / ids[0] / "masks").glob("*.png"))[0]
    mask.write_bytes(_png(np.full((10, 10), 255, np.uint8)))
    with pytest.raises(data.DataError, match=f"{mask.name}: mask size \\(10, 10\\) differs from image size"):
        data.load_dataset(root, verbose=False)


def _decoded_entries(cache):
    folder = cache / "decoded"
    return sorted(folder.iterdir()) if folder.exists() else []


def test_a_good_archive_fills_the_decoded_cache(kaggle_folder, tmp_path, private_cache):
    """The control for the two tests below: loading a readable archive does write the cache."""
    root, ids = kaggle_folder
    dataset = data.load_dataset(_zip_folder(root, tmp_path / "good.zip"), verbose=False)
    assert dataset.ids == ids
    assert _decoded_entries(private_cache), "a loaded archive is cached"


@pytest.mark.parametrize("evil", ["../escaped.png", "/tmp/nucleitut-absolute-escape.png"])
def test_zip_with_unsafe_entry_is_refused_before_anything_is_decoded_or_cached(kaggle_folder, tmp_path, evil, private_cache):
    # The loader reads members in memory and never extracts, so the danger of an unsafe entry
    # is a half-read archive in the cache. The whole archive is refused before that.
    root, _ = kaggle_folder
    archive_path = _zip_folder(root, tmp_path / "evil.zip")
    with zipfile.ZipFile(archive_path, "a") as archive:
        archive.writestr(evil, b"payload")
    with pytest.raises(data.DataError, match="evil.zip: unsafe entry"):
        data.load_dataset(archive_path, verbose=False)
    assert _decoded_entries(private_cache) == []


def test_truncated_zip_names_the_archive_and_caches_nothing(kaggle_folder, tmp_path, private_cache):
    root, _ = kaggle_folder
    archive_path = _zip_folder(root, tmp_path / "cut.zip")
    archive_path.write_bytes(archive_path.read_bytes()[: archive_path.stat().st_size // 2])
    with pytest.raises(data.DataError, match="cut.zip: not a readable zip archive"):
        data.load_dataset(archive_path, verbose=False)
    assert _decoded_entries(private_cache) == []


# ----------------------------------------------------------------------------- download


@pytest.fixture
def local_server(tmp_path):
    """A real HTTP server on 127.0.0.1 serving ``tmp_path / 'www'``."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_from_local_server_is_checked_cached_and_loaded(kaggle_folder, local_server, private_cache, monkeypatch):
    root, ids = kaggle_folder
    www, base = local_server
    archive_path = _zip_folder(root, www / "data.zip")
    digest = hashlib.sha256(archive_path.read_bytes()).hexdigest()
    monkeypatch.setenv("NUCLEITUT_DATA_SHA256", digest)
    dataset = data.load_dataset(f"{base}/data.zip", verbose=False)
    assert dataset.ids == ids and "download of" in dataset.source
    cached = list((private_cache / "downloads").iterdir())
    assert len(cached) == 1 and hashlib.sha256(cached[0].read_bytes()).hexdigest() == digest


def test_download_with_wrong_checksum_fails_and_keeps_nothing(kaggle_folder, local_server, private_cache):
    root, _ = kaggle_folder
    www, base = local_server
    _zip_folder(root, www / "data.zip")
    with pytest.raises(data.DataError, match="data.zip: download failed the integrity check"):
        data.download(f"{base}/data.zip", sha256="0" * 64, progress=False)
    assert list((private_cache / "downloads").iterdir()) == []


def test_download_without_checksum_rejects_a_corrupt_archive(local_server, private_cache):
    www, base = local_server
    (www / "broken.zip").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(data.DataError, match="broken.zip: download failed the integrity check"):
        data.download(f"{base}/broken.zip", progress=False)
    assert list((private_cache / "downloads").iterdir()) == []


# ----------------------------------------------------------------------------- split and sample


def test_paper_split_is_deterministic_and_takes_the_last_ids_as_test():
    ids = [f"{i:04x}" for i in range(664)]
    first, second = data.paper_split(ids[::-1]), data.paper_split(ids)
    assert first == second
    assert first.sizes() == (435, 109, 120)
    assert first.test == sorted(ids)[-120:]
    assert not set(first.train) & set(first.val)


def test_embedded_sample_covers_every_type_and_keeps_paper_test_images():
    info = json.loads(data.SAMPLE_SPLIT.read_text())
    ids = info["train"] + info["val"] + info["test"]
    assert len(set(ids)) == len(ids) >= 40
    kinds = {group.split(" ")[0] for group in info["groups"].values()}
    assert {"fluorescence", "bright-field", "H&E"} <= kinds
    assert {"fluorescence small nuclei 256x256", "fluorescence large nuclei 256x256"} <= set(info["groups"].values())
    assert data.SAMPLE_ZIP.stat().st_size <= 12 * 1024 * 1024
    sample = data.load_dataset("sample", verbose=False)
    assert sample.ids == sorted(ids)
    assert all(labels.max() > 0 for labels in sample.labels)


@pytest.mark.fulldata
@pytest.mark.skipif(not FULL_DATA, reason="NUCLEITUT_DATA does not point at the full data set")
def test_full_data_set_loads_with_the_papers_split():
    dataset = data.load_dataset(FULL_DATA, verbose=False)
    assert len(dataset) == 664
    split = dataset.split()
    assert split.sizes() == (435, 109, 120)
    assert split.test == sorted(dataset.ids)[-120:]
    assert split == data.load_dataset(FULL_DATA, verbose=False).split()
    assert data._ids_digest(dataset.ids) == data.FULL_DATA_IDS_SHA256
    sample = json.loads(data.SAMPLE_SPLIT.read_text())
    assert set(sample["test"]) <= set(split.test)
    assert not set(sample["train"] + sample["val"]) & set(split.test)


# ----------------------------------------------------------------------------- network inputs


def test_normalisation_maps_to_minus_one_one_and_back():
    image = np.arange(256, dtype=np.uint8).reshape(16, 16)
    normed = data.normalize(image)
    assert normed.dtype == np.float32 and normed.min() == -1 and normed.max() == 1
    assert np.array_equal(data.denormalize(normed), image)


def test_pad_to_mirrors_at_the_bottom_and_right_and_leaves_large_arrays_alone():
    array = np.arange(12).reshape(3, 4)
    padded = data.pad_to(array, 5, 6)
    assert padded.shape == (5, 6) and np.array_equal(padded[:3, :4], array)
    assert padded[3].tolist() == array[1].tolist() + [array[1, 2], array[1, 1]]  # reflection
    assert data.pad_to(array, 2, 3) is array
    tiny = data.pad_to(np.array([[1, 2]]), 4, 2)  # too small to reflect: symmetric
    assert tiny[:, 0].tolist() == [1, 1, 1, 1]
    rgb = data.pad_to(np.zeros((3, 3, 3), np.uint8), 8, 8)
    assert rgb.shape == (8, 8, 3) and rgb.dtype == np.uint8


def test_full_profile_reads_the_copy_named_by_NUCLEITUT_DATA(kaggle_folder, monkeypatch):
    root, ids = kaggle_folder
    monkeypatch.setenv("NUCLEITUT_DATA", str(root))
    dataset = data.load_dataset(profile="full", verbose=False)
    assert dataset.ids == ids and not dataset.is_sample and str(root) in dataset.source
    assert data.load_dataset(profile="quick", verbose=False).is_sample
