"""Fine-tuning the reference networks on a few annotated images (nucleitut.finetune, `finetune`)."""

import json

import numpy as np
import pytest

from nucleitut import finetune, pretrained
from nucleitut.__main__ import main

from test_data import unpack_sample


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NUCLEITUT_CACHE", str(tmp_path / "cache"))


def test_holdout_split_keeps_one_image_to_check_and_none_for_testing():
    split = finetune.holdout_split([f"{i:02d}" for i in range(12)])
    assert split.sizes() == (10, 2, 0) and not set(split.train) & set(split.val)
    assert finetune.holdout_split(["a", "b"]).sizes() == (1, 1, 0)
    with pytest.raises(ValueError, match="at least 2 annotated images"):
        finetune.holdout_split(["a"])


def test_finetune_command_refuses_a_single_image_and_an_existing_reference(tmp_path, capsys):
    one, _ = unpack_sample(tmp_path / "one", 1)
    assert main(["finetune", str(one), str(tmp_path / "out")]) == 2
    assert "at least 2 annotated images" in capsys.readouterr().err
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "reference.json").write_text("{}")
    assert main(["finetune", str(one), str(tmp_path / "taken")]) == 2
    assert "reference.json: exists; use --overwrite" in capsys.readouterr().err


@pytest.mark.slow
def test_finetuned_networks_start_from_the_reference_and_segment_new_images(tmp_path, capsys):
    folder, ids = unpack_sample(tmp_path / "mine", 4)
    out = tmp_path / "networks"
    assert main(["finetune", str(folder), str(out), "--epochs", "1"]) == 0
    assert f"--models {out}" in capsys.readouterr().out

    info = json.loads((out / "reference.json").read_text())
    original, original_info = pretrained.load_reference()
    assert info["pipeline"] == original_info["pipeline"] and info["postprocess"] == original_info["postprocess"]
    assert info["trained"]["images"] == {"train": 3, "val": 1} and info["trained"]["data"]["n_images"] == 4
    assert "results" not in info  # the reference's test scores do not describe these networks
    tuned, _ = pretrained.load_reference(out)
    for name, model in tuned.items():
        assert model.nucleitut_config.size_target == pytest.approx(original_info["nucleus_size"]["median_diameter"])
        assert model.nucleitut_config.learning_rate == pytest.approx(original[name].nucleitut_config.learning_rate * finetune.LR_FACTOR)
        # trained: the weights moved, but only a little from the reference's (not a new
        # network; batch normalisation's moving statistics, which follow the new images, aside)
        pairs = [(a.numpy(), b.numpy()) for a, b in zip(model.trainable_weights, original[name].trainable_weights)]
        change = np.linalg.norm(np.concatenate([(a - b).ravel() for a, b in pairs]))
        assert 0 < change < 0.05 * np.linalg.norm(np.concatenate([b.ravel() for _, b in pairs]))

    segmenter, target = pretrained.load_networks(out)
    assert segmenter.size_band is None and target == pytest.approx(original_info["nucleus_size"]["median_diameter"])
    image = folder / ids[0] / "images" / f"{ids[0]}.png"
    assert main(["segment", str(image), str(tmp_path / "labels"), "--models", str(out), "--no-tta"]) == 0
    assert (tmp_path / "labels" / f"{ids[0]}_labels.png").exists()
