"""Tests of nucleitut.evaluation's post-processing tuning and record naming (synthetic data)."""

import numpy as np
import pytest

from nucleitut import config, evaluation, records, training
from nucleitut.pipeline import Pipeline, SeedEnsemble

SHAPE = (48, 64)


def disc(centre, radius):
    rows, cols = np.ogrid[: SHAPE[0], : SHAPE[1]]
    return (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius**2


def halo_image(centres):
    """True discs of radius 8; the mask network says 0.9 inside and 0.45 on a 3-pixel halo.

    With the paper's mask threshold 0.3 the halo joins the objects (IoU about 0.6); a mask
    threshold of 0.5 or more cuts it off (IoU 1)."""
    truth = np.zeros(SHAPE, np.int32)
    mask = np.zeros(SHAPE, np.float32)
    marker = np.zeros(SHAPE + (3,), np.float32)
    for label, centre in enumerate(centres, start=1):
        truth[disc(centre, 8)] = label
        mask[disc(centre, 11) & (mask == 0)] = 0.45
        marker[disc(centre, 4), 1] = 0.95
    mask[truth > 0] = 0.9
    marker[..., 0] = 1.0 - marker[..., 1]
    return truth, {"M3": marker, "B1": mask[..., None]}


@pytest.fixture
def segmenter():
    # Networks are not needed to post-process given outputs.
    return Pipeline("M3B1", {"M3": None, "B1": None}, profile="quick")


def test_tuning_picks_the_mask_threshold_that_removes_the_halo(segmenter):
    images = {"a": halo_image([(14, 14), (30, 45)]), "b": halo_image([(24, 20)])}
    truths = {k: v[0] for k, v in images.items()}
    probs = {k: v[1] for k, v in images.items()}
    tuned = evaluation.tune_postprocessing(segmenter, probs, truths)
    assert tuned["settings"]["mask_threshold"] == 0.5  # the first grid value above 0.45
    assert tuned["score"] == pytest.approx(1.0)
    assert tuned["default_score"] < 0.5  # IoU 64/121 = 0.53 passes only the 0.5 threshold
    assert tuned["n_images"] == 2 and len(tuned["table"]) == 3 * 4 * 2 * 2
    # The chosen settings reproduce the score when a pipeline is built with them.
    for chosen in (segmenter.with_settings(tuned["settings"], "validation"),
                   Pipeline("M3B1", segmenter.networks, settings=tuned["settings"], profile="quick")):
        assert all(np.array_equal(chosen.labels_from(probs[k]) > 0, truths[k] > 0) for k in probs)
    assert not all(np.array_equal(segmenter.labels_from(probs[k]) > 0, truths[k] > 0) for k in probs)


def test_tuning_with_a_custom_grid_and_no_images(segmenter):
    truth, probs = halo_image([(24, 30)])
    tuned = evaluation.tune_postprocessing(segmenter, {"x": probs}, {"x": truth}, grid={"mask_threshold": (0.3, 0.7)})
    assert tuned["settings"] == {"mask_threshold": 0.7} and len(tuned["table"]) == 2
    with pytest.raises(ValueError, match="at least one image"):
        evaluation.tune_postprocessing(segmenter, {}, {})


def test_tuned_records_have_their_own_names_and_labels():
    record = {"profile": "cpu", "pipeline": "M3B1", "tta": True}
    assert records.record_name(record) == "cpu_M3B1_tta.json"
    record["postprocess"] = {"settings": {}, "chosen_on": "validation: best mean score over 109 images"}
    assert records.record_name(record) == "cpu_M3B1_tta_tuned.json"
    assert records.record_label(record) == "M3B1 tuned"


def test_trained_pipelines_never_train_a_missing_network(tmp_path, monkeypatch):
    monkeypatch.setenv("NUCLEITUT_MODELS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"no trained B4 \(cpu profile, seed 0\).*python -m nucleitut train B4 --profile cpu"):
        Pipeline.trained("M6B4", "cpu", reuse={"M6": None})
    assert not any(tmp_path.iterdir()), "nothing may be written (or trained) into the models folder"
    # a models folder given as root is looked in instead of NUCLEITUT_MODELS
    other = tmp_path.parent / f"{tmp_path.name}_root"
    with pytest.raises(FileNotFoundError, match=rf"{other.name}/cpu/seed2/B4: no trained B4 \(cpu profile, seed 2\).*--seed 2"):
        Pipeline.trained("M6B4", "cpu", seed=2, reuse={"M6": None}, root=other)
    assert not other.exists() and not any(tmp_path.iterdir())


@pytest.mark.slow
def test_postprocess_and_the_package_do_not_import_keras():
    import subprocess
    import sys

    code = (
        "import sys, nucleitut, nucleitut.postprocess, nucleitut.metrics, nucleitut.sizing\n"
        "print('keras' in sys.modules, 'nucleitut.training' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False False"


def test_records_describe_data_without_paths_and_carry_the_seed(segmenter):
    from nucleitut import data

    dataset = data.Dataset(["a", "b"], [np.zeros((8, 8, 3), np.uint8)] * 2, [np.zeros((8, 8), np.int32)] * 2,
                           "local copy at /somewhere/secret/stage1_train.zip", data.Path("/somewhere/secret/stage1_train.zip"))
    segmenter.seed = 2
    record = evaluation._score(segmenter, dataset, ["a", "b"], False, lambda i: np.zeros((8, 8), np.int32), verbose=False)
    assert record["data"] == {"name": "stage1_train.zip", "n_images": 2, "ids_sha256": dataset.describe()["ids_sha256"]}
    assert "/somewhere" not in str(record) and record["seed"] == 2
    assert records.record_name(record) == "quick_M3B1_seed2.json"


def _tiny_networks(folder, seed):
    """Untrained M3 and B1 (3 blocks, F=4), saved and loaded like trained ones."""
    import json

    models = {}
    for network in ("M3", "B1"):
        directory = folder / f"seed{seed}" / network
        directory.mkdir(parents=True)
        cfg = config.training_config(network, "quick", seed=seed, filters=4)
        training.build_model(cfg).save(directory / "model.keras")
        (directory / "config.json").write_text(json.dumps(cfg.to_dict()))
        models[network] = training.load_network(directory)
    return models


@pytest.fixture(scope="module")
def tiny_dataset():
    from nucleitut import data

    rng = np.random.default_rng(3)
    images = [rng.integers(0, 255, (64, 80, 3), dtype=np.uint8) for _ in range(2)]
    truths = [np.zeros((64, 80), np.int32) for _ in range(2)]
    truths[0][10:30, 10:30] = 1
    truths[1][40:60, 50:70] = 1
    return data.Dataset(["a", "b"], images, truths, "synthetic", data.Path("synthetic.zip"))


def test_a_seed_ensemble_of_one_network_with_itself_is_the_network(tmp_path, tiny_dataset):
    """Fusing identical outputs gives them back exactly: same outputs, labels and scores as the single pipeline."""
    models = _tiny_networks(tmp_path, 0)
    ensemble = SeedEnsemble("M3B1", [0, 1], "quick", networks={0: models, 1: dict(models)})
    single = Pipeline("M3B1", models, profile="quick")
    assert ensemble.name == "M3B1" and ensemble.spec == single.spec and len(ensemble.members) == 2
    image = tiny_dataset.get("a")[0]
    for tta in (False, True):
        fused, alone = ensemble.probabilities(image, tta), single.probabilities(image, tta)
        assert all(np.array_equal(fused[n], alone[n]) for n in ("M3", "B1"))
        # thresholds low enough that the untrained networks give objects to compare
        assert np.array_equal(ensemble.labels_from(fused, marker_threshold=0.1), single.labels_from(alone, marker_threshold=0.1))
        assert single.labels_from(alone, marker_threshold=0.1).max() > 0
    scored = evaluation.evaluate_pipelines(["M3B1"], tiny_dataset, ids=["a", "b"], profile="quick", networks=models, verbose=False)
    records_ = evaluation.evaluate_seed_ensemble("M3B1", tiny_dataset, [0, 1], ids=["a", "b"], profile="quick",
                                                 networks={0: models, 1: dict(models)}, verbose=False)
    assert [r["tta"] for r in records_] == [False, True]
    for one, both in zip(scored, records_):
        assert [row["kaggle_score"] for row in both["per_image"]] == [row["kaggle_score"] for row in one["per_image"]]
        assert both["ensemble_of_seeds"] == [0, 1] and both["seed"] == [0, 1]
        assert sorted(both["networks"]) == ["B1 seed 0", "B1 seed 1", "M3 seed 0", "M3 seed 1"]
    assert evaluation.seed_ensemble_record_name(records_[1]) == "quick_M3B1_tta_seeds0-1.json"


def test_a_seed_ensemble_fuses_its_trainings_outputs(tmp_path, tiny_dataset):
    """Two different trainings: objects averaged, the border channel by maximum, B1's mask averaged."""
    from nucleitut import metrics, predict

    first, second = _tiny_networks(tmp_path, 0), _tiny_networks(tmp_path, 1)
    ensemble = SeedEnsemble("M3B1", [0, 1], "quick", networks={0: first, 1: second})
    assert [m.networks["M3"] for m in ensemble.members] == [first["M3"], second["M3"]]
    image, truth = tiny_dataset.get("a")
    fused = ensemble.probabilities(image)
    each = [{n: predict.predict_probabilities(m[n].model, image) for n in ("M3", "B1")} for m in (first, second)]
    assert not np.allclose(each[0]["M3"], each[1]["M3"])  # the two trainings differ
    np.testing.assert_allclose(fused["M3"][..., :2], (each[0]["M3"][..., :2] + each[1]["M3"][..., :2]) / 2, atol=1e-6)
    np.testing.assert_allclose(fused["M3"][..., 2], np.maximum(each[0]["M3"][..., 2], each[1]["M3"][..., 2]), atol=1e-6)
    np.testing.assert_allclose(fused["B1"], (each[0]["B1"] + each[1]["B1"]) / 2, atol=1e-6)
    record = evaluation.evaluate_seed_ensemble("M3B1", tiny_dataset, [0, 1], ids=["a"], tta_values=(False,),
                                               profile="quick", networks={0: first, 1: second}, verbose=False)[0]
    assert record["per_image"][0]["kaggle_score"] == metrics.kaggle_score(truth, ensemble(image))


def test_evaluate_pipelines_loads_and_describes_the_networks_of_the_given_models_folder(tmp_path, tiny_dataset, monkeypatch):
    import json

    monkeypatch.setenv("NUCLEITUT_MODELS", str(tmp_path / "elsewhere"))  # not looked in
    root = tmp_path / "models"
    for network in ("M3", "B1"):
        directory = config.model_dir(network, "quick", 0, root)
        directory.mkdir(parents=True)
        cfg = config.training_config(network, "quick", filters=4)
        training.build_model(cfg).save(directory / "model.keras")
        (directory / "config.json").write_text(json.dumps(cfg.to_dict()))
        (directory / "timing.json").write_text(json.dumps({"epochs": 3, "seconds_all_epochs": 12.5}))
    record, = evaluation.evaluate_pipelines(["M3B1"], tiny_dataset, ids=["a"], tta_values=(False,), profile="quick",
                                            verbose=False, root=root)
    assert record["networks"]["M3"]["filters"] == 4 and record["networks"]["B1"]["epochs"] == 3
    assert record["networks"]["B1"]["training_seconds"] == 12.5 and record["n_images"] == 1
    assert not (tmp_path / "elsewhere").exists()
