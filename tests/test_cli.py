"""Tests of the command line (python -m nucleitut): train, evaluate, segment, figure9."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import imageio.v3 as iio
import pytest

from nucleitut import config, data

ROOT = Path(__file__).resolve().parents[1]

#: Every test here starts the command line in a subprocess (and trains tiny networks).
pytestmark = pytest.mark.slow


def cli(*args, env=None, timeout=900):
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.run([sys.executable, "-m", "nucleitut", *map(str, args)], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """B1 and M3 of the quick profile, trained for one short epoch each into a private folder."""
    root = tmp_path_factory.mktemp("cli")
    env = {"NUCLEITUT_MODELS": str(root / "models"), "NUCLEITUT_CACHE": str(root / "cache"), "NUCLEITUT_PROFILE": "quick"}
    for network in ("B1", "M3"):
        result = cli("train", network, "--epochs", 1, "--time-budget", 15, env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"Saved {network}" in result.stdout and "epoch   1" in result.stdout
    return root, env


def test_train_writes_model_configuration_history_and_timing(trained):
    root, _ = trained
    directory = root / "models" / "quick" / "M3"
    assert {"model.keras", "config.json", "history.csv", "timing.json"} <= {p.name for p in directory.iterdir()}
    assert json.loads((directory / "config.json").read_text())["target"] == "marker"
    assert json.loads((directory / "timing.json").read_text())["epochs"] == 1


def test_evaluate_writes_self_describing_records_and_figure9_draws_them(trained):
    root, env = trained
    results = root / "results"
    out = cli("evaluate", "M3B1", "--tta", "both", "--results", results, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    records = sorted(results.glob("*.json"))
    assert [p.name for p in records] == ["quick_M3B1.json", "quick_M3B1_tta.json"]
    record = json.loads(records[1].read_text())
    assert record["tta"] is True and record["method"] == "two_network" and record["profile"] == "quick"
    assert record["n_images"] == len(data.sample_split().test) == len(record["per_image"])
    assert 0.0 <= record["mean"]["kaggle_score"] <= 1.0
    assert np.isclose(record["mean"]["kaggle_score"], np.mean([r["kaggle_score"] for r in record["per_image"]]))
    for key in ("hardware", "versions", "commit", "date", "networks", "totals"):
        assert key in record
    assert record["networks"]["M3"]["epochs"] == 1 and record["networks"]["B1"]["ms_per_crop"] > 0
    figure = root / "figure9.png"
    drawn = cli("figure9", "--results", results, "--out", figure, env=env)
    assert drawn.returncode == 0, drawn.stderr
    assert iio.imread(figure).shape[1] > 300


def test_evaluate_tune_chooses_settings_on_validation_images(trained, tmp_path):
    _, env = trained
    out = cli("evaluate", "M3B1", "--tta", "no", "--tune", "--results", tmp_path, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert sorted(p.name for p in tmp_path.glob("*.json")) == ["quick_M3B1.json", "quick_M3B1_tuned.json"]
    assert json.loads((tmp_path / "quick_M3B1.json").read_text())["postprocess"] == {
        "settings": config.POSTPROCESS_DEFAULTS["two_network"], "chosen_on": "defaults"}
    record = json.loads((tmp_path / "quick_M3B1_tuned.json").read_text())
    chosen = record["postprocess"]
    assert chosen["chosen_on"].startswith(f"validation: best mean score over {len(data.sample_split().val)} images")
    grid = config.POSTPROCESS_GRID["two_network"]
    assert all(chosen["settings"][name] in values for name, values in grid.items())
    assert record["n_images"] == len(data.sample_split().test)
    refused = cli("evaluate", "M3B1", "--tune", "--ids", "all", "--results", tmp_path, env=env)
    assert refused.returncode == 2 and "--tune chooses post-processing settings on the validation split" in refused.stderr


def test_segment_handles_a_folder_of_odd_images(trained, tmp_path):
    _, env = trained
    sample = data.load_dataset("sample", verbose=False, use_cache=False)
    image = sample.images[0]
    folder = tmp_path / "odd"
    folder.mkdir()
    gray16 = (image[..., 0].astype(np.uint16) * 16)[:100, :150]
    import tifffile

    tifffile.imwrite(folder / "gray16.tif", gray16)
    iio.imwrite(folder / "small_rgb.jpg", image[:77, :93], quality=95)
    iio.imwrite(folder / "rgba.png", np.dstack([image, np.full(image.shape[:2], 255, np.uint8)]))
    iio.imwrite(folder / "gray8.png", image[..., 0])
    (folder / "broken.png").write_bytes(b"not an image at all")
    (folder / "notes.txt").write_text("ignored: not an image")
    out = cli("segment", folder, tmp_path / "labels", "--pipeline", "M3B1", env=env)
    assert out.returncode == 1, "an unreadable image makes the run fail after the others are written"
    assert "broken.png: cannot decode image" in out.stderr
    written = {p.name for p in (tmp_path / "labels").iterdir()}
    for stem in ("gray16", "small_rgb", "rgba", "gray8"):
        assert {f"{stem}_labels.png", f"{stem}_labels.tif", f"{stem}_overlay.png", f"{stem}_nuclei.csv"} <= written
    labels = iio.imread(tmp_path / "labels" / "gray16_labels.png")
    assert labels.shape == (100, 150) and labels.dtype == np.uint16
    assert iio.imread(tmp_path / "labels" / "small_rgb_labels.png").shape == (77, 93)


def test_unknown_network_and_missing_model_give_clear_errors(trained, tmp_path):
    _, env = trained
    unknown = cli("train", "B9", env=env)
    assert unknown.returncode == 2 and "unknown network 'B9'" in unknown.stderr
    root, _ = trained
    missing = cli("evaluate", "M2", "--results", tmp_path, env=env)
    assert missing.returncode == 2 and "no trained M2 (quick profile, seed 0)" in missing.stderr
    assert "python -m nucleitut train M2 --profile quick" in missing.stderr
    assert not (root / "models" / "quick" / "M2").exists() and not list(tmp_path.glob("*.json")), "evaluate never trains"
    nothing = cli("figure9", "--results", tmp_path / "empty", env=env)
    assert nothing.returncode == 2 and "no results records" in nothing.stderr


def test_evaluate_scores_the_images_of_data_with_the_trained_networks(trained, tmp_path):
    """--data is honoured: the record scores the images of that folder, nothing is trained."""
    root, env = trained
    sample = data.load_dataset("sample", verbose=False, use_cache=False)
    folder = tmp_path / "mine"
    chosen = sample.ids[:3]
    for image_id in chosen:
        image, labels = sample.get(image_id)
        (folder / image_id / "images").mkdir(parents=True)
        (folder / image_id / "masks").mkdir()
        iio.imwrite(folder / image_id / "images" / f"{image_id}.png", image)
        for k in range(1, int(labels.max()) + 1):
            iio.imwrite(folder / image_id / "masks" / f"{k}.png", ((labels == k) * 255).astype(np.uint8))
    before = sorted(p.name for p in (root / "models" / "quick").iterdir())
    out = cli("evaluate", "B1", "--tta", "no", "--ids", "all", "--data", folder, "--results", tmp_path / "res", env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    record = json.loads((tmp_path / "res" / "quick_B1.json").read_text())
    assert sorted(row["id"] for row in record["per_image"]) == sorted(chosen)
    assert record["data"]["n_images"] == 3 and str(folder) not in json.dumps(record)
    assert sorted(p.name for p in (root / "models" / "quick").iterdir()) == before
