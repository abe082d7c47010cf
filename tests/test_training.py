"""Tests of nucleitut.training: augmentation, crops, training, saved networks, resume, backends.
(The Table 3 networks and the profiles: tests/test_config.py.)"""

import csv
import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path

import numpy as np
import pytest
from skimage import measure

from nucleitut import config, data, targets, training

ROOT = Path(__file__).resolve().parents[1]


def tiny_config(**overrides):
    values = dict(blocks=3, filters=4, crop_size=64, max_epochs=2, time_budget_s=None, batch_size=4)
    values.update(overrides)
    return config.training_config("M3", "quick", **values)


@pytest.fixture(scope="module")
def sample():
    return data.load_dataset("sample", verbose=False, use_cache=False)


@pytest.fixture(scope="module")
def tiny_split(sample):
    split = sample.split()
    return data.Split(split.train[:3], split.val[:1], split.test[:1])


def test_augmentation_moves_image_and_labels_together():
    labels = np.zeros((32, 32), np.int32)
    labels[2:9, 3:20] = 1
    labels[15:30, 20:25] = 2
    image = np.repeat((labels * 0.4 - 0.5).astype(np.float32)[..., None], 3, axis=-1)
    rng = np.random.default_rng(3)
    for _ in range(20):
        out_image, out_labels = training.augment(image, labels, training.AUGMENTATION_SETS["b"], rng)
        assert np.array_equal(np.round((out_image[..., 0] + 0.5) / 0.4).astype(int), out_labels)
    changed = [training.augment(image, labels, ("scale",), np.random.default_rng(s)) for s in range(6)]
    assert all(im.shape == (32, 32, 3) and lab.shape == (32, 32) for im, lab in changed)
    assert any(not np.array_equal(lab, labels) for _, lab in changed)
    with pytest.raises(ValueError, match="unknown augmentation"):
        training.augment(image, labels, ("twist",), rng)
    assert set(training.AUGMENTATION_SETS) == {"none", "a", "b", "robust"}  # the paper's sets, none, this project's
    assert set(training.AUGMENTATION_SETS["a"]) > set(training.AUGMENTATION_SETS["b"]) and "scale" in training.AUGMENTATION_SETS["a"]
    assert set(training.AUGMENTATION_SETS["robust"]) > set(training.AUGMENTATION_SETS["a"])


def _colour_crop():
    labels = np.zeros((48, 48), np.int32)
    labels[4:20, 6:22], labels[26:44, 24:40] = 1, 2
    rgb = np.where(labels[..., None] > 0, [120, 60, 160], [230, 210, 225]).astype(np.uint8)  # stained nuclei, pale tissue
    return data.normalize(rgb), labels


@pytest.mark.parametrize("op", ["colour", "invert", "intensity", "jpeg"])
def test_robust_operations_change_pixel_values_only(op):
    image, labels = _colour_crop()
    draws = [training.augment(image, labels, (op,), np.random.default_rng(s)) for s in range(12)]
    applied = [im for im, _ in draws if not np.array_equal(im, image)]
    assert 0 < len(applied) < 12  # applied with its probability, not always
    for im, lab in draws:
        assert im.shape == image.shape and im.dtype == np.float32 and np.array_equal(lab, labels)
        assert im.min() >= -1 and im.max() <= 1
        assert np.allclose((im + 1) * 127.5, np.round((im + 1) * 127.5), atol=1e-3)  # 8-bit levels, as a camera gives
    if op == "invert":
        assert all(np.allclose(im, -image) for im in applied)
    if op == "intensity":  # dimmer or offset, never brighter than a gain of 1 and an offset of 40 allow
        assert all(((im + 1) * 127.5).max() <= 255 for im in applied)
        assert any(np.ptp(im) < np.ptp(image) for im in applied)


def test_robust_colour_leaves_grey_crops_grey():
    image, labels = _colour_crop()
    grey = np.repeat(image.mean(axis=-1, keepdims=True), 3, axis=-1)
    grey = data.normalize(data.denormalize(grey))
    for seed in range(10):
        out, _ = training.augment(grey, labels, ("colour",), np.random.default_rng(seed))
        assert np.array_equal(out, grey)
    coloured = [training.augment(image, labels, ("colour",), np.random.default_rng(s))[0] for s in range(20)]
    assert any(np.ptp(im, axis=-1).max() == 0 for im in coloured)  # grey conversion
    assert any(np.ptp(im, axis=-1).max() > 0 and not np.array_equal(im, image) for im in coloured)  # stain or channels


def test_robust_crops_keep_image_and_labels_aligned():
    # Geometric operations move image and labels together; the others change intensities only,
    # so the nuclei of the labels stay where the image shows them (bright or, inverted, dark).
    image, labels = _colour_crop()
    rng = np.random.default_rng(5)
    correlations = []
    for _ in range(40):
        out, out_labels = training.augment(image, labels, training.AUGMENTATION_SETS["robust"], rng)
        assert out.shape == image.shape and out_labels.shape == labels.shape
        correlations.append(abs(np.corrcoef(out.mean(axis=-1).ravel(), (out_labels > 0).ravel())[0, 1]))
    assert np.median(correlations) > 0.8 and min(correlations) > 0.2


@pytest.mark.parametrize("factor", [0.5, 0.8, 0.9, 1.1, 1.25, 2.0])
def test_rescaled_crop_labels_every_nucleus_the_image_shows(factor):
    # Nucleus 2 touches the crop's lower right corner: shrinking pads the crop by mirroring,
    # and the mirrored part of the nucleus must be labelled where the image shows it.
    labels = np.zeros((32, 32), np.int32)
    labels[2:9, 3:20] = 1
    labels[15:32, 20:32] = 2
    labels[2:6, 28:31] = 3
    image = np.repeat((labels > 0).astype(np.float32)[..., None] * 2 - 1, 3, axis=-1)
    out_image, out_labels = training._rescale(image, labels, factor, np.random.default_rng(0))
    assert out_image.shape == image.shape and out_labels.shape == labels.shape
    shown = out_image[..., 0] > 0
    assert np.mean(shown != (out_labels > 0)) < 0.02, "image and labels disagree on the foreground"
    if factor < 1:
        margin = slice(int(round(32 * factor)), None)
        assert shown[margin, margin].any() and (out_labels[margin, margin] > 0).any()
    # every object is one connected piece: the mirrored copy of nucleus 3 (near the right
    # edge, not touching it) is an object of its own, nucleus 2 and its mirror image are one
    for value in np.unique(out_labels[out_labels > 0]):
        assert measure.label(out_labels == value, connectivity=1).max() == 1, value
    if factor in (0.8, 0.9):  # at 0.5 nucleus 3 reaches the shrunk crop's edge
        near_edge = out_labels[:8, 20:]
        assert len(np.unique(near_edge[near_edge > 0])) == 2, "nucleus 3 and its mirrored copy"


def test_crops_cover_large_images_and_skip_crops_with_fewer_than_two_nuclei():
    image = np.zeros((300, 520, 3), np.uint8)
    labels = np.zeros((300, 520), np.int32)
    labels[50:60, 10:20] = 1
    labels[70:80, 30:40] = 2
    labels[200:210, 400:410] = 3  # alone in its crop
    crops, crop_labels = training.training_crops([image], [labels], size=256)
    assert training.crop_positions(300, 256) == [0, 44]
    assert training.crop_positions(520, 256) == [0, 132, 264]
    assert len(crops) == 2  # the two crops of the left column hold nuclei 1 and 2
    assert all(c.shape == (256, 256, 3) for c in crops)
    assert all(sorted(np.unique(l).tolist()) == [0, 1, 2] for l in crop_labels)


def test_small_images_are_padded_to_one_crop():
    labels = np.zeros((100, 90), np.int32); labels[5:10, 5:10] = 1; labels[50:60, 50:60] = 2
    crops, crop_labels = training.training_crops([np.zeros((100, 90, 3), np.uint8)], [labels], size=128)
    assert len(crops) == 1 and crops[0].shape == (128, 128, 3) and crop_labels[0].shape == (128, 128)


def test_crop_sequence_is_repeatable_and_targets_follow_augmented_labels(sample, tiny_split):
    cfg = tiny_config(augmentation="a")
    crops, crop_labels = training.training_crops([sample.get(i)[0] for i in tiny_split.train],
                                             [sample.get(i)[1] for i in tiny_split.train], size=64)
    first = training.CropSequence(crops, crop_labels, cfg, seed=5)
    second = training.CropSequence(crops, crop_labels, cfg, seed=5)
    x1, y1 = first[1]
    x2, y2 = second[1]
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert x1.shape == (4, 64, 64, 3) and y1.shape == (4, 64, 64, 3)
    np.testing.assert_allclose(y1.sum(-1), 1.0)
    first.on_epoch_end()
    assert not np.array_equal(first[1][0], x1), "a new epoch draws new crops and augmentations"
    plain = training.CropSequence(crops, crop_labels, tiny_config(), training=False, seed=5)
    x, y = plain[0]
    expected = targets.make_target(crop_labels[0], "marker", erosion=2, border_dilation=2)
    assert np.array_equal(y[0], expected) and np.array_equal(x[0], data.normalize(crops[0]))


@pytest.mark.slow
def test_training_writes_history_checkpoint_and_a_safe_model(sample, tiny_split, tmp_path):
    import keras

    cfg = tiny_config(plateau=True)
    result = training.train(cfg, sample, tmp_path, split=tiny_split, verbose=False)
    assert result.epochs == 2
    rows = list(csv.DictReader(open(tmp_path / "history.csv")))
    assert [int(r["epoch"]) for r in rows] == [0, 1] and "val_loss" in rows[0] and "learning_rate" in rows[0]
    again = training.train(cfg, sample, tmp_path, split=tiny_split, verbose=False)
    assert again.epochs == 2, "a fresh run in the same folder starts a new history"
    assert result.config == cfg and result.network.model is result.model and result.network.config == cfg
    network = training.load_network(tmp_path)
    assert isinstance(network, training.Network) and network.config == cfg and network.name == "M3"
    model = network.model
    x = data.normalize(sample.get(tiny_split.test[0])[0][:64, :64])[None]
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(result.model(x)), atol=1e-6)
    reloaded = keras.models.load_model(tmp_path / "model.keras", safe_mode=True)
    assert reloaded.loss.name == "cce_dice" or "CceDice" in type(reloaded.loss).__name__


@pytest.mark.slow
def test_fine_tuning_starts_from_given_weights(sample, tiny_split, tmp_path):
    cfg = tiny_config(max_epochs=1, learning_rate=0.0)  # rate 0: the weights cannot move
    start = training.build_model(cfg)
    for variable in start.trainable_weights:  # weights no fresh initialisation would give
        variable.assign(variable.numpy() + 0.5)
    result = training.train(cfg, sample, tmp_path, split=tiny_split, verbose=False, initial_model=start)
    for before, after in zip(start.trainable_weights, result.model.trainable_weights):  # (batch statistics do move)
        np.testing.assert_array_equal(before.numpy(), after.numpy())
    assert config.TrainingConfig.from_dict(json.loads((tmp_path / "config.json").read_text())) == cfg


@pytest.mark.slow
def test_cosine_schedule_ends_training_at_one_percent_of_the_rate(sample, tiny_split, tmp_path):
    cfg = tiny_config(lr_schedule="cosine", max_epochs=3, learning_rate=1e-3)
    schedule = training.cosine_schedule(cfg, steps_per_epoch=10)
    rates = [float(schedule(step)) for step in (0, 15, 30, 60)]
    np.testing.assert_allclose(rates, [1e-3, 1e-3 * 0.505, 1e-5, 1e-5], rtol=1e-5)
    with pytest.raises(ValueError, match="cosine schedule needs steps_per_epoch"):
        training.build_model(cfg)
    training.train(cfg, sample, tmp_path, split=tiny_split, verbose=False)
    logged = [float(r["learning_rate"]) for r in csv.DictReader(open(tmp_path / "history.csv"))]
    assert len(logged) == 3 and all(b < a for a, b in zip(logged, logged[1:])), logged
    assert logged[-1] == pytest.approx(1e-5, rel=1e-3)


def _run_python(code, env_extra=None, timeout=600):
    env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="3", **(env_extra or {}))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


TRAIN_SCRIPT = """
    import sys
    from nucleitut import config, data, training
    sample = data.load_dataset("sample", verbose=False, use_cache=False)
    split = sample.split()
    split = data.Split(split.train[:3], split.val[:1], split.test[:1])
    cfg = config.training_config("B1", "quick", blocks=3, filters=4, crop_size=64, batch_size=4,
                                 max_epochs=int(sys.argv[2]) if len(sys.argv) > 2 else {epochs}, time_budget_s=None)
    result = training.train(cfg, sample, {directory!r}, split=split, devices={devices}, verbose=True)
    print("EPOCHS", result.epochs)
"""


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_last_epoch(tmp_path):
    script = TRAIN_SCRIPT.format(epochs=6, directory=str(tmp_path), devices=None)
    env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="3")
    process = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    history = tmp_path / "history.csv"
    deadline = time.time() + 300
    while time.time() < deadline:
        if history.exists() and len(history.read_text().strip().splitlines()) >= 3:  # header + 2 epochs
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = len(list(csv.DictReader(open(history))))
    assert 2 <= done_before < 6, "the run must be killed in the middle"
    assert (tmp_path / "backup").exists()
    rerun = _run_python(script)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    epochs = [int(r["epoch"]) for r in csv.DictReader(open(history))]
    assert epochs == list(range(6)), f"resumed run must continue the epoch count, got {epochs}"
    assert "EPOCHS 6" in rerun.stdout
    assert f"epoch   {done_before + 1}" in rerun.stdout and "epoch   1 " not in rerun.stdout
    # The training time counts the killed run's epochs too, not only the resumed run's.
    timing = json.loads((tmp_path / "timing.json").read_text())
    per_epoch = [float(r["epoch_seconds"]) for r in csv.DictReader(open(history))]
    assert len(per_epoch) == 6 and all(s > 0 for s in per_epoch)
    assert timing["seconds_all_epochs"] == pytest.approx(sum(per_epoch), abs=0.1)
    assert timing["seconds_all_epochs"] > sum(per_epoch[done_before:]) + 0.05


@pytest.mark.slow
def test_training_runs_on_the_jax_backend(tmp_path):
    result = _run_python(TRAIN_SCRIPT.format(epochs=1, directory=str(tmp_path), devices=None),
                         {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "EPOCHS 1" in result.stdout
    check = _run_python(f"""
        import keras
        from nucleitut import training
        model = training.load_network({str(tmp_path)!r}).model
        print(keras.backend.backend(), model.output_shape)
    """, {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"})
    assert "jax (None, None, None, 1)" in check.stdout, check.stderr


@pytest.mark.slow
def test_data_parallel_training_on_two_logical_cpu_devices_tensorflow(tmp_path):
    code = textwrap.dedent("""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from nucleitut import training
        with training.distribution_scope(2) as strategy:
            print("REPLICAS", strategy.num_replicas_in_sync)
    """) + textwrap.dedent(TRAIN_SCRIPT.format(epochs=1, directory=str(tmp_path), devices=2))
    result = _run_python(code, {"KERAS_BACKEND": "tensorflow"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "REPLICAS 2" in result.stdout and "EPOCHS 1" in result.stdout


@pytest.mark.slow
def test_data_parallel_training_on_two_logical_cpu_devices_jax(tmp_path):
    code = textwrap.dedent("""
        import keras, jax
        from nucleitut import training
        with training.distribution_scope(2) as distribution:
            print("DEVICES", len(jax.devices()), type(distribution).__name__)
    """) + textwrap.dedent(TRAIN_SCRIPT.format(epochs=1, directory=str(tmp_path), devices=2))
    result = _run_python(code, {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu",
                                "XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "DEVICES 2 DataParallel" in result.stdout and "EPOCHS 1" in result.stdout


def test_trained_model_loads_a_saved_network_and_retrains_one_made_with_other_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("NUCLEITUT_MODELS", str(tmp_path))
    directory = config.model_dir("B1", "quick")
    directory.mkdir(parents=True)
    cfg = config.training_config("B1", "quick", filters=4)
    training.build_model(cfg).save(directory / "model.keras")
    (directory / "config.json").write_text(json.dumps(cfg.to_dict()))
    (directory / "timing.json").write_text("{}")
    calls = []
    monkeypatch.setattr(training, "train", lambda cfg, dataset, folder, **kw: calls.append((cfg, folder)) or
                        types.SimpleNamespace(model="trained"))
    # the profile's B1 has another width: trained again, into the same folder
    assert training.trained_model("B1", "quick", dataset="sample data", verbose=False) == "trained"
    assert calls[0][0] == config.training_config("B1", "quick") and calls[0][1] == directory
    # saved with today's settings (another time budget does not count): loaded, not trained
    today = dataclasses.replace(config.training_config("B1", "quick"), time_budget_s=None)
    training.build_model(today).save(directory / "model.keras")
    (directory / "config.json").write_text(json.dumps(today.to_dict()))
    model = training.trained_model("B1", "quick", dataset="sample data", verbose=False)
    assert len(calls) == 1 and model.count_params() == training.build_model(today).count_params()
