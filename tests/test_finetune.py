"""Fine-tuning the reference networks on a few annotated images (nucleitut.finetune, `finetune`)."""

import dataclasses
import json

import numpy as np
import pytest

from nucleitut import data, finetune, pretrained, sizing
from nucleitut.__main__ import main
from nucleitut.pipeline import Pipeline

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


def test_images_to_mix_come_from_training_and_validation_and_skip_yours():
    sample = data.load_dataset("sample", verbose=False)
    split = sample.split()
    yours = split.train[:3]
    mixed = finetune.images_to_mix(sample, 6, exclude=yours)
    assert len(mixed) == 6 and mixed.ids == sorted(mixed.ids)
    assert set(mixed.ids) <= set(split.train + split.val) - set(yours)
    assert finetune.images_to_mix(sample, 6, exclude=yours).ids == mixed.ids  # drawn with a fixed seed
    everything = finetune.images_to_mix(sample, 10_000)
    assert sorted(everything.ids) == sorted(split.train + split.val)  # asked for more: all of them
    assert len(finetune.images_to_mix(sample, 0)) == 0


def test_joined_data_sets_keep_every_image_once_and_say_what_they_are():
    sample = data.load_dataset("sample", verbose=False)
    a, b = sample.subset(sample.ids[:3]), sample.subset(sample.ids[10:12])
    both = b.joined(a)
    assert both.ids == sorted(a.ids + b.ids)
    for image_id in both.ids:
        source = a if image_id in a.ids else b
        assert both.get(image_id)[0] is source.get(image_id)[0] and both.get(image_id)[1] is source.get(image_id)[1]
    assert both.describe()["n_images"] == 5 and "+ 3 images of" in both.describe()["name"]
    with pytest.raises(data.DataError, match="image ids also in"):
        a.joined(sample.subset(sample.ids[2:4]))


def test_finetune_command_names_a_missing_source_of_images_to_mix(tmp_path, capsys):
    folder, _ = unpack_sample(tmp_path / "mine", 2)
    assert main(["finetune", str(folder), str(tmp_path / "out"), "--mix-data", str(tmp_path / "nowhere.zip")]) == 2
    assert "nowhere.zip: data source does not exist" in capsys.readouterr().err
    assert not (tmp_path / "out" / "reference.json").exists()


def test_finetune_networks_starts_each_network_from_its_weights_with_a_lower_rate(tmp_path, monkeypatch):
    from nucleitut import config, training

    calls = []

    def fake_train(cfg, dataset, directory, split=None, initial_model=None, verbose=True):
        calls.append((cfg, directory, split, initial_model))
        return f"result of {cfg.network}"

    monkeypatch.setattr(training, "train", fake_train)
    models = {name: object() for name in ("M3", "B1")}
    networks = {name: training.Network(models[name], config.training_config(name, "cpu")) for name in models}
    split = data.Split(["a"], ["b"], [])
    results = finetune.finetune_networks(networks, "the data", tmp_path, split, epochs=3, lr_factor=0.5,
                                         augmentation="a", verbose=False)
    assert results == {"M3": "result of M3", "B1": "result of B1"}
    for (cfg, directory, given_split, initial), name in zip(calls, ("M3", "B1")):
        original = networks[name].config
        assert initial is models[name] and given_split is split and directory == tmp_path / "cpu" / name
        assert cfg.max_epochs == 3 and cfg.learning_rate == pytest.approx(0.5 * original.learning_rate)
        assert cfg.augmentation == "a" and cfg.time_budget_s is None
        assert cfg == dataclasses.replace(original, max_epochs=3, learning_rate=cfg.learning_rate, augmentation="a", time_budget_s=None)
    calls.clear()
    finetune.finetune_networks(networks, "the data", tmp_path, verbose=False)
    assert [c[0].augmentation for c in calls] == [networks[n].config.augmentation for n in ("M3", "B1")]  # kept by default
    assert [c[0].max_epochs for c in calls] == [finetune.EPOCHS] * 2


@pytest.mark.slow
def test_finetuned_networks_start_from_the_reference_and_segment_new_images(tmp_path, capsys, monkeypatch):
    folder, ids = unpack_sample(tmp_path / "mine", 4)
    out = tmp_path / "networks"
    # no BBBC038v1 copy and no download here: the images to mix in come from the shipped sample
    monkeypatch.setenv("NUCLEITUT_DATA", str(tmp_path / "no_such_data.zip"))
    assert main(["finetune", str(folder), str(out), "--epochs", "1"]) == 0
    printed = capsys.readouterr()
    assert f"--models {out}" in printed.out
    assert "mixing in images of the shipped sample instead" in printed.err and "Mixing in 4 images of nucleitut sample" in printed.out

    info = json.loads((out / "reference.json").read_text())
    original, original_info = pretrained.load_reference()
    assert info["pipeline"] == original_info["pipeline"] and info["postprocess"] == original_info["postprocess"]
    assert info["trained"]["annotated_images"] == 4 and info["trained"]["mixed_in"]["n_images"] == 4
    assert info["trained"]["images"] == {"train": 6, "val": 2} and info["trained"]["data"]["n_images"] == 8
    assert "results" not in info  # the reference's test scores do not describe these networks
    tuned, _ = pretrained.load_reference(out)
    assert set(tuned) == set(original)
    for name, network in tuned.items():
        assert network.config.learning_rate == pytest.approx(original[name].config.learning_rate * finetune.LR_FACTOR)
        assert network.config.max_epochs == 1 and network.config.augmentation == original[name].config.augmentation
        # trained: the weights moved, but only a little from the reference's (not a new
        # network; batch normalisation's moving statistics, which follow the new images, aside)
        pairs = [(a.numpy(), b.numpy()) for a, b in zip(network.model.trainable_weights, original[name].model.trainable_weights)]
        change = np.linalg.norm(np.concatenate([(a - b).ravel() for a, b in pairs]))
        assert 0 < change < 0.05 * np.linalg.norm(np.concatenate([b.ravel() for _, b in pairs]))

    pipe = Pipeline.load(out)
    assert pipe.name == original_info["pipeline"] and pipe.settings == original_info["postprocess"]
    assert pipe.size_band == sizing.TRAINING_SIZE_BAND
    assert pipe.training_diameter == pytest.approx(original_info["nucleus_size"]["median_diameter"])
    image = folder / ids[0] / "images" / f"{ids[0]}.png"
    assert main(["segment", str(image), str(tmp_path / "labels"), "--models", str(out), "--no-tta"]) == 0
    assert (tmp_path / "labels" / f"{ids[0]}_labels.png").exists()
