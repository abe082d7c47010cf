"""Tests of the command line (python -m nucleitut): train, evaluate, segment, figure9.

The tests marked slow start the command line in a subprocess (and train tiny networks); the
others call :func:`nucleitut.__main__.main` in this process with tiny untrained networks.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import imageio.v3 as iio
import pytest
import tifffile

from nucleitut import config, data, outputs
from nucleitut.__main__ import main
from nucleitut.pipeline import Pipeline

from test_pipeline import discs_image, missing_reference, reference  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, env=None, timeout=900):
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.run([sys.executable, "-m", "nucleitut", *map(str, args)], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """B1 (with the robust augmentation set) and M3 of the quick profile, trained for one short
    epoch each into a private folder."""
    root = tmp_path_factory.mktemp("cli")
    env = {"NUCLEITUT_MODELS": str(root / "models"), "NUCLEITUT_CACHE": str(root / "cache"), "NUCLEITUT_PROFILE": "quick"}
    for network, extra in (("B1", ("--augmentation", "robust")), ("M3", ())):
        result = cli("train", network, "--epochs", 1, "--time-budget", 15, *extra, env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"Saved {network}" in result.stdout and "epoch   1" in result.stdout
    return root, env


@pytest.mark.slow
def test_train_writes_model_configuration_history_and_timing(trained):
    root, _ = trained
    directory = root / "models" / "quick" / "M3"
    assert {"model.keras", "config.json", "history.csv", "timing.json"} <= {p.name for p in directory.iterdir()}
    assert json.loads((directory / "config.json").read_text())["target"] == "marker"
    assert json.loads((directory / "timing.json").read_text())["epochs"] == 1
    assert json.loads((directory / "config.json").read_text())["augmentation"] == "none"  # M3's Table 3 row
    assert json.loads((root / "models" / "quick" / "B1" / "config.json").read_text())["augmentation"] == "robust"


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_unknown_network_and_missing_model_give_clear_errors(trained, tmp_path):
    _, env = trained
    unknown = cli("train", "B9", env=env)
    assert unknown.returncode == 2 and "unknown network 'B9'" in unknown.stderr
    twist = cli("train", "B1", "--augmentation", "twist", env=env)
    assert twist.returncode == 2 and "unknown augmentation set 'twist'; choose from none, a, b, robust" in twist.stderr
    root, _ = trained
    missing = cli("evaluate", "M2", "--results", tmp_path, env=env)
    assert missing.returncode == 2 and "no trained M2 (quick profile, seed 0)" in missing.stderr
    assert "python -m nucleitut train M2 --profile quick" in missing.stderr
    assert not (root / "models" / "quick" / "M2").exists() and not list(tmp_path.glob("*.json")), "evaluate never trains"
    nothing = cli("figure9", "--results", tmp_path / "empty", env=env)
    assert nothing.returncode == 2 and "no results records" in nothing.stderr


@pytest.mark.slow
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


@pytest.mark.slow
def test_models_option_names_the_folder_of_trained_networks(trained, tmp_path):
    """--models is the folder the networks are read from, whatever NUCLEITUT_MODELS says."""
    root, env = trained
    elsewhere = {**env, "NUCLEITUT_MODELS": str(tmp_path / "empty")}
    out = cli("evaluate", "B1", "--tta", "no", "--models", root / "models", "--results", tmp_path / "res", env=elsewhere)
    assert out.returncode == 0, out.stdout + out.stderr
    record = json.loads((tmp_path / "res" / "quick_B1.json").read_text())
    assert record["networks"]["B1"]["epochs"] == 1  # the training facts of that folder's B1
    missing = cli("evaluate", "B1", "--tta", "no", "--results", tmp_path / "res2", env=elsewhere)
    assert missing.returncode == 2 and "no trained B1" in missing.stderr and str(tmp_path / "empty") in missing.stderr
    assert not (tmp_path / "empty").exists()


# --------------------------------------------------------------------------------------
# segment, in this process: bad input, options, reference networks
# --------------------------------------------------------------------------------------


def run(capsys, *args):
    before = os.environ.get("NUCLEITUT_MODELS")
    code = main(["segment", *map(str, args)])
    assert os.environ.get("NUCLEITUT_MODELS") == before, "--models is an argument, not an environment change"
    out = capsys.readouterr()
    return code, out.out, out.err


def bad_input_folder(folder):
    folder.mkdir()
    image, _ = discs_image(15, shape=(96, 128))
    iio.imwrite(folder / "good.png", image)
    iio.imwrite(folder / "good16.tif", image.astype(np.uint16) * 200 + 500)
    (folder / "broken.png").write_bytes(b"not an image at all")
    (folder / "truncated.png").write_bytes((folder / "good.png").read_bytes()[:200])
    (folder / "empty.png").write_bytes(b"")
    iio.imwrite(folder / "constant.png", np.full((64, 64), 7, np.uint8))
    iio.imwrite(folder / "tiny.png", np.full((1, 1), 7, np.uint8))
    tifffile.imwrite(folder / "stack.tif", np.zeros((5, 32, 32), np.uint16))
    (folder / "notes.txt").write_text("not an image: ignored")
    return folder


def test_segment_command_reports_each_bad_file_and_processes_the_others(reference, tmp_path, capsys):  # noqa: F811
    folder = bad_input_folder(tmp_path / "in")
    out_dir = tmp_path / "out"
    code, out, err = run(capsys, folder, out_dir, "--models", reference[0], "--no-tta")
    assert code == 1, err
    assert f"Pipeline M6B4 ({reference[0]}); training nucleus diameter 15.0 px; 8 image(s)" in out  # the folder's networks
    expected = {
        "broken.png": "cannot decode image",
        "truncated.png": "cannot decode image",
        "empty.png": "empty file",
        "constant.png": "constant image",
        "tiny.png": "1x1 pixels is too small",
        "stack.tif": "multi-page TIFF",
    }
    for name, message in expected.items():
        line = next((l for l in err.splitlines() if name in l), "")
        assert message in line, (name, err)
    assert "6 of 8 images failed" in err
    for stem in ("good", "good16"):
        assert f"{stem}.png" in out or f"{stem}.tif" in out
        assert {p.name for p in outputs.output_paths(out_dir, stem).values()} <= {p.name for p in out_dir.iterdir()}
    assert "notes" not in out + err
    # the labels are those of the folder's networks and settings
    good = discs_image(15, shape=(96, 128))[0]
    expected_labels = Pipeline.load(reference[0]).segment(good, tta=False).labels
    assert np.array_equal(iio.imread(out_dir / "good_labels.png"), expected_labels)
    # a second run leaves existing outputs alone unless told otherwise
    again = tmp_path / "good"
    again.mkdir()
    (again / "good.png").write_bytes((folder / "good.png").read_bytes())
    code, _, err = run(capsys, again, out_dir, "--models", reference[0], "--no-tta")
    assert code == 1 and "good_labels.png exists; use --overwrite" in err and "good.png" in err
    code, out, err = run(capsys, again, out_dir, "--models", reference[0], "--no-tta", "--overwrite", "--diameter", "20")
    assert code == 0 and "(given)" in out, err


def test_segment_command_fuses_scales_when_asked(reference, tmp_path, capsys, monkeypatch):  # noqa: F811
    folder = tmp_path / "in"
    folder.mkdir()
    iio.imwrite(folder / "discs.png", discs_image(15, shape=(96, 128))[0])
    asked = []
    original = Pipeline.probabilities

    def recording(self, image, tta=False, fuse_scales=False, known=None):
        asked.append(fuse_scales)
        return original(self, image, tta, fuse_scales, known)

    monkeypatch.setattr(Pipeline, "probabilities", recording)
    code, _, err = run(capsys, folder, tmp_path / "out", "--models", reference[0], "--no-tta", "--fuse-scales")
    assert code == 0, err
    assert asked[0] is True and asked.count(True) == 1  # the image itself; its neighbours are predicted without fusing again
    code, _, err = run(capsys, folder, tmp_path / "out2", "--models", reference[0], "--no-tta")
    assert code == 0 and asked[-1] is False, err


@pytest.mark.parametrize("value", ["0", "-3"])
def test_segment_command_refuses_a_diameter_that_is_not_positive(value, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run(capsys, tmp_path, tmp_path / "out", "--diameter", value)
    assert exit_info.value.code == 2 and "must be a positive number of pixels" in capsys.readouterr().err


def test_segment_command_refuses_an_output_folder_inside_the_input(tmp_path, capsys):
    iio.imwrite(tmp_path / "a.png", discs_image(15)[0])
    code, _, err = run(capsys, tmp_path, tmp_path / "out")
    assert code == 2 and "is inside the input folder" in err


def test_segment_command_without_reference_names_the_command_that_builds_it(missing_reference, tmp_path, capsys):  # noqa: F811
    (tmp_path / "in").mkdir()
    iio.imwrite(tmp_path / "in" / "a.png", discs_image(15)[0])
    code, _, err = run(capsys, tmp_path / "in", tmp_path / "out")
    assert code == 2 and "tools/make_reference.py" in err and not (tmp_path / "out").exists()


def test_segment_command_with_no_images_or_missing_input_is_a_usage_error(tmp_path, capsys):
    code, _, err = run(capsys, tmp_path / "nothing", tmp_path / "out")
    assert code == 2 and "no such file or folder" in err
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, tmp_path / "empty", tmp_path / "out")
    assert code == 2 and "no images" in err
