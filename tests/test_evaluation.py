"""Tests of nucleitut.evaluation's post-processing tuning and record naming (synthetic data)."""

import numpy as np
import pytest

from nucleitut import config, evaluation, records

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
    return evaluation.Segmenter("M3B1", "quick", models={"M3": None, "B1": None})


def test_tuning_picks_the_mask_threshold_that_removes_the_halo(segmenter):
    images = {"a": halo_image([(14, 14), (30, 45)]), "b": halo_image([(24, 20)])}
    truths = {k: v[0] for k, v in images.items()}
    probs = {k: v[1] for k, v in images.items()}
    tuned = evaluation.tune_postprocessing(segmenter, probs, truths)
    assert tuned["settings"]["mask_threshold"] == 0.5  # the first grid value above 0.45
    assert tuned["score"] == pytest.approx(1.0)
    assert tuned["default_score"] < 0.5  # IoU 64/121 = 0.53 passes only the 0.5 threshold
    assert tuned["n_images"] == 2 and len(tuned["table"]) == 3 * 4 * 2 * 2
    # The chosen settings reproduce the score when a segmenter is built with them.
    chosen = evaluation.Segmenter("M3B1", "quick", models=segmenter.models, settings=tuned["settings"])
    assert all(np.array_equal(chosen.labels_from(probs[k]) > 0, truths[k] > 0) for k in probs)


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


def test_segmenter_never_trains_a_missing_network(tmp_path, monkeypatch):
    monkeypatch.setenv("NUCLEITUT_MODELS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"no trained B4 \(cpu profile, seed 0\).*python -m nucleitut train B4 --profile cpu"):
        evaluation.Segmenter("M6B4", "cpu", models={"M6": None})
    assert not any(tmp_path.iterdir()), "nothing may be written (or trained) into the models folder"


@pytest.mark.slow
def test_evaluation_does_not_import_training_and_postprocess_does_not_import_keras():
    import subprocess
    import sys

    code = (
        "import sys, nucleitut.evaluation\n"
        "print('nucleitut.training' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_records_describe_data_without_paths_and_carry_the_seed(segmenter):
    from nucleitut import data

    dataset = data.Dataset(["a", "b"], [np.zeros((8, 8, 3), np.uint8)] * 2, [np.zeros((8, 8), np.int32)] * 2,
                           "local copy at /somewhere/secret/stage1_train.zip", data.Path("/somewhere/secret/stage1_train.zip"))
    segmenter.seed = 2
    record = evaluation._score(segmenter, dataset, ["a", "b"], False, lambda i: np.zeros((8, 8), np.int32), verbose=False)
    assert record["data"] == {"name": "stage1_train.zip", "n_images": 2, "ids_sha256": dataset.describe()["ids_sha256"]}
    assert "/somewhere" not in str(record) and record["seed"] == 2
    assert records.record_name(record) == "quick_M3B1_seed2.json"
